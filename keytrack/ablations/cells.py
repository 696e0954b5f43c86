"""Tracking cells: one evaluation split tracked many times with small changes (§4.2, §5.1, A.4).

Their options (:class:`TrackingOptions`, also ``keytrack ablate``'s command line), the matchers a cell
tracks with (:func:`matcher_network`, OKS / IoU thresholds by :func:`tune_thresholds`), and the cells
(:class:`Cell`, :func:`run_cells`, :class:`TrainAndTrack`), each a cached run of the :class:`Evaluator`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from keytrack.ablations.evaluate import (
    GT_SETTING,
    NON_LEARNED,
    PAPER_KEYPOINT_THRESHOLD,
    POSE_ENTAILMENT_THRESHOLD,
    EvalSet,
    Evaluator,
    TrackerSpec,
)
from keytrack.ablations.options import RunOptions, add_options, opt, options_from
from keytrack.ablations.profile import Profile, display_path
from keytrack.ablations.runs import RunCache, RunRecord, dataset_fingerprint, file_digest, pooled_mota
from keytrack.ablations.training import budget_overrides, network_or_error
from keytrack.models import registry
from keytrack.poses import Dataset
from keytrack.tracking.boxmot_trackers import BOXMOT_METHODS, boxmot_method

log = logging.getLogger("keytrack.ablations.cells")

PROFILES: tuple[str, ...] = ("quick", "full")  # training budgets: minutes on a CPU, the paper's 25 epochs
PROFILE_EXPERIMENTS: dict[str, str] = {"quick": "default", "full": "paper"}  # each one's δ = 4 network
PAPER_SETTING = "predicted_boxes_predicted_keypoints"  # the tracking-pipeline analysis's setting (A.4)
DEFAULT_SEEDS = (0, 1, 2)  # perturbation seeds of a table whose spec names none
#: Names of the paper's model (``--experiment``) and the improved one (``--improved-experiment``).
PAPER_MATCHERS = ("paper", "pose_entailment")
IMPROVED_MATCHERS = ("improved", "pose_entailment_improved")
#: Learned baselines (§4.2, §5.2): every registered matcher but the transformer.
LEARNED_BASELINES: tuple[str, ...] = tuple(m.name for m in registry.MATCHERS.values() if m.baseline)
MOTION = "+motion"  # ``oks+motion``: each candidate moved by its track's velocity
KALMAN = "+kalman"  # ``oks+kalman``: each candidate moved by its track's Kalman prediction
#: A matcher name's suffix and the tracker's ``motion`` it asks for.
MOTION_SUFFIXES = {MOTION: "velocity", KALMAN: "kalman"}
#: OKS / IoU thresholds tried on the training split, down to 0 (with few false positives the lowest wins).
DEFAULT_GRID: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
#: Tune OKS / IoU per keypoint setting and stride as the cells track (``cell``) or once on GT keypoints.
TUNE_ON: tuple[str, ...] = ("cell", "gt")


def suffix(matcher: str | None) -> str:
    """The motion suffix of a matcher name (``+motion``, ``+kalman``), or ``""``."""
    return next((s for s in MOTION_SUFFIXES if matcher and matcher.endswith(s)), "")


def base(matcher: str | None) -> str | None:
    """The matcher of a name without its motion suffix: ``oks+motion`` -> ``oks``."""
    return None if matcher is None else matcher.removesuffix(suffix(matcher))


def motion_of(matcher: str | None) -> str | None:
    """The tracker's ``motion`` of a matcher name (None: the scorer's own)."""
    return MOTION_SUFFIXES.get(suffix(matcher))


def _pairs(items: Sequence[str], what: str, value: Callable = str) -> dict:
    """``["a=1", "2"]`` -> ``{"a": value("1"), "*": value("2")}``."""
    out = {}
    for item in items:
        key, sep, v = item.rpartition("=")
        try:
            out[key if sep else "*"] = value(v)
        except ValueError:
            raise ValueError(f"{what}: expected [MATCHER=]VALUE, got {item!r}") from None
    return out


_IN_0_1 = (
    "match_threshold",
    "keypoint_threshold",
    "oks_threshold",
    "iou_threshold",
    "detection_threshold",
    "new_track_threshold",
)


@dataclass
class TrackingOptions(RunOptions):
    """Options of every tracking-time ablation. ``seeds`` are perturbation seeds (tables: mean ± std over
    them); GT keypoints are tracked with the first only unless ``gt_all_seeds`` (their seed only reorders
    poses). ``strides``, ``settings``, ``methods`` and ``delta`` replace the spec's axes."""

    synthetic_test_videos: int | None = opt(
        type=int, help="videos of the synthetic test set without --data (default: the ablation's, else 20)"
    )
    profile: str = opt(
        "quick", choices=PROFILES, help="training budget: quick (experiment default) or full (paper, GPUs)"
    )
    seeds: tuple[int, ...] | None = opt(
        None, "--seeds", "--seed", type=int, nargs="+", help="perturbation seeds (default: spec's or 0 1 2)"
    )
    gt_all_seeds: bool = opt(False, action="store_true", help="track GT keypoints with every seed too")
    strides: tuple[int, ...] | None = opt(
        type=int, nargs="+", metavar="K", help="frame strides (axes.stride)"
    )
    settings: tuple[str, ...] | None = opt(
        nargs="+", metavar="SETTING", help="keypoint settings of keytrack.perturb (axes.setting)"
    )
    methods: tuple[str, ...] | None = opt(
        nargs="+",
        metavar="MATCHER",
        help=f"matchers (axes.matcher): paper, improved (or pose_entailment[_improved]), "
        f"{', '.join(NON_LEARNED + LEARNED_BASELINES)} or an experiment; MATCHER{MOTION} / MATCHER{KALMAN} "
        "track with motion",
    )
    delta: int | None = opt(type=int, help="δ: timesteps looked back (axes.delta; paper: 4)")
    experiment: str | None = opt(help="experiment of the paper's matching network (default: by --profile)")
    improved_experiment: str = opt("improved", help="experiment of the improved matcher (default: improved)")
    train_seed: int = opt(0, type=int, help="seed of the training run (default: 0)")
    train_seeds: tuple[int, ...] | None = opt(
        type=int, nargs="+", help="training seeds of every learned matcher; cells show mean ± std"
    )
    baseline_train_seeds: tuple[int, ...] | None = opt(
        type=int, nargs="+", metavar="S", help="learned baselines' training seeds (default: --train-seeds)"
    )
    train_overrides: tuple[str, ...] = opt(
        (), "--train-override", action="append", metavar="KEY=VALUE", help="training config override"
    )
    improved_overrides: tuple[str, ...] = opt(
        (), "--improved-override", action="append", metavar="KEY=VALUE", help="improved matcher's override"
    )
    checkpoint: str | None = opt(
        help="checkpoint of the paper's matching network (no training), or a shipped matcher's name "
        "(keytrack.weights); the improved matcher does not take it"
    )
    baseline_checkpoint: tuple[str, ...] = opt(
        (), action="append", metavar="MATCHER=CKPT", help="checkpoint of a learned baseline (repeatable)"
    )
    match_threshold: float = opt(
        POSE_ENTAILMENT_THRESHOLD, type=float, help="learned matchers' match threshold (default: 0.5)"
    )
    matcher_threshold: tuple[str, ...] = opt(
        (), nargs="+", metavar="MATCHER=T", help="one matcher's match threshold, over the others and tuning"
    )
    oks_threshold: float | None = opt(type=float, help="fix OKS's match threshold (default: tuned)")
    iou_threshold: float | None = opt(type=float, help="fix IoU's match threshold (default: tuned)")
    grid: tuple[float, ...] = opt(
        DEFAULT_GRID, type=float, nargs="+", help="OKS / IoU match thresholds tried on the training split"
    )
    tune_on: str = opt(
        "cell", choices=TUNE_ON, help="tune OKS / IoU per setting and stride (cell) or on GT keypoints (gt)"
    )
    keypoint_threshold: float | None = opt(
        type=float,
        help=f"output keypoint threshold before MOTA (A.3; default: spec's, else {PAPER_KEYPOINT_THRESHOLD})",
    )
    nearest: int | None = opt(type=int, help="compare with the n nearest poses of each earlier frame")
    baseline_nearest: int | None = opt(type=int, help="--nearest of the learned baselines (default: all)")
    min_keypoint_confidence: tuple[str, ...] = opt(
        (), nargs="+", metavar="[MATCHER=]TAU", help="match only keypoints of confidence >= TAU"
    )
    detection_threshold: float | None = opt(
        type=float, metavar="TAU", help="assign poses of detection score >= TAU first (default: one pass)"
    )
    oks_scale: tuple[float, ...] = opt(
        (1.0,),
        type=float,
        nargs="+",
        metavar="K",
        help="OKS's σ of every keypoint times K (default 1: COCO's); several: K is tuned on the training "
        "split with the match threshold, per cell",
    )
    gate: tuple[float, ...] | None = opt(
        type=float,
        nargs=2,
        metavar=("HIGH", "LOW"),
        help="learned matchers behind an OKS gate: the poses OKS settles skip the network "
        "(keytrack.tracking.gate)",
    )
    new_track_threshold: float | None = opt(
        type=float,
        metavar="TAU",
        help="keytrack's trackers: a pose of detection score < TAU starts no track, it is left out "
        "(default: every pose kept)",
    )
    #: parsed ``baseline_checkpoint``, ``min_keypoint_confidence`` and ``matcher_threshold``
    checkpoints: dict[str, str] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)
    match_thresholds: dict[str, float] = field(default_factory=dict)
    #: the σ scale tune_thresholds chose per (matcher, setting, stride), where several were given
    tuned_scales: dict[tuple, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, choices in (("profile", PROFILES), ("tune_on", TUNE_ON)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}: expected one of {list(choices)}, got {getattr(self, name)!r}")
        for name in ("seeds", "train_seeds", "baseline_train_seeds", "strides"):
            if getattr(self, name) is None:
                continue
            values, low = tuple(int(s) for s in getattr(self, name)), 1 if name == "strides" else 0
            setattr(self, name, values)
            if not values or min(values) < low or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct integers >= {low}, got {list(values)}")
        for name in _IN_0_1:
            if (value := getattr(self, name)) is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        self.oks_scale = tuple(float(k) for k in self.oks_scale)
        if not self.oks_scale or not all(k > 0 for k in self.oks_scale):
            raise ValueError(f"oks_scale must be positive numbers, got {list(self.oks_scale)}")
        if self.gate is not None and not 0.0 <= self.gate[1] <= self.gate[0] <= 1.0:
            raise ValueError(f"gate: need 0 <= LOW <= HIGH <= 1, got HIGH {self.gate[0]}, LOW {self.gate[1]}")
        if not self.grid or not all(0.0 <= t <= 1.0 for t in self.grid):
            raise ValueError(f"grid: match thresholds must lie in [0, 1], got {list(self.grid)}")
        for n in (self.nearest, self.baseline_nearest, self.delta):
            if n is not None and n < 1:
                raise ValueError(f"nearest, baseline_nearest and delta must be >= 1, got {n}")
        self.checkpoints = {**_pairs(self.baseline_checkpoint, "--baseline-checkpoint"), **self.checkpoints}
        if bad := [m for m in self.checkpoints if m not in LEARNED_BASELINES]:
            raise ValueError(
                f"--baseline-checkpoint: only the learned baselines {list(LEARNED_BASELINES)} take one, "
                f"got {bad} (the paper's network takes --checkpoint)"
            )
        parsed = _pairs(self.min_keypoint_confidence, "--min-keypoint-confidence", float)
        self.confidence = {**parsed, **self.confidence}
        if bad := {m: t for m, t in self.confidence.items() if not 0.0 <= float(t) <= 1.0}:
            raise ValueError(f"min_keypoint_confidence: τ must lie in [0, 1], got {bad}")
        parsed = _pairs(self.matcher_threshold, "--matcher-threshold", float)
        self.match_thresholds = {**parsed, **self.match_thresholds}
        if bad := {m: t for m, t in self.match_thresholds.items() if m == "*" or not 0.0 <= float(t) <= 1.0}:
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

    def new_track_of(self, matcher: str | None, setting: str) -> float | None:
        """The tracker's ``new_track_threshold`` for ``matcher`` in ``setting``: None with GT keypoints
        (every score 1) and for boxmot's trackers (their own rule)."""
        if setting == GT_SETTING or base(matcher) in BOXMOT_METHODS:
            return None
        return self.new_track_threshold

    def scale_of(self, matcher: str | None, setting: str, stride: int) -> float:
        """OKS's σ scale for ``matcher`` in a cell: the one tuned there, else the first given; 1 for a
        matcher without OKS (a learned matcher's gate takes the first given)."""
        if base(matcher) != "oks" and not (self.gate and base(matcher) not in NON_LEARNED):
            return 1.0
        return self.tuned_scales.get((base(matcher), setting, stride), self.oks_scale[0])

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
    """The data profile, results folder (``--out``, else
    ``runs/ablations/<ablation>[/<data>-<split>][/full]``) and run cache."""
    import torch

    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    profile = Profile.from_data(
        opts.data, opts.eval_split, synthetic_eval_videos=opts.synthetic_test_videos or 20
    )
    full = "full" if opts.profile == "full" else ""
    out = Path(opts.out) if opts.out else profile.results_dir(ablation) / full
    return profile, out, RunCache(out / "runs", retry_failed=opts.retry_failed)


def matcher_network(
    opts: TrackingOptions, profile: Profile, matcher: str, seed: int
) -> tuple[dict | None, str | None]:
    """``({checkpoint, digest, ...}, None)`` or ``(None, error)``: the network of a learned ``matcher``
    trained with ``seed`` on the profile's training split (or a finished run reused, or a checkpoint
    given); a learned baseline with Pose Entailment's budget, run ``<data>-<experiment>-budget-seed<k>``."""
    from keytrack.config import data_tag, load_config

    m, what = base(matcher), f"{matcher} network (seed {seed})"
    checkpoint, experiment, overrides = None, m, opts.train_overrides
    if m in PAPER_MATCHERS:
        checkpoint, experiment = opts.checkpoint, opts.training_experiment
    elif m in IMPROVED_MATCHERS:
        experiment, overrides = opts.improved_experiment, opts.improved_overrides
    elif m in LEARNED_BASELINES and m in opts.checkpoints:
        checkpoint = opts.checkpoints[m]
    elif m in LEARNED_BASELINES:
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
        profile,
        what,
        checkpoint=checkpoint,
        experiment=experiment,
        train_overrides=overrides,
        train_seed=seed,
        wait=opts.wait_for_training,
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
    """The threshold of ``grid`` with the lowest %IDSW of ``tracker`` (OKS / IoU) on ``train`` (ties: higher
    MOTA, then lower threshold; None when every point failed), and the grid rows (labelled ``label``)."""
    gt_stride1 = (train.setting, train.stride) == (GT_SETTING, 1)
    assignment = "" if tracker.assignment == "greedy" else f"-{tracker.assignment}"
    rows = []
    for t in grid:
        cell = "" if gt_stride1 else f"-{train.setting}-stride{train.stride}"
        name = f"tune-{key}{cell}{assignment}-thr{t:g}"
        record = evaluator.run(dataclasses.replace(tracker, match_threshold=t), train, name)
        row = {"method": label or key, "setting": train.setting, "stride": train.stride, "threshold": t}
        row["assignment"] = tracker.assignment
        if record.ok:
            r = record.result
            row.update(
                idsw_total=r["idsw"]["Total"],
                mota=r["mota"]["Total"],
                mota_pooled=pooled_mota(r),
                switches=int(r["num_switches"]),
            )
        else:
            row.update(idsw_total=None, mota=None, mota_pooled=None, switches=None)
        rows.append({**row, "status": record.failure})
    done = [r for r in rows if r["idsw_total"] is not None]
    if not done:
        return None, rows
    best = min(
        done, key=lambda r: (r["idsw_total"], -(r["mota"] if r["mota"] is not None else -1e9), r["threshold"])
    )
    for r in rows:
        r["chosen"] = "yes" if r is best else ""
    return float(best["threshold"]), rows


def fixed_thresholds(opts: TrackingOptions, matchers: Sequence[str | None]) -> dict[str, float | None]:
    """The thresholds of the tuned trackers, None where tuned: OKS's and IoU's when given, a boxmot
    tracker's ``_defaults`` method at boxmot's default."""
    fixed: dict[str, float | None] = {"oks": opts.oks_threshold, "iou": opts.iou_threshold}
    for m in matchers:
        if found := boxmot_method(base(m)):
            fixed[base(m)] = found[0].default if found[1] else None
    return fixed


def grid_of(opts: TrackingOptions, matcher: str) -> tuple[float, ...]:
    """The thresholds ``matcher`` is tuned over: a boxmot tracker's own grid, else ``--grid``."""
    found = boxmot_method(base(matcher))
    return found[0].grid if found else tuple(opts.grid)


def _tune_scale_and_threshold(
    evaluator: Evaluator,
    tracker: TrackerSpec,
    train: EvalSet,
    grid: Sequence[float],
    scales: Sequence[float],
    key: str,
    label: str,
) -> tuple[float | None, float, list[dict]]:
    """:func:`tune_threshold` at each OKS σ scale of ``scales`` (one: as given); the (threshold, scale)
    with the lowest %IDSW (ties: higher MOTA, lower threshold, lower scale) and every grid row."""
    found, rows = [], []
    for k in scales:
        name = key if len(scales) == 1 else f"{key}-scale{k:g}"
        scaled = dataclasses.replace(tracker, oks_scale=k)
        t, grid_rows = tune_threshold(evaluator, scaled, train, grid, key=name, label=label)
        rows += [{**r, "oks_scale": k} for r in grid_rows]
        found += [(r, k) for r in grid_rows if r.get("chosen") and r["idsw_total"] is not None]
    if not found:
        return None, scales[0], rows
    mota = lambda r: r["mota"] if r["mota"] is not None else -1e9  # noqa: E731
    best, k = min(found, key=lambda f: (f[0]["idsw_total"], -mota(f[0]), f[0]["threshold"], f[1]))
    for r in rows:
        r["chosen"] = "yes" if r["oks_scale"] == k and r["threshold"] == best["threshold"] else ""
    return float(best["threshold"]), k, rows


def tune_thresholds(
    opts: TrackingOptions,
    profile: Profile,
    evaluator: Evaluator,
    matchers: Sequence[str],
    delta: int,
    train_gt: Dataset | None = None,
    label: Callable[[str], str] = str,
    cells: Sequence[tuple[str, int]] = ((GT_SETTING, 1),),
    assignment: str = "greedy",
) -> tuple[dict, list[dict], int]:
    """Each matcher's match threshold: given, else OKS's and IoU's tuned on the training split
    (:func:`tune_threshold`), per ``(setting, stride)`` of ``cells`` with ``--tune-on cell``
    (``{(setting, stride): threshold}``), else once on GT keypoints at stride 1. Returns the thresholds,
    the tuning rows and how many head boxes were drawn on the training ground truth."""
    from keytrack.config import load_config
    from keytrack.evaluation.head_boxes import complete_head_boxes

    fixed = fixed_thresholds(opts, matchers)
    thresholds = {m: opts.match_thresholds.get(m, fixed.get(base(m), opts.match_threshold)) for m in matchers}
    to_tune = [m for m in matchers if thresholds[m] is None]
    rows, filled = [], 0
    if to_tune:
        if train_gt is None:
            cfg = load_config([f"experiment={opts.training_experiment}", *opts.train_overrides])
            synthetic = cfg.data.synthetic
            train_gt = profile.load_train(int(synthetic.videos), int(synthetic.seed))
        train_gt, filled = complete_head_boxes(train_gt)
    tuned_on = list(dict.fromkeys(cells)) if opts.tune_on == "cell" else [(GT_SETTING, 1)]
    for m in to_tune:
        per_cell = {}
        for setting, stride in tuned_on:
            tracker = TrackerSpec(
                base(m),
                delta=delta,
                assignment=assignment,
                motion=motion_of(m) or "none",
                min_keypoint_confidence=opts.confidence_of(m, setting),
                detection_threshold=opts.detection_threshold if opts.tune_on == "cell" else None,
                new_track_threshold=opts.new_track_of(m, setting) if opts.tune_on == "cell" else None,
            )
            seed, kp = opts.seeds_for(setting)[0], opts.output_keypoint_threshold(setting)
            train = EvalSet(train_gt, setting, seed, stride, compute_hota=False, keypoint_threshold=kp)
            grid = grid_of(opts, m)
            scales = opts.oks_scale if base(m) == "oks" else (1.0,)
            t, k, grid_rows = _tune_scale_and_threshold(evaluator, tracker, train, grid, scales, m, label(m))
            per_cell[setting, stride] = t
            if len(scales) > 1:
                opts.tuned_scales[base(m), setting, stride] = k
            rows += grid_rows
            if grid_edge(t, grid):
                log.warning(
                    "%s (%s, stride %d): the tuned match threshold %g is an edge of the grid %s; a wider "
                    "--grid may choose another",
                    m,
                    setting,
                    stride,
                    t,
                    list(grid),
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
        + (_training_cost(network) if network.get("train_seconds") else "")
        + ")."
    )


def _training_cost(network: dict) -> str:
    """``, 53,400 steps in 1.6 h`` of a network's training (a resumed run: its last attempt's time)."""
    steps, hours = network.get("global_step"), float(network["train_seconds"]) / 3600
    return (f", {steps:,} steps" if steps else "") + f" in {hours:.2f} h"


@dataclass(frozen=True)
class Cell:
    """One tracking + evaluation run (:class:`EvalSet`'s and :class:`TrackerSpec`'s fields); ``matcher``
    None is a table's only network, trained with ``train_seed``."""

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
    """Each cell's record, run or reused; ``networks[(matcher, train_seed)]`` is ``(network, error)``.
    The cells of one setting and seed run together, largest δ first, so the evaluator's memo of pair
    scores answers the smaller δ."""
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
        new_track_threshold=opts.new_track_of(cell.matcher, cell.setting),
        gate=tuple(opts.gate) if opts.gate and learned else None,
        oks_scale=opts.scale_of(cell.matcher, cell.setting, cell.stride),
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
    """Ablations that train one network per row and track with it (Table 3's tokens, the resolution
    sweep): :meth:`train` once per key (cached while its checkpoint exists), :meth:`track` with it."""

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
        from keytrack.ablations.training import train_or_reuse  # looked up per call: tests stand in for it

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
        params = dict(
            kind="train", experiment=experiment, overrides=list(overrides), train_data=self.train_id
        )
        return self.cache.run(key, run, params)

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
