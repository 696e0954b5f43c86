"""Figure 4 (§4.2): tracking methods compared on the same keypoints.

    python -m ablations.tracker_comparison                                  # quick: synthetic scenes
    python -m ablations.tracker_comparison --data ../shared/data/bonn_mppt  # full: train / test split

KeyTrack's tracking step and its pose estimation are independent (§4.1), so Figure 4 gives every
tracker the *same* keypoints, and what differs between the rows is the identity assignment,
measured as per-joint %IDSW (``100 · ID switches / GT joints``) and total MOTA. This module:

1. trains the transformer matching network on the training split (``keytrack.train`` with
   ``--experiment``, default ``default``), or reuses the finished run of the same configuration;
   likewise the learned baselines (``--methods gcn cnn_keypoints cnn_crops``): LightTrack's Siamese
   GCN of Figure 4 (§4.2) and the CNNs of §5.2 on the pose pair drawn as an image or on the RGB
   crops of both poses, each from its experiment file with the *same* training budget as Pose
   Entailment (optimiser, batch, pairs per epoch, epochs: A.5) and match threshold 0.5, untuned.
   The crop CNN is skipped, with the reason in its rows, on data without image files;
2. tunes the match threshold of the non-learned baselines, OKS and IoU with greedy assignment, on
   the *training* split (ground-truth keypoints, stride 1; lowest %IDSW total over a grid). Pose
   Entailment keeps 0.5, the decision point of its two-class output, untuned (§2, §3.1);
3. on the evaluation split, for each keypoint setting of Figure 4 (``keytrack.perturb``, a fixed
   seed), each frame stride (ground truth and predictions subsampled alike with
   ``keytrack.tracking.subsample``) and each method, tracks online (§3.1: δ = 4 timesteps, greedy
   assignment) and evaluates as poseval does. In the predicted-keypoint settings, keypoints below
   ``--keypoint-threshold`` are removed from the output before MOTA and %IDSW (A.3); AP is the
   keypoints' own, before that threshold, as in Figure 4's AP column;
4. writes ``table.md`` / ``table.csv`` (rows: setting × stride × method, with the paper's
   %IDSW Total, MOTA and AP beside ours on stride 1: Figure 4's GCN values beside our GCN, or as
   a row of their own when our GCN is not run, and the paper's Optical Flow row for reference), ``tuning.md`` / ``tuning.csv`` and ``speed.md`` (frames/s of the tracking step,
   pairs/s through the network), under ``results/tracker_comparison/`` (``.../<data>-<split>/``
   with ``--data``).

Every (setting, stride, method, seed) cell and every tuning point is a cached run
(:class:`ablations.common.RunCache`): running the command again only does what is missing.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ablations.common import (Column, Profile, RunCache, RunOptions, RunRecord, add_options, command_main,
                              complete_head_boxes, dataset_fingerprint, display_path, finish, mean_std,
                              network_or_error, opt, options_from, write_table)
from ablations.scoring import (COMPARISON_KEYPOINT_THRESHOLD, HOTA_COLUMNS, PAPER_KEYPOINT_THRESHOLD,
                               NON_LEARNED, POSE_ENTAILMENT_THRESHOLD, SETTING_LABELS, hota_columns, method_scorer,
                               track_and_evaluate, tune_threshold)
from keytrack.evaluation import COLUMNS
from keytrack.models import registry
from keytrack.perturb import SETTINGS, perturb
from keytrack.poses import Dataset

log = logging.getLogger("ablations.tracker_comparison")

ABLATION = "tracker_comparison"

#: Learned baselines (§4.2, §5.2): every registered matcher but the transformer
#: (keytrack.models.registry), each trained from the experiment file of its name with the training
#: budget (optimiser, loader, epochs) of Pose Entailment's experiment, and tracking with the same
#: match threshold, the decision point 0.5 of its score, untuned.
LEARNED_BASELINES: dict[str, str] = {m.name: m.name for m in registry.MATCHERS.values() if m.baseline}
#: Tracking methods run here (scorer name -> label); all use the same tracker and greedy assignment.
METHODS: dict[str, str] = {
    "pose_entailment": "Pose Entailment",
    "pose_entailment_improved": "Pose Entailment (improved)",
    "oks": "OKS (greedy)",
    "iou": "IoU (greedy)",
    **{name: registry.get(name).label for name in LEARNED_BASELINES},
}
SHORT: dict[str, str] = {**METHODS, "oks": "OKS", "iou": "IoU", "gcn": "GCN", "cnn_crops": "CNN on crops"}
#: A method name with this suffix (``oks+motion``) tracks with ``Tracker(motion="velocity")``: each
#: candidate moved by its track's velocity before scoring (keytrack.tracking.tracker, step 6).
MOTION = "+motion"


def base(method: str) -> str:
    """The scorer of a method name: ``oks+motion`` -> ``oks``."""
    return method.removesuffix(MOTION)


def bases_of(methods: Sequence[str]) -> list[str]:
    """The scorers of ``methods``, each once, in order."""
    return list(dict.fromkeys(base(m) for m in methods))


def motion_of(method: str) -> str:
    """The tracker's ``motion`` setting of a method name."""
    return "velocity" if method.endswith(MOTION) else "none"


