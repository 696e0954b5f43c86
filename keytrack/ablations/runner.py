"""``keytrack ablate NAME``: an ablation as data, one runner for all of them.

A YAML spec, ``experiments/ablations/<NAME>.yaml`` (or a path), varies ``axes`` at tracking time
(:func:`run_spec`) or trains a network per ``train`` row and seed (:func:`run_train_spec`); it writes
``runs/ablations/<NAME>/`` (table.md / .csv, plots; ``--out``: the committed tables are under
``results/<NAME>/``, written only when given as ``--out``); ``key=value`` arguments override it.
Format: docs/ablations.md.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from keytrack.ablations.cells import (
    DEFAULT_SEEDS,
    GT_SETTING,
    IMPROVED_MATCHERS,
    KALMAN,
    LEARNED_BASELINES,
    MOTION,
    PAPER_MATCHERS,
    PAPER_SETTING,
    Cell,
    TrackingOptions,
    TrainAndTrack,
    add_tracking_arguments,
    base,
    describe_network,
    matcher_network,
    missing_images,
    open_results,
    run_cells,
    suffix,
    threshold_of,
    tracking_options,
    tune_thresholds,
)
from keytrack.ablations.claims import CLAIMS
from keytrack.ablations.evaluate import (
    HOTA_COLUMNS,
    NON_LEARNED,
    PAPER_KEYPOINT_THRESHOLD,
    SETTING_LABELS,
    EvalSet,
    Evaluator,
    TrackerSpec,
)
from keytrack.ablations.notes import common_notes
from keytrack.ablations.plots import Panel, Series, save_line_plot
from keytrack.ablations.profile import display_path
from keytrack.ablations.runs import (
    Result,
    failure_status,
    finish,
    paired_difference,
    pooled_mota,
    seed_stat,
    total,
    video_bootstrap,
)
from keytrack.ablations.training import budget_file_overrides, describe_budget
from keytrack.config import config_path
from keytrack.errors import InputError
from keytrack.evaluation import COLUMNS as PARTS
from keytrack.perturb import SETTINGS
from keytrack.poses import Dataset
from keytrack.tables import Column, MeanStd, mean_std, write_table
from keytrack.tracking import ASSIGNMENTS

log = logging.getLogger("keytrack.ablations.runner")

#: The one-line help of ``keytrack ablate`` (read by keytrack.cli without importing this module).
HELP = "run an ablation: a spec of experiments/ablations/ or one that stays code"

SPECS = config_path("ablations")
#: The ablations that stay code: ``keytrack ablate NAME ...`` hands ``...`` to the module's own options.
PLUGINS = {name: f"keytrack.ablations.{name}" for name in ("matcher_variants", "toks", "sweep")}
#: The axes a spec may vary, in the order a cell is built from.
AXES = ("setting", "stride", "matcher", "delta", "assignment", "threshold")
DEFAULT_AXES = dict(
    setting=[PAPER_SETTING], stride=[1], matcher=None, delta=[4], assignment=["greedy"], threshold=None
)
SPEC_KEYS = set(
    "title axes seeds compute_ap speed compare best paper paper_rows labels columns notes plot train track "
    "claims".split()
)
#: Fields of ``train`` (a spec that trains one network per row and seed) and of its ``track``.
TRAIN_KEYS = {"rows", "each", "seeds", "budget", "show", "cost", "only"}
TRACK_KEYS = {"setting", "perturb_seed", "delta", "nearest", "synthetic_test_videos", "keypoint_threshold"}
PROFILE_KEYS = {"quick", "full"}
#: Column labels and digits of the keys a row has.
COLUMN_LABELS = {
    "setting": ("Keypoints", None),
    "stride": ("Stride", None),
    "matcher": ("Matcher", None),
    "delta": ("δ", None),
    "match_threshold": ("Match thr.", 2),
    "assignment": ("Assignment", None),
    "threshold": ("Threshold", 2),
    "idsw": ("%IDSW Total", 2),
    "mota": ("MOTA", None),
    "mota_pooled": ("MOTA (pooled)", 1),
    "ap": ("AP", None),
    "switches": ("ID switches", 0),
    "best": ("", None),
    "row": ("Row", None),
    "val_acc": ("Match acc. % (val)", None),
    "val_acc_paper": ("Match acc. % (paper)", None),
    "params_m": ("Params (M)", 3),
    "mflops": ("MFLOPs / pair", 1),
    "steps": ("Train steps", 0),
    "train_seconds": ("Train s", 0),
    "pairs_per_s": ("Pairs/s (tracking)", 0),
    "experiment": ("Experiment", None),
}
METRICS = {"idsw": "%IDSW", "mota": "MOTA", "ap": "AP", "val_acc": "match acc."}


def spec_names() -> list[str]:
    """The ablations of ``experiments/ablations/`` this runner reads (those with ``axes`` or ``train``)."""
    from omegaconf import OmegaConf

    return sorted(p.stem for p in SPECS.glob("*.yaml") if {"axes", "train"} & set(OmegaConf.load(p) or {}))


def spec_path(name: str) -> Path:
    """The spec file of ``name``: a path (``.yaml``) as given, else ``experiments/ablations/<name>.yaml``."""
    return Path(name) if name.endswith((".yaml", ".yml")) else SPECS / f"{name}.yaml"


def _check(ok: Any, message: str) -> None:
    if not ok:
        raise InputError(message)


def _known(where: str, fields: Any, known: set[str]) -> None:
    unknown = sorted(set(fields) - known)
    _check(not unknown, f"{where}: unknown field(s) {unknown} (known: {sorted(known)})")


def load_spec(name: str, overrides: Sequence[str] = ()) -> dict:
    """The spec ``name`` (under ``experiments/ablations/`` or a path) with ``key=value`` ``overrides``,
    checked: an error names the file and the field."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = spec_path(name)
    if not path.is_file():
        raise InputError(f"{path}: no such ablation spec (known: {', '.join(spec_names())})")
    try:
        cfg = OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides)))
        spec = OmegaConf.to_container(cfg, resolve=True)
    except (OmegaConfBaseException, ValueError, yaml.YAMLError) as err:
        raise InputError(f"{path}: {err}") from None
    except TypeError as err:  # a list given for a mapping ({quick: .., full: ..}) or the reverse
        raise InputError(f"{path}: overrides {' '.join(overrides)}: {err}") from None
    where = str(path)
    _known(where, spec, SPEC_KEYS)
    if "train" in spec:
        return _check_train_spec(spec, where)
    axes = {**DEFAULT_AXES, **(spec.get("axes") or {})}
    bad = sorted(set(axes) - set(AXES))
    _check(not bad, f"{where}: axes: unknown axis {bad} (known: {list(AXES)})")
    for axis, values in axes.items():
        ok = (isinstance(values, list) and values) or (values is None and axis in ("threshold", "matcher"))
        _check(ok, f"{where}: axes.{axis}: expected a non-empty list, got {values!r}")
    named = (*PAPER_MATCHERS, *IMPROVED_MATCHERS, *NON_LEARNED, *LEARNED_BASELINES)
    checks = {
        "setting": (lambda v: v in SETTINGS, f"one of {list(SETTINGS)}"),
        "assignment": (lambda v: v in ASSIGNMENTS, f"one of {list(ASSIGNMENTS)}"),
        "stride": (lambda v: isinstance(v, int) and v >= 1, "integers >= 1"),
        "delta": (lambda v: isinstance(v, int) and v >= 1, "integers >= 1"),
        "threshold": (lambda v: isinstance(v, (int, float)) and 0 <= v <= 1, "numbers in [0, 1]"),
        "matcher": (
            lambda v: isinstance(v, str) and (base(v) in named or config_path(f"{base(v)}.yaml").is_file()),
            f"one of {list(named)} or an experiment of experiments/, each optionally with {MOTION!r} or "
            f"{KALMAN!r}",
        ),
    }
    for axis, (ok, expected) in checks.items():
        wrong = [v for v in (axes[axis] or []) if not ok(v)]
        _check(not wrong, f"{where}: axes.{axis}: {wrong} are not {expected}")
    for axis in ("stride", "delta", "threshold"):  # numeric axes: sorted, each value once
        if axes[axis] is not None:
            axes[axis] = sorted({float(v) if axis == "threshold" else int(v) for v in axes[axis]})
    if axes["matcher"] is not None:
        axes["matcher"] = list(dict.fromkeys(axes["matcher"]))
    _known(f"{where}: track", spec.get("track") or {}, {"keypoint_threshold"})
    spec["axes"] = axes
    compare = spec.get("compare")
    _check(
        not compare or (compare.get("axis") in AXES and compare.get("metrics")),
        f"{where}: compare: expected {{axis: one of {list(AXES)}, to: value, metrics: [...]}}",
    )
    spec["_path"] = where
    return spec


