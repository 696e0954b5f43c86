"""Tracking cells: one evaluation split tracked many times with small changes (§4.2, §5.1, A.4).

* the options of a grid of cells (:class:`TrackingOptions`, also the command line of ``keytrack ablate``);
* the matchers a cell tracks with (:func:`matcher_network`, :func:`tune_thresholds`): the paper's network,
  any experiment's, the learned baselines trained with Pose Entailment's budget, OKS and IoU with their
  threshold tuned on the training split;
* the cells (:class:`Cell`, :func:`run_cells`), each a cached run, sharing one perturbation per seed and
  one memo of pair scores between the cells that score the same pose pairs
  (:class:`keytrack.tracking.PairScoreMemo`), and :class:`TrainAndTrack` for one network per table row.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ablations.evaluate import (
    GT_SETTING,
    NON_LEARNED,
    PAPER_KEYPOINT_THRESHOLD,
    POSE_ENTAILMENT_THRESHOLD,
    EvalSet,
    Evaluator,
    TrackerSpec,
)
from ablations.options import RunOptions, add_options, opt, options_from
from ablations.profile import Profile, display_path
from ablations.runs import RunCache, RunRecord, dataset_fingerprint, file_digest
from ablations.training import budget_overrides, network_or_error
from keytrack.models import registry
from keytrack.poses import Dataset

log = logging.getLogger("ablations.cells")

#: Training budgets: ``quick`` (minutes on a CPU) and ``full`` (the paper's 25 epochs, for GPUs).
PROFILES: tuple[str, ...] = ("quick", "full")

#: The experiment that trains the δ = 4 matching network in each profile.
PROFILE_EXPERIMENTS: dict[str, str] = {"quick": "default", "full": "paper"}

#: The keypoint setting of the paper's tracking-pipeline analysis (A.4): predicted boxes and keypoints.
PAPER_SETTING = "predicted_boxes_predicted_keypoints"

#: Perturbation seeds of a table whose spec names none.
DEFAULT_SEEDS = (0, 1, 2)

#: The ``matcher`` values that stand for the paper's model (the profile's experiment or ``--experiment``)
#: and for the improved one (``--improved-experiment``); any other value is a learned baseline of the
#: registry (trained with Pose Entailment's budget), OKS / IoU, or an experiment's name.
PAPER_MATCHERS = ("paper", "pose_entailment")

IMPROVED_MATCHERS = ("improved", "pose_entailment_improved")

#: Learned baselines (§4.2, §5.2): every registered matcher but the transformer.
LEARNED_BASELINES: tuple[str, ...] = tuple(m.name for m in registry.MATCHERS.values() if m.baseline)

#: A matcher name with this suffix (``oks+motion``) tracks with each candidate moved by its track's
#: velocity (keytrack.tracking.Tracker, motion="velocity").
MOTION = "+motion"

#: Match thresholds tried for OKS and IoU on the training split. It reaches down to 0: with few false
#: positives the lowest threshold tracks best, and a grid whose floor is chosen handicaps the baseline.
DEFAULT_GRID: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)

#: How OKS and IoU are tuned: ``cell``, per keypoint setting and frame stride, tracked as the table's
#: cells are (their keypoint source, output keypoint threshold, τ, confident first); ``gt``, once, on
#: ground-truth keypoints at stride 1 (the protocol of the tables made before ``cell``).
TUNE_ON: tuple[str, ...] = ("cell", "gt")


def base(matcher: str | None) -> str | None:
    """The matcher of a name without its motion suffix: ``oks+motion`` -> ``oks``."""
    return None if matcher is None else matcher.removesuffix(MOTION)


def motion_of(matcher: str | None) -> str | None:
    """The tracker's ``motion`` of a matcher name (None: the scorer's own)."""
    return "velocity" if matcher and matcher.endswith(MOTION) else None


def _pairs(items: Sequence[str], what: str, value: Callable = str) -> dict:
    """``["a=1", "2"]`` -> ``{"a": value("1"), "*": value("2")}`` (``KEY=VALUE`` items, ``*`` without a
    key)."""
    out = {}
    for item in items:
        key, sep, v = item.rpartition("=")
        try:
            out[key if sep else "*"] = value(v)
        except ValueError:
            raise ValueError(f"{what}: expected [MATCHER=]VALUE, got {item!r}") from None
    return out


@dataclass
class TrackingOptions(RunOptions):
    """Options every tracking-time ablation takes (its command-line options).

    ``seeds`` are perturbation seeds (:func:`keytrack.perturb.perturb`): each gives another draw of
    predicted keypoints for the same ground truth, and tables show mean ± sample std over them
    (default: the spec's ``seeds``, else 0 1 2). The ground-truth-keypoint setting is tracked with the
    first seed only (``gt_all_seeds=False``): without noise its seed only changes the order of the
    poses within a frame. ``strides``, ``settings``, ``methods`` and ``delta`` replace the spec's axes.
    """

    synthetic_test_videos: int | None = opt(
        type=int,
        help="videos of the synthetic test set without --data (default: the ablation's own, else 20)",
    )
    profile: str = opt(
        "quick",
        choices=PROFILES,
        help="training budget of the matching network when it must be trained: quick (experiment "
        "default, minutes on a CPU) or full (experiment paper, 25 epochs, for GPUs)",
    )
    seeds: tuple[int, ...] | None = opt(
        None,
        "--seeds",
        "--seed",
        type=int,
        nargs="+",
        help="perturbation seeds, mean ± std over them (default: the spec's, else 0 1 2)",
    )
    gt_all_seeds: bool = opt(
        False,
        action="store_true",
        help="track GT keypoints with every seed too (default: the first; only the pose order differs)",
    )
    strides: tuple[int, ...] | None = opt(
        type=int, nargs="+", metavar="K", help="frame strides (the spec's axes.stride)"
    )
    settings: tuple[str, ...] | None = opt(
        nargs="+", metavar="SETTING", help="keypoint settings of keytrack.perturb (the spec's axes.setting)"
    )
    methods: tuple[str, ...] | None = opt(
        nargs="+",
        metavar="MATCHER",
        help="matchers (the spec's axes.matcher): pose_entailment / paper, "
        f"pose_entailment_improved / improved, {', '.join(NON_LEARNED)}, "
        f"{', '.join(LEARNED_BASELINES)} or an experiment's name; "
        f"MATCHER{MOTION} tracks with motion",
    )
    delta: int | None = opt(type=int, help="δ: timesteps looked back (the spec's axes.delta; paper: 4)")
    experiment: str | None = opt(
        help="training experiment of the paper's matching network (default: by --profile)"
    )
    improved_experiment: str = opt(
        "improved", help="training experiment of the improved matcher (default: improved)"
    )
    train_seed: int = opt(0, type=int, help="seed of the training run (default: 0)")
    train_seeds: tuple[int, ...] | None = opt(
        type=int,
        nargs="+",
        help="training seeds: every learned matcher (or a spec's row) is "
        "trained once per seed; cells show mean ± std",
    )
    baseline_train_seeds: tuple[int, ...] | None = opt(
        type=int,
        nargs="+",
        metavar="S",
        help="training seeds of the learned baselines (default: those of --train-seeds)",
    )
    train_overrides: tuple[str, ...] = opt(
        (),
        "--train-override",
        action="append",
        metavar="KEY=VALUE",
        help="extra training config override (repeatable)",
    )
    improved_overrides: tuple[str, ...] = opt(
        (),
        "--improved-override",
        action="append",
        metavar="KEY=VALUE",
        help="extra training override of the improved matcher (repeatable)",
    )
    checkpoint: str | None = opt(help="use this checkpoint for the paper's matching network, no training")
    baseline_checkpoint: tuple[str, ...] = opt(
        (),
        action="append",
        metavar="MATCHER=CKPT",
        help="use this checkpoint for a learned baseline "
        f"({', '.join(LEARNED_BASELINES)}), no training (repeatable)",
    )
    match_threshold: float = opt(
        POSE_ENTAILMENT_THRESHOLD,
        type=float,
        help="a learned matcher starts a new track below this match score (default: 0.5)",
    )
    matcher_threshold: tuple[str, ...] = opt(
        (),
        nargs="+",
        metavar="MATCHER=T",
        help="the match threshold of one matcher of --methods (its name as "
        "given there, +motion included), over --match-threshold, "
        "--oks-threshold and tuning",
    )
    oks_threshold: float | None = opt(type=float, help="fix OKS's match threshold (default: tuned)")
    iou_threshold: float | None = opt(type=float, help="fix IoU's match threshold (default: tuned)")
    grid: tuple[float, ...] = opt(
        DEFAULT_GRID,
        type=float,
        nargs="+",
        help="match thresholds tried for OKS and IoU on the training split",
    )
    tune_on: str = opt(
        "cell",
        choices=TUNE_ON,
        help="tune OKS and IoU on the training split per keypoint setting and frame stride, "
        "tracked as the cells are (cell, the default), or once on its GT keypoints at "
        "stride 1 (gt)",
    )
    keypoint_threshold: float | None = opt(
        type=float,
        help="output keypoint confidence threshold before MOTA with predicted "
        "keypoints (A.3; default: the spec's, else the paper's "
        f"{PAPER_KEYPOINT_THRESHOLD})",
    )
    nearest: int | None = opt(
        type=int, help="compare with the n nearest poses of each earlier frame (default: all)"
    )
    baseline_nearest: int | None = opt(
        type=int,
        help="the learned baselines compare with the n nearest poses of each "
        "earlier frame (default: all; a CNN cell costs minutes on a CPU)",
    )
    min_keypoint_confidence: tuple[str, ...] = opt(
        (),
        nargs="+",
        metavar="[MATCHER=]TAU",
        help="predicted keypoints: the tracker matches only keypoints "
        "with confidence >= TAU, for MATCHER or every matcher",
    )
    detection_threshold: float | None = opt(
        type=float,
        metavar="TAU",
        help="assign the poses with detection score >= TAU first, then the "
        "others (default: one pass, the paper's)",
    )
    #: parsed ``baseline_checkpoint`` and ``min_keypoint_confidence``
    checkpoints: dict[str, str] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)
    #: parsed ``matcher_threshold``
    match_thresholds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.profile not in PROFILES:
            raise ValueError(f"profile: expected one of {list(PROFILES)}, got {self.profile!r}")
        for name in ("seeds", "train_seeds", "baseline_train_seeds", "strides"):
            values = getattr(self, name)
            if values is None:
                continue
            values = tuple(int(s) for s in values)
            setattr(self, name, values)
            low = 1 if name == "strides" else 0
            if not values or min(values) < low or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct integers >= {low}, got {list(values)}")
        for name in (
            "match_threshold",
            "keypoint_threshold",
            "oks_threshold",
            "iou_threshold",
            "detection_threshold",
        ):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if self.tune_on not in TUNE_ON:
            raise ValueError(f"tune_on: expected one of {list(TUNE_ON)}, got {self.tune_on!r}")
        if not self.grid or not all(0.0 <= t <= 1.0 for t in self.grid):
            raise ValueError(f"grid: match thresholds must lie in [0, 1], got {list(self.grid)}")
        for n in (self.nearest, self.baseline_nearest, self.delta):
            if n is not None and n < 1:
                raise ValueError(f"nearest, baseline_nearest and delta must be >= 1, got {n}")
        self.checkpoints = {**_pairs(self.baseline_checkpoint, "--baseline-checkpoint"), **self.checkpoints}
        bad = [m for m in self.checkpoints if m not in LEARNED_BASELINES]
        if bad:
            raise ValueError(
                f"--baseline-checkpoint: only the learned baselines {list(LEARNED_BASELINES)} take one, "
                f"got {bad} (the paper's network takes --checkpoint)"
            )
        self.confidence = {
            **_pairs(self.min_keypoint_confidence, "--min-keypoint-confidence", float),
            **self.confidence,
        }
        bad = {m: t for m, t in self.confidence.items() if not 0.0 <= float(t) <= 1.0}
        if bad:
            raise ValueError(f"min_keypoint_confidence: τ must lie in [0, 1], got {bad}")
        self.match_thresholds = {
            **_pairs(self.matcher_threshold, "--matcher-threshold", float),
            **self.match_thresholds,
        }
        bad = {m: t for m, t in self.match_thresholds.items() if m == "*" or not 0.0 <= float(t) <= 1.0}
        if bad:
            raise ValueError(f"matcher_threshold: expected MATCHER=T with T in [0, 1], got {bad}")

    @property
    def training_experiment(self) -> str:
        """``--experiment``, else the profile's: ``default`` (quick) or ``paper`` (full)."""
        return self.experiment or PROFILE_EXPERIMENTS[self.profile]

    @property
    def training_seeds(self) -> tuple[int, ...]:
        """The training seeds of every learned matcher: ``train_seeds``, else ``(train_seed,)``."""
        return tuple(self.train_seeds) if self.train_seeds else (int(self.train_seed),)

    def seeds_of(self, matcher: str | None) -> tuple[int | None, ...]:
        """The training seeds a matcher is tracked with: none for OKS / IoU."""
        if base(matcher) in NON_LEARNED:
            return (None,)
        if base(matcher) in LEARNED_BASELINES and self.baseline_train_seeds:
            return tuple(self.baseline_train_seeds)
        return self.training_seeds

    def seeds_for(self, setting: str) -> tuple[int, ...]:
        """The perturbation seeds a setting is tracked with (the first only for GT keypoints)."""
        seeds = self.seeds or DEFAULT_SEEDS
        return seeds if setting != GT_SETTING or self.gt_all_seeds else seeds[:1]

    def output_keypoint_threshold(self, setting: str) -> float:
        """A.3's threshold on the output before MOTA: none for ground-truth keypoints (``c = 1``)."""
        return 0.0 if setting == GT_SETTING else float(self.keypoint_threshold)

    def confidence_of(self, matcher: str | None, setting: str) -> float:
        """The tracker's ``min_keypoint_confidence`` for ``matcher`` in ``setting`` (0 with GT keypoints)."""
        if setting == GT_SETTING:
            return 0.0
        return float(self.confidence.get(matcher, self.confidence.get("*", 0.0)))

    def nearest_of(self, matcher: str | None) -> int | None:
        """How many nearest poses of each earlier frame ``matcher`` compares with (OKS / IoU: all)."""
        if base(matcher) in NON_LEARNED:
            return None
        return self.baseline_nearest if base(matcher) in LEARNED_BASELINES else self.nearest

    def spec_overrides(self) -> list[str]:
        """``--strides`` / ``--settings`` / ``--methods`` / ``--delta`` as spec overrides of its axes."""
        axes = {
            "stride": self.strides,
            "setting": self.settings,
            "matcher": self.methods,
            "delta": None if self.delta is None else [self.delta],
        }
        return [f"axes.{a}={json.dumps(list(v))}" for a, v in axes.items() if v is not None]


def add_tracking_arguments(parser: argparse.ArgumentParser, ablation: str) -> None:
    """The options of :class:`TrackingOptions`."""
    add_options(parser, TrackingOptions, ablation)


def tracking_options(args: argparse.Namespace) -> TrackingOptions:
    """:class:`TrackingOptions` from parsed :func:`add_tracking_arguments` options."""
    return options_from(TrackingOptions, args)


def open_results(opts: TrackingOptions, ablation: str) -> tuple[Profile, Path, RunCache]:
    """The data profile, the results folder and the run cache of an ablation run with ``opts``.

    ``results/<ablation>/`` (``.../<data>-<split>/`` with ``--data``), and ``.../full/`` below it
    for the full training profile, so that the two profiles' tables sit side by side.
    """
    import torch

    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    profile = Profile.from_data(
        opts.data, opts.eval_split, synthetic_eval_videos=opts.synthetic_test_videos or 20
    )
    out = (
        Path(opts.out)
        if opts.out
        else profile.results_dir(ablation) / ("full" if opts.profile == "full" else "")
    )
    return profile, out, RunCache(out / "runs", retry_failed=opts.retry_failed)


def matcher_network(
    opts: TrackingOptions, profile: Profile, matcher: str, seed: int
) -> tuple[dict | None, str | None]:
    """The network of a learned ``matcher`` trained with ``seed``: ``({checkpoint, digest, ...}, None)`` or
    ``(None, error)``. The paper's (``--checkpoint``, else ``--experiment`` or the profile's), the improved
    one
    (``--improved-experiment`` with ``--improved-override``), a learned baseline (``--baseline-checkpoint``,
    else its experiment file with Pose Entailment's budget, run ``<data>-<experiment>-budget-seed<k>``),
    or the experiment of that name; trained on the profile's training split, or a finished run reused."""
    from keytrack.config import data_tag, load_config

    m = base(matcher)
    what = f"{matcher} network (seed {seed})"
    common = dict(train_seed=seed, wait=opts.wait_for_training)
    if m in PAPER_MATCHERS:
        return network_or_error(
            profile,
            what,
            checkpoint=opts.checkpoint,
            experiment=opts.training_experiment,
            train_overrides=opts.train_overrides,
            **common,
        )
    if m in IMPROVED_MATCHERS:
        return network_or_error(
            profile,
            what,
            checkpoint=None,
            experiment=opts.improved_experiment,
            train_overrides=opts.improved_overrides,
            **common,
        )
    if m in LEARNED_BASELINES:
        if m in opts.checkpoints:
            return network_or_error(profile, what, checkpoint=opts.checkpoints[m], experiment=m, **common)
        try:
            tag = data_tag(load_config(profile.train_overrides()).data)
            overrides = [
                *budget_overrides(opts.training_experiment, opts.train_overrides),
                *opts.train_overrides,
                f"run_name={tag}-{opts.training_experiment}-budget-seed{seed}",
            ]
        except Exception as err:  # noqa: BLE001 - the other matchers still run; this one's cells fail
            log.error("%s: %s: %s", what, type(err).__name__, err)
            return None, f"{type(err).__name__}: {err}"
        return network_or_error(
            profile, what, checkpoint=None, experiment=m, train_overrides=overrides, **common
        )
    return network_or_error(
        profile, what, checkpoint=None, experiment=m, train_overrides=opts.train_overrides, **common
    )


def missing_images(profile: Profile, eval_gt: Dataset) -> str | None:
    """Why the crop CNN cannot run on the profile's data (its first frame has no readable image
    file), or None. The synthetic scenes are rendered, so they always have images."""
    if profile.data_root is None:
        return None
    from keytrack.frames import ImageFiles
    from keytrack.io.errors import DataError

    video = next((v for v in eval_gt.videos if v.frames), None)
    if video is None:
        return None
    try:
        ImageFiles(profile.data_root).image(video, video.frames[0])
    except DataError as err:
        return f"the data has no image files for the crops ({err})"
    return None


def grid_edge(threshold: float | None, grid: Sequence[float]) -> bool:
    """Whether a tuned ``threshold`` is the lowest or the highest point of its ``grid``: the optimum may lie
    beyond it (tuning on ground-truth keypoints, with no false positive to keep off a track, favours the
    lowest threshold). 0 and 1 are no edge: no threshold lies beyond them."""
    return threshold is not None and bool(grid) and threshold in {min(grid), max(grid)} - {0.0, 1.0}


def threshold_of(thresholds: Mapping, matcher: str | None, setting: str, stride: int) -> float | None:
    """The match threshold ``matcher`` tracks ``setting`` at ``stride`` with: its one threshold, or the one
    tuned for that keypoint setting and stride (``--tune-on cell``)."""
    t = thresholds.get(matcher)
    return t.get((setting, stride)) if isinstance(t, Mapping) else t


def tune_threshold(
    evaluator: Evaluator,
    tracker: TrackerSpec,
    train: EvalSet,
    grid: Sequence[float],
    *,
    key: str,
    label: str | None = None,
) -> tuple[float | None, list[dict]]:
    """The match threshold of ``tracker`` (a non-learned scorer) with the lowest %IDSW total on
    ``train`` (ties: the higher MOTA, then the lower threshold), each point of ``grid`` one cached
    evaluation named by ``key``; the grid rows carry ``label``. Returns the threshold (None when
    every point failed) and the grid rows."""
    gt_stride1 = (train.setting, train.stride) == (GT_SETTING, 1)
    rows = []
    for t in grid:
        name = f"tune-{key}" + ("" if gt_stride1 else f"-{train.setting}-stride{train.stride}") + f"-thr{t:g}"
        record = evaluator.run(dataclasses.replace(tracker, match_threshold=t), train, name)
        ok = record.ok
        rows.append(
            {
                "method": label or key,
                "setting": train.setting,
                "stride": train.stride,
                "threshold": t,
                "idsw_total": record.result["idsw"]["Total"] if ok else None,
                "mota": record.result["mota"]["Total"] if ok else None,
                "switches": int(record.result["num_switches"]) if ok else None,
                "status": record.failure,
            }
        )
    done = [r for r in rows if r["idsw_total"] is not None]
    if not done:
        return None, rows
    best = min(
        done, key=lambda r: (r["idsw_total"], -(r["mota"] if r["mota"] is not None else -1e9), r["threshold"])
    )
    for r in rows:
        r["chosen"] = "yes" if r is best else ""
    return float(best["threshold"]), rows


def tune_thresholds(
    opts: TrackingOptions,
    profile: Profile,
    evaluator: Evaluator,
    matchers: Sequence[str],
    delta: int,
    train_gt: Dataset | None = None,
    label: Callable[[str], str] = str,
    cells: Sequence[tuple[str, int]] = ((GT_SETTING, 1),),
) -> tuple[dict, list[dict], int]:
    """The match threshold of each of ``matchers``: ``--oks-threshold`` / ``--iou-threshold`` when given,
    else tuned for OKS and IoU on the training split (:func:`tune_threshold`, the lowest %IDSW over
    ``--grid``): with ``--tune-on cell`` once per ``(setting, stride)`` of ``cells``, tracked as those
    cells are (``{(setting, stride): threshold}``), with ``--tune-on gt`` once, on GT keypoints at
    stride 1. A learned matcher's is ``--match-threshold``. Returns the thresholds (None where every
    tuning run failed), the tuning table's rows (``label``: a matcher's) and how many head boxes were
    drawn on the training split's ground truth."""
    from keytrack.config import load_config
    from keytrack.evaluation.head_boxes import complete_head_boxes

    fixed = {"oks": opts.oks_threshold, "iou": opts.iou_threshold}
    thresholds = {
        m: opts.match_thresholds.get(
            m, opts.match_threshold if base(m) not in NON_LEARNED else fixed[base(m)]
        )
        for m in matchers
    }
    to_tune = [m for m in matchers if thresholds[m] is None]
    rows, filled = [], 0
    if to_tune:
        if train_gt is None:
            synthetic = load_config(
                [f"experiment={opts.training_experiment}", *opts.train_overrides]
            ).data.synthetic
            train_gt = profile.load_train(int(synthetic.videos), int(synthetic.seed))
        train_gt, filled = complete_head_boxes(train_gt)
    tuned_on = list(dict.fromkeys(cells)) if opts.tune_on == "cell" else [(GT_SETTING, 1)]
    for m in to_tune:
        per_cell = {}
        for setting, stride in tuned_on:
            tracker = TrackerSpec(
                base(m),
                delta=delta,
                motion=motion_of(m) or "none",
                min_keypoint_confidence=opts.confidence_of(m, setting),
                detection_threshold=opts.detection_threshold if opts.tune_on == "cell" else None,
            )
            train = EvalSet(
                train_gt,
                setting,
                opts.seeds_for(setting)[0],
                stride,
                compute_hota=False,
                keypoint_threshold=opts.output_keypoint_threshold(setting),
            )
            per_cell[setting, stride], grid_rows = tune_threshold(
                evaluator, tracker, train, opts.grid, key=m, label=label(m)
            )
            rows += grid_rows
            if grid_edge(per_cell[setting, stride], opts.grid):
                log.warning(
                    "%s (%s, stride %d): the tuned match threshold %g is an edge of the grid %s; a wider "
                    "--grid may choose another",
                    m,
                    setting,
                    stride,
                    per_cell[setting, stride],
                    list(opts.grid),
                )
        thresholds[m] = per_cell if opts.tune_on == "cell" else per_cell[GT_SETTING, 1]
    return thresholds, rows, filled


def describe_network(network: dict | None, error: str | None, name: str = "") -> str:
    """One sentence for the table notes (``name``: the matcher's label and seed, when a table has several)."""
    what = f"Matching network{' of ' + name if name else ''}"
    if network is None:
        return f"{what}: unavailable ({error}); every cell of it failed."
    acc, rank1 = network.get("best_val_acc"), network.get("best_val_rank1")
    return (
        f"{what}: {display_path(network['checkpoint'])} ({network['source']}"
        + (f", experiment {network['experiment']}" if network.get("experiment") else "")
        + (f", val/rank1 {rank1:.4f}" if isinstance(rank1, float) else "")
        + (f", best val/acc {acc:.3f}" if isinstance(acc, float) else "")
        + ")."
    )


@dataclass(frozen=True)
class Cell:
    """One tracking + evaluation run: predictions of ``setting`` drawn with ``seed``, every ``stride``-th
    frame, tracked by ``matcher`` (None: a table's only network; trained with ``train_seed``) with δ =
    ``delta`` and ``assignment``, keypoints below ``keypoint_threshold`` removed before scoring; AP
    (``compute_ap``) after that threshold (Table 4) or, ``ap_before_threshold``, before it (Figure 4)."""

    setting: str
    seed: int
    delta: int = 4
    assignment: str = "greedy"
    keypoint_threshold: float = 0.0
    compute_ap: bool = False
    matcher: str | None = None
    stride: int = 1
    train_seed: int | None = None
    ap_before_threshold: bool = False
    several_trainings: bool = False

    @property
    def key(self) -> str:
        return (
            f"{self.matcher + '-' if self.matcher else ''}{self.setting}"
            + (f"-stride{self.stride}" if self.stride != 1 else "")
            + f"-delta{self.delta}-{self.assignment}-kp{self.keypoint_threshold:g}"
            + (f"-train{self.train_seed}" if self.several_trainings else "")
            + f"-seed{self.seed}"
        )


def run_cells(
    cells: Sequence[Cell],
    *,
    evaluator: Evaluator,
    eval_gt: Dataset,
    opts: TrackingOptions,
    networks: Mapping[tuple, tuple[dict | None, str | None]],
    thresholds: Mapping[str | None, float | Mapping | None],
    logger: logging.Logger = log,
) -> dict[Cell, RunRecord]:
    """Run (or reuse from the evaluator's cache) every cell; returns each cell's record.

    ``networks[(matcher, train_seed)]`` is a learned matcher's ``(network, error)``; ``thresholds`` each
    matcher's match threshold. The cells of one setting and seed run together, largest δ first, so that
    the :class:`Evaluator` answers the smaller δ from its memo of pair scores and tracks the cells that
    differ only in their output keypoint threshold once. A cell that fails is recorded and the others go on.
    """
    groups: dict[tuple[str, int], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.setting, cell.seed), []).append(cell)
    records: dict[Cell, RunRecord] = {}
    for group in groups.values():
        for cell in sorted(group, key=lambda c: (c.stride, str(c.matcher), str(c.train_seed), -c.delta)):
            logger.info("[%d/%d] %s", len(records) + 1, len(cells), cell.key)
            records[cell] = _run_cell(cell, evaluator, eval_gt, opts, networks, thresholds)
        evaluator.forget()
    return records


