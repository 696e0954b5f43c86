"""The image crops a matcher on crops compares at tracking time (the CNN on image crops, §5.2).

The tracker compares the poses of frame ``t`` with candidates of frames ``t-1 .. t-δ``
(:class:`~keytrack.tracking.scorers.Candidates`). A matcher on crops sees each pose as a crop of
the image of its own frame: the current poses are cut from frame ``t`` (a candidate's frame +
``Δ``), each candidate from its ``Candidates.frame``, by the regions the training pairs are cut
with (:func:`keytrack.frames.crop_regions`: the box, or the keypoints' tight box where it is
absent, enlarged 1.25 ×), so that tracking shows the network what training showed it. The images
of the last ``δ + 1`` frames are kept, as many as one frame's comparisons read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from keytrack.poses import Video
    from keytrack.tracking.scorers import Candidates

__all__ = ["FrameCrops", "checkpoint_frames"]


class FrameCrops:
    """Crops of the poses of one video at a time, from ``frames`` (a :class:`keytrack.frames.FrameSource`).

    Args:
        frames: the image of each frame of a video.
        size: ``(h, w)`` of a crop, the matcher's input resolution.
        delta: ``δ``, the farthest earlier frame a candidate comes from.
    """

    def __init__(self, frames, size, delta: int):
        self.frames = frames
        self.size = tuple(int(r) for r in size)
        self.delta = int(delta)
        self._video: Video | None = None
        self._frames_by_index: dict = {}
        self._images: dict[int, np.ndarray] = {}

    def begin_video(self, video: Video) -> None:
        """The video whose frames the following crops come from (the tracker announces each)."""
        self._video = video
        self._frames_by_index = {f.index: f for f in video.frames}
        self._images = {}

    def pairs(
        self, keypoints: np.ndarray, boxes: np.ndarray, candidates: Candidates
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[P, 3, h, w]`` crops of the current poses and ``[C, 3, h, w]`` of the candidates (uint8),
        cut as :func:`keytrack.frames.pose_crops` cuts the training poses (``crop_regions``)."""
        import torch

        from keytrack.frames import crop_regions

        current = np.unique(candidates.frame + candidates.delta)
        if len(current) != 1:
            raise ValueError(
                f"PoseEntailmentScorer: candidates disagree on the current frame "
                f"(frame + Δ = {current.tolist()})"
            )
        now = int(current[0])
        self._images = {i: im for i, im in self._images.items() if now - i <= self.delta}
        query = torch.as_tensor(self._cut(now, crop_regions(keypoints, boxes)))
        regions = crop_regions(candidates.keypoints, candidates.boxes)
        cand = torch.empty((len(candidates), *query.shape[1:]), dtype=torch.uint8)
        for f in np.unique(candidates.frame):  # ≤ δ earlier frames
            sel = np.flatnonzero(candidates.frame == f)
            cand[torch.as_tensor(sel)] = torch.as_tensor(self._cut(int(f), regions[sel]))
        return query, cand

    def _image(self, index: int) -> np.ndarray:
        if index not in self._images:
            if self._video is None:
                raise ValueError(
                    "PoseEntailmentScorer: a matcher on image crops needs begin_video(video) "
                    "before scoring (the Tracker calls it)"
                )
            frame = self._frames_by_index.get(int(index))
            if frame is None:
                raise ValueError(
                    f"PoseEntailmentScorer: video {self._video.name!r} has no frame with index {index}"
                )
            self._images[int(index)] = self.frames.image(self._video, frame)
        return self._images[int(index)]

    def _cut(self, index: int, regions: np.ndarray) -> np.ndarray:
        """Crops of ``regions`` (video pixels) from the image of frame ``index`` (scaled to it)."""
        from keytrack.frames import crop_boxes

        image = self._image(index)
        sx, sy = image.shape[1] / self._video.width, image.shape[0] / self._video.height
        return crop_boxes(image, regions * np.array([sx, sy, sx, sy]), size=self.size)


def checkpoint_frames(data, image_root: str | None = None, split: str | None = None):
    """The image source of a checkpoint's ``data`` config (:func:`keytrack.frames.frame_source`),
    with ``root`` (and ``split``) replaced by ``image_root`` (``split``) when given: the folder
    whose images the tracked poses come from."""
    from omegaconf import OmegaConf

    from keytrack.frames import frame_source

    data = OmegaConf.create(OmegaConf.to_container(data, resolve=True))
    if image_root is not None:
        data.root = str(image_root)
        if split is not None:
            data.split = split
    return frame_source(data)
