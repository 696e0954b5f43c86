"""Detector and estimator outputs cached on disk, per frame and per (frame, box) (KeyTrack §3.3, A.4).

Table 2 (§4.3) runs six online methods over the same frames: the detector's boxes are the same in
every row, and many boxes given to the estimator recur (the detector's boxes in every row, the
propagated boxes of the TOKS rows wherever their previous poses agree). With a real network these
calls are what costs time, so they are computed once and kept, as pose-tracking toolkits such as
tracklab do with their detection and pose caches:

* :class:`FrameRef`: what the methods of :mod:`keytrack.toks` receive as ``image``: a key
  (``<group>/<frame>``), the pixels loaded on first use (a cached frame is never decoded or
  rendered) and an optional ``payload`` (the simulated frame that gives ground-truth boxes);
* :class:`ModelCache`: the stored outputs, one ``.npz`` file per group (video) under a folder,
  written atomically; each entry keeps the seconds the model took for it (a whole-frame detection,
  or a batch's time shared equally by its boxes), so timings survive a rerun from the cache;
* :class:`CachedDetector` / :class:`CachedEstimator`: wrap any
  :class:`~keytrack.estimators.base.Detector` / :class:`~keytrack.estimators.base.PoseEstimator`
  (which receive the ``[H, W, 3]`` image); the estimator is called once per frame with only the
  boxes not cached yet (one batch, as A.4), so a box's pose must not depend on the other boxes of
  the call (true of :class:`keytrack.estimators.yolo.YoloEstimator` up to float rounding).

A box is keyed by its ``x, y, w, h`` rounded to 0.01 px. The cache folder must be specific to the
models, their settings and the frames (the caller names it by a hash of those).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from keytrack.atomic import atomic_path
from keytrack.estimators.base import Detections, Detector, PoseEstimator, Poses
from keytrack.skeleton import NUM_JOINTS

__all__ = ["FrameRef", "ModelCache", "CachedDetector", "CachedEstimator", "box_keys"]


@dataclass
class FrameRef:
    """A frame handed to cached models: ``group`` (the video), ``key`` (unique within the group),
    ``load() -> [H, W, 3] uint8`` called at most once, on first access of :attr:`image`."""

    group: str
    key: str
    load: Callable[[], np.ndarray]
    payload: Any = None
    _image: np.ndarray | None = field(default=None, repr=False)

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            self._image = self.load()
        return self._image


def box_keys(boxes: np.ndarray) -> list[str]:
    """One string per ``[N, 4]`` box: its coordinates rounded to 0.01 px."""
    rounded = np.round(np.asarray(boxes, np.float64).reshape(-1, 4), 2) + 0.0  # no "-0.00"
    return [",".join(f"{v:.2f}" for v in row) for row in rounded]


class _Group:
    """The cached outputs of one group (video), as dicts; ``dirty`` when not yet written."""

    def __init__(self) -> None:
        self.det: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
        self.est: dict[str, tuple[np.ndarray, float, float]] = {}
        self.dirty = False


class ModelCache:
    """Detections per frame and poses per (frame, box), stored as ``directory/<group>.npz``.

    Groups are read on first use and written by :meth:`flush` (atomically, only those changed).
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._groups: dict[str, _Group] = {}

    def path(self, group: str) -> Path:
        if not group or "/" in group or group.startswith("."):
            raise ValueError(f"ModelCache: group {group!r} cannot name a file")
        return self.directory / f"{group}.npz"

    def group(self, name: str) -> _Group:
        if name in self._groups:
            return self._groups[name]
        g = _Group()
        path = self.path(name)
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    bounds = np.r_[0, np.cumsum(z["det_counts"])]
                    for i, k in enumerate(z["det_keys"].tolist()):
                        s, e = bounds[i], bounds[i + 1]
                        g.det[k] = (z["det_boxes"][s:e], z["det_scores"][s:e], float(z["det_seconds"][i]))
                    for k, kp, sc, sec in zip(
                        z["est_keys"].tolist(), z["est_keypoints"], z["est_scores"], z["est_seconds"]
                    ):
                        g.est[k] = (kp, float(sc), float(sec))
            except (OSError, ValueError, KeyError) as err:
                raise ValueError(
                    f"{path}: unreadable model cache ({type(err).__name__}: {err}); "
                    "delete it to compute these outputs again"
                ) from None
        self._groups[name] = g
        return g

    def flush(self) -> list[Path]:
        """Write every changed group; returns the files written."""
        written = []
        for name, g in self._groups.items():
            if not g.dirty:
                continue
            det = list(g.det.items())
            est = list(g.est.items())
            arrays = {
                "det_keys": np.array([k for k, _ in det], dtype=str),
                "det_counts": np.array([len(v[1]) for _, v in det], np.int64),
                "det_boxes": (
                    np.concatenate([v[0] for _, v in det]).reshape(-1, 4) if det else np.zeros((0, 4))
                ),
                "det_scores": np.concatenate([v[1] for _, v in det]) if det else np.zeros(0),
                "det_seconds": np.array([v[2] for _, v in det], np.float64),
                "est_keys": np.array([k for k, _ in est], dtype=str),
                "est_keypoints": (np.stack([v[0] for _, v in est]) if est else np.zeros((0, NUM_JOINTS, 3))),
                "est_scores": np.array([v[1] for _, v in est], np.float64),
                "est_seconds": np.array([v[2] for _, v in est], np.float64),
            }
            path = self.path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
            g.dirty = False
            written.append(path)
        return written


