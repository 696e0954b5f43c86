"""Figure 7 (right), §5.2: ID switches against input resolution, transformer vs. CNNs.

    python -m ablations.resolution_sweep                                   # quick: synthetic, CPU budget
    python -m ablations.resolution_sweep --data ../shared/data/bonn_mppt   # the data's train / test split
    python -m ablations.resolution_sweep --profile full --device cuda      # the paper's training (GPU)

§5.2 ("Self-Attention vs. Convolution") replaces the Transformer Matching Network with two CNNs of
the same architecture (A.5), one on the pose pair drawn as an image (keypoints only), one on the
RGB crops of both poses' boxes, and plots %IDSW against the input resolution (Figure 7 right): the
transformer, whose resolution is its Position grid, has fewer ID switches than both CNNs at low
resolution, and the CNNs catch up at high resolution, where the transformer would need far more
parameters (the paper picks 24 × 18). Figure 7 gives a plot, no numbers, so this module reports
ours and checks the claims (``keytrack/reference/paper_results.yaml``, ``resolution_sweep``).

For each method, resolution ``w × h`` and training seed it

1. trains the network (:func:`ablations.common.train_or_reuse`; a finished run of the same
   configuration is reused): the transformer with ``tokens.grid=[w,h]`` (experiment ``paper``),
   the CNNs with ``model.resolution=[w,h]`` (experiments ``cnn_keypoints``, ``cnn_crops``), all
   with the *same* budget (A.5): ``experiments/resolution_quick.yaml`` in the quick profile, the
   experiment files as they are (the paper's 25 epochs over every pair) in the full one;
2. counts its parameters and FLOPs per pose pair (:func:`ablations.cost.count`);
3. tracks the evaluation split with it (default: predicted boxes and predicted keypoints, A.4's
   analysis setting, drawn once with a fixed perturbation seed; δ = 4, greedy, match threshold 0.5,
   keypoints below 0.57 removed before scoring, A.3) and records %IDSW Total and MOTA;
4. writes ``results/resolution_sweep/table.md`` / ``table.csv`` (``.../<data>-<split>/`` with
   ``--data``; ``.../full/`` below for the full profile): method × resolution, mean ± std over
   seeds, with a *claims* section in the notes saying whether each of the paper's claims holds
   on our numbers, and ``idsw_vs_resolution.png`` (%IDSW and validation match accuracy against
   the resolution's long edge on a log2 axis, one line per method, seeds as error bars).

The quick profile is sized for a CPU: a small budget, a small synthetic evaluation set (6 videos)
and the tracker's ``nearest = 1`` (each pose compared with the nearest pose of each earlier frame),
so that a CNN at 96 × 72 (~1.1 GFLOPs per pair) tracks in a minute or two. Data without image files
(``--data`` on Bonn) cannot train the crop CNN: its rows fail with the data's error and the other
methods go on. Every training, cost count and tracking is a cached run
(:class:`ablations.common.RunCache`): running the command again does only what is missing.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ablations.common import (Column, MeanStd, Profile, RunCache, RunRecord, add_run_arguments,
                              budget_file_overrides, describe_budget, display_path, mean_std, write_table)
from ablations.tracker_comparison import (CNN_BATCH_SIZE, PAPER_KEYPOINT_THRESHOLD, POSE_ENTAILMENT_THRESHOLD,
                                          SETTING_LABELS)
from ablations.tracking_ablation import PAPER_SETTING, PROFILES, Result, TrainAndTrack, failure_status, finish
from keytrack.config import overrides_for
from keytrack.perturb import SETTINGS
from keytrack.poses import Dataset

log = logging.getLogger("ablations.resolution_sweep")

ABLATION = "resolution_sweep"

#: Figure 7's methods: name -> table label.
METHODS: dict[str, str] = {
    "transformer": "Transformer (keypoints)",
    "cnn_keypoints": "CNN (keypoints)",
    "cnn_crops": "CNN (image crops)",
}
#: The experiment file each method trains from.
EXPERIMENTS: dict[str, str] = {"transformer": "paper", "cnn_keypoints": "cnn_keypoints", "cnn_crops": "cnn_crops"}
#: Resolutions (w, h) of each profile: the quick one stops at 96 × 72 (a CNN step there is ~0.8 s on a CPU).
RESOLUTIONS: dict[str, tuple[tuple[int, int], ...]] = {
    "quick": ((12, 9), (24, 18), (48, 36), (96, 72)),
    "full": ((12, 9), (24, 18), (48, 36), (96, 72), (192, 144), (384, 288)),
}
#: Training seeds, synthetic test videos and the tracker's ``nearest`` of each profile.
DEFAULT_SEEDS: dict[str, tuple[int, ...]] = {"quick": (0, 1), "full": (0, 1, 2)}
DEFAULT_TEST_VIDEOS: dict[str, int] = {"quick": 6, "full": 20}
DEFAULT_NEAREST: dict[str, int | None] = {"quick": 1, "full": None}
#: The experiment file whose keys make the quick profile's training budget.
QUICK_BUDGET = "resolution_quick"
#: Low resolutions for the claims: long edge at most the paper's chosen 24 × 18.
LOW_MAX_EDGE = 24

_RESOLUTION = re.compile(r"^\s*(\d+)\s*[xX×,]\s*(\d+)\s*$")


def parse_resolution(text: str) -> tuple[int, int]:
    """``"24x18"`` -> ``(24, 18)`` (w × h, both >= 2)."""
    match = _RESOLUTION.match(str(text))
    if not match:
        raise ValueError(f"resolution: expected WxH (e.g. 24x18), got {text!r}")
    w, h = int(match.group(1)), int(match.group(2))
    if min(w, h) < 2:
        raise ValueError(f"resolution: both sides must be >= 2, got {text!r}")
    return w, h


def label(resolution: tuple[int, int]) -> str:
    return f"{resolution[0]}x{resolution[1]}"


@dataclass
class Options:
    """Everything the sweep depends on (the command-line options); ``None`` means the profile's default."""

    data: str | None = None
    eval_split: str | None = None
    out: str | None = None
    profile: str = "quick"
    resolutions: tuple[tuple[int, int], ...] | None = None
    seeds: tuple[int, ...] | None = None
    methods: tuple[str, ...] = tuple(METHODS)
    setting: str = PAPER_SETTING
    perturb_seed: int = 0
    delta: int = 4
    match_threshold: float = POSE_ENTAILMENT_THRESHOLD
    keypoint_threshold: float = PAPER_KEYPOINT_THRESHOLD
    nearest: int | None | str = "profile"
    train_overrides: tuple[str, ...] = ()
    synthetic_test_videos: int | None = None
    device: str = "cpu"
    batch_size: int = 16384
    threads: int | None = None
    retry_failed: bool = True
    wait_for_training: bool = True

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"profile: expected one of {list(PROFILES)}, got {self.profile!r}")
        self.resolutions = tuple(tuple(int(v) for v in r) for r in (self.resolutions or RESOLUTIONS[self.profile]))
        if any(len(r) != 2 or min(r) < 2 for r in self.resolutions) or \
                len(set(self.resolutions)) != len(self.resolutions):
            raise ValueError(f"resolutions must be distinct (w, h) with both >= 2, got {list(self.resolutions)}")
        self.seeds = tuple(int(s) for s in (self.seeds or DEFAULT_SEEDS[self.profile]))
        if min(self.seeds) < 0 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct integers >= 0, got {list(self.seeds)}")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods: unknown {bad}; expected some of {list(METHODS)}")
        if self.setting not in SETTINGS:
            raise ValueError(f"setting: unknown {self.setting!r}; expected one of {list(SETTINGS)}")
        if self.nearest == "profile":
            self.nearest = DEFAULT_NEAREST[self.profile]
        if self.nearest is not None and int(self.nearest) < 1:
            raise ValueError(f"nearest must be >= 1, got {self.nearest}")
        if self.synthetic_test_videos is None:
            self.synthetic_test_videos = DEFAULT_TEST_VIDEOS[self.profile]
        if self.synthetic_test_videos < 1 or self.delta < 1 or self.perturb_seed < 0:
            raise ValueError("synthetic_test_videos and delta must be >= 1, perturb_seed >= 0")
        if not 0.0 <= self.keypoint_threshold <= 1.0 or not 0.0 <= self.match_threshold <= 1.0:
            raise ValueError("keypoint_threshold and match_threshold must lie in [0, 1]")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


