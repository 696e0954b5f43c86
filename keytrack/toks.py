"""Temporal OKS (TOKS, KeyTrack §3.3, Algorithm 1): estimating the poses of a frame online.

A top-down pipeline estimates one pose per detector box, so it inherits the detector's two errors
(§3.3): *missed* boxes (nobody estimates that person) and *imperfect* boxes (a shifted or
mis-scaled crop gives a poor pose). TOKS also estimates a pose in frame ``t`` from every pose of
frame ``t-1``, and decides by keypoints which pose to keep (Algorithm 1):

1. retrieve the box ``B`` enclosing ``p^{t-1}`` (the tight box of its keypoints) and dilate it by
   ``α`` about its centre (``alpha = 1.25``, A.1 / A.4);
2. estimate a new pose ``p'^t`` in ``F^t`` from ``B``;
3. compare ``p'^t`` with the poses ``p^t`` estimated from the detector's boxes by OKS
   (:func:`keytrack.tracking.scorers.oks_matrix`): at OKS ≥ ``oks_threshold`` (0.35, A.4) they are
   the same person and the pose with the higher mean keypoint confidence is kept (the box scores
   are ignored, A.4); otherwise ``p'^t`` is a person the detector missed and is added.

A.4's two thresholds, and where each acts here:

* ``box_score = 0.2``: detector boxes scoring below it are discarded before estimation (in every
  method). Propagated boxes carry no detector score and are never thresholded.
* ``keypoint_score = 0.1``: on every estimated pose, from detector or propagated boxes, keypoints
  below it are removed (``x, y, c = 0``) before OKS is computed; a pose left with no keypoint is
  dropped (so a propagated box on a person who left yields nothing).

The mean keypoint confidence that decides between two matched poses is the mean of ``c`` over
all 15 joints (a removed joint counts 0): a pose that lost joints to a bad crop loses.

Several propagated poses may match one detection: the best of them competes with it and the others
count as duplicates. Unmatched propagated poses are deduplicated among themselves the same way
(greedy by mean confidence, OKS ≥ ``oks_threshold``) before being added.

Methods with the same ``reset() / step(image) -> Poses / run(frames)`` API, Table 2's rows:

* :class:`DetectorOnly`: the poses of the detector's boxes ("Det.", or "GT" with a detector that
  returns ground-truth boxes);
* :class:`BoxPropagationNMS`: propagated boxes (same ``α``) added to the detector's boxes,
  non-maximum suppression on box scores (IoU ≥ ``nms_iou``; a propagated box scores the mean
  keypoint confidence of the pose it came from), then estimation: the box-propagation baseline
  §3.3 compares with ("Det. + Box Prop.");
* :class:`TOKS`: Algorithm 1 ("Det. + TOKS@OKS").

Each keeps :class:`MethodStats`: frames, boxes, poses, the poses TOKS recovered that the detector
missed, the duplicates it removed, and seconds per stage (detect / estimate / match).
:func:`toks_dataset` runs a method over every video of a ground-truth dataset with the simulated
models of :mod:`keytrack.estimators.simulated` and returns the untracked predictions
(``track_ids = -1``) for :func:`keytrack.evaluation.evaluate`.

Poses are handled as arrays over all poses of a frame (OKS matrix, argmax, scatter); only the
greedy suppression steps loop, once per kept pose.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np

from keytrack.estimators.base import Detections, Detector, PoseEstimator, Poses
from keytrack.poses import Dataset, Frame, Video, keypoint_boxes
from keytrack.skeleton import OKS_SIGMAS
from keytrack.tracking.scorers import iou_matrix, oks_matrix

__all__ = [
    "MethodStats",
    "TOKS",
    "DetectorOnly",
    "BoxPropagationNMS",
    "METHODS",
    "make_method",
    "toks_dataset",
    "dilate_boxes",
    "threshold_keypoints",
    "pose_confidence",
    "box_nms",
    "toks_merge",
]


# -- building blocks ------------------------------------------------------------------------------


def dilate_boxes(boxes: np.ndarray, alpha: float) -> np.ndarray:
    """``[N, 4]`` ``x, y, w, h`` boxes scaled by ``alpha`` about their centres (Algorithm 1, step 1)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    centre = boxes[:, :2] + boxes[:, 2:] / 2
    size = boxes[:, 2:] * alpha
    return np.concatenate([centre - size / 2, size], -1)


