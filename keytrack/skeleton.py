"""The 15-keypoint skeleton shared by every part of keytrack.

KeyTrack (§3.2) tokenizes |K| = 15 keypoints per pose: PoseTrack18's 17-point layout minus the
two ear placeholders (``left_ear``/``right_ear``), which PoseTrack never annotates. Everything in
memory uses :data:`JOINTS` order; readers and writers translate from and to file layouts.
"""

from __future__ import annotations

import numpy as np

#: PoseTrack18's 17 keypoint names, in file order.
POSETRACK18_JOINTS: tuple[str, ...] = (
    "nose",
    "head_bottom",
    "head_top",
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

#: The 15 joints keytrack works with (PoseTrack18 order without the ears).
JOINTS: tuple[str, ...] = tuple(j for j in POSETRACK18_JOINTS if not j.endswith("_ear"))
NUM_JOINTS: int = len(JOINTS)

#: Index into a PoseTrack18 17-point array for each of :data:`JOINTS`.
FROM_POSETRACK18: np.ndarray = np.array([POSETRACK18_JOINTS.index(j) for j in JOINTS])

#: Limbs between :data:`JOINTS` indices (for drawing and for the synthetic skeleton).
LIMBS: tuple[tuple[int, int], ...] = tuple(
    (JOINTS.index(a), JOINTS.index(b))
    for a, b in [
        ("head_top", "nose"),
        ("nose", "head_bottom"),
        ("head_bottom", "left_shoulder"),
        ("head_bottom", "right_shoulder"),
        ("left_shoulder", "left_elbow"),
        ("left_elbow", "left_wrist"),
        ("right_shoulder", "right_elbow"),
        ("right_elbow", "right_wrist"),
        ("left_shoulder", "left_hip"),
        ("right_shoulder", "right_hip"),
        ("left_hip", "right_hip"),
        ("left_hip", "left_knee"),
        ("left_knee", "left_ankle"),
        ("right_hip", "right_knee"),
        ("right_knee", "right_ankle"),
    ]
)

#: Left/right counterpart of each joint (for horizontal flips).
FLIP: np.ndarray = np.array(
    [JOINTS.index(j.replace("left_", "@").replace("right_", "left_").replace("@", "right_")) for j in JOINTS]
)

#: COCO-style per-joint OKS sigmas for :data:`JOINTS` (head_bottom/head_top borrow the ear/eye
#: values, as PoseTrack-based trackers do).
OKS_SIGMAS: np.ndarray = np.array(
    [0.026, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
)
