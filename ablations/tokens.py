"""Embedding schemes of the matching network (§3.2, §5.1, Table 3).

    python -m ablations.tokens                                          # quick: synthetic, small budget
    python -m ablations.tokens --data ../shared/data/bonn_mppt          # the data's train / test split
    python -m ablations.tokens --profile full --device cuda             # the paper's training (GPU)

Table 3 trains the Transformer Matching Network with five combinations of its token embeddings
(absolute Position, Type, Segment, relative Position: the keypoint's offset from its pose's centre)
and reports the match accuracy of pose pairs; A.4 says the ablations of §5.1 were run on predicted
boxes and predicted keypoints, and that match accuracy is "similar to 1 - %IDSW". For each scheme
(``experiments/tokens_<scheme>.yaml``) and each training seed this module

1. trains the network (:func:`keytrack.train.train` via :func:`ablations.common.train_or_reuse`,
   so a finished run of the same configuration is reused) and records its best validation match
   accuracy (balanced pairs of held-out videos, ``best_val_acc``);
2. tracks the evaluation split (the disjoint synthetic test set, or ``--data``'s test split) with
   it, on predicted boxes and predicted keypoints drawn once with a fixed perturbation seed
   (:func:`keytrack.perturb.perturb`), δ = 4, greedy assignment, keypoints below 0.57 removed
   before scoring (A.3), and records %IDSW Total and MOTA;
3. writes ``results/tokens/table.md`` / ``table.csv`` (``.../<data>-<split>/`` with ``--data``,
   ``.../full/`` below for the full profile): one row per scheme, mean ± std over seeds, Table 3's
   match accuracy beside ours.

Profiles are training budgets. ``quick`` adds the overrides of ``experiments/ablation_quick.yaml``
(500 steps of batch 64 at lr 1e-3, about a minute a run on 2 CPU cores) and names the runs
``<data>-quick-seed<k>``; ``full`` trains each scheme as the paper does (experiment ``paper``:
25 epochs over every training pair), meant for GPUs. Every training and every tracking is a cached
run (:class:`ablations.common.RunCache`): running the command again does only what is missing, and
a failed run is shown as failed in the table without stopping the others.
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ablations.common import (Column, Profile, RunCache, RunRecord, add_run_arguments, budget_file_overrides,
                              describe_budget, mean_std, write_table)
from ablations.tracking_ablation import (PAPER_SETTING, PROFILES, Result, TrainAndTrack, failure_status, finish,
                                        paired_difference)
from ablations.tracker_comparison import PAPER_KEYPOINT_THRESHOLD, POSE_ENTAILMENT_THRESHOLD, SETTING_LABELS
from keytrack.perturb import SETTINGS
from keytrack.poses import Dataset

log = logging.getLogger("ablations.tokens")

ABLATION = "tokens"

#: Table 3's schemes in the paper's row order; scheme ``s`` is ``experiments/tokens_<s>.yaml``.
SCHEMES: tuple[str, ...] = ("pos_type", "pos_segment", "pos_type_segment", "type_segment_rel", "all")
#: The token kinds (``tokens.<kind>`` config keys) and Table 3's column names.
TOKEN_KINDS: dict[str, str] = {"position": "Abs. Position", "type": "Type", "segment": "Segment",
                               "relative_position": "Rel. Position"}
#: KeyTrack's scheme (Table 3's "ours"), the reference of the paired differences.
REFERENCE_SCHEME = "pos_type_segment"
#: The experiment file whose training settings make the quick profile's budget.
QUICK_BUDGET = "ablation_quick"


@dataclass
class Options:
    """Everything the tokens ablation depends on (the command-line options).

    ``seeds`` are training seeds (each also draws its own train/val split of videos); the tracked
    predictions are drawn once, with ``perturb_seed``, so every network tracks the same poses.
    """

    data: str | None = None
    eval_split: str | None = None
    out: str | None = None
    profile: str = "quick"
    seeds: tuple[int, ...] = (0, 1, 2)
    schemes: tuple[str, ...] = SCHEMES
    setting: str = PAPER_SETTING
    perturb_seed: int = 0
    delta: int = 4
    match_threshold: float = POSE_ENTAILMENT_THRESHOLD
    keypoint_threshold: float = PAPER_KEYPOINT_THRESHOLD
    nearest: int | None = None
    train_overrides: tuple[str, ...] = ()
    synthetic_test_videos: int = 20
    device: str = "cpu"
    batch_size: int = 16384
    threads: int | None = None
    retry_failed: bool = True
    wait_for_training: bool = True

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        if self.profile not in PROFILES:
            raise ValueError(f"profile: expected one of {list(PROFILES)}, got {self.profile!r}")
        if not self.seeds or min(self.seeds) < 0 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct integers >= 0, got {list(self.seeds)}")
        bad = [s for s in self.schemes if s not in SCHEMES]
        if bad or not self.schemes:
            raise ValueError(f"schemes: unknown {bad}; expected some of {list(SCHEMES)}")
        if self.setting not in SETTINGS:
            raise ValueError(f"setting: unknown {self.setting!r}; expected one of {list(SETTINGS)}")
        if self.perturb_seed < 0 or self.delta < 1:
            raise ValueError(f"perturb_seed must be >= 0 and delta >= 1, got {self.perturb_seed}, "
                             f"{self.delta}")
        if not 0.0 <= self.keypoint_threshold <= 1.0 or not 0.0 <= self.match_threshold <= 1.0:
            raise ValueError("keypoint_threshold and match_threshold must lie in [0, 1]")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


# -- configuration ------------------------------------------------------------------------------------

def experiment_name(scheme: str) -> str:
    """The experiment file of a scheme: ``tokens_<scheme>``."""
    return f"tokens_{scheme}"


def scheme_tokens(scheme: str) -> dict[str, bool]:
    """The token kinds a scheme's experiment file switches on (``position``, ``type``, ...)."""
    from keytrack.config import load_config

    tokens = load_config([f"experiment={experiment_name(scheme)}"]).tokens
    return {kind: bool(tokens[kind]) for kind in TOKEN_KINDS}


