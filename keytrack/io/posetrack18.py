"""PoseTrack18 JSON, one file per video: reader and writer.

The layout is PoseTrack 2018's (the benchmark of the paper's §4.1): ``images`` (one entry per
frame: ``id``, ``frame_id``, ``file_name``, ``is_labeled``, optional ``width``/``height`` and
``ignore_regions_x``/``ignore_regions_y``), ``annotations`` (one per pose: ``image_id``,
``track_id``, ``keypoints`` as 17 ``x, y, v`` triples, ``bbox``/``bbox_head`` as ``x, y, w, h``,
and in prediction files per-keypoint ``scores`` and a pose ``score``) and ``categories`` (the
keypoint names). The 17 points map onto KeyTrack's 15 (§3.2, ``|K| = 15``) with
:data:`keytrack.skeleton.FROM_POSETRACK18`; the two ears are dropped on reading and written as
``0, 0, 0``.

Keypoint presence follows the in-memory convention (``c > 0``): ``c`` is the file's per-keypoint
``scores`` entry when the annotation has one, its ``v`` flag otherwise, and ``0`` for the
``0, 0, 0`` placeholder of an unannotated point. Absent keypoints are stored as ``0, 0, 0``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np

from keytrack.io.errors import DataError, count_skipped, first_outside_frame, frame_label
from keytrack.io.frame_size import DEFAULT, image_roots, resolve_frame_size
from keytrack.io.jsonfile import load_json, write_json_atomic
from keytrack.poses import Dataset, Frame, Video, keypoint_boxes
from keytrack.skeleton import FROM_POSETRACK18, JOINTS, POSETRACK18_JOINTS

log = logging.getLogger("keytrack.io")

#: ``Dataset.skipped`` reasons used by this reader.
SKIP_NO_KEYPOINTS_FIELD = "annotations without keypoints"
SKIP_EMPTY_POSE = "poses with no visible keypoint"

#: PoseTrack18's limb list (1-based indices into the 17 keypoints), as its files carry it.
POSETRACK18_SKELETON: list[list[int]] = [
    [16, 14],
    [14, 12],
    [17, 15],
    [15, 13],
    [12, 13],
    [6, 12],
    [7, 13],
    [6, 7],
    [6, 8],
    [7, 9],
    [8, 10],
    [9, 11],
    [2, 3],
    [1, 2],
    [1, 3],
    [2, 4],
    [3, 5],
    [4, 6],
    [5, 7],
]

_NAN4 = [float("nan")] * 4


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def keypoint_layout(categories: Any, source: Path) -> tuple[np.ndarray, int]:
    """Where each of :data:`JOINTS` sits in the file's keypoint list, and that list's length.

    The ``categories[].keypoints`` names decide when the file gives them (as poseval reads them);
    otherwise PoseTrack18's 17-point order is assumed.
    """
    if categories in (None, []):
        return FROM_POSETRACK18, len(POSETRACK18_JOINTS)
    if not isinstance(categories, list) or not all(isinstance(c, dict) for c in categories):
        raise DataError(source, "expected a list of objects", field="categories")
    named = [i for i, c in enumerate(categories) if c.get("keypoints") is not None]
    if not named:
        return FROM_POSETRACK18, len(POSETRACK18_JOINTS)
    field = f"categories[{named[0]}].keypoints"
    names = categories[named[0]]["keypoints"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(source, "expected a list of keypoint names", field=field)
    missing = [j for j in JOINTS if j not in names]
    if missing:
        raise DataError(source, f"keypoint names {missing} are missing (have {names})", field=field)
    return np.array([names.index(j) for j in JOINTS]), len(names)


def _ignore_regions(image: dict, source: Path, where: str) -> list[np.ndarray]:
    """``ignore_regions_x``/``_y`` (lists of per-polygon coordinate lists) as ``[N, 2]`` arrays."""
    xs, ys = image.get("ignore_regions_x"), image.get("ignore_regions_y")
    if xs is None and ys is None:
        return []
    if xs is None or ys is None:
        field = "ignore_regions_y" if ys is None else "ignore_regions_x"
        raise DataError(
            source, "missing (the other ignore-region coordinate list is given)", frame=where, field=field
        )
    if not isinstance(xs, list) or not isinstance(ys, list):
        raise DataError(source, "expected lists of polygons", frame=where, field="ignore_regions_x")
    if xs and all(_is_number(v) for v in xs + ys):  # a single polygon written flat
        xs, ys = [xs], [ys]
    if len(xs) != len(ys):
        raise DataError(
            source,
            f"{len(xs)} x lists but {len(ys)} y lists",
            frame=where,
            field="ignore_regions_x/ignore_regions_y",
        )
    regions = []
    for r, (rx, ry) in enumerate(zip(xs, ys)):
        field = f"ignore_regions_x[{r}]/ignore_regions_y[{r}]"
        try:
            x, y = np.asarray(rx, dtype=np.float64), np.asarray(ry, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataError(source, f"not a list of numbers ({err})", frame=where, field=field) from err
        if x.ndim != 1 or x.shape != y.shape:
            raise DataError(source, f"x has shape {x.shape}, y has shape {y.shape}", frame=where, field=field)
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise DataError(source, "NaN or infinite coordinate", frame=where, field=field)
        regions.append(np.stack([x, y], axis=1))
    return regions


def _as_array(rows: list, width: int, source: Path, locate, finite: bool = True) -> np.ndarray:
    """``rows`` (lists of numbers) as a ``[len(rows), width]`` float array.

    ``locate(i)`` gives ``(frame, field)`` of row ``i`` for the error message. With ``finite``,
    NaN and infinite values are refused; otherwise only non-numbers are.
    """
    try:
        arr = np.array(rows, dtype=np.float64).reshape(len(rows), width)
    except (TypeError, ValueError):
        for i, row in enumerate(rows):  # slow path, only to name the offending row
            try:
                np.array(row, dtype=np.float64)
            except (TypeError, ValueError) as err:
                frame, field = locate(i)
                raise DataError(source, f"not a list of numbers ({err})", frame=frame, field=field) from err
        raise
    if finite:
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            frame, field = locate(int(np.argmax(bad)))
            raise DataError(source, "NaN or infinite value", frame=frame, field=field)
    return arr


def _check_document(doc: Any, source: Path) -> None:
    """Refuse a document that is not an object with ``images`` and ``annotations`` lists."""
    if not isinstance(doc, dict):
        raise DataError(source, f"expected a JSON object, found {type(doc).__name__}")
    for key in ("images", "annotations"):
        if key not in doc:
            raise DataError(source, "missing required field", field=key)
        if not isinstance(doc[key], list):
            raise DataError(source, f"expected a list, found {type(doc[key]).__name__}", field=key)


def _check_images(images: list, source: Path) -> None:
    """Every ``images`` entry is an object with an integer ``id``."""
    for i, im in enumerate(images):
        if not isinstance(im, dict):
            raise DataError(source, "expected an object", field=f"images[{i}]")
        if "id" not in im:
            raise DataError(
                source,
                "missing required field",
                frame=f"images[{i}] ({im.get('file_name', '')})",
                field=f"images[{i}].id",
            )
        if not _is_int(im["id"]):
            raise DataError(source, f"image id {im['id']!r} is not an integer", field=f"images[{i}].id")


def _frame_order(images: list[dict], source: Path) -> np.ndarray:
    """Positions of ``images`` sorted by ``frame_id``; file order unless every image has one."""
    has_frame_id = [im.get("frame_id") is not None for im in images]
    if all(has_frame_id):
        bad = [i for i, im in enumerate(images) if not _is_int(im["frame_id"])]
        if bad:
            im = images[bad[0]]
            raise DataError(
                source,
                f"frame_id {im['frame_id']!r} is not an integer",
                frame=frame_label(None, im["id"], str(im.get("file_name", ""))),
                field=f"images[{bad[0]}].frame_id",
            )
        return np.argsort(np.array([im["frame_id"] for im in images], dtype=np.int64), kind="stable")
    if any(has_frame_id):
        log.warning("%s: frame_id missing on some images; frames kept in file order", source)
    return np.arange(len(images))


class _Images:
    """The ``images`` of a file in frame order: the frame of each image id and the frame labels
    that error messages name."""

    def __init__(self, images: list[dict], source: Path) -> None:
        self.images = images
        self.frame_of: dict[int, int] = {}
        for k, im in enumerate(images):
            if im["id"] in self.frame_of:
                raise DataError(
                    source,
                    "repeated image id",
                    frame=frame_label(k, im["id"], im.get("file_name", "")),
                    field="images[].id",
                )
            self.frame_of[im["id"]] = k
        self.file_names = [str(im.get("file_name") or "") for im in images]

    def where(self, k: int) -> str:
        """Label of frame ``k`` for error messages."""
        return frame_label(k, self.images[k]["id"], self.file_names[k])


@dataclass
class _Annotations:
    """The annotations that have keypoints, one entry per pose in file order, values as the file
    gives them (checked for shape and type, converted in bulk later)."""

    idx: list[int] = field(default_factory=list)  # annotation position in the file
    frm: list[int] = field(default_factory=list)  # frame of the pose
    kps: list[Any] = field(default_factory=list)
    kp_scores: dict[int, Any] = field(default_factory=dict)  # row -> per-keypoint scores list
    tids: list[int] = field(default_factory=list)
    boxes: list[Any] = field(default_factory=list)
    heads: list[Any] = field(default_factory=list)
    pose_scores: list[float] = field(default_factory=list)
    no_keypoints: int = 0  # annotations skipped for lack of keypoints


class _AnnotationReader:
    """Checks the ``annotations`` of a file one by one and gathers them as :class:`_Annotations`."""

    def __init__(self, images: _Images, n_kp: int, source: Path) -> None:
        self.images, self.n_kp, self.source = images, n_kp, source
        self.out = _Annotations()

    def read(self, anns: list) -> _Annotations:
        for i, a in enumerate(anns):
            k = self._frame(a, i)
            kp = a.get("keypoints")
            if kp is None or kp == []:
                self.out.no_keypoints += 1
                continue
            self._add(a, i, k, kp)
        return self.out

    def _fail(self, reason: str, k: int, i: int, name: str) -> DataError:
        return DataError(self.source, reason, frame=self.images.where(k), field=f"annotations[{i}].{name}")

    def _frame(self, a: Any, i: int) -> int:
        """The frame of annotation ``i`` (from its ``image_id``)."""
        if not isinstance(a, dict):
            raise DataError(self.source, "expected an object", field=f"annotations[{i}]")
        if "image_id" not in a:
            raise DataError(self.source, "missing required field", field=f"annotations[{i}].image_id")
        k = self.images.frame_of.get(a["image_id"]) if _is_int(a["image_id"]) else None
        if k is None:
            raise DataError(
                self.source,
                f"image_id {a['image_id']!r} names no entry of 'images'",
                frame=f"image {a['image_id']!r}",
                field=f"annotations[{i}].image_id",
            )
        return k

    def _add(self, a: dict, i: int, k: int, kp: Any) -> None:
        """Check annotation ``i`` (in frame ``k``, with keypoints ``kp``) and append it."""
        n_kp, out = self.n_kp, self.out
        if not isinstance(kp, list) or len(kp) != 3 * n_kp:
            got = f"{len(kp)} values" if isinstance(kp, list) else type(kp).__name__
            raise self._fail(f"{got}, expected {3 * n_kp} ({n_kp} keypoints x 3)", k, i, "keypoints")
        row = len(out.idx)
        out.idx.append(i)
        out.frm.append(k)
        out.kps.append(kp)
        sc = a.get("scores")
        if sc not in (None, []):
            if not isinstance(sc, list) or len(sc) != n_kp:
                got = f"{len(sc)} values" if isinstance(sc, list) else type(sc).__name__
                raise self._fail(f"{got}, expected {n_kp} (one per keypoint)", k, i, "scores")
            out.kp_scores[row] = sc
        out.tids.append(self._track_id(a, i, k))
        for value, rows, name in (
            (a.get("bbox"), out.boxes, "bbox"),
            (a.get("bbox_head"), out.heads, "bbox_head"),
        ):
            if value is None or value == []:
                rows.append(_NAN4)
            elif isinstance(value, list) and len(value) == 4:
                rows.append(value)
            else:
                raise self._fail(f"expected [x, y, w, h] or [], found {value!r}", k, i, name)
        out.pose_scores.append(self._pose_score(a, i, k))

    def _track_id(self, a: dict, i: int, k: int) -> int:
        tid = a.get("track_id")
        if tid is None:
            return -1
        if _is_number(tid) and float(tid).is_integer() and tid >= -1:
            return int(tid)
        raise self._fail(f"track id {tid!r} is not an integer >= -1", k, i, "track_id")

    def _pose_score(self, a: dict, i: int, k: int) -> float:
        score = a.get("score", 1.0)
        if score is None:
            score = 1.0
        if not _is_number(score) or not np.isfinite(score):
            raise self._fail(f"pose score {score!r} is not a finite number", k, i, "score")
        return float(score)


class _Locate:
    """``locate(i) -> (frame, field)`` for :func:`_as_array`: where the ``name`` field of pose row
    ``i`` (of row ``rows[i]`` when ``rows`` is given) sits in the file."""

    def __init__(self, anns: _Annotations, images: _Images, name: str, rows: np.ndarray | None = None):
        self.anns, self.images, self.name, self.rows = anns, images, name, rows

    def __call__(self, i: int) -> tuple[str, str]:
        r = i if self.rows is None else int(self.rows[i])
        return self.images.where(self.anns.frm[r]), f"annotations[{self.anns.idx[r]}].{self.name}"


@dataclass
class _PoseArrays:
    """The gathered poses as arrays, one row per pose: what each :class:`Frame` is cut from."""

    frame: np.ndarray
    keypoints: np.ndarray
    track_ids: np.ndarray
    boxes: np.ndarray
    head_boxes: np.ndarray
    scores: np.ndarray


def _keypoint_array(
    anns: _Annotations, images: _Images, take: np.ndarray, n_kp: int, source: Path
) -> np.ndarray:
    """``[N, 15, 3]`` keypoints in KeyTrack's order, ``c`` from the scores where given."""
    n = len(anns.idx)
    kp17 = _as_array(anns.kps, 3 * n_kp, source, _Locate(anns, images, "keypoints")).reshape(n, n_kp, 3)
    if anns.kp_scores:
        srows = np.fromiter(anns.kp_scores, dtype=np.int64, count=len(anns.kp_scores))
        sc = _as_array(list(anns.kp_scores.values()), n_kp, source, _Locate(anns, images, "scores", srows))
        placeholder = (kp17[srows] == 0).all(axis=-1)  # 0, 0, 0: an unannotated point
        kp17[srows, :, 2] = np.where(placeholder, 0.0, sc)
    keypoints = kp17[:, take, :]
    keypoints[keypoints[..., 2] <= 0] = 0.0
    return keypoints


