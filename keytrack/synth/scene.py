"""Synthetic multi-person scenes: people on a ground plane seen by a moving camera.

A scene is simulated at :attr:`SynthConfig.fps` and annotated every ``stride``-th frame, so the
same generator yields video-rate data and the sparse frame rates that KeyTrack's segment token
(§3.2) is meant for. Per video:

1. **Camera.** Focal length = frame height in pixels, horizon row and camera height drawn per
   video. A person of height ``H`` at depth ``Z`` is ``H / Z`` frame heights tall and stands at
   image row ``horizon + f * camera_height / Z``: near people are large and low in the image,
   far people small and high, and the depth order decides who hides whom. Points are projected
   with the person's root depth (weak perspective).
2. **People.** Each person gets a body (:class:`keytrack.synth.motion.Bodies`), a motion type, a
   cycle frequency, a phase, a facing direction (with a yaw rate for ``turn``) and, for walkers
   and runners, a velocity along the facing direction. Scenes also hold the hard cases of §A.6 /
   Fig. 9: groups that move in sync side by side, look-alike pairs (same body, same motion and
   phase) close together, and two walkers whose paths cross at different depths. Walkers may
   start outside the frame and walk in, or walk out before the end.
3. **Image.** Joint angles (:func:`keytrack.synth.motion.motion_angles`) drive the kinematics,
   the body frame is turned by the facing direction (facing away mirrors left and right in the
   image), projected, and moved by a smooth per-frame similarity transform (pan, zoom, roll).
4. **Visibility.** A keypoint is absent when it is out of the frame, inside the body of a person
   nearer to the camera (limb and torso capsules, head disc) unless an annotator could infer it,
   or hidden by the random, temporally correlated per-joint occlusion. Annotation noise is added to every
   keypoint. Poses
   with fewer than ``min_visible_joints`` present joints are not annotated.

Every video is drawn from its own generator seeded by ``(seed, video index)``, so a video does not
depend on how many others are generated with it. :func:`film_video` returns the same video together
with its noise-free :class:`SceneGeometry` (everyone's image positions, depths and the camera),
from which :mod:`keytrack.synth.render` draws RGB frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.ndimage import gaussian_filter1d
from scipy.special import ndtri

from keytrack.poses import Dataset, Frame, Video, keypoint_boxes
from keytrack.skeleton import JOINTS, LIMBS, NUM_JOINTS
from keytrack.synth.config import MOTIONS, SynthConfig
from keytrack.synth.motion import CHANNELS, NOMINAL, Bodies, forward_kinematics, motion_angles

J = {name: i for i, name in enumerate(JOINTS)}
_MOVING = ("walk", "run")


def video_name(index: int) -> str:
    """Name of the synthetic video with index ``index`` (``synth_000000``, ...)."""
    return f"synth_{index:06d}"


# --------------------------------------------------------------------------------------------------
# occluder shapes: capsules around limbs and torso, a disc-like capsule for the head


def _occluder_segments() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(a, b, radius)``: segment end points as indices into the 15 joints plus two derived
    points (15 = shoulder centre, 16 = hip centre), and capsule radii in person heights."""
    radius = {"head": 0.06, "arm": 0.035, "leg": 0.055, "torso": 0.1}
    segs: list[tuple[int, int, float]] = []
    for a, b in LIMBS:
        names = JOINTS[a] + JOINTS[b]
        if "head_top" in names:
            segs.append((a, b, radius["head"]))
        elif "elbow" in names or "wrist" in names:
            segs.append((a, b, radius["arm"]))
        elif "knee" in names or "ankle" in names:
            segs.append((a, b, radius["leg"]))
        else:
            segs.append((a, b, radius["torso"] / 2))
    segs.append((15, 16, radius["torso"]))  # trunk core
    segs.append((J["left_shoulder"], J["right_hip"], radius["torso"] / 2))
    segs.append((J["right_shoulder"], J["left_hip"], radius["torso"] / 2))
    a, b, r = zip(*segs)
    return np.array(a), np.array(b), np.array(r)


_SEG_A, _SEG_B, _SEG_R = _occluder_segments()


