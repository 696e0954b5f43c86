"""Errors for bad annotation files, and the record of what a reader skips on purpose.

Every reader either understands a value or refuses the file with a :class:`DataError` that names
the file, the frame and the field; what it leaves out on purpose (an annotation without keypoints,
a pose with no visible keypoint, ...) is counted per reason in ``Dataset.skipped`` and logged, so
nothing disappears silently.
"""

from __future__ import annotations

import logging
from os import PathLike

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