def _box_arrays(anns: _Annotations, images: _Images, source: Path) -> tuple[np.ndarray, np.ndarray]:
    """``[N, 4]`` person and head boxes, NaN where absent; partly non-finite boxes are refused."""
    box_arr = _as_array(anns.boxes, 4, source, _Locate(anns, images, "bbox"), finite=False)
    head_arr = _as_array(anns.heads, 4, source, _Locate(anns, images, "bbox_head"), finite=False)
    for arr, name in ((box_arr, "bbox"), (head_arr, "bbox_head")):
        bad = ~np.isnan(arr).all(axis=1) & ~np.isfinite(arr).all(axis=1)
        if bad.any():
            frame, field_ = _Locate(anns, images, name)(int(np.argmax(bad)))
            raise DataError(source, "NaN or infinite value", frame=frame, field=field_)
    return box_arr, head_arr


def _pose_arrays(
    anns: _Annotations, images: _Images, take: np.ndarray, n_kp: int, source: Path
) -> _PoseArrays:
    """Convert the gathered annotations in bulk; person boxes missing from the file are the
    tight boxes around the keypoints."""
    keypoints = _keypoint_array(anns, images, take, n_kp, source)
    box_arr, head_arr = _box_arrays(anns, images, source)
    derive = np.isnan(box_arr).all(axis=1)
    if derive.any():
        box_arr[derive] = keypoint_boxes(keypoints[derive])
    return _PoseArrays(
        frame=np.array(anns.frm, dtype=np.int64),
        keypoints=keypoints,
        track_ids=np.array(anns.tids, dtype=np.int64),
        boxes=box_arr,
        head_boxes=head_arr,
        scores=np.array(anns.pose_scores, dtype=np.float64),
    )


