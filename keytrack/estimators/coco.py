"""COCO-17 keypoints to KeyTrack's 15 PoseTrack joints (§3.2's ``|K| = 15``; A.4's estimator).

KeyTrack tokenizes PoseTrack18's joints minus the ears (:data:`keytrack.skeleton.JOINTS`). Pose
estimators trained on COCO (YOLO-pose, HRNet-COCO, ...) give 17 other joints: eyes and ears but no
``head_bottom``/``head_top``. :func:`coco17_to_posetrack15` maps one to the other in one array
expression over ``[..., 17, 3]``:

==================  ===============================================  ======================
PoseTrack joint     from COCO-17                                     confidence
==================  ===============================================  ======================
nose                nose                                             nose
head_bottom         ``neck + 0.3 · (nose − neck)``                   min(nose, l/r shoulder)
head_top            ``nose + 0.75 · (nose − neck)``                  min(nose, l/r shoulder)
left/right_shoulder same joint                                       same
left/right_elbow    same joint                                       same
left/right_wrist    same joint                                       same
left/right_hip      same joint                                       same
left/right_knee     same joint                                       same
left/right_ankle    same joint                                       same
==================  ===============================================  ======================

``neck`` is the midpoint of the two shoulders. The eyes and ears are dropped.

Why these two constants: PoseTrack's ``head_bottom`` is MPII's "upper neck" and ``head_top`` the
top of the skull. On the Bonn Multi-Person PoseTrack training annotations (MPII layout) the upper
neck lies at 0.16–0.19 of the way from the shoulder midpoint to the head top; the nose lies at
about 0.57 of that way (head ≈ 23 cm, nose tip ≈ 13 cm below the vertex, vertex ≈ 30 cm above
the shoulder line). Expressed along ``nose − neck`` this gives ``head_bottom = neck + 0.3 (nose −
neck)`` and ``head_top = nose + 0.75 (nose − neck)``. Both follow the nose–neck direction, so a
bowed or turned head bends them with it; they are approximations, which is why their confidence
is the smallest confidence of the joints they are built from (a missing nose or shoulder, ``c =
0``, makes them missing too).
"""

from __future__ import annotations

import numpy as np

from keytrack.skeleton import JOINTS, NUM_JOINTS

#: COCO's 17 keypoint names, in the order COCO-trained models output them.
COCO17_JOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

#: ``head_bottom = neck + HEAD_BOTTOM_FRACTION · (nose − neck)``.
HEAD_BOTTOM_FRACTION: float = 0.3
#: ``head_top = nose + HEAD_TOP_FACTOR · (nose − neck)``.
HEAD_TOP_FACTOR: float = 0.75

#: For each of :data:`JOINTS`, its COCO index (-1: derived, not a COCO joint).
_SOURCE: np.ndarray = np.array([COCO17_JOINTS.index(j) if j in COCO17_JOINTS else -1 for j in JOINTS])
_NOSE, _LSHO, _RSHO = (COCO17_JOINTS.index(j) for j in ("nose", "left_shoulder", "right_shoulder"))
_HEAD_BOTTOM, _HEAD_TOP = JOINTS.index("head_bottom"), JOINTS.index("head_top")


def coco17_to_posetrack15(keypoints: np.ndarray) -> np.ndarray:
    """``[..., 17, 3]`` COCO keypoints (x, y, c) to ``[..., 15, 3]`` in :data:`JOINTS` order.

    See the module docstring for the table and the head approximations.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim < 2 or kp.shape[-2:] != (len(COCO17_JOINTS), 3):
        raise ValueError(f"coco17_to_posetrack15: expected keypoints [..., 17, 3], got shape {kp.shape}")
    out = kp[..., np.maximum(_SOURCE, 0), :].copy()  # derived joints overwritten below
    nose, lsho, rsho = kp[..., _NOSE, :], kp[..., _LSHO, :], kp[..., _RSHO, :]
    neck = (lsho[..., :2] + rsho[..., :2]) / 2
    up = nose[..., :2] - neck
    conf = np.minimum(nose[..., 2], np.minimum(lsho[..., 2], rsho[..., 2]))
    out[..., _HEAD_BOTTOM, :2] = neck + HEAD_BOTTOM_FRACTION * up
    out[..., _HEAD_TOP, :2] = nose[..., :2] + HEAD_TOP_FACTOR * up
    out[..., [_HEAD_BOTTOM, _HEAD_TOP], 2] = conf[..., None]
    missing = out[..., 2] <= 0
    out[missing] = 0.0  # the project's "absent": (0, 0, 0)
    assert out.shape[-2] == NUM_JOINTS
    return out


__all__ = ["COCO17_JOINTS", "HEAD_BOTTOM_FRACTION", "HEAD_TOP_FACTOR", "coco17_to_posetrack15"]