def threshold_keypoints(poses: Poses, keypoint_score: float) -> tuple[Poses, np.ndarray]:
    """A.4's keypoint threshold: keypoints with ``c < keypoint_score`` removed, empty poses dropped.

    Returns the kept poses and the ``[N]`` bool mask of the input poses kept.
    """
    kp = poses.keypoints.copy()
    low = kp[..., 2] < keypoint_score
    kp[low] = 0.0
    keep = (kp[..., 2] > 0).any(1)
    return Poses(kp[keep], poses.boxes[keep], poses.scores[keep]), keep


def pose_confidence(keypoints: np.ndarray) -> np.ndarray:
    """``[N]`` mean keypoint confidence over all joints (absent joints count 0), TOKS's pose score."""
    return np.asarray(keypoints, dtype=np.float64)[..., 2].clip(0, None).mean(-1)


def _greedy_suppress(similarity: np.ndarray, score: np.ndarray, threshold: float) -> np.ndarray:
    """``[N]`` bool: greedy suppression by descending ``score``; a pose is dropped when its similarity
    to a kept, higher-scoring one is ``>= threshold``. One iteration per kept pose."""
    n = len(score)
    keep = np.zeros(n, bool)
    alive = np.ones(n, bool)
    for i in np.argsort(-score, kind="stable"):
        if not alive[i]:
            continue
        keep[i] = True
        alive &= similarity[i] < threshold
    return keep


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """``[N]`` bool mask of the boxes non-maximum suppression keeps (IoU ≥ ``iou_threshold`` suppressed)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros(0, bool)
    return _greedy_suppress(iou_matrix(boxes, boxes), np.asarray(scores, np.float64), iou_threshold)


def _oks(a: np.ndarray, b: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """OKS of poses ``a`` against poses ``b``, scaled by the area of ``b``'s keypoint boxes."""
    return oks_matrix(a, b, keypoint_boxes(b), sigmas)


def toks_merge(
    detected: Poses, propagated: Poses, oks_threshold: float, sigmas: np.ndarray = OKS_SIGMAS
) -> tuple[Poses, dict[str, int]]:
    """Algorithm 1, step 3, for all poses of a frame at once.

    Each propagated pose is compared by OKS with every detected pose (the detected pose is the
    reference of :func:`oks_matrix`). Matched (OKS ≥ ``oks_threshold`` with its best detection):
    the higher mean keypoint confidence (:func:`pose_confidence`) of the pair stays, in the
    detection's slot. Unmatched: added, after suppressing duplicates among themselves.

    Returns the frame's poses (detections first, then the added ones) and counts: ``recovered``
    (added), ``duplicates`` (propagated poses removed as the same person as a kept pose) and
    ``replaced`` (detections replaced by their better propagated pose).
    """
    m, n = len(propagated), len(detected)
    if m == 0:
        return detected, {"recovered": 0, "duplicates": 0, "replaced": 0}
    conf_p = pose_confidence(propagated.keypoints)
    if n:
        oks = _oks(propagated.keypoints, detected.keypoints, sigmas)  # [M, N]
        best = oks.argmax(1)
        same = oks[np.arange(m), best] >= oks_threshold
    else:
        best, same = np.zeros(m, np.int64), np.zeros(m, bool)

    # the best-confidence propagated pose of each detection, if it beats the detection
    out_kp, out_boxes, out_scores = detected.keypoints.copy(), detected.boxes.copy(), detected.scores.copy()
    matched = np.flatnonzero(same)
    replaced = 0
    if len(matched):
        order = matched[np.lexsort((-conf_p[matched], best[matched]))]  # by detection, best first
        first = order[np.r_[True, best[order][1:] != best[order][:-1]]]
        target = best[first]
        better = conf_p[first] > pose_confidence(detected.keypoints[target])
        src, dst = first[better], target[better]
        out_kp[dst], out_boxes[dst], out_scores[dst] = (
            propagated.keypoints[src],
            propagated.boxes[src],
            propagated.scores[src],
        )
        replaced = int(better.sum())

    new = np.flatnonzero(~same)
    keep_new = (
        _greedy_suppress(
            _oks(propagated.keypoints[new], propagated.keypoints[new], sigmas), conf_p[new], oks_threshold
        )
        if len(new)
        else np.zeros(0, bool)
    )
    added = new[keep_new]
    merged = Poses(
        np.concatenate([out_kp, propagated.keypoints[added]]),
        np.concatenate([out_boxes, propagated.boxes[added]]),
        np.concatenate([out_scores, propagated.scores[added]]),
    )
    return merged, {
        "recovered": int(len(added)),
        "duplicates": int(len(matched) + (~keep_new).sum()),
        "replaced": replaced,
    }