def _check_unique_track_ids(poses: _PoseArrays, anns: _Annotations, images: _Images, source: Path) -> None:
    """One track id per person and frame (``-1``, unknown, may repeat)."""
    frm_arr, tid_arr = poses.frame, poses.track_ids
    known = np.flatnonzero(tid_arr >= 0)
    o = known[np.lexsort((tid_arr[known], frm_arr[known]))]
    dup = (frm_arr[o][1:] == frm_arr[o][:-1]) & (tid_arr[o][1:] == tid_arr[o][:-1])
    if dup.any():
        r = int(o[1:][np.argmax(dup)])
        raise DataError(
            source,
            f"track id {tid_arr[r]} appears twice in this frame",
            frame=images.where(anns.frm[r]),
            field=f"annotations[{anns.idx[r]}].track_id",
        )


def _check_in_frame(
    poses: _PoseArrays, anns: _Annotations, images: _Images, source: Path, size: tuple[float, float, str]
) -> None:
    """Refuse a present keypoint far outside the frame (see :func:`first_outside_frame`)."""
    kp = poses.keypoints.reshape(-1, 3)
    width, height, origin = size
    found = first_outside_frame(kp[:, 0], kp[:, 1], kp[:, 2] > 0, width, height, origin != DEFAULT)
    if found is not None:
        r, j = divmod(found[0], len(JOINTS))
        frame, field_ = _Locate(anns, images, "keypoints")(r)
        raise DataError(source, f"keypoint {JOINTS[j]}: {found[1]}", frame=frame, field=field_)


