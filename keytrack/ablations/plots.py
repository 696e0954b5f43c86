"""Line plots of experiment results: mean ± std or interval error bars, written atomically as PNG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from keytrack.tables import Interval, MeanStd

#: more series than this in a figure: each gets its own colour (tab20, then dashed) and one legend goes
#: below the panels instead of one over each panel's data
LEGEND_INSIDE_MAX = 8


@dataclass
class Series:
    label: str
    x: Sequence[float]
    y: Sequence[MeanStd | float | None]
    style: str = "o-"


@dataclass
class Panel:
    ylabel: str
    series: Sequence[Series]
    title: str = ""


def save_line_plot(
    path: str | Path,
    panels: Sequence[Panel],
    *,
    xlabel: str,
    title: str,
    xticks: Sequence[float] | None = None,
    ncols: int | None = None,
    xscale: str | None = None,
    xticklabels: Sequence[str] | None = None,
    zero_line: bool = False,
    dodge: float = 0.0,
) -> Path:
    """Line plots (``ncols`` per row) as one PNG, written atomically; error bars ± std (:class:`MeanStd`)
    or an :class:`Interval`; ``dodge`` shifts the series apart in x so that error bars do not overlap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from keytrack.atomic import atomic_path

    ncols = min(ncols or len(panels), len(panels))
    nrows = -(-len(panels) // ncols)
    labels = list(dict.fromkeys(s.label for p in panels for s in p.series))
    many = len(labels) > LEGEND_INSIDE_MAX
    legend_cols = min(3 * ncols, 4) if many else 1
    legend_height = 0.22 * -(-len(labels) // legend_cols) if many else 0.0
    fig = Figure(figsize=(5.0 * ncols, 3.6 * nrows + 0.4 + legend_height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_visible(False)

    for ax, panel in zip(axes, panels):
        drawn = [(s, [(x, y) for x, y in zip(s.x, s.y) if _drawn(y)]) for s in panel.series]
        drawn = [(s, points) for s, points in drawn if points]
        for i, (s, points) in enumerate(drawn):
            shift = (i - (len(drawn) - 1) / 2) * dodge
            means = [_centre(y) for _, y in points]
            below = [
                y.value - y.low
                if isinstance(y, Interval)
                else y.std
                if isinstance(y, MeanStd) and y.n > 1
                else 0.0
                for _, y in points
            ]
            above = [y.high - y.value if isinstance(y, Interval) else b for (_, y), b in zip(points, below)]
            ax.errorbar(
                [x + shift for x, _ in points],
                means,
                yerr=[below, above] if any(below + above) else None,
                fmt=s.style,
                capsize=3,
                label=s.label,
                **_distinct(labels.index(s.label)) if many else {},
            )
        if zero_line:
            ax.axhline(0.0, color="0.4", linewidth=0.8)
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
        if ax.get_legend_handles_labels()[0] and not many:
            ax.legend(fontsize=8)
    if many:
        handles = {label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels())}
        fig.legend(
            [handles[label] for label in labels if label in handles],
            [label for label in labels if label in handles],
            loc="outside lower center",
            ncols=legend_cols,
            fontsize=8,
        )
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path


def _distinct(i: int) -> dict:
    """The colour and line style of a figure's ``i``-th series label when it has many."""
    from matplotlib import colormaps

    return {"color": colormaps["tab20"](i % 20), "linestyle": "--" if i // 20 % 2 else "-"}


def _centre(y) -> float:
    return y.mean if isinstance(y, MeanStd) else y.value if isinstance(y, Interval) else float(y)


def _drawn(y) -> bool:
    return y is not None and (not isinstance(y, MeanStd) or y.n > 0) and bool(np.isfinite(_centre(y)))