# -- methods --------------------------------------------------------------------------------------


@dataclass
class MethodStats:
    """What a method did: counts over every frame since construction, and seconds per stage."""

    frames: int = 0
    detections: int = 0  # detector boxes at or above the box score
    propagated: int = 0  # boxes propagated from the previous frame
    estimated: int = 0  # boxes given to the estimator
    poses: int = 0  # poses output
    keypoint_dropped: int = 0  # estimated poses left with no keypoint above the keypoint score
    recovered: int = 0  # TOKS: propagated poses added (people the detector missed)
    duplicates: int = 0  # TOKS: propagated poses removed as the same person as a kept pose
    replaced: int = 0  # TOKS: detections replaced by a better propagated pose
    suppressed: int = 0  # box propagation: boxes removed by NMS
    detect_seconds: float = 0.0
    estimate_seconds: float = 0.0
    match_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Method:
    """Shared state of the online methods: the models, A.4's thresholds, the previous frame's poses."""

    name = "method"

    def __init__(
        self,
        detector: Detector,
        estimator: PoseEstimator,
        *,
        box_score: float = 0.2,
        keypoint_score: float = 0.1,
    ):
        for label, value in (("box_score", box_score), ("keypoint_score", keypoint_score)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{type(self).__name__}: {label} must lie in [0, 1], got {value}")
        self.detector, self.estimator = detector, estimator
        self.box_score, self.keypoint_score = float(box_score), float(keypoint_score)
        self.stats = MethodStats()
        self.previous = Poses()

    def reset(self) -> None:
        """Forget the previous frame (call at the start of every video); the stats are kept."""
        self.previous = Poses()

    def run(self, frames: Iterable[Any]) -> list[Poses]:
        """:meth:`reset`, then :meth:`step` on each frame of one video, in order."""
        self.reset()
        return [self.step(frame) for frame in frames]

    def step(self, image: Any) -> Poses:  # pragma: no cover - every method defines it
        raise NotImplementedError

    def _detect(self, image: Any) -> Detections:
        t0 = time.perf_counter()
        det = self.detector.detect(image)
        keep = det.scores >= self.box_score
        self.stats.detect_seconds += time.perf_counter() - t0
        self.stats.detections += int(keep.sum())
        return Detections(det.boxes[keep], det.scores[keep])

    def _estimate(self, image: Any, boxes: np.ndarray) -> tuple[Poses, np.ndarray]:
        """Poses of ``boxes`` (one batch) after the keypoint threshold, and the mask of boxes kept."""
        t0 = time.perf_counter()
        poses = self.estimator.estimate(image, boxes) if len(boxes) else Poses()
        if len(poses) != len(boxes):
            raise ValueError(
                f"{type(self.estimator).__name__}.estimate returned {len(poses)} poses for "
                f"{len(boxes)} boxes (expected one per box)"
            )
        self.stats.estimate_seconds += time.perf_counter() - t0
        self.stats.estimated += len(boxes)
        kept, mask = threshold_keypoints(poses, self.keypoint_score)
        self.stats.keypoint_dropped += int((~mask).sum())
        return kept, mask

    def _propagated_boxes(self, alpha: float) -> np.ndarray:
        boxes = dilate_boxes(keypoint_boxes(self.previous.keypoints), alpha)
        self.stats.propagated += len(boxes)
        return boxes

    def _finish(self, poses: Poses) -> Poses:
        self.previous = poses
        self.stats.frames += 1
        self.stats.poses += len(poses)
        return poses


class DetectorOnly(_Method):
    """Table 2's "Det." (or "GT" with a ground-truth detector): one pose per detector box."""

    name = "detector"

    def step(self, image: Any) -> Poses:
        det = self._detect(image)
        poses, _ = self._estimate(image, det.boxes)
        return self._finish(poses)


class BoxPropagationNMS(_Method):
    """Table 2's "Det. + Box Prop.": previous poses' boxes (dilated by ``alpha``) join the detector's,
    NMS on box scores (IoU ≥ ``nms_iou``), one pose per surviving box.

    A propagated box scores the mean keypoint confidence of the pose it comes from
    (:func:`pose_confidence`), so a confident detection of the same person wins.
    """

    name = "box_propagation"

    def __init__(
        self,
        detector: Detector,
        estimator: PoseEstimator,
        *,
        alpha: float = 1.25,
        nms_iou: float = 0.5,
        box_score: float = 0.2,
        keypoint_score: float = 0.1,
    ):
        super().__init__(detector, estimator, box_score=box_score, keypoint_score=keypoint_score)
        if not alpha > 0:
            raise ValueError(f"BoxPropagationNMS: alpha must be > 0, got {alpha}")
        if not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"BoxPropagationNMS: nms_iou must lie in (0, 1], got {nms_iou}")
        self.alpha, self.nms_iou = float(alpha), float(nms_iou)

    def step(self, image: Any) -> Poses:
        det = self._detect(image)
        t0 = time.perf_counter()
        prop = self._propagated_boxes(self.alpha)
        boxes = np.concatenate([det.boxes, prop])
        scores = np.r_[det.scores, pose_confidence(self.previous.keypoints)]
        keep = box_nms(boxes, scores, self.nms_iou)
        self.stats.suppressed += int((~keep).sum())
        self.stats.match_seconds += time.perf_counter() - t0
        poses, _ = self._estimate(image, boxes[keep])
        return self._finish(poses)


