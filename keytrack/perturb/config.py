"""The protocol's settings and knobs: Figure 4's keypoint sources, joint groups, the canonical
skeleton and :class:`PerturbConfig` (calibration in ``docs/perturbation.md``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Mapping

import numpy as np

from keytrack.skeleton import JOINTS, LIMBS, NUM_JOINTS

__all__ = ["SETTINGS", "JOINT_GROUPS", "TEMPLATE", "TEMPLATE_HEAD_SIZE", "PerturbConfig"]

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
TEMPLATE: np.ndarray = np.array(
    [
        [0.00, 0.07],
        [0.00, 0.13],
        [0.00, 0.00],  # nose, head_bottom, head_top
        [0.11, 0.19],
        [-0.11, 0.19],
        [0.14, 0.34],
        [-0.14, 0.34],  # shoulders, elbows (left, right)
        [0.15, 0.48],
        [-0.15, 0.48],
        [0.07, 0.52],
        [-0.07, 0.52],  # wrists, hips
        [0.08, 0.75],
        [-0.08, 0.75],
        [0.08, 0.97],
        [-0.08, 0.97],  # knees, ankles
    ]
)
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
    joint_sigma: Mapping[str, float] = field(
        default_factory=lambda: _groups(
            head=0.12, shoulder=0.12, elbow=0.14, wrist=0.17, hip=0.18, knee=0.15, ankle=0.17
        )
    )
    #: probability of a gross error instead of an inlier error, per joint group.
    gross_prob: Mapping[str, float] = field(
        default_factory=lambda: _groups(
            head=0.045, shoulder=0.05, elbow=0.075, wrist=0.10, hip=0.11, knee=0.085, ankle=0.09
        )
    )
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
                raise ValueError(
                    f"PerturbConfig.{name} must have exactly the joint groups "
                    f"{list(JOINT_GROUPS)}, got {sorted(value)}"
                )
            bad = {
                g: v
                for g, v in value.items()
                if not np.isfinite(v) or v < 0 or (name == "gross_prob" and v > 1)
            }
            if bad:
                raise ValueError(f"PerturbConfig.{name} has out-of-range values {bad}")
        probabilities = {
            "swap_prob",
            "drop_prob",
            "hallucinate_prob",
            "miss_prob",
            "miss_prob_max",
            "duplicate_prob",
            "clutter_keep_prob",
        }
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
