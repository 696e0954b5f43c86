"""Head boxes for ground truth that lacks them, drawn as PoseTrack draws them.

PoseTrack's PCKh matching (:mod:`keytrack.evaluation.protocol`) normalises every distance by the GT
head size and refuses a scored GT pose without a head box. :func:`complete_head_boxes` draws the
missing ones, so that a split annotated with few (Bonn train) can be scored too.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from keytrack.poses import Dataset

__all__ = ["complete_head_boxes"]


def complete_head_boxes(dataset: Dataset) -> tuple[Dataset, int]:
    """A copy of ground truth with a head box on every pose that has keypoints, and how many were added.

    PoseTrack's evaluation normalises distances by the GT head size (``0.6 ×`` the head box
    diagonal) and needs a head box on every GT pose of a scored frame; some training sets annotate
    few (Bonn train: 1,208 of 6,394 poses). A missing one is drawn, in this order of preference:

    1. as PoseTrack draws them: centred between ``head_top`` and ``head_bottom``, as tall as their
       distance ``L`` and ``0.8 L`` wide (diagonal ``1.28 L``; on Bonn test, where every pose has
       one, the median ratio is 1.25);
    2. without both head joints: diagonal ``(0.1 / 0.6) ×`` the person box diagonal
       (``keytrack.perturb.person_scale``'s rule), at the top centre of the person box;
    3. for a pose of a single point: the median head box size of its video (of the whole dataset
       when the video has none), centred on the pose.

    Used to evaluate on training splits (the ablations' OKS / IoU tuning, ``keytrack evaluate
    --complete-head-boxes``); the tables' evaluation splits are scored as given.
    """
    from keytrack.perturb import person_scale
    from keytrack.poses import keypoint_boxes
    from keytrack.skeleton import JOINTS

    top, bottom = JOINTS.index("head_top"), JOINTS.index("head_bottom")
    aspect = math.hypot(0.8, 1.0)  # diagonal of a 0.8 × 1 box

    def draw(kp: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Rules 1 and 2 for poses ``kp [M, 15, 3]``; NaN rows where neither applies."""
        both = (kp[:, top, 2] > 0) & (kp[:, bottom, 2] > 0)
        length = np.linalg.norm(kp[:, top, :2] - kp[:, bottom, :2], axis=-1)
        centre = 0.5 * (kp[:, top, :2] + kp[:, bottom, :2])
        boxes = np.where(np.isfinite(boxes).all(-1, keepdims=True), boxes, keypoint_boxes(kp))
        alt_length = person_scale(kp, boxes, np.full_like(boxes, np.nan)) / 0.6 / aspect
        alt_centre = np.stack([boxes[:, 0] + 0.5 * boxes[:, 2], boxes[:, 1] + 0.5 * alt_length], -1)
        rule1 = both & (length > 0)
        length = np.where(rule1, length, alt_length)
        centre = np.where(rule1[:, None], centre, alt_centre)
        size = np.stack([0.8 * length, length], -1)
        out = np.concatenate([centre - 0.5 * size, size], -1)
        out[~(length > 0)] = np.nan
        return out

    videos, sizes = [], []
    for video in dataset.videos:
        frames = []
        for frame in video.frames:
            missing = ~np.isfinite(frame.head_boxes).all(-1) & (frame.keypoints[..., 2] > 0).any(-1)
            if missing.any():
                frame = frame.select(np.arange(frame.num_poses))  # copies the arrays
                frame.head_boxes[missing] = draw(frame.keypoints[missing], frame.boxes[missing])
            frames.append(frame)
        hb = np.concatenate([f.head_boxes for f in frames]) if frames else np.zeros((0, 4))
        sizes.append(hb[np.isfinite(hb).all(-1), 2:])
        videos.append(dataclasses.replace(video, frames=frames))

    # Rule 3: single-point poses take the median head box size of their video (or of the dataset).
    every = np.concatenate(sizes) if sizes else np.zeros((0, 2))
    overall = np.median(every, axis=0) if len(every) else np.full(2, np.nan)
    for video, own in zip(videos, sizes):
        median = np.median(own, axis=0) if len(own) else overall
        for frame in video.frames:
            left = ~np.isfinite(frame.head_boxes).all(-1) & (frame.keypoints[..., 2] > 0).any(-1)
            if left.any():
                kp = frame.keypoints[left]
                vis = kp[..., 2:] > 0
                centre = (kp[..., :2] * vis).sum(1) / vis.sum(1)
                size = np.broadcast_to(median, centre.shape)
                frame.head_boxes[left] = np.concatenate([centre - 0.5 * size, size], -1)

    added = sum(
        int((np.isfinite(new.head_boxes).all(-1) & ~np.isfinite(old.head_boxes).all(-1)).sum())
        for v_new, v_old in zip(videos, dataset.videos)
        for new, old in zip(v_new.frames, v_old.frames)
    )
    return Dataset(videos, dict(dataset.skipped)), added