# -- configuration ------------------------------------------------------------------------------------

def budget_overrides(profile: str) -> list[str]:
    """``key=value`` overrides of the training budget: ``experiments/resolution_quick.yaml`` (less its
    ``experiment`` name) for ``quick``; none for ``full`` (each experiment file's own, the paper's)."""
    return [] if profile == "full" else budget_file_overrides(QUICK_BUDGET)


def resolution_override(method: str, resolution: tuple[int, int]) -> str:
    """The transformer's resolution is its Position grid (§3.2); a CNN's its input image (§5.2)."""
    w, h = resolution
    return f"tokens.grid=[{w},{h}]" if method == "transformer" else f"model.resolution=[{w},{h}]"


def training_overrides(opts: Options, profile: Profile, method: str, resolution: tuple[int, int],
                       seed: int) -> list[str]:
    """Overrides of a method's experiment for one resolution and seed: data, budget, resolution, seed
    and a run name that keeps resolutions and budgets apart, ``<data>-<w>x<h>-<profile>-<digest>-seed<k>``
    (``<digest>``: 6 hex digits of the budget and extra overrides, so that a changed budget never
    resumes a run folder of another one)."""
    from keytrack.config import data_tag, load_config

    budget = [*budget_overrides(opts.profile), *opts.train_overrides]
    overrides = overrides_for(EXPERIMENTS[method], [*profile.train_overrides(), *budget_overrides(opts.profile),
                                                    resolution_override(method, resolution), f"seed={seed}",
                                                    *opts.train_overrides])
    cfg = load_config([f"experiment={EXPERIMENTS[method]}", *overrides])
    digest = hashlib.sha256("\n".join(budget).encode()).hexdigest()[:6]
    return [*overrides, f"run_name={data_tag(cfg.data)}-{label(resolution)}-{opts.profile}-{digest}-seed{seed}"]


