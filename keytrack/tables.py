"""One table writer for the whole project: Markdown for reading, CSV at full precision.

Every table keytrack and its ablations write goes through :func:`markdown_table` /
:func:`csv_table` / :func:`write_table`: rows are dicts, :class:`Column` picks, names, formats and
aligns their keys, and :class:`MeanStd` (:func:`mean_std`) is a value over several seeds, shown as
``m ± s`` and written to CSV as two columns; :class:`Interval` is an estimate with its confidence
interval, shown as ``v [lo, hi]`` and written to CSV as three columns.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from numbers import Number
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from keytrack.atomic import write_text

__all__ = [
    "MeanStd",
    "mean_std",
    "format_mean_std",
    "Interval",
    "Column",
    "format_value",
    "markdown_table",
    "csv_table",
    "write_table",
]


@dataclass(frozen=True)
class MeanStd:
    """Mean and sample standard deviation (``ddof = 1``) of ``n`` values."""

    mean: float
    std: float
    n: int

    def format(self, digits: int = 1) -> str:
        """``"m ± s"``; ``"m"`` alone for one value; ``""`` for none."""
        if self.n == 0 or not math.isfinite(self.mean):
            return ""
        if self.n == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"

    def __str__(self) -> str:
        return self.format()


def mean_std(values: Iterable[float | None]) -> MeanStd:
    """:class:`MeanStd` of ``values``, skipping ``None`` and NaN (a failed or undefined run)."""
    v = np.array([float(x) for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return MeanStd(math.nan, math.nan, 0)
    return MeanStd(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v))


class Interval(NamedTuple):
    """An estimate and its confidence interval ``[low, high]`` (a bootstrap's, say)."""

    value: float
    low: float
    high: float

    def format(self, digits: int = 1) -> str:
        """``"+0.12 [-0.05, +0.31]"``: signed, as differences are."""
        return f"{self.value:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def format_mean_std(values: Iterable[float | None], digits: int = 1) -> str:
    """``"1.2 ± 0.3"`` over seeds (sample std), ``"1.2"`` for one value, ``""`` for none."""
    return mean_std(values).format(digits)


@dataclass(frozen=True)
class Column:
    """A table column: the row key it shows, its header, decimals for floats, and optionally its own
    Markdown formatting (``fmt``: a format spec such as ``".4f"``, or a function of the value; a
    missing value stays an empty cell unless ``fmt`` is a function) and alignment (``align``:
    ``"left"`` / ``"right"``; default: right when every value is a number)."""

    key: str
    header: str | None = None
    digits: int | None = None
    fmt: str | Callable[[Any], str] | None = None
    align: str | None = None

    @property
    def title(self) -> str:
        return self.key if self.header is None else self.header

    def cell(self, value: Any, digits: int) -> str:
        """The Markdown text of ``value`` in this column."""
        if callable(self.fmt):
            return self.fmt(value)
        if self.fmt is not None and not _is_missing(value):
            return format(value, self.fmt)
        return format_value(value, digits if self.digits is None else self.digits)


def _is_missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, MeanStd) and value.n == 0)
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (Number, MeanStd)) and not isinstance(value, bool)


def format_value(value: Any, digits: int = 1) -> str:
    """A cell: floats with ``digits`` decimals, ints as ints, :class:`MeanStd` as ``"m ± s"``,
    ``None``/NaN as an empty cell."""
    if _is_missing(value):
        return ""
    if isinstance(value, (MeanStd, Interval)):
        return value.format(digits)
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def _columns(rows: Sequence[Mapping], columns: Sequence[str | Column] | None) -> list[Column]:
    if columns is None:
        keys: dict[str, None] = {}
        for row in rows:
            keys.update(dict.fromkeys(row))
        columns = list(keys)
    return [c if isinstance(c, Column) else Column(str(c)) for c in columns]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown_table(
    rows: Sequence[Mapping], columns: Sequence[str | Column] | None = None, digits: int = 1
) -> str:
    """A GitHub Markdown table (no trailing newline); columns without text right-aligned."""
    cols = _columns(rows, columns)
    right = [
        c.align == "right"
        if c.align
        else all(_is_number(r.get(c.key)) for r in rows if not _is_missing(r.get(c.key)))
        for c in cols
    ]
    lines = [
        "| " + " | ".join(_md_escape(c.title) for c in cols) + " |",
        "|" + "|".join("---:" if n else "---" for n in right) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_md_escape(c.cell(row.get(c.key), digits)) for c in cols) + " |")
    return "\n".join(lines)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value)) if math.isfinite(float(value)) else str(float(value))
    return str(value)


def csv_table(rows: Sequence[Mapping], columns: Sequence[str | Column] | None = None) -> str:
    """CSV text at full precision; a :class:`MeanStd` column becomes ``<header>`` (mean) and
    ``<header> std`` columns, an :class:`Interval` column ``<header>``, ``<header> low`` and ``<header>
    high``."""
    cols = _columns(rows, columns)
    split = [any(isinstance(r.get(c.key), MeanStd) for r in rows) for c in cols]
    interval = [any(isinstance(r.get(c.key), Interval) for r in rows) for c in cols]
    header: list[str] = []
    for c, s, i in zip(cols, split, interval):
        header += (
            [c.title, f"{c.title} std"]
            if s
            else [c.title, f"{c.title} low", f"{c.title} high"]
            if i
            else [c.title]
        )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        out: list[str] = []
        for c, s, i in zip(cols, split, interval):
            v = row.get(c.key)
            if i:
                out += (
                    [_csv_value(x) for x in (v.value, v.low, v.high)]
                    if isinstance(v, Interval)
                    else ["", "", ""]
                )
            elif s:
                ms = (
                    v
                    if isinstance(v, MeanStd)
                    else (None if _is_missing(v) else MeanStd(float(v), math.nan, 1))
                )
                out += (
                    ["", ""]
                    if ms is None or ms.n == 0
                    else [_csv_value(ms.mean), _csv_value(ms.std) if ms.n > 1 else ""]
                )
            else:
                out.append(_csv_value(v))
        writer.writerow(out)
    return buf.getvalue()


def write_table(
    rows: Sequence[Mapping],
    directory: str | Path,
    *,
    name: str = "table",
    columns: Sequence[str | Column] | None = None,
    title: str | None = None,
    notes: Sequence[str] = (),
    digits: int = 1,
) -> tuple[Path, Path]:
    """Write ``<directory>/<name>.md`` and ``<name>.csv`` atomically; returns both paths.

    ``rows`` are dicts; ``columns`` picks and orders their keys (default: every key, in order of
    first appearance), so "paper" columns are put beside ours by listing them there. The Markdown
    file is ``# <title>``, a blank line, the table, and the ``notes`` as a bullet list after a
    blank line; missing values (None, NaN) are empty cells.
    """
    directory = Path(directory)
    parts = []
    if title:
        parts.append(f"# {title}\n")
    parts.append(markdown_table(rows, columns, digits) + "\n")
    if notes:
        parts.append("".join(f"- {n}\n" for n in notes))
    md = write_text(directory / f"{name}.md", "\n".join(parts))
    csv_path = write_text(directory / f"{name}.csv", csv_table(rows, columns))
    return md, csv_path
