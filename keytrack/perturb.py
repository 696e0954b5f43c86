"""Predicted poses without images: a seeded perturbation protocol (KeyTrack §4.2, §3.3, A.3).

KeyTrack's tracker only ever sees keypoints, so its accuracy depends on how good those keypoints
are. Figure 4 (§4.2) measures every tracker under three keypoint sources, and this module produces
the same three from ground truth, with no images and no pose estimator:

* ``gt_boxes_gt_keypoints``: the ground-truth keypoints themselves, confidence ``c = 1``
  (Figure 4's first block, AP = 100).
* ``gt_boxes_predicted_keypoints``: a top-down estimator run on every ground-truth person box:
  every annotated person is present, its keypoints are perturbed (Figure 4: AP 86.7, Table 2's
  "GT" row).
* ``predicted_boxes_predicted_keypoints``: the estimator run on detector boxes, which adds the two
  detector errors §3.3 names, *missed* boxes (a person missing for a run of frames) and *imperfect*
  boxes (a shifted / mis-scaled crop: joints outside it land on its border), plus false-positive
  poses (Figure 4: AP 81.6, Table 2's "Det. + TOKS" row).

Every length is measured in *head sizes* ``s``, the unit of PoseTrack's PCKh matching
(``s = 0.6 ·`` diagonal of the head box; a keypoint is correct within ``0.5 s``), so the
protocol behaves the same for near and far people. The predicted keypoint of a visible joint ``j``
of a person of head size ``s`` is

    ``x̂ = x_j + s · e``, ``e ~ N(0, σ_j² I)`` with probability ``1 - g_j``, else a gross error
    of log-normal length (median :attr:`PerturbConfig.gross_scale`) in a uniform direction,

with per-joint-group ``σ_j`` and ``g_j`` (:data:`JOINT_GROUPS`, Table 2's columns); a whole pose
is mirrored left/right with a small probability, as estimators confuse a person's sides. Visible
joints are dropped now and then (more often next to an occluded joint); joints that the ground
truth does not annotate are hallucinated with low confidence at the place a canonical skeleton
fitted to the visible joints puts them. The confidence of a keypoint falls with its error,

    ``c = sigmoid(a - b · ‖x̂ - x_j‖ / s + ε)``, ``ε ~ N(0, τ²)``,

so thresholding confidences removes the bad keypoints first, the trade-off between AP and MOTA
that A.3 / Table 4 reports. The pose (box) score is the mean keypoint confidence with noise, lower
still for false positives.

Predictions carry no track ids (``-1``; the tracker assigns them) and no head boxes (PoseTrack's
evaluation takes head sizes from the ground truth); ``keep_track_ids=True`` keeps the ground-truth
id on every pose that comes from an annotated person (false positives get ``-1``), for analysis.
Within a frame, poses are ordered by descending score, as a detector lists them.

Randomness: video ``i`` draws from ``SeedSequence([seed, i])`` alone, split into independent
streams per stage (pose order, keypoints, boxes, misses, false positives). A video's result
therefore does not depend on the other videos, and with the same seed the two predicted settings
share every keypoint draw: ``predicted_boxes_predicted_keypoints`` is
``gt_boxes_predicted_keypoints`` plus the detector's errors, so a difference between the two
measures the detector alone. The protocol and its calibration are described in
``docs/perturbation.md``.
"""
from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass, field, fields
from typing import Mapping

import numpy as np

from keytrack.poses import Dataset, Frame, Video, keypoint_boxes
from keytrack.skeleton import FLIP, JOINTS, LIMBS, NUM_JOINTS

__all__ = ["SETTINGS", "JOINT_GROUPS", "TEMPLATE", "PerturbConfig", "perturb", "person_scale", "fit_template",
           "with_oracle_track_ids", "evaluate_protocol", "add_arguments", "run"]

#: The three keypoint sources of Figure 4, in the paper's order.
SETTINGS: tuple[str, ...] = (
    "gt_boxes_gt_keypoints",
    "gt_boxes_predicted_keypoints",
    "predicted_boxes_predicted_keypoints",
)

#: Joint groups as Table 2 / Figure 4 report per-joint AP; per-joint knobs are set per group.
JOINT_GROUPS: dict[str, tuple[str, ...]] = {
    "head": ("nose", "head_bottom", "head_top"),
    "shoulder": ("left_shoulder", "right_shoulder"),
    "elbow": ("left_elbow", "right_elbow"),
    "wrist": ("left_wrist", "right_wrist"),
    "hip": ("left_hip", "right_hip"),
    "knee": ("left_knee", "right_knee"),
    "ankle": ("left_ankle", "right_ankle"),
}
_GROUP_OF_JOINT = np.array([next(i for i, js in enumerate(JOINT_GROUPS.values()) if j in js) for j in JOINTS])

#: A canonical standing person facing the camera, :data:`JOINTS` order, in units of its height
#: (x right, y down, head top at the origin; the person's left side is on the image's right).
TEMPLATE: np.ndarray = np.array([
    [0.00, 0.07], [0.00, 0.13], [0.00, 0.00],                   # nose, head_bottom, head_top
    [0.11, 0.19], [-0.11, 0.19], [0.14, 0.34], [-0.14, 0.34],   # shoulders, elbows (left, right)
    [0.15, 0.48], [-0.15, 0.48], [0.07, 0.52], [-0.07, 0.52],   # wrists, hips
    [0.08, 0.75], [-0.08, 0.75], [0.08, 0.97], [-0.08, 0.97],   # knees, ankles
])
#: PoseTrack head size of :data:`TEMPLATE` (``0.6 ·`` diagonal of a 0.10 × 0.13 head box).
TEMPLATE_HEAD_SIZE: float = 0.6 * float(np.hypot(0.10, 0.13))

