"""Bonn Multi-Person PoseTrack ``annolist.mat`` (Iqbal, Milan, Gall, CVPR 2017): reader.

The videos of this dataset became part of PoseTrack (the paper's §4.1). One MATLAB file holds a
split: ``annolist`` is a struct array, one element per video, with ``name``, ``num_frames``,
``num_persons`` and ``annopoints``, a ``num_persons x num_frames`` cell array. Cell ``{p, t}`` is
empty when person ``p`` is not in frame ``t``, and otherwise a struct with ``head_rect``
(``x1, y1, x2, y2``, possibly empty) and ``point``, a struct array with ``id``, ``x``, ``y``,
``is_visible`` and ``is_truncated``.

Joint ids follow MPII (0 r_ankle, 1 r_knee, 2 r_hip, 3 l_hip, 4 l_knee, 5 l_ankle, 6 pelvis,
7 thorax, 8 upper neck, 9 head top, 10 r_wrist, 11 r_elbow, 12 r_shoulder, 13 l_shoulder,
14 l_elbow, 15 l_wrist): upper neck is KeyTrack's ``head_bottom``; pelvis and thorax have no
counterpart among the 15 joints (§3.2) and are counted as skipped if present; ``nose`` is never
annotated. The track id of a pose is its person row ``p`` (0-based), its frame index is ``t``.

Every annotated joint is present (``c = 1``), occluded ones included, as in the dataset's
PoseTrack18 JSON and in PoseTrack's ground truth; ``occluded_as_absent=True`` instead drops joints
whose ``is_visible`` is 0. The file states no frame size, so the configured default is used and
logged; person boxes are the tight boxes around the present keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keytrack.io.errors import DataError, count_skipped, first_outside_frame
from keytrack.io.frame_size import DEFAULT, resolve_frame_size
from keytrack.io.posetrack18 import SKIP_EMPTY_POSE
from keytrack.poses import Frame, Video, keypoint_boxes
from keytrack.skeleton import JOINTS, NUM_JOINTS

#: MPII joint names by the ``.mat`` files' joint id (``upper_neck`` is our ``head_bottom``).
BONN_JOINTS: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "head_bottom",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)

#: Index into :data:`keytrack.skeleton.JOINTS` of each joint id, ``-1`` for pelvis and thorax.
FROM_BONN_ID: np.ndarray = np.array([JOINTS.index(j) if j in JOINTS else -1 for j in BONN_JOINTS])

SKIP_NO_JOINT = "keypoints without a KeyTrack joint (pelvis, thorax)"

_VIDEO_FIELDS = ("name", "num_frames", "num_persons", "annopoints")


def _cells(value, persons: int, frames: int, source: Path, where: str) -> np.ndarray:
    """The ``annopoints`` cell array as a ``[persons, frames]`` object array.

    ``squeeze_me`` drops singleton dimensions (one person, one frame), so the shape is restored
    from ``num_persons`` and ``num_frames``.
    """
    if isinstance(value, np.ndarray) and value.dtype.names is not None:  # a lone 1x1 struct
        cells = np.empty(1, dtype=object)
        cells[0] = value
    else:
        cells = np.asarray(value, dtype=object)
    if cells.size != persons * frames:
        raise DataError(
            source,
            f"{cells.size} cells for num_persons={persons} x num_frames={frames}",
            frame=where,
            field="annopoints",
        )
    return cells.reshape(persons, frames)


def _record(value, names: tuple[str, ...], source: Path, where: str, field: str) -> np.void:
    """The single struct held by ``value`` (a 0-d or one-element struct array)."""
    arr = np.asarray(value)
    if arr.dtype.names is None or arr.size != 1:
        raise DataError(source, "expected one struct", frame=where, field=field)
    missing = [n for n in names if n not in arr.dtype.names]
    if missing:
        raise DataError(source, "missing required field", frame=where, field=f"{field}.{missing[0]}")
    return arr.reshape(-1)[0]


@dataclass
class _Rows:
    """One row per annotated (person, frame) of a video; each point field concatenated over all
    rows (``point_cols[key]``: one array per row that has points)."""

    where: str
    rows_p: list[int]
    rows_t: list[int]
    heads: list[list[float]]
    point_cols: dict[str, list[np.ndarray]]
    counts: np.ndarray  # points per row
    row_of_point: np.ndarray

    def point_where(self, k: int) -> tuple[str, str]:
        """``(frame, field)`` of point ``k`` for error messages."""
        r = int(self.row_of_point[k])
        first = int(np.concatenate([[0], np.cumsum(self.counts)])[r])
        return (
            f"{self.where}, frame {self.rows_t[r]}, person {self.rows_p[r]}",
            f"annopoints{{{self.rows_p[r] + 1},{self.rows_t[r] + 1}}}.point({k - first + 1})",
        )


def _video_header(entry: np.void, v: int, source: Path) -> tuple[str, str, int, int]:
    """``(name, where, num_frames, num_persons)`` of ``annolist[v]``; ``where`` names it in errors."""
    where = f"annolist[{v}]"
    name = entry["name"]
    if not isinstance(name, str) or not name:
        raise DataError(
            source, f"video name {name!r} is not a non-empty string", frame=where, field=f"{where}.name"
        )
    where = f"video {name} ({where})"
    try:
        frames = int(entry["num_frames"])
        persons = int(entry["num_persons"])
    except (TypeError, ValueError) as err:
        raise DataError(
            source,
            f"num_frames/num_persons must be integers ({err})",
            frame=where,
            field="num_frames/num_persons",
        ) from err
    return name, where, frames, persons


def _head_box(rec: np.void, source: Path, where: str, field: str) -> list[float]:
    """The cell's ``head_rect`` as ``x, y, w, h`` (NaN when empty)."""
    try:
        head = np.asarray(rec["head_rect"], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise DataError(source, f"not numbers ({err})", frame=where, field=f"{field}.head_rect") from err
    if head.size == 4 and not np.isfinite(head).all():
        raise DataError(source, "NaN or infinite value", frame=where, field=f"{field}.head_rect")
    if head.size == 4:
        return [head[0], head[1], head[2] - head[0], head[3] - head[1]]
    if head.size == 0:
        return [np.nan] * 4
    raise DataError(
        source,
        f"{head.size} values, expected x1, y1, x2, y2 or none",
        frame=where,
        field=f"{field}.head_rect",
    )


def _cell_points(rec: np.void, need: tuple[str, ...], source: Path, where: str, field: str) -> np.ndarray:
    """The cell's ``point`` struct array (checked to hold the fields in ``need``)."""
    points = np.atleast_1d(np.asarray(rec["point"]))
    if points.size:
        if points.dtype.names is None:
            raise DataError(source, "expected a struct array", frame=where, field=f"{field}.point")
        missing = [k for k in need if k not in points.dtype.names]
        if missing:
            raise DataError(
                source, "missing required field", frame=where, field=f"{field}.point.{missing[0]}"
            )
    return points


def _gather(cells: np.ndarray, need: tuple[str, ...], source: Path, where: str) -> _Rows:
    """The annotated cells of a video as :class:`_Rows`, in (person, frame) order."""
    rows_p, rows_t, heads, counts = [], [], [], []
    point_cols: dict[str, list[np.ndarray]] = {k: [] for k in need}
    for (p, t), cell in np.ndenumerate(cells):
        if isinstance(cell, np.ndarray) and cell.size == 0:
            continue  # person p is not in frame t
        cell_where = f"{where}, frame {t}, person {p}"
        cell_field = f"annopoints{{{p + 1},{t + 1}}}"
        rec = _record(cell, ("point", "head_rect"), source, cell_where, cell_field)
        heads.append(_head_box(rec, source, cell_where, cell_field))
        points = _cell_points(rec, need, source, cell_where, cell_field)
        if points.size:
            for key in need:
                point_cols[key].append(points[key].reshape(-1))
        rows_p.append(p)
        rows_t.append(t)
        counts.append(points.size)
    counts_arr = np.array(counts, dtype=np.int64)
    return _Rows(
        where, rows_p, rows_t, heads, point_cols, counts_arr, np.repeat(np.arange(len(rows_p)), counts_arr)
    )


def _point_columns(rows: _Rows, need: tuple[str, ...], source: Path) -> dict[str, np.ndarray]:
    """Each point field in ``need`` as one float array over all points (one number per point)."""
    cols = {}
    for key in need:
        obj = np.concatenate(rows.point_cols[key]) if rows.point_cols[key] else np.zeros(0, dtype=object)
        try:
            cols[key] = np.asarray(obj, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            bad = next(k for k, o in enumerate(obj) if np.asarray(o).size != 1)
            frame, field = rows.point_where(bad)
            raise DataError(source, "expected one number", frame=frame, field=f"{field}.{key}") from None
        bad = ~np.isfinite(cols[key])
        if bad.any():
            frame, field = rows.point_where(int(np.argmax(bad)))
            raise DataError(source, "NaN or infinite value", frame=frame, field=f"{field}.{key}")
    return cols


def _point_joints(rows: _Rows, ids: np.ndarray, source: Path) -> np.ndarray:
    """KeyTrack joint of every point (``-1`` for pelvis and thorax); unknown ids are refused."""
    bad = (ids != np.round(ids)) | (ids < 0) | (ids >= len(BONN_JOINTS))
    if bad.any():
        k = int(np.argmax(bad))
        frame, field = rows.point_where(k)
        raise DataError(
            source,
            f"joint id {ids[k]:g} is not one of 0..{len(BONN_JOINTS) - 1}",
            frame=frame,
            field=f"{field}.id",
        )
    return FROM_BONN_ID[ids.astype(np.int64)]


def _keypoint_array(
    rows: _Rows,
    cols: dict[str, np.ndarray],
    occluded_as_absent: bool,
    source: Path,
    name: str,
    skipped: dict[str, int] | None,
    size: tuple[float, float, str],
) -> np.ndarray:
    """``[rows, 15, 3]`` keypoints; points without a KeyTrack joint are counted in ``skipped``, a
    joint given twice for one person is refused, and so is a present point far outside the
    ``(width, height, origin)`` frame (:func:`first_outside_frame`)."""
    ids = cols["id"]
    joint = _point_joints(rows, ids, source)
    has_joint = joint >= 0
    count_skipped(skipped, SKIP_NO_JOINT, int((~has_joint).sum()), f"{source} [{name}]")
    flat = rows.row_of_point * NUM_JOINTS + joint
    seen, first = np.unique(flat[has_joint], return_index=True)
    if len(seen) < int(has_joint.sum()):
        k = int(np.flatnonzero(has_joint)[np.setdiff1d(np.arange(int(has_joint.sum())), first)[0]])
        frame, field = rows.point_where(k)
        raise DataError(
            source, f"joint id {ids[k]:g} is given twice for this person", frame=frame, field=f"{field}.id"
        )
    present = np.ones(len(ids)) if not occluded_as_absent else (cols["is_visible"] > 0).astype(float)
    width, height, origin = size
    found = first_outside_frame(
        cols["x"], cols["y"], has_joint & (present > 0), width, height, origin != DEFAULT
    )
    if found is not None:
        frame, field = rows.point_where(found[0])
        raise DataError(source, f"keypoint {JOINTS[joint[found[0]]]}: {found[1]}", frame=frame, field=field)
    keypoints = np.zeros((len(rows.rows_p), NUM_JOINTS, 3))
    keypoints[rows.row_of_point[has_joint], joint[has_joint]] = np.stack(
        [cols["x"], cols["y"], present], axis=1
    )[has_joint]
    keypoints[keypoints[..., 2] <= 0] = 0.0
    return keypoints


def _frames(rows: _Rows, keypoints: np.ndarray, keep: np.ndarray, frames: int) -> list[Frame]:
    """``frames`` frames holding the kept poses, ordered by person row; track id = person row."""
    n_rows = len(rows.rows_p)
    p_arr, t_arr = np.array(rows.rows_p, dtype=np.int64), np.array(rows.rows_t, dtype=np.int64)
    head_arr = np.array(rows.heads, dtype=np.float64).reshape(n_rows, 4)
    box_arr = keypoint_boxes(keypoints)
    sel_rows = np.flatnonzero(keep)
    sel_rows = sel_rows[np.lexsort((p_arr[sel_rows], t_arr[sel_rows]))]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(t_arr[sel_rows], minlength=frames))])
    out = []
    for t in range(frames):
        sel = sel_rows[bounds[t] : bounds[t + 1]]
        out.append(
            Frame(
                index=t,
                keypoints=keypoints[sel],
                track_ids=p_arr[sel],
                boxes=box_arr[sel],
                head_boxes=head_arr[sel],
                scores=np.ones(len(sel)),
            )
        )
    return out


