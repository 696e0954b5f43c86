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

from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from keytrack.io.errors import DataError, count_skipped, frame_label
from keytrack.io.frame_size import image_roots, resolve_frame_size
from keytrack.io.jsonfile import load_json
from keytrack.io.posetrack18 import SKIP_EMPTY_POSE, SKIP_NO_KEYPOINTS_FIELD
from keytrack.poses import Frame, Video, keypoint_boxes
from keytrack.skeleton import JOINTS, NUM_JOINTS

#: PoseTrack17's joint names by joint id (poseval's ``Joint``; ``neck`` is our ``head_bottom``).
POSETRACK17_JOINTS: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "head_bottom", "nose", "head_top",
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
        regions.append(np.array([[_number(p["x"], source, frame, field + "[].x"),
                                  _number(p["y"], source, frame, field + "[].y")] for p in pts],
                                dtype=np.float64).reshape(-1, 2))
    return regions


def parse_posetrack17(doc: Any, source: str | Path, *, name: str | None = None,
                      default_frame_size: tuple[float, float] = (1920, 1080),
                      keep_empty_poses: bool = False, skipped: dict[str, int] | None = None,
                      roots: list[Path] | None = None) -> Video:
    """One video from a parsed PoseTrack17 document (see the module docstring for the mapping).

    Frames follow ``annolist``; rects without ``annopoints`` are skipped, as are poses with no
    present keypoint unless ``keep_empty_poses``, both counted in ``skipped``.
    """
    source = Path(source)
    if not isinstance(doc, dict) or "annolist" not in doc:
        raise DataError(source, "missing required field", field="annolist")
    annolist = _listed(doc["annolist"])

    # Gather one row per rect and one per point, then scatter the points in bulk.
    file_names, labeled, regions = [], [], []
    r_frame, r_where, tids, heads, pscores = [], [], [], [], []
    p_rect, p_k, p_id, p_x, p_y, p_score, p_vis = [], [], [], [], [], [], []
    no_points = 0
    for i, entry in enumerate(annolist):
        if not isinstance(entry, dict):
            raise DataError(source, "expected an object", field=f"annolist[{i}]")
        image = _one(entry.get("image"), source, f"annolist[{i}]", f"annolist[{i}].image", None)
        if not isinstance(image, dict) or not isinstance(image.get("name"), str):
            raise DataError(source, "missing required field", frame=frame_label(i),
                            field=f"annolist[{i}].image[0].name")
        file_names.append(image["name"])
        frame = frame_label(i, None, image["name"])
        labeled.append(bool(_one(entry.get("is_labeled"), source, frame,
                                 f"annolist[{i}].is_labeled", True)))
        regions.append(_regions(entry, source, frame, i))
        for j, rect in enumerate(_listed(entry.get("annorect"))):
            field = f"annolist[{i}].annorect[{j}]"
            if not isinstance(rect, dict):
                raise DataError(source, "expected an object", frame=frame, field=field)
            annopoints = _listed(rect.get("annopoints"))
            if not annopoints or not isinstance(annopoints[0], dict) or "point" not in annopoints[0]:
                no_points += 1
                continue
            tid = _one(rect.get("track_id"), source, frame, field + ".track_id", -1)
            if not isinstance(tid, Real) or isinstance(tid, bool) or not float(tid).is_integer() \
                    or tid < -1:
                raise DataError(source, f"track id {tid!r} is not an integer >= -1", frame=frame,
                                field=field + ".track_id")
            has_head = [k in rect for k in ("x1", "y1", "x2", "y2")]
            if all(has_head):
                x1, y1, x2, y2 = (_number(rect[k], source, frame, f"{field}.{k}")
                                  for k in ("x1", "y1", "x2", "y2"))
                heads.append([x1, y1, x2 - x1, y2 - y1])
            elif any(has_head):
                raise DataError(source, "head box needs all of x1, y1, x2, y2", frame=frame,
                                field=field + ".x1/y1/x2/y2")
            else:
                heads.append([np.nan] * 4)
            pscores.append(_number(rect.get("score", 1.0), source, frame, field + ".score"))
            row = len(tids)
            tids.append(int(tid))
            r_frame.append(i)
            r_where.append((frame, field))
            points = _listed(annopoints[0]["point"])
            for k, pt in enumerate(points):
                if not isinstance(pt, dict) or not all(key in pt for key in ("id", "x", "y")):
                    raise DataError(source, "a point needs 'id', 'x' and 'y'", frame=frame,
                                    field=f"{field}.annopoints[0].point[{k}]")
            p_rect += [row] * len(points)
            p_id += [_one(pt["id"], source, frame, field + ".point[].id") for pt in points]
            p_x += [_one(pt["x"], source, frame, field + ".point[].x") for pt in points]
            p_y += [_one(pt["y"], source, frame, field + ".point[].y") for pt in points]
            p_score += [_one(pt.get("score"), source, frame, field + ".point[].score", None)
                        for pt in points]
            p_vis += [_one(pt.get("is_visible"), source, frame, field + ".point[].is_visible", 1)
                      for pt in points]
            p_k += range(len(points))
    count_skipped(skipped, SKIP_NO_KEYPOINTS_FIELD, no_points, source)

    def point_where(k: int) -> tuple[str, str]:
        frame, field = r_where[p_rect[k]]
        return frame, f"{field}.annopoints[0].point[{p_k[k]}]"

    n = len(tids)
    keypoints = np.zeros((n, NUM_JOINTS, 3))
    if p_rect:
        has_score = np.array([v is not None for v in p_score])
        try:
            ids = np.array(p_id, dtype=np.float64)
            vals = np.array([p_x, p_y, [1.0 if v is None else v for v in p_score], p_vis],
                            dtype=np.float64)
        except (TypeError, ValueError):
            bad = next(k for k, v in enumerate(zip(p_id, p_x, p_y, p_score, p_vis))
                       if not all(isinstance(u, Real) or u is None for u in v))
            frame, field = point_where(bad)
            raise DataError(source, "id, x, y, score and is_visible must be numbers", frame=frame,
                            field=field) from None
        bad = ~np.isfinite(vals).all(axis=0)
        if bad.any():
            frame, field = point_where(int(np.argmax(bad)))
            raise DataError(source, "NaN or infinite value", frame=frame, field=field)
        x, y, score, vis = vals
        placeholder = (x == 0) & (y == 0) & (vis == 0)        # "not annotated" in converted files
        c = np.where(placeholder, 0.0, np.where(has_score, score, 1.0))
        bad = (ids != np.round(ids)) | (ids < 0) | (ids >= len(POSETRACK17_JOINTS))
        if bad.any():
            frame, field = point_where(int(np.argmax(bad)))
            raise DataError(source, f"joint id {p_id[int(np.argmax(bad))]!r} is not one of "
                            f"PoseTrack17's 0..{len(POSETRACK17_JOINTS) - 1}", frame=frame,
                            field=field + ".id")
        rect, joint = np.array(p_rect), FROM_POSETRACK17_ID[ids.astype(np.int64)]
        flat = rect * NUM_JOINTS + joint
        _, first, counts = np.unique(flat, return_index=True, return_counts=True)
        if (counts > 1).any():
            k = int(np.sort(np.setdiff1d(np.arange(len(flat)), first))[0])
            frame, field = point_where(k)
            raise DataError(source, f"joint id {p_id[k]} is listed twice for this person",
                            frame=frame, field=field + ".id")
        keypoints[rect, joint] = np.stack([x, y, c], axis=1)
        keypoints[keypoints[..., 2] <= 0] = 0.0

    tid_arr = np.array(tids, dtype=np.int64)
    frm = np.array(r_frame, dtype=np.int64)
    known = np.flatnonzero(tid_arr >= 0)
    o = known[np.lexsort((tid_arr[known], frm[known]))]
    dup = (frm[o][1:] == frm[o][:-1]) & (tid_arr[o][1:] == tid_arr[o][:-1])
    if dup.any():
        r = int(o[1:][np.argmax(dup)])
        frame, field = r_where[r]
        raise DataError(source, f"track id {tid_arr[r]} appears twice in this frame", frame=frame,
                        field=field + ".track_id")

    keep = (keypoints[..., 2] > 0).any(axis=1)
    if keep_empty_poses:
        keep[:] = True
    else:
        count_skipped(skipped, SKIP_EMPTY_POSE, int((~keep).sum()), source)
    head_arr = np.array(heads, dtype=np.float64).reshape(n, 4)
    score_arr = np.array(pscores, dtype=np.float64)
    box_arr = keypoint_boxes(keypoints)
    rows = np.flatnonzero(keep)           # already in frame order: rects are gathered frame by frame
    bounds = np.concatenate([[0], np.cumsum(np.bincount(frm[rows], minlength=len(annolist)))])
    frames = []
    for i in range(len(annolist)):
        sel = rows[bounds[i]:bounds[i + 1]]
        frames.append(Frame(
            index=i, keypoints=keypoints[sel], track_ids=tid_arr[sel],
            boxes=box_arr[sel], head_boxes=head_arr[sel], scores=score_arr[sel],
            file_name=file_names[i], is_labeled=labeled[i], ignore_regions=regions[i],
        ))
    width, height, origin = resolve_frame_size(source, [], file_names, default_frame_size,
                                               image_roots(source) if roots is None else roots)
    return Video(name=name or source.stem, frames=frames, width=width, height=height,
                 source=str(source), frame_size_origin=origin)


def read_posetrack17(path: str | Path, **kwargs) -> Video:
    """Read one PoseTrack17 file (keyword arguments as :func:`parse_posetrack17`)."""
    return parse_posetrack17(load_json(path), path, **kwargs)


__all__ = ["FROM_POSETRACK17_ID", "POSETRACK17_JOINTS", "parse_posetrack17", "read_posetrack17"]