class TOKS(_Method):
    """Temporal OKS (§3.3, Algorithm 1), online: ``reset()`` per video, ``step(image) -> Poses`` per frame.

    Args:
        detector: ``detect(image) -> Detections`` (:class:`keytrack.estimators.base.Detector`).
        estimator: ``estimate(image, boxes) -> Poses``, one pose per box; called once per frame
            with the detector's boxes followed by the propagated ones (one batch, as A.4).
        alpha: dilation of the previous pose's keypoint box (A.1: 1.25).
        oks_threshold: OKS at or above which a propagated and a detected pose are the same person
            (A.4: 0.35).
        box_score: minimum detector box score (A.4: 0.2).
        keypoint_score: minimum keypoint confidence; poses left without keypoints are dropped
            (A.4: 0.1).
        sigmas: per-joint OKS constants (:data:`keytrack.skeleton.OKS_SIGMAS`).

    ``step`` returns the frame's poses: ``keypoints [N, 15, 3]`` with confidences, ``boxes`` (the
    box each pose was estimated in) and ``scores`` (the estimator's pose score); the detector's
    poses come first, in its order, then the recovered ones. They are the next frame's ``p^{t-1}``.
    """

    name = "toks"

    def __init__(
        self,
        detector: Detector,
        estimator: PoseEstimator,
        alpha: float = 1.25,
        oks_threshold: float = 0.35,
        box_score: float = 0.2,
        keypoint_score: float = 0.1,
        sigmas: np.ndarray = OKS_SIGMAS,
    ):
        super().__init__(detector, estimator, box_score=box_score, keypoint_score=keypoint_score)
        if not alpha > 0:
            raise ValueError(f"TOKS: alpha must be > 0, got {alpha}")
        if not 0.0 <= oks_threshold <= 1.0:
            raise ValueError(f"TOKS: oks_threshold must lie in [0, 1], got {oks_threshold}")
        self.alpha, self.oks_threshold = float(alpha), float(oks_threshold)
        self.sigmas = np.asarray(sigmas, dtype=np.float64)

    def step(self, image: Any) -> Poses:
        det = self._detect(image)
        prop_boxes = self._propagated_boxes(self.alpha)
        poses, kept = self._estimate(image, np.concatenate([det.boxes, prop_boxes]))
        n_det = int(kept[: len(det)].sum())
        detected, propagated = poses.take(slice(0, n_det)), poses.take(slice(n_det, None))
        t0 = time.perf_counter()
        merged, counts = toks_merge(detected, propagated, self.oks_threshold, self.sigmas)
        self.stats.match_seconds += time.perf_counter() - t0
        self.stats.recovered += counts["recovered"]
        self.stats.duplicates += counts["duplicates"]
        self.stats.replaced += counts["replaced"]
        return self._finish(merged)


