"""The one in-memory pose form: videos of frames of poses.

Every reader (PoseTrack18, PoseTrack17, Bonn ``.mat``, synthetic scenes) produces these objects and
every writer consumes them; nothing downstream re-parses files. Arrays are numpy, one row per pose:

* ``keypoints``  ``[P, 15, 3]`` float: ``x, y, c`` in pixels of the original frame, joints in
  :data:`keytrack.skeleton.JOINTS` order. ``c`` is the visibility flag for ground truth (1/0) and
  the per-keypoint confidence for predictions; a keypoint is present when ``c > 0``.
* ``track_ids``  ``[P]`` int64, ``-1`` where unknown (untracked predictions).
* ``boxes``      ``[P, 4]`` float ``x, y, w, h`` person box (NaN where absent).
* ``head_boxes`` ``[P, 4]`` float ``x, y, w, h`` head box (NaN where absent; PoseTrack's
  evaluation derives the head size from it).
* ``scores``     ``[P]`` float pose (box) score, 1 for ground truth.

:meth:`Dataset.table` flattens a dataset into a :class:`PoseTable`, the columnar form that the
vectorised pair sampler and tokenizer work on.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from keytrack.skeleton import NUM_JOINTS


def _empty(shape: tuple[int, ...], fill: float = np.nan, dtype=np.float64) -> np.ndarray:
    return np.full(shape, fill, dtype=dtype)


@dataclass
class Frame:
    """One frame: its poses and the bookkeeping a PoseTrack file carries."""

    index: int  # position of the frame in its video (0-based)
    keypoints: np.ndarray = field(default_factory=lambda: _empty((0, NUM_JOINTS, 3), 0.0))
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    boxes: np.ndarray = field(default_factory=lambda: _empty((0, 4)))
    head_boxes: np.ndarray = field(default_factory=lambda: _empty((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    image_id: int | None = None  # the file's image id (PoseTrack18 ``images[].id``)
    file_name: str = ""  # image path as written in the annotation file
    is_labeled: bool = True  # PoseTrack's ``is_labeled``: False = not annotated
    ignore_regions: list[np.ndarray] = field(default_factory=list)  # polygons, each [N, 2] x, y

    def __post_init__(self) -> None:
        p = len(self.keypoints)
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64).reshape(p, NUM_JOINTS, 3)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(p)
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(p, 4)
        self.head_boxes = np.asarray(self.head_boxes, dtype=np.float64).reshape(p, 4)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(p)

    @property
    def num_poses(self) -> int:
        return len(self.keypoints)

    @property
    def visible(self) -> np.ndarray:
        """``[P, 15]`` bool: keypoint present (``c > 0``)."""
        return self.keypoints[..., 2] > 0

    def select(self, keep: np.ndarray) -> "Frame":
        """A copy holding only the poses where ``keep`` (bool mask or indices) selects."""
        return Frame(
            index=self.index,
            keypoints=self.keypoints[keep],
            track_ids=self.track_ids[keep],
            boxes=self.boxes[keep],
            head_boxes=self.head_boxes[keep],
            scores=self.scores[keep],
            image_id=self.image_id,
            file_name=self.file_name,
            is_labeled=self.is_labeled,
            ignore_regions=list(self.ignore_regions),
        )

    @staticmethod
    def from_poses(
        index: int, keypoints, track_ids=None, boxes=None, head_boxes=None, scores=None, **kwargs
    ) -> "Frame":
        """Build a frame, filling absent per-pose columns (boxes default to the keypoints' box)."""
        kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
        p = len(kp)
        return Frame(
            index=index,
            keypoints=kp,
            track_ids=np.full(p, -1) if track_ids is None else track_ids,
            boxes=keypoint_boxes(kp) if boxes is None else boxes,
            head_boxes=_empty((p, 4)) if head_boxes is None else head_boxes,
            scores=np.ones(p) if scores is None else scores,
            **kwargs,
        )


@dataclass
class Video:
    """A video: its frames in temporal order and the size of its images."""

    name: str
    frames: list[Frame]
    width: float
    height: float
    source: str = ""  # file it was read from (for error messages)
    frame_size_origin: str = ""  # "annotation", "image header", "default", "synthetic"

    @property
    def num_poses(self) -> int:
        return sum(f.num_poses for f in self.frames)


@dataclass
class PoseTable:
    """A dataset flattened into columns, one row per pose, sorted by (video, frame).

    ``video`` and ``frame`` are integer indices (``frame`` is the frame's ``index`` in its video),
    ``frame_size`` is ``[N, 2]`` (width, height) of the pose's video.
    """

    keypoints: np.ndarray  # [N, 15, 3]
    track_ids: np.ndarray  # [N]
    boxes: np.ndarray  # [N, 4]
    video: np.ndarray  # [N]
    frame: np.ndarray  # [N]
    frame_size: np.ndarray  # [N, 2]

    def __len__(self) -> int:
        return len(self.keypoints)


@dataclass
class Dataset:
    """A list of videos plus the report of what reading them skipped on purpose."""

    videos: list[Video]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count, never silent

    @property
    def num_poses(self) -> int:
        return sum(v.num_poses for v in self.videos)

    @property
    def num_frames(self) -> int:
        return sum(len(v.frames) for v in self.videos)

    def subset(self, names: list[str] | set[str]) -> "Dataset":
        keep = set(names)
        return Dataset([v for v in self.videos if v.name in keep], dict(self.skipped))

    def table(self) -> PoseTable:
        """Flatten to a :class:`PoseTable` (concatenation only: no per-pose Python)."""
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("kp", "tid", "box", "vid", "frm", "size")}
        for vi, video in enumerate(self.videos):
            for frame in video.frames:
                p = frame.num_poses
                if p == 0:
                    continue
                cols["kp"].append(frame.keypoints)
                cols["tid"].append(frame.track_ids)
                cols["box"].append(frame.boxes)
                cols["vid"].append(np.full(p, vi))
                cols["frm"].append(np.full(p, frame.index))
                cols["size"].append(np.tile([video.width, video.height], (p, 1)))
        if not cols["kp"]:
            return PoseTable(
                np.zeros((0, NUM_JOINTS, 3)),
                np.zeros(0, np.int64),
                np.zeros((0, 4)),
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
                np.zeros((0, 2)),
            )
        cat = {k: np.concatenate(v) for k, v in cols.items()}
        order = np.lexsort((cat["frm"], cat["vid"]))
        return PoseTable(
            cat["kp"][order],
            cat["tid"][order].astype(np.int64),
            cat["box"][order],
            cat["vid"][order].astype(np.int64),
            cat["frm"][order].astype(np.int64),
            cat["size"][order].astype(np.float64),
        )

    def report(self) -> str:
        """One line: what was read and what was skipped, with counts."""
        line = f"{len(self.videos)} videos, {self.num_frames} frames, {self.num_poses} poses"
        if self.skipped:
            line += "; skipped: " + ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        return line


def keypoint_boxes(keypoints: np.ndarray) -> np.ndarray:
    """``[P, 4]`` tight ``x, y, w, h`` boxes around each pose's present keypoints (NaN if none)."""
    kp = np.asarray(keypoints, dtype=np.float64)
    vis = kp[..., 2] > 0
    xs = np.where(vis, kp[..., 0], np.nan)
    ys = np.where(vis, kp[..., 1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": pose with no keypoint
        x0, y0 = np.nanmin(xs, axis=-1), np.nanmin(ys, axis=-1)
        x1, y1 = np.nanmax(xs, axis=-1), np.nanmax(ys, axis=-1)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=-1)