def _kept_poses(
    keypoints: np.ndarray, keep_empty_poses: bool, skipped: dict[str, int] | None, source: Path
) -> np.ndarray:
    """``[N]`` bool: the poses to keep (those with a present keypoint unless ``keep_empty_poses``)."""
    keep = (keypoints[..., 2] > 0).any(axis=1)
    if not keep_empty_poses:
        count_skipped(skipped, SKIP_EMPTY_POSE, int((~keep).sum()), source)
    else:
        keep[:] = True
    return keep


def _frames(images: _Images, poses: _PoseArrays, keep: np.ndarray, source: Path) -> list[Frame]:
    """One :class:`Frame` per image entry, holding its kept poses in file order."""
    rows = np.flatnonzero(keep)
    rows = rows[np.argsort(poses.frame[rows], kind="stable")]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(poses.frame[rows], minlength=len(images.images)))])
    frames = []
    for k, im in enumerate(images.images):
        sel = rows[bounds[k] : bounds[k + 1]]
        labeled = im.get("is_labeled", True)
        if isinstance(labeled, list) and len(labeled) == 1:
            labeled = labeled[0]
        frames.append(
            Frame(
                index=k,
                keypoints=poses.keypoints[sel],
                track_ids=poses.track_ids[sel],
                boxes=poses.boxes[sel],
                head_boxes=poses.head_boxes[sel],
                scores=poses.scores[sel],
                image_id=int(im["id"]),
                file_name=images.file_names[k],
                is_labeled=bool(labeled),
                ignore_regions=_ignore_regions(im, source, images.where(k)),
            )
        )
    return frames


