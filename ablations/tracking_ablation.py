"""What the tracking-time ablations share (§5.1, A.4): options, the matching network, cells, plots.

The spec runner (:mod:`ablations.runner`, ``keytrack ablate NAME``) tracks an evaluation split many
times with small changes (δ, the assignment, the keypoint threshold, the network trained per row). This module holds what they have in common:

* their options (:class:`TrackingOptions`, :func:`add_tracking_arguments`, :func:`tracking_options`);
* the matching network they track with (:func:`matching_network`);
* the grid of tracking cells (:class:`Cell`, :func:`run_cells`), each a cached run, with a memo of
  pair scores shared by the cells that score the same pose pairs
  (:class:`keytrack.tracking.PairScoreMemo`);
* per-seed aggregation (:func:`seed_stat`, :func:`paired_difference`), line plots
  (:func:`save_line_plot`), and the :class:`Result` / :func:`finish` of a command.
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from ablations.common import (MeanStd, Profile, RunCache, RunOptions, RunRecord, add_options,
                              dataset_fingerprint, mean_std, network_or_error, opt, options_from)
from ablations.scoring import HOTA_COLUMNS, PAPER_KEYPOINT_THRESHOLD, POSE_ENTAILMENT_THRESHOLD, score_tracked
from keytrack.perturb import perturb
from keytrack.tracking.scorers import PairScoreMemo
from keytrack.poses import Dataset

log = logging.getLogger("ablations.tracking_ablation")

#: Training budgets: ``quick`` (minutes on a CPU) and ``full`` (the paper's 25 epochs, for GPUs).
PROFILES: tuple[str, ...] = ("quick", "full")
#: The experiment that trains the δ = 4 matching network in each profile.
PROFILE_EXPERIMENTS: dict[str, str] = {"quick": "default", "full": "paper"}
#: The keypoint setting of the paper's tracking-pipeline analysis (A.4): predicted boxes and keypoints.
PAPER_SETTING = "predicted_boxes_predicted_keypoints"
#: The setting without perturbation noise: its seed only reorders the poses within a frame.
GT_SETTING = "gt_boxes_gt_keypoints"



@dataclass
class TrackingOptions(RunOptions):
    """Options every tracking-time ablation takes (its command-line options).

    ``seeds`` are perturbation seeds (:func:`keytrack.perturb.perturb`): each gives another draw of
    predicted keypoints for the same ground truth, and tables show mean ± sample std over them. The
    ground-truth-keypoint setting is tracked with the first seed only (``gt_all_seeds=False``):
    without noise its seed only changes the order of the poses within a frame.
    """

    synthetic_test_videos: int | None = opt(type=int, help="videos of the synthetic test set without --data "
                                                           "(default: the ablation's own, else 20)")
    profile: str = opt("quick", choices=PROFILES,
                       help="training budget of the matching network when it must be trained: quick (experiment "
                            "default, minutes on a CPU) or full (experiment paper, 25 epochs, for GPUs)")
    seeds: tuple[int, ...] = opt((0, 1, 2), "--seeds", "--seed", type=int, nargs="+",
                                 help="perturbation seeds, mean ± std over them (default: 0 1 2)")
    gt_all_seeds: bool = opt(False, action="store_true",
                             help="track GT keypoints with every seed too (default: the first; only the pose "
                                  "order differs)")
    experiment: str | None = opt(help="training experiment of the matching network (default: by --profile)")
    train_seed: int = opt(0, type=int, help="seed of the training run (default: 0)")
    train_seeds: tuple[int, ...] | None = opt(type=int, nargs="+",
                                              help="specs that train one network per row: its training seeds "
                                                   "(default: the spec's train.seeds)")
    train_overrides: tuple[str, ...] = opt((), "--train-override", action="append", metavar="KEY=VALUE",
                                           help="extra training config override (repeatable)")
    checkpoint: str | None = opt(help="use this matching-network checkpoint, no training")
    match_threshold: float = opt(POSE_ENTAILMENT_THRESHOLD, type=float,
                                 help="a pose starts a new track below this match score (default: 0.5)")
    keypoint_threshold: float = opt(PAPER_KEYPOINT_THRESHOLD, type=float,
                                    help="output keypoint confidence threshold before MOTA with predicted keypoints "
                                         f"(A.3; default: the paper's {PAPER_KEYPOINT_THRESHOLD})")
    nearest: int | None = opt(type=int, help="compare with the n nearest poses of each earlier frame (default: all)")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.seeds = tuple(int(s) for s in self.seeds)
        if self.profile not in PROFILES:
            raise ValueError(f"profile: expected one of {list(PROFILES)}, got {self.profile!r}")
        if not self.seeds or min(self.seeds) < 0 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct integers >= 0, got {list(self.seeds)}")
        if not 0.0 <= self.match_threshold <= 1.0:
            raise ValueError(f"match_threshold must lie in [0, 1], got {self.match_threshold}")
        if not 0.0 <= self.keypoint_threshold <= 1.0:
            raise ValueError(f"keypoint_threshold must lie in [0, 1], got {self.keypoint_threshold}")
        if self.nearest is not None and self.nearest < 1:
            raise ValueError(f"nearest must be >= 1, got {self.nearest}")

    @property
    def training_experiment(self) -> str:
        """``--experiment``, else the profile's: ``default`` (quick) or ``paper`` (full)."""
        return self.experiment or PROFILE_EXPERIMENTS[self.profile]

    def seeds_for(self, setting: str) -> tuple[int, ...]:
        """The perturbation seeds a setting is tracked with (the first only for GT keypoints)."""
        return self.seeds if setting != GT_SETTING or self.gt_all_seeds else self.seeds[:1]

    def output_keypoint_threshold(self, setting: str) -> float:
        """A.3's threshold on the output before MOTA: none for ground-truth keypoints (``c = 1``)."""
        return 0.0 if setting == GT_SETTING else float(self.keypoint_threshold)


