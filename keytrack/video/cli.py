"""``keytrack track-video``: detect, estimate, TOKS and track the people of a video (§3.1, §3.3, A.3, A.4).

``keytrack track-video INPUT --out OUT`` runs :func:`keytrack.video.pipeline.run_pipeline` on a
video file or a folder of frames and writes ``OUT/<name>.json`` (PoseTrack18), ``OUT/<name>.mp4``
or ``.gif`` (skeletons coloured by track id, ids drawn) and ``OUT/<name>.timing.md`` (frames/s of
each stage), and prints the timing table and TOKS' counters (people recovered that the detector
missed).

* ``--estimator yolo``: YOLO11n-pose from the optional ``yolo`` extra
  (:mod:`keytrack.estimators.yolo`; AGPL-3.0 via Ultralytics, not installed by default).
* Pose similarity: the Pose Entailment network of ``--checkpoint`` (§3.2); **without a
  checkpoint the OKS scorer is used** (the learning-free baseline of Table 2), and the command
  says so.
* ``--no-toks``: the detector's poses only (Table 2's "Det."), without the temporal boxes.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from keytrack.cli import at_least_one, renamed_option
from keytrack.errors import InputError
from keytrack.tracking.cli import add_confidence_and_gate_arguments
from keytrack.weights import checkpoint_argument
from keytrack.weights import names as shipped_names

ESTIMATORS = ("yolo",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``keytrack track-video``, grouped by topic; their order is the order of ``--help``."""
    _add_estimator_arguments(parser)
    _add_toks_tracker_arguments(parser)
    _add_output_arguments(parser)
    _add_runtime_arguments(parser)


def _add_estimator_arguments(parser: argparse.ArgumentParser) -> None:
    """The input, the output folder, and the detector and pose estimator that read the frames."""
    parser.add_argument("input", help="video file (mp4, avi, anything FFmpeg reads) or folder of frames")
    renamed_option(
        parser, "--out", "--output", dest="output", metavar="OUT", required=True, help="output folder"
    )
    parser.add_argument(
        "--estimator",
        choices=ESTIMATORS,
        default="yolo",
        help="detector + pose estimator (yolo: YOLO11n-pose, optional extra '.[yolo]')",
    )
    parser.add_argument(
        "--imgsz",
        type=int,
        default=1280,
        help="detector input size, longest side (default 1280: people ≈ 60 px tall are missed at 640)",
    )
    parser.add_argument(
        "--crop-size",
        type=int,
        default=256,
        help="pose estimator input size for each dilated box (default 256)",
    )
    parser.add_argument(
        "--estimate-all-boxes",
        action="store_true",
        help="estimate every detector box on its crop too, instead of reusing the pose "
        "the detector's pass already gave it (slower)",
    )


