"""``keytrack perturb``: write predicted poses, or print the AP and oracle-track MOTA they yield."""

from __future__ import annotations

import argparse

from keytrack.perturb.config import SETTINGS, PerturbConfig
from keytrack.perturb.protocol import perturb, with_oracle_track_ids
from keytrack.poses import Dataset

__all__ = ["evaluate_protocol", "add_arguments", "run"]


def evaluate_protocol(
    gt: Dataset,
    settings: tuple[str, ...] = SETTINGS,
    seeds: tuple[int, ...] = (0,),
    thresholds: tuple[float, ...] = (0.0,),
    config: PerturbConfig | None = None,
) -> list[dict]:
    """AP and oracle-track MOTA of each setting, seed and keypoint threshold (Figure 4, Table 4).

    Runs :func:`perturb`, removes keypoints below each confidence threshold (A.3), keeps the
    ground-truth identities (:func:`with_oracle_track_ids`) and scores with
    :func:`keytrack.evaluation.evaluate`. One row per (setting, seed, threshold): the AP columns
    (Head ... Total) and ``MOTA``.
    """
    from keytrack.evaluation import evaluate
    from keytrack.tracking.transforms import apply_keypoint_threshold

    rows = []
    for setting in settings:
        for seed in seeds:
            predicted = with_oracle_track_ids(perturb(gt, setting, seed, config, keep_track_ids=True))
            for tau in thresholds:
                result = evaluate(gt, apply_keypoint_threshold(predicted, tau))
                rows.append(
                    {
                        "setting": setting,
                        "seed": seed,
                        "threshold": tau,
                        **{f"AP {k}": v for k, v in result.columns("ap").items()},
                        "MOTA": result.columns("mota")["Total"],
                    }
                )
    return rows


def _markdown(rows: list[dict]) -> str:
    from keytrack.tables import Column, markdown_table

    return markdown_table(rows, [Column(k, fmt=str) if k == "threshold" else k for k in rows[0]]) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``keytrack perturb``: predicted poses from ground truth (or the AP / MOTA they yield)."""
    parser.add_argument(
        "--data",
        default=None,
        help="ground truth to perturb, read by keytrack.io (default: synthetic scenes)",
    )
    parser.add_argument("--split", default=None, help="annotation split under --data (e.g. val)")
    parser.add_argument("--videos", type=int, default=20, help="number of synthetic videos (without --data)")
    parser.add_argument("--synth-seed", type=int, default=0, help="seed of the synthetic scenes")
    parser.add_argument(
        "--setting",
        choices=[*SETTINGS, "all"],
        default="all",
        help="Figure 4's keypoint source (default: all three)",
    )
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="perturbation seed(s)")
    parser.add_argument(
        "--out", default=None, help="write PoseTrack18 files to OUT/<setting>/ (first seed only)"
    )
    parser.add_argument(
        "--keep-track-ids",
        action="store_true",
        help="keep ground-truth track ids on predictions of annotated people",
    )
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="print per-joint AP and oracle-track MOTA (keytrack.evaluation)",
    )
    parser.add_argument(
        "--thresholds",
        type=float,
        nargs="+",
        default=[0.0],
        help="keypoint confidence thresholds to evaluate at (A.3, Table 4)",
    )


def run(args: argparse.Namespace) -> int:
    if args.data is not None:
        from keytrack.io import read_dataset

        gt = read_dataset(args.data, split=args.split)
    else:
        from keytrack.synth import generate_dataset

        gt = generate_dataset(args.videos, args.synth_seed)
    print(
        f"ground truth: {args.data or f'synthetic ({args.videos} videos, seed {args.synth_seed})'}: "
        f"{gt.report()}"
    )
    settings = SETTINGS if args.setting == "all" else (args.setting,)
    if args.out is not None:
        from pathlib import Path

        from keytrack.io import write_posetrack18

        for setting in settings:
            predicted = perturb(gt, setting, args.seed[0], keep_track_ids=args.keep_track_ids)
            paths = write_posetrack18(predicted, Path(args.out) / setting)
            print(
                f"{setting} (seed {args.seed[0]}): {predicted.report()}; wrote {len(paths)} files "
                f"to {Path(args.out) / setting}"
            )
    if args.evaluate:
        rows = evaluate_protocol(gt, settings, tuple(args.seed), tuple(args.thresholds))
        print(_markdown(rows), end="")
    if args.out is None and not args.evaluate:
        print("nothing to do: give --out and/or --evaluate")
        return 2
    return 0