def budget_description(opts: Options) -> str:
    from keytrack.config import load_config

    cfg = load_config([f"experiment={EXPERIMENTS['transformer']}",
                       *overrides_for(EXPERIMENTS["transformer"], [*budget_overrides(opts.profile), *opts.train_overrides])])
    text = describe_budget(cfg)
    limit = cfg.trainer.get("limit_val_batches")
    val = (f"; validation on {100 * float(cfg.data.val_fraction):g} % of the videos"
           + (f", their first {int(limit) * int(cfg.loader.val_batch_size):,} balanced pairs"
              if isinstance(limit, int) else ""))
    if opts.profile == "full":
        return f"Training: full profile, each experiment file as it is (the paper's, A.4, A.5): {text}{val}."
    return (f"Training: quick profile (experiments/{QUICK_BUDGET}.yaml added to each method's experiment), "
            f"the same for all three methods as A.5 says: {text}{val}; the paper trains 25 epochs over "
            "every pair (--profile full, for GPUs).")


# -- claims -------------------------------------------------------------------------------------------

@dataclass
class Claim:
    """One of the paper's claims and whether our numbers support it."""

    claim: str
    status: str                     # "holds", "does not hold" or "not testable"
    evidence: str

    def line(self) -> str:
        return f"Claim \"{self.claim}\": **{self.status}** ({self.evidence})."


def _mean(value) -> float | None:
    if isinstance(value, MeanStd):
        return value.mean if value.n > 0 and math.isfinite(value.mean) else None
    return None if value is None or not math.isfinite(float(value)) else float(value)


