"""The default synthetic set, generated once and cached on disk.

:func:`default_dataset` is what keytrack trains and evaluates on when no data root is given. It is
written as one compressed ``.npz`` under ``<root>/synth/<key>/dataset.npz`` where ``<root>`` is
``cache_dir``, else ``$KEYTRACK_CACHE``, else ``~/.cache/keytrack``, and ``<key>`` hashes the
configuration, the seed, the number of videos and the generator's source code (so a changed
generator never serves stale scenes). Files are written to a temporary name and renamed, so a
reader never sees half a file, and concurrent writers are harmless.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from keytrack.poses import Dataset, Frame, Video
from keytrack.synth.config import SynthConfig
from keytrack.synth.scene import generate_dataset

#: Number of videos of the default synthetic set.
DEFAULT_NUM_VIDEOS = 40

_SOURCES = ("config.py", "motion.py", "scene.py")
_FORMAT = 1


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$KEYTRACK_CACHE``, else ``~/.cache/keytrack``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("KEYTRACK_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "keytrack"


def _generator_digest() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in _SOURCES:
        h.update((here / name).read_bytes())
    return h.hexdigest()


def cache_key(num_videos: int, seed: int, config: SynthConfig) -> str:
    """Hex key naming the cache folder of a synthetic set."""
    blob = json.dumps(
        {
            "format": _FORMAT,
            "num_videos": num_videos,
            "seed": seed,
            "config": json.loads(config.to_json()),
            "generator": _generator_digest(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_dataset(
    num_videos: int = DEFAULT_NUM_VIDEOS,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    config: SynthConfig | None = None,
) -> Dataset:
    """The synthetic set ``generate_dataset(num_videos, seed, config)``, read from the cache when
    present and written there otherwise (see the module docstring for where)."""
    config = config or SynthConfig()
    folder = cache_root(cache_dir) / "synth" / cache_key(num_videos, seed, config)
    path = folder / "dataset.npz"
    if path.exists():
        try:
            return load_npz(path)
        except (OSError, ValueError, KeyError) as err:
            warnings.warn(
                f"{path}: unreadable cached synthetic set ({err}); generating it again", stacklevel=2
            )
    dataset = generate_dataset(num_videos, seed, config)
    save_npz(dataset, path)
    summary = json.dumps(
        {"num_videos": num_videos, "seed": seed, "config": json.loads(config.to_json())},
        indent=2,
        sort_keys=True,
    )
    _atomic_write(folder / "config.json", lambda fh: fh.write(summary.encode()))
    return dataset


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npz(dataset: Dataset, path: str | os.PathLike) -> Path:
    """Write ``dataset`` (every field of :mod:`keytrack.poses`) to one compressed ``.npz``,
    atomically. Columnar: one row per pose, per frame and per video."""
    path = Path(path)
    frames = [(vi, f) for vi, v in enumerate(dataset.videos) for f in v.frames]
    counts = np.array([f.num_poses for _, f in frames], dtype=np.int64)

    def cat(attr: str, shape: tuple[int, ...]) -> np.ndarray:
        parts = [getattr(f, attr) for _, f in frames]
        return np.concatenate(parts) if parts else np.zeros((0, *shape))

    regions = [(fi, r) for fi, (_, f) in enumerate(frames) for r in f.ignore_regions]
    arrays = {
        "format": np.array(_FORMAT),
        "keypoints": cat("keypoints", (15, 3)),
        "track_ids": cat("track_ids", ()).astype(np.int64),
        "boxes": cat("boxes", (4,)),
        "head_boxes": cat("head_boxes", (4,)),
        "scores": cat("scores", ()),
        "frame_poses": counts,
        "frame_video": np.array([vi for vi, _ in frames], dtype=np.int64),
        "frame_index": np.array([f.index for _, f in frames], dtype=np.int64),
        "frame_image_id": np.array(
            [-1 if f.image_id is None else f.image_id for _, f in frames], dtype=np.int64
        ),
        "frame_has_image_id": np.array([f.image_id is not None for _, f in frames], dtype=bool),
        "frame_file_name": np.array([f.file_name for _, f in frames], dtype=np.str_),
        "frame_is_labeled": np.array([f.is_labeled for _, f in frames], dtype=bool),
        "region_frame": np.array([fi for fi, _ in regions], dtype=np.int64),
        "region_length": np.array([len(r) for _, r in regions], dtype=np.int64),
        "region_points": (
            np.concatenate([np.asarray(r, np.float64).reshape(-1, 2) for _, r in regions])
            if regions
            else np.zeros((0, 2))
        ),
        "video_name": np.array([v.name for v in dataset.videos], dtype=np.str_),
        "video_width": np.array([v.width for v in dataset.videos], dtype=np.float64),
        "video_height": np.array([v.height for v in dataset.videos], dtype=np.float64),
        "video_source": np.array([v.source for v in dataset.videos], dtype=np.str_),
        "video_frame_size_origin": np.array([v.frame_size_origin for v in dataset.videos], dtype=np.str_),
        "skipped": np.array(json.dumps(dataset.skipped, sort_keys=True)),
    }
    _atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
    return path


def load_npz(path: str | os.PathLike) -> Dataset:
    """Read a dataset written by :func:`save_npz`."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        if int(z["format"]) != _FORMAT:
            raise ValueError(f"{path}: field 'format' is {int(z['format'])}, expected {_FORMAT}")
        a = {k: z[k] for k in z.files}
    bounds = np.r_[0, np.cumsum(a["frame_poses"])]
    if bounds[-1] != len(a["keypoints"]):
        raise ValueError(
            f"{path}: field 'frame_poses' sums to {bounds[-1]} but 'keypoints' has {len(a['keypoints'])} rows"
        )
    region_bounds = np.r_[0, np.cumsum(a["region_length"])]
    regions: dict[int, list[np.ndarray]] = {}
    for ri, fi in enumerate(a["region_frame"]):
        regions.setdefault(int(fi), []).append(a["region_points"][region_bounds[ri] : region_bounds[ri + 1]])
    videos = [
        Video(
            name=str(a["video_name"][i]),
            frames=[],
            width=float(a["video_width"][i]),
            height=float(a["video_height"][i]),
            source=str(a["video_source"][i]),
            frame_size_origin=str(a["video_frame_size_origin"][i]),
        )
        for i in range(len(a["video_name"]))
    ]
    for fi, vi in enumerate(a["frame_video"]):
        s = slice(bounds[fi], bounds[fi + 1])
        videos[int(vi)].frames.append(
            Frame(
                index=int(a["frame_index"][fi]),
                keypoints=a["keypoints"][s],
                track_ids=a["track_ids"][s],
                boxes=a["boxes"][s],
                head_boxes=a["head_boxes"][s],
                scores=a["scores"][s],
                image_id=int(a["frame_image_id"][fi]) if a["frame_has_image_id"][fi] else None,
                file_name=str(a["frame_file_name"][fi]),
                is_labeled=bool(a["frame_is_labeled"][fi]),
                ignore_regions=regions.get(fi, []),
            )
        )
    return Dataset(videos, {k: int(v) for k, v in json.loads(str(a["skipped"])).items()})