def label(method: str, short: bool = False) -> str:
    """``method``'s row label: ``OKS (greedy)``, ``OKS (greedy) + motion``."""
    return (SHORT if short else METHODS)[base(method)] + (" + motion" if method.endswith(MOTION) else "")


#: Every method name ``--methods`` takes: each method, and each with the tracker's motion.
METHOD_NAMES: tuple[str, ...] = (*METHODS, *(m + MOTION for m in METHODS))
#: Methods whose match threshold is tuned on the training split (the non-learned similarities).
TUNED: tuple[str, ...] = NON_LEARNED
#: Figure 4's other rows, shown from the paper only (optical flow needs FlowNet2; the paper's GCN row
#: stands alone when our GCN is not run).
PAPER_ONLY: dict[str, str] = {"gcn": "GCN (paper)", "optical_flow": "Optical Flow (paper)"}
#: Body-part columns of PoseTrack's table.
PARTS: tuple[str, ...] = tuple(COLUMNS)
#: Match thresholds tried for the OKS and IoU baselines on the training split.
DEFAULT_GRID: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass
class Options(RunOptions):
    """Everything the comparison depends on (the command-line options)."""

    strides: tuple[int, ...] = opt((1, 4), type=int, nargs="+", metavar="K", help="frame strides (default: 1 4)")
    seeds: tuple[int, ...] = opt((0,), "--seed", type=int, nargs="+", metavar="S",
                                 help="perturbation seed(s); several give mean ± std (default: 0)")
    settings: tuple[str, ...] = opt(SETTINGS, nargs="+", choices=SETTINGS, metavar="SETTING",
                                    help=f"keypoint settings, of {', '.join(SETTINGS)} (default: all three of "
                                         "Figure 4)")
    methods: tuple[str, ...] = opt(tuple(METHODS), nargs="+", choices=list(METHOD_NAMES), metavar="METHOD",
                                   help=f"tracking methods, of {', '.join(METHODS)} (default: all); METHOD{MOTION} "
                                        "tracks with each candidate moved by its track's velocity (beyond the paper)")
    experiment: str = opt("default", help="training experiment config (default: default)")
    train_seed: int = opt(0, type=int, help="seed of the training run (default: 0)")
    train_seeds: tuple[int, ...] | None = opt(type=int, nargs="+", metavar="S",
                                              help="train every learned method once per seed; cells show mean ± "
                                                   "std (overrides --train-seed)")
    baseline_train_seeds: tuple[int, ...] | None = opt(type=int, nargs="+", metavar="S",
                                                       help="training seeds of the learned baselines (default: "
                                                            "those of --train-seeds)")
    improved_experiment: str = opt("improved", help="experiment of the improved Pose Entailment matcher (default: "
                                                    "improved)")
    improved_overrides: tuple[str, ...] = opt((), "--improved-override", action="append", metavar="KEY=VALUE",
                                              help="extra training override of the improved matcher (repeatable)")
    train_overrides: tuple[str, ...] = opt((), "--train-override", action="append", metavar="KEY=VALUE",
                                           help="extra training config override (repeatable)")
    checkpoint: str | None = opt(help="use this matching-network checkpoint, no training")
    #: ``--baseline-checkpoint METHOD=CKPT``: the checkpoint of a learned baseline, no training
    checkpoints: dict[str, str] = field(default_factory=dict)
    delta: int = opt(4, type=int, help="δ: timesteps looked back (paper: 4)")
    nearest: int | None = opt(type=int, help="Pose Entailment compares with the n nearest poses of each earlier "
                                             "frame (default: all)")
    baseline_nearest: int | None = opt(type=int, help="the learned baselines (gcn, cnn_*) compare with the n nearest "
                                                      "poses of each earlier frame (default: all; a CNN cell costs "
                                                      "minutes on a CPU)")
    keypoint_threshold: float = opt(COMPARISON_KEYPOINT_THRESHOLD, type=float,
                                    help="output keypoint confidence threshold before MOTA in predicted-keypoint "
                                         "settings (A.3; default 0.5, the paper used 0.57)")
    grid: tuple[float, ...] = opt(DEFAULT_GRID, type=float, nargs="+",
                                  help="match thresholds tried for OKS and IoU on the training split")
    #: ``--oks-threshold`` / ``--iou-threshold``: a fixed match threshold (no tuning)
    fixed_thresholds: dict[str, float] = field(default_factory=dict)
    #: the tracker's min_keypoint_confidence per method name ("*": every method) in the
    #: predicted-keypoint settings: keypoints below it are not used for matching (Figure 10).
    min_keypoint_confidence: dict[str, float] = field(default_factory=dict)
    #: ``τ`` of the tracker's two-pass assignment, confident detections first (every method); None:
    #: one pass, the paper's.
    detection_threshold: float | None = opt(type=float, metavar="TAU",
                                            help="every method assigns the poses with detection score >= TAU "
                                                 "first, then the others (keytrack track --detection-threshold; "
                                                 "default: one pass, the paper's)")

    def confidence_of(self, method: str, setting: str) -> float:
        """The tracker's ``min_keypoint_confidence`` for ``method`` in ``setting`` (0 with GT keypoints)."""
        if setting == "gt_boxes_gt_keypoints":
            return 0.0
        return float(self.min_keypoint_confidence.get(method, self.min_keypoint_confidence.get("*", 0.0)))

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [s for s in self.settings if s not in SETTINGS]
        if bad:
            raise ValueError(f"settings: unknown {bad}; expected some of {list(SETTINGS)}")
        bad = [m for m in self.methods if m not in METHOD_NAMES]
        if bad:
            raise ValueError(f"methods: unknown {bad}; expected some of {list(METHODS)}, each optionally "
                             f"with {MOTION!r}")
        bad = [m for m in self.checkpoints if m not in LEARNED_BASELINES]
        if bad:
            raise ValueError(f"checkpoints: only the learned baselines {list(LEARNED_BASELINES)} take one, "
                             f"got {bad} (Pose Entailment's is --checkpoint)")
        for n in (self.nearest, self.baseline_nearest):
            if n is not None and n < 1:
                raise ValueError(f"nearest must be >= 1, got {n}")
        bad = [m for m in self.fixed_thresholds if base(m) not in TUNED]
        if bad:
            raise ValueError(f"fixed_thresholds: only OKS and IoU take a fixed threshold, got {bad} (Pose "
                             f"Entailment uses its decision point {POSE_ENTAILMENT_THRESHOLD})")
        if not self.strides or min(self.strides) < 1:
            raise ValueError(f"strides must be integers >= 1, got {list(self.strides)}")
        if not self.seeds or min(self.seeds) < 0:
            raise ValueError(f"seeds must be integers >= 0, got {list(self.seeds)}")
        if not self.grid or not all(0.0 <= t <= 1.0 for t in self.grid):
            raise ValueError(f"grid: match thresholds must lie in [0, 1], got {list(self.grid)}")
        if self.train_seeds is not None and (not self.train_seeds or min(self.train_seeds) < 0):
            raise ValueError(f"train_seeds must be integers >= 0, got {list(self.train_seeds)}")
        if not 0.0 <= self.keypoint_threshold <= 1.0:
            raise ValueError(f"keypoint_threshold must lie in [0, 1], got {self.keypoint_threshold}")
        bad = {m: t for m, t in self.min_keypoint_confidence.items()
               if (m != "*" and m not in METHOD_NAMES) or not 0.0 <= float(t) <= 1.0}
        if bad:
            raise ValueError(f"min_keypoint_confidence: expected METHOD=τ (METHOD one of the methods or '*', "
                             f"τ in [0, 1]), got {bad}")


    @property
    def seeds_of_training(self) -> tuple[int, ...]:
        """The training seeds of every learned method: ``train_seeds``, else ``(train_seed,)``."""
        return tuple(self.train_seeds) if self.train_seeds else (int(self.train_seed),)

    @property
    def seeds_of_baselines(self) -> tuple[int, ...]:
        """The training seeds of the learned baselines (GCN, CNNs)."""
        return tuple(self.baseline_train_seeds) if self.baseline_train_seeds else self.seeds_of_training