#: Table 2's rows: method name -> (class, whether the detector returns ground-truth boxes).
METHODS: dict[str, tuple[type[_Method], bool]] = {
    "gt_boxes": (DetectorOnly, True),
    "detector": (DetectorOnly, False),
    "box_propagation": (BoxPropagationNMS, False),
    "toks": (TOKS, False),
}


def make_method(name: str, **kwargs) -> _Method:
    """A :data:`METHODS` entry with the simulated detector and estimator; ``kwargs`` go to the method."""
    from keytrack.estimators.simulated import SimulatedDetector, SimulatedEstimator

    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {list(METHODS)}")
    cls, gt_boxes = METHODS[name]
    return cls(SimulatedDetector(ground_truth_boxes=gt_boxes), SimulatedEstimator(), **kwargs)


def toks_dataset(
    gt: Dataset, method: str | _Method = "toks", seed: int = 0, config=None, **kwargs
) -> Dataset:
    """Predicted poses of every video of ``gt`` by ``method`` with the simulated models.

    ``method`` is a :data:`METHODS` name (``kwargs`` such as ``oks_threshold`` go to it) or a
    method built on :class:`~keytrack.estimators.simulated.SimulatedDetector` /
    :class:`~keytrack.estimators.simulated.SimulatedEstimator` (its ``stats`` then add up over the
    videos). Video ``i`` is simulated from ``(seed, i)`` with ``config``
    (:class:`~keytrack.estimators.simulated.SimulatedConfig`), so every method sees the same
    detector errors for a seed. Returns a :class:`~keytrack.poses.Dataset` with the same videos
    and frames, untracked (``track_ids = -1``), NaN head boxes.
    """
    from keytrack.estimators.simulated import simulated_scenes

    if isinstance(method, str):
        method = make_method(method, **kwargs)
    elif kwargs:
        raise ValueError(f"toks_dataset: options {sorted(kwargs)} need a method name, not an instance")
    videos = []
    for scene in simulated_scenes(gt, seed, config):
        video = scene.video
        method.reset()
        frames = []
        for sim_frame, f in zip(scene.frames(), video.frames):
            poses = method.step(sim_frame)
            p = len(poses)
            frames.append(
                Frame(
                    index=f.index,
                    keypoints=poses.keypoints,
                    track_ids=np.full(p, -1, np.int64),
                    boxes=poses.boxes,
                    head_boxes=np.full((p, 4), np.nan),
                    scores=poses.scores,
                    image_id=f.image_id,
                    file_name=f.file_name,
                    is_labeled=f.is_labeled,
                )
            )
        videos.append(
            Video(video.name, frames, video.width, video.height, video.source, video.frame_size_origin)
        )
    return Dataset(videos, dict(gt.skipped))
