"""RGB frames of the synthetic scenes, for baselines that look at pixels (§5.2, A.5).

KeyTrack matches poses from keypoints alone; the paper's comparison in §5.2 (details in A.5) feeds
a CNN with image crops of the pose pairs instead, and §A.6 names the case that defeats such a CNN:
people close together who look alike ("wearing the same uniform"). This module draws the frames a
camera would have filmed of a synthetic scene (:mod:`keytrack.synth.scene`) so that baseline can
run on the same videos as KeyTrack:

* **People** are articulated capsules along :data:`keytrack.skeleton.LIMBS` with the widths the
  scene's occlusion model uses (so a joint the annotation hides behind someone is covered by a
  drawn body), a torso polygon and a head with hair. Clothing (shirt, trousers, sleeves), skin and
  hair colours are drawn per person and kept along the video; the two people of a look-alike pair
  (same body, same motion) get the same colours, which makes them the hard case for crops too.
* **Drawing order**: people far to near, so nearer people cover farther ones; inside a person,
  its parts far to near (the far arm disappears behind the torso of someone seen side-on; a head
  seen from behind is hair).
* **Background**: a ground plane with tiles seen in perspective below the horizon and a skyline of
  walls above it, with seeded noise, laid out in the coordinates of a still camera and warped per
  frame by the scene's camera (pan, zoom, roll), so it moves exactly as the people's positions do.

Nothing here consumes the scene generator's random stream: the geometry comes from
:func:`keytrack.synth.scene.film_video` (which returns the same :class:`Video` as
:func:`~keytrack.synth.scene.generate_video`), and colours and texture come from a separate
``SeedSequence`` child of ``(seed, index)``. Rendering is deterministic for a seed.

Frames are drawn with PIL (one affine warp of the background texture, then one filled shape per
body part); a 1280x720 frame takes a few milliseconds. ``scale`` renders at a fraction of the
video's size (keypoint ``(x, y)`` is at pixel ``(x, y) * scale``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from keytrack.poses import Frame, Video
from keytrack.skeleton import JOINTS, LIMBS
from keytrack.synth.config import SynthConfig
from keytrack.synth.scene import SceneGeometry, film_video

J = {name: i for i, name in enumerate(JOINTS)}

#: Spawn key of the renderer's random stream: a child of ``SeedSequence([seed, index])`` that the
#: scene generator (which uses the parent) never draws from.
RENDER_STREAM = 0x52454E44

#: People nearer than this (metres) are not drawn (the annotation drops them too).
MIN_DEPTH = 0.3

# body parts: (colour key, segments as pairs of extended-joint indices, capsule radius in person
# heights). Extended joints: the 15 joints, 15 = shoulder centre, 16 = hip centre. Radii match
# keytrack.synth.scene's occluder capsules.
_SC, _HC = 15, 16
_PARTS: tuple[tuple[str, tuple[tuple[int, int], ...], float], ...] = (
    ("trousers", ((J["left_hip"], J["left_knee"]), (J["left_knee"], J["left_ankle"])), 0.055),
    ("trousers", ((J["right_hip"], J["right_knee"]), (J["right_knee"], J["right_ankle"])), 0.055),
    (
        "shirt",
        (
            (_SC, _HC),
            (J["left_shoulder"], J["left_hip"]),
            (J["right_shoulder"], J["right_hip"]),
            (J["left_shoulder"], J["right_shoulder"]),
            (J["head_bottom"], _SC),
        ),
        0.05,
    ),
    ("arm", ((J["left_shoulder"], J["left_elbow"]), (J["left_elbow"], J["left_wrist"])), 0.035),
    ("arm", ((J["right_shoulder"], J["right_elbow"]), (J["right_elbow"], J["right_wrist"])), 0.035),
    ("head", ((J["head_top"], J["nose"]), (J["nose"], J["head_bottom"])), 0.06),
)
_TRUNK_RADIUS = 0.1  # the trunk core capsule (shoulder centre to hip centre)
_PART_JOINTS = [sorted({j for seg in segs for j in seg if j < 15}) for _, segs, _ in _PARTS]
_PART_JOINTS[2] = [J[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
#: ``[parts, 15]`` averaging matrix: a part's depth is the mean depth of its joints
_PART_MEAN = np.zeros((len(_PARTS), len(JOINTS)))
for _p, _js in enumerate(_PART_JOINTS):
    _PART_MEAN[_p, _js] = 1.0 / len(_js)

_SKIN_TONES = np.array(
    [[255, 219, 172], [241, 194, 125], [224, 172, 105], [198, 134, 66], [141, 85, 36], [92, 58, 32]],
    np.float64,
)


def render_rng(seed: int, index: int) -> np.random.Generator:
    """The renderer's random stream of video ``index`` of ``seed`` (independent of the scene's)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)], spawn_key=(RENDER_STREAM,)))


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``[..., 3]`` RGB in 0..255 from hue, saturation, value in 0..1 (vectorised)."""
    i = np.floor(h * 6).astype(np.int64) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], -1) * 255


@dataclass(frozen=True)
class Palette:
    """Per-person colours ``[N, 3]`` uint8 RGB and sleeve length ``[N]``; people with the same
    :attr:`SceneGeometry.look` (a look-alike pair) have the same row."""

    shirt: np.ndarray
    trousers: np.ndarray
    skin: np.ndarray
    hair: np.ndarray
    long_sleeves: np.ndarray

    @staticmethod
    def sample(rng: np.random.Generator, look: np.ndarray) -> "Palette":
        """Colours for each distinct look, then given to the people who have it. Shirt hues are
        spread by the golden ratio, so different people always wear different shirts."""
        n = len(look)
        hue = (rng.random() + 0.6180339887 * rng.permutation(n)) % 1.0
        shirt = _hsv_to_rgb(hue, rng.uniform(0.45, 0.9, n), rng.uniform(0.55, 0.95, n))
        trousers = _hsv_to_rgb(rng.random(n), rng.uniform(0.15, 0.6, n), rng.uniform(0.15, 0.5, n))
        skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES), size=n)] * rng.uniform(0.92, 1.05, (n, 1))
        hair = _hsv_to_rgb(rng.uniform(0.02, 0.12, n), rng.uniform(0.3, 0.8, n), rng.uniform(0.05, 0.6, n))
        sleeves = rng.random(n) < 0.5

        def u8(a: np.ndarray) -> np.ndarray:
            return np.clip(np.rint(a), 0, 255).astype(np.uint8)[look]

        return Palette(u8(shirt), u8(trousers), u8(skin), u8(hair), sleeves[look])


class SceneRenderer:
    """Draws the frames of one synthetic video from its :class:`SceneGeometry`.

    ``render(f)`` is the ``[H, W, 3]`` uint8 RGB image of annotated frame ``f`` (``Frame.index``),
    ``H, W`` = the video's height and width times ``scale``. The background texture is built once
    per renderer (tens of milliseconds); each frame is then a warp plus the people.
    """

    def __init__(self, geometry: SceneGeometry, seed: int, index: int, scale: float = 1.0) -> None:
        if not scale > 0:
            raise ValueError(f"SceneRenderer: scale must be > 0, got {scale!r}")
        self.geometry, self.scale = geometry, float(scale)
        self.size = (max(1, round(geometry.width * scale)), max(1, round(geometry.height * scale)))
        rng = render_rng(seed, index)
        self.palette = Palette.sample(rng, geometry.look)
        self._texture, self._origin = _background_texture(geometry, rng, self.scale, self.size)

    @property
    def num_frames(self) -> int:
        return self.geometry.num_frames

    def _check(self, frame: int) -> None:
        if not 0 <= frame < self.geometry.num_frames:
            raise ValueError(f"SceneRenderer: frame {frame} out of range 0..{self.geometry.num_frames - 1}")

    def background(self, frame: int) -> Image.Image:
        """The background of ``frame`` alone: the texture seen through that frame's camera."""
        self._check(frame)
        g, s = self.geometry, self.scale
        c = np.array([g.width / 2, g.height / 2])
        cos_r, sin_r = np.cos(g.roll[frame]), np.sin(g.roll[frame])
        a = np.array([[cos_r, sin_r], [-sin_r, cos_r]]) / g.zoom[frame]  # R(-roll) / zoom
        # output pixel o -> image p = o / s -> still-camera q = c + A (p - pan - c) -> texture (q - origin) s
        b = s * (c - self._origin - a @ (g.pan[frame] + c))
        data = (a[0, 0], a[0, 1], b[0], a[1, 0], a[1, 1], b[1])
        return self._texture.transform(
            self.size, Image.Transform.AFFINE, data, resample=Image.Resampling.NEAREST
        )

    def render(self, frame: int, people: bool = True) -> np.ndarray:
        """``[H, W, 3]`` uint8 RGB image of annotated frame ``frame`` (without people: background)."""
        image = self.background(frame)
        if people:
            self._draw_people(ImageDraw.Draw(image), frame)
        return np.asarray(image)

    def _draw_people(self, draw: ImageDraw.ImageDraw, f: int) -> None:
        g, s, pal = self.geometry, self.scale, self.palette
        pts = g.points[f] * s  # [N, 15, 2]
        ext = np.concatenate(
            [
                pts,
                pts[:, [J["left_shoulder"], J["right_shoulder"]]].mean(1, keepdims=True),
                pts[:, [J["left_hip"], J["right_hip"]]].mean(1, keepdims=True),
            ],
            1,
        )
        height = g.pixel_height[f] * s  # [N]
        part_depth = g.joint_depth[f] @ _PART_MEAN.T  # [N, parts]
        jd = g.joint_depth[f]
        from_behind = jd[:, J["nose"]] > (jd[:, J["head_top"]] + jd[:, J["head_bottom"]]) / 2
        # cull people out of the picture or too near, then far to near
        pad = 0.12 * height[:, None]
        lo, hi = pts.min(1) - pad, pts.max(1) + pad
        show = (
            (g.depth[f] > MIN_DEPTH)
            & (hi[:, 0] >= 0)
            & (hi[:, 1] >= 0)
            & (lo[:, 0] < self.size[0])
            & (lo[:, 1] < self.size[1])
        )
        people = np.flatnonzero(show)
        for i in people[np.argsort(-g.depth[f, people], kind="stable")]:
            colours = {
                "shirt": tuple(pal.shirt[i]),
                "trousers": tuple(pal.trousers[i]),
                "skin": tuple(pal.skin[i]),
                "hair": tuple(pal.hair[i]),
            }
            sleeve = colours["shirt"] if pal.long_sleeves[i] else colours["skin"]
            h = float(height[i])
            for p in np.argsort(-part_depth[i], kind="stable"):
                key, segs, radius = _PARTS[p]
                r = radius * h
                if key == "shirt":
                    quad = ext[i, [J["left_shoulder"], J["right_shoulder"], J["right_hip"], J["left_hip"]]]
                    draw.polygon([tuple(q) for q in quad], fill=colours["shirt"])
                    _capsule(draw, ext[i, _SC], ext[i, _HC], _TRUNK_RADIUS * h, colours["shirt"])
                    for a, b in segs[1:]:
                        _capsule(draw, ext[i, a], ext[i, b], r, colours["shirt"])
                elif key == "arm":
                    (a, e), (_, w) = segs
                    _capsule(draw, ext[i, a], ext[i, e], r, colours["shirt"])
                    _capsule(draw, ext[i, e], ext[i, w], 0.9 * r, sleeve)
                    _disc(draw, ext[i, w], 1.15 * r, colours["skin"])  # hand
                elif key == "trousers":
                    (a, k), (_, an) = segs
                    _capsule(draw, ext[i, a], ext[i, k], r, colours["trousers"])
                    _capsule(draw, ext[i, k], ext[i, an], 0.9 * r, colours["trousers"])
                    _disc(draw, ext[i, an], 0.9 * r, (40, 36, 34))  # shoe
                else:  # head
                    face = colours["hair"] if from_behind[i] else colours["skin"]
                    for a, b in segs:
                        _capsule(draw, ext[i, a], ext[i, b], r, face)
                    _disc(draw, ext[i, J["head_top"]], r, colours["hair"])