def scheme_label(flags: dict[str, bool]) -> str:
    """``"Abs. Position + Type + Segment"`` for the kinds switched on."""
    return " + ".join(name for kind, name in TOKEN_KINDS.items() if flags[kind])


def budget_overrides(profile: str) -> list[str]:
    """``key=value`` overrides of the training budget: ``experiments/ablation_quick.yaml`` (less its
    ``experiment`` name) for ``quick``, none for ``full`` (the paper's training of the scheme's file)."""
    return [] if profile == "full" else budget_file_overrides(QUICK_BUDGET)


def training_overrides(opts: Options, profile: Profile, seed: int) -> list[str]:
    """Overrides of a scheme's experiment for one training seed: data, budget, seed, run name."""
    from keytrack.config import data_tag, load_config

    overrides = [*profile.train_overrides(), *budget_overrides(opts.profile), f"seed={seed}"]
    if opts.profile != "full":
        cfg = load_config([*overrides, *opts.train_overrides])
        overrides.append(f"run_name={data_tag(cfg.data)}-{opts.profile}-seed{seed}")
    return [*overrides, *opts.train_overrides]


def budget_description(opts: Options) -> str:
    """How the networks were trained, for the table notes."""
    from keytrack.config import load_config

    cfg = load_config([f"experiment={experiment_name(opts.schemes[0])}", *budget_overrides(opts.profile),
                       *opts.train_overrides])
    text = describe_budget(cfg)
    if opts.profile == "full":
        return f"Training: full profile, the paper's (A.4): {text}."
    return (f"Training: quick profile (experiments/{QUICK_BUDGET}.yaml added to each scheme's file): {text}; "
            "the paper trains 25 epochs over every pair (--profile full).")


# -- runs ---------------------------------------------------------------------------------------------

def _paper_accuracy(flags: dict[str, bool]) -> float | None:
    from keytrack.reference import paper_results

    keys = {"position": "absolute_position", "type": "type", "segment": "segment",
            "relative_position": "relative_position"}
    for row in paper_results()["embedding_ablation"]["rows"]:
        if all(bool(row[keys[k]]) == flags[k] for k in TOKEN_KINDS):
            return float(row["value"])
    return None