#: The Pose Entailment methods: each is a transformer trained from its own experiment.
POSE_ENTAILMENT_METHODS = ("pose_entailment", "pose_entailment_improved")


def is_learned(method: str) -> bool:
    return base(method) in POSE_ENTAILMENT_METHODS or base(method) in LEARNED_BASELINES


@dataclass
class Comparison:
    """What :func:`run_comparison` produced: the table rows, the files written, the failures."""

    rows: list[dict]
    tuning_rows: list[dict]
    speed_rows: list[dict]
    thresholds: dict[str, float | None]
    out: Path
    files: list[Path]
    failures: list[str]


# -- one cell ----------------------------------------------------------------------------------------

# -- steps ----------------------------------------------------------------------------------------------

def _matching_network(opts: Options, profile: Profile, method: str = "pose_entailment",
                      seed: int | None = None) -> tuple[dict | None, str | None]:
    """``({checkpoint, digest, ...}, None)``, or ``(None, "<error>")`` when training failed: the paper's
    transformer (``--experiment``) or the improved one (``--improved-experiment``)."""
    seed = opts.train_seed if seed is None else seed
    improved = method == "pose_entailment_improved"
    return network_or_error(profile, checkpoint=None if improved else opts.checkpoint,
                            experiment=opts.improved_experiment if improved else opts.experiment, train_seed=seed,
                            train_overrides=opts.improved_overrides if improved else opts.train_overrides,
                            wait=opts.wait_for_training)


def budget_overrides(experiment: str, overrides: Sequence[str] = ()) -> list[str]:
    """The training budget of ``experiment`` (with ``overrides``) as ``key=value`` overrides: its
    ``optim`` and ``loader`` sections and ``trainer.max_epochs``. Added to a learned baseline's own
    experiment file, they train it as Pose Entailment's network was trained (A.5: "the batch size,
    learning rate, and number of training epochs are the same")."""
    from omegaconf import OmegaConf

    from keytrack.config import load_config

    cfg = load_config([f"experiment={experiment}", *overrides])
    out = [f"{section}.{key}={json.dumps(value)}" for section in ("optim", "loader")
           for key, value in OmegaConf.to_container(cfg[section], resolve=True).items()]
    return [*out, f"trainer.max_epochs={json.dumps(OmegaConf.select(cfg, 'trainer.max_epochs'))}"]


