"""``keytrack track``: track untracked pose predictions and write PoseTrack18 JSON (§3.1, A.3).

Reads a PoseTrack18-layout folder with :func:`keytrack.io.read_dataset`, drops whatever track
ids the input carries (the input is treated as untracked pose estimates), optionally keeps every
``k``-th frame only (:func:`~keytrack.tracking.transforms.subsample`), tracks every video online with
the chosen scorer, removes keypoints below ``--keypoint-threshold`` from the output (A.3), and
writes one PoseTrack18 file per video to ``--out``. Prints the tracking speed in frames/s and,
for Pose Entailment, the pairs/s through the network.

``--out`` is checked before any work (:func:`keytrack.outputs.check_output_folder`): an existing
file, an unwritable parent, or a folder already holding files without ``--overwrite`` is refused.
The folder is written whole (:func:`keytrack.outputs.write_folder`: a temporary sibling renamed
into place) with a manifest of the settings, the input and checkpoint digests and the sha256 of
every file, which ``keytrack evaluate`` checks.
"""

from __future__ import annotations

import argparse

from keytrack.cli import at_least_one, renamed_option
from keytrack.tracking.assignment import ASSIGNMENTS
from keytrack.tracking.scorers import SCORERS
from keytrack.tracking.tracker import MOTIONS
from keytrack.weights import checkpoint_argument
from keytrack.weights import names as shipped_names

#: The scorer of ``keytrack track`` without ``--scorer`` and ``--checkpoint``, and the motion of OKS and
#: IoU without ``--motion``: OKS with the Kalman motion (with DEFAULT_TRACKER's settings below;
#: docs/tracking.md, "Defaults"). Even as the paper tracks (greedy, COCO's σ) it tracks Bonn test better
#: than the shipped matcher (``keytrack-synthetic``, :mod:`keytrack.weights`) with velocity or Kalman
#: motion: fewer ID switches and a higher MOTA in 5 of the 6 cells (GT and predicted keypoints, strides 1,
#: 2, 4; with predicted keypoints at stride 1 %IDSW 0.41 against 2.85 and 3.66), the sixth (GT keypoints,
#: stride 1) within 0.1 point (results/tracker_comparison/bonn_mppt-test-shipped); so the shipped matcher
#: is not the default.
DEFAULT_SCORER, DEFAULT_MOTION = "oks", "kalman"
#: The default tracker without a network (no --scorer, no --checkpoint): OKS + Kalman with the Hungarian
#: assignment, OKS's σ times 2 and match threshold 0.1, the (σ scale, threshold) with the lowest mean %IDSW
#: on Bonn *train* over GT and predicted keypoints at strides 1, 2 and 4 (the tuning of
#: results/tracker_comparison/bonn_mppt-test-oks-scale/tuning.md; docs/tracking.md, "Defaults"). An
#: explicit --scorer tracks as the paper does (greedy, COCO's σ) unless told otherwise.
DEFAULT_TRACKER = {"assignment": "hungarian", "oks_scale": 2.0, "match_threshold": 0.1}
#: Each scorer's match threshold without ``--match-threshold``, by motion: OKS's and IoU's tuned on Bonn
#: train with predicted boxes and keypoints at stride 1 (the lowest %IDSW of the tuning grid: OKS in
#: results/tracker_comparison/bonn_mppt-test-practitioner/tuning.md, IoU in
#: results/tracker_comparison/bonn_mppt-test-tuned/tuning.md); a matching network's is the decision point of
#: its own score, 0.5.
DEFAULT_MATCH_THRESHOLDS: dict[tuple[str, str], float] = {
    ("oks", "none"): 0.01,
    ("oks", "velocity"): 0.05,
    ("oks", "kalman"): 0.1,
    ("iou", "none"): 0.1,  # IoU tuned without motion only; its other motions take that value
    ("iou", "velocity"): 0.1,
    ("iou", "kalman"): 0.1,
}
NETWORK_MATCH_THRESHOLD = 0.5