def open_results(opts: TrackingOptions, ablation: str) -> tuple[Profile, Path, RunCache]:
    """The data profile, the results folder and the run cache of an ablation run with ``opts``.

    ``results/<ablation>/`` (``.../<data>-<split>/`` with ``--data``), and ``.../full/`` below it
    for the full training profile, so that the two profiles' tables sit side by side.
    """
    import torch

    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    profile = Profile.from_data(opts.data, opts.eval_split, synthetic_eval_videos=opts.synthetic_test_videos or 20)
    out = Path(opts.out) if opts.out else \
        profile.results_dir(ablation) / ("full" if opts.profile == "full" else "")
    return profile, out, RunCache(out / "runs", retry_failed=opts.retry_failed)


def matching_network(opts: TrackingOptions, profile: Profile,
                     experiment: str | None = None) -> tuple[dict | None, str | None]:
    """The δ = 4 matching network: ``({checkpoint, digest, source, ...}, None)``, or ``(None, error)``.

    ``--checkpoint`` when given; else the finished training run of ``experiment`` (default:
    ``opts.training_experiment``) on the profile's training split
    (:func:`ablations.common.train_or_reuse`), trained now if missing.
    """
    return network_or_error(profile, checkpoint=opts.checkpoint, experiment=experiment or opts.training_experiment,
                            train_seed=opts.train_seed, train_overrides=opts.train_overrides,
                            wait=opts.wait_for_training)


def describe_network(network: dict | None, error: str | None, name: str = "") -> str:
    """One sentence for the table notes (``name``: the matcher's label, when a table has several)."""
    what = f"Matching network{' of ' + name if name else ''}"
    if network is None:
        return f"{what}: unavailable ({error}); every cell of it failed."
    acc = network.get("best_val_acc")
    from ablations.common import display_path

    return (f"{what} (δ = 4): {display_path(network['checkpoint'])} ({network['source']}"
            + (f", experiment {network['experiment']}" if network.get("experiment") else "")
            + (f", best val/acc {acc:.3f}" if isinstance(acc, float) else "") + ").")


@dataclass(frozen=True)
class Cell:
    """One tracking + evaluation run: predictions of ``setting`` drawn with ``seed``, tracked with
    δ = ``delta`` and ``assignment``, keypoints below ``keypoint_threshold`` removed before scoring;
    ``matcher``: which of a table's matching networks (None: the only one)."""

    setting: str
    seed: int
    delta: int = 4
    assignment: str = "greedy"
    keypoint_threshold: float = 0.0
    compute_ap: bool = False
    matcher: str | None = None

    @property
    def key(self) -> str:
        return (f"{self.matcher + '-' if self.matcher else ''}{self.setting}-delta{self.delta}-{self.assignment}"
                f"-kp{self.keypoint_threshold:g}-seed{self.seed}")