def _add_toks_tracker_arguments(parser: argparse.ArgumentParser) -> None:
    """Temporal OKS and the tracker: scorer, box dilation, score thresholds, look-back."""
    parser.add_argument(
        "--checkpoint",
        type=checkpoint_argument,
        default=None,
        help="Pose Entailment checkpoint, or a shipped matcher's name "
        f"({', '.join(shipped_names())}); default: none, the OKS scorer tracks",
    )
    parser.add_argument("--no-toks", action="store_true", help="detector boxes only, no Temporal OKS (§3.3)")
    parser.add_argument("--alpha", type=float, default=1.25, help="TOKS box dilation α (A.1: 1.25)")
    parser.add_argument("--oks-threshold", type=float, default=0.35, help="TOKS OKS threshold (A.4: 0.35)")
    parser.add_argument("--box-score", type=float, default=0.2, help="minimum detector box score (A.4: 0.2)")
    parser.add_argument(
        "--keypoint-score",
        type=float,
        default=0.1,
        help="minimum keypoint confidence for TOKS and the tracker (A.4: 0.1)",
    )
    parser.add_argument(
        "--delta", type=at_least_one, default=4, help="δ: timesteps the tracker looks back (paper: 4)"
    )
    parser.add_argument(
        "--match-threshold",
        type=float,
        default=None,
        help="a pose whose best track score is below this starts a new track "
        "(default: the scorer's own, as keytrack track's)",
    )
    parser.add_argument(
        "--detection-threshold",
        type=float,
        default=None,
        metavar="TAU",
        help="assign the poses scoring >= TAU, and the tracks they made, first "
        "(keytrack track --detection-threshold; default: one pass, the paper's)",
    )
    add_confidence_and_gate_arguments(parser)


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """What is written and drawn, and which frames of the input are processed."""
    parser.add_argument(
        "--keypoint-threshold",
        type=float,
        default=0.0,
        help="remove output keypoints below this confidence (A.3; default 0 = keep all)",
    )
    parser.add_argument(
        "--draw-threshold",
        type=float,
        default=0.3,
        help="draw keypoints with at least this confidence (default 0.3)",
    )
    parser.add_argument(
        "--max-frames", type=at_least_one, default=None, help="process at most this many (kept) frames"
    )
    parser.add_argument("--stride", type=at_least_one, default=1, metavar="K", help="keep every k-th frame")
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frame rate of the input (default: the video's own; 10 for a folder)",
    )
    parser.add_argument(
        "--format",
        choices=("mp4", "gif", "none"),
        default="mp4",
        dest="fmt",
        help="rendered video format (default mp4; none: no video)",
    )
    parser.add_argument(
        "--render-scale", type=float, default=1.0, help="size of the rendered video (default 1)"
    )


def _add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the models run, and whether progress bars show."""
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="torch device of the models")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_models(args: argparse.Namespace):
    """``(detector, estimator)`` for ``--estimator``."""
    if args.estimator == "yolo":
        from keytrack.estimators.yolo import YoloDetector, YoloEstimator, YoloModel

        model = YoloModel(device=args.device)
        detector = YoloDetector(imgsz=args.imgsz, conf=min(0.1, args.box_score), model=model)
        estimator = YoloEstimator(
            imgsz=args.crop_size, model=model, share_detections=None if args.estimate_all_boxes else detector
        )
        return detector, estimator
    raise InputError(f"unknown estimator {args.estimator!r}")


def build_tracker(args: argparse.Namespace):
    from keytrack.tracking import OKSScorer, PoseEntailmentScorer, Tracker
    from keytrack.tracking.cli import (
        DEFAULT_MOTION,
        DEFAULT_SCORER,
        DEFAULT_TRACKER,
        default_match_threshold,
        gated,
    )

    threshold = args.match_threshold
    if args.checkpoint:
        network = PoseEntailmentScorer.from_checkpoint(args.checkpoint, device=args.device)
        name, motion = "pose_entailment", str(getattr(network, "motion", "none"))
        scorer, assignment = gated(network, args.gate, args.oks_scale or 1.0), "greedy"
        threshold = default_match_threshold(name, motion) if threshold is None else threshold
    else:  # keytrack track's default tracker
        scale = DEFAULT_TRACKER["oks_scale"] if args.oks_scale is None else args.oks_scale
        scorer, name, motion = OKSScorer(scale=scale), DEFAULT_SCORER, DEFAULT_MOTION
        assignment = DEFAULT_TRACKER["assignment"]
        threshold = DEFAULT_TRACKER["match_threshold"] if threshold is None else threshold
    tracker = Tracker(
        scorer,
        delta=args.delta,
        assignment=assignment,
        match_threshold=threshold,
        motion=motion,
        min_keypoint_confidence=args.keypoint_score,
        detection_threshold=args.detection_threshold,
        new_track_threshold=args.new_track_threshold,
    )
    return tracker, name


def run(args: argparse.Namespace) -> int:
    """Run the whole pipeline on ``args.input`` as the options say, write its outputs and print
    the timing table and counters; 2 when the estimator's optional extra is not installed."""
    from keytrack.video.frames import open_frames
    from keytrack.video.pipeline import StageTimer, TimedEstimator, run_pipeline

    if args.threads:
        import torch

        torch.set_num_threads(int(args.threads))
    source = open_frames(args.input, stride=args.stride, max_frames=args.max_frames, fps=args.fps)
    try:
        detector, estimator = build_models(args)
    except ImportError as err:
        print(f"keytrack track-video: error: {err}", file=sys.stderr)
        return 2
    tracker, scorer_name = build_tracker(args)
    if not args.checkpoint:
        print(
            "keytrack track-video: no --checkpoint: tracking with the OKS scorer "
            f"(match threshold {tracker.match_threshold}); pass a Pose Entailment checkpoint "
            "for §3.2's network"
        )

    timer = StageTimer()
    est = TimedEstimator(estimator, timer)
    stepper = _stepper(args, detector, est, timer)
    print(
        f"input: {source.path} ({source.width} x {source.height}, {source.fps:g} fps, "
        f"{source.expected_frames if source.expected_frames is not None else '?'} frames to process)"
    )
    result = run_pipeline(
        source,
        stepper,
        tracker,
        args.output,
        timer=timer,
        estimator=est,
        fmt=None if args.fmt == "none" else args.fmt,
        render_scale=args.render_scale,
        draw_threshold=args.draw_threshold,
        keypoint_threshold=args.keypoint_threshold,
        progress=not args.no_progress,
        header=_header(args, tracker, scorer_name),
    )
    _print_summary(timer, result, estimator)
    return 0