def _run_cell(
    cell: Cell,
    evaluator: Evaluator,
    eval_gt: Dataset,
    opts: TrackingOptions,
    networks: Mapping,
    thresholds: Mapping,
) -> RunRecord:
    net, error = networks.get((base(cell.matcher), cell.train_seed), (None, None))
    learned = base(cell.matcher) not in NON_LEARNED
    threshold = threshold_of(thresholds, cell.matcher, cell.setting, cell.stride)
    tracker = TrackerSpec(
        base(cell.matcher) or "network",
        net["checkpoint"] if learned and net else None,
        match_threshold=threshold if threshold is not None else -1.0,
        delta=cell.delta,
        nearest=opts.nearest_of(cell.matcher),
        assignment=cell.assignment,
        motion=motion_of(cell.matcher),
        min_keypoint_confidence=opts.confidence_of(cell.matcher, cell.setting),
        detection_threshold=opts.detection_threshold,
    )
    evalset = EvalSet(
        eval_gt,
        cell.setting,
        cell.seed,
        cell.stride,
        keypoint_threshold=cell.keypoint_threshold,
        compute_ap=cell.compute_ap,
        ap_after_threshold=not cell.ap_before_threshold,
    )
    if learned and (net is None or error):
        return evaluator.fail(cell.key, f"no {cell.matcher or 'matching'} network: {error}", tracker, evalset)
    if threshold is None:
        return evaluator.fail(
            cell.key, f"no match threshold for {cell.matcher} (every tuning run failed)", tracker, evalset
        )
    return evaluator.run(tracker, evalset, cell.key)