class CachedDetector:
    """``detect(frame: FrameRef)`` from the cache, else from ``inner.detect(frame.image)`` (stored).

    ``calls``: inner calls made by this object; ``model_seconds``: the model's seconds of every
    detection returned (stored ones included), ``frames``: detections returned.
    """

    def __init__(self, inner: Detector, cache: ModelCache):
        self.inner, self.cache = inner, cache
        self.calls = 0
        self.frames = 0
        self.model_seconds = 0.0

    def lookup(self, frame: FrameRef) -> Detections | None:
        """The stored detections of ``frame``, without computing them."""
        hit = self.cache.group(frame.group).det.get(frame.key)
        return None if hit is None else Detections(hit[0], hit[1])

    def detect(self, frame: FrameRef) -> Detections:
        g = self.cache.group(frame.group)
        hit = g.det.get(frame.key)
        if hit is None:
            t0 = time.perf_counter()
            det = self.inner.detect(frame.image)
            seconds = time.perf_counter() - t0
            self.calls += 1
            hit = (det.boxes.copy(), det.scores.copy(), seconds)
            g.det[frame.key] = hit
            g.dirty = True
        self.frames += 1
        self.model_seconds += hit[2]
        return Detections(hit[0], hit[1])


class CachedEstimator:
    """``estimate(frame: FrameRef, boxes)``: cached poses of boxes seen before in this frame, one
    ``inner.estimate(frame.image, new_boxes)`` batch for the others (stored).

    ``calls`` / ``boxes_computed``: inner calls and boxes estimated by this object;
    ``model_seconds``: the model's seconds of every pose returned (stored ones included).
    """

    def __init__(self, inner: PoseEstimator, cache: ModelCache):
        self.inner, self.cache = inner, cache
        self.calls = 0
        self.boxes_computed = 0
        self.model_seconds = 0.0

    def estimate(self, frame: FrameRef, boxes: np.ndarray) -> Poses:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        g = self.cache.group(frame.group)
        keys = [f"{frame.key}|{b}" for b in box_keys(boxes)]
        todo = [i for i, k in enumerate(keys) if k not in g.est]
        if todo:
            new = boxes[todo]
            t0 = time.perf_counter()
            poses = self.inner.estimate(frame.image, new)
            seconds = (time.perf_counter() - t0) / len(todo)
            if len(poses) != len(todo):
                raise ValueError(
                    f"{type(self.inner).__name__}.estimate returned {len(poses)} poses for "
                    f"{len(todo)} boxes (expected one per box)"
                )
            self.calls += 1
            self.boxes_computed += len(todo)
            for i, kp, sc in zip(todo, np.asarray(poses.keypoints, np.float64), poses.scores):
                g.est[keys[i]] = (kp.copy(), float(sc), seconds)
            g.dirty = True
        entries = [g.est[k] for k in keys]
        kp = np.stack([e[0] for e in entries]) if entries else np.zeros((0, NUM_JOINTS, 3))
        scores = np.array([e[1] for e in entries], np.float64)
        self.model_seconds += float(sum(e[2] for e in entries))
        return Poses(kp, boxes, scores)
