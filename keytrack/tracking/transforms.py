"""Dataset transforms around the tracker, shared by the ``track`` and ``evaluate`` commands.

* :func:`drop_track_ids`: the tracker's input is untracked pose estimates.
* :func:`apply_keypoint_threshold`: A.3's keypoint confidence threshold, applied to the output
  only (Table 4): tracking sees every keypoint the pose estimator kept.
* :func:`subsample`: keep every ``k``-th frame, the same videos at ``1/k`` the frame rate; the
  ground truth must go through the same function before evaluation.

Each returns a copy and keeps ``Dataset.skipped``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keytrack.poses import Dataset, Frame

__all__ = ["apply_keypoint_threshold", "drop_track_ids", "subsample"]


def apply_keypoint_threshold(dataset: Dataset, threshold: float) -> Dataset:
    """Remove keypoints whose confidence ``c`` is below ``threshold`` (A.3, Table 4).

    Removed keypoints become ``(0, 0, 0)``; the poses themselves, their boxes, scores and track ids
    are kept, even when no keypoint survives. ``threshold <= 0`` keeps everything. Returns a copy.
    """
    threshold = float(threshold)
    return Dataset(
        [
            dataclasses.replace(v, frames=[_thresholded(f, threshold) for f in v.frames])
            for v in dataset.videos
        ],
        dict(dataset.skipped),
    )


def subsample(dataset: Dataset, k: int) -> Dataset:
    """The same videos at ``1/k`` the frame rate: the frames whose ``index`` is a multiple of ``k``.

    Kept frames are renumbered ``index // k``, so consecutive kept frames are one timestep apart
    (the ``Δ`` of the tracker and of Pose Entailment counts timesteps of the subsampled video);
    ``image_id`` and ``file_name`` still name the original images. Selecting by ``index`` (not by
    list position) makes ground truth and predictions of the same videos agree on the kept frames
    even when one of them lacks some frames; the evaluator must subsample the ground truth with
    this same function. ``k = 1`` returns a copy with the same frames.
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"subsample: k must be >= 1, got {k}")
    videos = [
        dataclasses.replace(
            v, frames=[dataclasses.replace(f, index=f.index // k) for f in v.frames if f.index % k == 0]
        )
        for v in dataset.videos
    ]
    return Dataset(videos, dict(dataset.skipped))


def drop_track_ids(dataset: Dataset) -> Dataset:
    """A copy with every ``track_ids`` set to -1 (the input of the tracker is untracked)."""
    return Dataset(
        [dataclasses.replace(v, frames=[_untracked(f) for f in v.frames]) for v in dataset.videos],
        dict(dataset.skipped),
    )


def _thresholded(frame: Frame, threshold: float) -> Frame:
    out = frame.select(np.arange(frame.num_poses))
    if threshold > 0:
        out.keypoints[out.keypoints[..., 2] < threshold] = 0.0
    return out


def _untracked(frame: Frame) -> Frame:
    out = frame.select(np.arange(frame.num_poses))
    out.track_ids = np.full(frame.num_poses, -1, np.int64)
    return out
