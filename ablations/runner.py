"""``keytrack ablate NAME``: an ablation as data, one runner for all of them.

    keytrack ablate tracker_comparison --train-seeds 0 1 2       # Figure 4: matchers × settings × strides
    keytrack ablate timesteps                                    # §5.1: δ = 1..4 at tracking time
    keytrack ablate threshold --seeds 0 axes.threshold=[0.3,0.5] # A.3 / Table 4, spec values overridden
    keytrack ablate tokens --train-seeds 0 1 2                   # Table 3: one network per token scheme
    keytrack ablate resolution_sweep --profile full --device cuda  # Figure 7 (right), the paper's training

An ablation is a YAML spec, ``experiments/ablations/<NAME>.yaml`` (or a path): ``axes`` (what varies at
tracking time, expanded into the cells of :func:`ablations.cells.run_cells` by :func:`run_spec`) or
``train`` (one network per row and training seed, :func:`run_train_spec`), and the table, comparisons,
the paper's values and plots. Every field is described in docs/ablations.md ("The spec of an ablation").
It writes ``results/<NAME>/`` (``.../<data>-<split>/`` with ``--data``): ``table.md`` / ``table.csv`` and
the plots; ``key=value`` arguments override the spec (omegaconf dotlist: ``axes.delta=[1,4]``).
"""
from __future__ import annotations

import argparse
import itertools
import logging
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from ablations.claims import CLAIMS
from ablations.notes import common_notes
from keytrack.config import config_path
from keytrack.evaluation import COLUMNS as PARTS
from keytrack.errors import InputError
from ablations.cells import (DEFAULT_SEEDS, GT_SETTING, IMPROVED_MATCHERS, LEARNED_BASELINES, MOTION, PAPER_MATCHERS,
                                PAPER_SETTING, Cell, TrackingOptions, TrainAndTrack, add_tracking_arguments, base,
                                describe_network, matcher_network, missing_images, motion_of, open_results, run_cells,
                                threshold_of, tracking_options, tune_thresholds)
from ablations.plots import Panel, Series, save_line_plot
from ablations.profile import display_path
from ablations.evaluate import (HOTA_COLUMNS, NON_LEARNED, PAPER_KEYPOINT_THRESHOLD, SETTING_LABELS, EvalSet,
                                   Evaluator, TrackerSpec)
from ablations.runs import Result, failure_status, finish, paired_difference, seed_stat, total, video_bootstrap
from ablations.training import budget_file_overrides, describe_budget
from keytrack.perturb import SETTINGS
from keytrack.poses import Dataset
from keytrack.tables import Column, MeanStd, mean_std, write_table
from keytrack.tracking import ASSIGNMENTS

log = logging.getLogger("ablations.runner")

SPECS = config_path("ablations")
#: The ablations that stay code (plug-ins): ``keytrack ablate NAME ...`` hands ``...`` to the module's own
#: options (``add_arguments`` / ``run``). A spec with ``variants`` is run by ``matcher_variants``.
PLUGINS = {"matcher_variants": "ablations.matcher_variants", "toks": "ablations.toks", "sweep": "ablations.sweep"}
#: The axes a spec may vary, in the order a cell is built from.
AXES = ("setting", "stride", "matcher", "delta", "assignment", "threshold")
DEFAULT_AXES = {"setting": ["predicted_boxes_predicted_keypoints"], "stride": [1], "matcher": None, "delta": [4],
                "assignment": ["greedy"], "threshold": None}
SPEC_KEYS = {"title", "axes", "seeds", "compute_ap", "speed", "compare", "best", "paper", "paper_rows", "labels",
             "columns", "notes", "plot", "train", "track", "claims"}
#: Fields of ``train`` (a spec that trains one network per row and seed) and of its ``track``.
TRAIN_KEYS = {"rows", "each", "seeds", "budget", "show", "cost", "only"}
TRACK_KEYS = {"setting", "perturb_seed", "delta", "nearest", "synthetic_test_videos"}
PROFILE_KEYS = {"quick", "full"}
#: Column labels and digits of the keys a row has.
COLUMN_LABELS = {
    "setting": ("Keypoints", None), "stride": ("Stride", None), "matcher": ("Matcher", None), "delta": ("δ", None),
    "match_threshold": ("Match thr.", 2),
    "assignment": ("Assignment", None),
    "threshold": ("Threshold", 2), "idsw": ("%IDSW Total", 2), "mota": ("MOTA", None), "ap": ("AP", None),
    "switches": ("ID switches", 0), "best": ("", None),
    "row": ("Row", None), "val_acc": ("Match acc. % (val)", None), "val_acc_paper": ("Match acc. % (paper)", None),
    "params_m": ("Params (M)", 3), "mflops": ("MFLOPs / pair", 1), "steps": ("Train steps", 0),
    "train_seconds": ("Train s", 0), "pairs_per_s": ("Pairs/s (tracking)", 0), "experiment": ("Experiment", None),
}
METRICS = {"idsw": "%IDSW", "mota": "MOTA", "ap": "AP", "val_acc": "match acc."}


def spec_names() -> list[str]:
    """The ablations of ``experiments/ablations/`` this runner reads (those with ``axes`` or ``train``)."""
    from omegaconf import OmegaConf

    return sorted(p.stem for p in SPECS.glob("*.yaml") if {"axes", "train"} & set(OmegaConf.load(p) or {}))


def spec_path(name: str) -> Path:
    """The spec file of ``name``: a path (``.yaml``) as given, else ``experiments/ablations/<name>.yaml``."""
    return Path(name) if name.endswith((".yaml", ".yml")) else SPECS / f"{name}.yaml"