class TrainAndTrack:
    """The cells of the ablations that train one network per row and track with it (Table 3's token
    schemes, the resolution sweep): :meth:`train` trains ``experiment`` with ``overrides`` once
    (cached; a record whose checkpoint is gone trains again), :meth:`track` evaluates ``tracker``
    with that network on ``evalset`` (:meth:`Evaluator.run`)."""

    def __init__(
        self,
        evaluator: Evaluator,
        evalset: EvalSet,
        tracker: TrackerSpec,
        *,
        train_dataset: Dataset | None = None,
        wait: bool = True,
        train_fn: Callable | None = None,
    ):
        self.evaluator, self.cache, self.evalset, self.tracker = evaluator, evaluator.cache, evalset, tracker
        self.train_dataset, self.wait, self.train_fn = train_dataset, wait, train_fn
        self.train_id = dataset_fingerprint(train_dataset) if train_dataset is not None else None

    def train(
        self, key: str, experiment: str, overrides: Sequence[str], quiet: Sequence[str] = ()
    ) -> RunRecord:
        """The training record of ``key``; ``quiet`` overrides reach the training but not the cache key."""
        from ablations.training import train_or_reuse  # looked up per call: tests stand in for it

        def run() -> dict:
            trained = train_or_reuse(
                experiment,
                [*overrides, *quiet],
                dataset=self.train_dataset,
                wait=self.wait,
                train_fn=self.train_fn,
            )
            m = trained.metrics
            return {
                "checkpoint": str(trained.checkpoint),
                "digest": file_digest(trained.checkpoint),
                "run_dir": str(trained.run_dir),
                "reused_run": trained.reused,
                "best_val_acc": m.get("best_val_acc"),
                "global_step": m.get("global_step"),
                "train_seconds": m.get("seconds"),
                "train_pairs": m.get("train_pairs"),
                "val_pairs": m.get("val_pairs"),
            }

        stored = self.cache.load(key)
        if (
            stored is not None
            and stored.ok
            and not Path(str((stored.result or {}).get("checkpoint"))).is_file()
        ):
            log.info("run %s: its checkpoint is gone; training again", key)
            self.cache.path(key).unlink(missing_ok=True)
        return self.cache.run(
            key,
            run,
            {
                "kind": "train",
                "experiment": experiment,
                "overrides": list(overrides),
                "train_data": self.train_id,
            },
        )

    def track(self, key: str, trained: RunRecord, matcher: str = "network") -> RunRecord:
        """Evaluate the tracker with ``trained``'s network (``matcher``: its registry name)."""
        tracker = dataclasses.replace(
            self.tracker, scorer=matcher, checkpoint=trained.result["checkpoint"] if trained.ok else None
        )
        if not trained.ok:
            return self.evaluator.fail(
                key, f"no network to track with: training failed ({trained.failure})", tracker, self.evalset
            )
        return self.evaluator.run(tracker, self.evalset, key)
