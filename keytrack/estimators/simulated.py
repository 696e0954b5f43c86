"""A simulated person detector and top-down pose estimator for ground-truth videos (KeyTrack §3.3, A.4).

TOKS (§3.3, Algorithm 1) exists to repair the two errors a top-down pipeline inherits from its
detector: *missed* boxes and *imperfect* boxes. Measuring it (Table 2) needs a detector and an
estimator; without images this module simulates both on ground truth, with the errors of the
seeded perturbation protocol of :mod:`keytrack.perturb` (``docs/perturbation.md``), so that
``Detector.detect`` / ``PoseEstimator.estimate`` (:mod:`keytrack.estimators.base`) can be called on
synthetic scenes or on any annotated dataset.

The "image" is a :class:`SimFrame`, a handle on frame ``position`` of a :class:`SimScene`. A scene
is one ground-truth video plus everything random about it, drawn once from
``SeedSequence([seed, video index])`` (the streams of :func:`keytrack.perturb.perturb`, so the
keypoint draws are the very draws of ``perturb(..., seed)``):

* **Detector** (:class:`SimulatedDetector`): each annotated person's box (its ground-truth box
  enlarged by ``box_extent`` per side, at least ``min_box_size`` head sizes) with the protocol's
  imperfect-box noise (centre shift ``box_shift``, log-scale ``box_scale``) plus, with probability
  ``bad_box_prob``, a gross box error (a badly placed box, §3.3's second error); persons are
  *missed* in runs over their track (the protocol's ``_missed`` with the detector's own
  ``miss_prob`` and ``miss_run_length``: small and occluded people more often); a detected person
  yields a *duplicate* box nearby with probability ``duplicate_prob``; and each labelled frame holds
  ``Poisson(phantom_rate)`` *phantoms*, person-like background (the protocol's clutter poses) that
  the detector boxes with low scores. Scores are ``sigmoid(score_bias + score_noise · N(0, 1))`` for
  people, lower for duplicates and phantoms, so the box-score threshold of A.4 (0.2) removes most
  phantoms.
* **Estimator** (:class:`SimulatedEstimator`): for each box, the person (or phantom) it covers best:
  the largest fraction of present keypoints inside the estimator's crop (the box enlarged by
  ``box_margin`` per side), ties by IoU, at least ``min_coverage``. A person's keypoints are the
  protocol's prediction from the person's draws through *that* crop: joints outside it land on its
  border, a worse crop (shift, scale against the person's box) means a larger inlier std
  (``box_jitter_gain``) and lower confidences (``crop_confidence_gain`` per unit of crop error
  above ``crop_tolerance``). Since the draws belong to the person, two boxes on the same person
  give the same errors up to the crop, as a deterministic network would. A box on a phantom gives
  the phantom's pose; a box covering nobody gives a junk pose (a template skeleton filling the
  box) of low confidence (``junk_confidence``).

Every call is deterministic: the same scene, frame and boxes give the same output, whatever was
asked before. ``docs/toks.md`` lists the knobs and what they yield.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, fields, replace
from typing import Iterator

import numpy as np

from keytrack.estimators.base import Detections, Poses
from keytrack.perturb import TEMPLATE_HEAD_SIZE, PerturbConfig, draws
from keytrack.poses import Dataset, Video, keypoint_boxes
from keytrack.skeleton import NUM_JOINTS
from keytrack.tracking.scorers import iou_matrix

__all__ = [
    "SimulatedConfig",
    "SimScene",
    "SimFrame",
    "SimulatedDetector",
    "SimulatedEstimator",
    "simulated_scenes",
]


@dataclass(frozen=True)
class SimulatedConfig:
    """Knobs of the simulated detector and estimator; keypoint errors come from ``perturb``.

    ``perturb`` supplies the estimator's keypoint errors and confidences, the imperfect-box noise
    (``box_shift``, ``box_scale``, ``box_margin``, ``box_jitter_gain``), the miss model's size and
    occlusion terms, and the duplicate and clutter shapes; the fields here are what a detector adds.
    """

    perturb: PerturbConfig = field(default_factory=PerturbConfig)
    # -- missed people (in runs; the protocol's formula with these two values) ------------------
    miss_prob: float = 0.045
    miss_run_length: float = 4.0
    # -- boxes: the annotated box enlarged by this fraction per side (a body extends beyond its
    #    joints), at least this many head sizes wide and high ... ---------------------------------
    box_extent: float = 0.1
    min_box_size: float = 2.0
    # -- ... with the protocol's small noise and, now and then, a gross error ---------------------
    bad_box_prob: float = 0.12
    bad_box_shift: float = 0.25  # std of the extra centre shift (fraction of the box size)
    bad_box_scale: float = 0.3  # std of the extra log scale
    # -- detection scores -----------------------------------------------------------------------
    score_bias: float = 2.5  # logit of a person's box score ...
    score_noise: float = 1.0  # ... plus this std
    duplicate_score_drop: float = 2.0  # logit drop of a duplicate box
    # -- false positives --------------------------------------------------------------------------
    duplicate_prob: float = 0.04
    phantom_rate: float = 2.0  # phantoms per labelled frame (Poisson)
    phantom_score: float = -1.4  # mean logit of a phantom's box score (≈ 0.2)
    # -- estimator --------------------------------------------------------------------------------
    min_coverage: float = 0.5  # fraction of a person's keypoints inside the crop
    crop_tolerance: float = 0.15  # crop error without confidence penalty ...
    crop_confidence_gain: float = 3.0  # ... and the logit penalty per unit of error above it
    junk_confidence: float = -4.5  # logit of the keypoints of a box covering nobody

    def __post_init__(self) -> None:
        probabilities = ("miss_prob", "bad_box_prob", "duplicate_prob", "min_coverage")
        signed = ("score_bias", "phantom_score", "junk_confidence")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "perturb":
                if not isinstance(value, PerturbConfig):
                    raise ValueError(
                        f"SimulatedConfig.perturb must be a PerturbConfig, got {type(value).__name__}"
                    )
                continue
            if not np.isfinite(value):
                raise ValueError(f"SimulatedConfig.{f.name} must be finite, got {value}")
            if f.name in probabilities and not 0 <= value <= 1:
                raise ValueError(f"SimulatedConfig.{f.name} is a probability, got {value}")
            if f.name not in signed and value < 0:
                raise ValueError(f"SimulatedConfig.{f.name} must be >= 0, got {value}")
        if self.miss_run_length < 1:
            raise ValueError(
                f"SimulatedConfig.miss_run_length must be >= 1 frame, got {self.miss_run_length}"
            )


def _box_from(box: np.ndarray, shift: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
    """``[N, 4]`` boxes ``box``, centres moved by ``shift`` (fraction of size), sizes scaled by ``exp``."""
    centre = box[:, :2] + box[:, 2:] / 2 + shift * box[:, 2:]
    size = box[:, 2:] * np.exp(log_scale)[:, None]
    return np.concatenate([centre - size / 2, size], -1)


def _by_frame(frame: np.ndarray, num_frames: int) -> np.ndarray:
    """``[F + 1]`` bounds of each frame's rows in arrays sorted by ``frame``."""
    return np.searchsorted(frame, np.arange(num_frames + 1))