def _video(
    entry: np.void,
    v: int,
    source: Path,
    keep_empty_poses: bool,
    occluded_as_absent: bool,
    skipped: dict[str, int] | None,
    size: tuple[float, float, str],
) -> tuple[str, list[Frame]]:
    """Name and frames of ``annolist[v]``."""
    name, where, frames, persons = _video_header(entry, v, source)
    cells = _cells(entry["annopoints"], persons, frames, source, where)
    need = ("id", "x", "y", "is_visible") if occluded_as_absent else ("id", "x", "y")
    rows = _gather(cells, need, source, where)
    cols = _point_columns(rows, need, source)
    keypoints = _keypoint_array(rows, cols, occluded_as_absent, source, name, skipped, size)
    keep = (keypoints[..., 2] > 0).any(axis=1)
    if keep_empty_poses:
        keep[:] = True
    else:
        count_skipped(skipped, SKIP_EMPTY_POSE, int((~keep).sum()), f"{source} [{name}]")
    return name, _frames(rows, keypoints, keep, frames)


def read_bonn_mat(
    path: str | Path,
    *,
    default_frame_size: tuple[float, float] = (1920, 1080),
    keep_empty_poses: bool = False,
    skipped: dict[str, int] | None = None,
    occluded_as_absent: bool = False,
) -> list[Video]:
    """All videos of one Bonn ``annolist.mat`` file (see the module docstring for the mapping)."""
    import scipy.io  # here, not at module level: scipy.io costs ~0.5 s to import

    path = Path(path)
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True)
    except (ValueError, OSError, NotImplementedError, TypeError) as err:
        raise DataError(path, f"not a readable MATLAB file ({err})") from err
    if "annolist" not in mat:
        raise DataError(path, "missing required field", field="annolist")
    annolist = np.atleast_1d(mat["annolist"])
    if annolist.dtype.names is None:
        raise DataError(path, "expected a struct array", field="annolist")
    width, height, origin = resolve_frame_size(path, [], [], default_frame_size, [])
    videos, names = [], set()
    missing = [k for k in _VIDEO_FIELDS if k not in annolist.dtype.names]
    if missing:
        raise DataError(path, "missing required field", field=f"annolist.{missing[0]}")
    for v, entry in enumerate(annolist):
        name, frames = _video(
            entry, v, path, keep_empty_poses, occluded_as_absent, skipped, (width, height, origin)
        )
        if name in names:
            raise DataError(
                path, f"video name {name!r} repeats", frame=f"annolist[{v}]", field=f"annolist[{v}].name"
            )
        names.add(name)
        videos.append(
            Video(
                name=name,
                frames=frames,
                width=width,
                height=height,
                source=str(path),
                frame_size_origin=origin,
            )
        )
    return videos


__all__ = ["BONN_JOINTS", "FROM_BONN_ID", "SKIP_NO_JOINT", "read_bonn_mat"]
