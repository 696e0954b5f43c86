"""Articulated people for the synthetic scenes: body proportions, motions, forward kinematics.

A person is a 15-joint skeleton (:data:`keytrack.skeleton.JOINTS`) in a body frame measured in
body heights: ``x`` to the person's left, ``y`` up, ``z`` forward. Its pose at time ``t`` is set
by a handful of joint angles (trunk lean and twist, shoulder flexion/abduction, elbow, hip
flexion/abduction, knee, airborne lift), each a smooth periodic function of a gait phase
``phi(t) = phi0 + 2π f t`` with a per-person frequency ``f`` and per-person amplitudes. The feet
are kept on the ground (the pelvis height follows the lower ankle) except while jumping or in the
flight phase of running.

Everything is vectorised over people and time: angle arrays are ``[n, T]`` and the kinematics
returns ``[n, T, 15, 3]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keytrack.skeleton import JOINTS, NUM_JOINTS

J = {name: i for i, name in enumerate(JOINTS)}

#: Canonical segment lengths as fractions of body height (anthropometric tables, rounded).
PROPORTIONS: dict[str, float] = {
    "pelvis_to_neck": 0.29,  # pelvis centre to the shoulder line
    "neck_to_chin": 0.035,  # shoulder line to head_bottom
    "head": 0.145,  # head_bottom to head_top
    "shoulder_half": 0.115,  # half the shoulder width
    "hip_half": 0.085,  # half the hip width
    "upper_arm": 0.17,
    "forearm": 0.155,
    "thigh": 0.245,
    "shank": 0.245,
    "ankle": 0.04,  # ankle joint height above the ground
}

#: Angle channels (radians; ``lift`` in body heights). ``_l``/``_r`` are the person's left/right.
CHANNELS: tuple[str, ...] = (
    "pitch",
    "roll",
    "twist",
    "head_pitch",
    "lift",
    "sh_flex_l",
    "sh_flex_r",
    "sh_abd_l",
    "sh_abd_r",
    "elbow_l",
    "elbow_r",
    "hip_flex_l",
    "hip_flex_r",
    "hip_abd_l",
    "hip_abd_r",
    "knee_l",
    "knee_r",
)

#: Nominal cycle frequency (Hz) and forward speed (body heights per cycle) of each motion type.
NOMINAL: dict[str, tuple[float, float]] = {
    "walk": (0.9, 0.85),  # ~1.3 m/s for a 1.7 m person
    "run": (1.4, 1.2),  # ~2.9 m/s
    "turn": (0.8, 0.3),  # slow steps while the heading sweeps
    "jump": (1.2, 0.0),
    "dance": (0.7, 0.0),
    "stand": (0.3, 0.0),
}


@dataclass
class Bodies:
    """Per-person segment lengths ``[n]`` (fractions of height) and heights ``[n]`` in metres."""

    height: np.ndarray
    lengths: dict[str, np.ndarray]

    @staticmethod
    def sample(
        rng: np.random.Generator, n: int, height_range: tuple[float, float], jitter: float
    ) -> "Bodies":
        height = rng.uniform(*height_range, size=n)
        lengths = {
            k: v * np.clip(1 + jitter * rng.standard_normal(n), 0.7, 1.3) for k, v in PROPORTIONS.items()
        }
        return Bodies(height, lengths)

    def take(self, index: np.ndarray) -> "Bodies":
        return Bodies(self.height[index], {k: v[index] for k, v in self.lengths.items()})


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def motion_angles(
    motion: str, phase: np.ndarray, amp: np.ndarray, style: np.ndarray
) -> dict[str, np.ndarray]:
    """Joint-angle channels of ``motion`` for ``n`` people over ``T`` steps.

    ``phase`` is ``[n, T]`` (radians), ``amp`` ``[n, 1]`` a per-person amplitude multiplier and
    ``style`` ``[n, 4]`` per-person uniforms in ``[0, 1)`` that pick static variations (arm pose
    while standing, arm coordination while dancing, ...).
    """
    s, c = np.sin(phase), np.cos(phase)
    sp, cp = np.sin(phase + np.pi), np.cos(phase + np.pi)
    z = np.zeros_like(phase)
    a = {k: z.copy() for k in CHANNELS}
    st = [style[:, i : i + 1] for i in range(style.shape[1])]
    if motion in ("walk", "turn"):
        k = 0.6 if motion == "turn" else 1.0
        a["pitch"] = z + 0.04 * amp
        a["twist"] = 0.08 * k * amp * s
        a["hip_flex_l"], a["hip_flex_r"] = 0.05 + 0.38 * k * amp * s, 0.05 + 0.38 * k * amp * sp
        a["knee_l"] = 0.08 + 0.8 * k * amp * _relu(c) ** 1.5
        a["knee_r"] = 0.08 + 0.8 * k * amp * _relu(cp) ** 1.5
        a["sh_flex_l"], a["sh_flex_r"] = -0.3 * k * amp * s, -0.3 * k * amp * sp
        a["sh_abd_l"] = a["sh_abd_r"] = z + 0.08
        a["elbow_l"] = 0.25 + 0.12 * amp * (1 + sp)
        a["elbow_r"] = 0.25 + 0.12 * amp * (1 + s)
    elif motion == "run":
        a["pitch"] = z + 0.14 * amp
        a["twist"] = 0.15 * amp * s
        a["hip_flex_l"], a["hip_flex_r"] = 0.2 + 0.6 * amp * s, 0.2 + 0.6 * amp * sp
        a["knee_l"] = 0.25 + 1.5 * amp * _relu(c) ** 1.2
        a["knee_r"] = 0.25 + 1.5 * amp * _relu(cp) ** 1.2
        a["sh_flex_l"], a["sh_flex_r"] = -0.6 * amp * s, -0.6 * amp * sp
        a["sh_abd_l"] = a["sh_abd_r"] = z + 0.15
        a["elbow_l"] = a["elbow_r"] = z + 1.45
        a["lift"] = 0.03 * amp * _relu(np.sin(2 * phase))  # flight phase, twice a cycle
    elif motion == "jump":
        up = _relu(s)  # airborne half of the cycle
        down = _relu(-s)  # landing / push-off crouch
        a["lift"] = (0.1 + 0.15 * st[0]) * amp * up
        a["knee_l"] = a["knee_r"] = 0.1 + 1.0 * amp * down
        a["hip_flex_l"] = a["hip_flex_r"] = 0.05 + 0.55 * amp * down
        a["pitch"] = 0.25 * amp * down
        a["sh_flex_l"] = a["sh_flex_r"] = 0.2 + (0.6 + 1.6 * st[1]) * amp * up
        a["sh_abd_l"] = a["sh_abd_r"] = 0.15 + 0.5 * st[2] * up
        a["elbow_l"] = a["elbow_r"] = 0.3 + 0.3 * down
    elif motion == "dance":
        mirror = np.where(st[0] < 0.5, 0.0, np.pi)  # arms in phase or alternating
        a["sh_abd_l"] = 1.5 + 1.0 * amp * s
        a["sh_abd_r"] = 1.5 + 1.0 * amp * np.sin(phase + mirror)
        a["sh_flex_l"] = 0.3 * st[1] + 0.3 * amp * np.sin(0.5 * phase)
        a["sh_flex_r"] = 0.3 * st[1] + 0.3 * amp * np.sin(0.5 * phase + mirror)
        a["elbow_l"] = 0.3 + 0.6 * st[2] * (1 + np.sin(2 * phase))
        a["elbow_r"] = 0.3 + 0.6 * st[2] * (1 + np.sin(2 * phase + mirror))
        a["roll"] = 0.1 * amp * s
        a["twist"] = 0.15 * amp * np.sin(0.5 * phase)
        a["hip_flex_l"], a["hip_flex_r"] = 0.2 * amp * _relu(s), 0.2 * amp * _relu(sp)
        a["knee_l"], a["knee_r"] = 0.1 + 0.4 * amp * _relu(s), 0.1 + 0.4 * amp * _relu(sp)
        a["hip_abd_l"] = a["hip_abd_r"] = z + 0.06
    elif motion == "stand":
        a["roll"] = 0.04 * amp * s
        a["pitch"] = 0.03 + 0.03 * amp * np.sin(1.3 * phase)
        a["twist"] = 0.1 * amp * np.sin(0.7 * phase)
        a["head_pitch"] = 0.15 * np.sin(0.6 * phase)
        # base arm pose (hanging, hands on hips, arms folded or holding something) plus gestures
        a["sh_abd_l"] = a["sh_abd_r"] = 0.05 + 0.45 * st[0] + 0.06 * amp * c
        a["sh_flex_l"] = -0.05 + 0.6 * st[1] + 0.15 * amp * np.sin(1.7 * phase)
        a["sh_flex_r"] = -0.05 + 0.6 * st[1] + 0.15 * amp * np.sin(1.3 * phase + 1.0)
        a["elbow_l"] = 0.1 + 1.8 * st[2] + 0.2 * amp * _relu(np.sin(1.7 * phase))
        a["elbow_r"] = 0.1 + 1.8 * st[3] + 0.2 * amp * _relu(np.sin(1.3 * phase + 1.0))
        a["hip_flex_l"] = a["hip_flex_r"] = z + 0.02
        a["knee_l"] = a["knee_r"] = z + 0.04
        a["hip_abd_l"] = a["hip_abd_r"] = z + 0.05
    else:
        raise ValueError(f"unknown motion type {motion!r}")
    return a


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _limb_dir(
    frame: tuple[np.ndarray, np.ndarray, np.ndarray], side: float, flex: np.ndarray, abd: np.ndarray
) -> np.ndarray:
    """Direction ``[n, T, 3]`` of a limb hanging down, flexed forward by ``flex`` and abducted
    outward by ``abd``, in the given (lateral, up, forward) frame."""
    lat, up, fwd = frame
    sa, ca = np.sin(abd)[..., None], np.cos(abd)[..., None]
    sf, cf = np.sin(flex)[..., None], np.cos(flex)[..., None]
    return side * sa * lat - ca * cf * up + ca * sf * fwd


def forward_kinematics(angles: dict[str, np.ndarray], bodies: Bodies) -> np.ndarray:
    """``[n, T, 15, 3]`` joint positions in the body frame, in body heights, feet on the ground
    (``y = 0`` is the ground, the pelvis is at ``x = z = 0``)."""
    n, t = angles["pitch"].shape
    L = {k: v[:, None, None] for k, v in bodies.lengths.items()}  # [n, 1, 1]
    shape = (n, t, 3)
    x_hat = np.broadcast_to([1.0, 0.0, 0.0], shape)
    y_hat = np.broadcast_to([0.0, 1.0, 0.0], shape)
    z_hat = np.broadcast_to([0.0, 0.0, 1.0], shape)

    pitch, roll, twist = angles["pitch"][..., None], angles["roll"][..., None], angles["twist"][..., None]
    spine = np.concatenate([np.sin(roll), np.cos(roll) * np.cos(pitch), np.cos(roll) * np.sin(pitch)], -1)
    sh_lat = np.concatenate([np.cos(twist), np.zeros_like(twist), -np.sin(twist)], -1)
    sh_fwd = np.concatenate([np.sin(twist), np.zeros_like(twist), np.cos(twist)], -1)

    out = np.zeros((n, t, NUM_JOINTS, 3))
    neck = L["pelvis_to_neck"] * spine
    head_bottom = neck + L["neck_to_chin"] * spine
    head_dir = _unit(spine + np.tan(angles["head_pitch"])[..., None] * sh_fwd)
    out[:, :, J["head_bottom"]] = head_bottom
    out[:, :, J["head_top"]] = head_bottom + L["head"] * head_dir
    out[:, :, J["nose"]] = head_bottom + 0.45 * L["head"] * head_dir + 0.35 * L["head"] * sh_fwd

    arm_frame = (sh_lat, y_hat, sh_fwd)
    leg_frame = (x_hat, y_hat, z_hat)
    for side, sfx in ((1.0, "l"), (-1.0, "r")):
        name = "left" if sfx == "l" else "right"
        shoulder = neck + side * L["shoulder_half"] * sh_lat
        upper = _limb_dir(arm_frame, side, angles[f"sh_flex_{sfx}"], angles[f"sh_abd_{sfx}"])
        elbow = shoulder + L["upper_arm"] * upper
        # the elbow bends toward the body's front (or upward when the arm points forward)
        bend = sh_fwd - np.sum(sh_fwd * upper, -1, keepdims=True) * upper
        norm = np.linalg.norm(bend, axis=-1, keepdims=True)
        bend = np.where(norm > 1e-6, bend / np.maximum(norm, 1e-12), y_hat)
        e = angles[f"elbow_{sfx}"][..., None]
        wrist = elbow + L["forearm"] * (np.cos(e) * upper + np.sin(e) * bend)

        hip = side * L["hip_half"] * x_hat
        flex, abd = angles[f"hip_flex_{sfx}"], angles[f"hip_abd_{sfx}"]
        knee = hip + L["thigh"] * _limb_dir(leg_frame, side, flex, abd)
        ankle = knee + L["shank"] * _limb_dir(leg_frame, side, flex - angles[f"knee_{sfx}"], abd)
        for joint, value in (
            ("shoulder", shoulder),
            ("elbow", elbow),
            ("wrist", wrist),
            ("hip", hip),
            ("knee", knee),
            ("ankle", ankle),
        ):
            out[:, :, J[f"{name}_{joint}"]] = value

    # feet on the ground: raise the body so the lower ankle sits at ankle height, plus any lift
    low = np.minimum(out[:, :, J["left_ankle"], 1], out[:, :, J["right_ankle"], 1])
    out[..., 1] += (L["ankle"][..., 0] - low + angles["lift"])[..., None]
    return out