def run_cells(cells: Sequence[Cell], *, cache: RunCache, eval_gt: Dataset, network: dict | None,
              network_error: str | None, opts: TrackingOptions,
              logger: logging.Logger = log) -> dict[Cell, RunRecord]:
    """Run (or reuse from ``cache``) every cell; returns each cell's record.

    Cells sharing a setting and a seed share one perturbation and one :class:`PairScoreMemo`;
    cells that differ only in their keypoint threshold share one tracking (the threshold is
    applied to the output, A.3). Within a group the largest δ is tracked first, so the smaller
    ones are answered from the memo. A cell that raises is recorded as failed and the others go on.
    """
    from keytrack.tracking import PoseEntailmentScorer, Tracker

    eval_id = dataset_fingerprint(eval_gt)
    groups: dict[tuple[str, int], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.setting, cell.seed), []).append(cell)
    network_scorer = None
    records: dict[Cell, RunRecord] = {}
    done = 0
    for (setting, seed), group in groups.items():
        state: dict = {"predicted": None, "memo": None, "tracked": {}}

        def tracked(cell: Cell) -> tuple[Dataset, dict]:
            nonlocal network_scorer
            if network is None:
                raise RuntimeError(f"no matching network: {network_error}")
            if state["predicted"] is None:
                state["predicted"] = perturb(eval_gt, cell.setting, cell.seed)
            if state["memo"] is None:
                if network_scorer is None:
                    network_scorer = PoseEntailmentScorer.from_checkpoint(
                        network["checkpoint"], device=opts.device, batch_size=opts.batch_size)
                state["memo"] = PairScoreMemo(network_scorer)
            memo = state["memo"]
            key = (cell.delta, cell.assignment)
            if key in state["tracked"]:
                out, info = state["tracked"][key]
                return out, {**info, "tracking_reused": True}
            before = memo.pairs_scored, memo.pairs_reused
            tracker = Tracker(memo, delta=cell.delta, nearest=opts.nearest, assignment=cell.assignment,
                              match_threshold=opts.match_threshold)
            out = tracker.track_dataset(state["predicted"])
            info = {"frames": tracker.frames_tracked, "poses": state["predicted"].num_poses,
                    "tracking_seconds": tracker.seconds, "pairs_scored": memo.pairs_scored - before[0],
                    "pairs_reused": memo.pairs_reused - before[1]}
            state["tracked"][key] = (out, info)
            return out, {**info, "tracking_reused": False}

        # largest δ first: its pairs include those of every smaller δ
        for cell in sorted(group, key=lambda c: -c.delta):
            params = {"kind": "cell", "data": eval_id, "setting": cell.setting, "seed": cell.seed,
                      "delta": cell.delta, "assignment": cell.assignment,
                      "keypoint_threshold": cell.keypoint_threshold, "compute_ap": cell.compute_ap,
                      "match_threshold": opts.match_threshold, "nearest": opts.nearest,
                      "checkpoint": network and network["digest"]}

            def run(cell: Cell = cell) -> dict:
                out, info = tracked(cell)
                # Table 4 scores AP, MOTA and %IDSW on what is left after the keypoint threshold
                return {**score_tracked(eval_gt, out, keypoint_threshold=cell.keypoint_threshold,
                                        compute_ap=cell.compute_ap, ap_after_threshold=True), **info}

            done += 1
            logger.info("[%d/%d] %s", done, len(cells), cell.key)
            records[cell] = cache.run(cell.key, run, params)
        state.clear()
    return records