def _stepper(args: argparse.Namespace, detector, est, timer):
    """TOKS over the timed ``detector`` and estimator ``est``, or the detector's poses alone with
    ``--no-toks``."""
    from keytrack.toks import TOKS, DetectorOnly
    from keytrack.video.pipeline import TimedDetector

    det = TimedDetector(detector, timer)
    thresholds = dict(box_score=args.box_score, keypoint_score=args.keypoint_score)
    return (
        DetectorOnly(det, est, **thresholds)
        if args.no_toks
        else TOKS(det, est, alpha=args.alpha, oks_threshold=args.oks_threshold, **thresholds)
    )


def _header(args: argparse.Namespace, tracker, scorer_name: str) -> str:
    """The timing file's header: the command as typed and the settings that shape the speed."""
    command = (
        "keytrack track-video " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 1 and sys.argv[1] == "track-video"
        else f"keytrack track-video {args.input}"
    )
    return (
        f"`{command}`\n\nestimator {args.estimator} "
        f"(detector input {args.imgsz}, crops {args.crop_size}), "
        f"{'detector only' if args.no_toks else f'TOKS (α {args.alpha}, OKS {args.oks_threshold})'}, "
        f"tracker {scorer_name} (δ {tracker.delta}, threshold {tracker.match_threshold}), "
        f"torch threads {args.threads or 'default'}, device {args.device}."
    )


def _print_summary(timer, result, estimator) -> None:
    """Print the timing table, TOKS' counters, the estimator's reuse of detector poses, the
    totals and the files written."""
    print(timer.table(result.wall_seconds, result.frames))
    stats = result.counters
    if stats:
        keys = (
            "frames",
            "detections",
            "propagated",
            "estimated",
            "poses",
            "recovered",
            "duplicates",
            "replaced",
        )
        print("TOKS counters: " + ", ".join(f"{k} {stats[k]}" for k in keys if k in stats))
    shared = getattr(estimator, "poses_shared", None)
    if shared is not None:
        print(
            f"estimator: {estimator.crops_estimated} boxes estimated on crops, {shared} detector poses reused"
        )
    print(f"{result.frames} frames, {result.poses} poses, {result.tracks} tracks")
    print(
        f"wrote {result.json_path}"
        + (f", {result.video_path}" if result.video_path else "")
        + f", {result.timing_path}"
    )