def _lookup(tree: Any, dotted: str, where: str) -> Any:
    for part in dotted.split("."):
        try:
            tree = tree[int(part)] if isinstance(tree, list) else tree[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise InputError(
                f"{where}: paper: no {dotted!r} in keytrack/reference/paper_results.yaml"
            ) from None
    return tree


def _close(a: Any, b: Any) -> bool:
    return math.isclose(float(a), float(b), abs_tol=1e-9)


def _matches(when: dict, values: dict) -> bool:
    """Whether a row of axis ``values`` meets ``when``; one on an axis the table lacks (None) holds."""

    def holds(k: str, v: Any) -> bool:
        have = values.get(k)
        return (
            (k in AXES and have is None)
            or have == v
            or (isinstance(v, float) and isinstance(have, float) and _close(have, v))
        )

    return all(holds(k, v) for k, v in when.items())


def paper_values(spec: dict, values: dict) -> dict:
    """The paper's columns of the row whose axis ``values`` are given (raw, not labels)."""
    from keytrack.reference import paper_results

    out: dict = {}
    for entry in spec.get("paper") or []:
        if not _matches(entry.get("when") or {}, values):
            continue
        source = None
        if entry.get("from"):
            source = _lookup(paper_results(), entry["from"].format(**values), spec["_path"])
            if entry.get("match"):
                axis = entry["match"]
                source = next((r for r in source if _close(r[axis], values[axis])), None)
                if source is None:
                    continue
        for column, v in (entry.get("values") or {}).items():
            out[column] = (
                _lookup(source, v, spec["_path"]) if source is not None and isinstance(v, str) else v
            )
    return out


def _label(spec: dict, axis: str, value: Any) -> Any:
    labels = (spec.get("labels") or {}).get(axis) or {}
    if axis == "setting":
        return SETTING_LABELS[value]
    if axis == "matcher" and value:
        if suffix(value):
            return f"{_label(spec, axis, base(value))} + {'motion' if suffix(value) == MOTION else 'Kalman'}"
        if value in LEARNED_BASELINES and value not in labels:
            from keytrack.models import registry

            return registry.get(value).label
    if isinstance(value, (list, tuple)):  # a resolution [w, h] is shown as "wxh"
        return "x".join(map(str, value))
    return labels.get(value, value)


def _columns(spec: dict, rows: list[dict]) -> list[Column]:
    cols = []
    for c in spec.get("columns") or []:
        c = {"key": c} if isinstance(c, str) else dict(c)
        key = c["key"]
        if key in AXES and not any(key in r for r in rows):  # an axis the table does not have
            continue
        if key == "hota":  # the HOTA columns where some row has a value that prints
            cols += [
                Column(k, k)
                for k in HOTA_COLUMNS
                if any(r.get(k) is not None and not (isinstance(r[k], MeanStd) and r[k].n == 0) for r in rows)
            ]
            continue
        if key == "parts":  # %IDSW per body part, PoseTrack's columns
            cols += [Column(p, p, digits=2) for p in PARTS]
            continue
        label, digits = _metric_label(spec, key)
        cols.append(Column(key, c.get("label", label), digits=c.get("digits", digits)))
    if any(r.get("status") for r in rows):
        cols.append(Column("status", "Status"))
    return cols


def _video_interval(mine: Sequence, theirs: Sequence) -> tuple[Any, bool]:
    """A row's ``v_idsw`` (:func:`video_bootstrap`), and whether it lacks one only because the cached
    cells predate the per-video counts."""
    interval = video_bootstrap(mine, theirs)
    return interval, interval is None and any(r.ok for r in mine) and any(r.ok for r in theirs)


def _stale_notes(stale: int, cache) -> list[str]:
    if not stale:
        return []
    return [
        f"{stale} row(s) have no interval over the videos: their cells were cached before per-video counts "
        f"were recorded; delete their files in {display_path(cache.directory)}/ to run them again."
    ]


def _metric_label(spec: dict, key: str) -> tuple[str, int | None]:
    """The header and digits of a column (a plot's y label); ``d_`` / ``v_`` name the spec's ``compare``."""
    compare = spec.get("compare") or {}
    if key[:2] in ("d_", "v_") and key[2:] in METRICS:
        axis, to = compare.get("axis"), compare.get("to")
        to = f"δ = {compare['to']}" if axis == "delta" else _label(spec, axis, to)
        return f"Δ{METRICS[key[2:]]} vs {to}" + (" (95 % CI, videos × seeds)" if key[0] == "v" else ""), 2
    label, digits = COLUMN_LABELS.get(key, (key, None))
    if key.endswith("_paper") and key not in COLUMN_LABELS:
        label = f"{COLUMN_LABELS.get(key.removesuffix('_paper'), (key,))[0]} (paper)"
    return label, digits


def _plots(spec: dict, rows: list[dict], raw: list[dict], out: Path) -> list[Path]:
    """The spec's ``plot`` (one, or a list): one panel per ``y`` metric (and ``panel_by`` value), one line
    per ``series_by`` value (else ours and the paper's), ``x`` a numeric axis (a value [w, h] by w)."""
    plots = spec.get("plot") or []
    return [_plot(spec, p, rows, raw, out) for p in (plots if isinstance(plots, list) else [plots])]


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, (list, tuple)) else value