class TrainAndTrack:
    """The cells of the ablations that train one network per row and track with it (Table 3's token
    schemes, the resolution sweep): :meth:`train` trains ``experiment`` with ``overrides`` once
    (cached; a record whose checkpoint is gone trains again), :meth:`track` tracks the evaluation
    set with that network (cached by the checkpoint's digest and every tracking setting)."""

    def __init__(self, cache: RunCache, eval_gt: Dataset, *, setting: str, perturb_seed: int, delta: int,
                 match_threshold: float, keypoint_threshold: float, nearest: int | None, device: str,
                 train_dataset: Dataset | None = None, wait: bool = True, train_fn: Callable | None = None):
        self.cache, self.eval_gt, self.setting, self.perturb_seed = cache, eval_gt, setting, perturb_seed
        self.delta, self.match_threshold, self.nearest, self.device = delta, match_threshold, nearest, device
        self.keypoint_threshold = 0.0 if setting == GT_SETTING else keypoint_threshold
        self.train_dataset, self.wait, self.train_fn = train_dataset, wait, train_fn
        self.eval_id = dataset_fingerprint(eval_gt)
        self.train_id = dataset_fingerprint(train_dataset) if train_dataset is not None else None
        self._predicted: Dataset | None = None

    def train(self, key: str, experiment: str, overrides: Sequence[str], quiet: Sequence[str] = ()) -> RunRecord:
        """The training record of ``key``; ``quiet`` overrides reach the training but not the cache key."""
        from ablations.common import file_digest, train_or_reuse

        def run() -> dict:
            trained = train_or_reuse(experiment, [*overrides, *quiet], dataset=self.train_dataset,
                                     wait=self.wait, train_fn=self.train_fn)
            m = trained.metrics
            return {"checkpoint": str(trained.checkpoint), "digest": file_digest(trained.checkpoint),
                    "run_dir": str(trained.run_dir), "reused_run": trained.reused,
                    "best_val_acc": m.get("best_val_acc"), "global_step": m.get("global_step"),
                    "train_seconds": m.get("seconds"), "train_pairs": m.get("train_pairs"),
                    "val_pairs": m.get("val_pairs")}

        stored = self.cache.load(key)
        if stored is not None and stored.ok and not Path(str((stored.result or {}).get("checkpoint"))).is_file():
            log.info("run %s: its checkpoint is gone; training again", key)
            self.cache.path(key).unlink(missing_ok=True)
        return self.cache.run(key, run, {"kind": "train", "experiment": experiment, "overrides": list(overrides),
                                         "train_data": self.train_id})

    def track(self, key: str, trained: RunRecord, batch_size: int, **scorer_kwargs) -> RunRecord:
        """Track the evaluation set with ``trained``'s network (:func:`track_and_evaluate`)."""
        from ablations.scoring import track_and_evaluate

        def run() -> dict:
            from keytrack.tracking import PoseEntailmentScorer

            if not trained.ok:
                raise RuntimeError(f"no network to track with: training failed ({trained.failure})")
            if self._predicted is None:
                self._predicted = perturb(self.eval_gt, self.setting, self.perturb_seed)
            scorer = PoseEntailmentScorer.from_checkpoint(trained.result["checkpoint"], device=self.device,
                                                          batch_size=batch_size, **scorer_kwargs)
            return track_and_evaluate(self.eval_gt, self._predicted, scorer, match_threshold=self.match_threshold,
                                      delta=self.delta, nearest=self.nearest,
                                      keypoint_threshold=self.keypoint_threshold, compute_ap=False)

        params = {"kind": "track", "data": self.eval_id, "setting": self.setting,
                  "perturb_seed": self.perturb_seed, "delta": self.delta,
                  "match_threshold": self.match_threshold, "keypoint_threshold": self.keypoint_threshold,
                  "nearest": self.nearest, "checkpoint": trained.result["digest"] if trained.ok else None}
        return self.cache.run(key, run, params)


def seed_stat(records: Iterable[RunRecord], getter: Callable[[Mapping], float | None]) -> MeanStd:
    """Mean ± sample std of ``getter(result)`` over the successful records (one value: the value)."""
    return mean_std(getter(r.result) for r in records if r.ok)


def hota_stats(records: Sequence[RunRecord]) -> dict[str, MeanStd]:
    """:data:`HOTA_COLUMNS` of a row: each the mean ± std over its successful records."""
    return {k: seed_stat(records, lambda r, k=k: (r.get("hota") or {}).get(k)) for k in HOTA_COLUMNS}


def paired_difference(records: Sequence[RunRecord], reference: Sequence[RunRecord],
                      getter: Callable[[Mapping], float | None]) -> MeanStd:
    """Mean ± std over seeds of ``getter(record) - getter(reference)``, paired by seed (same order)."""
    diffs = []
    for r, ref in zip(records, reference):
        if r.ok and ref.ok:
            a, b = getter(r.result), getter(ref.result)
            if a is not None and b is not None:
                diffs.append(a - b)
    return mean_std(diffs)


def failure_status(records: Sequence[RunRecord], seeds: Sequence[int]) -> str | None:
    """``"failed: seed 1: <error>; ..."`` for a row with failed runs, else None."""
    failed = [f"seed {s}: {r.failure}" if len(records) > 1 else r.failure
              for s, r in zip(seeds, records) if not r.ok]
    return "failed: " + "; ".join(failed) if failed else None


