"""The PoseTrack result table (paper Fig. 4, Table 2): 15 joints in 7 body-part columns + "Total".

Grouping follows ``eval_helpers.getCum``: Head = mean(head_top, neck, nose), then the mean of the
right and left joint for Shou, Elb, Wri, Hip, Knee, Ankl. These are plain means (a NaN joint makes
its column NaN, e.g. "Head" on data that never annotates the nose), while "Total" is poseval's
total: the mean over the 15 joints that are not NaN, *not* the mean of the 7 columns. Cells are
formatted with ``"%1.1f"`` as in ``eval_helpers.formatCell``.
"""

from __future__ import annotations

import math

import numpy as np

from keytrack.evaluation.protocol import POSEVAL_JOINTS

#: Column name -> poseval joints averaged into it (``getCum``).
COLUMNS: dict[str, tuple[str, ...]] = {
    "Head": ("head_top", "head_bottom", "nose"),
    "Shou": ("right_shoulder", "left_shoulder"),
    "Elb": ("right_elbow", "left_elbow"),
    "Wri": ("right_wrist", "left_wrist"),
    "Hip": ("right_hip", "left_hip"),
    "Knee": ("right_knee", "left_knee"),
    "Ankl": ("right_ankle", "left_ankle"),
}
_COLUMN_INDEX = {c: np.array([POSEVAL_JOINTS.index(j) for j in js]) for c, js in COLUMNS.items()}


def group_columns(per_joint: np.ndarray, total: float) -> dict[str, float]:
    """``{Head, Shou, Elb, Wri, Hip, Knee, Ankl, Total}`` from ``[15]`` values in poseval order."""
    values = np.asarray(per_joint, dtype=np.float64)
    out = {c: float(values[idx].mean()) for c, idx in _COLUMN_INDEX.items()}
    out["Total"] = float(total)
    return out


def format_cell(value: float) -> str:
    """``"%1.1f"`` as poseval prints (``nan`` for NaN)."""
    return "%1.1f" % value


def markdown_table(rows: dict[str, dict[str, float]], first: str = "Metric") -> str:
    """A Markdown table: one row per metric, one column per body part."""
    from keytrack import tables

    columns = [
        tables.Column(first, align="left"),
        *(tables.Column(c, fmt=format_cell, align="right") for c in (*COLUMNS, "Total")),
    ]
    return tables.markdown_table([{first: name, **cols} for name, cols in rows.items()], columns)


def json_number(value):
    """A JSON-safe number: NaN/inf become ``None``, numpy scalars become Python ones."""
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None