def _plot(spec: dict, plot: dict, rows: list[dict], raw: list[dict], out: Path) -> Path:
    x_axis, panel_by, series_by = plot["x"], plot.get("panel_by"), plot.get("series_by")

    def values(key):
        return [None] if not key else list(dict.fromkeys(_hashable(v[key]) for v in raw))

    paper_series = {}
    if plot.get("paper"):
        from keytrack.reference import paper_results

        p = plot["paper"]
        src = _lookup(paper_results(), p["from"], spec["_path"])
        if all(_matches(p.get("when") or {}, v) for v in raw):
            paper_series = {m: ([q[p["x"]] for q in src], [q[m] for q in src]) for m in plot["y"]}
    panels = []
    for g in values(panel_by):
        for metric in plot["y"]:
            series = []
            for s in values(series_by):
                mine = [
                    (r, v)
                    for r, v in zip(rows, raw)
                    if (g is None or _hashable(v[panel_by]) == g)
                    and (s is None or _hashable(v[series_by]) == s)
                ]
                name = "ours" if s is None else _label(spec, series_by, s)
                xs, ys = [_first(v[x_axis]) for _, v in mine], [r.get(metric) for r, _ in mine]
                series.append(Series(name, xs, ys, plot.get("style", "o-")))
            if metric in paper_series:
                series.append(Series("paper", *paper_series[metric], "s--"))
            title = "" if g is None else _label(spec, panel_by, g)
            panels.append(Panel(_metric_label(spec, metric)[0], series, title))
    ticks = sorted({_hashable(v[x_axis]) for v in raw}, key=_first)
    xticks = spec.get("axes", {}).get(x_axis) if plot.get("xticks") else None
    if plot.get("xscale"):
        xticks = [_first(t) for t in ticks]
    return save_line_plot(
        out / plot["file"],
        panels,
        xlabel=plot.get("xlabel", x_axis),
        title=plot.get("title", spec.get("title", "")),
        ncols=plot.get("ncols"),
        xticks=xticks,
        xscale=plot.get("xscale"),
        zero_line=bool(plot.get("zero")),
        dodge=float(plot.get("dodge", 0.0)),
        xticklabels=[_label(spec, x_axis, t) for t in ticks] if plot.get("xscale") else None,
    )


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def with_spec_defaults(opts: TrackingOptions, spec: dict) -> TrackingOptions:
    """``opts`` with the spec's perturbation ``seeds`` (else 0 1 2) and output keypoint threshold (its
    ``track.keypoint_threshold``, else the paper's 0.57) where the options leave them open."""
    kp = opts.keypoint_threshold
    if kp is None:
        kp = (spec.get("track") or {}).get("keypoint_threshold", PAPER_KEYPOINT_THRESHOLD)
    return replace(
        opts, seeds=opts.seeds or tuple(spec.get("seeds") or DEFAULT_SEEDS), keypoint_threshold=float(kp)
    )


def run_spec(
    spec: dict | str,
    opts: TrackingOptions,
    *,
    name: str | None = None,
    eval_gt: Dataset | None = None,
    train_gt: Dataset | None = None,
) -> Result:
    """Expand ``spec`` into cells, run or reuse each, write the table (``tuning.md`` when OKS or IoU were
    tuned, ``speed.md`` with ``speed: true``) and the plots. ``name``: the results folder (default: the
    spec's file name); ``eval_gt`` / ``train_gt`` replace the profile's evaluation and tuning ground truth."""
    spec = load_spec(spec) if isinstance(spec, str) else spec
    run = _TrackingRun(spec, with_spec_defaults(opts, spec), name or Path(spec["_path"]).stem, eval_gt)
    run.prepare(train_gt)
    run.records = run_cells(
        [c for v in run.raw if v["matcher"] not in run.skipped for c in run.cells(v)],
        evaluator=run.evaluator,
        eval_gt=run.eval_gt,
        opts=run.opts,
        networks=run.networks,
        thresholds=run.thresholds,
        logger=log,
    )
    run.failures += [f"{c.key}: {r.failure}" for c, r in run.records.items() if not r.ok]
    return run.write()


def _given(data: Dataset | None, describe) -> str:
    return describe() if data is None else "ground truth given by the caller"