def _baseline_network(opts: Options, profile: Profile, method: str,
                      seed: int | None = None) -> tuple[dict | None, str | None]:
    """The network of a learned baseline: ``--baseline-checkpoint``, else its experiment trained with
    Pose Entailment's budget (run ``<data>-<experiment>-budget-seed<k>``) or that finished run."""
    from keytrack.config import data_tag, load_config

    seed = opts.train_seed if seed is None else seed
    what = f"{method} network"
    if method in opts.checkpoints:
        return network_or_error(profile, what, checkpoint=opts.checkpoints[method],
                                experiment=LEARNED_BASELINES[method], train_seed=seed)
    try:
        tag = data_tag(load_config(profile.train_overrides()).data)
        overrides = [*budget_overrides(opts.experiment, opts.train_overrides), *opts.train_overrides,
                     f"run_name={tag}-{opts.experiment}-budget-seed{seed}"]
    except Exception as err:    # noqa: BLE001 - the other methods still run; this method's cells fail
        log.error("%s: %s: %s", what, type(err).__name__, err)
        return None, f"{type(err).__name__}: {err}"
    return network_or_error(profile, what, checkpoint=None, experiment=LEARNED_BASELINES[method], train_seed=seed,
                            train_overrides=overrides, wait=opts.wait_for_training)


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


def _train_ground_truth(opts: Options, profile: Profile) -> Dataset:
    from keytrack.config import load_config

    synthetic = load_config([f"experiment={opts.experiment}", *opts.train_overrides]).data.synthetic
    return profile.load_train(int(synthetic.videos), int(synthetic.seed))


def _paper_figure4() -> dict:
    from keytrack.reference import paper_results

    return paper_results()["tracker_comparison"]["settings"]


def _value(records: list[RunRecord], getter, seeds: int):
    """One seed: the value; several: :class:`MeanStd` over the successful seeds."""
    values = [getter(r.result) for r in records if r.ok]
    if seeds == 1:
        return values[0] if values else None
    return mean_std(values)


def _table_rows(cells: dict, opts: Options, thresholds: dict, paper: dict,
                skipped: dict[str, str] | None = None) -> list[dict]:
    rows = []
    skipped = skipped or {}
    paper_only = {m: name for m, name in PAPER_ONLY.items() if m not in opts.methods}
    for setting in opts.settings:
        ref = paper[setting]
        for stride in opts.strides:
            for method in opts.methods:
                records = cells.get((setting, stride, method), [])
                n = max(1, len(records))
                row = {"setting": SETTING_LABELS[setting], "stride": stride, "method": label(method),
                       "threshold": None if method in skipped else thresholds.get(method)}
                for part in (*PARTS, "Total"):
                    row[part] = _value(records, lambda r, p=part: r["idsw"][p], n)
                row["mota"] = _value(records, lambda r: r["mota"]["Total"], n)
                for k in HOTA_COLUMNS:
                    row[k] = _value(records, lambda r, k=k: r.get("hota", {}).get(k), n)
                row["ap"] = _value(records, lambda r: r["ap"]["Total"], n)
                if stride == 1:
                    row["ap_paper"] = ref["ap_total"]
                    if method in ref:                   # the paper's own rows (no motion)
                        row["idsw_paper"] = ref[method]["idsw"][-1]
                        row["mota_paper"] = ref[method]["mota_total"]
                failed = [f"{r.key}: {r.failure}" if n > 1 else r.failure for r in records if not r.ok]
                row["status"] = ("skipped: " + skipped[method] if method in skipped
                                 else "failed: " + "; ".join(failed) if failed else None)
                rows.append(row)
            if stride == 1:
                rows += _paper_rows(setting, ref, paper_only)
        if 1 not in opts.strides:
            rows += _paper_rows(setting, ref, paper_only)
    return rows


def _paper_rows(setting: str, ref: dict, methods: dict[str, str] = PAPER_ONLY) -> list[dict]:
    """Figure 4's rows of ``methods`` (GCN, Optical Flow) of one setting (paper values only, stride 1)."""
    return [{"setting": SETTING_LABELS[setting], "stride": 1, "method": label,
             "idsw_paper": ref[method]["idsw"][-1], "mota_paper": ref[method]["mota_total"],
             "ap_paper": ref["ap_total"]} for method, label in methods.items()]


def _columns(rows: list[dict]) -> list[Column]:
    cols = [Column("setting", "Keypoints"), Column("stride", "Stride"), Column("method", "Method"),
            Column("threshold", "Match thr.", digits=2),
            *(Column(p, p, digits=2) for p in PARTS),
            Column("Total", "%IDSW Total", digits=2), Column("idsw_paper", "%IDSW Total (paper)"),
            Column("mota", "MOTA"), Column("mota_paper", "MOTA (paper)"),
            *hota_columns(rows),
            Column("ap", "AP"), Column("ap_paper", "AP (paper)")]
    if any(r.get("status") for r in rows):
        cols.append(Column("status", "Status"))
    return cols