def run_tokens(opts: Options, *, train_dataset: Dataset | None = None,
               eval_gt: Dataset | None = None) -> Result:
    """Train and track every (scheme, seed) of ``opts`` (or reuse them) and write the table.

    ``train_dataset`` replaces the training data of the configs (synthetic default or
    ``--data``'s train split); ``eval_gt`` the evaluation ground truth.
    """
    import torch

    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    profile = Profile.from_data(opts.data, opts.eval_split, synthetic_eval_videos=opts.synthetic_test_videos)
    out = Path(opts.out) if opts.out else \
        profile.results_dir(ABLATION) / ("full" if opts.profile == "full" else "")
    cache = RunCache(out / "runs", retry_failed=opts.retry_failed)
    eval_description = profile.describe("eval") if eval_gt is None else "ground truth given by the caller"
    eval_gt = profile.load_eval() if eval_gt is None else eval_gt
    cells = TrainAndTrack(cache, eval_gt, setting=opts.setting, perturb_seed=opts.perturb_seed, delta=opts.delta,
                          match_threshold=opts.match_threshold, keypoint_threshold=opts.keypoint_threshold,
                          nearest=opts.nearest, device=opts.device, train_dataset=train_dataset,
                          wait=opts.wait_for_training)
    kp_threshold = cells.keypoint_threshold

    trainings: dict[tuple[str, int], RunRecord] = {}
    trackings: dict[tuple[str, int], RunRecord] = {}
    total = len(opts.schemes) * len(opts.seeds)
    done = 0
    for seed in opts.seeds:
        overrides = training_overrides(opts, profile, seed)
        for scheme in opts.schemes:
            done += 1
            key = f"train-{scheme}-seed{seed}"
            log.info("[%d/%d] %s: training (%s)", done, total, key, opts.profile)
            trainings[(scheme, seed)] = trained = cells.train(key, experiment_name(scheme), overrides)
            log.info("[%d/%d] %s: tracking", done, total, key)
            trackings[(scheme, seed)] = cells.track(f"track-{scheme}-seed{seed}", trained, opts.batch_size)

    def val_acc(result: dict) -> float | None:
        return None if result.get("best_val_acc") is None else 100 * result["best_val_acc"]

    def idsw(result: dict) -> float:
        return result["idsw"]["Total"]

    reference = REFERENCE_SCHEME if REFERENCE_SCHEME in opts.schemes else None
    rows = []
    failures = []
    for scheme in opts.schemes:
        flags = scheme_tokens(scheme)
        trains = [trainings[(scheme, s)] for s in opts.seeds]
        tracks = [trackings[(scheme, s)] for s in opts.seeds]
        row = {"scheme": scheme_label(flags), "experiment": experiment_name(scheme),
               **{kind: "✓" if on else "" for kind, on in flags.items()},
               "val_acc": mean_std(val_acc(r.result) for r in trains if r.ok),
               "paper": _paper_accuracy(flags),
               "idsw": mean_std(idsw(r.result) for r in tracks if r.ok),
               "mota": mean_std(r.result["mota"]["Total"] for r in tracks if r.ok),
               "steps": mean_std(r.result.get("global_step") for r in trains if r.ok),
               "train_seconds": mean_std(r.result.get("train_seconds") for r in trains if r.ok)}
        if reference is not None and scheme != reference:
            row["d_val_acc"] = paired_difference(trains, [trainings[(reference, s)] for s in opts.seeds],
                                                 val_acc)
            row["d_idsw"] = paired_difference(tracks, [trackings[(reference, s)] for s in opts.seeds], idsw)
        train_failed = failure_status(trains, opts.seeds)
        track_failed = failure_status([t for t, r in zip(tracks, trains) if r.ok],
                                      [s for s, r in zip(opts.seeds, trains) if r.ok])
        row["status"] = "; ".join(x for x in (train_failed and "training " + train_failed,
                                              track_failed and "tracking " + track_failed) if x) or None
        failures += [f"{r.key}: {r.failure}" for r in trains + tracks if not r.ok]
        rows.append(row)

    columns = [Column("scheme", "Scheme"), *(Column(k, name) for k, name in TOKEN_KINDS.items()),
               Column("val_acc", "Match acc. % (val)"), Column("paper", "Match acc. % (paper)"),
               Column("d_val_acc", "Δ match acc."), Column("idsw", "%IDSW Total", digits=2),
               Column("d_idsw", "Δ%IDSW", digits=2), Column("mota", "MOTA"),
               Column("steps", "Train steps", digits=0), Column("train_seconds", "Train s", digits=0),
               Column("experiment", "Experiment")]
    if any(r["status"] for r in rows):
        columns.append(Column("status", "Status"))
    seeds = ", ".join(map(str, opts.seeds))
    train_data = profile.describe("train") if train_dataset is None else "given by the caller"
    notes = [
        "Match acc.: best validation accuracy over the epochs (balanced matching / non-matching pose "
        "pairs of held-out videos, Δ = 1..4); paper: Table 3, PoseTrack 2018 val, 25 epochs. Mean ± "
        f"sample std over training seed{'s' if len(opts.seeds) > 1 else ''} {seeds} (each seed also draws "
        "its own train/val split of the videos)."
        + (f" Δ: the scheme minus {scheme_label(scheme_tokens(reference))} (KeyTrack's), paired by seed "
           "(same validation videos, same predictions)." if reference else ""),
        budget_description(opts) + " Train s: mean wall time of a training (its metrics.json), on a CPU "
        "shared with other jobs.",
        f"Training data: {train_data}. Tracking: {eval_description} ({eval_gt.report()}), "
        f"{SETTING_LABELS[opts.setting]} (A.4's setting of the §5.1 analysis) drawn once with perturbation "
        f"seed {opts.perturb_seed}; δ = {opts.delta}, greedy, match threshold {opts.match_threshold:g}"
        + (f", keypoints below {kp_threshold:g} removed before MOTA and %IDSW (A.3)" if kp_threshold else "")
        + ". The paper gives no %IDSW per scheme (A.4: match accuracy \"is similar to 1 - %IDSW\").",
        f"Runs are cached in {cache.directory}/ ({cache.reused} reused, {cache.computed} run now); trained "
        "networks in runs/tokens_<scheme>/. Delete a file there to run it again.",
    ]
    files = list(write_table(rows, out, columns=columns, notes=notes,
                             title="Token embedding schemes (Table 3, §5.1)"))
    records = {**{("train", *k): v for k, v in trainings.items()},
               **{("track", *k): v for k, v in trackings.items()}}
    return Result(rows, out, files, failures, records)


