"""Tracked poses drawn on their frames, written as MP4 or GIF (Fig. 1 / Fig. 10 style).

Each track id gets a colour (Matplotlib's ``tab20``, cycled); a pose is drawn as its limbs
(:data:`keytrack.skeleton.LIMBS`) and joints where both ends have confidence ``>= threshold``,
and its track id is written above its highest visible keypoint. Drawing uses Pillow's
``ImageDraw``. Writers stream: an MP4 goes through FFmpeg (``imageio-ffmpeg``, H.264) frame by
frame; a GIF keeps palette frames (one byte a pixel) until it is saved. Both write to a temporary
file beside the target and rename it when complete (a file is whole or absent).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from keytrack.skeleton import LIMBS, NUM_JOINTS

FORMATS = ("mp4", "gif")


def track_colours(track_ids: np.ndarray) -> np.ndarray:
    """``[P, 3]`` uint8 RGB colour of each track id (``tab20``, cycled; -1 is grey)."""
    from matplotlib import colormaps

    table = (np.asarray(colormaps["tab20"].colors) * 255).round().astype(np.uint8)
    table = np.concatenate([table[0::2], table[1::2]])  # the 10 strong colours first
    ids = np.asarray(track_ids, dtype=np.int64)
    return np.where((ids >= 0)[:, None], table[np.mod(ids, len(table))], np.uint8(160))


def draw_poses(
    image: np.ndarray,
    keypoints: np.ndarray,
    track_ids: np.ndarray,
    threshold: float = 0.3,
    scale: float = 1.0,
) -> np.ndarray:
    """A copy of ``image`` (``[H, W, 3]`` uint8) with the poses drawn, resized by ``scale``."""
    from PIL import Image, ImageDraw, ImageFont

    pil = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if scale != 1.0:
        pil = pil.resize(
            (max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.Resampling.BILINEAR
        )
    kp = np.asarray(keypoints, dtype=np.float64).reshape(len(track_ids), NUM_JOINTS, 3)
    if not len(kp):
        return np.asarray(pil)
    xy = kp[..., :2] * scale
    ok = kp[..., 2] >= max(threshold, 1e-12)  # [P, 15]
    colours = [tuple(int(v) for v in c) for c in track_colours(track_ids)]
    size = max(pil.width, pil.height)
    width = max(1, round(size / 400))
    radius = max(1.5, size / 300)
    font = ImageFont.load_default(size=max(10, round(size / 45)))
    draw = ImageDraw.Draw(pil)
    limbs = np.asarray(LIMBS)
    both = ok[:, limbs[:, 0]] & ok[:, limbs[:, 1]]  # [P, L]
    for p, limb in zip(*np.nonzero(both)):
        a, b = xy[p, limbs[limb, 0]], xy[p, limbs[limb, 1]]
        draw.line([tuple(a), tuple(b)], fill=colours[p], width=width)
    for p, j in zip(*np.nonzero(ok)):
        x, y = xy[p, j]
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colours[p])
    top = np.where(ok, xy[..., 1], np.inf).argmin(axis=1)  # highest visible joint
    for p in np.flatnonzero(ok.any(axis=1)):
        x, y = xy[p, top[p]]
        draw.text(
            (x, y - radius - 2),
            str(int(track_ids[p])),
            fill=colours[p],
            font=font,
            anchor="mb",
            stroke_width=max(1, width // 2 + 1),
            stroke_fill=(0, 0, 0),
        )
    return np.asarray(pil)


class VideoWriter:
    """Frames to ``path`` (``.mp4`` or ``.gif``), atomically: call :meth:`close` to publish it.

    Use as a context manager: the file is published when the block ends (unless :meth:`close`
    already did); when the block raises, the temporary file is removed and ``path`` is left as
    it was.
    """

    def __init__(self, path: str | os.PathLike, fps: float, fmt: str | None = None):
        self.path = Path(path)
        self.fmt = (fmt or self.path.suffix.lstrip(".")).lower()
        if self.fmt not in FORMATS:
            raise ValueError(f"{self.path}: unknown video format {self.fmt!r} (known: {', '.join(FORMATS)})")
        if not fps > 0:
            raise ValueError(f"{self.path}: fps must be positive, got {fps}")
        self.fps = float(fps)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=f".tmp.{self.fmt}", dir=self.path.parent
        )
        os.close(fd)
        self.tmp = Path(tmp)
        self.frames = 0
        self._gif: list = []
        self._writer = None

    def append(self, image: np.ndarray) -> None:
        image = np.asarray(image, dtype=np.uint8)
        if self.fmt == "gif":
            from PIL import Image

            self._gif.append(Image.fromarray(image).quantize(colors=255, method=Image.Quantize.MEDIANCUT))
        else:
            if self._writer is None:
                import imageio.v2 as iio2

                self._writer = iio2.get_writer(
                    self.tmp,
                    format="FFMPEG",
                    mode="I",
                    fps=self.fps,
                    codec="libx264",
                    quality=7,
                    macro_block_size=2,
                    pixelformat="yuv420p",
                    ffmpeg_log_level="error",
                )
            self._writer.append_data(image)
        self.frames += 1

    def close(self) -> Path:
        """Finish the file and move it to :attr:`path`."""
        if self.fmt == "gif":
            if not self._gif:
                raise ValueError(f"{self.path}: no frames to write")
            self._gif[0].save(
                self.tmp,
                format="GIF",
                save_all=True,
                append_images=self._gif[1:],
                duration=round(1000 / self.fps),
                loop=0,
                optimize=False,
                disposal=1,
            )
            self._gif = []
        else:
            if self._writer is None:
                raise ValueError(f"{self.path}: no frames to write")
            self._writer.close()
            self._writer = None
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # the file is discarded anyway
                pass
            self._writer = None
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif self.tmp.exists():
            self.close()


__all__ = ["FORMATS", "VideoWriter", "draw_poses", "track_colours"]
