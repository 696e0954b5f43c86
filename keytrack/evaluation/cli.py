"""``keytrack evaluate --gt DIR --pred DIR [--json OUT] [--metrics poseval,hota,idf1]``: PoseTrack
evaluation, as poseval, and the PoseTrack21 kit's keypoint HOTA and IDF1 on the same predictions.

Reads one annotation file per video from each folder (prediction files named like the GT ones),
prints the PoseTrack table (AP, MOTA and %IDSW per body part, then MOTA/MOTP/precision/recall
totals) and optionally writes every per-joint number as JSON.

``--metrics``: ``poseval`` (AP, MOTA, %IDSW: :func:`keytrack.evaluation.evaluate`), ``hota`` (HOTA,
DetA, AssA, LocA as the PoseTrack21 kit's ``HOTAeypoints``: :func:`keytrack.evaluation.hota.hota`) and
``idf1`` (IDF1, IDP, IDR with motmetrics on poseval's per-joint matching); each adds rows to the
printed table (per body part: the mean of its joints; Total as each metric defines it) and a key
to the JSON (``hota``, ``idf1``: per joint and total).

``--complete-head-boxes`` draws the head box of every GT pose that lacks one
(:func:`keytrack.evaluation.head_boxes.complete_head_boxes`), which PCKh matching needs: a split annotated
with few (Bonn train) can then be scored; without it such a pose is refused, naming its file and frame.

``--json`` is checked before any work (a folder, or a parent that is a file or not writable, is
refused), and a ``--pred`` folder written by ``keytrack track`` is checked against its manifest
(:func:`keytrack.outputs.verify_manifest`): a file added, missing or changed is refused; a folder
without a manifest is scored as it is.

``--stride K`` scores predictions made by ``keytrack track --stride K``, which hold
only every ``K``-th frame: the ground truth is subsampled with the same
:func:`keytrack.tracking.subsample` (frames whose index is a multiple of ``K``, renumbered
``index // K``) before it is compared with them.
"""

from __future__ import annotations

import argparse

from keytrack.cli import renamed_option
from keytrack.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, help="folder (or file) of ground-truth annotations")
    parser.add_argument("--pred", required=True, help="folder (or file) of predictions, one per video")
    parser.add_argument(
        "--json", default=None, metavar="OUT", help="also write all per-joint numbers to this JSON file"
    )
    parser.add_argument("--no-ap", action="store_true", help="skip AP (pose estimation)")
    parser.add_argument(
        "--no-mot", action="store_true", help="skip MOT metrics (for predictions without track ids)"
    )
    parser.add_argument(
        "--metrics",
        default="poseval",
        metavar="LIST",
        help="comma-separated: poseval (AP, MOTA, %%IDSW), hota (PoseTrack21 kit's keypoint "
        "HOTA, DetA, AssA, LocA), idf1 (IDF1, IDP, IDR); default poseval",
    )
    parser.add_argument(
        "--complete-head-boxes",
        action="store_true",
        help="draw the head box of every ground-truth pose that lacks one, as PoseTrack draws them "
        "(keytrack.evaluation.head_boxes; for splits annotated with few, such as Bonn train), "
        "instead of refusing them",
    )
    renamed_option(
        parser,
        "--stride",
        "--frame-stride",
        dest="frame_stride",
        type=int,
        default=1,
        metavar="K",
        help="the predictions come from `keytrack track --stride K`: score them "
        "against every K-th ground-truth frame (frames with index %% K == 0; default 1)",
    )


def _read_dataset(path: str):
    """The project's reader (imported here only: reading files is not part of the metric).

    Poses without any present keypoint are kept: poseval keeps them too, and they matter (a GT
    person alone keeps its frame scored, a keypoint-less prediction keeps its frame from counting
    as one without predictions).
    """
    from keytrack.io import read_dataset

    return read_dataset(path, keep_empty_poses=True)


def _subsample_gt(gt, pred, k: int):
    """``gt`` at ``1/k`` the frame rate, as ``keytrack track --stride k`` wrote ``pred``.

    A prediction video that still holds every frame of its ground truth was not tracked with that
    stride; it is refused with the video's file named, rather than scored against the wrong frames.
    """
    from keytrack.tracking import subsample

    sub = subsample(gt, k)
    full = {v.name: len(v.frames) for v in gt.videos}
    kept = {v.name: len(v.frames) for v in sub.videos}
    for video in pred.videos:
        n = len(video.frames)
        if video.name in full and n == full[video.name] != kept[video.name]:
            raise InputError(
                f"{video.source or video.name}: the prediction has all {n} frames of "
                f"video {video.name!r}, but --stride {k} keeps {kept[video.name]}; predictions "
                f"for --stride {k} come from `keytrack track --stride {k}`"
            )
    return sub