def load_spec(name: str, overrides: Sequence[str] = ()) -> dict:
    """The spec ``name`` (a name under ``experiments/ablations/`` or a path) with ``key=value``
    ``overrides``, checked: an error names the file and the field."""
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
    where = str(path)
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise InputError(f"{where}: unknown field(s) {unknown} (known: {sorted(SPEC_KEYS)})")
    if "train" in spec:
        return _check_train_spec(spec, where)
    axes = {**DEFAULT_AXES, **(spec.get("axes") or {})}
    bad = sorted(set(axes) - set(AXES))
    if bad:
        raise InputError(f"{where}: axes: unknown axis {bad} (known: {list(AXES)})")
    for axis in AXES:
        values = axes[axis]
        if axis in ("threshold", "matcher") and values is None:
            continue
        if not isinstance(values, list) or not values:
            raise InputError(f"{where}: axes.{axis}: expected a non-empty list, got {values!r}")
    named = (*PAPER_MATCHERS, *IMPROVED_MATCHERS, *NON_LEARNED, *LEARNED_BASELINES)
    checks = {"setting": (lambda v: v in SETTINGS, f"one of {list(SETTINGS)}"),
              "assignment": (lambda v: v in ASSIGNMENTS, f"one of {list(ASSIGNMENTS)}"),
              "stride": (lambda v: isinstance(v, int) and v >= 1, "integers >= 1"),
              "delta": (lambda v: isinstance(v, int) and v >= 1, "integers >= 1"),
              "threshold": (lambda v: isinstance(v, (int, float)) and 0 <= v <= 1, "numbers in [0, 1]"),
              "matcher": (lambda v: isinstance(v, str) and (base(v) in named
                                                            or config_path(f"{base(v)}.yaml").is_file()),
                          f"one of {list(named)} or an experiment of experiments/, each optionally with {MOTION!r}")}
    for axis, (ok, expected) in checks.items():
        wrong = [v for v in (axes[axis] or []) if not ok(v)]
        if wrong:
            raise InputError(f"{where}: axes.{axis}: {wrong} are not {expected}")
    for axis in ("stride", "delta", "threshold"):        # numeric axes: sorted, each value once
        if axes[axis] is not None:
            axes[axis] = sorted({float(v) if axis == "threshold" else int(v) for v in axes[axis]})
    if axes["matcher"] is not None:
        axes["matcher"] = list(dict.fromkeys(axes["matcher"]))
    unknown = sorted(set(spec.get("track") or {}) - {"keypoint_threshold"})
    if unknown:
        raise InputError(f"{where}: track: unknown field(s) {unknown} (known: ['keypoint_threshold'])")
    spec["axes"] = axes
    compare = spec.get("compare")
    if compare and (compare.get("axis") not in AXES or not compare.get("metrics")):
        raise InputError(f"{where}: compare: expected {{axis: one of {list(AXES)}, to: value, metrics: [...]}}")
    spec["_path"] = where
    return spec