def parse_posetrack18(
    doc: Any,
    source: str | Path,
    *,
    name: str | None = None,
    default_frame_size: tuple[float, float] = (1920, 1080),
    keep_empty_poses: bool = False,
    skipped: dict[str, int] | None = None,
    roots: list[Path] | None = None,
) -> Video:
    """One video from a parsed PoseTrack18 document (see the module docstring for the mapping).

    Frames follow ``images`` sorted by ``frame_id`` (file order where ``frame_id`` is absent);
    every image entry is a frame, with or without poses. Poses keep the file's annotation order.
    Annotations without ``keypoints`` are skipped, as are poses with no present keypoint unless
    ``keep_empty_poses``; both are counted in ``skipped``.
    """
    source = Path(source)
    _check_document(doc, source)
    take, n_kp = keypoint_layout(doc.get("categories"), source)
    _check_images(doc["images"], source)
    images = _Images([doc["images"][i] for i in _frame_order(doc["images"], source)], source)
    anns = _AnnotationReader(images, n_kp, source).read(doc["annotations"])
    count_skipped(skipped, SKIP_NO_KEYPOINTS_FIELD, anns.no_keypoints, source)
    poses = _pose_arrays(anns, images, take, n_kp, source)
    _check_unique_track_ids(poses, anns, images, source)
    sizes = [
        (im["width"], im["height"])
        for im in images.images
        if _is_number(im.get("width")) and _is_number(im.get("height"))
    ]
    width, height, origin = resolve_frame_size(
        source, sizes, images.file_names, default_frame_size, image_roots(source) if roots is None else roots
    )
    _check_in_frame(poses, anns, images, source, (width, height, origin))
    keep = _kept_poses(poses.keypoints, keep_empty_poses, skipped, source)
    frames = _frames(images, poses, keep, source)
    return Video(
        name=name or source.stem,
        frames=frames,
        width=width,
        height=height,
        source=str(source),
        frame_size_origin=origin,
    )


