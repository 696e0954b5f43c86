"""boxmot's motion trackers as baselines of the tracker comparison (beyond the paper).

The trackers a practitioner installs with ``pip install boxmot`` (ByteTrack, OC-SORT, BoT-SORT,
HybridSORT, DeepOCSORT) track boxes with a Kalman filter per track; the paper compares only with
optical flow and a GCN (Figure 4). Here each is fed what keytrack's own tracker sees, as a boxmot user
would feed a pose estimator's output:

* one box per pose: the extent of its visible keypoints (``c > 0`` and ``c >=
  min_keypoint_confidence``) plus 10 % of the width and height on each side, and the pose's detection
  score (``Frame.scores``; 1 where unknown, as for ground truth);
* appearance (ReID) and camera-motion compensation off: keypoints only, as KeyTrack;
* every other setting at the tracker's own constructor default; only the association threshold
  (``match_thresh`` of ByteTrack and BoT-SORT, a largest ``1 - IoU`` cost; ``iou_threshold`` of the
  OC-SORT family, a smallest IoU) is set: at its default (``<name>_defaults``) or tuned on a training
  split as OKS's match threshold is (``<name>``, over :attr:`BoxmotMethod.grid`).

A pose the tracker does not report in its frame (not yet confirmed, below its detection threshold,
or unmatched) is left out of the output, as a boxmot user gets it: its joints count as misses in MOTA.
Each video gets a fresh tracker; frames go in in order, one ``update`` each (at a frame stride ``k``
the tracker sees every ``k``-th frame as its next one). boxmot is an optional extra (AGPL-3.0):
``pip install 'keytrack[baselines]'`` or ``make install-baselines``; it is imported on first use only.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings

import numpy as np

from keytrack.errors import InputError
from keytrack.poses import Dataset, Frame, Video

__all__ = [
    "BOXMOT_METHODS",
    "BOXMOT_TRACKERS",
    "BoxmotMethod",
    "BoxmotTracker",
    "boxmot_method",
    "pose_boxes",
]

BOX_MARGIN = 0.1  # of the keypoints' extent, added on each side
DEFAULTS = "_defaults"  # ``hybridsort_defaults``: the association threshold at boxmot's default
#: thresholds tuned over: smallest IoU (the OC-SORT family), largest 1 - IoU (ByteTrack, BoT-SORT)
IOU_GRID: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
COST_GRID: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)


@dataclasses.dataclass(frozen=True)
class BoxmotMethod:
    """One boxmot tracker: its class, the keyword of its association threshold, that keyword's default,
    the grid it is tuned over and the options that turn appearance and camera-motion compensation off."""

    cls: str
    threshold: str
    default: float
    grid: tuple[float, ...]
    options: tuple[tuple[str, object], ...] = ()


BOXMOT_TRACKERS: dict[str, BoxmotMethod] = {
    "bytetrack": BoxmotMethod("ByteTrack", "match_thresh", 0.8, COST_GRID),
    "ocsort": BoxmotMethod("OcSort", "iou_threshold", 0.3, IOU_GRID),
    "botsort": BoxmotMethod(
        "BotSort", "match_thresh", 0.8, COST_GRID, (("use_embeddings", False), ("use_cmc", False))
    ),
    "hybridsort": BoxmotMethod(
        "HybridSort", "iou_threshold", 0.3, IOU_GRID, (("use_embeddings", False), ("cmc_method", None))
    ),
    "deepocsort": BoxmotMethod(
        "DeepOcSort", "iou_threshold", 0.3, IOU_GRID, (("use_embeddings", False), ("cmc_off", True))
    ),
}
#: the method names of the tracker comparison: tuned (``bytetrack``) and at defaults (``bytetrack_defaults``)
BOXMOT_METHODS: tuple[str, ...] = (*BOXMOT_TRACKERS, *(f"{n}{DEFAULTS}" for n in BOXMOT_TRACKERS))


def boxmot_method(name: str | None) -> tuple[BoxmotMethod, bool] | None:
    """``(method, at_defaults)`` of a method name of :data:`BOXMOT_METHODS`, else None."""
    if name not in BOXMOT_METHODS:
        return None
    return BOXMOT_TRACKERS[name.removesuffix(DEFAULTS)], name.endswith(DEFAULTS)


def pose_boxes(keypoints: np.ndarray, min_keypoint_confidence: float = 0.0, margin: float = BOX_MARGIN):
    """``([P, 4] x1, y1, x2, y2, [P] bool)``: the box of each pose's visible keypoints, ``margin`` of its
    width and height added on each side, and which poses have a visible keypoint (others: NaN boxes)."""
    kp = np.asarray(keypoints, np.float64)
    c = kp[..., 2]
    seen = (c > 0) & (c >= min_keypoint_confidence) & np.isfinite(kp[..., :2]).all(-1)
    has = seen.any(axis=-1)
    x = np.where(seen, kp[..., 0], np.nan)
    y = np.where(seen, kp[..., 1], np.nan)
    with warnings.catch_warnings():  # all-NaN rows: poses without a visible keypoint
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = np.stack([np.nanmin(x, -1), np.nanmin(y, -1)], -1) if len(kp) else np.zeros((0, 2))
        hi = np.stack([np.nanmax(x, -1), np.nanmax(y, -1)], -1) if len(kp) else np.zeros((0, 2))
    pad = np.maximum(hi - lo, 1.0) * margin
    return np.concatenate([lo - pad, hi + pad], axis=-1), has


def _boxmot():
    try:
        import boxmot
    except ImportError as err:
        raise InputError(
            "the boxmot trackers need the optional `baselines` extra: pip install 'keytrack[baselines]' "
            f"(make install-baselines) ({err})"
        ) from None
    return boxmot


class BoxmotTracker:
    """A boxmot motion tracker on poses (module docstring). ``name``: a method of
    :data:`BOXMOT_TRACKERS` (or ``<name>_defaults``); ``threshold``: its association threshold (None:
    the default). ``frames_tracked`` and ``seconds`` add up the work of every :meth:`track_videos`."""

    def __init__(self, name: str, threshold: float | None = None, min_keypoint_confidence: float = 0.0):
        found = boxmot_method(name)
        if found is None:
            raise ValueError(f"BoxmotTracker: unknown tracker {name!r} (known: {', '.join(BOXMOT_METHODS)})")
        self.name, self.method = name, found[0]
        self.threshold = self.method.default if threshold is None else float(threshold)
        self.min_keypoint_confidence = float(min_keypoint_confidence)
        self._cls = getattr(_boxmot(), self.method.cls)
        self.frames_tracked, self.seconds = 0, 0.0

    def new_tracker(self):
        """A fresh boxmot tracker with this method's settings."""
        logging.getLogger("boxmot").setLevel(logging.WARNING)  # boxmot logs each tracker built at INFO
        return self._cls(**dict(self.method.options), **{self.method.threshold: self.threshold})

    def track_dataset(self, dataset: Dataset) -> Dataset:
        return Dataset(self.track_videos(dataset.videos), dict(dataset.skipped))

    def track_videos(self, videos: list[Video]) -> list[Video]:
        t0 = time.perf_counter()
        out = [self.track_video(v) for v in videos]
        self.frames_tracked += sum(len(v.frames) for v in videos)
        self.seconds += time.perf_counter() - t0
        return out

    def track_video(self, video: Video) -> Video:
        """A copy of ``video`` holding the poses the tracker reports, each with its track id."""
        tracker = self.new_tracker()
        frames = [self._step(tracker, frame) for frame in video.frames]
        return dataclasses.replace(video, frames=frames)

    def _step(self, tracker, frame: Frame) -> Frame:
        boxes, has = pose_boxes(frame.keypoints, self.min_keypoint_confidence)
        fed = np.flatnonzero(has)
        scores = np.nan_to_num(frame.scores[fed], nan=1.0)
        dets = np.concatenate([boxes[fed], scores[:, None], np.zeros((len(fed), 1))], axis=1)
        tracks = np.asarray(tracker.update(dets.reshape(-1, 6), None)).reshape(-1, 8)
        poses = fed[tracks[:, 7].astype(np.int64)]
        out = frame.select(poses)
        out.track_ids = tracks[:, 4].astype(np.int64)
        return out