def total(metric: str) -> Callable[[Mapping], float | None]:
    """Getter of a metric's Total column from a cell result (``idsw``, ``mota``, ``ap``)."""
    return lambda result: (result.get(metric) or {}).get("Total")


@dataclass
class Series:
    """One line of a plot: y values (:class:`MeanStd`, drawn with error bars) at x."""

    label: str
    x: Sequence[float]
    y: Sequence[MeanStd | float | None]
    style: str = "o-"


@dataclass
class Panel:
    """One plot: its y label, its lines and a title."""

    ylabel: str
    series: Sequence[Series]
    title: str = ""


def save_line_plot(path: str | Path, panels: Sequence[Panel], *, xlabel: str, title: str,
                   xticks: Sequence[float] | None = None, ncols: int | None = None, xscale: str | None = None,
                   xticklabels: Sequence[str] | None = None) -> Path:
    """Line plots (``ncols`` per row, default all in one row) written as one PNG, atomically (Agg);
    ``xscale="log2"`` draws x on a log2 axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from keytrack.atomic import atomic_path

    ncols = min(ncols or len(panels), len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(5.0 * ncols, 3.6 * nrows + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, panel in zip(axes, panels):
        for s in panel.series:
            points = [(x, y) for x, y in zip(s.x, s.y) if y is not None
                      and (not isinstance(y, MeanStd) or y.n > 0) and np.isfinite(getattr(y, "mean", y))]
            if not points:
                continue
            means = [y.mean if isinstance(y, MeanStd) else float(y) for _, y in points]
            stds = [y.std if isinstance(y, MeanStd) and y.n > 1 else 0.0 for _, y in points]
            ax.errorbar([x for x, _ in points], means, yerr=stds if any(stds) else None, fmt=s.style,
                        capsize=3, label=s.label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(panel.ylabel)
        if panel.title:
            ax.set_title(panel.title, fontsize=9)
        if xscale == "log2":
            ax.set_xscale("log", base=2)
            ax.minorticks_off()
        if xticks is not None:
            ax.set_xticks(list(xticks))
            if xticklabels is not None:
                ax.set_xticklabels(list(xticklabels), fontsize=8)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path


def add_tracking_arguments(parser: argparse.ArgumentParser, ablation: str) -> None:
    """The options of :class:`TrackingOptions`."""
    add_options(parser, TrackingOptions, ablation)


def tracking_options(args: argparse.Namespace) -> TrackingOptions:
    """:class:`TrackingOptions` from parsed :func:`add_tracking_arguments` options."""
    return options_from(TrackingOptions, args)


def common_notes(opts: TrackingOptions, profile: Profile, eval_gt: Dataset, eval_description: str,
                 cache: RunCache, settings: Sequence[str], keypoint_threshold: bool = True) -> list[str]:
    """Table notes every tracking-time ablation shares (data, seeds, tracker, cache) for a table of
    ``settings``; the sentence on the output keypoint threshold only with ``keypoint_threshold``."""
    several = len(opts.seeds) > 1
    seeds = f"perturbation seed{'s' if several else ''} {', '.join(map(str, opts.seeds))}"
    if several:
        seeds += " (mean ± sample std over seeds)"
    if several and GT_SETTING in settings and not opts.gt_all_seeds:
        seeds += (f"; GT keypoints: seed {opts.seeds[0]} only (without noise the seed only reorders the "
                  "poses of a frame)")
    candidates = (f"the {opts.nearest} nearest poses of each earlier frame" if opts.nearest
                  else "every pose of the earlier frames")
    output = (f"; with predicted keypoints, keypoints below {opts.keypoint_threshold:g} are removed from the "
              f"output before MOTA and %IDSW (A.3; the paper: {PAPER_KEYPOINT_THRESHOLD})"
              if keypoint_threshold else "")
    return [
        f"Evaluation: {eval_description} ({eval_gt.report()}); the paper: PoseTrack 2018 val. "
        "%IDSW = 100 · ID switches / GT joints and MOTA as poseval computes them (§4.1), Total columns.",
        f"Predicted keypoints: keytrack.perturb, {seeds}.",
        f"Tracker (§3.1): match threshold {opts.match_threshold:g}, track score = maximum over the window "
        f"(A.4), Pose Entailment with {candidates}{output}.",
        f"Runs are cached in {cache.directory}/ ({cache.reused} reused, {cache.computed} run now); "
        "delete a file there to run it again.",
    ]