# -- command line -------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="PoseTrack18-layout folder (train split + test, or "
                                                     "val) instead of the synthetic default")
    parser.add_argument("--eval-split", default=None,
                        help="evaluation split under --data (default: test, else val)")
    parser.add_argument("--out", default=None,
                        help="results folder (default: results/tokens, with --data "
                             "results/tokens/<data>-<split>)")
    parser.add_argument("--profile", choices=PROFILES, default="quick",
                        help=f"training budget: quick (experiments/{QUICK_BUDGET}.yaml, about a minute a "
                             "run on a CPU) or full (the paper's 25 epochs, for GPUs)")
    parser.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0, 1, 2], dest="seeds",
                        help="training seeds, mean ± std over them (default: 0 1 2)")
    parser.add_argument("--schemes", nargs="+", choices=SCHEMES, default=list(SCHEMES),
                        help="embedding schemes, experiments/tokens_<scheme>.yaml (default: all five of "
                             "Table 3)")
    parser.add_argument("--setting", choices=SETTINGS, default=PAPER_SETTING,
                        help="keypoints tracked (default: predicted boxes + predicted keypoints, A.4)")
    parser.add_argument("--perturb-seed", type=int, default=0,
                        help="seed of the predicted keypoints (default: 0)")
    parser.add_argument("--delta", type=int, default=4, help="δ: timesteps looked back (paper: 4)")
    parser.add_argument("--match-threshold", type=float, default=POSE_ENTAILMENT_THRESHOLD,
                        help="a pose starts a new track below this match score (default: 0.5)")
    parser.add_argument("--keypoint-threshold", type=float, default=PAPER_KEYPOINT_THRESHOLD,
                        help="output keypoint threshold before MOTA (A.3; default: the paper's "
                             f"{PAPER_KEYPOINT_THRESHOLD})")
    parser.add_argument("--nearest", type=int, default=None,
                        help="compare with the n nearest poses of each earlier frame (default: all)")
    parser.add_argument("--train-override", action="append", default=[], metavar="KEY=VALUE",
                        help="extra training config override for every scheme (repeatable)")
    parser.add_argument("--synthetic-test-videos", type=int, default=20,
                        help="videos of the synthetic test set without --data (default: 20)")
    parser.add_argument("--device", default="cpu", help="torch device of the matching network when tracking")
    parser.add_argument("--batch-size", type=int, default=16384, help="most pose pairs per network forward")
    add_run_arguments(parser)


def options_from_args(args: argparse.Namespace) -> Options:
    return Options(data=args.data, eval_split=args.eval_split, out=args.out, profile=args.profile,
                   seeds=tuple(args.seeds), schemes=tuple(args.schemes), setting=args.setting,
                   perturb_seed=args.perturb_seed, delta=args.delta, match_threshold=args.match_threshold,
                   keypoint_threshold=args.keypoint_threshold, nearest=args.nearest,
                   train_overrides=tuple(args.train_override),
                   synthetic_test_videos=args.synthetic_test_videos,
                   device=args.device, batch_size=args.batch_size, threads=args.threads,
                   retry_failed=not args.no_retry_failed, wait_for_training=not args.no_wait)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        opts = options_from_args(args)
    except ValueError as err:
        raise SystemExit(f"tokens: {err}") from None
    return finish("tokens", run_tokens(opts))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ablations.tokens", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    from keytrack.errors import run_command

    sys.exit(run_command("python -m ablations.tokens", main))