class SimScene:
    """One ground-truth video and every random draw of the simulated detector and estimator on it.

    Built from ``SeedSequence([seed, index])`` split into the five streams of
    :func:`keytrack.perturb.perturb` (order, keypoints, boxes, misses, false positives) plus three
    of its own (box errors and scores, phantoms, junk); ``index`` is the video's position in its
    dataset, so a scene does not depend on the other videos.
    """

    def __init__(self, video: Video, index: int = 0, seed: int = 0, config: SimulatedConfig | None = None):
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"SimScene: seed must be a non-negative int, got {seed!r}")
        self.video, self.index, self.seed = video, int(index), int(seed)
        self.config = config or SimulatedConfig()
        streams = [np.random.default_rng(s) for s in np.random.SeedSequence([self.seed, self.index]).spawn(8)]
        _, rng_kp, rng_box, rng_miss, _, rng_det, rng_phantom, _ = streams
        self._annotated_people(rng_kp)
        person_det, person_score, bad = self._person_boxes(rng_box, rng_det)
        #: ``[N]`` bool: the detector outputs no box for this person in this frame
        self.missed = self._missed(rng_miss)
        self.bad_box = bad
        dup, dup_box, dup_score = self._duplicates(person_det, rng_det)
        phantom_frame, phantom_score = self._phantoms(rng_phantom)
        self._detections(person_det, person_score, dup, dup_box, dup_score, phantom_frame, phantom_score)

    def _annotated_people(self, rng_kp: np.random.Generator) -> None:
        """The annotated people with a present keypoint, the boxes the detector aims at, and the
        estimator's keypoint draws."""
        video, cfg = self.video, self.config
        pcfg = cfg.perturb
        frame, kp, tid, boxes, heads = draws.gather_poses(video)
        present = (kp[..., 2] > 0).any(1)
        frame, kp, tid = frame[present], kp[present], tid[present]
        boxes, heads = boxes[present], heads[present]
        gt_box = np.where(
            np.isfinite(boxes).all(1, keepdims=True) & (boxes[:, 2:] > 0).all(1, keepdims=True),
            boxes,
            keypoint_boxes(kp),
        )
        s = draws.fill_scale(
            draws.person_scale(kp, boxes, heads, pcfg.head_size_per_box_diagonal), video.height
        )
        #: annotated people, one row each, sorted by frame: keypoints, head size, track id, person box
        self.frame, self.keypoints, self.scale, self.track_ids = frame, kp, s, tid
        extent = cfg.box_extent * gt_box[:, 2:]
        gt_box = np.concatenate([gt_box[:, :2] - extent, gt_box[:, 2:] + 2 * extent], -1)
        self.person_box = draws.person_crop(gt_box, s, cfg.min_box_size)
        self.person_bounds = _by_frame(frame, len(video.frames))
        self.draws = draws.draw_keypoints(len(kp), pcfg, rng_kp)

    def _person_boxes(
        self, rng_box: np.random.Generator, rng_det: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each person's detector box (imperfect, now and then grossly wrong), its score, and
        whether the box is grossly wrong."""
        cfg = self.config
        pcfg, n = cfg.perturb, len(self.keypoints)
        shift = pcfg.box_shift * rng_box.standard_normal((n, 2))
        log_scale = pcfg.box_scale * rng_box.standard_normal(n)
        bad = rng_det.random(n) < cfg.bad_box_prob
        shift = shift + bad[:, None] * cfg.bad_box_shift * rng_det.standard_normal((n, 2))
        log_scale = log_scale + bad * cfg.bad_box_scale * rng_det.standard_normal(n)
        person_det = _box_from(self.person_box, shift, log_scale)
        person_score = draws.sigmoid(cfg.score_bias + cfg.score_noise * rng_det.standard_normal(n))
        return person_det, person_score, bad

    def _missed(self, rng_miss: np.random.Generator) -> np.ndarray:
        """``[N]`` bool: missed people, in runs over their track (small and occluded people more often)."""
        video, cfg = self.video, self.config
        pcfg, s, tid, n = cfg.perturb, self.scale, self.track_ids, len(self.keypoints)
        vis = self.keypoints[..., 2] > 0
        known_height = np.isfinite(video.height) and video.height > 0
        rel = s / video.height if known_height else np.full(n, pcfg.miss_size_ref)
        p_start = np.minimum(
            cfg.miss_prob
            * (pcfg.miss_size_ref / rel) ** pcfg.miss_size_power
            * (1 + pcfg.miss_occlusion_gain * (1 - vis.mean(1))),
            pcfg.miss_prob_max,
        )
        key = np.where(tid >= 0, tid, -1 - np.arange(n))
        return draws.missed(key, self.frame, p_start, rng_miss, cfg.miss_run_length)

    def _duplicates(
        self, person_det: np.ndarray, rng_det: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(dup, dup_box, dup_score)``: which detected people get a second box nearby, that box,
        and the noise of its score."""
        cfg = self.config
        pcfg, n = cfg.perturb, len(self.keypoints)
        u_dup = rng_det.random(n)
        dup_shift = rng_det.standard_normal((n, 2))
        dup_scale = pcfg.duplicate_scale * rng_det.standard_normal(n)
        dup_score = rng_det.standard_normal(n)
        dup = (u_dup < cfg.duplicate_prob) & ~self.missed
        height = self.person_box[:, 3:4]
        dup_box = person_det.copy()
        dup_box[:, :2] += pcfg.duplicate_shift * height * dup_shift
        dup_box = _box_from(dup_box, np.zeros((n, 2)), dup_scale)
        return dup, dup_box, dup_score

    def _phantoms(self, rng_phantom: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The protocol's clutter poses, boxed by the detector: ``(frame, score)`` of each box."""
        video, cfg = self.video, self.config
        pcfg = cfg.perturb
        labeled = np.array([f.is_labeled for f in video.frames], dtype=np.int64)
        phantoms = draws.clutter(
            video,
            labeled,
            self.scale,
            draws.frame_extent(video, self.keypoints),
            replace(pcfg, clutter_rate=cfg.phantom_rate),
            rng_phantom,
        )
        enough = (phantoms.keypoints[..., 2] > 0).sum(1) >= 2
        phantom_frame, phantom_kp = phantoms.frame[enough], phantoms.keypoints[enough]
        phantom_box = keypoint_boxes(phantom_kp)
        grow = 0.1 * phantom_box[:, 2:]
        phantom_box = np.concatenate([phantom_box[:, :2] - grow, phantom_box[:, 2:] + 2 * grow], -1)
        phantom_noise = rng_phantom.standard_normal(len(phantom_kp))
        phantom_score = draws.sigmoid(cfg.phantom_score + cfg.score_noise * phantom_noise)
        #: phantoms (person-like background) per frame: keypoints and boxes
        self.phantom_keypoints, self.phantom_box = phantom_kp, phantom_box
        self.phantom_bounds = _by_frame(phantom_frame, len(video.frames))
        return phantom_frame, phantom_score

    def _detections(
        self,
        person_det: np.ndarray,
        person_score: np.ndarray,
        dup: np.ndarray,
        dup_box: np.ndarray,
        dup_score: np.ndarray,
        phantom_frame: np.ndarray,
        phantom_score: np.ndarray,
    ) -> None:
        """The detector's output: people not missed, duplicates and phantoms, per frame by
        descending score."""
        kept = ~self.missed
        det_frame = np.r_[self.frame[kept], self.frame[dup], phantom_frame]
        det_box = np.concatenate([person_det[kept], dup_box[dup], self.phantom_box])
        dup_logit = draws.logit(person_score[dup]) - self.config.duplicate_score_drop + dup_score[dup]
        det_score = np.r_[person_score[kept], draws.sigmoid(dup_logit), phantom_score]
        #: 0 person, 1 duplicate, 2 phantom (for analysis)
        det_kind = np.r_[
            np.zeros(kept.sum(), np.int64),
            np.ones(dup.sum(), np.int64),
            np.full(len(self.phantom_keypoints), 2, np.int64),
        ]
        order = np.lexsort((-det_score, det_frame))
        self.det_frame, self.det_box, self.det_score, self.det_kind = (
            det_frame[order],
            det_box[order],
            det_score[order],
            det_kind[order],
        )
        self.det_bounds = _by_frame(self.det_frame, len(self.video.frames))

    def __len__(self) -> int:
        return len(self.video.frames)

    def frames(self) -> list["SimFrame"]:
        """A handle on every frame of the video, in order."""
        return [SimFrame(self, i) for i in range(len(self))]

    def rows(self, bounds: np.ndarray, position: int) -> slice:
        if not 0 <= position < len(self):
            raise ValueError(
                f"{self.video.source or self.video.name}: frame position {position} outside "
                f"0..{len(self) - 1}"
            )
        return slice(int(bounds[position]), int(bounds[position + 1]))


@dataclass(frozen=True)
class SimFrame:
    """The "image" the simulated models take: frame ``position`` (0-based) of ``scene``."""

    scene: SimScene
    position: int

    @property
    def index(self) -> int:
        """The frame's ``index`` in its video (PoseTrack's frame number)."""
        return self.scene.video.frames[self.position].index


def simulated_scenes(
    dataset: Dataset, seed: int = 0, config: SimulatedConfig | None = None
) -> Iterator[SimScene]:
    """One :class:`SimScene` per video of ``dataset`` (video ``i`` seeded by ``(seed, i)``), lazily."""
    for i, video in enumerate(dataset.videos):
        yield SimScene(video, i, seed, config)


def _as_sim_frame(image, who: str) -> SimFrame:
    if not isinstance(image, SimFrame):
        raise ValueError(f"{who}: expected a SimFrame (a frame of a SimScene), got {type(image).__name__}")
    return image


class SimulatedDetector:
    """``detect(SimFrame) -> Detections``: the scene's detector boxes of that frame, by descending score.

    ``ground_truth_boxes=True`` instead returns every annotated person's box (as the detector aims
    at it, without errors), score 1: Table 2's "GT" row. ``calls`` and ``boxes_returned`` count work.
    """

    def __init__(self, ground_truth_boxes: bool = False):
        self.ground_truth_boxes = bool(ground_truth_boxes)
        self.calls = 0
        self.boxes_returned = 0

    def detect(self, image) -> Detections:
        frame = _as_sim_frame(image, "SimulatedDetector.detect")
        scene = frame.scene
        if self.ground_truth_boxes:
            rows = scene.rows(scene.person_bounds, frame.position)
            out = Detections(scene.person_box[rows], np.ones(rows.stop - rows.start))
        else:
            rows = scene.rows(scene.det_bounds, frame.position)
            out = Detections(scene.det_box[rows], scene.det_score[rows])
        self.calls += 1
        self.boxes_returned += len(out)
        return out


class SimulatedEstimator:
    """``estimate(SimFrame, boxes [N, 4]) -> Poses``: one pose per box, as a top-down estimator.

    See the module docstring for how a box is assigned to a person, a phantom or nobody, and what
    comes out. ``Poses.boxes`` are the given boxes; ``Poses.scores`` the mean confidence of the
    pose's output keypoints. ``calls`` and ``boxes_estimated`` count work.
    """

    def __init__(self):
        self.calls = 0
        self.boxes_estimated = 0

    def estimate(self, image, boxes: np.ndarray) -> Poses:
        frame = _as_sim_frame(image, "SimulatedEstimator.estimate")
        scene, cfg = frame.scene, frame.scene.config
        pcfg = cfg.perturb
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if not np.isfinite(boxes).all():
            raise ValueError("SimulatedEstimator.estimate: boxes must be finite x, y, w, h")
        self.calls += 1
        self.boxes_estimated += len(boxes)
        n = len(boxes)
        if n == 0:
            return Poses()
        people = scene.rows(scene.person_bounds, frame.position)
        ph = scene.rows(scene.phantom_bounds, frame.position)
        cand_kp = np.concatenate([scene.keypoints[people], scene.phantom_keypoints[ph]])
        cand_box = np.concatenate([scene.person_box[people], scene.phantom_box[ph]])
        g = people.stop - people.start

        size = np.maximum(boxes[:, 2:], 1e-6)
        margin = 1 + 2 * pcfg.box_margin
        centre = boxes[:, :2] + size / 2
        lo, hi = centre - size * margin / 2, centre + size * margin / 2
        present = cand_kp[..., 2] > 0  # [C, 15]
        xy = cand_kp[None, :, :, :2]
        inside = ((xy >= lo[:, None, None]) & (xy <= hi[:, None, None])).all(-1) & present[None]  # [N, C, 15]
        coverage = inside.sum(-1) / np.maximum(present.sum(-1), 1)[None]
        fit = np.where(coverage >= cfg.min_coverage, coverage + iou_matrix(boxes, cand_box), -np.inf)
        best = np.argmax(fit, axis=1) if fit.shape[1] else np.zeros(n, np.int64)
        matched = np.isfinite(fit.max(1)) if fit.shape[1] else np.zeros(n, bool)

        # crop error against the chosen person's box: centre shift plus size ratio (log)
        target = cand_box[best] if fit.shape[1] else boxes
        shift = (centre - (target[:, :2] + target[:, 2:] / 2)) / np.maximum(target[:, 2:], 1e-6)
        log_ratio = np.log(size / np.maximum(target[:, 2:], 1e-6))
        error = np.hypot(*shift.T) + np.abs(log_ratio).mean(1)
        offset = -cfg.crop_confidence_gain * np.maximum(error - cfg.crop_tolerance, 0.0)

        out = np.zeros((n, NUM_JOINTS, 3))
        person = matched & (best < g)
        if person.any():
            idx = people.start + best[person]
            gain = 1 + pcfg.box_jitter_gain * error[person]
            out[person] = draws.estimate_keypoints(
                scene.keypoints[idx],
                scene.scale[idx],
                scene.draws.take(idx),
                pcfg,
                (lo[person], hi[person], gain),
                offset[person],
            )
        phantom = matched & (best >= g)
        if phantom.any():
            kp = cand_kp[best[phantom]].copy()
            kp[..., :2] = np.clip(kp[..., :2], lo[phantom][:, None], hi[phantom][:, None])
            c = draws.sigmoid(draws.logit(kp[..., 2]) + offset[phantom][:, None])
            kp[..., 2] = np.where(kp[..., 2] > 0, np.clip(c, 1e-3, 1.0), 0.0)
            kp[kp[..., 2] == 0] = 0.0
            out[phantom] = kp
        junk = ~matched
        if junk.any():
            out[junk] = self._junk(frame, boxes[junk], lo[junk], hi[junk])
        c = out[..., 2]
        emitted = c > 0
        scores = np.where(emitted.any(1), (c * emitted).sum(1) / np.maximum(emitted.sum(1), 1), 0.0)
        return Poses(out, boxes, scores)

    @staticmethod
    def _junk(frame: SimFrame, boxes: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Low-confidence template skeletons filling boxes that cover nobody (seeded by frame and boxes)."""
        scene, cfg = frame.scene, frame.scene.config
        pcfg = cfg.perturb
        digest = zlib.crc32(np.round(boxes, 1).tobytes())
        rng = np.random.default_rng([scene.seed, scene.index, frame.position, digest])
        m = len(boxes)
        height = boxes[:, 3]
        s = height * TEMPLATE_HEAD_SIZE
        t = draws.template(rng.random(m) < 0.5)
        top = boxes[:, 0] + boxes[:, 2] / 2 + 1j * boxes[:, 1]
        z = height[:, None] * t + top[:, None]
        jitter = rng.standard_normal((m, NUM_JOINTS, 2))
        xy = np.stack([z.real, z.imag], -1) + pcfg.clutter_sigma * s[:, None, None] * jitter
        xy = np.clip(xy, lo[:, None], hi[:, None])
        c = draws.sigmoid(cfg.junk_confidence + pcfg.confidence_noise * rng.standard_normal((m, NUM_JOINTS)))
        emitted = rng.random((m, NUM_JOINTS)) < pcfg.clutter_keep_prob
        out = np.concatenate([xy, np.clip(c, 1e-3, 1.0)[..., None]], -1)
        out[~emitted] = 0.0
        return out
