"""Synthetic multi-person pose-tracking scenes: the data keytrack uses when no data root is given.

* :func:`generate_dataset` / :func:`generate_video`: articulated people on a ground plane, seen
  by a moving camera, annotated like PoseTrack (:mod:`keytrack.synth.scene`); :func:`film_video`
  adds the geometry :mod:`keytrack.synth.render` draws RGB frames from.
* :class:`SynthConfig`: every knob of the generator (:mod:`keytrack.synth.config`).
* :func:`default_dataset`: the default set, generated once and cached
  (:mod:`keytrack.synth.cache`).
"""

from keytrack.synth.cache import DEFAULT_NUM_VIDEOS, cache_root, default_dataset, load_npz, save_npz
from keytrack.synth.config import MOTIONS, SynthConfig
from keytrack.synth.scene import film_video, generate_dataset, generate_video, video_name

__all__ = [
    "DEFAULT_NUM_VIDEOS",
    "MOTIONS",
    "SynthConfig",
    "cache_root",
    "default_dataset",
    "film_video",
    "generate_dataset",
    "generate_video",
    "load_npz",
    "save_npz",
    "video_name",
]
