"""Figure 7 (left, §5.1) from sweep runs: transformer sizes, parameter counts, match accuracy, %IDSW.

:func:`write_sweep_table` takes a list of run results, whichever way they were obtained (the
offline runner of :mod:`ablations.sweep`, or the runs of a W&B sweep), and writes
``table.md``, ``table.csv`` and ``idsw_vs_params.png``. A result is a dict with

* ``name`` (the run), ``status`` (``finished``, ``stopped``, ``failed``; ``error`` for a failure);
* ``model``: ``{layers, hidden, intermediate, heads}``;
* ``parameters`` (int), ``val_acc`` (best ``val/acc``, a fraction), ``val_rank1`` (optional), ``epochs``;
* ``idsw_total`` and ``mota_total`` (percent) when the run was tracked.

Each row carries the paper's parameter count and %IDSW where the paper has the same
configuration (``keytrack/reference/paper_results.yaml``, ``transformer_hyperparameters``). When
the sweep ran at least one of the paper's configurations, the paper's other rows are listed too,
ours empty, with why they were not run.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from keytrack.tables import Column, write_table

__all__ = ["SIZE_KEYS", "COLUMNS", "UNTRAINED_VAL_ACC", "paper_figure7", "table_rows", "plot_idsw_vs_params",
           "write_sweep_table"]

#: Validation match accuracy (%) below which a run is reported as not having learned (chance: 50 %).
UNTRAINED_VAL_ACC = 55.0
#: The four sizes Figure 7 (left) varies: transformer blocks, hidden size, intermediate size, heads.
SIZE_KEYS: tuple[str, ...] = ("layers", "hidden", "intermediate", "heads")

COLUMNS: list[Column] = [
    Column("run", "Run"), Column("layers", "Layers"), Column("hidden", "Hidden"),
    Column("intermediate", "Intermediate"), Column("heads", "Heads"),
    Column("params_m", "Params (M)", digits=2), Column("val_acc", "Val acc (%)", digits=1),
    Column("val_rank1", "Val rank-1 (%)", digits=1),
    Column("idsw", "%IDSW", digits=2), Column("mota", "MOTA", digits=1), Column("epochs", "Epochs"),
    Column("paper_params_m", "Params (M, paper)", digits=2), Column("paper_idsw", "%IDSW (paper)", digits=1),
    Column("status", "Status"),
]


def paper_figure7() -> list[dict]:
    """The paper's Figure 7 (left) rows: layers, hidden, intermediate, heads, ``params_m`` and
    ``value`` (%IDSW)."""
    from keytrack.reference import paper_results

    return list(paper_results()["transformer_hyperparameters"]["rows"])


def _size(model: Mapping | None) -> tuple:
    model = model or {}
    return tuple(None if model.get(k) is None else int(model[k]) for k in SIZE_KEYS)


def _status(result: Mapping) -> str:
    status = str(result.get("status") or "")
    if status == "failed":
        return f"failed: {result.get('error') or 'unknown error'}"
    if status == "stopped":
        return f"stopped by hyperband after epoch {result.get('stopped_after_epoch', result.get('epochs'))}"
    if result.get("error"):
        return f"{status}: {result['error']}"
    return status


def _not_run_reason(size: tuple) -> str:
    _, hidden, _, heads = size
    if hidden is not None and heads and hidden % heads:
        return (f"not run: hidden {hidden} does not split into {heads} heads "
                f"(multi-head attention needs hidden % heads == 0)")
    return "not run in this sweep"


def _percent(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else 100.0 * float(value)


def table_rows(results: Sequence[Mapping], paper: Sequence[Mapping] | None = None, *,
               paper_only_rows: bool | None = None) -> list[dict]:
    """One row per run with the paper's values beside ours, in the paper's row order where it has one.

    ``paper`` defaults to :func:`paper_figure7`. ``paper_only_rows`` lists the paper's
    configurations no run matched (default: when at least one run matched one).
    """
    paper = paper_figure7() if paper is None else list(paper)
    order = {}
    for i, p in enumerate(paper):
        order.setdefault(_size(p), (i, p))
    rows, matched = [], set()
    for n, r in enumerate(results):
        size = _size(r.get("model"))
        index, p = order.get(size, (None, None))
        if p is not None:
            matched.add(size)
        params = r.get("parameters")
        rows.append({
            "run": r.get("name"), **dict(zip(SIZE_KEYS, size)),
            "params_m": params / 1e6 if params else None,
            "val_acc": _percent(r.get("val_acc")), "val_rank1": _percent(r.get("val_rank1")),
            "idsw": r.get("idsw_total"), "mota": r.get("mota_total"), "epochs": r.get("epochs"),
            "paper_params_m": p["params_m"] if p else None, "paper_idsw": p["value"] if p else None,
            "status": _status(r), "_order": (0, index, n) if index is not None else (1, n, n),
        })
    if paper_only_rows is None:
        paper_only_rows = bool(matched)
    if paper_only_rows:
        for size, (index, p) in order.items():
            if size not in matched:
                rows.append({"run": None, **dict(zip(SIZE_KEYS, size)), "params_m": None, "val_acc": None,
                             "idsw": None, "mota": None, "epochs": None, "paper_params_m": p["params_m"],
                             "paper_idsw": p["value"], "status": _not_run_reason(size),
                             "_order": (0, index, -1)})
    rows.sort(key=lambda row: row.pop("_order"))
    return rows


def _label(row: Mapping) -> str:
    return f"L{row['layers']} H{row['hidden']} I{row['intermediate']} A{row['heads']}"


def plot_idsw_vs_params(rows: Sequence[Mapping], path: str | Path, *, paper: Sequence[Mapping] | None = None,
                        title: str | None = None) -> Path:
    """%IDSW against parameters (M): ours (left panel) and the paper's Figure 7 (right panel).

    Two panels because the two are measured on different data (ours: the sweep's evaluation
    split; the paper: PoseTrack 2018 val), so only the shape of each curve compares. The right
    panel shows every row of the paper (``paper``, default :func:`paper_figure7`); the ones this
    sweep ran are filled.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    path = Path(path)
    paper = paper_figure7() if paper is None else list(paper)
    ours = [r for r in rows if r.get("idsw") is not None and r.get("params_m")]
    ran = {_size(r) for r in ours}
    paper_points = [{**dict(zip(SIZE_KEYS, _size(p))), "params_m": p["params_m"], "idsw": p["value"],
                     "ran": _size(p) in ran} for p in paper]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, points, name in ((axes[0], ours, "ours"), (axes[1], paper_points, "paper")):
        if not points:
            ax.text(0.5, 0.5, "no tracked runs", ha="center", va="center", transform=ax.transAxes)
        else:
            for r in points:
                filled = name == "ours" or r["ran"]
                ax.scatter([r["params_m"]], [r["idsw"]], marker="o" if name == "ours" else "s", s=40,
                           zorder=3, color="tab:blue" if name == "ours" else "tab:gray",
                           facecolors=None if filled else "none")
            # Labels above the point, or below for every other distinct point (by size); the labels
            # of coinciding points stack.
            distinct = sorted({(round(r["params_m"], 3), round(r["idsw"], 3)) for r in points})
            seen: dict[tuple, int] = {}
            for r in points:
                xy = (round(r["params_m"], 3), round(r["idsw"], 3))
                k = seen[xy] = seen.get(xy, -1) + 1
                up = distinct.index(xy) % 2 == 0
                ax.annotate(_label(r), (r["params_m"], r["idsw"]), textcoords="offset points", fontsize=7,
                            xytext=(5, 4 + 9 * k) if up else (5, -11 - 9 * k))
            xs = [r["params_m"] for r in points]
            lo, hi = min(xs) / 1.4, max(xs) * 2.2
            ticks = [t for t in (0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 20, 50) if lo <= t <= hi]
            ax.set_xscale("log")
            ax.set_xlim(lo, hi)
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.margins(y=0.2)
        ax.set_xlabel("parameters (M)")
        ax.set_ylabel("%IDSW (lower is better)")
        ax.grid(True, alpha=0.3)
    axes[0].set_title("this sweep")
    axes[1].set_title("paper, Figure 7 left (PoseTrack 2018 val; filled: run here)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_sweep_table(results: Sequence[Mapping], out: str | Path, *, title: str, notes: Sequence[str] = (),
                      paper: Sequence[Mapping] | None = None, plot: bool = True) -> list[Path]:
    """Write ``<out>/table.md``, ``table.csv`` and ``idsw_vs_params.png``; returns their paths.

    Columns without any value (e.g. %IDSW of untracked runs, the paper's columns for a sweep of
    configurations the paper does not have) are left out; Status only when a run did not finish.
    """
    rows = table_rows(results, paper)
    untrained = [r["run"] for r in rows if r.get("val_acc") is not None and r["val_acc"] < UNTRAINED_VAL_ACC]
    if untrained:
        notes = [*notes, f"Val acc below {UNTRAINED_VAL_ACC:g} % ({', '.join(map(str, untrained))}): the run "
                 "did not learn to match within its training budget (chance is 50 % on balanced pairs); its "
                 "%IDSW is that of an untrained matcher, not of its architecture."]
    keep = []
    for c in COLUMNS:
        values = [r.get(c.key) for r in rows]
        if c.key == "status":
            if any(v not in (None, "", "finished") for v in values):
                keep.append(c)
        elif any(v is not None for v in values):
            keep.append(c)
    files = list(write_table(rows, out, columns=keep, title=title, notes=notes))
    if plot:
        files.append(plot_idsw_vs_params(rows, Path(out) / "idsw_vs_params.png", paper=paper, title=title))
    return files