def _lookup(tree: Any, dotted: str, where: str) -> Any:
    for part in dotted.split("."):
        try:
            tree = tree[int(part)] if isinstance(tree, list) else tree[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise InputError(f"{where}: paper: no {dotted!r} in keytrack/reference/paper_results.yaml") from None
    return tree


def _matches(when: dict, values: dict) -> bool:
    """Whether a row of axis ``values`` meets ``when``; a condition on an axis the table does not have
    (``None``: ``matcher`` with one network) holds."""
    def holds(k: str, v: Any) -> bool:
        have = values.get(k)
        return ((k in AXES and have is None) or have == v
                or (isinstance(v, float) and isinstance(have, float) and math.isclose(have, v, abs_tol=1e-9)))

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
                source = next((r for r in source if math.isclose(float(r[axis]), float(values[axis]),
                                                                 abs_tol=1e-9)), None)
                if source is None:
                    continue
        for column, v in (entry.get("values") or {}).items():
            out[column] = _lookup(source, v, spec["_path"]) if source is not None and isinstance(v, str) else v
    return out


def _label(spec: dict, axis: str, value: Any) -> Any:
    if axis == "setting":
        return SETTING_LABELS[value]
    if axis == "matcher" and value:
        if value.endswith(MOTION):
            return f"{_label(spec, axis, base(value))} + motion"
        if value in LEARNED_BASELINES and value not in ((spec.get("labels") or {}).get(axis) or {}):
            from keytrack.models import registry
            return registry.get(value).label
    if isinstance(value, (list, tuple)):                 # a resolution [w, h] is shown as "wxh"
        return "x".join(map(str, value))
    return ((spec.get("labels") or {}).get(axis) or {}).get(value, value)


def hota_stats(records: Sequence) -> dict[str, MeanStd]:
    """:data:`HOTA_COLUMNS` of a row: each the mean ± std over its successful records."""
    return {k: seed_stat(records, lambda r, k=k: (r.get("hota") or {}).get(k)) for k in HOTA_COLUMNS}


def hota_columns(rows: Sequence[dict]) -> list[Column]:
    """The :data:`HOTA_COLUMNS` of a table where some row has a value that prints."""
    def shown(value) -> bool:
        return value is not None and not (isinstance(value, MeanStd) and value.n == 0)

    return [Column(k, k) for k in HOTA_COLUMNS if any(shown(r.get(k)) for r in rows)]


def _columns(spec: dict, rows: list[dict]) -> list[Column]:
    cols = []
    for c in spec.get("columns") or []:
        c = {"key": c} if isinstance(c, str) else dict(c)
        key = c["key"]
        if key in AXES and not any(key in r for r in rows):      # an axis the table does not have
            continue
        if key == "hota":
            cols.extend(hota_columns(rows))
            continue
        if key == "parts":                               # %IDSW per body part, PoseTrack's columns
            cols.extend(Column(p, p, digits=2) for p in PARTS)
            continue
        label, digits = _metric_label(spec, key)
        cols.append(Column(key, c.get("label", label), digits=c.get("digits", digits)))
    if any(r.get("status") for r in rows):
        cols.append(Column("status", "Status"))
    return cols


def _video_interval(mine: Sequence, theirs: Sequence) -> tuple[Any, bool]:
    """A row's ``v_idsw`` against its reference (:func:`video_bootstrap`), and whether it is missing only
    because their cached cells predate the per-video counts."""
    interval = video_bootstrap(mine, theirs)
    return interval, interval is None and any(r.ok for r in mine) and any(r.ok for r in theirs)


def _stale_notes(stale: int, cache) -> list[str]:
    """The note of a table whose ``stale`` rows have no interval over the videos (:func:`_video_interval`)."""
    return [f"{stale} row(s) have no interval over the videos: their cells were cached before per-video counts "
            f"were recorded; delete their files in {display_path(cache.directory)}/ to run them again."] if stale else []


def _plots(spec: dict, rows: list[dict], raw: list[dict], out: Path) -> list[Path]:
    """The spec's ``plot`` (one, or a list), each written by :func:`_plot`."""
    plots = spec.get("plot") or []
    return [_plot(spec, p, rows, raw, out) for p in (plots if isinstance(plots, list) else [plots])]


def _metric_label(spec: dict, key: str) -> tuple[str, int | None]:
    """The header and digits of a table column (a plot's y label): ``d_<metric>`` / ``v_<metric>`` name
    the spec's ``compare``."""
    compare = spec.get("compare") or {}
    if key[:2] in ("d_", "v_") and key[2:] in METRICS:
        to = f"δ = {compare['to']}" if compare.get("axis") == "delta" else \
            _label(spec, compare.get("axis"), compare.get("to"))
        return f"Δ{METRICS[key[2:]]} vs {to}" + (" (95 % CI, videos × seeds)" if key[0] == "v" else ""), 2
    label, digits = COLUMN_LABELS.get(key, (key, None))
    if key.endswith("_paper") and key not in COLUMN_LABELS:
        label = f"{COLUMN_LABELS.get(key.removesuffix('_paper'), (key,))[0]} (paper)"
    return label, digits


def _plot(spec: dict, plot: dict, rows: list[dict], raw: list[dict], out: Path) -> Path:
    """One ``plot`` of the spec: one panel per ``y`` metric (and per ``panel_by`` value), one line per
    ``series_by`` value (else ours and the paper's), ``x`` a numeric axis (a list value [w, h] by w)."""
    x_axis = plot["x"]

    def xs(v):
        return v[x_axis][0] if isinstance(v[x_axis], (list, tuple)) else v[x_axis]

    def values(key):
        return [None] if not plot.get(key) else list(dict.fromkeys(_hashable(v[plot[key]]) for v in raw))

    paper_series = {}
    if plot.get("paper"):
        from keytrack.reference import paper_results

        src = _lookup(paper_results(), plot["paper"]["from"], spec["_path"])
        if all(_matches(plot["paper"].get("when") or {}, v) for v in raw):
            paper_series = {m: ([p[plot["paper"]["x"]] for p in src], [p[m] for p in src]) for m in plot["y"]}
    panels = []
    for g in values("panel_by"):
        for metric in plot["y"]:
            series = []
            for s in values("series_by"):
                mine = [(r, v) for r, v in zip(rows, raw) if (g is None or _hashable(v[plot["panel_by"]]) == g)
                        and (s is None or _hashable(v[plot["series_by"]]) == s)]
                name = "ours" if s is None else _label(spec, plot["series_by"], s)
                series.append(Series(name, [xs(v) for _, v in mine], [r.get(metric) for r, _ in mine]))
            if metric in paper_series:
                series.append(Series("paper", *paper_series[metric], "s--"))
            panels.append(Panel(_metric_label(spec, metric)[0], series,
                                "" if g is None else _label(spec, plot["panel_by"], g)))
    ticks = sorted({_hashable(v[x_axis]) for v in raw}, key=lambda t: t[0] if isinstance(t, tuple) else t)
    axis_values = spec.get("axes", {}).get(x_axis) if plot.get("xticks") else None
    if plot.get("xscale"):
        axis_values = [t[0] if isinstance(t, tuple) else t for t in ticks]
    return save_line_plot(out / plot["file"], panels, xlabel=plot.get("xlabel", x_axis),
                          title=plot.get("title", spec.get("title", "")), ncols=plot.get("ncols"),
                          xticks=axis_values, xscale=plot.get("xscale"), zero_line=bool(plot.get("zero")),
                          dodge=float(plot.get("dodge", 0.0)),
                          xticklabels=[_label(spec, x_axis, t) for t in ticks] if plot.get("xscale") else None)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def with_spec_defaults(opts: TrackingOptions, spec: dict) -> TrackingOptions:
    """``opts`` with what the options leave to the spec: the perturbation ``seeds`` (the spec's, else 0 1
    2) and the output keypoint threshold (its ``track.keypoint_threshold``, else the paper's 0.57)."""
    from dataclasses import replace

    kp = opts.keypoint_threshold if opts.keypoint_threshold is not None else \
        (spec.get("track") or {}).get("keypoint_threshold", PAPER_KEYPOINT_THRESHOLD)
    return replace(opts, seeds=opts.seeds or tuple(spec.get("seeds") or DEFAULT_SEEDS), keypoint_threshold=float(kp))


def _matchers(spec: dict, opts: TrackingOptions) -> list[str | None]:
    """The spec's matchers; ``--checkpoint`` / ``--experiment`` replace a spec of networks alone by the one
    network they name (None), and otherwise are the paper's matcher."""
    matchers = spec["axes"]["matcher"] or [None]
    networks_only = all(base(m) not in (*NON_LEARNED, *LEARNED_BASELINES) for m in matchers if m)
    return [None] if (opts.checkpoint or opts.experiment) and networks_only else matchers


def run_spec(spec: dict | str, opts: TrackingOptions, *, name: str | None = None,
             eval_gt: Dataset | None = None, train_gt: Dataset | None = None) -> Result:
    """Expand ``spec`` into cells, run or reuse each, write the table (and ``tuning.md`` when OKS or IoU
    were tuned, ``speed.md`` with ``speed: true``) and the plot.

    ``name``: the results folder (default: the spec file's name); ``eval_gt`` / ``train_gt`` replace
    the profile's evaluation ground truth and the training ground truth that OKS and IoU are tuned on
    (tests, other data)."""
    spec = load_spec(spec) if isinstance(spec, str) else spec
    name = name or Path(spec["_path"]).stem
    opts = with_spec_defaults(opts, spec)
    profile, out, cache = open_results(opts, name)
    axes = dict(spec["axes"])
    axes["matcher"] = matchers = _matchers(spec, opts)
    eval_description = profile.describe("eval") if eval_gt is None else "ground truth given by the caller"
    eval_gt = profile.load_eval() if eval_gt is None else eval_gt
    labels = {m: _label(spec, "matcher", m) for m in matchers}

    # The matchers: each learned one trained once per training seed (or reused); the crop CNN skipped on
    # data without image files; OKS and IoU tuned on the training split.
    skipped: dict[str, str] = {}
    if any(base(m) == "cnn_crops" for m in matchers) and "cnn_crops" not in opts.checkpoints:
        reason = missing_images(profile, eval_gt)
        skipped = {m: reason for m in matchers if reason and base(m) == "cnn_crops"}
    networks = _networks(opts, profile, [m for m in matchers if m not in skipped])
    failures = [f"{labels.get(m, m) or 'matching'} network (seed {seed}): {error}"
                for (m, seed), (_, error) in networks.items() if error]
    train_description = profile.describe("train") if train_gt is None else "ground truth given by the caller"
    image_root = str(profile.data_root) if profile.data_root is not None else None
    evaluator = Evaluator(cache, device=opts.device, batch_size=opts.batch_size, image_root=image_root,
                          split=profile.eval_split)
    thresholds, tuning_rows, filled = tune_thresholds(opts, profile, evaluator, matchers, max(axes["delta"]), train_gt,
                                                      label=lambda m: labels[m],
                                                      cells=list(itertools.product(axes["setting"], axes["stride"])))
    failures += [f"{m}{'' if k is None else f' ({k[0]}, stride {k[1]})'}: every tuning run failed"
                 for m, t in thresholds.items()
                 for k, v in (t.items() if isinstance(t, Mapping) else [(None, t)]) if v is None]

    compute_ap = spec.get("compute_ap", False)

    def thresholds_of(setting: str) -> list[float]:
        return axes["threshold"] if axes["threshold"] is not None else [opts.output_keypoint_threshold(setting)]

    def cells(v: dict) -> list[Cell]:
        m = v["matcher"]
        trainings = (None,) if m is None else opts.seeds_of(m)
        return [Cell(v["setting"], seed, v["delta"], v["assignment"], float(v["threshold"]),
                     compute_ap=bool(compute_ap), matcher=m, stride=v["stride"], train_seed=t,
                     ap_before_threshold=compute_ap == "before", several_trainings=len(trainings) > 1)
                for t in trainings for seed in opts.seeds_for(v["setting"])]

    raw = [dict(zip(AXES, combo)) for s in axes["setting"]
           for combo in itertools.product([s], axes["stride"], matchers, axes["delta"], axes["assignment"],
                                          thresholds_of(s))]
    todo = [c for v in raw if v["matcher"] not in skipped for c in cells(v)]
    records = run_cells(todo, evaluator=evaluator, eval_gt=eval_gt, opts=opts, networks=networks,
                        thresholds=thresholds, logger=log)
    failures += [f"{c.key}: {r.failure}" for c, r in records.items() if not r.ok]

    def recs(v: dict) -> list:
        return [records[c] for c in cells(v) if c in records]

    compare = spec.get("compare") or {}
    shown = [a for a in AXES if axes[a] not in (None, [None]) and (a == "setting" or len(axes[a]) > 1
                                                        or a == compare.get("axis") or a in _column_keys(spec))]
    rows, stale = [], 0                                  # stale: rows whose cached cells lack per-video counts
    for v in raw:
        rs = recs(v)
        row = {a: _label(spec, a, v[a]) for a in shown}
        row.update(match_threshold=None if v["matcher"] in skipped else
                   threshold_of(thresholds, v["matcher"], v["setting"], v["stride"]),
                   idsw=seed_stat(rs, total("idsw")),
                   mota=seed_stat(rs, total("mota")), **hota_stats(rs),
                   **{p: seed_stat(rs, lambda r, p=p: (r.get("idsw") or {}).get(p)) for p in PARTS},
                   switches=seed_stat(rs, lambda r: r.get("num_switches")),
                   status=("skipped: " + skipped[v["matcher"]] if v["matcher"] in skipped else
                           failure_status(rs, [f"{c.seed}" + (f" (training {c.train_seed})" if c.several_trainings
                                                              else "") for c in cells(v)])))
        if compute_ap:
            row["ap"] = seed_stat(rs, total("ap"))
        own = v[compare["axis"]] if compare else None
        if compare and (base(own) if compare["axis"] == "matcher" else own) != compare["to"]:
            ref = {**v, compare["axis"]: compare["to"]}
            if compare["axis"] == "matcher" and motion_of(v["matcher"]) and {**ref, "matcher": ref["matcher"] + MOTION} in raw:
                ref["matcher"] += MOTION
            if ref in raw:
                theirs = recs(ref)
                for metric in compare["metrics"]:
                    row[f"d_{metric}"] = paired_difference(rs, theirs, total(metric))
                if compare.get("videos"):
                    row["v_idsw"], missing = _video_interval(rs, theirs)
                    stale += missing
        row.update(paper_values(spec, v))
        rows.append(row)
    best = spec.get("best")
    if best:                                             # the best row of each matcher
        tops = {}
        for r, v in zip(rows, raw):
            top = tops.get(v["matcher"])
            if r[best["metric"]].n and (top is None or r[best["metric"]].mean > top[best["metric"]].mean):
                tops[v["matcher"]] = r
        for r in rows:
            r["best"] = best.get("label", "best") if any(r is t for t in tops.values()) else ""
    ours, rows = rows, _with_paper_rows(spec, rows, raw, matchers, axes)

    context = {a: (_label(spec, a, axes[a][0]) if axes[a] else None) for a in AXES}
    context["compare_to"] = _label(spec, compare.get("axis", ""), compare.get("to")) if compare else ""
    notes = [*(n.format(**context) for n in spec.get("notes") or []),
             *common_notes(opts, profile, eval_gt, eval_description, cache, axes["setting"], matchers,
                           thresholds=thresholds, label=lambda m: labels.get(m, m), keypoint_threshold=
                           axes["threshold"] is None, ap_before_threshold=compute_ap == "before",
                           train_description=train_description, filled=filled),
             *(f"{labels[m] or 'Matching network'}: skipped, {reason}." for m, reason in skipped.items()),
             *_stale_notes(stale, cache),
             *(describe_network(*networks[m, s], (f"{labels.get(m, m)}, seed {s}" if len(matchers) > 1
                                                  or len(opts.training_seeds) > 1 else ""))
               for (m, s) in networks)]
    files = list(write_table(rows, out, columns=_columns(spec, rows), notes=notes, title=spec.get("title", name)))
    if tuning_rows:
        files += _tuning_table(tuning_rows, out, train_description)
    tables = ["table"]
    if spec.get("speed"):
        files += _speed_table(raw, recs, spec, out, opts, eval_description)
        tables.append("speed")
    files += _plots(spec, ours, raw, out)              # one row per cell combination, as raw
    return Result(rows, out, files, failures, records, tables=tables, tuning_rows=tuning_rows,
                  thresholds=thresholds)


def _networks(opts: TrackingOptions, profile, matchers: Sequence[str | None]) -> dict:
    """``{(matcher, training seed): (network, error)}`` of the learned ``matchers`` (their motion suffix
    dropped), each trained once per training seed or reused; ``(None, None)``: the options' one network,
    the paper's matcher with ``--checkpoint`` / ``--experiment`` and ``--train-seed``."""
    networks = {}
    for m in dict.fromkeys(base(m) for m in matchers if base(m) not in NON_LEARNED):
        for seed in (None,) if m is None else opts.seeds_of(m):
            networks[m, seed] = matcher_network(opts, profile, m or PAPER_MATCHERS[0],
                                                opts.train_seed if m is None else seed)
    return networks


def _tuning_table(rows: list[dict], out: Path, train_description: str) -> list:
    """``tuning.md`` / ``.csv``: the match-threshold grid of OKS and IoU on the training split."""
    per_cell = len({(r["setting"], r["stride"]) for r in rows}) > 1 or rows[0]["setting"] != GT_SETTING \
        or rows[0]["stride"] != 1
    how = ("each keypoint setting and frame stride tracked as the table's cells are (its perturbation seed, output "
           "keypoint threshold, τ and confident-first setting)" if per_cell else "GT keypoints (c = 1), stride 1")
    rows = [{**r, "setting": SETTING_LABELS.get(r["setting"], r["setting"])} for r in rows]
    return write_table(rows, out, name="tuning", title="Match thresholds of OKS and IoU, tuned on the training split",
                       notes=[f"Training split: {train_description}, {how}, greedy assignment; chosen: lowest "
                              "%IDSW Total, then highest MOTA, then lowest threshold."],
                       columns=[Column("method", "Method"),
                                *([Column("setting", "Keypoints"), Column("stride", "Stride")] if per_cell else []),
                                Column("threshold", "Match thr.", digits=2),
                                Column("idsw_total", "%IDSW Total", digits=2), Column("mota", "MOTA"),
                                Column("switches", "ID switches"), Column("chosen", "Chosen"),
                                *([Column("status", "Status")] if any(r["status"] for r in rows) else [])])


def _column_keys(spec: dict) -> set[str]:
    return {c if isinstance(c, str) else c["key"] for c in spec.get("columns") or []}


def _with_paper_rows(spec: dict, rows: list[dict], raw: list[dict], matchers: Sequence, axes: dict) -> list[dict]:
    """``rows`` with the spec's ``paper_rows`` (the paper's values alone, as rows of their own) after each
    setting's stride-1 rows (its last rows without a stride 1); an entry ``unless: <matcher>`` only when
    that matcher is not run."""
    from keytrack.reference import paper_results

    entries = [e for e in spec.get("paper_rows") or [] if not any(base(m) == e.get("unless") for m in matchers)]
    if not entries:
        return rows
    out = []
    for i, (row, v) in enumerate(zip(rows, raw)):
        out.append(row)
        nxt = raw[i + 1] if i + 1 < len(raw) else None
        last = nxt is None or nxt["setting"] != v["setting"] or (v["stride"] == 1 and nxt["stride"] != 1)
        if last and (v["stride"] == 1 or 1 not in axes["stride"]):
            for e in entries:
                src = _lookup(paper_results(), e["from"].format(**v), spec["_path"])
                extra = {c: _lookup(src, p, spec["_path"]) for c, p in (e.get("values") or {}).items()}
                out.append({"setting": _label(spec, "setting", v["setting"]), "stride": 1, "matcher": e["label"],
                            **paper_values(spec, {**v, "stride": 1, "matcher": ""}), **extra})
    return out


def _speed_table(raw: list[dict], recs, spec: dict, out: Path, opts: TrackingOptions, eval_description: str) -> list:
    """``speed.md`` / ``.csv``: the tracking step's frames/s and the network's pairs/s of every (setting,
    matcher) at stride 1 (else the first stride), from the first cell of each."""
    import os

    import torch

    strides = sorted({v["stride"] for v in raw})
    stride = 1 if 1 in strides else strides[0]
    rows = []
    for v in raw:
        done = recs(v) if v["stride"] == stride else []
        if not done:
            continue
        record = done[0]
        r = record.result if record.ok else {}
        rows.append({"setting": _label(spec, "setting", v["setting"]), "matcher": _label(spec, "matcher", v["matcher"]),
                     **{k: r.get(k) for k in ("frames", "poses", "frames_per_s", "pairs", "forwards", "pairs_per_s")},
                     "measured": record.finished_at or None, "status": record.failure})
    return write_table(
        rows, out, name="speed", title=f"Speed of the tracking step (stride {stride})",
        columns=[Column("setting", "Keypoints"), Column("matcher", "Method"), Column("frames", "Frames"),
                 Column("poses", "Poses"), Column("frames_per_s", "Frames/s", digits=0),
                 Column("pairs", "Pairs scored"), Column("forwards", "Network forwards"),
                 Column("pairs_per_s", "Pairs/s", digits=0), Column("measured", "Measured (UTC)"),
                 *([Column("status", "Status")] if any(r["status"] for r in rows) else [])],
        notes=[f"Evaluation split: {eval_description}; perturbation seed {opts.seeds[0]}.",
               "Frames/s: the whole tracking step per frame (candidates, scoring, assignment); pairs/s: pose pairs "
               "through the matching network per second of network time, tokenizing included.",
               f"The learned matchers: one batched forward per frame, nearest = {opts.nearest or 'all'} candidate "
               f"poses per earlier frame, device {opts.device}, {torch.get_num_threads()} torch threads, "
               f"{os.cpu_count()} CPUs; measured when each cell last ran (column Measured), on a machine shared "
               "with other jobs."])


# -- ablations that train one network per row ---------------------------------------------------------

def _check_train_spec(spec: dict, where: str) -> dict:
    """A spec with ``train`` (Table 3, Figure 7 right): checked; ``{quick: .., full: ..}`` values stay
    until the profile is known (:func:`by_profile`)."""
    train, track = spec["train"] or {}, spec.get("track") or {}
    for section, fields, known in (("train", train, TRAIN_KEYS), ("track", track, TRACK_KEYS)):
        unknown = sorted(set(fields) - known)
        if unknown:
            raise InputError(f"{where}: {section}: unknown field(s) {unknown} (known: {sorted(known)})")
    rows = train.get("rows")
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{where}: train.rows: expected a non-empty list of {{row, experiment, overrides}}")
    for i, r in enumerate(rows):
        missing = {"row", "experiment"} - set(r or {})
        if missing:
            raise InputError(f"{where}: train.rows[{i}]: lacks {sorted(missing)}")
    setting = by_profile(track, "quick").get("setting", PAPER_SETTING)
    if setting not in SETTINGS:
        raise InputError(f"{where}: track.setting: {setting!r} is not one of {list(SETTINGS)}")
    compare = spec.get("compare")
    if compare and compare.get("axis") != "row":
        raise InputError(f"{where}: compare.axis: a training spec compares rows (axis: row)")
    if spec.get("claims") and spec["claims"] not in CLAIMS:
        raise InputError(f"{where}: claims: {spec['claims']!r} is not one of {list(CLAIMS)}")
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
    """The rows of a training spec: each ``train.rows`` entry for every combination of ``train.each``
    (its overrides formatted with those values: ``"tokens.grid=[{resolution[0]},{resolution[1]}]"``;
    ``values``: the row's name and those values), in the order of the entries; ``train.only`` keeps the rows of those names."""
    train = spec["train"]
    each = train.get("each") or {}
    only = set(train.get("only") or [])
    out = []
    for entry in train["rows"]:
        if only and entry["row"] not in only:
            continue
        for combo in itertools.product(*each.values()):
            values = dict(zip(each, combo))
            key = "-".join([entry["row"], *(str(_label(spec, k, v)) for k, v in values.items())])
            out.append({"row": entry["row"], **values, "values": {"row": entry["row"], **values}, "key": key,
                        "experiment": entry["experiment"],
                        "overrides": [str(o).format(**values) for o in entry.get("overrides") or []]})
    if not out:
        raise InputError(f"{spec['_path']}: train.only: no row is named {sorted(only)}")
    return out


def run_train_spec(spec: dict | str, opts: TrackingOptions, *, name: str | None = None,
                   train_dataset: Dataset | None = None, eval_gt: Dataset | None = None) -> Result:
    """Train every (row, training seed) of a ``train`` spec once (cached; a finished run of the same
    configuration is reused), count its cost, track the evaluation split with it, write the table.

    The budget is ``experiments/<train.budget>.yaml`` added to each row's experiment (quick profile),
    or each experiment as it is (full: the paper's training). ``train_dataset`` / ``eval_gt``
    replace the profile's training data and evaluation ground truth (tests)."""
    from dataclasses import replace

    from omegaconf import OmegaConf

    from keytrack.models.cost import per_pair
    from keytrack.config import data_tag, load_config, overrides_for
    from keytrack.identity import digest

    spec = load_spec(spec) if isinstance(spec, str) else spec
    name = name or Path(spec["_path"]).stem
    spec = by_profile(spec, opts.profile)
    opts = with_spec_defaults(opts, spec)
    train, track = spec["train"], spec.get("track") or {}
    opts = replace(opts, synthetic_test_videos=opts.synthetic_test_videos or track.get("synthetic_test_videos", 20),
                   nearest=opts.nearest if opts.nearest is not None else track.get("nearest"))
    profile, out, cache = open_results(opts, name)
    seeds = tuple(opts.train_seeds or train.get("seeds") or (0,))
    budget = budget_file_overrides(train["budget"]) if train.get("budget") else []
    eval_description = profile.describe("eval") if eval_gt is None else "ground truth given by the caller"
    eval_gt = profile.load_eval() if eval_gt is None else eval_gt
    setting = track.get("setting", PAPER_SETTING)
    image_root = str(profile.data_root) if profile.data_root is not None else None
    evaluator = Evaluator(cache, device=opts.device, batch_size=opts.batch_size, image_root=image_root,
                          split=profile.eval_split)
    evalset = EvalSet(eval_gt, setting, int(track.get("perturb_seed", 0)),
                      keypoint_threshold=0.0 if setting == GT_SETTING else opts.keypoint_threshold)
    tracker = TrackerSpec("network", match_threshold=opts.match_threshold, delta=int(track.get("delta", 4)),
                          nearest=opts.nearest)
    cells = TrainAndTrack(evaluator, evalset, tracker, train_dataset=train_dataset, wait=opts.wait_for_training)
    rows_raw = train_rows(spec)
    trainings, trackings, costs, cfgs = {}, {}, {}, {}
    each = list(train.get("each") or {})
    for i, r in enumerate(rows_raw):
        row_overrides = overrides_for(r["experiment"], [*r["overrides"], *opts.train_overrides])
        if train.get("cost"):
            costs[r["key"]] = cache.run(f"cost-{r['key']}", lambda r=r, o=row_overrides: per_pair(r["experiment"], o),
                                        {"kind": "cost", "experiment": r["experiment"], "overrides": row_overrides})
        for seed in seeds:
            overrides = [*profile.train_overrides(), *budget, *row_overrides, f"seed={seed}"]
            run_cfg = load_config([f"experiment={r['experiment']}", *overrides])
            cfgs.setdefault(r["key"], run_cfg)         # the row's config: its ✓ columns, the budget note
            # the run's folder: its data, row, profile and config digest (a changed config never resumes it)
            overrides.append(f"run_name={data_tag(run_cfg.data)}-{r['key']}-{opts.profile}-{digest(run_cfg)[:6]}"
                             f"-seed{seed}")
            log.info("[%d/%d] %s seed %d: training (%s), then tracking", i + 1, len(rows_raw), r["key"], seed,
                     opts.profile)
            trained = cells.train(f"train-{r['key']}-seed{seed}", r["experiment"], overrides,
                                  quiet=["trainer.enable_progress_bar=false"])
            trainings[(r["key"], seed)] = trained
            trackings[(r["key"], seed)] = cells.track(f"track-{r['key']}-seed{seed}", trained, run_cfg.model.name)

    def val_acc(result: dict) -> float | None:
        return None if result.get("best_val_acc") is None else 100 * result["best_val_acc"]

    compare = spec.get("compare") or {}
    show = train.get("show") or {}
    rows, failures, stale = [], [], 0
    for r in rows_raw:
        trains = [trainings[(r["key"], s)] for s in seeds]
        tracks = [trackings[(r["key"], s)] for s in seeds]
        ok = [t.result for t in trains if t.ok]
        done = [t.result for t in tracks if t.ok]
        row = {k: _label(spec, k, v) for k, v in r["values"].items()}
        row.update({
               **{col: "✓" if OmegaConf.select(cfgs[r["key"]], key) else "" for col, key in show.items()},
               "val_acc": mean_std(val_acc(t) for t in ok), "idsw": mean_std(t["idsw"]["Total"] for t in done),
               "mota": mean_std(t["mota"]["Total"] for t in done),
               "steps": mean_std(t.get("global_step") for t in ok),
               "train_seconds": mean_std(t.get("train_seconds") for t in ok),
               "pairs_per_s": mean_std(t.get("pairs_per_s") for t in done), "experiment": r["experiment"]})
        cost = costs.get(r["key"])
        if cost is not None:
            row.update(params_m=cost.result["params"] / 1e6 if cost.ok else None,
                       mflops=cost.result["flops"] / 1e6 if cost.ok else None)
        if compare and r["row"] != compare["to"]:
            ref = next((q for q in rows_raw if q["row"] == compare["to"]
                        and all(q[k] == r[k] for k in each)), None)
            if ref is not None:
                ref_trains = [trainings[(ref["key"], s)] for s in seeds]
                ref_tracks = [trackings[(ref["key"], s)] for s in seeds]
                for m in compare["metrics"]:
                    mine, theirs = (trains, ref_trains) if m == "val_acc" else (tracks, ref_tracks)
                    row[f"d_{m}"] = paired_difference(mine, theirs, val_acc if m == "val_acc" else total(m))
                if compare.get("videos"):
                    row["v_idsw"], missing = _video_interval(tracks, ref_tracks)
                    stale += missing
        row.update(paper_values(spec, r["values"]))
        train_failed = failure_status(trains, seeds)
        track_failed = failure_status([t for t, x in zip(tracks, trains) if x.ok],
                                      [s for s, x in zip(seeds, trains) if x.ok])
        row["status"] = "; ".join(x for x in (train_failed and "training " + train_failed,
                                              track_failed and "tracking " + track_failed,
                                              cost is not None and cost.failure and "cost failed: " + cost.failure)
                                  if x) or None
        failures += [f"{x.key}: {x.failure}" for x in [*trains, *tracks, *([cost] if cost else [])] if not x.ok]
        rows.append(row)

    first = cfgs[rows_raw[0]["key"]]
    kp = evalset.keypoint_threshold
    candidates = f"the {opts.nearest} nearest poses of each earlier frame" if opts.nearest else "every candidate pose"
    budget_text = (f"quick profile (experiments/{train['budget']}.yaml added to each row's experiment, the same "
                   f"for every row): {describe_budget(first)}; --profile full trains each experiment as it is "
                   "(the paper's 25 epochs, for GPUs)" if train.get("budget") else
                   f"{opts.profile} profile, each experiment as it is: {describe_budget(first)}")
    context = {"compare_to": _label(spec, "row", compare["to"]) if compare else ""}
    claims = CLAIMS[spec["claims"]](rows_raw, rows) if spec.get("claims") else []
    notes = [*(n.format(**context) for n in spec.get("notes") or []),
             f"Mean ± sample std over training seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} "
             "(each seed also draws its own train/val split of the videos).",
             f"Training: {budget_text}. Train s: wall time of a training (its metrics.json).",
             f"Training data: {profile.describe('train') if train_dataset is None else 'given by the caller'}. "
             f"Tracking: {eval_description} ({eval_gt.report()}), {SETTING_LABELS[setting]} drawn once with "
             f"perturbation seed {evalset.seed}; δ = {tracker.delta}, greedy, match threshold "
             f"{opts.match_threshold:g}, {candidates}"
             + (f", keypoints below {kp:g} removed before MOTA and %IDSW (A.3)" if kp else "") + ".",
             *claims, *_stale_notes(stale, cache),
             f"Runs are cached in {display_path(cache.directory)}/ ({cache.reused} reused, {cache.computed} run now); "
             "trained networks in runs/<experiment>/<data>-<row>-<profile>-<config digest>-seed<k>/. Delete a "
             "file there to run it again."]
    files = list(write_table(rows, out, columns=_columns(spec, rows), notes=notes, title=spec.get("title", name)))
    files += _plots(spec, rows, [r["values"] for r in rows_raw], out)
    records = {**{("train", *k): v for k, v in trainings.items()}, **{("track", *k): v for k, v in trackings.items()},
               **{("cost", k): v for k, v in costs.items()}}
    return Result(rows, out, files, failures, records)


# -- command line -------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the ablation: a spec of experiments/ablations/ (timesteps, assignment, "
                                     "threshold, tokens, resolution_sweep, matcher_*) or a path to one, or one of "
                                     f"the ablations that stay code ({', '.join(PLUGINS)}; "
                                     "keytrack ablate NAME --help lists its options)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, metavar="...",
                        help="the tracking options (keytrack ablate NAME --help) and key=value spec overrides")