def check_claims(idsw: Mapping[str, Mapping[tuple[int, int], MeanStd | float | None]],
                 low_max_edge: int = LOW_MAX_EDGE) -> list[Claim]:
    """Figure 7's two claims on ``idsw[method][(w, h)]`` (%IDSW Total, mean over seeds).

    1. *The transformer has fewer ID switches than both CNNs at low resolution*: holds when, at every
       resolution whose long edge is at most ``low_max_edge`` (the paper's 24 × 18) where the
       transformer and a CNN both have a value, the transformer's mean %IDSW is below each CNN's.
    2. *CNNs catch up at high resolution*: with ``gap = CNN − transformer`` %IDSW, holds when for
       every CNN the gap at the highest resolution both have is smaller than at the lowest one (the
       CNN's disadvantage narrows or turns into an advantage); the evidence says "only trivially"
       when no CNN is behind at the lowest resolution.

    A claim is "not testable" without the transformer and at least one CNN at the resolutions it needs.
    """
    cnns = [m for m in ("cnn_keypoints", "cnn_crops") if m in idsw]
    tr = {r: _mean(v) for r, v in idsw.get("transformer", {}).items()}
    tr = {r: v for r, v in tr.items() if v is not None}
    claims = []

    text1 = "the transformer has fewer ID switches than both CNNs at low resolution"
    comparisons, missing = [], []
    for m in cnns:
        for r, v in sorted(idsw[m].items(), key=lambda kv: max(kv[0])):
            c = _mean(v)
            if max(r) <= low_max_edge and c is not None and r in tr:
                comparisons.append((m, r, tr[r], c))
        if not any(x[0] == m for x in comparisons):
            missing.append(m)
    if not comparisons:
        claims.append(Claim(text1, "not testable", "no resolution with a long edge <= "
                            f"{low_max_edge} has both the transformer and a CNN"))
    else:
        ok = all(t < c for _, _, t, c in comparisons)
        evidence = "; ".join(f"{label(r)}: transformer {t:.2f} vs {METHODS[m]} {c:.2f} %IDSW"
                             for m, r, t, c in comparisons)
        if missing:
            evidence += f"; no numbers for {', '.join(METHODS[m] for m in missing)}"
        claims.append(Claim(text1, "holds" if ok else "does not hold", evidence))

    text2 = "CNNs catch up with the transformer at high resolution"
    gaps = []
    for m in cnns:
        common = sorted((r for r in idsw[m] if r in tr and _mean(idsw[m][r]) is not None), key=max)
        if len(common) >= 2:
            lo, hi = common[0], common[-1]
            gaps.append((m, lo, _mean(idsw[m][lo]) - tr[lo], hi, _mean(idsw[m][hi]) - tr[hi]))
    if not gaps:
        claims.append(Claim(text2, "not testable", "no CNN has two resolutions in common with the transformer"))
    else:
        ok = all(g_hi < g_lo for _, _, g_lo, _, g_hi in gaps)
        evidence = "; ".join(f"{METHODS[m]} − transformer: {g_lo:+.2f} at {label(lo)}, {g_hi:+.2f} at {label(hi)}"
                             for m, lo, g_lo, hi, g_hi in gaps)
        if ok and all(g_lo <= 0 for _, _, g_lo, _, _ in gaps):
            evidence = ("only trivially: no CNN is behind the transformer even at the lowest resolution, so "
                        "there is nothing to catch up; " + evidence)
        claims.append(Claim(text2, "holds" if ok else "does not hold", evidence))
    return claims


# -- plot ---------------------------------------------------------------------------------------------