def _speed_rows(cells: dict, opts: Options) -> list[dict]:
    rows = []
    stride = 1 if 1 in opts.strides else opts.strides[0]
    for setting in opts.settings:
        for method in opts.methods:
            if (setting, stride, method) not in cells:          # a skipped method
                continue
            record = cells[(setting, stride, method)][0]
            r = record.result if record.ok else {}
            rows.append({"setting": SETTING_LABELS[setting], "method": label(method),
                         "frames": r.get("frames"), "poses": r.get("poses"),
                         "frames_per_s": r.get("frames_per_s"), "pairs": r.get("pairs"),
                         "forwards": r.get("forwards"), "pairs_per_s": r.get("pairs_per_s"),
                         "measured": record.finished_at or None, "status": record.failure})
    return rows


def run_comparison(opts: Options, *, train_gt: Dataset | None = None,
                   eval_gt: Dataset | None = None) -> Comparison:
    """Run (or reuse) every cell of Figure 4 and write the tables; see the module docstring.

    ``train_gt`` / ``eval_gt`` replace the profile's training / evaluation ground truth (the
    training of the matching network still follows ``opts``; pass ``opts.checkpoint`` to skip it).
    """
    import torch

    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    profile = Profile.from_data(opts.data, opts.eval_split, synthetic_eval_videos=opts.synthetic_test_videos)
    out = Path(opts.out) if opts.out else profile.results_dir(ABLATION)
    cache = RunCache(out / "runs", retry_failed=opts.retry_failed)
    failures: list[str] = []

    # 1. The matching networks (trained on the training split, or reused), one per training seed.
    train_seeds = opts.seeds_of_training
    networks: dict[tuple[str, int], tuple[dict | None, str | None]] = {}
    # The improved matcher trains last: its runs are often trained ahead, in another process.
    bases = bases_of(opts.methods)
    for method in sorted(bases, key=lambda m: m == "pose_entailment_improved"):
        if method in POSE_ENTAILMENT_METHODS:
            for s in train_seeds:
                networks[method, s] = _matching_network(opts, profile, method, s)
                if networks[method, s][1]:
                    failures.append(f"{SHORT[method]} network (seed {s}): {networks[method, s][1]}")
    network, network_error = networks.get(("pose_entailment", train_seeds[0]), (None, None))

    # 1b. The learned baselines (§4.2, §5.2), trained with Pose Entailment's budget; the crop CNN is
    #     skipped on data without image files.
    eval_description = profile.describe("eval") if eval_gt is None else "ground truth given by the caller"
    eval_gt = profile.load_eval() if eval_gt is None else eval_gt
    skipped: dict[str, str] = {}
    if "cnn_crops" in bases and "cnn_crops" not in opts.checkpoints:
        reason = missing_images(profile, eval_gt)
        if reason:
            skipped.update({m: reason for m in (*opts.methods, "cnn_crops") if base(m) == "cnn_crops"})
            log.warning("cnn_crops: skipped: %s", reason)
    baselines: dict[str, tuple[dict | None, str | None]] = {}
    for method in bases:
        if method in LEARNED_BASELINES and method not in skipped:
            for s in opts.seeds_of_baselines:
                networks[method, s] = _baseline_network(opts, profile, method, s)
                if networks[method, s][1]:
                    failures.append(f"{method} network (seed {s}): {networks[method, s][1]}")
            baselines[method] = networks[method, opts.seeds_of_baselines[0]]

    # 2. Match thresholds: Pose Entailment's and the learned baselines' decision point (0.5); OKS / IoU
    #    tuned on the training split.
    thresholds: dict[str, float | None] = {m: POSE_ENTAILMENT_THRESHOLD for m in opts.methods if is_learned(m)}
    tuning_rows: list[dict] = []
    to_tune = [m for m in opts.methods if base(m) in TUNED and m not in opts.fixed_thresholds]
    thresholds.update({m: float(t) for m, t in opts.fixed_thresholds.items() if m in opts.methods})
    filled = 0
    train_description = profile.describe("train") if train_gt is None else "ground truth given by the caller"
    if to_tune:
        train_gt = _train_ground_truth(opts, profile) if train_gt is None else train_gt
        train_gt, filled = complete_head_boxes(train_gt)
        train_id = dataset_fingerprint(train_gt)
        for method in to_tune:
            thresholds[method], rows = tune_threshold(cache, base(method), train_gt, opts.grid, delta=opts.delta,
                                                      seed=opts.seeds[0], data_id=train_id, motion=motion_of(method),
                                                      key=method, label=label(method))
            tuning_rows += rows
            if thresholds[method] is None:
                failures.append(f"{method}: every tuning run failed")

    # 3. The cells: setting × stride × method × seed on the evaluation split.
    eval_id = dataset_fingerprint(eval_gt)
    image_root = str(profile.data_root) if profile.data_root is not None else None
    methods = [m for m in opts.methods if m not in skipped]
    cells: dict[tuple[str, int, str], list[RunRecord]] = {}
    runs = [(m, s) for m in methods
            for s in (opts.seeds_of_baselines if base(m) in LEARNED_BASELINES else train_seeds if is_learned(m)
                      else (None,))]
    total = len(opts.settings) * len(opts.strides) * len(runs) * len(opts.seeds)
    done = 0
    for seed in opts.seeds:
        for setting in opts.settings:
            predicted: Dataset | None = None
            for stride in opts.strides:
                subsampled: tuple[Dataset, Dataset] | None = None
                for method, train_seed in runs:
                    kp_threshold = 0.0 if setting == "gt_boxes_gt_keypoints" else opts.keypoint_threshold
                    params = {"kind": "cell", "data": eval_id, "setting": setting, "stride": stride,
                              "method": method, "seed": seed, "match_threshold": thresholds.get(method),
                              "delta": opts.delta, "keypoint_threshold": kp_threshold}
                    net, error = networks.get((base(method), train_seed), (None, None))
                    if base(method) in POSE_ENTAILMENT_METHODS:
                        params.update(nearest=opts.nearest, checkpoint=net and net["digest"])
                    elif base(method) in LEARNED_BASELINES:  # new keys: the cached cells of the others stay valid
                        params.update(nearest=opts.baseline_nearest, checkpoint=net and net["digest"])
                    if motion_of(method) != "none":
                        params.update(motion=motion_of(method))
                    confidence = opts.confidence_of(method, setting)
                    if confidence > 0:               # a new key: the cached cells without it stay valid
                        params.update(min_keypoint_confidence=confidence)
                    if opts.detection_threshold is not None:        # a new key, likewise
                        params.update(detection_threshold=opts.detection_threshold)

                    def cell(setting=setting, stride=stride, method=method, seed=seed, kp=kp_threshold,
                             net=net, error=error, confidence=confidence):
                        nonlocal predicted, subsampled
                        from keytrack.tracking import subsample

                        if thresholds.get(method) is None:
                            raise RuntimeError(f"no match threshold for {method} (every tuning run failed)")
                        if predicted is None:
                            predicted = perturb(eval_gt, setting, seed)
                        if subsampled is None:
                            subsampled = (subsample(eval_gt, stride), subsample(predicted, stride))
                        if is_learned(method):
                            if error or net is None:
                                raise RuntimeError(f"no {label(method, short=True)} network: {error}")
                            scorer = method_scorer(base(method), net["checkpoint"], opts.device, opts.batch_size,
                                                   image_root=image_root, split=profile.eval_split)
                            nearest = opts.baseline_nearest if base(method) in LEARNED_BASELINES else opts.nearest
                        else:
                            scorer = method_scorer(base(method), None, opts.device, opts.batch_size)
                            nearest = None
                        return track_and_evaluate(*subsampled, scorer, match_threshold=thresholds[method],
                                                  delta=opts.delta, nearest=nearest, keypoint_threshold=kp,
                                                  motion=motion_of(method), min_keypoint_confidence=confidence,
                                                  detection_threshold=opts.detection_threshold)

                    done += 1
                    seeds_of = opts.seeds_of_baselines if base(method) in LEARNED_BASELINES else train_seeds
                    trained = "" if train_seed is None or len(seeds_of) == 1 and train_seed == opts.train_seed \
                        else f"-train{train_seed}"
                    log.info("[%d/%d] %s, stride %d, %s%s, seed %d", done, total, setting, stride, method,
                             trained, seed)
                    record = cache.run(f"{setting}-stride{stride}-{method}{trained}-seed{seed}", cell, params)
                    cells.setdefault((setting, stride, method), []).append(record)
                    if not record.ok:
                        failures.append(f"{record.key}: {record.failure}")

    # 4. Tables.
    paper = _paper_figure4()
    rows = _table_rows(cells, opts, thresholds, paper, skipped)
    notes = _notes(opts, profile, eval_gt, network, network_error, thresholds, cache, train_description,
                   eval_description, baselines, skipped, networks)
    files = list(write_table(rows, out, columns=_columns(rows),
                             title="Tracking methods on the same keypoints (Figure 4, §4.2)", notes=notes))
    if tuning_rows:
        files += write_table(
            tuning_rows, out, name="tuning",
            columns=[Column("method", "Method"), Column("threshold", "Match thr.", digits=2),
                     Column("idsw_total", "%IDSW Total", digits=2), Column("mota", "MOTA"),
                     Column("switches", "ID switches"), Column("chosen", "Chosen"),
                     *([Column("status", "Status")] if any(r["status"] for r in tuning_rows) else [])],
            title="Match thresholds of the baselines, tuned on the training split",
            notes=[f"Training split: {train_description}, GT keypoints (c = 1), stride 1, "
                   f"δ = {opts.delta}, greedy assignment; chosen: lowest %IDSW Total, then highest MOTA, "
                   "then lowest threshold.",
                   *([f"{filled} ground-truth poses without a head box got one from head_top/head_bottom "
                      "(ablations.common.complete_head_boxes) so that PCKh matching can score them."]
                     if filled else [])])
    speed_rows = _speed_rows(cells, opts)
    files += write_table(
        speed_rows, out, name="speed",
        columns=[Column("setting", "Keypoints"), Column("method", "Method"), Column("frames", "Frames"),
                 Column("poses", "Poses"), Column("frames_per_s", "Frames/s", digits=0),
                 Column("pairs", "Pairs scored"), Column("forwards", "Network forwards"),
                 Column("pairs_per_s", "Pairs/s", digits=0), Column("measured", "Measured (UTC)"),
                 *([Column("status", "Status")] if any(r["status"] for r in speed_rows) else [])],
        title="Speed of the tracking step (stride 1)",
        notes=[f"Evaluation split: {eval_description}; perturbation seed {opts.seeds[0]}.",
               "Frames/s: the whole tracking step per frame (candidates, scoring, assignment); "
               "pairs/s: pose pairs through the matching network per second of network time, "
               "tokenizing included.",
               f"Pose Entailment: one batched forward per frame, nearest = "
               f"{opts.nearest if opts.nearest else 'all'} candidate poses per earlier frame, "
               f"δ = {opts.delta}, device {opts.device}, {torch.get_num_threads()} torch threads, "
               f"{os.cpu_count()} CPUs; measured when each cell last ran (column Measured), on a "
               "machine shared with other jobs."])
    return Comparison(rows, tuning_rows, speed_rows, thresholds, out, [Path(f) for f in files], failures)


