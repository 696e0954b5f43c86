"""Line plots of experiment results: mean ± std or interval error bars, written atomically as PNG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from keytrack.tables import Interval, MeanStd


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
    """Line plots (``ncols`` per row, default all in one row) written as one PNG, atomically (Agg);
    ``xscale="log2"`` draws x on a log2 axis. A :class:`MeanStd` point has ± std error bars, an
    :class:`Interval` its interval; ``zero_line`` draws y = 0 (for differences); ``dodge`` shifts the
    i-th of n series by ``(i - (n - 1) / 2) · dodge`` in x, so that their error bars do not hide each
    other."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from keytrack.atomic import atomic_path

    ncols = min(ncols or len(panels), len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(5.0 * ncols, 3.6 * nrows + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_visible(False)

    def centre(y):
        return y.mean if isinstance(y, MeanStd) else y.value if isinstance(y, Interval) else float(y)

    for ax, panel in zip(axes, panels):
        drawn = [
            (
                s,
                [
                    (x, y)
                    for x, y in zip(s.x, s.y)
                    if y is not None and (not isinstance(y, MeanStd) or y.n > 0) and np.isfinite(centre(y))
                ],
            )
            for s in panel.series
        ]
        drawn = [(s, points) for s, points in drawn if points]
        for i, (s, points) in enumerate(drawn):
            shift = (i - (len(drawn) - 1) / 2) * dodge
            means = [centre(y) for _, y in points]
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
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path
