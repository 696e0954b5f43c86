"""Readers and writers: PoseTrack18 / PoseTrack17 JSON and Bonn ``.mat`` into one pose form.

Every reader lands in :mod:`keytrack.poses` (videos of frames of ``[P, 15, 3]`` keypoints, §3.2's
``|K| = 15``); nothing downstream parses files again. The format is detected per file: a JSON
document with ``images`` and ``annotations`` is PoseTrack18, one with ``annolist`` is PoseTrack17,
a ``.mat`` file is the Bonn Multi-Person PoseTrack layout.

* :func:`read_dataset` -- a file, a folder of files, or a dataset root with
  ``annotations/<split>/`` (PoseTrack's layout, e.g. ``read_dataset(root, split="val")``).
* :func:`read_video` -- one file holding one video.
* :func:`write_posetrack18` / :func:`write_video_posetrack18` -- PoseTrack18 JSON, one file per
  video, written atomically.
* :func:`write_posetrack21` -- the same with the fields PoseTrack21's evaluation kit requires.
* :func:`default_eval_split` -- the split a dataset root is evaluated on (``test``, else ``val``).

Bad input raises :class:`DataError` naming file, frame and field; what is skipped on purpose is
counted in ``Dataset.skipped`` and logged on the ``keytrack.io`` logger.
"""

from __future__ import annotations

import logging
from pathlib import Path

from keytrack.io.bonn_mat import read_bonn_mat
from keytrack.io.errors import DataError
from keytrack.io.jsonfile import load_json
from keytrack.io.posetrack17 import parse_posetrack17
from keytrack.io.posetrack18 import parse_posetrack18, write_posetrack18, write_video_posetrack18
from keytrack.io.posetrack21 import write_posetrack21, write_video_posetrack21
from keytrack.poses import Dataset, Video

log = logging.getLogger("keytrack.io")

#: File endings the readers understand.
SUFFIXES = (".json", ".mat")


def default_eval_split(root: str | Path) -> str:
    """``test`` when ``root`` has a test split, else ``val`` (PoseTrack18's test labels are held out)."""
    root = Path(root)
    for split in ("test", "val"):
        if (root / "annotations" / split).is_dir() or (root / split).is_dir():
            return split
    raise FileNotFoundError(
        f"{root}: no test or val split (looked for annotations/test, test, annotations/val, val)"
    )


def _read_file(
    path: Path, default_frame_size: tuple[float, float], keep_empty_poses: bool, skipped: dict[str, int]
) -> list[Video]:
    """Every video of one file, its format detected from its suffix and content."""
    options = dict(
        default_frame_size=tuple(default_frame_size), keep_empty_poses=keep_empty_poses, skipped=skipped
    )
    if path.suffix.lower() == ".mat":
        return read_bonn_mat(path, **options)
    doc = load_json(path)
    if isinstance(doc, dict) and "annolist" in doc:
        return [parse_posetrack17(doc, path, **options)]
    if isinstance(doc, dict) and ("images" in doc or "annotations" in doc):
        return [parse_posetrack18(doc, path, **options)]  # names the missing one, if any
    keys = sorted(doc)[:8] if isinstance(doc, dict) else type(doc).__name__
    raise DataError(
        path, f"neither PoseTrack18 ('images' + 'annotations') nor PoseTrack17 ('annolist'); found {keys}"
    )


def annotation_files(path: str | Path, split: str | None = None) -> list[Path]:
    """The annotation files ``path`` (and ``split``) designate, sorted by name.

    ``path`` may be a file, a folder of ``.json``/``.mat`` files, or a dataset root holding
    ``annotations/<split>/`` (PoseTrack18), ``posetrack_data/<split>/`` (PoseTrack21) or a
    ``<split>/`` folder (``split`` required there).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if path.is_file():
        return [path]
    if split is not None:
        # PoseTrack18: annotations/<split>; PoseTrack21: posetrack_data/<split>; or <split>.
        candidates = [path / "annotations" / split, path / "posetrack_data" / split, path / split]
        folder = next((c for c in candidates if c.is_dir()), None)
        if folder is None:
            raise DataError(
                path,
                f"no annotations for split {split!r} (looked for {', '.join(str(c) for c in candidates)})",
                field="split",
            )
        path = folder
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        splits = sorted(
            p.name
            for sub in ("annotations", "posetrack_data")
            if (path / sub).is_dir()
            for p in (path / sub).iterdir()
            if p.is_dir()
        )
        hint = f"; pass split= one of {splits}" if splits else ""
        raise DataError(path, f"no .json or .mat annotation files{hint}")
    return files


def read_dataset(
    path: str | Path,
    split: str | None = None,
    default_frame_size: tuple[float, float] = (1920, 1080),
    keep_empty_poses: bool = False,
) -> Dataset:
    """Read every video under ``path`` (see :func:`annotation_files`) into one :class:`Dataset`.

    ``default_frame_size`` is the ``(width, height)`` used for videos whose annotation states no
    size and whose images are not found (logged, and recorded in ``Video.frame_size_origin``).
    Poses without any present keypoint are dropped and counted unless ``keep_empty_poses``.
    """
    skipped: dict[str, int] = {}
    videos: list[Video] = []
    where: dict[str, str] = {}
    for file in annotation_files(path, split):
        for video in _read_file(file, default_frame_size, keep_empty_poses, skipped):
            if video.name in where:
                raise DataError(
                    file, f"video {video.name!r} is also in {where[video.name]}", field="video name"
                )
            where[video.name] = str(file)
            videos.append(video)
    dataset = Dataset(videos, skipped)
    log.info("%s%s: %s", path, f" [{split}]" if split else "", dataset.report())
    if skipped:
        log.warning(
            "%s: skipped on reading: %s", path, ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))
        )
    return dataset


def read_video(
    path: str | Path,
    default_frame_size: tuple[float, float] = (1920, 1080),
    keep_empty_poses: bool = False,
    skipped: dict[str, int] | None = None,
) -> Video:
    """Read the one video of one file (``skipped``, when given, receives the skip counts)."""
    path = Path(path)
    videos = _read_file(path, default_frame_size, keep_empty_poses, {} if skipped is None else skipped)
    if len(videos) != 1:
        raise DataError(path, f"holds {len(videos)} videos; use read_dataset for it")
    return videos[0]


__all__ = [
    "DataError",
    "annotation_files",
    "default_eval_split",
    "read_dataset",
    "read_video",
    "write_posetrack18",
    "write_video_posetrack18",
    "write_posetrack21",
    "write_video_posetrack21",
]
