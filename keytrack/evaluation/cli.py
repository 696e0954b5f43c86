"""``keytrack evaluate --gt DIR --pred DIR [--json OUT]``: PoseTrack evaluation, as poseval.

Reads one annotation file per video from each folder (prediction files named like the GT ones),
prints the PoseTrack table (AP, MOTA and %IDSW per body part, then MOTA/MOTP/precision/recall
totals) and optionally writes every per-joint number as JSON.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, help="folder (or file) of ground-truth annotations")
    parser.add_argument("--pred", required=True, help="folder (or file) of predictions, one per video")
    parser.add_argument("--json", default=None, metavar="OUT",
                        help="also write all per-joint numbers to this JSON file")
    parser.add_argument("--no-ap", action="store_true", help="skip AP (pose estimation)")
    parser.add_argument("--no-mot", action="store_true",
                        help="skip MOT metrics (for predictions without track ids)")


def _read_dataset(path: str):
    """The project's reader (imported here only: reading files is not part of the metric).

    Poses without any present keypoint are kept: poseval keeps them too, and they matter (a GT
    person alone keeps its frame scored, a keypoint-less prediction keeps its frame from counting
    as one without predictions).
    """
    from keytrack.io import read_dataset
    return read_dataset(path, keep_empty_poses=True)


def run(args: argparse.Namespace) -> int:
    from keytrack.evaluation import evaluate

    gt = _read_dataset(args.gt)
    pred = _read_dataset(args.pred)
    print(f"ground truth: {gt.report()}")
    print(f"prediction:   {pred.report()}")
    result = evaluate(gt, pred, compute_ap=not args.no_ap, compute_mot=not args.no_mot)
    print(f"scored {result.num_videos} videos, {result.num_frames} frames "
          f"({result.num_mot_frames} for MOT)\n")
    print(result.to_markdown())
    if args.json:
        path = result.write_json(args.json)
        print(f"\nwrote {path}")
    return 0
