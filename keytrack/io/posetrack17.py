"""PoseTrack17 JSON (``annolist``), one file per video: reader.

The layout is PoseTrack 2017's (the test set of the paper's §4.1), as poseval reads it:
``annolist[i]`` is one frame with ``image[0].name``, ``imgnum``, ``is_labeled``, optional
``ignore_regions`` (polygons of ``point[].x``/``y``) and ``annorect[j]``, one per person, with
``track_id``, the head box ``x1, y1, x2, y2``, an optional pose ``score`` and
``annopoints[0].point[k]`` holding ``id``, ``x``, ``y`` and optional ``is_visible`` / ``score``.
Values are usually wrapped in one-element lists (``"track_id": [3]``); bare values are accepted
too.

PoseTrack17 numbers its 15 joints 0 r_ankle ... 12 head_bottom (neck), 13 nose, 14 head_top
(:data:`POSETRACK17_JOINTS`); they map one to one onto KeyTrack's 15 (§3.2). A listed point is
present: ``c`` is its ``score`` when given and ``1`` otherwise (ground truth lists annotated joints
only, occluded ones included, and ``is_visible`` is not a presence flag); the ``0, 0`` point with
``is_visible = 0`` that converted PoseTrack18 files use for "not annotated" is absent. Person boxes
are not in the format and are the tight box around the present keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from keytrack.io.errors import DataError, count_skipped, first_outside_frame, frame_label
from keytrack.io.frame_size import DEFAULT, image_roots, resolve_frame_size
from keytrack.io.jsonfile import load_json
from keytrack.io.posetrack18 import SKIP_EMPTY_POSE, SKIP_NO_KEYPOINTS_FIELD
from keytrack.poses import Frame, Video, keypoint_boxes
from keytrack.skeleton import JOINTS, NUM_JOINTS

#: PoseTrack17's joint names by joint id (poseval's ``Joint``; ``neck`` is our ``head_bottom``).
POSETRACK17_JOINTS: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "head_bottom",
    "nose",
    "head_top",
)

#: Index into :data:`keytrack.skeleton.JOINTS` of each PoseTrack17 joint id.
FROM_POSETRACK17_ID: np.ndarray = np.array([JOINTS.index(j) for j in POSETRACK17_JOINTS])

_MISSING = object()


def _one(value: Any, source: Path, frame: str | None, field: str, default: Any = _MISSING) -> Any:
    """Unwrap PoseTrack17's one-element lists (``[3]`` -> ``3``); bare values pass through."""
    if isinstance(value, list):
        if len(value) == 1:
            return value[0]
        if not value and default is not _MISSING:
            return default
        raise DataError(source, f"expected one value, found {len(value)}", frame=frame, field=field)
    if value is None and default is not _MISSING:
        return default
    return value


def _number(value: Any, source: Path, frame: str, field: str) -> float:
    value = _one(value, source, frame, field)
    if not isinstance(value, Real) or isinstance(value, bool) or not np.isfinite(value):
        raise DataError(source, f"{value!r} is not a finite number", frame=frame, field=field)
    return float(value)


