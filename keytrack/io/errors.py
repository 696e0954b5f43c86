"""Errors for bad annotation files, and the record of what a reader skips on purpose.

Every reader either understands a value or refuses the file with a :class:`DataError` that names
the file, the frame and the field; what it leaves out on purpose (an annotation without keypoints,
a pose with no visible keypoint, ...) is counted per reason in ``Dataset.skipped`` and logged, so
nothing disappears silently.
"""

from __future__ import annotations

import logging
from os import PathLike

import numpy as np

from keytrack.errors import InputError

log = logging.getLogger("keytrack.io")


class DataError(InputError):
    """An annotation file that cannot be read as it stands.

    ``file``, ``frame`` and ``field`` are kept as attributes (``None`` where they do not apply) and
    all three appear in the message, e.g.
    ``data/000342.json: image 10003420000 (images/val/000342/000000.jpg, frame 0): field
    'annotations[3].keypoints': 48 values, expected 51 (17 keypoints x 3)``.
    """

    def __init__(
        self, file: str | PathLike, message: str, *, frame: str | None = None, field: str | None = None
    ) -> None:
        self.file = str(file)
        self.frame = frame
        self.field = field
        self.reason = message
        parts = [self.file]
        if frame is not None:
            parts.append(frame)
        if field is not None:
            parts.append(f"field '{field}'")
        super().__init__(": ".join(parts + [message]))


def frame_label(index: int | None, image_id=None, file_name: str = "") -> str:
    """How error messages name a frame: image id, file name and position, whichever are known."""
    head = f"image {image_id}" if image_id is not None else "frame"
    extra = [file_name] if file_name else []
    if index is not None:
        if image_id is None:
            head = f"frame {index}"
        else:
            extra.append(f"frame {index}")
    return f"{head} ({', '.join(extra)})" if extra else head


def count_skipped(skipped: dict[str, int] | None, reason: str, n: int, source: str | PathLike) -> None:
    """Add ``n`` to ``skipped[reason]`` and log it (nothing happens for ``n == 0``)."""
    if n <= 0:
        return
    log.info("%s: skipped %d %s", source, n, reason)
    if skipped is not None:
        skipped[reason] = skipped.get(reason, 0) + int(n)


#: ``|x|, |y|`` bound on a present keypoint where the frame size is not known (the configured
#: default is in use): far beyond any camera's frame, well short of a garbled value such as 1e30.
UNKNOWN_SIZE_BOUND = 1e5

#: Least margin, in pixels, that a present keypoint may lie beyond the edge of a frame of known size.
MIN_MARGIN = 1000.0


def first_outside_frame(
    x: np.ndarray, y: np.ndarray, present: np.ndarray, width: float, height: float, size_known: bool
) -> tuple[int, str] | None:
    """The first present point (``present`` true) far outside the frame, and why; ``None`` if none.

    With a known ``width x height`` (from the annotation or an image header) a present keypoint
    must lie within ``m = max(width, height, MIN_MARGIN)`` pixels beyond each edge, ``x`` in
    ``[-m, width + m]`` and ``y`` in ``[-m, height + m]``: annotators mark joints just outside the
    picture, never a frame away. With an unknown size (the default is assumed) only
    ``|x|, |y| <= UNKNOWN_SIZE_BOUND`` is required. NaN is refused as well. ``x``, ``y`` and
    ``present`` are flat arrays.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if size_known:
        m = max(float(width), float(height), MIN_MARGIN)
        x_lo, x_hi, y_lo, y_hi = -m, width + m, -m, height + m
        rule = (
            f"a present keypoint must lie within {m:g} px of the {width:g} x {height:g} frame "
            f"(max(width, height, {MIN_MARGIN:g}) beyond each edge)"
        )
    else:
        x_lo, x_hi, y_lo, y_hi = (-UNKNOWN_SIZE_BOUND, UNKNOWN_SIZE_BOUND) * 2
        rule = (
            f"the frame size is not known, so a present keypoint must have |x|, |y| <= {UNKNOWN_SIZE_BOUND:g}"
        )
    with np.errstate(invalid="ignore"):
        ok_x = (x >= x_lo) & (x <= x_hi)
        ok_y = (y >= y_lo) & (y <= y_hi)
    bad = np.asarray(present, dtype=bool) & ~(ok_x & ok_y)
    if not bad.any():
        return None
    k = int(np.argmax(bad))
    name, value, lo, hi = ("x", x[k], x_lo, x_hi) if not ok_x[k] else ("y", y[k], y_lo, y_hi)
    return k, f"{name} = {value:g} is outside [{lo:g}, {hi:g}]: {rule}"