class _TrackingRun:
    """One run of a tracking-time spec: its matchers (trained or reused, thresholds tuned), its cells
    (one per axis combination, perturbation seed and training seed), their rows, notes and files."""

    def __init__(self, spec: dict, opts: TrackingOptions, name: str, eval_gt: Dataset | None):
        self.spec, self.opts, self.name = spec, opts, name
        self.profile, self.out, self.cache = open_results(opts, name)
        # --checkpoint / --experiment replace a spec of networks alone by the one network they name (None)
        matchers = spec["axes"]["matcher"] or [None]
        networks_only = all(base(m) not in (*NON_LEARNED, *LEARNED_BASELINES) for m in matchers if m)
        matchers = [None] if (opts.checkpoint or opts.experiment) and networks_only else matchers
        self.axes = {**spec["axes"], "matcher": matchers}
        self.matchers = matchers
        self.eval_description = _given(eval_gt, lambda: self.profile.describe("eval"))
        self.eval_gt = self.profile.load_eval() if eval_gt is None else eval_gt
        (only, *more) = spec["axes"]["assignment"]
        if not more and only != "greedy":  # one assignment for every row, not the paper's greedy one
            other = {"hungarian": "Hungarian"}.get(only, only)
            named = (spec.get("labels") or {}).get("matcher") or {}
            spec["labels"] = {
                **(spec.get("labels") or {}),
                "matcher": {m: str(t).replace("(greedy)", f"({other})") for m, t in named.items()},
            }
        self.labels = {m: _label(spec, "matcher", m) for m in matchers}
        self.compute_ap = spec.get("compute_ap", False)
        self.compare = spec.get("compare") or {}
        self.evaluator = _evaluator(self.cache, opts, self.profile)
        axes, threshold = self.axes, self.axes["threshold"]
        kps = {
            s: threshold if threshold is not None else [opts.output_keypoint_threshold(s)]
            for s in axes["setting"]
        }
        self.raw = [
            dict(zip(AXES, (s, *combo)))
            for s in axes["setting"]
            for combo in itertools.product(
                axes["stride"], matchers, axes["delta"], axes["assignment"], kps[s]
            )
        ]
        self.records: dict = {}

    def prepare(self, train_gt: Dataset | None) -> None:
        """Each learned matcher trained once per training seed (or reused), the crop CNN skipped on data
        without image files, OKS and IoU tuned on the training split."""
        opts, matchers, profile = self.opts, self.matchers, self.profile
        self.skipped: dict[str, str] = {}
        if any(base(m) == "cnn_crops" for m in matchers) and "cnn_crops" not in opts.checkpoints:
            reason = missing_images(profile, self.eval_gt)
            self.skipped = {m: reason for m in matchers if reason and base(m) == "cnn_crops"}
        self.networks = {}  # {(matcher, training seed): (network, error)}; None: the options' one network
        for m in dict.fromkeys(
            base(m) for m in matchers if m not in self.skipped and base(m) not in NON_LEARNED
        ):
            for seed in (None,) if m is None else opts.seeds_of(m):
                self.networks[m, seed] = matcher_network(
                    opts, profile, m or PAPER_MATCHERS[0], opts.train_seed if m is None else seed
                )
        self.failures = [
            f"{self.labels.get(m, m) or 'matching'} network (seed {seed}): {error}"
            for (m, seed), (_, error) in self.networks.items()
            if error
        ]
        self.train_description = _given(train_gt, lambda: profile.describe("train"))
        self.thresholds, self.tuning_rows, self.filled = tune_thresholds(
            opts,
            profile,
            self.evaluator,
            matchers,
            max(self.axes["delta"]),
            train_gt,
            label=lambda m: self.labels[m],
            cells=list(itertools.product(self.axes["setting"], self.axes["stride"])),
            # the table's assignment where it has one, else the paper's
            assignment=self.axes["assignment"][0] if len(self.axes["assignment"]) == 1 else "greedy",
        )
        self.failures += [
            f"{m}{'' if k is None else f' ({k[0]}, stride {k[1]})'}: every tuning run failed"
            for m, t in self.thresholds.items()
            for k, v in (t.items() if isinstance(t, Mapping) else [(None, t)])
            if v is None
        ]

    def cells(self, v: dict) -> list[Cell]:
        """The cells of one axis combination: one per training seed and perturbation seed."""
        m, compute_ap = v["matcher"], self.compute_ap
        trainings = (None,) if m is None else self.opts.seeds_of(m)
        return [
            Cell(
                v["setting"],
                seed,
                v["delta"],
                v["assignment"],
                float(v["threshold"]),
                compute_ap=bool(compute_ap),
                matcher=m,
                stride=v["stride"],
                train_seed=t,
                ap_before_threshold=compute_ap == "before",
                several_trainings=len(trainings) > 1,
            )
            for t in trainings
            for seed in self.opts.seeds_for(v["setting"])
        ]

    def recs(self, v: dict) -> list:
        return [self.records[c] for c in self.cells(v) if c in self.records]

    def row(self, v: dict, shown: Sequence[str]) -> tuple[dict, int]:
        """The row of one axis combination (statistics over its cells, the ``compare`` row's difference,
        the paper's values) and whether its interval lacks per-video counts."""
        rs, m = self.recs(v), v["matcher"]
        seeds = [
            f"{c.seed}" + (f" (training {c.train_seed})" if c.several_trainings else "")
            for c in self.cells(v)
        ]
        row = {a: _label(self.spec, a, v[a]) for a in shown}
        row.update(
            match_threshold=None
            if m in self.skipped
            else threshold_of(self.thresholds, m, v["setting"], v["stride"]),
            idsw=seed_stat(rs, total("idsw")),
            mota=seed_stat(rs, total("mota")),
            mota_pooled=seed_stat(rs, pooled_mota),
            **{k: seed_stat(rs, lambda r, k=k: (r.get("hota") or {}).get(k)) for k in HOTA_COLUMNS},
            **{p: seed_stat(rs, lambda r, p=p: (r.get("idsw") or {}).get(p)) for p in PARTS},
            switches=seed_stat(rs, lambda r: r.get("num_switches")),
            status="skipped: " + self.skipped[m] if m in self.skipped else failure_status(rs, seeds),
        )
        if self.compute_ap:
            row["ap"] = seed_stat(rs, total("ap"))
        stale = self._compared(row, v, rs)
        row.update(paper_values(self.spec, v))
        return row, stale

    def _compared(self, row: dict, v: dict, rs: list) -> int:
        compare = self.compare
        own = v[compare["axis"]] if compare else None
        if not compare or (base(own) if compare["axis"] == "matcher" else own) == compare["to"]:
            return 0
        ref = {**v, compare["axis"]: compare["to"]}
        moved = suffix(v["matcher"]) if compare["axis"] == "matcher" else ""
        if moved and {**ref, "matcher": ref["matcher"] + moved} in self.raw:
            ref["matcher"] += moved
        if ref not in self.raw:
            return 0
        theirs = self.recs(ref)
        for metric in compare["metrics"]:
            row[f"d_{metric}"] = paired_difference(rs, theirs, total(metric))
        if not compare.get("videos"):
            return 0
        row["v_idsw"], missing = _video_interval(rs, theirs)
        return missing

    def write(self) -> Result:
        """The table, its notes, the tuning and speed tables and the plots."""
        spec, axes, compare = self.spec, self.axes, self.compare
        keys = {c if isinstance(c, str) else c["key"] for c in spec.get("columns") or []}
        shown = [
            a
            for a in AXES
            if axes[a] not in (None, [None])
            and (a == "setting" or len(axes[a]) > 1 or a == compare.get("axis") or a in keys)
        ]
        rows, stale = [], 0  # stale: rows whose cached cells lack per-video counts
        for v in self.raw:
            row, missing = self.row(v, shown)
            rows.append(row)
            stale += missing
        _mark_best(spec.get("best"), rows, self.raw)
        ours, rows = rows, _with_paper_rows(spec, rows, self.raw, self.matchers, axes)
        title = spec.get("title", self.name)
        files = list(
            write_table(rows, self.out, columns=_columns(spec, rows), notes=self.notes(stale), title=title)
        )
        if self.tuning_rows:
            files += _tuning_table(self.tuning_rows, self.out, self.train_description)
        tables = ["table"]
        if spec.get("speed"):
            files += _speed_table(self.raw, self.recs, spec, self.out, self.opts, self.eval_description)
            tables.append("speed")
        files += _plots(spec, ours, self.raw, self.out)  # one row per cell combination, as raw
        return Result(
            rows,
            self.out,
            files,
            self.failures,
            self.records,
            tables=tables,
            tuning_rows=self.tuning_rows,
            thresholds=self.thresholds,
        )

    def notes(self, stale: int) -> list[str]:
        spec, axes, compare, labels, opts = self.spec, self.axes, self.compare, self.labels, self.opts
        context = {a: (_label(spec, a, axes[a][0]) if axes[a] else None) for a in AXES}
        context["compare_to"] = _label(spec, compare.get("axis", ""), compare.get("to")) if compare else ""
        several = len(self.matchers) > 1 or len(opts.training_seeds) > 1
        return [
            *(n.format(**context) for n in spec.get("notes") or []),
            *common_notes(
                opts,
                self.eval_gt,
                self.eval_description,
                self.cache,
                axes["setting"],
                self.matchers,
                thresholds=self.thresholds,
                label=lambda m: labels.get(m, m),
                keypoint_threshold=axes["threshold"] is None,
                ap_before_threshold=self.compute_ap == "before",
                train_description=self.train_description,
                filled=self.filled,
            ),
            *(f"{labels[m] or 'Matching network'}: skipped, {reason}." for m, reason in self.skipped.items()),
            *_stale_notes(stale, self.cache),
            *(
                describe_network(*self.networks[m, s], f"{labels.get(m, m)}, seed {s}" if several else "")
                for (m, s) in self.networks
            ),
        ]