def body_occlusion(
    points: np.ndarray, depth: np.ndarray, pixel_height: np.ndarray, width: float = 1.0
) -> np.ndarray:
    """``[F, N, 15]`` bool: joint inside the body of a person nearer to the camera.

    ``points`` ``[F, N, 15, 2]`` image positions, ``depth`` ``[F, N]`` root depths, and
    ``pixel_height`` ``[F, N]`` person heights in pixels (capsule radii scale with it).
    """
    f, n = depth.shape
    hidden = np.zeros((f, n, NUM_JOINTS), bool)
    if n < 2:
        return hidden
    ext = np.concatenate(
        [
            points,
            points[:, :, [J["left_shoulder"], J["right_shoulder"]]].mean(2, keepdims=True),
            points[:, :, [J["left_hip"], J["right_hip"]]].mean(2, keepdims=True),
        ],
        axis=2,
    )
    radius = width * _SEG_R[None, None] * pixel_height[..., None]  # [F, N, S]
    # candidate (frame, occluded j, occluder i): i nearer than j and their boxes overlap
    pad = radius.max(-1, initial=0.0)[..., None]
    lo, hi = points.min(2), points.max(2)  # [F, N, 2]
    overlap = (
        (lo[:, :, None] <= hi[:, None] + pad[:, None]) & (hi[:, :, None] >= lo[:, None] - pad[:, None])
    ).all(-1)  # [F, Nj, Ni]
    in_front = depth[:, None, :] < depth[:, :, None]  # [F, Nj, Ni]: i nearer than j
    fi, j, i = np.nonzero(overlap & in_front)
    if len(fi) == 0:
        return hidden
    a, b = ext[fi, i][:, _SEG_A], ext[fi, i][:, _SEG_B]  # [K, S, 2]
    ab = (b - a)[:, None]  # [K, 1, S, 2]
    q = points[fi, j][:, :, None]  # [K, 15, 1, 2]
    t = np.clip(np.sum((q - a[:, None]) * ab, -1) / np.maximum(np.sum(ab * ab, -1), 1e-9), 0.0, 1.0)
    dist2 = np.sum((q - (a[:, None] + t[..., None] * ab)) ** 2, -1)  # [K, 15, S]
    inside = (dist2 <= radius[fi, i][:, None] ** 2).any(-1)  # [K, 15]
    np.logical_or.at(hidden, (fi, j), inside)
    return hidden


@dataclass(frozen=True)
class SceneGeometry:
    """What a camera would see of one video, noise-free, at its annotated frames (``F`` frames,
    ``N`` people, including people out of view or not annotated): the input of the frame renderer
    (:mod:`keytrack.synth.render`). The image of a scene point ``q`` (pixels of a still camera) at
    frame ``f`` is ``c + zoom[f] * R(roll[f]) (q - c) + pan[f]`` with ``c`` the frame centre.

    ``points`` ``[F, N, 15, 2]`` image positions (before annotation noise), ``joint_depth``
    ``[F, N, 15]`` and ``depth`` ``[F, N]`` (root) depths in metres, ``pixel_height`` ``[F, N]``
    person heights in pixels, ``pan`` ``[F, 2]``, ``zoom`` ``[F]``, ``roll`` ``[F]`` the camera,
    ``look`` ``[N]`` the person whose body each person has (look-alikes share it), ``track_id``
    ``[N]`` each person's track id in the annotated video.
    """

    width: float
    height: float
    stride: int
    focal: float
    horizon: float
    camera_height: float
    points: np.ndarray
    joint_depth: np.ndarray
    depth: np.ndarray
    pixel_height: np.ndarray
    pan: np.ndarray
    zoom: np.ndarray
    roll: np.ndarray
    look: np.ndarray
    track_id: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.points)

    @property
    def num_people(self) -> int:
        return self.points.shape[1]


# --------------------------------------------------------------------------------------------------
# scene layout