def default_match_threshold(scorer: str, motion: str) -> float:
    """``--match-threshold``'s default for ``scorer`` tracking with ``motion`` (module constants)."""
    return DEFAULT_MATCH_THRESHOLDS.get((scorer, motion), NETWORK_MATCH_THRESHOLD)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``keytrack track``, grouped by topic; their order is the order of ``--help``."""
    _add_input_output_arguments(parser)
    _add_tracker_arguments(parser)
    _add_keypoint_and_frame_arguments(parser)
    _add_network_arguments(parser)


def _add_input_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the predictions come from and the tracked files go, and the pose similarity that links them."""
    renamed_option(
        parser,
        "--data",
        "--input",
        dest="input",
        metavar="DATA",
        required=True,
        help="PoseTrack18-layout folder or file of pose predictions",
    )
    renamed_option(
        parser,
        "--out",
        "--output",
        dest="output",
        metavar="OUT",
        required=True,
        help="folder for the tracked PoseTrack18 files (written whole: filled beside it, then "
        "renamed into place, with a keytrack.manifest of its files' sha256)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an --out folder that already holds files (atomically; without it such "
        "a folder is refused)",
    )
    parser.add_argument(
        "--scorer",
        choices=sorted(SCORERS),
        default=None,
        help="pose similarity (default: pose_entailment with --checkpoint, a pair or a track-level "
        f"matcher; else the default tracker: {DEFAULT_SCORER} with the {DEFAULT_MOTION} motion, the "
        "Hungarian assignment, σ × 2 and threshold 0.1, chosen on Bonn train; on Bonn test it makes fewer ID "
        "switches than every learned matcher at stride 4 and than the shipped matcher "
        f"{shipped_names()[0]} everywhere (results/tracker_comparison/bonn_mppt-test-default, "
        "docs/tracking.md 'Defaults'); an explicit --scorer tracks as the paper does: greedy, COCO's σ)",
    )
    parser.add_argument(
        "--checkpoint",
        type=checkpoint_argument,
        default=None,
        help="training checkpoint of the matching network, or a shipped matcher's name "
        f"({', '.join(shipped_names())}: keytrack.weights, trained on synthetic scenes); needed by "
        "--scorer pose_entailment",
    )


def _add_tracker_arguments(parser: argparse.ArgumentParser) -> None:
    """How the tracker matches poses to tracks: look-back, candidates, assignment, motion, thresholds."""
    parser.add_argument("--delta", type=at_least_one, default=4, help="δ: timesteps looked back (paper: 4)")
    parser.add_argument(
        "--nearest",
        type=at_least_one,
        default=None,
        help="compare with the n spatially nearest poses of each earlier frame only (default: all)",
    )
    parser.add_argument(
        "--assignment",
        choices=sorted(ASSIGNMENTS),
        default=None,
        help="greedy (the paper's, the default with --scorer or --checkpoint) or hungarian (the default "
        "tracker's)",
    )
    parser.add_argument(
        "--motion",
        choices=MOTIONS,
        default=None,
        help="move each candidate by its track's velocity before scoring (velocity), by its "
        "track's constant-velocity Kalman prediction (kalman), or not (none, the paper's "
        "tracker); default: what the checkpoint was trained for (its pairs.motion), "
        f"{DEFAULT_MOTION} for OKS and IoU",
    )
    parser.add_argument(
        "--match-threshold",
        type=float,
        default=None,
        help="a pose whose best track score is below this starts a new track (default: the scorer's "
        "own: "
        + ", ".join(f"{s} {m} {t:g}" for (s, m), t in DEFAULT_MATCH_THRESHOLDS.items())
        + f" (tuned on Bonn train), a network's {NETWORK_MATCH_THRESHOLD:g} (its decision point))",
    )
    parser.add_argument(
        "--detection-threshold",
        type=float,
        default=None,
        metavar="TAU",
        help="assign the poses whose detection score is >= TAU first, then the others "
        "over the tracks left (ByteTrack's two passes; default: one pass, the paper's)",
    )
    add_confidence_and_gate_arguments(parser)


def add_confidence_and_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """Which poses may start a track, and the OKS gate in front of a network (``track``, ``track-video``)."""
    parser.add_argument(
        "--oks-scale",
        type=float,
        default=None,
        metavar="K",
        help="OKS (the scorer, and a network's gate) with every keypoint's σ times K: a wider tolerance "
        f"for people who move between the frames compared (default: {DEFAULT_TRACKER['oks_scale']:g} for "
        "the default tracker, else 1, COCO's σ)",
    )
    parser.add_argument(
        "--new-track-threshold",
        type=float,
        default=None,
        metavar="TAU",
        help="only poses whose detection score is >= TAU start tracks: a pose below it that continues no "
        "track is left out (ByteTrack's rule; default: every pose kept, the paper's)",
    )
    parser.add_argument(
        "--gate",
        type=float,
        nargs=2,
        default=None,
        metavar=("HIGH", "LOW"),
        help="with a network: a pose whose best track has OKS >= HIGH while no other track, and no other "
        "pose with that track, reaches LOW is assigned by OKS without the network (faster; e.g. 0.5 0.1; "
        "default: the network scores every pose)",
    )