def _notes(opts: Options, profile: Profile, eval_gt: Dataset, network: dict | None, network_error: str | None,
           thresholds: dict, cache: RunCache, train_description: str, eval_description: str,
           baselines: dict | None = None, skipped: dict[str, str] | None = None,
           networks: dict | None = None) -> list[str]:
    baselines, skipped, networks = baselines or {}, skipped or {}, networks or {}
    train_seeds = opts.seeds_of_training
    learned = [m for m in bases_of(opts.methods) if m in LEARNED_BASELINES]
    tuned = [m for m in opts.methods if base(m) in TUNED]
    notes = [
        f"Evaluation: {eval_description} ({eval_gt.report()}); the paper: PoseTrack 2018 val. "
        "Per-part columns and %IDSW Total are %IDSW = 100 · ID switches / GT joints (§4.1); Total is "
        "poseval's mean over the joints it can score.",
        "Keypoints: keytrack.perturb, perturbation seed" + ("s " if len(opts.seeds) > 1 else " ")
        + ", ".join(map(str, opts.seeds))
        + (" (mean ± sample std over seeds)" if len(opts.seeds) > 1 else "")
        + ". Stride k: ground truth and predictions both keep every k-th frame "
          "(keytrack.tracking.subsample).",
        f"Tracker (§3.1): δ = {opts.delta} timesteps, greedy assignment, track score = maximum over the "
        "window (A.4); Pose Entailment compares with "
        + (f"the {opts.nearest} nearest poses of each earlier frame" if opts.nearest else "every pose of the "
           "earlier frames")
        + ("; the learned baselines with " + (f"the {opts.baseline_nearest} nearest poses of each earlier "
                                               "frame (--baseline-nearest, to bound their cost)"
                                               if opts.baseline_nearest else "every pose") if learned else "")
        + "; OKS and IoU with every pose."
        + ("" if opts.detection_threshold is None else
           f" Confident first, for every method: poses with detection score >= {opts.detection_threshold:g} "
           "are assigned first, to the tracks with such an appearance in the window, then every pose left "
           "over every track left (--detection-threshold, keytrack.tracking.tracker step 7; the paper: one pass)."),
        f"Match thresholds: Pose Entailment {POSE_ENTAILMENT_THRESHOLD} (its decision point, not tuned)"
        + "".join(f"; {SHORT[m]} {POSE_ENTAILMENT_THRESHOLD}" for m in learned)
        + (" (the learned baselines' decision point too, untuned)" if learned else "")
        + "".join(f"; {label(m, short=True)} {thresholds[m]:g}" + (" (given)" if m in opts.fixed_thresholds else "")
                  if thresholds.get(m) is not None else f"; {label(m, short=True)} none (tuning failed)"
                  for m in tuned)
        + (f"; tuned on the training split ({train_description}, GT keypoints, stride 1) over "
           f"{', '.join(f'{t:g}' for t in opts.grid)} for the lowest %IDSW Total (tuning.md)."
           if any(m not in opts.fixed_thresholds for m in tuned) else "."),
        f"MOTA and %IDSW in the predicted-keypoint settings: keypoints with confidence below "
        f"{opts.keypoint_threshold:g} are removed from the output first (A.3; the paper uses "
        f"{PAPER_KEYPOINT_THRESHOLD}). AP: the keypoints' own, before that threshold (Figure 4's AP column)."
        + ("" if not opts.min_keypoint_confidence else " Matching uses only the predicted keypoints with "
           "confidence ≥ τ (the tracker's min_keypoint_confidence; Figure 10: keypoint predictions \"not used "
           "due to low confidence\"): " + ", ".join(f"{'every method' if m == '*' else label(m, short=True)} "
                                                    f"τ = {t:g}" for m, t in opts.min_keypoint_confidence.items())
           + "; the output keeps every keypoint."),
        ("GCN (ours): our implementation of LightTrack's Siamese GCN (keytrack/models/gcn.py), trained "
         "here, with Figure 4's GCN values (LightTrack's pretrained GCN) beside it; "
         if "gcn" in opts.methods else "The GCN row is the paper's alone (run --methods gcn for ours); ")
        + "the Optical Flow row is the paper's alone (it needs FlowNet2 and the video frames); the paper "
          "does not report IoU, OKS or CNN tracking in Figure 4. Paper values are shown on stride-1 rows.",
    ]
    if learned:
        notes.append(f"Learned baselines (§4.2, §5.2): each trained on the training split from its experiment "
                     f"file ({', '.join(f'experiments/{LEARNED_BASELINES[m]}.yaml' for m in learned)}) with the "
                     f"training budget of experiment {opts.experiment} (its optim, loader and max_epochs, as A.5 "
                     "trains the CNNs like the transformer), training seed "
                     f"{opts.train_seed}; the CNNs at model.resolution of base.yaml.")
    for m in learned:
        net, error = baselines.get(m, (None, None))
        if m in skipped:
            notes.append(f"{SHORT[m]}: skipped, {skipped[m]}.")
        elif net:
            acc = net.get("best_val_acc")
            notes.append(f"{SHORT[m]} network: {display_path(net['checkpoint'])} ({net['source']}"
                         + (f", best val/acc {acc:.3f}" if isinstance(acc, float) else "") + ").")
        elif error:
            notes.append(f"{SHORT[m]} network: unavailable ({error}); its rows failed.")
    if len(train_seeds) > 1 or len(opts.seeds_of_baselines) > 1:
        notes.append(f"Pose Entailment: trained with seeds {', '.join(map(str, train_seeds))}"
                     + (f", the learned baselines with seeds {', '.join(map(str, opts.seeds_of_baselines))}"
                        if learned else "")
                     + "; a cell over several trainings is their mean ± sample std (one perturbation seed each).")
    if any(m.endswith(MOTION) for m in opts.methods):
        notes.append("+ motion (beyond the paper): the same tracker and scorer, each candidate first moved by "
                     "its track's velocity times Δ (how far the track moved since its previous appearance in the "
                     "window, per timestep: keytrack.pairs.pose_motion; keytrack.tracking.Tracker, "
                     "motion='velocity'); "
                     "its match threshold, for OKS and IoU, tuned on the training split with motion too.")
    if "pose_entailment_improved" in bases_of(opts.methods):
        notes.append(f"Pose Entailment: experiments/{opts.experiment}.yaml (the paper's model, tokens and loss); "
                     f"Pose Entailment (improved): experiments/{opts.improved_experiment}.yaml"
                     + (f" with {' '.join(opts.improved_overrides)}" if opts.improved_overrides else "")
                     + " (docs/matchers.md).")
    for (method, s), (net, error) in sorted(networks.items()):
        if method not in POSE_ENTAILMENT_METHODS:
            continue
        if net:
            acc, rank1 = net.get("best_val_acc"), net.get("best_val_rank1")
            notes.append(f"{SHORT[method]} network, seed {s}: {display_path(net['checkpoint'])} ({net['source']}"
                         + (f", experiment {net['experiment']}" if net.get("experiment") else "")
                         + (f", val/rank1 {rank1:.4f}" if isinstance(rank1, float) else "")
                         + (f", val/acc {acc:.3f}" if isinstance(acc, float) else "") + ").")
        elif error:
            notes.append(f"{SHORT[method]} network, seed {s}: unavailable ({error}); its rows failed.")
    if profile.data_root is not None:
        notes.append("An empty cell is a value the data cannot give (e.g. Head on data that never "
                     "annotates the nose, as Bonn, where the AP of GT keypoints is 93.3: poseval scores the "
                     "missing nose as AP 0) or a failed run.")
    notes.append(f"Runs are cached in {cache.directory}/ ({cache.reused} reused, {cache.computed} run now); "
                 "delete a file there to run it again.")
    return notes


