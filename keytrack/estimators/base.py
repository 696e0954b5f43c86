"""What a person detector and a top-down pose estimator are to KeyTrack (§3.3, A.4).

KeyTrack's pipeline is top-down: a detector proposes person boxes in a frame, a pose estimator
estimates one pose in each box, TOKS (§3.3, Algorithm 1) adds boxes propagated from the previous
frame's poses, and the tracker (§3.1) links the poses over time. Any detector and any estimator
plug in through two calls:

* ``Detector.detect(image) -> Detections``: person boxes ``[N, 4]`` (``x, y, w, h`` in pixels of
  the frame) with scores ``[N]``.
* ``PoseEstimator.estimate(image, boxes [N, 4]) -> Poses``: one pose per box, keypoints
  ``[N, 15, 3]`` (``x, y, c``, PoseTrack joint order of :data:`keytrack.skeleton.JOINTS`, ``c`` the
  per-keypoint confidence), the boxes, and a pose score per box.

``image`` is whatever the frame source yields: an ``[H, W, 3]`` uint8 RGB array for real models,
or a frame handle for the simulated estimator of synthetic scenes (which needs no pixels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from keytrack.skeleton import NUM_JOINTS


@dataclass
class Detections:
    """Person boxes of one frame: ``boxes [N, 4]`` x, y, w, h and ``scores [N]``."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if len(self.scores) != len(self.boxes):
            raise ValueError(f"Detections: {len(self.boxes)} boxes but {len(self.scores)} scores")

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass
class Poses:
    """Poses of one frame: ``keypoints [N, 15, 3]``, ``boxes [N, 4]``, pose ``scores [N]``."""

    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_JOINTS, 3)))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
        n = len(self.keypoints)
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if len(self.boxes) != n or len(self.scores) != n:
            raise ValueError(f"Poses: {n} poses but {len(self.boxes)} boxes and {len(self.scores)} scores")

    def __len__(self) -> int:
        return len(self.keypoints)

    def take(self, keep) -> "Poses":
        """The poses that ``keep`` (bool mask or indices) selects."""
        return Poses(self.keypoints[keep], self.boxes[keep], self.scores[keep])

    @staticmethod
    def cat(parts: list["Poses"]) -> "Poses":
        if not parts:
            return Poses()
        return Poses(
            np.concatenate([p.keypoints for p in parts]),
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
        )


@runtime_checkable
class Detector(Protocol):
    """Person boxes of a frame."""

    def detect(self, image: Any) -> Detections: ...


@runtime_checkable
class PoseEstimator(Protocol):
    """One pose per given box (top-down)."""

    def estimate(self, image: Any, boxes: np.ndarray) -> Poses: ...