def _evaluator(cache, opts: TrackingOptions, profile) -> Evaluator:
    image_root = str(profile.data_root) if profile.data_root is not None else None
    return Evaluator(
        cache, device=opts.device, batch_size=opts.batch_size, image_root=image_root, split=profile.eval_split
    )


def _mark_best(best: dict | None, rows: list[dict], raw: list[dict]) -> None:
    """The spec's ``best``: the label on the best row of each matcher by its metric."""
    if not best:
        return
    metric, tops = best["metric"], {}
    for r, v in zip(rows, raw):
        top = tops.get(v["matcher"])
        if r[metric].n and (top is None or r[metric].mean > top[metric].mean):
            tops[v["matcher"]] = r
    for r in rows:
        r["best"] = best.get("label", "best") if any(r is t for t in tops.values()) else ""


def _status_column(rows: list[dict]) -> list[Column]:
    return [Column("status", "Status")] if any(r["status"] for r in rows) else []


def _tuning_table(rows: list[dict], out: Path, train_description: str) -> list:
    """``tuning.md`` / ``.csv``: the match-threshold grid of OKS and IoU on the training split."""
    per_cell = len({(r["setting"], r["stride"]) for r in rows}) > 1 or (
        rows[0]["setting"],
        rows[0]["stride"],
    ) != (GT_SETTING, 1)
    how = (
        "each keypoint setting and frame stride tracked as the table's cells are (its perturbation seed, "
        "output keypoint threshold, τ and confident-first setting)"
        if per_cell
        else "GT keypoints (c = 1), stride 1"
    )
    rows = [{**r, "setting": SETTING_LABELS.get(r["setting"], r["setting"])} for r in rows]
    return write_table(
        rows,
        out,
        name="tuning",
        title="Match thresholds tuned on the training split",
        notes=[
            f"Training split: {train_description}, {how}, {rows[0].get('assignment', 'greedy')} "
            "assignment; chosen: lowest "
            "%IDSW Total, then highest MOTA, then lowest threshold."
        ],
        columns=[
            Column("method", "Method"),
            *([Column("setting", "Keypoints"), Column("stride", "Stride")] if per_cell else []),
            *([Column("oks_scale", "σ scale")] if any(r.get("oks_scale", 1) != 1 for r in rows) else []),
            Column("threshold", "Match thr.", digits=2),
            Column("idsw_total", "%IDSW Total", digits=2),
            Column("mota", "MOTA"),
            Column("mota_pooled", "MOTA (pooled)", digits=1),
            Column("switches", "ID switches"),
            Column("chosen", "Chosen"),
            *_status_column(rows),
        ],
    )


def _with_paper_rows(
    spec: dict, rows: list[dict], raw: list[dict], matchers: Sequence, axes: dict
) -> list[dict]:
    """``rows`` with the spec's ``paper_rows`` (the paper's values as rows) after each setting's stride-1
    rows (else its last rows); an entry ``unless: <matcher>`` only when that matcher is not run."""
    from keytrack.reference import paper_results

    entries = [
        e for e in spec.get("paper_rows") or [] if not any(base(m) == e.get("unless") for m in matchers)
    ]
    if not entries:
        return rows
    out = []
    for i, (row, v) in enumerate(zip(rows, raw)):
        out.append(row)
        nxt = raw[i + 1] if i + 1 < len(raw) else None
        last = nxt is None or nxt["setting"] != v["setting"] or (v["stride"] == 1 and nxt["stride"] != 1)
        if not (last and (v["stride"] == 1 or 1 not in axes["stride"])):
            continue
        for e in entries:
            src = _lookup(paper_results(), e["from"].format(**v), spec["_path"])
            extra = {c: _lookup(src, p, spec["_path"]) for c, p in (e.get("values") or {}).items()}
            out.append(
                {
                    "setting": _label(spec, "setting", v["setting"]),
                    "stride": 1,
                    "matcher": e["label"],
                    **paper_values(spec, {**v, "stride": 1, "matcher": ""}),
                    **extra,
                }
            )
    return out


