"""``keytrack ablate NAME``: a tracking-time ablation as data, one runner for all of them.

    keytrack ablate timesteps                                    # §5.1: δ = 1..4 at tracking time
    keytrack ablate assignment --data ../shared/data/bonn_mppt   # §5.1: greedy against Hungarian
    keytrack ablate threshold --seeds 0 axes.threshold=[0.3,0.5] # A.3 / Table 4, spec values overridden

An ablation is a YAML spec, ``experiments/ablations/<NAME>.yaml`` (or a path), that says

* ``axes``: what varies. ``setting`` (keypoint settings of :mod:`keytrack.perturb`), ``delta`` (δ
  at tracking time), ``assignment`` (``greedy`` / ``hungarian``) and ``threshold`` (the output
  keypoint-confidence threshold of A.3; ``null``: the options' own, none for GT keypoints). Every
  combination is tracked once per perturbation seed (:class:`~ablations.tracking_ablation.TrackingOptions`:
  GT keypoints with the first seed only) by :func:`~ablations.tracking_ablation.run_cells`, which
  caches each cell by what determines its result, shares one perturbation and one pair-score memo
  between cells of a seed and retries failed cells on the next run;
* ``compute_ap``: score AP on the thresholded output too (Table 4);
* ``compare``: ``{axis, to, metrics}``: per row the paired-by-seed difference ``d_<metric>`` to the
  row of the same other axes with ``axis = to``;
* ``best``: ``{metric, label}``: mark the row with the highest mean of ``metric``;
* ``paper``: the paper's values beside ours, each entry ``{when: {axis: value}, values: {column:
  v}}`` with ``v`` a literal or, with ``from`` (a dotted path into ``keytrack/reference/paper_results.yaml``
  in which ``{setting}`` is the row's setting), a dotted path inside it; with ``match: <axis>``,
  ``from`` is a list of rows and the one whose ``<axis>`` equals the row's is taken;
* ``labels``: display names of axis values; ``columns``: the table's columns (keys, or ``{key,
  label, digits}``); ``title``, ``notes``; ``plot``: ``{file, x, y, panel_by, xlabel, title,
  paper: {from, x}}``.

It writes ``results/<NAME>/`` (``.../<data>-<split>/`` with ``--data``): ``table.md`` /
``table.csv`` (mean ± std over seeds, failed cells shown as failed) and the plot. ``key=value``
arguments override the spec (omegaconf dotlist: ``axes.delta=[1,4]``). The matching network is the
δ = 4 network of :func:`~ablations.tracking_ablation.matching_network` (``--checkpoint``, or trained
once by ``--profile`` / ``--experiment`` and reused).
"""
from __future__ import annotations

import argparse
import itertools
import logging
import math
from pathlib import Path
from typing import Any, Sequence

from ablations.common import Column, write_table
from ablations.tracker_comparison import SETTING_LABELS, hota_columns
from ablations.tracking_ablation import (Cell, Panel, Result, Series, TrackingOptions, add_tracking_arguments,
                                        common_notes, describe_network, failure_status, finish, hota_stats,
                                        matching_network, open_results, paired_difference, run_cells,
                                        save_line_plot, seed_stat, total, tracking_kwargs)
from keytrack.errors import InputError
from keytrack.perturb import SETTINGS
from keytrack.poses import Dataset
from keytrack.tracking import ASSIGNMENTS

log = logging.getLogger("ablations.runner")

SPECS = Path(__file__).resolve().parent.parent / "experiments" / "ablations"
#: The axes a spec may vary, in the order a cell is built from.
AXES = ("setting", "delta", "assignment", "threshold")
DEFAULT_AXES = {"setting": ["predicted_boxes_predicted_keypoints"], "delta": [4], "assignment": ["greedy"],
                "threshold": None}
SPEC_KEYS = {"title", "axes", "compute_ap", "compare", "best", "paper", "labels", "columns", "notes", "plot"}
#: Column labels and digits of the keys a row has.
COLUMN_LABELS = {
    "setting": ("Keypoints", None), "delta": ("δ", None), "assignment": ("Assignment", None),
    "threshold": ("Threshold", 2), "idsw": ("%IDSW Total", 2), "mota": ("MOTA", None), "ap": ("AP", None),
    "switches": ("ID switches", 0), "best": ("", None),
}
METRICS = {"idsw": "%IDSW", "mota": "MOTA", "ap": "AP"}


def spec_names() -> list[str]:
    """The ablations of ``experiments/ablations/`` this runner reads (those with ``axes``)."""
    from omegaconf import OmegaConf

    return sorted(p.stem for p in SPECS.glob("*.yaml") if "axes" in (OmegaConf.load(p) or {}))


