"""The knobs of the synthetic scene generator (:mod:`keytrack.synth`).

Every quantity a scene is drawn from is a field of :class:`SynthConfig`; the defaults are tuned
toward the statistics of real fully-annotated video (``keytrack data-stats``, see
``docs/synthetic.md``) while keeping the cases the paper names as hard (§A.6, Fig. 9): crowds of
people who move alike, people hidden behind others, and low frame rates (§3.2's segment token
exists because frames are skipped).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

#: The motion types a person can perform.
MOTIONS: tuple[str, ...] = ("walk", "run", "turn", "jump", "dance", "stand")


def _range(name: str, value, lo: float, hi: float, integer: bool = False) -> None:
    if len(value) != 2:
        raise ValueError(f"SynthConfig.{name}: expected a (min, max) pair, got {value!r}")
    a, b = value
    if integer and (int(a) != a or int(b) != b):
        raise ValueError(f"SynthConfig.{name}: expected integers, got {value!r}")
    if not (lo <= a <= b <= hi):
        raise ValueError(f"SynthConfig.{name}: need {lo} <= min <= max <= {hi}, got {value!r}")


def _weights(name: str, weights: dict, allowed=None) -> None:
    if not weights:
        raise ValueError(f"SynthConfig.{name}: needs at least one entry")
    if allowed is not None and (bad := set(weights) - set(allowed)):
        raise ValueError(f"SynthConfig.{name}: unknown keys {sorted(bad)}; allowed: {list(allowed)}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"SynthConfig.{name}: weights must be >= 0 with a positive sum, got {weights!r}")


def _probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"SynthConfig.{name}: expected a probability in [0, 1], got {value!r}")


@dataclass(frozen=True)
class SynthConfig:
    """Distributions a synthetic video is drawn from. Ranges are inclusive ``(min, max)`` pairs
    drawn uniformly unless said otherwise; lengths are in metres of the simulated world, times in
    simulated frames at :attr:`fps`.

    Scene and sampling
        people_per_video: number of people placed in a scene, drawn log-uniformly (small scenes
            are more common than crowds); not all are in view at every frame: they enter, leave
            and hide behind each other.
        frames_per_video: number of annotated frames of a video (after frame-stride subsampling).
        frame_sizes: ``(width, height)`` choices in pixels, one drawn per video.
        fps: simulation rate; stride 1 samples every simulated frame (video-like frame rate).
        frame_strides: stride -> weight. A video keeps every ``stride``-th simulated frame, so
            its annotated frames are ``stride / fps`` seconds apart (1 = video rate, 4 = every
            4th frame as in the paper's Fig. 10).

    People and motion
        motion_mix: motion type -> weight, over :data:`MOTIONS`: ``walk``, ``run``, ``turn``
            (walks in small circles, so the facing direction sweeps and left/right swap in the
            image), ``jump`` (trampoline-like jumping with arm swing), ``dance`` (arm waving,
            hip sway, stepping), ``stand`` (small sway, varied arm poses).
        height_range: body height in metres; limb lengths are fixed fractions of it.
        proportion_jitter: relative standard deviation of each limb length and of the shoulder
            and hip widths around the canonical proportions (per person).
        speed_jitter: relative standard deviation of a person's motion frequency and walking
            speed around its motion type's nominal value.
        scale_range: person height / frame height at which a person is placed (log-uniform);
            it sets the person's depth, so it also sets the vertical position and the occlusion
            order. People walking toward or away from the camera change scale over time.

    Hard cases (the failure modes of §A.6 / Fig. 9)
        group_prob: probability that a video holds a group that moves in sync (same motion,
            speed, heading and phase up to a small offset), side by side.
        group_size: number of people in such a group.
        group_spacing: distance between neighbours of a group, in metres (shoulders are ~0.45 m).
        lookalike_prob: probability that a video holds a look-alike pair: same body, same motion
            and phase, placed close together.
        lookalike_spacing: distance between the two look-alikes, in metres.
        crossing_prob: probability that a video holds a pair of walkers whose paths cross in
            the image at mid-video, at different depths, so one occludes the other.
        crossing_depth_gap: depth difference between the two crossing walkers, in metres.
        phase_offset: standard deviation (radians) of the phase offset inside a group or
            look-alike pair.

    Entering and leaving
        entry_rate: probability that a walker or runner starts outside the frame and walks in
            during the video (its track starts late).
        exit_rate: probability that a walker or runner that starts in view is placed so it
            walks out before the video ends (its track ends early).

    Camera (a smooth similarity transform of the image per frame)
        camera_motion_prob: probability that a video's camera moves at all.
        camera_pan: standard deviation of the pan (image translation) as a fraction of the
            frame width.
        camera_zoom: standard deviation of the log zoom factor.
        camera_roll: standard deviation of the image rotation, in radians.
        camera_period: seconds between the random knots of the smooth camera curves (shorter:
            faster camera changes; the camera moves in time, whatever the frame stride).
        centre_row: image row, as a fraction of the frame height, of the body centre of a
            person at the middle depth of :attr:`scale_range` (sets the horizon; nearer people
            stand lower in the image, farther ones higher).
        camera_height: height of the camera above the ground, in metres (eye level is ~1.6); the
            higher, the more the image row of a person changes with its depth.

    Visibility and noise
        jitter: standard deviation of the annotation noise of each keypoint coordinate, as a
            fraction of the person's image height (independent per frame).
        body_occlusion: hide the joints that fall inside the body of a person nearer to the
            camera (limbs and torso as capsules, head as a disc).
        occluder_width: multiplier of the widths of those body capsules.
        occluded_label_rate: fraction of the joints hidden behind another person that are
            labelled anyway (annotators label a hidden joint whose place they can infer), for
            people with most of their joints in plain view; drawn per (person, joint) and
            correlated in time like the random occlusion.
        joint_occlusion_rate: fraction of joints hidden at random on top of that (clothing,
            objects, annotator misses), in runs of about :attr:`occlusion_duration` frames.
        occlusion_duration: temporal correlation (simulated frames) of the random occlusion.
        min_visible_joints: a pose with fewer present joints is not annotated in that frame
            (the person is "not seen"; its track resumes when it reappears).
    """

    people_per_video: tuple[int, int] = (2, 12)
    frames_per_video: tuple[int, int] = (40, 80)
    frame_sizes: tuple[tuple[int, int], ...] = ((1280, 720), (960, 540))
    fps: float = 25.0
    frame_strides: dict[int, float] = field(default_factory=lambda: {1: 0.4, 2: 0.2, 3: 0.2, 4: 0.2})

    motion_mix: dict[str, float] = field(
        default_factory=lambda: {
            "walk": 0.2,
            "run": 0.04,
            "turn": 0.08,
            "jump": 0.06,
            "dance": 0.18,
            "stand": 0.44,
        }
    )
    height_range: tuple[float, float] = (1.5, 1.95)
    proportion_jitter: float = 0.04
    speed_jitter: float = 0.15
    scale_range: tuple[float, float] = (0.25, 1.0)

    group_prob: float = 0.4
    group_size: tuple[int, int] = (2, 4)
    group_spacing: tuple[float, float] = (0.5, 0.9)
    lookalike_prob: float = 0.3
    lookalike_spacing: tuple[float, float] = (0.35, 0.6)
    crossing_prob: float = 0.4
    crossing_depth_gap: tuple[float, float] = (0.5, 3.0)
    phase_offset: float = 0.15

    entry_rate: float = 0.25
    exit_rate: float = 0.25

    camera_motion_prob: float = 0.5
    camera_pan: float = 0.06
    camera_zoom: float = 0.06
    camera_roll: float = 0.01
    camera_period: float = 2.0
    centre_row: tuple[float, float] = (0.35, 0.55)
    camera_height: tuple[float, float] = (1.3, 2.4)

    jitter: float = 0.005
    body_occlusion: bool = True
    occluder_width: float = 1.0
    occluded_label_rate: float = 0.75
    joint_occlusion_rate: float = 0.015
    occlusion_duration: float = 8.0
    min_visible_joints: int = 4

    def __post_init__(self) -> None:
        _range("people_per_video", self.people_per_video, 1, 1000, integer=True)
        _range("frames_per_video", self.frames_per_video, 1, 10_000, integer=True)  # image ids
        if not self.frame_sizes or any(len(s) != 2 or min(s) <= 0 for s in self.frame_sizes):
            raise ValueError(
                f"SynthConfig.frame_sizes: expected (width, height) pairs > 0, got {self.frame_sizes!r}"
            )
        if self.fps <= 0:
            raise ValueError(f"SynthConfig.fps: must be > 0, got {self.fps!r}")
        _weights("frame_strides", self.frame_strides)
        if any(int(s) != s or s < 1 for s in self.frame_strides):
            raise ValueError(
                f"SynthConfig.frame_strides: strides must be integers >= 1, got {list(self.frame_strides)}"
            )
        _weights("motion_mix", self.motion_mix, MOTIONS)
        _range("height_range", self.height_range, 0.3, 3.0)
        _range("scale_range", self.scale_range, 1e-3, 5.0)
        _range("group_size", self.group_size, 2, 100, integer=True)
        _range("group_spacing", self.group_spacing, 0.0, 100.0)
        _range("lookalike_spacing", self.lookalike_spacing, 0.0, 100.0)
        _range("crossing_depth_gap", self.crossing_depth_gap, 0.0, 100.0)
        _range("centre_row", self.centre_row, -10.0, 10.0)
        _range("camera_height", self.camera_height, 0.0, 100.0)
        for name in (
            "group_prob",
            "lookalike_prob",
            "crossing_prob",
            "entry_rate",
            "exit_rate",
            "camera_motion_prob",
            "joint_occlusion_rate",
            "occluded_label_rate",
        ):
            _probability(name, getattr(self, name))
        for name in (
            "proportion_jitter",
            "speed_jitter",
            "phase_offset",
            "camera_pan",
            "camera_zoom",
            "camera_roll",
            "jitter",
            "occluder_width",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"SynthConfig.{name}: must be >= 0, got {getattr(self, name)!r}")
        if self.camera_period <= 0:
            raise ValueError(f"SynthConfig.camera_period: must be > 0, got {self.camera_period!r}")
        if self.occlusion_duration <= 0:
            raise ValueError(f"SynthConfig.occlusion_duration: must be > 0, got {self.occlusion_duration!r}")
        if not 1 <= self.min_visible_joints <= 15:
            raise ValueError(
                f"SynthConfig.min_visible_joints: must be in 1..15, got {self.min_visible_joints!r}"
            )

    def to_json(self) -> str:
        """Canonical JSON of every knob (the cache key of :func:`keytrack.synth.default_dataset`)."""
        return json.dumps(asdict(self), sort_keys=True, default=str)