def _listed(value: Any) -> list:
    """A list field that MATLAB-derived files sometimes write as a single object."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _regions(entry: dict, source: Path, frame: str, i: int) -> list[np.ndarray]:
    regions = []
    for r, region in enumerate(_listed(entry.get("ignore_regions"))):
        field = f"annolist[{i}].ignore_regions[{r}].point"
        if not isinstance(region, dict) or "point" not in region:
            raise DataError(source, "missing required field", frame=frame, field=field)
        pts = _listed(region["point"])
        if not all(isinstance(p, dict) and "x" in p and "y" in p for p in pts):
            raise DataError(source, "every point needs 'x' and 'y'", frame=frame, field=field)
        regions.append(
            np.array(
                [
                    [
                        _number(p["x"], source, frame, field + "[].x"),
                        _number(p["y"], source, frame, field + "[].y"),
                    ]
                    for p in pts
                ],
                dtype=np.float64,
            ).reshape(-1, 2)
        )
    return regions


@dataclass
class _Gathered:
    """A document's frames, one row per rect (person) and one per listed point, as the file gives
    them (checked for structure; the points are converted and scattered in bulk later)."""

    file_names: list[str] = field(default_factory=list)  # per frame
    labeled: list[bool] = field(default_factory=list)
    regions: list[list[np.ndarray]] = field(default_factory=list)
    r_frame: list[int] = field(default_factory=list)  # per rect
    r_where: list[tuple[str, str]] = field(default_factory=list)
    tids: list[int] = field(default_factory=list)
    heads: list[list[float]] = field(default_factory=list)
    pscores: list[float] = field(default_factory=list)
    p_rect: list[int] = field(default_factory=list)  # per point
    p_k: list[int] = field(default_factory=list)
    p_id: list[Any] = field(default_factory=list)
    p_x: list[Any] = field(default_factory=list)
    p_y: list[Any] = field(default_factory=list)
    p_score: list[Any] = field(default_factory=list)
    p_vis: list[Any] = field(default_factory=list)
    no_points: int = 0  # rects skipped: no annopoints

    def point_where(self, k: int) -> tuple[str, str]:
        """``(frame, field)`` of point ``k`` for error messages."""
        frame, field_ = self.r_where[self.p_rect[k]]
        return frame, f"{field_}.annopoints[0].point[{self.p_k[k]}]"


def _track_id(rect: dict, source: Path, frame: str, where: str) -> int:
    tid = _one(rect.get("track_id"), source, frame, where + ".track_id", -1)
    if not isinstance(tid, Real) or isinstance(tid, bool) or not float(tid).is_integer() or tid < -1:
        raise DataError(
            source, f"track id {tid!r} is not an integer >= -1", frame=frame, field=where + ".track_id"
        )
    return int(tid)


def _head_box(rect: dict, source: Path, frame: str, where: str) -> list[float]:
    """The head box ``x, y, w, h`` from ``x1, y1, x2, y2`` (NaN when the rect has none)."""
    has_head = [k in rect for k in ("x1", "y1", "x2", "y2")]
    if all(has_head):
        x1, y1, x2, y2 = (_number(rect[k], source, frame, f"{where}.{k}") for k in ("x1", "y1", "x2", "y2"))
        return [x1, y1, x2 - x1, y2 - y1]
    if any(has_head):
        raise DataError(
            source, "head box needs all of x1, y1, x2, y2", frame=frame, field=where + ".x1/y1/x2/y2"
        )
    return [np.nan] * 4


def _add_points(g: _Gathered, row: int, points: list, source: Path, frame: str, where: str) -> None:
    """Append the listed ``points`` of rect ``row``, values unwrapped but not yet converted."""
    for k, pt in enumerate(points):
        if not isinstance(pt, dict) or not all(key in pt for key in ("id", "x", "y")):
            raise DataError(
                source,
                "a point needs 'id', 'x' and 'y'",
                frame=frame,
                field=f"{where}.annopoints[0].point[{k}]",
            )
    g.p_rect += [row] * len(points)
    g.p_id += [_one(pt["id"], source, frame, where + ".point[].id") for pt in points]
    g.p_x += [_one(pt["x"], source, frame, where + ".point[].x") for pt in points]
    g.p_y += [_one(pt["y"], source, frame, where + ".point[].y") for pt in points]
    g.p_score += [_one(pt.get("score"), source, frame, where + ".point[].score", None) for pt in points]
    g.p_vis += [_one(pt.get("is_visible"), source, frame, where + ".point[].is_visible", 1) for pt in points]
    g.p_k += range(len(points))


def _add_rects(g: _Gathered, entry: dict, i: int, source: Path, frame: str) -> None:
    """Append the rects (people) of frame ``i``; rects without ``annopoints`` are only counted."""
    for j, rect in enumerate(_listed(entry.get("annorect"))):
        where = f"annolist[{i}].annorect[{j}]"
        if not isinstance(rect, dict):
            raise DataError(source, "expected an object", frame=frame, field=where)
        annopoints = _listed(rect.get("annopoints"))
        if not annopoints or not isinstance(annopoints[0], dict) or "point" not in annopoints[0]:
            g.no_points += 1
            continue
        tid = _track_id(rect, source, frame, where)
        g.heads.append(_head_box(rect, source, frame, where))
        g.pscores.append(_number(rect.get("score", 1.0), source, frame, where + ".score"))
        row = len(g.tids)
        g.tids.append(tid)
        g.r_frame.append(i)
        g.r_where.append((frame, where))
        _add_points(g, row, _listed(annopoints[0]["point"]), source, frame, where)


def _gather(annolist: list, source: Path) -> _Gathered:
    """Check every frame of ``annolist`` and gather its rects and points."""
    g = _Gathered()
    for i, entry in enumerate(annolist):
        if not isinstance(entry, dict):
            raise DataError(source, "expected an object", field=f"annolist[{i}]")
        image = _one(entry.get("image"), source, f"annolist[{i}]", f"annolist[{i}].image", None)
        if not isinstance(image, dict) or not isinstance(image.get("name"), str):
            raise DataError(
                source, "missing required field", frame=frame_label(i), field=f"annolist[{i}].image[0].name"
            )
        g.file_names.append(image["name"])
        frame = frame_label(i, None, image["name"])
        g.labeled.append(
            bool(_one(entry.get("is_labeled"), source, frame, f"annolist[{i}].is_labeled", True))
        )
        g.regions.append(_regions(entry, source, frame, i))
        _add_rects(g, entry, i, source, frame)
    return g


def _point_values(g: _Gathered, source: Path) -> tuple[np.ndarray, np.ndarray]:
    """Joint ids ``[P]`` and ``x, y, score, is_visible`` ``[4, P]`` of every point, as floats."""
    try:
        ids = np.array(g.p_id, dtype=np.float64)
        vals = np.array(
            [g.p_x, g.p_y, [1.0 if v is None else v for v in g.p_score], g.p_vis], dtype=np.float64
        )
    except (TypeError, ValueError):
        bad = next(
            k
            for k, v in enumerate(zip(g.p_id, g.p_x, g.p_y, g.p_score, g.p_vis))
            if not all(isinstance(u, Real) or u is None for u in v)
        )
        frame, where = g.point_where(bad)
        raise DataError(
            source, "id, x, y, score and is_visible must be numbers", frame=frame, field=where
        ) from None
    bad = ~np.isfinite(vals).all(axis=0)
    if bad.any():
        frame, where = g.point_where(int(np.argmax(bad)))
        raise DataError(source, "NaN or infinite value", frame=frame, field=where)
    return ids, vals


def _point_joints(g: _Gathered, ids: np.ndarray, source: Path) -> tuple[np.ndarray, np.ndarray]:
    """Rect row and KeyTrack joint of every point; unknown and repeated joint ids are refused."""
    bad = (ids != np.round(ids)) | (ids < 0) | (ids >= len(POSETRACK17_JOINTS))
    if bad.any():
        frame, where = g.point_where(int(np.argmax(bad)))
        raise DataError(
            source,
            f"joint id {g.p_id[int(np.argmax(bad))]!r} is not one of "
            f"PoseTrack17's 0..{len(POSETRACK17_JOINTS) - 1}",
            frame=frame,
            field=where + ".id",
        )
    rect, joint = np.array(g.p_rect), FROM_POSETRACK17_ID[ids.astype(np.int64)]
    flat = rect * NUM_JOINTS + joint
    _, first, counts = np.unique(flat, return_index=True, return_counts=True)
    if (counts > 1).any():
        k = int(np.sort(np.setdiff1d(np.arange(len(flat)), first))[0])
        frame, where = g.point_where(k)
        raise DataError(
            source, f"joint id {g.p_id[k]} is listed twice for this person", frame=frame, field=where + ".id"
        )
    return rect, joint


def _keypoint_array(g: _Gathered, source: Path, size: tuple[float, float, str]) -> np.ndarray:
    """``[rects, 15, 3]`` keypoints: the points scattered into KeyTrack's joint order; a present
    point far outside the ``(width, height, origin)`` frame is refused (:func:`first_outside_frame`)."""
    keypoints = np.zeros((len(g.tids), NUM_JOINTS, 3))
    if g.p_rect:
        has_score = np.array([v is not None for v in g.p_score])
        ids, vals = _point_values(g, source)
        x, y, score, vis = vals
        placeholder = (x == 0) & (y == 0) & (vis == 0)  # "not annotated" in converted files
        c = np.where(placeholder, 0.0, np.where(has_score, score, 1.0))
        rect, joint = _point_joints(g, ids, source)
        found = first_outside_frame(x, y, c > 0, size[0], size[1], size[2] != DEFAULT)
        if found is not None:
            frame, where = g.point_where(found[0])
            raise DataError(
                source, f"keypoint {JOINTS[joint[found[0]]]}: {found[1]}", frame=frame, field=where
            )
        keypoints[rect, joint] = np.stack([x, y, c], axis=1)
        keypoints[keypoints[..., 2] <= 0] = 0.0
    return keypoints


def _check_unique_track_ids(g: _Gathered, tid_arr: np.ndarray, frm: np.ndarray, source: Path) -> None:
    """One track id per person and frame (``-1``, unknown, may repeat)."""
    known = np.flatnonzero(tid_arr >= 0)
    o = known[np.lexsort((tid_arr[known], frm[known]))]
    dup = (frm[o][1:] == frm[o][:-1]) & (tid_arr[o][1:] == tid_arr[o][:-1])
    if dup.any():
        r = int(o[1:][np.argmax(dup)])
        frame, where = g.r_where[r]
        raise DataError(
            source,
            f"track id {tid_arr[r]} appears twice in this frame",
            frame=frame,
            field=where + ".track_id",
        )


def _frames(
    g: _Gathered, keypoints: np.ndarray, tid_arr: np.ndarray, frm: np.ndarray, keep: np.ndarray
) -> list[Frame]:
    """One :class:`Frame` per ``annolist`` entry with its kept poses."""
    n = len(g.tids)
    head_arr = np.array(g.heads, dtype=np.float64).reshape(n, 4)
    score_arr = np.array(g.pscores, dtype=np.float64)
    box_arr = keypoint_boxes(keypoints)
    rows = np.flatnonzero(keep)  # already in frame order: rects are gathered frame by frame
    bounds = np.concatenate([[0], np.cumsum(np.bincount(frm[rows], minlength=len(g.file_names)))])
    frames = []
    for i in range(len(g.file_names)):
        sel = rows[bounds[i] : bounds[i + 1]]
        frames.append(
            Frame(
                index=i,
                keypoints=keypoints[sel],
                track_ids=tid_arr[sel],
                boxes=box_arr[sel],
                head_boxes=head_arr[sel],
                scores=score_arr[sel],
                file_name=g.file_names[i],
                is_labeled=g.labeled[i],
                ignore_regions=g.regions[i],
            )
        )
    return frames


def parse_posetrack17(
    doc: Any,
    source: str | Path,
    *,
    name: str | None = None,
    default_frame_size: tuple[float, float] = (1920, 1080),
    keep_empty_poses: bool = False,
    skipped: dict[str, int] | None = None,
    roots: list[Path] | None = None,
) -> Video:
    """One video from a parsed PoseTrack17 document (see the module docstring for the mapping).

    Frames follow ``annolist``; rects without ``annopoints`` are skipped, as are poses with no
    present keypoint unless ``keep_empty_poses``, both counted in ``skipped``.
    """
    source = Path(source)
    if not isinstance(doc, dict) or "annolist" not in doc:
        raise DataError(source, "missing required field", field="annolist")
    g = _gather(_listed(doc["annolist"]), source)
    count_skipped(skipped, SKIP_NO_KEYPOINTS_FIELD, g.no_points, source)
    width, height, origin = resolve_frame_size(
        source, [], g.file_names, default_frame_size, image_roots(source) if roots is None else roots
    )
    keypoints = _keypoint_array(g, source, (width, height, origin))
    tid_arr = np.array(g.tids, dtype=np.int64)
    frm = np.array(g.r_frame, dtype=np.int64)
    _check_unique_track_ids(g, tid_arr, frm, source)
    keep = (keypoints[..., 2] > 0).any(axis=1)
    if keep_empty_poses:
        keep[:] = True
    else:
        count_skipped(skipped, SKIP_EMPTY_POSE, int((~keep).sum()), source)
    frames = _frames(g, keypoints, tid_arr, frm, keep)
    return Video(
        name=name or source.stem,
        frames=frames,
        width=width,
        height=height,
        source=str(source),
        frame_size_origin=origin,
    )


def read_posetrack17(path: str | Path, **kwargs) -> Video:
    """Read one PoseTrack17 file (keyword arguments as :func:`parse_posetrack17`)."""
    return parse_posetrack17(load_json(path), path, **kwargs)


__all__ = ["FROM_POSETRACK17_ID", "POSETRACK17_JOINTS", "parse_posetrack17", "read_posetrack17"]
