"""Image frames of a dataset and crops of its poses: the input of the CNN-on-crops baseline.

§5.2 of the paper compares the Transformer Matching Network with a CNN that sees "visual
features from bounding box pose pairs" (architecture in A.5), and §4.2 with visual trackers; both
need the pixels under each pose. This module gives them through one interface:

* :class:`FrameSource` — anything with ``image(video, frame) -> [H, W, 3] uint8 RGB``.
* :class:`SyntheticFrames` — frames of the synthetic scenes, drawn by
  :mod:`keytrack.synth.render` (video name ``synth_000123`` → scene index 123 of the seed).
* :class:`ImageFiles` — real frames: ``frame.file_name`` under the dataset root (PoseTrack18
  layout ``images/<split>/<video>/<n>.jpg``), with a small LRU cache of decoded frames.
* :func:`frame_source` — the source a ``data`` config section implies (``root: null`` is the
  embedded synthetic set).
* :func:`crop_boxes` — bilinear crops of ``x, y, w, h`` boxes resized to one size, pixels outside
  the image black, all boxes of an image in one ``torch.nn.functional.grid_sample`` call.
* :func:`pose_crops` — one crop per pose in ``dataset.table()`` row order, one frame decoded or
  rendered at a time, optionally cached on disk.

**Crop box of a pose.** The pose's box (``Frame.boxes``); where it is NaN, the tight box of its
present keypoints; then enlarged 1.25 times about its centre (both sides), so limbs at the box
edge and a little context stay in the crop. The box is not squared: the crop is the box stretched
to ``size``. A pose without any box or present keypoint gets a black crop. Boxes are in the
annotation's pixels; when an image's size differs from the video's ``width x height`` (a
synthetic source rendered at ``scale``) they are scaled to the image.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from keytrack.atomic import atomic_path
from keytrack.io.errors import DataError, frame_label
from keytrack.poses import Dataset, Frame, Video, keypoint_boxes

#: Factor by which a pose's box is enlarged about its centre before cropping.
BOX_DILATION = 1.25

_SYNTH_NAME = re.compile(r"^synth_(\d+)$")
_SYNTH_FILE = re.compile(r"/(\d+)\.jpg$")


@runtime_checkable
class FrameSource(Protocol):
    """Where the pixels of a frame come from."""

    def image(self, video: Video, frame: Frame) -> np.ndarray:  # [H,W,3] uint8 RGB
        """``[H, W, 3]`` uint8 RGB image of ``frame`` of ``video``."""
        ...


class SyntheticFrames:
    """Frames of the synthetic scenes of ``seed`` (and ``config``), rendered at ``scale`` times
    the video's size by :class:`keytrack.synth.render.SceneRenderer`.

    The video's name gives the scene index (``keytrack.synth.scene.video_name``); the renderers
    of the last ``cache_size`` videos are kept, so reading a video's frames in turn renders each
    frame once and builds each scene once.
    """

    def __init__(self, seed: int, config=None, scale: float = 1.0, cache_size: int = 4) -> None:
        from keytrack.synth.config import SynthConfig

        if not scale > 0:
            raise ValueError(f"SyntheticFrames: scale must be > 0, got {scale!r}")
        self.seed, self.config, self.scale = int(seed), config or SynthConfig(), float(scale)
        self._renderers: OrderedDict[int, Any] = OrderedDict()
        self._cache_size = max(1, int(cache_size))

    @property
    def cache_token(self) -> str:
        """What the rendered pixels depend on (seed, configuration, scale, renderer source)."""
        here = Path(__file__).parent / "synth"
        code = hashlib.sha256(
            b"".join((here / n).read_bytes() for n in ("render.py", "scene.py", "motion.py"))
        ).hexdigest()
        return f"synthetic:{self.seed}:{self.config.to_json()}:{self.scale}:{code}"

    def renderer(self, video: Video):
        """The :class:`~keytrack.synth.render.SceneRenderer` of ``video`` (checked against it)."""
        from keytrack.synth.render import SceneRenderer
        from keytrack.synth.scene import film_video

        match = _SYNTH_NAME.match(video.name)
        if match is None:
            raise ValueError(
                f"SyntheticFrames: video {video.name!r} ({video.source or 'no source'}) "
                "is not a synthetic scene (expected a name like synth_000012)"
            )
        index = int(match.group(1))
        if index in self._renderers:
            self._renderers.move_to_end(index)
            return self._renderers[index]
        _, geometry = film_video(index, self.seed, self.config)
        if (geometry.width, geometry.height) != (video.width, video.height):
            raise ValueError(
                f"SyntheticFrames: video {video.name} is {video.width:g}x{video.height:g} but scene "
                f"{index} of seed {self.seed} is {geometry.width:g}x{geometry.height:g}: the dataset "
                "was generated with another seed or configuration"
            )
        renderer = SceneRenderer(geometry, self.seed, index, self.scale)
        self._renderers[index] = renderer
        while len(self._renderers) > self._cache_size:
            self._renderers.popitem(last=False)
        return renderer

    def image(self, video: Video, frame: Frame) -> np.ndarray:
        renderer = self.renderer(video)
        number = scene_frame_number(frame)
        if not 0 <= number < renderer.num_frames:
            raise ValueError(
                f"SyntheticFrames: {video.name} has frames 0..{renderer.num_frames - 1}, "
                f"asked for frame {number}"
            )
        return renderer.render(number)


def scene_frame_number(frame: Frame) -> int:
    """The frame's position in its synthetic scene: the number of its image file
    (``images/synthetic/<video>/<n>.jpg``), which :func:`keytrack.tracking.subsample` keeps while it
    renumbers ``frame.index``; ``frame.index`` when the frame has no such file name."""
    match = _SYNTH_FILE.search(frame.file_name or "")
    return int(match.group(1)) if match else int(frame.index)


class ImageFiles:
    """Frames read from image files: ``root / frame.file_name`` (PoseTrack18 layout
    ``images/<split>/<video>/<n>.jpg``), decoded to RGB; the last ``cache_size`` decoded frames
    are kept (pose pairs read the same frames again)."""

    def __init__(self, root: str | os.PathLike, cache_size: int = 8) -> None:
        self.root = Path(root)
        self._cache: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._cache_size = max(0, int(cache_size))

    @property
    def cache_token(self) -> str:
        return f"images:{self.root.resolve()}"

    def path(self, video: Video, frame: Frame) -> Path:
        """The image file of ``frame``; :class:`DataError` when the annotation names none."""
        if not frame.file_name:
            raise DataError(
                video.source or video.name,
                "no image file named for this frame",
                frame=frame_label(frame.index, frame.image_id),
                field="images[].file_name",
            )
        return self.root / frame.file_name

    def image(self, video: Video, frame: Frame) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        path = self.path(video, frame)
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        where = dict(
            frame=frame_label(frame.index, frame.image_id, frame.file_name), field="images[].file_name"
        )
        if not path.is_file():
            raise DataError(
                video.source or video.name, f"image file {path} not found (data root {self.root})", **where
            )
        try:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise DataError(
                video.source or video.name, f"image file {path} is unreadable: {err}", **where
            ) from None
        if self._cache_size:
            self._cache[path] = rgb
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return rgb


def frame_source(data_cfg) -> FrameSource:
    """The frames of the data a config's ``data`` section describes: ``root`` None → the
    embedded synthetic scenes (:class:`SyntheticFrames` of ``data.synthetic.seed``), else
    :class:`ImageFiles` under ``root``."""
    root = data_cfg.get("root") if hasattr(data_cfg, "get") else getattr(data_cfg, "root", None)
    if root is None:
        return SyntheticFrames(int(data_cfg.synthetic.seed))
    return ImageFiles(root)


def crop_boxes(
    image: np.ndarray | torch.Tensor, boxes: np.ndarray | torch.Tensor, size: tuple[int, int] = (96, 72)
) -> torch.Tensor:
    """``[N, 3, h, w]`` uint8 crops of ``boxes`` ``[N, 4]`` (``x, y, w, h`` pixels) from
    ``image`` ``[H, W, 3]`` uint8, each box resized to ``size = (w, h)`` bilinearly.

    Pixel ``(i, j)`` of a crop samples the image at the box point ``(x + (j + 0.5) w / size_w,
    y + (i + 0.5) h / size_h)`` (pixel ``k`` of the image covers ``[k, k + 1)``); samples outside
    the image are black, and a box with a NaN gives an all-black crop. One ``grid_sample`` call
    for all boxes.
    """
    if isinstance(image, torch.Tensor):
        img = image
    else:
        with warnings.catch_warnings():  # a read-only array (PIL's) is only read from here
            warnings.simplefilter("ignore", UserWarning)
            img = torch.as_tensor(np.asarray(image))
    if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != torch.uint8:
        raise ValueError(f"crop_boxes: image must be [H, W, 3] uint8, got {tuple(img.shape)} {img.dtype}")
    b = torch.as_tensor(
        np.asarray(boxes, np.float64) if not isinstance(boxes, torch.Tensor) else boxes, dtype=torch.float32
    )
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"crop_boxes: boxes must be [N, 4] (x, y, w, h), got {tuple(b.shape)}")
    cw, ch = (int(v) for v in size)
    if cw < 1 or ch < 1:
        raise ValueError(f"crop_boxes: size must be (w, h) >= 1, got {size!r}")
    n = len(b)
    if n == 0:
        return torch.zeros((0, 3, ch, cw), dtype=torch.uint8)
    height, width = img.shape[:2]
    fx = (torch.arange(cw, dtype=torch.float32) + 0.5) / cw  # [cw] in (0, 1)
    fy = (torch.arange(ch, dtype=torch.float32) + 0.5) / ch  # [ch]
    x = b[:, 0, None] + fx[None] * b[:, 2, None]  # [N, cw] image pixels
    y = b[:, 1, None] + fy[None] * b[:, 3, None]  # [N, ch]
    bad = torch.isnan(b).any(1)
    x = torch.where(bad[:, None], torch.full_like(x, -10.0 * width - 10), x)  # far outside: black
    y = torch.where(bad[:, None], torch.full_like(y, -10.0 * height - 10), y)
    gx = (2 * x / width - 1)[:, None, :].expand(n, ch, cw)  # align_corners=False
    gy = (2 * y / height - 1)[:, :, None].expand(n, ch, cw)
    grid = rearrange(torch.stack([gx, gy], -1), "n h w c -> 1 (n h) w c")
    src = rearrange(img, "h w c -> 1 c h w").float()
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = rearrange(out, "1 c (n h) w -> n c h w", n=n)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def crop_regions(
    table_keypoints: np.ndarray, table_boxes: np.ndarray, dilation: float = BOX_DILATION
) -> np.ndarray:
    """``[N, 4]`` crop boxes of poses: the box, NaN → tight box of the present keypoints, then
    enlarged ``dilation`` times about its centre."""
    boxes = np.array(table_boxes, np.float64, copy=True).reshape(-1, 4)
    missing = np.isnan(boxes).any(1)
    if missing.any():
        boxes[missing] = keypoint_boxes(np.asarray(table_keypoints)[missing])
    centre = boxes[:, :2] + boxes[:, 2:] / 2
    wh = boxes[:, 2:] * dilation
    return np.concatenate([centre - wh / 2, wh], 1)


def _content_key(dataset: Dataset, source: FrameSource, size: tuple[int, int]) -> str:
    """Hash of what the crops depend on: poses, frames, videos, the source and the crop size."""
    t = dataset.table()
    h = hashlib.sha256(b"keytrack.frames.pose_crops v1")
    for a in (t.keypoints, t.boxes, t.video, t.frame, t.frame_size):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    for v in dataset.videos:
        h.update(f"{v.name}\0{v.width}\0{v.height}\0".encode())
        h.update("\0".join(f.file_name for f in v.frames).encode())
    h.update(str(getattr(source, "cache_token", type(source).__qualname__)).encode())
    h.update(f"{int(size[0])}x{int(size[1])}".encode())
    return h.hexdigest()[:20]


def pose_crops(
    dataset: Dataset,
    source: FrameSource,
    size: tuple[int, int] = (96, 72),
    cache_dir: str | os.PathLike | None = None,
) -> torch.Tensor:
    """``[N, 3, h, w]`` uint8 crop of every pose, in ``dataset.table()`` row order (crop boxes as
    the module docstring says), ``size = (w, h)``. Frames are read or rendered one at a time.

    With ``cache_dir``, the crops are stored as ``cache_dir/pose_crops-<key>.npy`` (written
    atomically) and read back on the next call; ``<key>`` hashes the dataset's poses, frames and
    videos, the source's ``cache_token`` (its type name if it has none) and ``size``.
    """
    cw, ch = (int(v) for v in size)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"pose_crops-{_content_key(dataset, source, (cw, ch))}.npy"
        if path.is_file():
            return torch.from_numpy(np.load(path))
    table = dataset.table()
    regions = crop_regions(table.keypoints, table.boxes)
    out = torch.zeros((len(table), 3, ch, cw), dtype=torch.uint8)
    # rows of one frame are contiguous: table() sorts by (video, frame) and keeps pose order
    key = table.video * (int(table.frame.max(initial=0)) + 1) + table.frame
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    for vi in np.unique(table.video):
        video = dataset.videos[int(vi)]
        indices = [f.index for f in video.frames]
        if len(set(indices)) != len(indices):
            raise ValueError(
                f"pose_crops: video {video.name} ({video.source or 'no source'}) has "
                "several frames with the same index"
            )
    by_index = {vi: {f.index: f for f in v.frames} for vi, v in enumerate(dataset.videos)}
    for s, e in zip(starts, ends):
        video = dataset.videos[int(table.video[s])]
        frame = by_index[int(table.video[s])][int(table.frame[s])]
        image = source.image(video, frame)
        sx, sy = image.shape[1] / video.width, image.shape[0] / video.height
        out[s:e] = crop_boxes(image, regions[s:e] * np.array([sx, sy, sx, sy]), (cw, ch))
    if path is not None:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, out.numpy())
    return out
