"""Frames of a video file or of a folder of images, as ``[H, W, 3]`` uint8 RGB arrays.

The detector and the pose estimator (:mod:`keytrack.estimators.base`) take RGB frames; KeyTrack
runs online, one frame after the other (§3.1), so frames are streamed, never all held in memory.
A video file (``.mp4``, ``.avi``, anything FFmpeg reads) is decoded by ``imageio``'s FFmpeg
plugin (the ``imageio-ffmpeg`` wheel ships the ``ffmpeg`` binary); a folder is read image by image
in file-name order with Pillow.

``stride = k`` keeps frames ``0, k, 2k, ...`` (the video at ``1/k`` the frame rate, as
:func:`keytrack.tracking.subsample` does for pose files): a kept frame's ``index`` is its
position among the kept frames, so the tracker's ``Δ`` counts timesteps of the strided video,
while ``source_index`` names the original frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from keytrack.errors import InputError

#: Image files a frame folder may hold.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class VideoError(InputError):
    """An input video or frame folder that cannot be read; the message names the file."""

    def __init__(self, path: str | Path, message: str):
        self.path = str(path)
        super().__init__(f"{path}: {message}")


@dataclass
class FrameSource:
    """Where the frames come from and how many are kept.

    Attributes:
        path: the video file or frame folder.
        name: the video's name in outputs (file stem or folder name).
        width, height: frame size in pixels.
        fps: frames per second of the source (of the kept frames: ``fps / stride``).
        stride: keep every ``stride``-th frame.
        max_frames: keep at most this many frames (None: all).
        files: the image files of a folder source (empty for a video file).
        total: number of frames of the source, when known.
    """

    path: Path
    name: str
    width: int
    height: int
    fps: float
    stride: int = 1
    max_frames: int | None = None
    files: tuple[Path, ...] = ()
    total: int | None = None

    @property
    def kept_fps(self) -> float:
        return self.fps / self.stride

    @property
    def expected_frames(self) -> int | None:
        """How many frames :meth:`frames` will yield, when the source's length is known."""
        n = None if self.total is None else math.ceil(self.total / self.stride)
        if self.max_frames is not None:
            n = self.max_frames if n is None else min(n, self.max_frames)
        return n

    def frames(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(index, source_index, image)`` of each kept frame, in order."""
        kept = 0
        for source_index, image in self._all():
            if self.max_frames is not None and kept >= self.max_frames:
                return
            if source_index % self.stride:
                continue
            yield kept, source_index, image
            kept += 1

    def _all(self) -> Iterator[tuple[int, np.ndarray]]:
        if self.files:
            for i, f in enumerate(self.files):
                if self.max_frames is not None and i >= self.max_frames * self.stride:
                    return
                yield i, _read_image(f, (self.height, self.width))
            return
        import imageio.v3 as iio

        try:
            for i, image in enumerate(iio.imiter(self.path, plugin="FFMPEG")):
                yield i, _rgb(image, self.path)
        except (OSError, RuntimeError, ValueError) as err:
            if isinstance(err, VideoError):
                raise
            raise VideoError(self.path, f"cannot decode the video: {err}") from err


def _rgb(image: np.ndarray, path: Path) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise VideoError(path, f"frames must be RGB images, got an array of shape {image.shape}")
    if image.dtype != np.uint8:
        raise VideoError(path, f"frames must be 8-bit, got {image.dtype}")
    return np.ascontiguousarray(image[..., :3])


def _read_image(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            image = np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as err:
        raise VideoError(path, f"cannot read the image: {err}") from err
    if shape is not None and image.shape[:2] != shape:
        raise VideoError(
            path,
            f"frame size {image.shape[1]} x {image.shape[0]} differs from the first "
            f"frame's {shape[1]} x {shape[0]}",
        )
    return image


def open_frames(
    path: str | Path, stride: int = 1, max_frames: int | None = None, fps: float | None = None
) -> FrameSource:
    """A :class:`FrameSource` for a video file or a folder of images (checked, not yet decoded).

    ``fps`` overrides the source's frame rate (a folder has none: 10 unless given).
    Raises :class:`VideoError` naming the file when it is missing or unreadable.
    """
    path = Path(path)
    if int(stride) < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if max_frames is not None and int(max_frames) < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if not path.exists():
        raise VideoError(path, "no such video file or frame folder")
    if path.is_dir():
        files = tuple(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        if not files:
            raise VideoError(path, f"the folder holds no frames (looked for {', '.join(IMAGE_SUFFIXES)})")
        h, w = _read_image(files[0]).shape[:2]
        return FrameSource(
            path,
            path.name,
            w,
            h,
            float(fps or 10.0),
            int(stride),
            None if max_frames is None else int(max_frames),
            files,
            len(files),
        )
    import imageio.v3 as iio

    try:
        meta = iio.immeta(path, plugin="FFMPEG")
    except (OSError, RuntimeError, ValueError, StopIteration) as err:
        raise VideoError(path, f"not a video FFmpeg can read ({err})") from err
    size = meta.get("size") or ()
    if len(size) != 2 or min(size) <= 0:
        raise VideoError(path, f"the video states no frame size (metadata: {meta})")
    src_fps = float(meta.get("fps") or 0) or 10.0
    nframes = meta.get("nframes")
    if not (isinstance(nframes, (int, float)) and math.isfinite(nframes)):
        duration = meta.get("duration")
        nframes = round(float(duration) * src_fps) if duration else None
    return FrameSource(
        path,
        path.stem,
        int(size[0]),
        int(size[1]),
        float(fps or src_fps),
        int(stride),
        None if max_frames is None else int(max_frames),
        (),
        None if nframes is None else int(nframes),
    )


__all__ = ["FrameSource", "IMAGE_SUFFIXES", "VideoError", "open_frames"]