def _speed_table(
    raw: list[dict], recs, spec: dict, out: Path, opts: TrackingOptions, eval_description: str
) -> list:
    """``speed.md`` / ``.csv``: the tracking step's frames/s and the network's pairs/s of every (setting,
    matcher) at stride 1 (else the first stride), from the first cell of each."""
    import os

    import torch

    stride = min(v["stride"] for v in raw)
    rows = []
    for v in raw:
        done = recs(v) if v["stride"] == stride else []
        if not done:
            continue
        r = done[0].result if done[0].ok else {}
        rows.append(
            {
                "setting": _label(spec, "setting", v["setting"]),
                "matcher": _label(spec, "matcher", v["matcher"]),
                **{
                    k: r.get(k)
                    for k in ("frames", "poses", "frames_per_s", "pairs", "forwards", "pairs_per_s")
                },
                "measured": done[0].finished_at or None,
                "status": done[0].failure,
            }
        )
    return write_table(
        rows,
        out,
        name="speed",
        title=f"Speed of the tracking step (stride {stride})",
        columns=[
            Column("setting", "Keypoints"),
            Column("matcher", "Method"),
            Column("frames", "Frames"),
            Column("poses", "Poses"),
            Column("frames_per_s", "Frames/s", digits=0),
            Column("pairs", "Pairs scored"),
            Column("forwards", "Network forwards"),
            Column("pairs_per_s", "Pairs/s", digits=0),
            Column("measured", "Measured (UTC)"),
            *_status_column(rows),
        ],
        notes=[
            f"Evaluation split: {eval_description}; perturbation seed {opts.seeds[0]}.",
            "Frames/s: the whole tracking step per frame (candidates, scoring, assignment); pairs/s: pose "
            "pairs through the matching network per second of network time, tokenizing included.",
            f"The learned matchers: one batched forward per frame, nearest = {opts.nearest or 'all'} "
            f"candidate poses per earlier frame, device {opts.device}, {torch.get_num_threads()} torch "
            f"threads, {os.cpu_count()} CPUs; measured when each cell last ran (column Measured), on a "
            "machine shared with other jobs.",
        ],
    )


# -- ablations that train one network per row ---------------------------------------------------------


def _check_train_spec(spec: dict, where: str) -> dict:
    """A spec with ``train`` (Table 3, Figure 7 right), checked; ``{quick: .., full: ..}`` values stay
    until the profile is known (:func:`by_profile`)."""
    train, track = spec["train"] or {}, spec.get("track") or {}
    _known(f"{where}: train", train, TRAIN_KEYS)
    _known(f"{where}: track", track, TRACK_KEYS)
    rows = train.get("rows")
    _check(
        isinstance(rows, list) and rows,
        f"{where}: train.rows: expected a non-empty list of {{row, experiment, overrides}}",
    )
    for i, r in enumerate(rows):
        missing = {"row", "experiment"} - set(r or {})
        _check(not missing, f"{where}: train.rows[{i}]: lacks {sorted(missing)}")
    setting = by_profile(track, "quick").get("setting", PAPER_SETTING)
    _check(setting in SETTINGS, f"{where}: track.setting: {setting!r} is not one of {list(SETTINGS)}")
    compare = spec.get("compare")
    _check(
        not compare or compare.get("axis") == "row",
        f"{where}: compare.axis: a training spec compares rows (axis: row)",
    )
    claims = spec.get("claims")
    _check(not claims or claims in CLAIMS, f"{where}: claims: {claims!r} is not one of {list(CLAIMS)}")
    spec["_path"] = where
    return spec


def by_profile(node: Any, profile: str) -> Any:
    """``node`` with every ``{quick: a, full: b}`` mapping replaced by the profile's value."""
    if isinstance(node, dict):
        if node and set(node) <= PROFILE_KEYS:
            return by_profile(node.get(profile), profile)
        return {k: by_profile(v, profile) for k, v in node.items()}
    if isinstance(node, list):
        return [by_profile(v, profile) for v in node]
    return node


def train_rows(spec: dict) -> list[dict]:
    """The rows of a training spec: each ``train.rows`` entry (of those ``train.only`` names) for every
    combination of ``train.each``, its overrides formatted with those values."""
    train = spec["train"]
    each, only = train.get("each") or {}, set(train.get("only") or [])
    out = []
    for entry in train["rows"]:
        if only and entry["row"] not in only:
            continue
        for combo in itertools.product(*each.values()):
            values = dict(zip(each, combo))
            out.append(
                {
                    "row": entry["row"],
                    **values,
                    "values": {"row": entry["row"], **values},
                    "key": "-".join([entry["row"], *(str(_label(spec, k, v)) for k, v in values.items())]),
                    "experiment": entry["experiment"],
                    "overrides": [str(o).format(**values) for o in entry.get("overrides") or []],
                }
            )
    if not out:
        raise InputError(f"{spec['_path']}: train.only: no row is named {sorted(only)}")
    return out


@dataclass
class TrainSpecRun:
    """A training spec being run (:func:`start_train_spec`): what its rows share, and the records of each
    row done so far (``done[key]``, :func:`train_row`)."""

    spec: dict
    name: str
    opts: TrackingOptions
    out: Path
    cache: Any
    cells: TrainAndTrack
    seeds: tuple[int, ...]
    base_overrides: list[str]  # the data profile's and the budget's, before each row's
    data_note: str  # the training data and the evaluation split, in words
    done: dict = field(default_factory=dict)


def start_train_spec(
    spec: dict | str,
    opts: TrackingOptions,
    *,
    name: str | None = None,
    train_dataset: Dataset | None = None,
    eval_gt: Dataset | None = None,
) -> TrainSpecRun:
    """What every row of a ``train`` spec shares: the spec (its profile's values), options, results folder,
    cache, evaluation set and tracker; ``train_dataset`` / ``eval_gt`` replace the profile's (tests)."""
    spec = load_spec(spec) if isinstance(spec, str) else spec
    name = name or Path(spec["_path"]).stem
    spec = by_profile(spec, opts.profile)
    train, track = spec["train"], spec.get("track") or {}
    opts = replace(
        with_spec_defaults(opts, spec),
        synthetic_test_videos=opts.synthetic_test_videos or track.get("synthetic_test_videos", 20),
        nearest=opts.nearest if opts.nearest is not None else track.get("nearest"),
    )
    profile, out, cache = open_results(opts, name)
    eval_description = _given(eval_gt, lambda: profile.describe("eval"))
    eval_gt = profile.load_eval() if eval_gt is None else eval_gt
    setting = track.get("setting", PAPER_SETTING)
    kp = 0.0 if setting == GT_SETTING else opts.keypoint_threshold
    evalset = EvalSet(eval_gt, setting, int(track.get("perturb_seed", 0)), keypoint_threshold=kp)
    tracker = TrackerSpec(
        "network",
        match_threshold=opts.match_threshold,
        delta=int(track.get("delta", 4)),
        nearest=opts.nearest,
    )
    cells = TrainAndTrack(
        _evaluator(cache, opts, profile),
        evalset,
        tracker,
        train_dataset=train_dataset,
        wait=opts.wait_for_training,
    )
    budget = budget_file_overrides(train["budget"]) if train.get("budget") else []
    train_data = "given by the caller" if train_dataset is not None else profile.describe("train")
    return TrainSpecRun(
        spec,
        name,
        opts,
        out,
        cache,
        cells,
        tuple(opts.train_seeds or train.get("seeds") or (0,)),
        [*profile.train_overrides(), *budget],
        f"Training data: {train_data}. Tracking: {eval_description} ({eval_gt.report()})",
    )