def _add_keypoint_and_frame_arguments(parser: argparse.ArgumentParser) -> None:
    """Which keypoints and frames are tracked and written, and the frame size when none is known."""
    parser.add_argument(
        "--keypoint-threshold",
        type=float,
        default=0.0,
        help="remove output keypoints with confidence below this (A.3; default 0 = keep all)",
    )
    parser.add_argument(
        "--min-keypoint-confidence",
        type=float,
        default=0.0,
        help="keypoints below this confidence are invisible to the tracker "
        "(the pose estimator's minimum; default 0 = every keypoint with c > 0)",
    )
    renamed_option(
        parser,
        "--stride",
        "--frame-stride",
        dest="frame_stride",
        metavar="K",
        type=at_least_one,
        default=1,
        help="track every k-th frame only (frames with index %% k == 0); the output holds only those frames",
    )
    parser.add_argument("--split", default=None, help="annotation split under --data (e.g. val)")
    parser.add_argument(
        "--default-frame-size",
        type=float,
        nargs=2,
        default=(1920.0, 1080.0),
        metavar=("W", "H"),
        help="frame size when neither the file nor the image gives it",
    )


def _add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """Where and how the matching network runs (Pose Entailment only): device, batching, precision."""
    parser.add_argument("--device", default="cpu", help="torch device of the matching network")
    parser.add_argument(
        "--batch-size", type=at_least_one, default=16384, help="most pose pairs per network forward"
    )
    parser.add_argument(
        "--videos-at-once",
        type=at_least_one,
        default=1,
        metavar="K",
        help="k videos advance together, their frames' pairs in one network forward (each "
        "video still online and on its own: the same track ids); pays on a GPU",
    )
    parser.add_argument(
        "--precision",
        choices=SCORERS["pose_entailment"].PRECISIONS,
        default="fp32",
        help="the matching network's forward in fp32, or under bf16 autocast",
    )


def resolve_defaults(args: argparse.Namespace) -> None:
    """``--scorer`` and, for OKS and IoU, ``--motion`` where not given (module constants); without
    ``--scorer`` and ``--checkpoint``, the default tracker's assignment, σ scale and match threshold where
    not given (:data:`DEFAULT_TRACKER`), else the paper's greedy assignment and COCO's σ; a match
    threshold still missing waits for the scorer (:func:`default_match_threshold`)."""
    default_tracker = args.scorer is None and not args.checkpoint
    if args.scorer is None:
        args.scorer = "pose_entailment" if args.checkpoint else DEFAULT_SCORER
    if args.motion is None and args.scorer != "pose_entailment":
        args.motion = DEFAULT_MOTION
    default_tracker = default_tracker and args.motion == DEFAULT_MOTION
    for key, paper in (("assignment", "greedy"), ("oks_scale", 1.0), ("match_threshold", None)):
        if getattr(args, key, None) is None:
            setattr(args, key, DEFAULT_TRACKER[key] if default_tracker else paper)


def build_scorer(args: argparse.Namespace):
    """The scorer ``args`` ask for (loads the checkpoint for Pose Entailment)."""
    if args.scorer == "pose_entailment":
        if not args.checkpoint:
            from keytrack.errors import InputError

            raise InputError("--checkpoint is required with --scorer pose_entailment (or --scorer oks, iou)")
        # A matcher on image crops reads the frames of --data (a folder) or of its training data.
        from pathlib import Path

        image_root = args.input if Path(args.input).is_dir() else None
        network = SCORERS["pose_entailment"].from_checkpoint(
            args.checkpoint,
            device=args.device,
            precision=args.precision,
            batch_size=args.batch_size,
            image_root=image_root,
            split=args.split,
        )
        return gated(network, args.gate, args.oks_scale)
    return SCORERS[args.scorer](scale=args.oks_scale) if args.scorer == "oks" else SCORERS[args.scorer]()


def gated(network, gate, oks_scale: float = 1.0):
    """``network`` behind an OKS gate ``(high, low)`` (:mod:`keytrack.tracking.gate`), or itself."""
    if gate is None:
        return network
    from keytrack.tracking.gate import GatedScorer

    return GatedScorer(network, *gate, oks_scale=oks_scale)


def _manifest(args: argparse.Namespace, dataset) -> dict:
    """How the folder was made: the command, its settings, and digests of the checkpoint and input."""
    import sys
    from pathlib import Path

    from keytrack.outputs import digest_files, sha256_file

    settings = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in sorted(vars(args).items())
        if not k.startswith("_") and (v is None or isinstance(v, (str, int, float, bool, tuple, list)))
    }
    sources = [v.source for v in dataset.videos if v.source and Path(v.source).is_file()]
    checkpoint = None
    if args.scorer == "pose_entailment" and args.checkpoint:
        checkpoint = {"path": str(args.checkpoint), "sha256": sha256_file(args.checkpoint)}
    return {
        "command": ["keytrack", *sys.argv[1:]]
        if Path(sys.argv[0]).name == "keytrack"
        else ["keytrack", "track"],
        "settings": settings,
        "checkpoint": checkpoint,
        "input": {"path": str(args.input), "files": len(set(sources)), "sha256": digest_files(sources)},
    }