def _options_parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"keytrack ablate {name}", description=__doc__.splitlines()[0])
    add_tracking_arguments(parser, name)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="spec overrides (axes.delta=[1,4])")
    return parser


def _plugin(name: str, rest: Sequence[str]) -> int:
    """Run the plug-in ablation ``name`` with its own command-line options ``rest``."""
    import importlib

    module = importlib.import_module(PLUGINS[name])
    parser = argparse.ArgumentParser(prog=f"keytrack ablate {name}", description=module.__doc__.splitlines()[0])
    module.add_arguments(parser)
    return module.run(parser.parse_args(rest))


def _is_variants_spec(name: str) -> bool:
    """Whether ``name`` is a spec of matcher variants (``variants:``, run by ``matcher_variants``)."""
    from omegaconf import OmegaConf

    path = spec_path(name)
    return path.is_file() and "variants" in (OmegaConf.load(path) or {})


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.name in PLUGINS:
        return _plugin(args.name, args.rest)
    if _is_variants_spec(args.name):
        return _plugin("matcher_variants", ["--spec", str(spec_path(args.name)), *args.rest])
    name = Path(args.name).stem
    parsed = _options_parser(name).parse_intermixed_args(args.rest)
    try:
        opts = tracking_options(parsed)
    except ValueError as err:
        raise InputError(f"keytrack ablate {name}: {err}") from None
    spec = load_spec(args.name, [*opts.spec_overrides(), *parsed.overrides])
    return finish(name, (run_train_spec if "train" in spec else run_spec)(spec, opts, name=name))