def save_plot(path: str | Path, rows: Sequence[Mapping], resolutions: Sequence[tuple[int, int]],
              methods: Sequence[str], title: str) -> Path:
    """%IDSW Total (left) and validation match accuracy (right) against the long edge of the
    resolution on a log2 axis, one line per method, mean ± sample std over seeds as error bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from keytrack.atomic import atomic_path

    fig = Figure(figsize=(10.0, 3.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    ticks = sorted({r[0] for r in resolutions})
    for ax, key, ylabel in ((axes[0], "idsw", "%IDSW Total"), (axes[1], "val_acc", "match accuracy % (val)")):
        for method in methods:
            points = [(row["resolution_wh"][0], row[key]) for row in rows if row["method_key"] == method
                      and isinstance(row.get(key), MeanStd) and row[key].n > 0 and math.isfinite(row[key].mean)]
            if not points:
                continue
            points.sort()
            ax.errorbar([x for x, _ in points], [v.mean for _, v in points],
                        yerr=[v.std if v.n > 1 else 0.0 for _, v in points], fmt="o-", capsize=3,
                        label=METHODS[method])
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks)
        ax.set_xticklabels([label(r) for r in sorted(resolutions)], fontsize=8)
        ax.minorticks_off()
        ax.set_xlabel("input resolution (w × h, log2 axis)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path


# -- runs ---------------------------------------------------------------------------------------------

def _cost(method: str, overrides: Sequence[str]) -> dict:
    """Parameters and FLOPs per pose pair of the configured matcher (:func:`ablations.cost.count`)."""
    from ablations.cost import count, example_batch
    from keytrack.config import load_config
    from keytrack.models.factory import build_matcher

    cfg = load_config([f"experiment={EXPERIMENTS[method]}", *overrides])
    c = count(build_matcher(cfg), example_batch(cfg))
    return {"params": c["params"][""], "flops": c["flops"][""]}


def run_sweep(opts: Options, *, train_dataset: Dataset | None = None, eval_gt: Dataset | None = None,
              train_fn=None) -> Result:
    """Train, count and track every (method, resolution, seed) of ``opts`` (or reuse them); write the
    table and the plot. ``train_dataset`` / ``eval_gt`` replace the profile's training data and
    evaluation ground truth; ``train_fn`` replaces :func:`keytrack.train.train` (tests)."""
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
                          wait=opts.wait_for_training, train_fn=train_fn)
    kp_threshold = cells.keypoint_threshold
    image_root = str(profile.data_root) if profile.data_root is not None else None

    trainings: dict[tuple[str, tuple[int, int], int], RunRecord] = {}
    trackings: dict[tuple[str, tuple[int, int], int], RunRecord] = {}
    costs: dict[tuple[str, tuple[int, int]], RunRecord] = {}
    total = len(opts.methods) * len(opts.resolutions) * len(opts.seeds)
    done = 0
    for seed in opts.seeds:
        for method in opts.methods:
            for resolution in opts.resolutions:
                done += 1
                name = f"{method}-{label(resolution)}-seed{seed}"
                experiment = EXPERIMENTS[method]
                overrides = training_overrides(opts, profile, method, resolution, seed)
                if (method, resolution) not in costs:
                    cost_overrides = overrides_for(experiment, [resolution_override(method, resolution), *opts.train_overrides])
                    costs[(method, resolution)] = cache.run(
                        f"cost-{method}-{label(resolution)}", lambda m=method, o=cost_overrides: _cost(m, o),
                        {"kind": "cost", "experiment": experiment, "overrides": cost_overrides})
                log.info("[%d/%d] %s: training (%s)", done, total, name, opts.profile)
                trained = cells.train(f"train-{name}", experiment, overrides,
                                      quiet=["trainer.enable_progress_bar=false"])
                trainings[(method, resolution, seed)] = trained
                log.info("[%d/%d] %s: tracking", done, total, name)
                batch = opts.batch_size if method == "transformer" else min(opts.batch_size, CNN_BATCH_SIZE)
                trackings[(method, resolution, seed)] = cells.track(
                    f"track-{name}", trained, batch, image_root=image_root, split=profile.eval_split)

    rows, failures = [], []
    for method in opts.methods:
        for resolution in opts.resolutions:
            trains = [trainings[(method, resolution, s)] for s in opts.seeds]
            tracks = [trackings[(method, resolution, s)] for s in opts.seeds]
            cost = costs[(method, resolution)]
            row = {"method": METHODS[method], "method_key": method, "resolution": label(resolution),
                   "resolution_wh": resolution,
                   "val_acc": mean_std(None if r.result.get("best_val_acc") is None else 100 * r.result["best_val_acc"]
                                       for r in trains if r.ok),
                   "idsw": mean_std(r.result["idsw"]["Total"] for r in tracks if r.ok),
                   "mota": mean_std(r.result["mota"]["Total"] for r in tracks if r.ok),
                   "params_m": cost.result["params"] / 1e6 if cost.ok else None,
                   "mflops": cost.result["flops"] / 1e6 if cost.ok else None,
                   "steps": mean_std(r.result.get("global_step") for r in trains if r.ok),
                   "train_seconds": mean_std(r.result.get("train_seconds") for r in trains if r.ok),
                   "pairs_per_s": mean_std(r.result.get("pairs_per_s") for r in tracks if r.ok),
                   "experiment": EXPERIMENTS[method]}
            train_failed = failure_status(trains, opts.seeds)
            track_failed = failure_status([t for t, r in zip(tracks, trains) if r.ok],
                                          [s for s, r in zip(opts.seeds, trains) if r.ok])
            row["status"] = "; ".join(x for x in (train_failed and "training " + train_failed,
                                                  track_failed and "tracking " + track_failed,
                                                  cost.failure and "cost failed: " + cost.failure) if x) or None
            failures += [f"{r.key}: {r.failure}" for r in [*trains, *tracks, cost] if not r.ok]
            rows.append(row)

    idsw = {m: {r["resolution_wh"]: r["idsw"] for r in rows if r["method_key"] == m} for m in opts.methods}
    claims = check_claims(idsw)
    columns = [Column("method", "Method"), Column("resolution", "Resolution (w×h)"),
               Column("val_acc", "Match acc. % (val)"), Column("idsw", "%IDSW Total", digits=2),
               Column("mota", "MOTA"), Column("params_m", "Params (M)", digits=3),
               Column("mflops", "MFLOPs / pair", digits=1), Column("steps", "Train steps", digits=0),
               Column("train_seconds", "Train s", digits=0), Column("pairs_per_s", "Pairs/s (tracking)", digits=0),
               Column("experiment", "Experiment")]
    if any(r["status"] for r in rows):
        columns.append(Column("status", "Status"))
    seeds = ", ".join(map(str, opts.seeds))
    train_data = profile.describe("train") if train_dataset is None else "given by the caller"
    nearest = (f"each pose compared with the {opts.nearest} nearest pose{'s' if opts.nearest > 1 else ''} of each "
               "earlier frame (bounds the CNNs' tracking cost)" if opts.nearest else "every candidate pose")
    notes = [
        "Figure 7 (right), §5.2: the transformer's resolution is its Position grid (tokens.grid), a CNN's its "
        "input image (model.resolution); the CNN on keypoints draws the pair as an image "
        "(keytrack/rasterize.py), the CNN on crops sees the RGB crops of both poses' boxes. The paper "
        "plots %IDSW against resolution without numbers; it chose 24×18 for the transformer.",
        f"Mean ± sample std over training seed{'s' if len(opts.seeds) > 1 else ''} {seeds} (each seed also "
        "draws its own train/val split of the videos). Match acc.: best validation accuracy (balanced "
        "matching / non-matching pairs of held-out videos).",
        budget_description(opts) + " Train s: wall time of a training on a CPU shared with other jobs.",
        f"Training data: {train_data}. Tracking: {eval_description} ({eval_gt.report()}), "
        f"{SETTING_LABELS[opts.setting]} drawn once with perturbation seed {opts.perturb_seed}; δ = {opts.delta}, "
        f"greedy, match threshold {opts.match_threshold:g}, {nearest}"
        + (f", keypoints below {kp_threshold:g} removed before MOTA and %IDSW (A.3)" if kp_threshold else "")
        + ".",
        "Params and MFLOPs / pair: counted from the model (ablations.cost: one pair, matrix products and "
        "convolutions, 2 FLOPs per multiply-accumulate). The transformer's cost hardly depends on its grid "
        "(only the Position embedding table grows); a CNN's grows with the pixels.",
        *(c.line() for c in claims),
        f"Claims are checked on mean %IDSW Total; low resolution = long edge <= {LOW_MAX_EDGE} (the paper's "
        "24×18 and below); \"catch up\" = the CNN's %IDSW minus the transformer's is smaller at the highest "
        "resolution than at the lowest. With few seeds and a small budget a difference may be within the "
        "seed-to-seed spread (see ±).",
        f"Runs are cached in {display_path(cache.directory)}/ ({cache.reused} reused, {cache.computed} run now); "
        "trained networks in runs/<experiment>/<data>-<w>x<h>-<profile>-<budget digest>-seed<k>/. Delete a file there to run "
        "it again.",
    ]
    title = "%IDSW against input resolution: transformer vs. CNNs (Figure 7 right, §5.2)"
    files = list(write_table(rows, out, columns=columns, notes=notes, title=title))
    files.append(save_plot(out / "idsw_vs_resolution.png", rows, opts.resolutions, opts.methods,
                           f"Figure 7 (right): {profile.tag}, {opts.profile} profile, seeds {seeds}"))
    records = {**{("train", *k): v for k, v in trainings.items()},
               **{("track", *k): v for k, v in trackings.items()},
               **{("cost", *k): v for k, v in costs.items()}}
    result = Result(rows, out, files, failures, records)
    result.claims = claims                    # type: ignore[attr-defined]
    return result


# -- command line -------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--data", default=None, help="PoseTrack18-layout folder (train split + test, or val) instead of the "
                                     "synthetic default")
    add("--eval-split", default=None, help="evaluation split under --data (default: test, else val)")
    add("--out", default=None, help="results folder (default: results/resolution_sweep, with --data "
                                    "results/resolution_sweep/<data>-<split>)")
    add("--profile", choices=PROFILES, default="quick",
        help=f"quick (experiments/{QUICK_BUDGET}.yaml, resolutions up to 96x72, 2 seeds, 6 test videos, "
             "nearest 1: a CPU) or full (the paper's training, up to 384x288, 3 seeds: GPUs)")
    add("--resolutions", nargs="+", default=None, metavar="WxH",
        help="input resolutions (default: quick 12x9 24x18 48x36 96x72; full adds 192x144 384x288)")
    add("--seeds", "--seed", type=int, nargs="+", default=None, dest="seeds",
        help="training seeds, mean ± std over them (default: quick 0 1, full 0 1 2)")
    add("--methods", nargs="+", choices=list(METHODS), default=list(METHODS),
        help="methods (default: all three of Figure 7)")
    add("--setting", choices=SETTINGS, default=PAPER_SETTING,
        help="keypoints tracked (default: predicted boxes + predicted keypoints, A.4)")
    add("--perturb-seed", type=int, default=0, help="seed of the predicted keypoints (default: 0)")
    add("--delta", type=int, default=4, help="δ: timesteps looked back (paper: 4)")
    add("--match-threshold", type=float, default=POSE_ENTAILMENT_THRESHOLD,
        help="a pose starts a new track below this match score (default: 0.5)")
    add("--keypoint-threshold", type=float, default=PAPER_KEYPOINT_THRESHOLD,
        help=f"output keypoint threshold before MOTA (A.3; default: the paper's {PAPER_KEYPOINT_THRESHOLD})")
    add("--nearest", type=int, default=None,
        help="compare with the n nearest poses of each earlier frame (default: quick 1, full all)")
    add("--all-candidates", action="store_true", help="compare with every candidate pose (no nearest limit)")
    add("--train-override", action="append", default=[], metavar="KEY=VALUE",
        help="extra training config override for every run (repeatable), e.g. trainer.accelerator=gpu")
    add("--synthetic-test-videos", type=int, default=None,
        help="videos of the synthetic test set without --data (default: quick 6, full 20)")
    add("--device", default="cpu", help="torch device of the networks when tracking")
    add("--batch-size", type=int, default=16384,
        help=f"most pose pairs per forward (CNNs: at most {CNN_BATCH_SIZE})")
    add_run_arguments(parser)


def options_from_args(args: argparse.Namespace) -> Options:
    nearest: int | None | str = None if args.all_candidates else (args.nearest or "profile")
    return Options(data=args.data, eval_split=args.eval_split, out=args.out, profile=args.profile,
                   resolutions=tuple(parse_resolution(r) for r in args.resolutions) if args.resolutions else None,
                   seeds=tuple(args.seeds) if args.seeds else None, methods=tuple(args.methods),
                   setting=args.setting, perturb_seed=args.perturb_seed, delta=args.delta,
                   match_threshold=args.match_threshold, keypoint_threshold=args.keypoint_threshold,
                   nearest=nearest, train_overrides=tuple(args.train_override),
                   synthetic_test_videos=args.synthetic_test_videos, device=args.device,
                   batch_size=args.batch_size, threads=args.threads, retry_failed=not args.no_retry_failed,
                   wait_for_training=not args.no_wait)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        opts = options_from_args(args)
    except ValueError as err:
        raise SystemExit(f"resolution sweep: {err}") from None
    return finish("resolution sweep", run_sweep(opts))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ablations.resolution_sweep",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    from keytrack.errors import run_command

    sys.exit(run_command("python -m ablations.resolution_sweep", main))