class _Layout:
    """Per-person scene parameters of one video (arrays of length N), filled unit by unit."""

    def __init__(self, n: int) -> None:
        self.motion = np.zeros(n, np.int64)
        self.freq = np.zeros(n)
        self.phase0 = np.zeros(n)
        self.amp = np.ones(n)
        self.style = np.zeros((n, 4))
        self.facing0 = np.zeros(n)
        self.yaw_rate = np.zeros(n)
        self.speed = np.zeros(n)
        self.x0 = np.zeros(n)
        self.z0 = np.ones(n)
        self.body_src = np.arange(n)  # look-alikes share a body: index of the body to use


@dataclass
class _Unit:
    """What the members of one unit share: motion, gait, facing and start position."""

    motion: int
    freq: float
    speed: float
    amp: float
    style: np.ndarray
    phase0: float
    facing: float = 0.0
    yaw_rate: float = 0.0
    x: float = 0.0
    z: float = 0.0


def _facing(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward ``(X, Z)`` ground-plane components for facing angle ``alpha`` (0 = toward the
    camera, +π/2 = toward image right)."""
    return np.sin(alpha), -np.cos(alpha)


class SceneSampler:
    """Draws one video's layout, simulates it and returns the annotated :class:`Video`."""

    def __init__(self, config: SynthConfig, rng: np.random.Generator, index: int) -> None:
        self.cfg, self.rng, self.index = config, rng, index
        sizes = config.frame_sizes
        self.width, self.height = (float(v) for v in sizes[rng.integers(len(sizes))])
        strides = np.array(list(config.frame_strides), dtype=np.int64)
        weights = np.array(list(config.frame_strides.values()), dtype=np.float64)
        self.stride = int(rng.choice(strides, p=weights / weights.sum()))
        self.num_frames = int(rng.integers(config.frames_per_video[0], config.frames_per_video[1] + 1))
        self.num_steps = (self.num_frames - 1) * self.stride + 1
        self.dt = 1.0 / config.fps
        self.duration = (self.num_steps - 1) * self.dt
        self.focal = self.height
        self.cam_height = rng.uniform(*config.camera_height)
        # horizon such that a person at the middle depth has its body centre at `centre_row`
        mid_height = float(np.mean(config.height_range))
        mid_depth = mid_height / float(np.sqrt(np.prod(config.scale_range)))
        self.horizon = (
            self.height * rng.uniform(*config.centre_row)
            - self.focal * (self.cam_height - mid_height / 2) / mid_depth
        )
        names = list(config.motion_mix)
        w = np.array([config.motion_mix[m] for m in names], dtype=np.float64)
        self._motion_names, self._motion_p = names, w / w.sum()
        self._columns: list[float] = []  # image columns left for people placed in view

    # ---- people ---------------------------------------------------------------------------------

    def _half_width(self, z: float) -> float:
        """Half the visible ground width (metres) at depth ``z``."""
        return z * self.width / 2 / self.focal

    def _draw_motion(self, exclude: tuple[str, ...] = ()) -> int:
        p = np.array([0.0 if m in exclude else q for m, q in zip(self._motion_names, self._motion_p)])
        if p.sum() == 0:  # every allowed motion has weight 0: fall back to walking
            return MOTIONS.index("walk")
        return MOTIONS.index(self._motion_names[self.rng.choice(len(p), p=p / p.sum())])

    def _draw_depth(self, height: float) -> float:
        lo, hi = np.log(self.cfg.scale_range[0]), np.log(self.cfg.scale_range[1])
        return height / float(np.exp(self.rng.uniform(lo, hi)))

    def _unit(self, lay: _Layout, members: np.ndarray, bodies: Bodies, kind: str) -> None:
        """Fill the parameters of one unit: a single person, a group in sync, a look-alike pair,
        or a crossing pair (``kind``)."""
        h = float(bodies.height[members[0]])
        unit = self._draw_gait(kind, h)
        name = MOTIONS[unit.motion]
        unit.facing, unit.yaw_rate = self._draw_facing(name, kind)
        unit.x, unit.z = self._place(unit, name, kind, h)
        dx, dz, phases = self._spread(kind, len(members), unit)
        self._fill(lay, members, unit, kind, dx, dz, phases)

    def _draw_gait(self, kind: str, h: float) -> _Unit:
        """Motion, cycle frequency, speed, amplitude, style and phase of a unit led by a person
        ``h`` metres tall."""
        rng, cfg = self.rng, self.cfg
        if kind == "crossing":
            motion = MOTIONS.index("run" if rng.random() < 0.2 else "walk")
        else:
            motion = self._draw_motion(exclude=("turn",) if kind in ("group", "lookalike") else ())
        f_nom, stride_len = NOMINAL[MOTIONS[motion]]
        freq = f_nom * float(np.clip(1 + cfg.speed_jitter * rng.standard_normal(), 0.5, 1.5))
        speed = stride_len * h * freq
        amp = rng.uniform(0.75, 1.25)
        style = rng.random(4)
        phase0 = rng.uniform(0, 2 * np.pi)
        return _Unit(motion=motion, freq=freq, speed=speed, amp=amp, style=style, phase0=phase0)

    def _draw_facing(self, name: str, kind: str) -> tuple[float, float]:
        """``(facing, yaw_rate)`` of a unit performing motion ``name``."""
        rng = self.rng
        yaw_rate = 0.0
        if name in _MOVING:
            if kind == "crossing":  # exactly sideways (set by _cross)
                facing = np.pi / 2
            elif rng.random() < 0.75:  # mostly across the image
                facing = np.pi / 2 * rng.choice([-1.0, 1.0]) + 0.3 * rng.standard_normal()
            else:  # toward or away from the camera
                facing = rng.choice([0.0, np.pi]) + 0.3 * rng.standard_normal()
        elif name == "turn":
            facing = rng.uniform(-np.pi, np.pi)
            yaw_rate = rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.8)
        else:
            facing = 0.6 * rng.standard_normal() if rng.random() < 0.8 else rng.uniform(-np.pi, np.pi)
        return facing, yaw_rate

    def _place(self, unit: _Unit, name: str, kind: str, h: float) -> tuple[float, float]:
        """``(x, z)`` start position on the ground plane: walkers across the image may walk in or
        out, everyone else takes one of the stratified image columns."""
        z = self._draw_depth(h)
        fx, fz = _facing(np.array(unit.facing))
        speed = unit.speed
        vx, vz = speed * float(fx), speed * float(fz)
        half = self._half_width(z)
        if name in _MOVING and abs(vx) > 0.5 * speed:
            x, z = self._walker_start(kind, vx, vz, z, half)
        else:
            x = (0.08 + 0.84 * self._columns.pop() - 0.5) * 2 * half
        if name in _MOVING:
            # keep walkers toward the camera from walking into it
            z_min = h / (1.2 * self.cfg.scale_range[1])
            z = max(z, z_min - min(vz, 0.0) * self.duration)
        return x, z

    def _walker_start(self, kind: str, vx: float, vz: float, z: float, half: float) -> tuple[float, float]:
        """``(x, z)`` start of a walker with velocity ``(vx, vz)`` that crosses the image: walks in,
        walks out, or stays in view (``half``: half the visible width at depth ``z``)."""
        rng, cfg = self.rng, self.cfg
        margin = 0.3  # metres beyond the frame edge
        u = rng.random()
        if kind == "crossing":
            x = 0.0  # set by the caller
        elif u < cfg.entry_rate:  # walks in at t_in
            t_in = rng.uniform(0.05, 0.7) * self.duration
            x = -np.sign(vx) * (half + margin) - vx * t_in
            z = z - vz * t_in
        elif u < cfg.entry_rate + (1 - cfg.entry_rate) * cfg.exit_rate:  # walks out at t_out
            t_out = rng.uniform(0.3, 0.95) * self.duration
            x = np.sign(vx) * (half + margin) - vx * t_out
            z = z - vz * t_out
        else:  # stays in view if it can
            span = abs(vx) * self.duration
            room = max(2 * half * 0.85 - span, 0.0)
            start = -half * 0.85 + rng.uniform(0, room) if room > 0 else -span / 2
            x = start if vx > 0 else -start
        return x, z

    def _spread(self, kind: str, k: int, unit: _Unit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(dx, dz, phases)`` of the ``k`` members: side by side (groups, look-alikes) with
        nearly the same phase, or all at the unit's position."""
        rng, cfg = self.rng, self.cfg
        if kind in ("group", "lookalike"):
            spacing = rng.uniform(*(cfg.group_spacing if kind == "group" else cfg.lookalike_spacing))
            lat = np.array([np.cos(unit.facing), np.sin(unit.facing)])  # person's left in (X, Z)
            offsets = (np.arange(k) - (k - 1) / 2) * spacing
            dx = offsets * lat[0] + 0.1 * rng.standard_normal(k)
            dz = offsets * lat[1] + 0.1 * rng.standard_normal(k)
            phases = unit.phase0 + cfg.phase_offset * rng.standard_normal(k)
        else:
            dx, dz, phases = np.zeros(k), np.zeros(k), np.full(k, unit.phase0)
        return dx, dz, phases

    def _fill(
        self,
        lay: _Layout,
        members: np.ndarray,
        unit: _Unit,
        kind: str,
        dx: np.ndarray,
        dz: np.ndarray,
        phases: np.ndarray,
    ) -> None:
        """Write the unit's parameters into ``lay`` for each member."""
        rng, k = self.rng, len(members)
        lay.motion[members] = unit.motion
        lay.freq[members] = unit.freq
        lay.speed[members] = unit.speed
        lay.amp[members] = unit.amp
        lay.style[members] = unit.style
        lay.phase0[members] = phases
        lay.facing0[members] = unit.facing
        lay.yaw_rate[members] = unit.yaw_rate
        lay.x0[members] = unit.x + dx
        lay.z0[members] = unit.z + dz
        if kind == "group":
            # a group moves alike but its members are different people with their own styles
            lay.amp[members] = unit.amp * (1 + 0.08 * rng.standard_normal(k))
            lay.style[members] = np.clip(unit.style + 0.1 * rng.standard_normal((k, 4)), 0, 1)
        if kind == "lookalike":
            lay.body_src[members] = members[0]

    def layout(self) -> tuple[_Layout, Bodies]:
        """Everyone's parameters and bodies: a crossing pair, a group in sync and a look-alike
        pair (each with its probability), then independent people."""
        rng, cfg = self.rng, self.cfg
        lo, hi = cfg.people_per_video
        n = min(int(np.exp(rng.uniform(np.log(lo), np.log(hi + 1)))), hi)  # log-uniform
        bodies = Bodies.sample(rng, n, cfg.height_range, cfg.proportion_jitter)
        lay = _Layout(n)
        free = list(range(n))
        # stratified image columns for people who stay in place: spread, but in random order
        self._columns = list((rng.permutation(n) + rng.random(n)) / n)

        def take(k: int) -> np.ndarray:
            out, free[:] = np.array(free[:k]), free[k:]
            return out

        if n >= 2 and rng.random() < cfg.crossing_prob:
            pair = take(2)
            self._unit(lay, pair[:1], bodies, "crossing")
            self._unit(lay, pair[1:], bodies, "crossing")
            self._cross(lay, pair, bodies)
        if len(free) >= 2 and rng.random() < cfg.group_prob:
            k = int(rng.integers(cfg.group_size[0], cfg.group_size[1] + 1))
            self._unit(lay, take(min(k, len(free))), bodies, "group")
        if len(free) >= 2 and rng.random() < cfg.lookalike_prob:
            self._unit(lay, take(2), bodies, "lookalike")
        while free:
            self._unit(lay, take(1), bodies, "single")
        return lay, bodies.take(lay.body_src)

    def _cross(self, lay: _Layout, pair: np.ndarray, bodies: Bodies) -> None:
        """Place two walkers so they pass the same image column at the same time, at different
        depths, walking in opposite directions."""
        rng, cfg = self.rng, self.cfg
        a, b = int(pair[0]), int(pair[1])
        t_c = rng.uniform(0.3, 0.7) * self.duration
        u_c = rng.uniform(0.25, 0.75)
        lay.facing0[a], lay.facing0[b] = np.pi / 2, -np.pi / 2
        gap = rng.uniform(*cfg.crossing_depth_gap)
        lay.z0[b] = lay.z0[a] + gap if rng.random() < 0.5 else max(lay.z0[a] - gap, 0.5 * lay.z0[a])
        for p, direction in ((a, 1.0), (b, -1.0)):
            x_c = (u_c - 0.5) * 2 * self._half_width(lay.z0[p])
            lay.x0[p] = x_c - direction * lay.speed[p] * t_c

    # ---- simulation -----------------------------------------------------------------------------

    def _camera(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-step pan ``[T, 2]`` (pixels), zoom ``[T]``, roll ``[T]``: smooth, identity at t=0."""
        cfg, rng, t = self.cfg, self.rng, self.num_steps
        if rng.random() >= cfg.camera_motion_prob or t < 2:
            return np.zeros((t, 2)), np.ones(t), np.zeros(t)
        n_knots = int(np.ceil(self.duration / cfg.camera_period)) + 1
        knots_t = np.arange(n_knots) * cfg.camera_period / self.dt
        knots = rng.standard_normal((n_knots, 4))
        knots[0] = 0.0
        curves = PchipInterpolator(knots_t, knots, axis=0)(np.arange(t))
        pan = curves[:, :2] * cfg.camera_pan * np.array([self.width, 0.3 * self.height])
        return pan, np.exp(cfg.camera_zoom * curves[:, 2]), cfg.camera_roll * curves[:, 3]

    def simulate(self) -> Video:
        """Lay the scene out, move and articulate everyone, film it, and annotate the frames."""
        return self.film()[0]

    def film(self) -> tuple[Video, SceneGeometry]:
        """:meth:`simulate`'s video plus the noise-free :class:`SceneGeometry` behind it (for
        rendering frames); the random streams are consumed exactly as :meth:`simulate` does."""
        cfg = self.cfg
        lay, bodies = self.layout()
        n, steps = len(lay.motion), self.num_steps
        t = np.arange(steps) * self.dt
        facing, fx, fz, x, z = self._trajectories(lay, t)
        local = self._articulate(lay, bodies, t)

        # body frame -> ground plane -> image (weak perspective at the root depth)
        lx = np.cos(facing)  # X of the person's left
        world_x = x[..., None] + local[..., 0] * lx[..., None] + local[..., 2] * fx[..., None]
        depth = np.maximum(z, 1e-3)
        # depth of each joint (the person's left is (cos, sin) in (X, Z)): orders limbs when drawn
        joint_depth = z[..., None] + local[..., 0] * np.sin(facing)[..., None] + local[..., 2] * fz[..., None]
        u = self.width / 2 + self.focal * world_x / depth[..., None]
        v = self.horizon + self.focal * (self.cam_height - local[..., 1]) / depth[..., None]
        pixel_height = self.focal * bodies.height[:, None] / depth  # [N, T]
        pan, zoom, roll = self._camera()
        u, v = self._apply_camera(u, v, pan, zoom, roll)
        pixel_height = pixel_height * zoom[None]

        keep = np.arange(0, steps, self.stride)
        depth_f, height_f = depth[:, keep].T, pixel_height[:, keep].T  # [F, N]
        pts, present = self._observe(u, v, depth_f, height_f, keep, n, steps)
        video = self._annotate(pts, present)
        geometry = SceneGeometry(
            width=self.width,
            height=self.height,
            stride=self.stride,
            focal=self.focal,
            horizon=self.horizon,
            camera_height=self.cam_height,
            points=np.stack([u[:, keep], v[:, keep]], -1).transpose(1, 0, 2, 3),
            joint_depth=joint_depth[:, keep].transpose(1, 0, 2),
            depth=depth_f,
            pixel_height=height_f,
            pan=pan[keep],
            zoom=zoom[keep],
            roll=roll[keep],
            look=lay.body_src.copy(),
            track_id=_track_ids(present.sum(-1) >= cfg.min_visible_joints),
        )
        return video, geometry

    def _trajectories(self, lay: _Layout, t: np.ndarray) -> tuple[np.ndarray, ...]:
        """Everyone's path on the ground plane over the step times ``t``: heading ``facing``, its
        unit vector ``(fx, fz)`` and position ``(x, z)``, each ``[N, T]``."""
        n = len(lay.motion)
        facing = lay.facing0[:, None] + lay.yaw_rate[:, None] * t[None]
        dance = lay.motion == MOTIONS.index("dance")
        # dancers sway their heading at half their cycle frequency
        facing[dance] += 0.4 * np.sin(np.pi * lay.freq[dance, None] * t[None] + lay.phase0[dance, None])
        fx, fz = _facing(facing)
        vel = lay.speed[:, None] * self.dt
        x = lay.x0[:, None] + np.concatenate([np.zeros((n, 1)), np.cumsum(vel * fx, 1)[:, :-1]], 1)
        z = lay.z0[:, None] + np.concatenate([np.zeros((n, 1)), np.cumsum(vel * fz, 1)[:, :-1]], 1)
        return facing, fx, fz, x, z

    @staticmethod
    def _articulate(lay: _Layout, bodies: Bodies, t: np.ndarray) -> np.ndarray:
        """Joint positions ``[N, T, 15, 3]`` in each person's body frame, in metres, from their
        motion's joint angles at the step times ``t``."""
        n, steps = len(lay.motion), len(t)
        phase = lay.phase0[:, None] + 2 * np.pi * lay.freq[:, None] * t[None]
        angles = {c: np.zeros((n, steps)) for c in CHANNELS}
        for m in np.unique(lay.motion):
            sel = lay.motion == m
            for c, v in motion_angles(MOTIONS[m], phase[sel], lay.amp[sel, None], lay.style[sel]).items():
                angles[c][sel] = v
        return forward_kinematics(angles, bodies) * bodies.height[:, None, None, None]  # metres

    def _apply_camera(
        self, u: np.ndarray, v: np.ndarray, pan: np.ndarray, zoom: np.ndarray, roll: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Image points ``(u, v)`` ``[N, T, 15]`` as the moving camera sees them: rolled and
        zoomed about the image centre, then panned."""
        centre = np.array([self.width / 2, self.height / 2])
        cos_r, sin_r = np.cos(roll)[None, :, None], np.sin(roll)[None, :, None]
        du, dv = u - centre[0], v - centre[1]
        s = zoom[None, :, None]
        u = centre[0] + s * (cos_r * du - sin_r * dv) + pan[None, :, None, 0]
        v = centre[1] + s * (sin_r * du + cos_r * dv) + pan[None, :, None, 1]
        return u, v

    def _observe(
        self,
        u: np.ndarray,
        v: np.ndarray,
        depth_f: np.ndarray,
        height_f: np.ndarray,
        keep: np.ndarray,
        n: int,
        steps: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The annotated frames' jittered points ``[F, N, 15, 2]`` and which joints an annotator
        labels ``[F, N, 15]``: inside the image, not occluded, and in front of the camera."""
        cfg, rng = self.cfg, self.rng
        pts = np.stack([u[:, keep], v[:, keep]], -1).transpose(1, 0, 2, 3)  # [F, N, 15, 2]
        # random occlusion, and which joints hidden by others an annotator would still label:
        # both temporally correlated per (person, joint), drawn in simulated time, then subsampled
        hidden = self._smooth_noise(n, steps)[keep] > ndtri(1 - cfg.joint_occlusion_rate)
        if cfg.body_occlusion:
            behind = body_occlusion(pts, depth_f, height_f, cfg.occluder_width)
            # an annotator infers a hidden joint only from a person mostly in plain view
            in_view = (~behind).sum(-1, keepdims=True) >= NUM_JOINTS // 2 + 1
            guessed = (self._smooth_noise(n, steps)[keep] < ndtri(cfg.occluded_label_rate)) & in_view
            hidden |= behind & ~guessed
        pts = pts + cfg.jitter * height_f[..., None, None] * rng.standard_normal(pts.shape)
        in_frame = (
            (pts[..., 0] >= 0) & (pts[..., 0] < self.width) & (pts[..., 1] >= 0) & (pts[..., 1] < self.height)
        )
        return pts, in_frame & ~hidden & (depth_f[..., None] > 0.3)

    def _smooth_noise(self, n: int, steps: int) -> np.ndarray:
        """``[T, n, 15]`` standard-normal noise, smooth over ~``occlusion_duration`` steps."""
        noise = gaussian_filter1d(
            self.rng.standard_normal((steps, n, NUM_JOINTS)), self.cfg.occlusion_duration / 2, axis=0
        )
        return noise / max(float(noise.std()), 1e-12)

    # ---- annotation -----------------------------------------------------------------------------

    def _annotate(self, pts: np.ndarray, present: np.ndarray) -> Video:
        """Frames of poses from ``[F, N, 15, 2]`` points and ``[F, N, 15]`` presence."""
        cfg = self.cfg
        seen = present.sum(-1) >= cfg.min_visible_joints  # [F, N]
        # head box as PoseTrack draws it: around head_top/head_bottom, 0.8 as wide as tall
        top, bottom = pts[:, :, J["head_top"]], pts[:, :, J["head_bottom"]]
        head_len = np.linalg.norm(top - bottom, axis=-1)
        mid = (top + bottom) / 2
        head_boxes = np.concatenate(
            [mid - np.stack([0.4 * head_len, 0.5 * head_len], -1), np.stack([0.8 * head_len, head_len], -1)],
            -1,
        )  # [F, N, 4]
        keypoints = np.concatenate([pts, present[..., None].astype(np.float64)], -1)
        keypoints[~present] = 0.0  # absent keypoints are (0, 0, 0), as in files
        track_id = _track_ids(seen)
        name = video_name(self.index)
        frames = []
        for fi in range(len(pts)):
            rows = np.flatnonzero(seen[fi])
            rows = rows[np.argsort(track_id[rows])]
            kp = keypoints[fi, rows]
            frames.append(
                Frame(
                    index=fi,
                    keypoints=kp,
                    track_ids=track_id[rows],
                    boxes=keypoint_boxes(kp),
                    head_boxes=head_boxes[fi, rows],
                    scores=np.ones(len(rows)),
                    image_id=10_000_000_000 + 10_000 * self.index + fi,  # PoseTrack18's scheme
                    file_name=f"images/synthetic/{name}/{fi:06d}.jpg",
                    is_labeled=True,
                )
            )
        return Video(
            name=name,
            frames=frames,
            width=self.width,
            height=self.height,
            source="synthetic",
            frame_size_origin="synthetic",
        )


def _track_ids(seen: np.ndarray) -> np.ndarray:
    """``[N]`` track id of each person from ``[F, N]`` annotated-or-not: order of first appearance."""
    first = np.where(seen.any(0), seen.argmax(0), len(seen))
    order = np.lexsort((np.arange(seen.shape[1]), first))
    track_id = np.empty(seen.shape[1], np.int64)
    track_id[order] = np.arange(seen.shape[1])
    return track_id


def _sampler(index: int, seed: int, config: SynthConfig | None) -> SceneSampler:
    if seed < 0 or index < 0:
        raise ValueError(f"generate_video: seed and index must be >= 0, got seed={seed}, index={index}")
    rng = np.random.default_rng([int(seed), int(index)])
    return SceneSampler(config or SynthConfig(), rng, index)


def generate_video(index: int, seed: int, config: SynthConfig | None = None) -> Video:
    """The synthetic video number ``index`` of seed ``seed`` (independent of any other video)."""
    return _sampler(index, seed, config).simulate()


def film_video(index: int, seed: int, config: SynthConfig | None = None) -> tuple[Video, SceneGeometry]:
    """``generate_video(index, seed, config)`` (the same video, bit for bit) and its
    :class:`SceneGeometry`, which :mod:`keytrack.synth.render` draws frames from."""
    return _sampler(index, seed, config).film()


def generate_dataset(
    num_videos: int, seed: int, config: SynthConfig | None = None, first_index: int = 0
) -> Dataset:
    """``num_videos`` synthetic videos (indices ``first_index ...``), deterministic per ``seed``.

    Videos are seeded by ``(seed, index)``: video ``i`` is the same whatever ``num_videos`` is, and
    a disjoint second set (say, validation) is ``first_index=num_train``.
    """
    if num_videos < 0:
        raise ValueError(f"generate_dataset: num_videos must be >= 0, got {num_videos}")
    config = config or SynthConfig()
    return Dataset([generate_video(first_index + i, seed, config) for i in range(num_videos)])
