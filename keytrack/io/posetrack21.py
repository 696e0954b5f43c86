"""PoseTrack21 JSON, one file per video: the writer (the PoseTrack18 reader reads these files).

PoseTrack21 keeps PoseTrack18's layout (:mod:`keytrack.io.posetrack18`) and its evaluation kit
(``eval/posetrack21``) reads a few fields unconditionally: every image carries
``ignore_regions_x`` / ``ignore_regions_y`` (empty lists when the frame has none) and
``is_labeled``, every annotation a ``track_id`` and a ``person_id`` (here the track id), and
ground-truth annotations a ``bbox_head``.

Reading PoseTrack21 (``read_dataset(root, split="val")`` finds ``root/posetrack_data/val/``), as
the kit's pose-tracking evaluation (``trackeval/datasets/posetrack.py``) reads it:

* **Identity is ``track_id``** (per video), as in the kit's HOTA for keypoints; ``person_id`` (the
  identity across videos, used only by the kit's re-identification evaluation) is not read.
* **Boxes without keypoints.** PoseTrack21 annotates some people with a box only (every keypoint
  ``0, 0, 0``). They carry no joint the kit can score (its joint counts and matches read only
  visible keypoints), so the reader drops them like any pose without a visible keypoint and counts
  them in ``Dataset.skipped`` ("poses with no visible keypoint").
* **``is_labeled``** decides which frames are scored (the kit drops the others on both sides);
  ``has_labeled_person`` (a frame holds a box, with or without keypoints) is not read.
* **Ignore regions** (``ignore_regions_x/y``) are kept per frame: HOTA removes predicted joints
  inside them (:mod:`keytrack.evaluation.hota`).
"""

from __future__ import annotations

from pathlib import Path

from keytrack.io.jsonfile import write_json_atomic
from keytrack.io.posetrack18 import video_to_posetrack18, write_posetrack18
from keytrack.poses import Dataset, Video


def video_to_posetrack21(video: Video) -> dict:
    """A PoseTrack21 document for ``video``: PoseTrack18's plus the fields listed above."""
    doc = video_to_posetrack18(video)
    for image in doc["images"]:
        image.setdefault("ignore_regions_x", [])
        image.setdefault("ignore_regions_y", [])
    for ann in doc["annotations"]:
        ann["person_id"] = ann["track_id"]
    return doc


def write_video_posetrack21(video: Video, path: str | Path) -> Path:
    """Write ``video`` as one PoseTrack21 file at ``path`` (``<path>/<name>.json`` for a folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / f"{video.name}.json"
    return write_json_atomic(video_to_posetrack21(video), path)


def write_posetrack21(dataset: Dataset, out_dir: str | Path) -> list[Path]:
    """Write every video of ``dataset`` to ``out_dir/<video.name>.json``; returns the paths."""
    return write_posetrack18(dataset, out_dir, writer=write_video_posetrack21)


__all__ = ["video_to_posetrack21", "write_posetrack21", "write_video_posetrack21"]