def load_spec(name: str, overrides: Sequence[str] = ()) -> dict:
    """The spec ``name`` (a name under ``experiments/ablations/`` or a path) with ``key=value``
    ``overrides``, checked: an error names the file and the field."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = Path(name) if name.endswith((".yaml", ".yml")) else SPECS / f"{name}.yaml"
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
    axes = {**DEFAULT_AXES, **(spec.get("axes") or {})}
    bad = sorted(set(axes) - set(AXES))
    if bad:
        raise InputError(f"{where}: axes: unknown axis {bad} (known: {list(AXES)})")
    for axis in AXES:
        values = axes[axis]
        if axis == "threshold" and values is None:
            continue
        if not isinstance(values, list) or not values:
            raise InputError(f"{where}: axes.{axis}: expected a non-empty list, got {values!r}")
    checks = {"setting": (lambda v: v in SETTINGS, f"one of {list(SETTINGS)}"),
              "assignment": (lambda v: v in ASSIGNMENTS, f"one of {list(ASSIGNMENTS)}"),
              "delta": (lambda v: isinstance(v, int) and v >= 1, "integers >= 1"),
              "threshold": (lambda v: isinstance(v, (int, float)) and 0 <= v <= 1, "numbers in [0, 1]")}
    for axis, (ok, expected) in checks.items():
        wrong = [v for v in (axes[axis] or []) if not ok(v)]
        if wrong:
            raise InputError(f"{where}: axes.{axis}: {wrong} are not {expected}")
    for axis in ("delta", "threshold"):                  # numeric axes: sorted, each value once
        if axes[axis] is not None:
            axes[axis] = sorted({float(v) if axis == "threshold" else int(v) for v in axes[axis]})
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
    return all(values.get(k) == v or (isinstance(v, float) and isinstance(values.get(k), float)
                                      and math.isclose(values[k], v, abs_tol=1e-9)) for k, v in when.items())


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
    return ((spec.get("labels") or {}).get(axis) or {}).get(value, value)


def _columns(spec: dict, rows: list[dict]) -> list[Column]:
    compare = spec.get("compare") or {}
    cols = []
    for c in spec.get("columns") or []:
        c = {"key": c} if isinstance(c, str) else dict(c)
        key = c["key"]
        if key == "hota":
            cols.extend(hota_columns(rows))
            continue
        label, digits = COLUMN_LABELS.get(key, (key, None))
        if key.endswith("_paper"):
            label = f"{COLUMN_LABELS.get(key.removesuffix('_paper'), (key,))[0]} (paper)"
        if key.startswith("d_") and key.removeprefix("d_") in METRICS:
            to = f"δ = {compare['to']}" if compare.get("axis") == "delta" else compare.get("to")
            label, digits = f"Δ{METRICS[key.removeprefix('d_')]} vs {to}", 2
        cols.append(Column(key, c.get("label", label), digits=c.get("digits", digits)))
    if any(r.get("status") for r in rows):
        cols.append(Column("status", "Status"))
    return cols


def _plot(spec: dict, rows: list[dict], raw: list[dict], out: Path) -> Path | None:
    plot = spec.get("plot")
    if not plot:
        return None
    x_axis = plot["x"]
    groups = [None]
    if plot.get("panel_by"):
        groups = list(dict.fromkeys(v[plot["panel_by"]] for v in raw))
    paper_series = {}
    if plot.get("paper"):
        from keytrack.reference import paper_results

        src = _lookup(paper_results(), plot["paper"]["from"], spec["_path"])
        if all(_matches(plot["paper"].get("when") or {}, v) for v in raw):
            paper_series = {m: ([p[plot["paper"]["x"]] for p in src], [p[m] for p in src]) for m in plot["y"]}
    panels = []
    for g in groups:
        mine = [(r, v) for r, v in zip(rows, raw) if g is None or v[plot["panel_by"]] == g]
        for metric in plot["y"]:
            series = [Series("ours", [v[x_axis] for _, v in mine], [r[metric] for r, _ in mine])]
            if metric in paper_series:
                series.append(Series("paper", *paper_series[metric], "s--"))
            panels.append(Panel(COLUMN_LABELS.get(metric, (metric,))[0], series,
                                "" if g is None else _label(spec, plot["panel_by"], g)))
    return save_line_plot(out / plot["file"], panels, xlabel=plot.get("xlabel", x_axis),
                          title=plot.get("title", spec.get("title", "")), ncols=plot.get("ncols"),
                          xticks=spec["axes"][x_axis] if plot.get("xticks") else None)


def run_spec(spec: dict | str, opts: TrackingOptions, *, name: str | None = None,
             eval_gt: Dataset | None = None) -> Result:
    """Expand ``spec`` into cells, run or reuse each, write the table and the plot.

    ``name``: the results folder (default: the spec file's name); ``eval_gt`` replaces the
    profile's evaluation ground truth (tests, other data)."""
    spec = load_spec(spec) if isinstance(spec, str) else spec
    name = name or Path(spec["_path"]).stem
    profile, out, cache = open_results(opts, name)
    network, network_error = matching_network(opts, profile)
    eval_description = profile.describe("eval") if eval_gt is None else "ground truth given by the caller"
    eval_gt = profile.load_eval() if eval_gt is None else eval_gt
    axes = spec["axes"]
    compute_ap = bool(spec.get("compute_ap", False))

    def thresholds(setting: str) -> list[float]:
        return axes["threshold"] if axes["threshold"] is not None else [opts.output_keypoint_threshold(setting)]

    def cell(v: dict, seed: int) -> Cell:
        return Cell(v["setting"], seed, v["delta"], v["assignment"], float(v["threshold"]), compute_ap=compute_ap)

    raw = [dict(zip(AXES, combo)) for s in axes["setting"]
           for combo in itertools.product([s], axes["delta"], axes["assignment"], thresholds(s))]
    cells = [cell(v, seed) for v in raw for seed in opts.seeds_for(v["setting"])]
    records = run_cells(cells, cache=cache, eval_gt=eval_gt, network=network, network_error=network_error,
                        opts=opts, logger=log)
    failures = [f"{c.key}: {r.failure}" for c, r in records.items() if not r.ok]
    if network_error:
        failures.insert(0, f"matching network: {network_error}")

    def recs(v: dict) -> list:
        return [records[cell(v, s)] for s in opts.seeds_for(v["setting"])]

    compare = spec.get("compare") or {}
    shown = [a for a in AXES if a == "setting" or (axes[a] is not None and len(axes[a]) > 1)
             or a == compare.get("axis")]
    rows = []
    for v in raw:
        rs = recs(v)
        row = {a: _label(spec, a, v[a]) for a in shown}
        row.update(idsw=seed_stat(rs, total("idsw")), mota=seed_stat(rs, total("mota")), **hota_stats(rs),
                   switches=seed_stat(rs, lambda r: r.get("num_switches")),
                   status=failure_status(rs, opts.seeds_for(v["setting"])))
        if compute_ap:
            row["ap"] = seed_stat(rs, total("ap"))
        if compare and v[compare["axis"]] != compare["to"]:
            ref = {**v, compare["axis"]: compare["to"]}
            if ref in raw:
                for m in compare["metrics"]:
                    row[f"d_{m}"] = paired_difference(rs, recs(ref), total(m))
        row.update(paper_values(spec, v))
        rows.append(row)
    best = spec.get("best")
    if best:
        top = max((r for r in rows if r[best["metric"]].n), key=lambda r: r[best["metric"]].mean, default=None)
        for r in rows:
            r["best"] = best.get("label", "best") if r is top else ""

    context = {a: (_label(spec, a, axes[a][0]) if axes[a] else None) for a in AXES}
    context["compare_to"] = _label(spec, compare.get("axis", ""), compare.get("to")) if compare else ""
    notes = [*(n.format(**context) for n in spec.get("notes") or []),
             *common_notes(opts, profile, eval_gt, eval_description, cache, axes["setting"],
                           keypoint_threshold=axes["threshold"] is None),
             describe_network(network, network_error)]
    files = list(write_table(rows, out, columns=_columns(spec, rows), notes=notes, title=spec.get("title", name)))
    plot = _plot(spec, rows, raw, out)
    if plot is not None:
        files.append(plot)
    return Result(rows, out, files, failures, records)


# -- command line -------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the ablation: a spec of experiments/ablations/ (timesteps, assignment, "
                                     "threshold) or a path to one")
    parser.add_argument("rest", nargs=argparse.REMAINDER, metavar="...",
                        help="the tracking options (keytrack ablate NAME --help) and key=value spec overrides")


def _options_parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"keytrack ablate {name}", description=__doc__.splitlines()[0])
    add_tracking_arguments(parser, name)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="spec overrides (axes.delta=[1,4])")
    return parser


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    name = Path(args.name).stem
    parsed = _options_parser(name).parse_intermixed_args(args.rest)
    spec = load_spec(args.name, parsed.overrides)
    try:
        opts = TrackingOptions(**tracking_kwargs(parsed))
    except ValueError as err:
        raise InputError(f"keytrack ablate {name}: {err}") from None
    return finish(name, run_spec(spec, opts, name=name))