def train_row(run: TrainSpecRun, r: dict) -> dict:
    """One row of a training spec (of :func:`train_rows`): its cost (``train.cost``) and, per training
    seed, its training (a finished run of the same configuration is reused) and its tracking, each cached;
    a row whose config does not compose fails alone (its training says why). Kept in ``run.done[key]``."""
    from keytrack.config import data_tag, load_config, overrides_for
    from keytrack.identity import digest
    from keytrack.models.cost import per_pair

    key, experiment = r["key"], r["experiment"]
    row_overrides = [*r["overrides"], *run.opts.train_overrides]
    with contextlib.suppress(Exception):  # no such experiment: its training says so
        row_overrides = overrides_for(experiment, row_overrides)
    cost = None
    if run.spec["train"].get("cost"):
        info = {"kind": "cost", "experiment": experiment, "overrides": row_overrides}
        cost = run.cache.run(f"cost-{key}", lambda: per_pair(experiment, row_overrides), info)
    cfg, trains, tracks = None, [], []
    for seed in run.seeds:
        overrides = [*run.base_overrides, *row_overrides, f"seed={seed}"]
        try:
            run_cfg = load_config([f"experiment={experiment}", *overrides])
            cfg = run_cfg if cfg is None else cfg  # the row's config: its train.show columns, the budget note
            # the run's folder: its data, row, profile and config digest (a changed config never resumes it)
            overrides.append(
                f"run_name={data_tag(run_cfg.data)}-{key}-{run.opts.profile}-{digest(run_cfg)[:6]}-seed{seed}"
            )
        except Exception as err:  # noqa: BLE001 - recorded by its training, the rows go on
            log.error("%s: %s: %s", key, type(err).__name__, err)
        trained = run.cells.train(
            f"train-{key}-seed{seed}", experiment, overrides, quiet=["trainer.enable_progress_bar=false"]
        )
        trains.append(trained)
        tracks.append(
            run.cells.track(f"track-{key}-seed{seed}", trained, cfg.model.name if cfg else "network")
        )
    run.done[key] = {"cfg": cfg, "cost": cost, "trains": trains, "tracks": tracks}
    return run.done[key]


def trained_metric(record, name: str) -> float | None:
    """A training record's ``best_<name>`` (``val_acc``, ``val_rank1``), else its run's ``metrics.json``'s."""
    import json

    path = Path(str((record.result or {}).get("run_dir"))) / "metrics.json"
    value = record.result.get(f"best_{name}") if record.ok else None
    if value is not None or not record.ok or not path.is_file():
        return value
    return json.loads(path.read_text(encoding="utf-8")).get(f"best_{name}")


def run_train_spec(
    spec: dict | str,
    opts: TrackingOptions,
    *,
    name: str | None = None,
    train_dataset: Dataset | None = None,
    eval_gt: Dataset | None = None,
) -> Result:
    """Train every (row, training seed) of a ``train`` spec once (cached), count its cost, track the
    evaluation split with it, write the table. The budget is ``experiments/<train.budget>.yaml`` added to
    each row's experiment (quick profile) or none (full: the paper's training)."""
    run = start_train_spec(spec, opts, name=name, train_dataset=train_dataset, eval_gt=eval_gt)
    rows_raw = train_rows(run.spec)
    for i, r in enumerate(rows_raw):
        log.info("[%d/%d] %s: training (%s), then tracking", i + 1, len(rows_raw), r["key"], run.opts.profile)
        train_row(run, r)
    return train_table(run, rows_raw)


def _percent(value: float | None) -> float | None:
    return None if value is None else 100 * value


def _val_acc(result: dict) -> float | None:
    return _percent(result.get("best_val_acc"))


def train_table(run: TrainSpecRun, rows_raw: list[dict]) -> Result:
    """The table, notes and plots of a training spec's rows (each done by :func:`train_row`)."""
    rows, failures, stale = [], [], 0
    for r in rows_raw:
        row, missing, failed = _train_table_row(run, r, rows_raw)
        rows.append(row)
        stale += missing
        failures += failed
    spec, out = run.spec, run.out
    notes = _train_notes(run, rows_raw, rows, stale)
    files = list(
        write_table(rows, out, columns=_columns(spec, rows), notes=notes, title=spec.get("title", run.name))
    )
    # a plot's x may be an axis value or a table column (params_m)
    raw = [
        {**{k: math.nan if v is None else v for k, v in row.items()}, **r["values"]}
        for row, r in zip(rows, rows_raw)
    ]
    files += _plots(spec, rows, raw, out)
    records = {
        (kind, k, s): rec
        for k, d in run.done.items()
        for kind in ("train", "track")
        for s, rec in zip(run.seeds, d[f"{kind}s"])
    }
    records.update({("cost", k): d["cost"] for k, d in run.done.items() if d["cost"] is not None})
    return Result(rows, out, files, failures, records)