def read_posetrack18(path: str | Path, **kwargs) -> Video:
    """Read one PoseTrack18 file (keyword arguments as :func:`parse_posetrack18`)."""
    return parse_posetrack18(load_json(path), path, **kwargs)


# ------------------------------------------------------------------------------------------------
# Writer
# ------------------------------------------------------------------------------------------------


def _image_ids(video: Video) -> tuple[list[int], list[int]]:
    """``(ids, frame_ids)`` for the image entries of ``video``.

    Frames keep their ``image_id``; frames without one get PoseTrack18's scheme
    ``10000000000 + 10000 * <video number> + <frame index>`` (video number: the leading digits
    of the video name, 0 if none). ``frame_id`` equals ``id`` (as in PoseTrack18) when the ids
    increase with the frames, and is that scheme otherwise, so that reading the file back sorts
    the frames into the same order.
    """
    digits = re.match(r"\d+", video.name)
    base = 10_000_000_000 + 10_000 * (int(digits.group()) if digits else 0)
    generated = [base + k for k in range(len(video.frames))]
    ids = [int(f.image_id) if f.image_id is not None else g for f, g in zip(video.frames, generated)]
    if len(set(ids)) != len(ids):
        raise DataError(video.source or video.name, "repeated image id", field="frames[].image_id")
    increasing = all(a < b for a, b in zip(ids, ids[1:]))
    return ids, (ids if increasing else generated)


def video_to_posetrack18(video: Video) -> dict:
    """A PoseTrack18 document for ``video`` (17 keypoints, ears ``0, 0, 0``; see module docstring)."""
    if not (np.isfinite([video.width, video.height]).all() and video.width > 0 and video.height > 0):
        raise DataError(
            video.source or video.name,
            f"frame size {video.width} x {video.height} is not positive and finite",
            field="Video.width/height",
        )
    ids, frame_ids = _image_ids(video)
    digits = re.match(r"\d+", video.name)
    vid_id = digits.group() if digits else video.name
    source = video.source or video.name
    per_frame = [f.num_poses for f in video.frames]
    running = max(per_frame, default=0) >= 100  # PoseTrack's image_id * 100 + p would collide
    images, annotations = [], []
    next_id = 1
    for frame, image_id, frame_id in zip(video.frames, ids, frame_ids):
        where = frame_label(frame.index, frame.image_id, frame.file_name)
        images.append(_image_entry(video, frame, image_id, frame_id, vid_id, source, where))
        if frame.num_poses == 0:
            continue
        anns = _pose_annotations(frame, image_id, source, where, next_id if running else None)
        annotations += anns
        next_id += len(anns)
    categories = [
        {
            "supercategory": "person",
            "id": 1,
            "name": "person",
            "keypoints": list(POSETRACK18_JOINTS),
            "skeleton": POSETRACK18_SKELETON,
        }
    ]
    return {"images": images, "annotations": annotations, "categories": categories}


def _image_entry(
    video: Video, frame: Frame, image_id: int, frame_id: int, vid_id: str, source: str, where: str
) -> dict[str, Any]:
    """The ``images`` entry of one frame, with its ignore regions (which must be finite)."""
    entry: dict[str, Any] = {
        "id": image_id,
        "vid_id": vid_id,
        "frame_id": frame_id,
        "file_name": frame.file_name,
        "nframes": len(video.frames),
        "is_labeled": bool(frame.is_labeled),
        "width": _num(video.width),
        "height": _num(video.height),
    }
    if frame.ignore_regions:
        regions = [np.asarray(r, dtype=np.float64).reshape(-1, 2) for r in frame.ignore_regions]
        if not all(np.isfinite(r).all() for r in regions):
            raise DataError(source, "NaN or infinite coordinate", frame=where, field="ignore_regions")
        entry["ignore_regions_x"] = [r[:, 0].tolist() for r in regions]
        entry["ignore_regions_y"] = [r[:, 1].tolist() for r in regions]
    return entry