def _disc(draw: ImageDraw.ImageDraw, c: np.ndarray, r: float, fill: tuple) -> None:
    draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=fill)


def _capsule(draw: ImageDraw.ImageDraw, a: np.ndarray, b: np.ndarray, r: float, fill: tuple) -> None:
    """A segment of half-width ``r`` with round ends."""
    draw.line([(a[0], a[1]), (b[0], b[1])], fill=fill, width=max(1, int(round(2 * r))))
    _disc(draw, a, r, fill)
    _disc(draw, b, r, fill)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """``[h, w]`` float32 noise of unit scale varying over about ``cell`` pixels (bilinear
    upsampling of a coarse random grid)."""
    h, w = shape
    coarse = rng.standard_normal((int(h / cell) + 2, int(w / cell) + 2)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR))


def _background_texture(
    g: SceneGeometry, rng: np.random.Generator, scale: float, size: tuple[int, int]
) -> tuple[Image.Image, np.ndarray]:
    """The background in still-camera pixel coordinates, covering every frame's view.

    Returns the RGB texture (``scale`` texture pixels per image pixel) and the still-camera
    position of its top-left corner. Below the horizon: a tiled ground plane in perspective
    (1 m tiles, faded with distance), above it: a skyline of walls against the sky; seeded noise
    over both so the camera's motion is visible everywhere.
    """
    c = np.array([g.width / 2, g.height / 2])
    corners = np.array([[0, 0], [g.width, 0], [0, g.height], [g.width, g.height]], np.float64)
    cos_r, sin_r = np.cos(g.roll), np.sin(g.roll)
    inv = np.stack([np.stack([cos_r, sin_r], -1), np.stack([-sin_r, cos_r], -1)], -2) / g.zoom[:, None, None]
    q = c + np.einsum("fij,fkj->fki", inv, corners[None] - g.pan[:, None] - c)  # [F, 4, 2]
    lo = np.floor(q.reshape(-1, 2).min(0)) - 4
    hi = np.ceil(q.reshape(-1, 2).max(0)) + 4
    tw, th = (max(1, int(np.ceil(v))) for v in (hi - lo) * scale)
    u = (lo[0] + (np.arange(tw, dtype=np.float32) + 0.5) / scale)[None, :]  # still-camera x
    v = (lo[1] + (np.arange(th, dtype=np.float32) + 0.5) / scale)[:, None]  # still-camera y

    # ground: tiles on the plane y = 0 seen from camera_height, fading toward the horizon
    below = v - g.horizon
    z = g.focal * g.camera_height / np.maximum(below, 1e-3)
    x = (u - g.width / 2) * z / g.focal
    tile = rng.uniform(0.8, 1.6)
    checker = ((np.floor(x / tile) + np.floor(z / tile)) % 2) * 2 - 1
    fade = np.clip((25.0 - z) / 15.0, 0.0, 1.0)
    ground_rgb = _hsv_to_rgb(
        np.array(rng.uniform(0.05, 0.35)), np.array(rng.uniform(0.15, 0.5)), np.array(rng.uniform(0.35, 0.6))
    )
    # skyline: walls of random width, height and brightness standing on the horizon
    bw = rng.uniform(60, 220)
    band = np.floor((u - lo[0]) / bw).astype(np.int64)
    n_bands = int(band.max()) + 1
    top = (g.horizon - rng.uniform(0.1, 0.6, n_bands) * g.height).astype(np.float32)
    shade = rng.uniform(0.6, 1.2, n_bands).astype(np.float32)
    wall_rgb = _hsv_to_rgb(
        np.array(rng.random()), np.array(rng.uniform(0.05, 0.35)), np.array(rng.uniform(0.45, 0.8))
    )
    sky_rgb = np.array([150.0, 190.0, 230.0]) * rng.uniform(0.85, 1.05)

    noise = 0.12 * _smooth_noise(rng, (th, tw), 48 * scale) + 0.04 * rng.standard_normal(
        (th, tw), dtype=np.float32
    )
    is_ground = below > 0
    is_wall = ~is_ground & (v >= top[band])
    gain_ground = 1 + 0.12 * checker * fade + noise
    gain_wall = shade[band] * (1 + 0.5 * noise)
    gain_sky = 1 + 0.15 * (v - lo[1]) / g.height + 0.3 * noise
    gain = np.where(is_ground, gain_ground, np.where(is_wall, gain_wall, gain_sky))
    kind = np.where(is_ground, 0, np.where(is_wall, 1, 2))  # ground, wall, sky
    rgb = np.stack([ground_rgb, wall_rgb, sky_rgb]).astype(np.float32)[kind] * gain[..., None]
    rgb = np.clip(rgb, 0, 255, out=rgb).astype(np.uint8)
    return Image.fromarray(rgb), lo


