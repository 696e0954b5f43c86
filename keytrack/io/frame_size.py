"""The size of a video's frames, in the order of trust: annotation, image header, default.

KeyTrack's Position tokens place keypoints on a downsampled copy of the frame (§3.2), so every
video needs its width and height. PoseTrack18 image entries carry them; PoseTrack17 and the Bonn
``.mat`` files do not, so the image file's header is read when the image lies beside the
annotations, and the configured default is used otherwise. The choice is logged and kept in
``Video.frame_size_origin``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from keytrack.io.errors import DataError

log = logging.getLogger("keytrack.io")

ANNOTATION = "annotation"
IMAGE_HEADER = "image header"
DEFAULT = "default"

#: How many folders above an annotation file may hold the dataset root that image paths are
#: relative to (``<root>/annotations/<split>/<video>.json`` -> ``<root>/images/...``).
SEARCH_DEPTH = 3


def image_roots(annotation_file: str | Path, extra: Sequence[str | Path] = ()) -> list[Path]:
    """Folders against which an annotation file's relative image paths are tried, nearest first."""
    folder = Path(annotation_file).resolve().parent
    roots = [Path(p) for p in extra] + [folder, *list(folder.parents)[:SEARCH_DEPTH]]
    return list(dict.fromkeys(roots))


def image_header_size(file_names: Sequence[str], roots: Sequence[Path]) -> tuple[int, int] | None:
    """``(width, height)`` from the header of the first image found, or ``None``.

    Only the header is read (``PIL.Image.open`` is lazy); a file that exists but is not an image is
    ignored with a warning, since the annotations stay readable without it.
    """
    from PIL import Image, UnidentifiedImageError

    for name in file_names:
        if not name:
            continue
        candidates = [Path(name)] if Path(name).is_absolute() else [r / name for r in roots]
        for path in candidates:
            if not path.is_file():
                continue
            try:
                with Image.open(path) as image:
                    return image.size
            except (UnidentifiedImageError, OSError) as err:
                log.warning("%s: not a readable image (%s); frame size not taken from it", path, err)
        return None  # only the first named frame is looked up: one stat per root, not per frame
    return None


def resolve_frame_size(
    source: str | Path,
    annotated: Sequence[tuple[float, float]],
    file_names: Sequence[str],
    default: tuple[float, float],
    roots: Sequence[Path] = (),
) -> tuple[float, float, str]:
    """``(width, height, origin)`` of one video.

    ``annotated`` holds the ``(width, height)`` of every frame that states one; all must agree.
    Without any, the first frame's image header is tried under ``roots``, then ``default``.
    """
    if annotated:
        sizes = set(annotated)
        if len(sizes) > 1:
            raise DataError(
                source, f"frames disagree on the frame size: {sorted(sizes)[:4]}", field="width/height"
            )
        width, height = next(iter(sizes))
        if not (width > 0 and height > 0):
            raise DataError(source, f"frame size {width} x {height} is not positive", field="width/height")
        log.debug("%s: frame size %g x %g from the annotation", source, width, height)
        return float(width), float(height), ANNOTATION
    size = image_header_size(file_names, roots) if roots else None
    if size is not None:
        log.info("%s: frame size %d x %d from the image header", source, *size)
        return float(size[0]), float(size[1]), IMAGE_HEADER
    width, height = default
    log.warning(
        "%s: the annotation states no frame size and no image header was read; using the default %g x %g",
        source,
        width,
        height,
    )
    return float(width), float(height), DEFAULT