def _pose_annotations(
    frame: Frame, image_id: int, source: str, where: str, first_id: int | None
) -> list[dict[str, Any]]:
    """The ``annotations`` entries of one frame's poses, in PoseTrack18's 17 joints.

    Ids are ``first_id, first_id + 1, ...`` when given (a frame of 100 or more poses somewhere
    in the video), PoseTrack's ``image_id * 100 + p`` otherwise. Present keypoints and pose scores
    must be finite.
    """
    kp = frame.keypoints
    present = kp[..., 2] > 0
    bad = (~np.isfinite(kp).all(axis=-1) & present).any(axis=-1)
    if bad.any():
        p = int(np.argmax(bad))
        raise DataError(
            source,
            "NaN or infinite coordinate of a present keypoint",
            frame=where,
            field=f"keypoints[{p}]",
        )
    kp17 = np.zeros((frame.num_poses, len(POSETRACK18_JOINTS), 3))
    kp17[:, FROM_POSETRACK18, :2] = np.where(present[..., None], kp[..., :2], 0.0)
    kp17[:, FROM_POSETRACK18, 2] = present
    scores17 = np.zeros(kp17.shape[:2])
    scores17[:, FROM_POSETRACK18] = np.where(present, kp[..., 2], 0.0)
    annotations = []
    for p, (flat, sc, n_vis, box, head, tid, score) in enumerate(
        zip(
            kp17.reshape(len(kp17), -1).tolist(),
            scores17.tolist(),
            present.sum(axis=1).tolist(),
            frame.boxes.tolist(),
            frame.head_boxes.tolist(),
            frame.track_ids.tolist(),
            frame.scores.tolist(),
        )
    ):
        if not np.isfinite(score):
            raise DataError(source, "pose score is NaN or infinite", frame=where, field=f"scores[{p}]")
        ann: dict[str, Any] = {
            "id": first_id + p if first_id is not None else image_id * 100 + p,
            "image_id": image_id,
            "track_id": int(tid),
            "category_id": 1,
            "keypoints": flat,
            "scores": sc,
            "num_keypoints": int(n_vis),
            "score": score,
            "bbox": box if np.isfinite(box).all() else [],
        }
        if np.isfinite(head).all():
            ann["bbox_head"] = head
        annotations.append(ann)
    return annotations


def _num(value: float) -> int | float:
    """Whole numbers as JSON integers (``960`` rather than ``960.0``)."""
    value = float(value)
    return int(value) if value.is_integer() else value


def write_video_posetrack18(video: Video, path: str | Path) -> Path:
    """Write ``video`` as one PoseTrack18 file at ``path`` (``<path>/<name>.json`` for a folder).

    The file is written atomically: it is either complete or absent (or left as it was).
    """
    path = Path(path)
    if path.is_dir():
        path = path / f"{video.name}.json"
    return write_json_atomic(video_to_posetrack18(video), path)


def write_posetrack18(dataset: Dataset, out_dir: str | Path, *, writer=write_video_posetrack18) -> list[Path]:
    """Write every video of ``dataset`` to ``out_dir/<video.name>.json``; returns the paths.

    ``writer(video, path)`` writes one file (PoseTrack21's writer reuses the checks here).
    """
    out_dir = Path(out_dir)
    names = [v.name for v in dataset.videos]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(
            out_dir,
            f"video names {repeated} repeat: one file per video needs unique names",
            field="Video.name",
        )
    unsafe = [n for n in names if not n or Path(n).name != n or n in (".", "..")]
    if unsafe:
        raise DataError(out_dir, f"video names {unsafe} are not plain file names", field="Video.name")
    out_dir.mkdir(parents=True, exist_ok=True)
    return [writer(v, out_dir / f"{v.name}.json") for v in dataset.videos]


__all__ = [
    "SKIP_EMPTY_POSE",
    "SKIP_NO_KEYPOINTS_FIELD",
    "keypoint_layout",
    "parse_posetrack18",
    "read_posetrack18",
    "video_to_posetrack18",
    "write_posetrack18",
    "write_video_posetrack18",
]