def _train_table_row(run: TrainSpecRun, r: dict, rows_raw: list[dict]) -> tuple[dict, int, list[str]]:
    """One row of a training spec's table: statistics over its seeds' trainings and trackings, its cost,
    the difference from the spec's ``compare`` row, the paper's values and its status."""
    from omegaconf import OmegaConf

    spec, seeds, done, train = run.spec, run.seeds, run.done, run.spec["train"]
    d = done[r["key"]]
    trains, tracks, cost = d["trains"], d["tracks"], d["cost"]
    ok = [t.result for t in trains if t.ok]
    tracked = [t.result for t in tracks if t.ok]
    config = {
        col: OmegaConf.select(d["cfg"], key) if d["cfg"] is not None else None
        for col, key in (train.get("show") or {}).items()
    }
    row = {k: _label(spec, k, v) for k, v in r["values"].items()}
    row.update(
        {
            # a flag of train.show as ✓, a value as it is
            **{
                col: ("✓" if v else "") if isinstance(v, bool) or v is None else v
                for col, v in config.items()
            },
            "val_acc": mean_std(_val_acc(t) for t in ok),
            "idsw": mean_std(t["idsw"]["Total"] for t in tracked),
            "mota": mean_std(t["mota"]["Total"] for t in tracked),
            "val_rank1": mean_std(_percent(trained_metric(t, "val_rank1")) for t in trains),
            "steps": mean_std(t.get("global_step") for t in ok),
            "train_seconds": mean_std(t.get("train_seconds") for t in ok),
            "pairs_per_s": mean_std(t.get("pairs_per_s") for t in tracked),
            "experiment": r["experiment"],
        }
    )
    if cost is not None:
        row.update(
            params_m=cost.result["params"] / 1e6 if cost.ok else None,
            mflops=cost.result["flops"] / 1e6 if cost.ok else None,
        )
    stale = 0
    compare, each = spec.get("compare") or {}, list(train.get("each") or {})
    ref = None
    if compare and r["row"] != compare["to"]:
        ref = next(
            (q for q in rows_raw if q["row"] == compare["to"] and all(q[k] == r[k] for k in each)), None
        )
    if ref is not None:
        ref_trains, ref_tracks = done[ref["key"]]["trains"], done[ref["key"]]["tracks"]
        for m in compare["metrics"]:
            mine, theirs = (trains, ref_trains) if m == "val_acc" else (tracks, ref_tracks)
            row[f"d_{m}"] = paired_difference(mine, theirs, _val_acc if m == "val_acc" else total(m))
        if compare.get("videos"):
            row["v_idsw"], stale = _video_interval(tracks, ref_tracks)
    row.update(paper_values(spec, {**r["values"], **config}))  # `when` may name a train.show column
    train_failed = failure_status(trains, seeds)
    track_failed = failure_status(
        [t for t, x in zip(tracks, trains) if x.ok], [s for s, x in zip(seeds, trains) if x.ok]
    )
    status = (
        train_failed and "training " + train_failed,
        track_failed and "tracking " + track_failed,
        cost is not None and cost.failure and "cost failed: " + cost.failure,
    )
    row["status"] = "; ".join(x for x in status if x) or None
    failures = [f"{x.key}: {x.failure}" for x in [*trains, *tracks, *([cost] if cost else [])] if not x.ok]
    return row, stale, failures


def _train_notes(run: TrainSpecRun, rows_raw: list[dict], rows: list[dict], stale: int) -> list[str]:
    spec, opts, seeds, done, cache = run.spec, run.opts, run.seeds, run.done, run.cache
    train, evalset, tracker = spec["train"], run.cells.evalset, run.cells.tracker
    compare = spec.get("compare") or {}
    first = next((done[r["key"]]["cfg"] for r in rows_raw if done[r["key"]]["cfg"] is not None), None)
    budget = describe_budget(first) if first is not None else "no row's config composed"
    kp = evalset.keypoint_threshold
    candidates = (
        f"the {opts.nearest} nearest poses of each earlier frame" if opts.nearest else "every candidate pose"
    )
    budget_text = (
        f"quick profile (experiments/{train['budget']}.yaml added to each row's experiment, the same "
        f"for every row): {budget}; --profile full trains each experiment as it is "
        "(the paper's 25 epochs, for GPUs)"
        if train.get("budget")
        else f"{opts.profile} profile, each row's experiment with its overrides: {budget}"
    )
    context = {"compare_to": _label(spec, "row", compare["to"]) if compare else ""}
    claims = CLAIMS[spec["claims"]](rows_raw, rows) if spec.get("claims") else []
    return [
        *(n.format(**context) for n in spec.get("notes") or []),
        f"Mean ± sample std over training seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} "
        "(each seed also draws its own train/val split of the videos).",
        f"Training: {budget_text}. Train s: wall time of a training (its metrics.json).",
        f"{run.data_note}, {SETTING_LABELS[evalset.setting]} drawn once "
        f"with perturbation seed {evalset.seed}; δ = {tracker.delta}, greedy, match threshold "
        f"{opts.match_threshold:g}, {candidates}"
        + (f", keypoints below {kp:g} removed before MOTA and %IDSW (A.3)" if kp else "")
        + ".",
        *claims,
        *_stale_notes(stale, cache),
        f"Runs are cached in {display_path(cache.directory)}/ ({cache.reused} reused, {cache.computed} run "
        f"now); trained networks in {first.output_dir if first is not None else 'runs'}/<experiment>/<data>-"
        "<row>-<profile>-<config digest>-seed<k>/. Delete a file there to run it again.",
    ]


# -- command line -------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name",
        help="the ablation: a spec of experiments/ablations/ (timesteps, assignment, "
        "threshold, tokens, resolution_sweep, matcher_*) or a path to one, or one of "
        f"the ablations that stay code ({', '.join(PLUGINS)}; "
        "keytrack ablate NAME --help lists its options)",
    )
    parser.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        metavar="...",
        help="the tracking options (keytrack ablate NAME --help) and key=value spec overrides",
    )


def _options_parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"keytrack ablate {name}", description=__doc__.splitlines()[0])
    add_tracking_arguments(parser, name)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="spec overrides (axes.delta=[1,4])")
    return parser


def _plugin(name: str, rest: Sequence[str]) -> int:
    """Run the plug-in ablation ``name`` with its own command-line options ``rest``."""
    import importlib

    module = importlib.import_module(PLUGINS[name])
    parser = argparse.ArgumentParser(
        prog=f"keytrack ablate {name}", description=module.__doc__.splitlines()[0]
    )
    module.add_arguments(parser)
    return module.run(parser.parse_args(rest))


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.name in PLUGINS:
        return _plugin(args.name, args.rest)
    from omegaconf import OmegaConf

    path = spec_path(args.name)
    if path.is_file() and "variants" in (OmegaConf.load(path) or {}):  # run by matcher_variants
        return _plugin("matcher_variants", ["--spec", str(path), *args.rest])
    name = Path(args.name).stem
    parsed = _options_parser(name).parse_intermixed_args(args.rest)
    try:
        opts = tracking_options(parsed)
    except ValueError as err:
        raise InputError(f"{name}: {err}") from None  # the handler adds "keytrack ablate: error: "
    spec = load_spec(args.name, [*opts.spec_overrides(), *parsed.overrides])
    return finish(name, (run_train_spec if "train" in spec else run_spec)(spec, opts, name=name))