def _track_with_progress(tracker, dataset, videos_at_once: int):
    """``tracker.track_dataset`` in groups of ``videos_at_once`` videos (each tracked on its own either
    way), a line after each group: how many videos and frames are done, at what rate."""
    import sys

    from keytrack.poses import Dataset

    videos, done, total = [], 0, len(dataset.videos)
    for start in range(0, total, videos_at_once):
        videos += tracker.track_videos(dataset.videos[start : start + videos_at_once], videos_at_once)
        done = len(videos)
        fps = tracker.frames_tracked / tracker.seconds if tracker.seconds > 0 else float("inf")
        print(
            f"tracked {done}/{total} videos ({tracker.frames_tracked} frames, {fps:,.1f} frames/s)",
            end="\r" if sys.stdout.isatty() and done < total else "\n",
            flush=True,
        )
    return Dataset(videos, dict(dataset.skipped))


def run(args: argparse.Namespace) -> int:
    from keytrack.io import read_dataset, write_posetrack18
    from keytrack.outputs import check_output_folder, write_folder
    from keytrack.tracking.tracker import Tracker
    from keytrack.tracking.transforms import apply_keypoint_threshold, drop_track_ids, subsample

    check_output_folder(args.output, overwrite=getattr(args, "overwrite", False))
    resolve_defaults(args)
    scorer = build_scorer(args)
    if args.match_threshold is None:
        from keytrack.pairs import resolve_motion

        motion = resolve_motion(args.motion, scorer, where="keytrack track", known=MOTIONS)
        args.match_threshold = default_match_threshold(args.scorer, motion)
    tracker = Tracker(
        scorer,
        delta=args.delta,
        nearest=args.nearest,
        assignment=args.assignment,
        match_threshold=args.match_threshold,
        min_keypoint_confidence=args.min_keypoint_confidence,
        motion=args.motion,
        detection_threshold=args.detection_threshold,
        new_track_threshold=args.new_track_threshold,
    )
    dataset = read_dataset(args.input, split=args.split, default_frame_size=tuple(args.default_frame_size))
    if not dataset.videos:
        from keytrack.io import DataError

        raise DataError(args.input, "no videos found" + (f" (split {args.split})" if args.split else ""))
    print(f"input: {args.input}: {dataset.report()} (input track ids dropped)")
    dataset = drop_track_ids(dataset)
    if args.frame_stride != 1:
        dataset = subsample(dataset, args.frame_stride)
        print(f"frame stride {args.frame_stride}: {dataset.num_frames} frames kept")

    tracked = _track_with_progress(tracker, dataset, args.videos_at_once)
    tracked = apply_keypoint_threshold(tracked, args.keypoint_threshold)
    with write_folder(args.output, _manifest(args, dataset)) as folder:
        paths = write_posetrack18(tracked, folder)

    fps = tracker.frames_tracked / tracker.seconds if tracker.seconds > 0 else float("inf")
    print(
        f"tracked {tracker.frames_tracked} frames of {len(tracked.videos)} videos with {args.scorer} "
        f"(δ={tracker.delta}, nearest={tracker.nearest}, {tracker.assignment}, motion {tracker.motion}, "
        f"threshold {tracker.match_threshold}"
        + (
            ""
            if tracker.detection_threshold is None
            else f", confident detections first at {tracker.detection_threshold}"
        )
        + ("" if (births := tracker.new_track_threshold) is None else f", new tracks from >= {births}")
        + f"): {fps:,.1f} frames/s"
    )
    if hasattr(scorer, "settled_poses"):
        asked = scorer.settled_poses + scorer.asked_poses
        print(f"gate: {scorer.settled_poses:,} of {asked:,} poses settled by OKS without the network")
    if hasattr(scorer, "pairs_scored"):
        pps = scorer.pairs_scored / scorer.network_seconds if scorer.network_seconds > 0 else 0.0
        print(
            f"network: {scorer.pairs_scored:,} pairs in {scorer.forwards} forwards: {pps:,.0f} pairs/s "
            f"(tokenizing included, device {args.device})"
        )
    print(f"wrote {len(paths)} PoseTrack18 files to {args.output}")
    return 0