#: ``[15, 15]`` bool: joints joined by a limb of :data:`keytrack.skeleton.LIMBS`.
_ADJACENT = np.zeros((NUM_JOINTS, NUM_JOINTS), bool)
_ADJACENT[tuple(np.array(LIMBS).T)] = True
_ADJACENT |= _ADJACENT.T


def _groups(**values: float) -> dict[str, float]:
    return {g: float(values[g]) for g in JOINT_GROUPS}


@dataclass(frozen=True)
class PerturbConfig:
    """Every knob of the protocol. Lengths are in head sizes ``s`` unless a field says otherwise.

    The defaults aim at the paper's operating points (Figure 4 / Table 2: per-joint AP ≈ 86.7 with
    ground-truth boxes, ≈ 81.6 with predicted boxes; Table 4: a confidence threshold trades AP for
    MOTA); ``docs/perturbation.md`` lists what they yield.
    """

    # -- person size ------------------------------------------------------------------------------
    #: head size per person-box diagonal, used when a pose has no head box (ratio of
    #: :data:`TEMPLATE`, ≈ 0.1).
    head_size_per_box_diagonal: float = 0.1

    # -- keypoint localisation (both predicted settings) ------------------------------------------
    #: per-axis std of the inlier error, per joint group (Table 2's columns: wrists and ankles
    #: worse than shoulders; hips ambiguous to annotate, hence also loose).
    joint_sigma: Mapping[str, float] = field(default_factory=lambda: _groups(
        head=0.12, shoulder=0.12, elbow=0.14, wrist=0.17, hip=0.18, knee=0.15, ankle=0.17))
    #: probability of a gross error instead of an inlier error, per joint group.
    gross_prob: Mapping[str, float] = field(default_factory=lambda: _groups(
        head=0.045, shoulder=0.05, elbow=0.075, wrist=0.10, hip=0.11, knee=0.085, ankle=0.09))
    #: median length of a gross error (log-normal), and the std of its log.
    gross_scale: float = 1.5
    gross_spread: float = 0.5
    #: probability that a pose's left and right joints swap places (front/back confusion).
    swap_prob: float = 0.02

    # -- dropped and hallucinated joints ----------------------------------------------------------
    #: probability that a visible joint is not output at all ...
    drop_prob: float = 0.02
    #: ... times ``1 + drop_boundary_gain`` when a limb neighbour of the joint is not annotated.
    drop_boundary_gain: float = 2.0
    #: probability that a joint the ground truth does not annotate is output anyway ...
    hallucinate_prob: float = 0.9
    #: ... at the fitted :data:`TEMPLATE`'s position plus this per-axis std.
    hallucinate_sigma: float = 0.75

    # -- confidences --------------------------------------------------------------------------------
    #: ``c = sigmoid(confidence_bias - confidence_error_gain · error / s + N(0, confidence_noise²))``
    confidence_bias: float = 2.2
    confidence_error_gain: float = 3.0
    confidence_noise: float = 1.0
    #: logit of a hallucinated joint's confidence (plus the same noise).
    hallucinate_confidence: float = -0.25
    #: std of the logit noise of the pose score around the pose's mean keypoint confidence.
    score_noise: float = 0.3

    # -- imperfect boxes (predicted boxes only) ---------------------------------------------------
    #: the estimator's crop: the person box enlarged by this fraction per side ...
    box_margin: float = 0.2
    #: ... whose centre is off by this std (fraction of the box's width / height) ...
    box_shift: float = 0.04
    #: ... and whose size is off by this std of its log. Joints outside the crop land on its edge.
    box_scale: float = 0.08
    #: inlier std multiplier ``1 + box_jitter_gain · (‖shift‖ + |log scale|)``: a worse crop, a
    #: worse estimate.
    box_jitter_gain: float = 0.5

    # -- missed poses (predicted boxes only) ------------------------------------------------------
    #: probability that a run of misses starts at a pose of a person of head size
    #: ``miss_size_ref`` (fraction of the frame height) with every joint visible ...
    miss_prob: float = 0.012
    miss_size_ref: float = 0.03
    #: ... times ``(miss_size_ref / relative head size) ** miss_size_power`` (small people are
    #: missed more) ...
    miss_size_power: float = 1.0
    #: ... times ``1 + miss_occlusion_gain · fraction of joints not annotated``, at most
    #: ``miss_prob_max``.
    miss_occlusion_gain: float = 2.0
    miss_prob_max: float = 0.5
    #: mean length of a run of misses, in the person's consecutive annotated frames (geometric).
    miss_run_length: float = 3.0

    # -- false positives (predicted boxes only) ---------------------------------------------------
    #: probability that a detected person also yields a duplicate pose nearby ...
    duplicate_prob: float = 0.04
    #: ... shifted by this std (fraction of the person's height), scaled by this std of the log,
    #: each joint moved by ``duplicate_sigma`` head sizes, confidences' logits lowered by
    #: ``duplicate_confidence_drop``.
    duplicate_shift: float = 0.15
    duplicate_scale: float = 0.15
    duplicate_sigma: float = 0.5
    duplicate_confidence_drop: float = 1.5
    #: mean number of background-clutter poses per annotated frame (Poisson) ...
    clutter_rate: float = 1.0
    #: ... each a randomly posed :data:`TEMPLATE` of a size seen in the video, anywhere in the
    #: frame, outputting each joint with ``clutter_keep_prob``, moved by ``clutter_sigma`` head
    #: sizes, confidence logits ``clutter_confidence`` (plus noise).
    clutter_keep_prob: float = 0.6
    clutter_sigma: float = 0.5
    clutter_confidence: float = -0.5
    #: how much lower (logit) a false positive's pose score is than its keypoints suggest.
    fp_score_penalty: float = 1.0

    def __post_init__(self) -> None:
        for name in ("joint_sigma", "gross_prob"):
            value = getattr(self, name)
            if set(value) != set(JOINT_GROUPS):
                raise ValueError(f"PerturbConfig.{name} must have exactly the joint groups "
                                 f"{list(JOINT_GROUPS)}, got {sorted(value)}")
            bad = {g: v for g, v in value.items() if not np.isfinite(v) or v < 0
                   or (name == "gross_prob" and v > 1)}
            if bad:
                raise ValueError(f"PerturbConfig.{name} has out-of-range values {bad}")
        probabilities = {"swap_prob", "drop_prob", "hallucinate_prob", "miss_prob", "miss_prob_max",
                         "duplicate_prob", "clutter_keep_prob"}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                continue
            if not np.isfinite(value):
                raise ValueError(f"PerturbConfig.{f.name} must be finite, got {value}")
            if f.name in probabilities and not 0 <= value <= 1:
                raise ValueError(f"PerturbConfig.{f.name} is a probability, got {value}")
            signed = {"confidence_bias", "hallucinate_confidence", "clutter_confidence"}
            if f.name not in signed and value < 0:
                raise ValueError(f"PerturbConfig.{f.name} must be >= 0, got {value}")
        if self.miss_run_length < 1:
            raise ValueError(f"PerturbConfig.miss_run_length must be >= 1 frame, got {self.miss_run_length}")
        if self.head_size_per_box_diagonal <= 0 or self.miss_size_ref <= 0:
            raise ValueError("PerturbConfig.head_size_per_box_diagonal and miss_size_ref must be > 0")

    def per_joint(self, name: str) -> np.ndarray:
        """``[15]`` values of a per-group knob (``joint_sigma`` or ``gross_prob``) per joint."""
        return np.array(list(getattr(self, name).values()))[_GROUP_OF_JOINT]