# -- command line ---------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, Options, ABLATION)
    add = parser.add_argument
    add("--baseline-checkpoint", action="append", default=[], metavar="METHOD=CKPT",
        help=f"use this checkpoint for a learned baseline ({', '.join(LEARNED_BASELINES)}), no training (repeatable)")
    add("--min-keypoint-confidence", nargs="+", default=[], metavar="[METHOD=]TAU",
        help="predicted-keypoint settings: the tracker matches only keypoints with confidence >= TAU "
             "(keytrack track --min-keypoint-confidence), for METHOD or, without METHOD=, every method "
             "(default: 0, every keypoint)")
    add("--oks-threshold", type=float, default=None, help="fix OKS's match threshold (no tuning)")
    add("--iou-threshold", type=float, default=None, help="fix IoU's match threshold (no tuning)")


def options_from_args(args: argparse.Namespace) -> Options:
    fixed = {m: t for m, t in (("oks", args.oks_threshold), ("iou", args.iou_threshold)) if t is not None}
    checkpoints = {}
    for item in args.baseline_checkpoint:
        method, sep, path = item.partition("=")
        if not sep or not path:
            raise ValueError(f"--baseline-checkpoint: expected METHOD=CKPT, got {item!r}")
        checkpoints[method] = path
    confidence = {}
    for item in args.min_keypoint_confidence:
        method, sep, value = item.rpartition("=")
        try:
            confidence[method if sep else "*"] = float(value)
        except ValueError:
            raise ValueError(f"--min-keypoint-confidence: expected [METHOD=]TAU, got {item!r}") from None
    return options_from(Options, args, fixed_thresholds=fixed, checkpoints=checkpoints,
                        min_keypoint_confidence=confidence)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        opts = options_from_args(args)
    except ValueError as err:
        raise SystemExit(f"tracker comparison: {err}") from None
    return finish("tracker comparison", run_comparison(opts), tables=("table", "speed"))


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("python -m ablations.tracker_comparison", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    from keytrack.errors import run_command

    sys.exit(run_command("python -m ablations.tracker_comparison", main))