def render_scene(
    index: int, seed: int, config: SynthConfig | None = None, scale: float = 1.0
) -> tuple[Video, SceneRenderer]:
    """The synthetic video ``index`` of ``seed`` (equal to ``generate_video(index, seed, config)``)
    and the renderer of its frames."""
    video, geometry = film_video(index, seed, config)
    return video, SceneRenderer(geometry, seed, index, scale)


#: Colours of drawn skeletons, by track id.
_TRACK_COLOURS = _hsv_to_rgb((np.arange(12) * 0.6180339887) % 1.0, np.full(12, 0.9), np.full(12, 1.0)).astype(
    np.uint8
)


def draw_skeletons(image: np.ndarray, frame: Frame, scale: float = 1.0) -> np.ndarray:
    """A copy of ``image`` with ``frame``'s poses drawn on it: limbs between present keypoints and
    a dot per keypoint, coloured by track id (keypoints scaled by ``scale``)."""
    out = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(out)
    kp = frame.keypoints
    xy = kp[..., :2] * scale
    present = kp[..., 2] > 0
    width = max(1, round(3 * scale))
    limbs = np.array(LIMBS)
    for p in range(len(kp)):
        tid = int(frame.track_ids[p])
        rgb = _TRACK_COLOURS[tid % len(_TRACK_COLOURS)] if tid >= 0 else (255, 255, 255)
        colour = tuple(int(c) for c in rgb)
        ok = present[p, limbs[:, 0]] & present[p, limbs[:, 1]]
        for a, b in limbs[ok]:
            draw.line([tuple(xy[p, a]), tuple(xy[p, b])], fill=colour, width=width)
        for x, y in xy[p, present[p]]:
            draw.ellipse([x - width, y - width, x + width, y + width], fill=(255, 255, 255), outline=colour)
    return np.asarray(out)