# -- geometry -------------------------------------------------------------------------------------

def _box_diagonal(boxes: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        diag = np.hypot(boxes[:, 2], boxes[:, 3])
    return np.where(np.isfinite(diag) & (diag > 0), diag, np.nan)


def person_scale(keypoints: np.ndarray, boxes: np.ndarray, head_boxes: np.ndarray,
                 head_size_per_box_diagonal: float = 0.1) -> np.ndarray:
    """``[P]`` head size ``s`` of each pose in pixels, the unit of PoseTrack's PCKh (NaN if unknown).

    ``0.6 ·`` the head box's diagonal where there is a head box (as PoseTrack's evaluation
    computes it), else ``head_size_per_box_diagonal ·`` the diagonal of the person box, else of
    the tight box around the present keypoints (NaN when fewer than two distinct keypoints).
    """
    s = 0.6 * _box_diagonal(np.asarray(head_boxes, np.float64).reshape(-1, 4))
    for box in (np.asarray(boxes, np.float64).reshape(-1, 4), keypoint_boxes(keypoints)):
        s = np.where(np.isnan(s), head_size_per_box_diagonal * _box_diagonal(box), s)
    return s


def fit_template(keypoints: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place :data:`TEMPLATE` on each pose, to put joints the annotation lacks somewhere plausible.

    Returns ``(a, b, mirrored)``, each ``[P]``: the template joint ``(tx, ty)`` lands at
    ``a · (±tx + i·ty) + b`` in the image (complex ``a`` = scale and rotation, ``b`` = offset,
    ``-tx`` where ``mirrored``, a person seen from behind). With two or more present keypoints it
    is the least-squares similarity transform from the template or its mirror image, whichever
    fits better. A fit whose scale disagrees with ``scale`` (head size in pixels) by more than a
    factor 3 (e.g. two nearby joints only), or a pose with a single keypoint, gets the upright
    template of that head size centred on the present keypoints instead.
    """
    kp = np.asarray(keypoints, np.float64)
    w = (kp[..., 2] > 0).astype(np.float64)                          # [P, 15]
    n = w.sum(1)
    z = np.where(w > 0, kp[..., 0] + 1j * kp[..., 1], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_z = (w * z).sum(1) / n
        fits = []
        for sign in (1, -1):                                          # template, mirror image
            t = sign * TEMPLATE[:, 0] + 1j * TEMPLATE[:, 1]
            tc, zc = t - (w * t).sum(1, keepdims=True) / n[:, None], z - mean_z[:, None]
            a = (w * np.conj(tc) * zc).sum(1) / (w * np.abs(tc) ** 2).sum(1)
            fits.append((a, (w * np.abs(zc - a[:, None] * tc) ** 2).sum(1)))
        (a0, r0), (a1, r1) = fits
        mirrored = r1 < r0
        a = np.where(mirrored, a1, a0)
        expected = np.asarray(scale, np.float64) / TEMPLATE_HEAD_SIZE
        ratio = np.abs(a) / expected
        ok = (n >= 2) & np.isfinite(a) & (ratio > 1 / 3) & (ratio < 3)
        a = np.where(ok, a, expected + 0j)
        mirrored &= ok
        b = mean_z - a * (w * _template(mirrored)).sum(1) / n
    return a, b, mirrored


def _template(mirrored: np.ndarray) -> np.ndarray:
    """``[P, 15]`` complex template joints, mirrored (x → -x) where ``mirrored``."""
    return np.where(mirrored[:, None], -TEMPLATE[:, 0], TEMPLATE[:, 0]) + 1j * TEMPLATE[:, 1]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


# -- one video ------------------------------------------------------------------------------------

@dataclass
class _Poses:
    """Predicted poses of one video as columns (one row per pose)."""

    frame: np.ndarray       # [N] position in video.frames
    keypoints: np.ndarray   # [N, 15, 3]
    boxes: np.ndarray       # [N, 4]
    scores: np.ndarray      # [N]
    track_ids: np.ndarray   # [N]

    @staticmethod
    def cat(parts: list["_Poses"]) -> "_Poses":
        return _Poses(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(_Poses)))

    def take(self, keep: np.ndarray) -> "_Poses":
        return _Poses(*(getattr(self, f.name)[keep] for f in fields(_Poses)))


def _gather(video: Video) -> tuple[np.ndarray, ...]:
    """Concatenate a video's poses; check that every present keypoint has finite coordinates."""
    counts = np.array([f.num_poses for f in video.frames], dtype=np.int64)
    frame = np.repeat(np.arange(len(video.frames)), counts)
    if counts.sum() == 0:
        return (frame, np.zeros((0, NUM_JOINTS, 3)), np.zeros(0, np.int64), np.zeros((0, 4)),
                np.zeros((0, 4)))
    kp = np.concatenate([f.keypoints for f in video.frames])
    tid = np.concatenate([f.track_ids for f in video.frames])
    boxes = np.concatenate([f.boxes for f in video.frames])
    heads = np.concatenate([f.head_boxes for f in video.frames])
    bad = ((kp[..., 2] > 0) & ~np.isfinite(kp[..., :2]).all(-1)) | ~np.isfinite(kp[..., 2])
    if bad.any():
        row, joint = np.argwhere(bad)[0]
        pose = row - np.searchsorted(frame, frame[row])
        where = f"{video.source or video.name}: frame {video.frames[frame[row]].index}, pose {pose}"
        raise ValueError(f"{where}: "
                         f"field 'keypoints', joint {JOINTS[joint]} has x, y, c = {kp[row, joint].tolist()} "
                         "(a present keypoint needs finite x, y; c must be finite)")
    return frame, kp, tid, boxes, heads


def _fill_scale(s: np.ndarray, frame_height: float) -> np.ndarray:
    """Head sizes with unknown entries set to the video's median (or 3 % of the frame height)."""
    known = np.isfinite(s)
    if known.all():
        return s
    fallback = np.median(s[known]) if known.any() else (
        0.03 * frame_height if np.isfinite(frame_height) and frame_height > 0 else 10.0)
    return np.where(known, s, fallback)


@dataclass
class _KeypointDraws:
    """Every random number the estimator's keypoint errors of ``N`` poses need (one row per pose).

    Drawn once per pose, whatever box the estimator is later given: the same person in the same
    frame yields the same errors through any crop (:mod:`keytrack.estimators.simulated` relies on it).
    """

    inlier: np.ndarray       # [N, 15, 2] standard normal
    u_gross: np.ndarray      # [N, 15]
    gross_len: np.ndarray    # [N, 15] head sizes
    gross_dir: np.ndarray    # [N, 15] radians
    u_swap: np.ndarray       # [N]
    u_drop: np.ndarray       # [N, 15]
    u_hall: np.ndarray       # [N, 15]
    hall_noise: np.ndarray   # [N, 15, 2] standard normal
    conf_noise: np.ndarray   # [N, 15] standard normal

    def take(self, index: np.ndarray) -> "_KeypointDraws":
        return _KeypointDraws(*(getattr(self, f.name)[index] for f in fields(_KeypointDraws)))


def _draw_keypoints(n: int, cfg: PerturbConfig, rng_kp: np.random.Generator) -> _KeypointDraws:
    """The keypoint draws of ``n`` poses, in the stream order the protocol has always used."""
    # Every draw is made for every pose and joint, so the keypoint stream is the same in both
    # predicted settings (and for any knob values).
    inlier = rng_kp.standard_normal((n, NUM_JOINTS, 2))
    u_gross = rng_kp.random((n, NUM_JOINTS))
    gross_len = cfg.gross_scale * np.exp(cfg.gross_spread * rng_kp.standard_normal((n, NUM_JOINTS)))
    gross_dir = rng_kp.uniform(0, 2 * np.pi, (n, NUM_JOINTS))
    u_swap = rng_kp.random(n)
    u_drop = rng_kp.random((n, NUM_JOINTS))
    u_hall = rng_kp.random((n, NUM_JOINTS))
    hall_noise = rng_kp.standard_normal((n, NUM_JOINTS, 2))
    conf_noise = rng_kp.standard_normal((n, NUM_JOINTS))
    return _KeypointDraws(inlier, u_gross, gross_len, gross_dir, u_swap, u_drop, u_hall, hall_noise,
                          conf_noise)


def _crop_of(person_box: np.ndarray, shift: np.ndarray, log_scale: np.ndarray,
             cfg: PerturbConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """§3.3's imperfect box: ``(lo [N, 2], hi [N, 2], inlier std gain [N])`` of the estimator's crop.

    The crop is ``person_box`` enlarged by :attr:`PerturbConfig.box_margin` per side, its centre
    moved by ``shift`` (fraction of the box's width / height) and its size scaled by
    ``exp(log_scale)``; a worse crop multiplies the inlier std by
    ``1 + box_jitter_gain · (‖shift‖ + |log scale|)``.
    """
    gain = 1 + cfg.box_jitter_gain * (np.hypot(*shift.T) + np.abs(log_scale))
    margin = 1 + 2 * cfg.box_margin
    centre = person_box[:, :2] + person_box[:, 2:] / 2 + shift * person_box[:, 2:]
    half = person_box[:, 2:] * margin * np.exp(log_scale)[:, None] / 2
    return centre - half, centre + half, gain


def _estimate_keypoints(kp: np.ndarray, s: np.ndarray, draws: _KeypointDraws, cfg: PerturbConfig,
                        crop: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                        confidence_offset: np.ndarray | None = None) -> np.ndarray:
    """``[N, 15, 3]`` predicted keypoints of annotated poses ``kp`` from their ``draws``.

    ``crop = (lo, hi, gain)`` (:func:`_crop_of`) confines the predictions to the crop and scales
    the inlier std by ``gain``; without it the estimator sees the whole person (ground-truth
    boxes). ``confidence_offset [N]`` is added to every confidence logit of a pose.
    """
    n = len(kp)
    vis = kp[..., 2] > 0
    xy = np.where(vis[..., None], kp[..., :2], 0.0)
    sigma = np.broadcast_to(cfg.per_joint("joint_sigma"), (n, NUM_JOINTS)).copy()
    if crop is not None:
        lo, hi, gain = crop
        sigma *= gain[:, None]
    error = sigma[..., None] * draws.inlier
    gross = draws.u_gross < cfg.per_joint("gross_prob")
    gross_vec = draws.gross_len[..., None] * np.stack([np.cos(draws.gross_dir), np.sin(draws.gross_dir)], -1)
    error = np.where(gross[..., None], gross_vec, error)
    swap = (draws.u_swap < cfg.swap_prob)[:, None] & vis & vis[:, FLIP]
    source = np.where(swap, FLIP, np.arange(NUM_JOINTS))
    pred = np.take_along_axis(xy, source[..., None], axis=1) + s[:, None, None] * error
    if crop is not None:   # a heatmap estimator cannot point outside its crop
        pred = np.clip(pred, lo[:, None, :], hi[:, None, :])
    err = np.linalg.norm(pred - xy, axis=-1) / s[:, None]
    logit = cfg.confidence_bias - cfg.confidence_error_gain * err + cfg.confidence_noise * draws.conf_noise
    hall_logit = cfg.hallucinate_confidence + cfg.confidence_noise * draws.conf_noise
    if confidence_offset is not None:
        logit = logit + confidence_offset[:, None]
        hall_logit = hall_logit + confidence_offset[:, None]
    conf = _sigmoid(logit)

    boundary = (~vis).astype(np.float64) @ _ADJACENT.astype(np.float64) > 0
    dropped = vis & (draws.u_drop < cfg.drop_prob * (1 + cfg.drop_boundary_gain * boundary))
    a, b, mirrored = fit_template(kp, s)
    plausible = a[:, None] * _template(mirrored) + b[:, None]
    plausible = np.stack([plausible.real, plausible.imag], -1) + \
        cfg.hallucinate_sigma * s[:, None, None] * draws.hall_noise
    hallucinated = ~vis & (draws.u_hall < cfg.hallucinate_prob)
    if crop is not None:
        plausible = np.clip(plausible, lo[:, None, :], hi[:, None, :])
    hall_conf = _sigmoid(hall_logit)

    # an estimator given a box always outputs a pose: never drop a pose's last joint
    emptied = ~((vis & ~dropped) | hallucinated).any(1)
    best = np.argmax(np.where(vis, conf, -1.0), axis=1)
    dropped[emptied, best[emptied]] = False

    out = np.zeros_like(kp)
    out[..., :2] = np.where(hallucinated[..., None], plausible, pred)
    out[..., 2] = np.where(hallucinated, hall_conf, conf)
    emitted = (vis & ~dropped) | hallucinated
    out[~emitted] = 0.0
    out[..., 2] = np.where(emitted, np.clip(out[..., 2], 1e-3, 1.0), 0.0)
    return out


def _predict_keypoints(kp: np.ndarray, s: np.ndarray, person_box: np.ndarray, predicted_boxes: bool,
                       cfg: PerturbConfig, rng_kp: np.random.Generator,
                       rng_box: np.random.Generator) -> np.ndarray:
    """``[N, 15, 3]`` predicted keypoints of the annotated poses (§4.2's "predicted keypoints")."""
    n = len(kp)
    draws = _draw_keypoints(n, cfg, rng_kp)
    crop = None
    if predicted_boxes:   # §3.3's imperfect boxes: a shifted, mis-scaled crop
        shift = cfg.box_shift * rng_box.standard_normal((n, 2))
        log_scale = cfg.box_scale * rng_box.standard_normal(n)
        crop = _crop_of(person_box, shift, log_scale, cfg)
    return _estimate_keypoints(kp, s, draws, cfg, crop)


def _person_crop(gt_box: np.ndarray, s: np.ndarray, min_size: float = 4.0) -> np.ndarray:
    """``[N, 4]`` the box an estimator crops a person with: its box, at least ``min_size`` head sizes
    wide and high (grown about its centre)."""
    crop = gt_box.copy()
    grow = np.maximum(min_size * s[:, None] - crop[:, 2:], 0)
    crop[:, :2] -= grow / 2
    crop[:, 2:] += grow
    return crop


def _missed(key: np.ndarray, frame: np.ndarray, p_start: np.ndarray,
            rng: np.random.Generator, mean_run: float) -> np.ndarray:
    """``[N]`` bool: poses a detector misses, in runs over each track's consecutive appearances.

    A run starts at a pose with probability ``p_start`` and covers it and the next ``L - 1``
    appearances of its track, ``L ~ Geometric(1 / mean_run)``; overlapping runs merge.
    """
    n = len(key)
    u = rng.random(n)
    length = rng.geometric(1.0 / mean_run, n)
    if n == 0:
        return np.zeros(0, bool)
    order = np.lexsort((frame, key))
    k = key[order]
    first = np.r_[True, k[1:] != k[:-1]]
    group = np.cumsum(first) - 1
    last = np.r_[np.flatnonzero(first)[1:] - 1, n - 1][group]
    pos = np.arange(n)
    end = np.where(u[order] < p_start[order], np.minimum(pos + length[order] - 1, last), -1)
    missed = np.empty(n, bool)
    missed[order] = np.maximum.accumulate(end) >= pos
    return missed


def _duplicates(base: _Poses, s: np.ndarray, cfg: PerturbConfig, rng: np.random.Generator) -> _Poses:
    """False positives next to detected people: shifted, rescaled, noisier, less confident copies."""
    n = len(base.keypoints)
    u = rng.random(n)
    shift = rng.standard_normal((n, 2))
    log_scale = cfg.duplicate_scale * rng.standard_normal(n)
    jitter = rng.standard_normal((n, NUM_JOINTS, 2))
    conf_noise = rng.standard_normal((n, NUM_JOINTS))
    keep = u < cfg.duplicate_prob
    kp, s = base.keypoints[keep], s[keep]
    shift, log_scale, jitter, conf_noise = shift[keep], log_scale[keep], jitter[keep], conf_noise[keep]
    emitted = kp[..., 2] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmean(np.where(emitted[..., None], kp[..., :2], np.nan), axis=1)
    height = s / TEMPLATE_HEAD_SIZE
    xy = (centre[:, None] + np.exp(log_scale)[:, None, None] * (kp[..., :2] - centre[:, None])
          + (cfg.duplicate_shift * height[:, None] * shift)[:, None]
          + cfg.duplicate_sigma * s[:, None, None] * jitter)
    c = _sigmoid(_logit(kp[..., 2]) - cfg.duplicate_confidence_drop + cfg.confidence_noise * conf_noise)
    out = np.concatenate([xy, np.clip(c, 1e-3, 1.0)[..., None]], -1)
    out[~emitted] = 0.0
    m = len(out)
    return _Poses(base.frame[keep], out, np.zeros((m, 4)), np.zeros(m), np.full(m, -1, np.int64))


def _frame_extent(video: Video, kp: np.ndarray) -> np.ndarray | None:
    """``[x0, y0, x1, y1]`` where clutter may appear: the frame, else the annotated keypoints' extent."""
    if all(np.isfinite(v) and v > 0 for v in (video.width, video.height)):
        return np.array([0.0, 0.0, video.width, video.height])
    vis = kp[..., 2] > 0
    if not vis.any():
        return None
    xy = kp[vis][:, :2]
    return np.r_[xy.min(0), xy.max(0)]


def _clutter(video: Video, labeled: np.ndarray, sizes: np.ndarray, extent: np.ndarray | None,
             cfg: PerturbConfig, rng: np.random.Generator) -> _Poses:
    """False positives in the background: random template poses anywhere in labelled frames.

    Each is :data:`TEMPLATE`, randomly mirrored and tilted, the head size of a random person of
    the video (``sizes``), centred uniformly in ``extent``. None without people or extent.
    """
    counts = rng.poisson(cfg.clutter_rate, len(video.frames)) * labeled
    if extent is None or len(sizes) == 0:
        counts[:] = 0
    m = int(counts.sum())
    s = rng.choice(sizes, m) if m else np.zeros(0)
    centre = extent[:2] + rng.random((m, 2)) * (extent[2:] - extent[:2]) if m else np.zeros((0, 2))
    a = (s / TEMPLATE_HEAD_SIZE) * np.exp(0.25j * rng.standard_normal(m))
    t = _template(rng.random(m) < 0.5)
    z = a[:, None] * (t - t.mean(1, keepdims=True)) + (centre[:, 0] + 1j * centre[:, 1])[:, None]
    jitter = rng.standard_normal((m, NUM_JOINTS, 2))
    xy = np.stack([z.real, z.imag], -1) + cfg.clutter_sigma * s[:, None, None] * jitter
    emitted = rng.random((m, NUM_JOINTS)) < cfg.clutter_keep_prob
    c = _sigmoid(cfg.clutter_confidence + cfg.confidence_noise * rng.standard_normal((m, NUM_JOINTS)))
    out = np.concatenate([xy, c[..., None]], -1)
    out[~emitted] = 0.0
    frame = np.repeat(np.arange(len(video.frames)), counts)
    return _Poses(frame, out, np.zeros((m, 4)), np.zeros(m), np.full(m, -1, np.int64))


def _perturb_video(video: Video, index: int, setting: str, seed: int, cfg: PerturbConfig,
                   keep_track_ids: bool) -> Video:
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(5)]
    rng_order, rng_kp, rng_box, rng_miss, rng_fp = streams
    frame, kp, tid, boxes, heads = _gather(video)
    present = (kp[..., 2] > 0).any(1)            # an annotation without keypoints yields no pose
    frame, kp, tid, boxes, heads = frame[present], kp[present], tid[present], boxes[present], heads[present]
    n = len(kp)
    vis = kp[..., 2] > 0
    gt_box = np.where(np.isfinite(boxes).all(1, keepdims=True) & (boxes[:, 2:] > 0).all(1, keepdims=True),
                      boxes, keypoint_boxes(kp))
    ids = tid if keep_track_ids else np.full(n, -1, np.int64)
    fp_penalty = np.zeros(n)

    if setting == SETTINGS[0]:
        out = np.where(vis[..., None], kp, 0.0)
        out[..., 2] = vis
        poses = _Poses(frame, out, gt_box, np.ones(n), ids)
    else:
        s = _fill_scale(person_scale(kp, boxes, heads, cfg.head_size_per_box_diagonal), video.height)
        predicted_boxes = setting == SETTINGS[2]
        crop = _person_crop(gt_box, s)
        pred = _predict_keypoints(kp, s, crop, predicted_boxes, cfg, rng_kp, rng_box)
        poses = _Poses(frame, pred, gt_box, np.zeros(n), ids)
        if predicted_boxes:
            known_height = np.isfinite(video.height) and video.height > 0
            rel = s / video.height if known_height else np.full(n, cfg.miss_size_ref)
            p_start = cfg.miss_prob * (cfg.miss_size_ref / rel) ** cfg.miss_size_power \
                * (1 + cfg.miss_occlusion_gain * (1 - vis.mean(1)))
            key = np.where(tid >= 0, tid, -1 - np.arange(n))
            p_start = np.minimum(p_start, cfg.miss_prob_max)
            missed = _missed(key, frame, p_start, rng_miss, cfg.miss_run_length)
            poses, s = poses.take(~missed), s[~missed]
            dup = _duplicates(poses, s, cfg, rng_fp)
            labeled = np.array([f.is_labeled for f in video.frames], dtype=np.int64)
            extent = _frame_extent(video, kp)
            clutter = _clutter(video, labeled, s, extent, cfg, rng_fp)
            fp_penalty = np.r_[np.zeros(len(poses.frame)), np.ones(len(dup.frame) + len(clutter.frame))]
            poses = _Poses.cat([poses, dup, clutter])
            poses.boxes = keypoint_boxes(poses.keypoints)
        c = poses.keypoints[..., 2]
        emitted = c > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_c = np.where(emitted.any(1), (c * emitted).sum(1) / emitted.sum(1), 0.5)
        noise = rng_order.standard_normal(len(c))
        poses.scores = _sigmoid(_logit(mean_c) + cfg.score_noise * noise - cfg.fp_score_penalty * fp_penalty)
        poses = poses.take(emitted.any(1))

    # a detector lists its poses by descending score; ties broken at random
    tiebreak = rng_order.random(len(poses.frame))
    order = np.lexsort((tiebreak, -poses.scores, poses.frame))
    poses = poses.take(order)
    bounds = np.searchsorted(poses.frame, np.arange(len(video.frames) + 1))
    frames = []
    for i, f in enumerate(video.frames):
        sl = slice(bounds[i], bounds[i + 1])
        m = sl.stop - sl.start
        frames.append(Frame(index=f.index, keypoints=poses.keypoints[sl], track_ids=poses.track_ids[sl],
                            boxes=poses.boxes[sl], head_boxes=np.full((m, 4), np.nan),
                            scores=poses.scores[sl], image_id=f.image_id, file_name=f.file_name,
                            is_labeled=f.is_labeled))
    return Video(name=video.name, frames=frames, width=video.width, height=video.height, source=video.source,
                 frame_size_origin=video.frame_size_origin)


def perturb(dataset: Dataset, setting: str, seed: int = 0, config: PerturbConfig | None = None,
            keep_track_ids: bool = False) -> Dataset:
    """Predicted poses for ``dataset`` (ground truth) under one of Figure 4's :data:`SETTINGS`.

    Returns a new :class:`~keytrack.poses.Dataset` with the same videos and frames (frame indices,
    image ids, file names, ``is_labeled``); ``dataset`` is not modified. Predicted poses have
    ``track_ids = -1`` (the ground-truth id with ``keep_track_ids``, ``-1`` for false positives),
    NaN head boxes, per-keypoint confidences in ``c`` and a pose score; boxes are the ground-truth
    boxes with ground-truth boxes and the tight box of the predicted keypoints with predicted
    boxes. Annotations without any keypoint yield no pose. Deterministic in ``seed``; video ``i``
    depends only on ``(seed, i)``.
    """
    if setting not in SETTINGS:
        raise ValueError(f"perturb: unknown setting {setting!r}; expected one of {list(SETTINGS)}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"perturb: seed must be a non-negative int, got {seed!r}")
    config = PerturbConfig() if config is None else config
    videos = [_perturb_video(v, i, setting, int(seed), config, keep_track_ids)
              for i, v in enumerate(dataset.videos)]
    return Dataset(videos, dict(dataset.skipped))


# -- oracle evaluation and command line ----------------------------------------------------------

def with_oracle_track_ids(predicted: Dataset) -> Dataset:
    """Predictions from ``perturb(..., keep_track_ids=True)`` with a fresh id on each false positive.

    The ground-truth identity serves as a perfect tracker (no ID switches), so MOTA measures the
    keypoints alone, as Figure 4 isolates the estimator from the tracker. Each untracked pose gets
    its own new id (above every id in use), which the MOT metrics need.
    """
    used = [f.track_ids.max() for v in predicted.videos for f in v.frames if f.num_poses]
    next_id = int(max(used, default=-1)) + 1
    videos = []
    for video in predicted.videos:
        frames = []
        for f in video.frames:
            out = f.select(np.arange(f.num_poses))
            new = np.flatnonzero(out.track_ids < 0)
            out.track_ids[new] = next_id + np.arange(len(new))
            next_id += len(new)
            frames.append(out)
        videos.append(Video(video.name, frames, video.width, video.height, video.source,
                            video.frame_size_origin))
    return Dataset(videos, dict(predicted.skipped))


def evaluate_protocol(gt: Dataset, settings: tuple[str, ...] = SETTINGS, seeds: tuple[int, ...] = (0,),
                      thresholds: tuple[float, ...] = (0.0,),
                      config: PerturbConfig | None = None) -> list[dict]:
    """AP and oracle-track MOTA of each setting, seed and keypoint threshold (Figure 4, Table 4).

    Runs :func:`perturb`, removes keypoints below each confidence threshold (A.3), keeps the
    ground-truth identities (:func:`with_oracle_track_ids`) and scores with
    :func:`keytrack.evaluation.evaluate`. One row per (setting, seed, threshold): the AP columns
    (Head ... Total) and ``MOTA``.
    """
    from keytrack.evaluation import evaluate
    from keytrack.tracking.tracker import apply_keypoint_threshold

    rows = []
    for setting in settings:
        for seed in seeds:
            predicted = with_oracle_track_ids(perturb(gt, setting, seed, config, keep_track_ids=True))
            for tau in thresholds:
                result = evaluate(gt, apply_keypoint_threshold(predicted, tau))
                rows.append({"setting": setting, "seed": seed, "threshold": tau,
                             **{f"AP {k}": v for k, v in result.columns("ap").items()},
                             "MOTA": result.columns("mota")["Total"]})
    return rows


def _markdown(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[k]:.1f}" if isinstance(r[k], float) and k != "threshold"
                                       else str(r[k]) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``keytrack perturb``: predicted poses from ground truth (or the AP / MOTA they yield)."""
    parser.add_argument("--data", default=None,
                        help="ground truth to perturb, read by keytrack.io (default: synthetic scenes)")
    parser.add_argument("--split", default=None, help="annotation split under --data (e.g. val)")
    parser.add_argument("--videos", type=int, default=20, help="number of synthetic videos (without --data)")
    parser.add_argument("--synth-seed", type=int, default=0, help="seed of the synthetic scenes")
    parser.add_argument("--setting", choices=[*SETTINGS, "all"], default="all",
                        help="Figure 4's keypoint source (default: all three)")
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="perturbation seed(s)")
    parser.add_argument("--out", default=None,
                        help="write PoseTrack18 files to OUT/<setting>/ (first seed only)")
    parser.add_argument("--keep-track-ids", action="store_true",
                        help="keep ground-truth track ids on predictions of annotated people")
    parser.add_argument("--evaluate", action="store_true",
                        help="print per-joint AP and oracle-track MOTA (keytrack.evaluation)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.0],
                        help="keypoint confidence thresholds to evaluate at (A.3, Table 4)")


def run(args: argparse.Namespace) -> int:
    if args.data is not None:
        from keytrack.io import read_dataset
        gt = read_dataset(args.data, split=args.split)
    else:
        from keytrack.synth import generate_dataset
        gt = generate_dataset(args.videos, args.synth_seed)
    print(f"ground truth: {args.data or f'synthetic ({args.videos} videos, seed {args.synth_seed})'}: "
          f"{gt.report()}")
    settings = SETTINGS if args.setting == "all" else (args.setting,)
    if args.out is not None:
        from pathlib import Path

        from keytrack.io import write_posetrack18
        for setting in settings:
            predicted = perturb(gt, setting, args.seed[0], keep_track_ids=args.keep_track_ids)
            paths = write_posetrack18(predicted, Path(args.out) / setting)
            print(f"{setting} (seed {args.seed[0]}): {predicted.report()}; wrote {len(paths)} files "
                  f"to {Path(args.out) / setting}")
    if args.evaluate:
        rows = evaluate_protocol(gt, settings, tuple(args.seed), tuple(args.thresholds))
        print(_markdown(rows), end="")
    if args.out is None and not args.evaluate:
        print("nothing to do: give --out and/or --evaluate")
        return 2
    return 0


if __name__ == "__main__":
    import sys

    _parser = argparse.ArgumentParser(prog="python -m keytrack.perturb", description=add_arguments.__doc__)
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