def run(args: argparse.Namespace) -> int:
    from keytrack.evaluation import evaluate
    from keytrack.outputs import check_output_file, verify_manifest

    stride = int(getattr(args, "frame_stride", 1))  # namespaces built without the option: every frame
    if stride < 1:
        raise InputError(f"--stride must be >= 1, got {stride}")
    if args.json:
        check_output_file(args.json, option="--json")
    if verify_manifest(args.pred) is not None:
        print(f"prediction files agree with {args.pred}'s manifest")
    gt = _read_dataset(args.gt)
    pred = _read_dataset(args.pred)
    print(f"ground truth: {gt.report()}")
    print(f"prediction:   {pred.report()}")
    if getattr(args, "complete_head_boxes", False):
        from keytrack.evaluation.head_boxes import complete_head_boxes

        gt, drawn = complete_head_boxes(gt)
        print(f"--complete-head-boxes: drew {drawn} missing ground-truth head boxes")
    if stride != 1:
        gt = _subsample_gt(gt, pred, stride)
        print(f"frame stride {stride}: {gt.num_frames} ground-truth frames kept")
    metrics = _metrics(getattr(args, "metrics", "poseval"))
    extra: dict = {}
    if "hota" in metrics or "idf1" in metrics:
        from keytrack.evaluation.hota import HOTA_METRICS, ID_METRICS, hota

        h = hota(gt, pred, compute_idf1="idf1" in metrics, progress=_progress_printer("HOTA"))
        groups = {"hota": HOTA_METRICS, "idf1": ID_METRICS}
        from keytrack.evaluation.table import json_number

        # NaN (a joint never annotated, as Bonn's nose) is written as null, like poseval's numbers
        extra = {
            group: {
                name: {
                    "per_joint": dict(zip(h["joints"], map(json_number, h["per_joint"][name]))),
                    "total": json_number(h["total"][name]),
                }
                for name in names
            }
            for group, names in groups.items()
            if group in metrics
        }
    if "poseval" in metrics:
        result = evaluate(
            gt, pred, compute_ap=not args.no_ap, compute_mot=not args.no_mot, progress=_progress_printer()
        )
        print(
            f"scored {result.num_videos} videos, {result.num_frames} frames "
            f"({result.num_mot_frames} for MOT)\n"
        )
        print(result.to_markdown())
        out = result.to_dict()
    else:
        out = {}
    if extra:
        print("\n" + _extra_table(extra))
    if args.json:
        from keytrack.io.jsonfile import write_json_atomic

        path = write_json_atomic({**out, **extra}, args.json)
        print(f"\nwrote {path}")
    return 0


METRIC_GROUPS = ("poseval", "hota", "idf1")


def _metrics(text: str) -> set[str]:
    chosen = {m.strip() for m in str(text).split(",") if m.strip()}
    bad = chosen - set(METRIC_GROUPS)
    if bad or not chosen:
        raise InputError(
            f"--metrics: unknown {sorted(bad) or 'nothing'}; choose from {', '.join(METRIC_GROUPS)}"
        )
    return chosen


def _extra_table(extra: dict) -> str:
    """HOTA / IDF1 rows in poseval's body-part columns (a part: the mean of its joints)."""
    import numpy as np

    from keytrack.evaluation import POSEVAL_JOINTS
    from keytrack.evaluation.table import group_columns, markdown_table

    rows = {}
    for group in extra.values():
        for name, values in group.items():
            per_joint = np.array([values["per_joint"][j] for j in POSEVAL_JOINTS])
            rows[name] = group_columns(per_joint, values["total"])
    return markdown_table(rows)


def _progress_printer(what: str = "scoring", every: int = 10):
    """``evaluate``'s progress: one line redrawn on a terminal, else a line every ``every`` videos and
    at the end (a log keeps a handful of lines)."""
    import sys

    tty = sys.stdout.isatty()

    def show(done: int, total: int, frames: int) -> None:
        if tty or done % every == 0 or done == total:
            end = "\r" if tty and done < total else "\n"
            print(f"{what}: {done}/{total} videos ({frames} frames)", end=end, flush=True)

    return show
