"""The protocol itself: :func:`perturb` (one call per dataset, one independent seed stream per
video) and :func:`with_oracle_track_ids`."""

from __future__ import annotations

import numpy as np

from keytrack.perturb import draws
from keytrack.perturb.config import SETTINGS, PerturbConfig
from keytrack.poses import Dataset, Frame, Video, keypoint_boxes

__all__ = ["perturb", "with_oracle_track_ids"]


def _perturb_video(
    video: Video, index: int, setting: str, seed: int, cfg: PerturbConfig, keep_track_ids: bool
) -> Video:
    """One video's predicted poses under ``setting``, drawn from five independent streams seeded
    by ``(seed, index)`` so that a video does not depend on any other."""
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(5)]
    rng_order, rng_kp, rng_box, rng_miss, rng_fp = streams
    gt = _GroundTruth(video, keep_track_ids)
    if setting == SETTINGS[0]:
        out = np.where(gt.vis[..., None], gt.kp, 0.0)
        out[..., 2] = gt.vis
        poses = draws.Poses(gt.frame, out, gt.box, np.ones(gt.n), gt.ids)
    else:
        poses = _estimated_poses(video, gt, setting == SETTINGS[2], cfg, streams)

    # a detector lists its poses by descending score; ties broken at random
    tiebreak = rng_order.random(len(poses.frame))
    order = np.lexsort((tiebreak, -poses.scores, poses.frame))
    return _as_video(video, poses.take(order))


class _GroundTruth:
    """A video's ground-truth poses as flat arrays (annotations without keypoints dropped, as
    they yield no pose), with the box each prediction starts from and the ids it carries."""

    def __init__(self, video: Video, keep_track_ids: bool) -> None:
        frame, kp, tid, boxes, heads = draws.gather_poses(video)
        present = (kp[..., 2] > 0).any(1)  # an annotation without keypoints yields no pose
        self.frame, self.kp, self.tid = frame[present], kp[present], tid[present]
        self.boxes, self.heads = boxes[present], heads[present]
        self.n = len(self.kp)
        self.vis = self.kp[..., 2] > 0
        boxes = self.boxes
        self.box = np.where(
            np.isfinite(boxes).all(1, keepdims=True) & (boxes[:, 2:] > 0).all(1, keepdims=True),
            boxes,
            keypoint_boxes(self.kp),
        )
        self.ids = self.tid if keep_track_ids else np.full(self.n, -1, np.int64)


def _estimated_poses(
    video: Video, gt: _GroundTruth, predicted_boxes: bool, cfg: PerturbConfig, streams: list
) -> draws.Poses:
    """Noisy keypoints for every ground-truth pose (plus misses and false positives with
    ``predicted_boxes``), scored from their mean confidence; poses with no emitted keypoint go."""
    rng_order, rng_kp, rng_box, rng_miss, rng_fp = streams
    s = draws.fill_scale(
        draws.person_scale(gt.kp, gt.boxes, gt.heads, cfg.head_size_per_box_diagonal), video.height
    )
    crop = draws.person_crop(gt.box, s)
    pred = draws.predict_keypoints(gt.kp, s, crop, predicted_boxes, cfg, rng_kp, rng_box)
    poses = draws.Poses(gt.frame, pred, gt.box, np.zeros(gt.n), gt.ids)
    fp_penalty = np.zeros(gt.n)
    if predicted_boxes:
        poses, fp_penalty = _detector_errors(video, gt, poses, s, cfg, rng_miss, rng_fp)
    c = poses.keypoints[..., 2]
    emitted = c > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_c = np.where(emitted.any(1), (c * emitted).sum(1) / emitted.sum(1), 0.5)
    noise = rng_order.standard_normal(len(c))
    poses.scores = draws.sigmoid(
        draws.logit(mean_c) + cfg.score_noise * noise - cfg.fp_score_penalty * fp_penalty
    )
    return poses.take(emitted.any(1))


def _detector_errors(
    video: Video,
    gt: _GroundTruth,
    poses: draws.Poses,
    s: np.ndarray,
    cfg: PerturbConfig,
    rng_miss: np.random.Generator,
    rng_fp: np.random.Generator,
) -> tuple[draws.Poses, np.ndarray]:
    """A detector's misses (runs of frames, likelier for small and occluded people) and false
    positives (duplicates and clutter), with boxes refitted to the keypoints; also returns each
    pose's false-positive indicator, which lowers its score."""
    known_height = np.isfinite(video.height) and video.height > 0
    rel = s / video.height if known_height else np.full(gt.n, cfg.miss_size_ref)
    p_start = (
        cfg.miss_prob
        * (cfg.miss_size_ref / rel) ** cfg.miss_size_power
        * (1 + cfg.miss_occlusion_gain * (1 - gt.vis.mean(1)))
    )
    key = np.where(gt.tid >= 0, gt.tid, -1 - np.arange(gt.n))
    p_start = np.minimum(p_start, cfg.miss_prob_max)
    missed = draws.missed(key, gt.frame, p_start, rng_miss, cfg.miss_run_length)
    poses, s = poses.take(~missed), s[~missed]
    dup = draws.duplicates(poses, s, cfg, rng_fp)
    labeled = np.array([f.is_labeled for f in video.frames], dtype=np.int64)
    extent = draws.frame_extent(video, gt.kp)
    clutter = draws.clutter(video, labeled, s, extent, cfg, rng_fp)
    fp_penalty = np.r_[np.zeros(len(poses.frame)), np.ones(len(dup.frame) + len(clutter.frame))]
    poses = draws.Poses.cat([poses, dup, clutter])
    poses.boxes = keypoint_boxes(poses.keypoints)
    return poses, fp_penalty


def _as_video(video: Video, poses: draws.Poses) -> Video:
    """``video`` with its frames' poses replaced by ``poses`` (sorted by frame), head boxes NaN."""
    bounds = np.searchsorted(poses.frame, np.arange(len(video.frames) + 1))
    frames = []
    for i, f in enumerate(video.frames):
        sl = slice(bounds[i], bounds[i + 1])
        m = sl.stop - sl.start
        frames.append(
            Frame(
                index=f.index,
                keypoints=poses.keypoints[sl],
                track_ids=poses.track_ids[sl],
                boxes=poses.boxes[sl],
                head_boxes=np.full((m, 4), np.nan),
                scores=poses.scores[sl],
                image_id=f.image_id,
                file_name=f.file_name,
                is_labeled=f.is_labeled,
            )
        )
    return Video(
        name=video.name,
        frames=frames,
        width=video.width,
        height=video.height,
        source=video.source,
        frame_size_origin=video.frame_size_origin,
    )


def perturb(
    dataset: Dataset,
    setting: str,
    seed: int = 0,
    config: PerturbConfig | None = None,
    keep_track_ids: bool = False,
) -> Dataset:
    """Predicted poses for ``dataset`` (ground truth) under one of Figure 4's :data:`SETTINGS`.

    Returns a new :class:`~keytrack.poses.Dataset` with the same videos and frames (frame indices,
    image ids, file names, ``is_labeled``); ``dataset`` is not modified. Predicted poses have
    ``track_ids = -1`` (the ground-truth id with ``keep_track_ids``, ``-1`` for false positives),
    NaN head boxes, per-keypoint confidences in ``c`` and a pose score; boxes are the ground-truth
    boxes with ground-truth boxes and the tight box of the predicted keypoints with predicted
    boxes. Annotations without any keypoint yield no pose. Deterministic in ``seed``; video ``i``
    depends only on ``(seed, i)``.
    """
    if setting not in SETTINGS:
        raise ValueError(f"perturb: unknown setting {setting!r}; expected one of {list(SETTINGS)}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"perturb: seed must be a non-negative int, got {seed!r}")
    config = PerturbConfig() if config is None else config
    videos = [
        _perturb_video(v, i, setting, int(seed), config, keep_track_ids) for i, v in enumerate(dataset.videos)
    ]
    return Dataset(videos, dict(dataset.skipped))


# -- oracle evaluation and command line ----------------------------------------------------------


def with_oracle_track_ids(predicted: Dataset) -> Dataset:
    """Predictions from ``perturb(..., keep_track_ids=True)`` with a fresh id on each false positive.

    The ground-truth identity serves as a perfect tracker (no ID switches), so MOTA measures the
    keypoints alone, as Figure 4 isolates the estimator from the tracker. Each untracked pose gets
    its own new id (above every id in use), which the MOT metrics need.
    """
    used = [f.track_ids.max() for v in predicted.videos for f in v.frames if f.num_poses]
    next_id = int(max(used, default=-1)) + 1
    videos = []
    for video in predicted.videos:
        frames = []
        for f in video.frames:
            out = f.select(np.arange(f.num_poses))
            new = np.flatnonzero(out.track_ids < 0)
            out.track_ids[new] = next_id + np.arange(len(new))
            next_id += len(new)
            frames.append(out)
        videos.append(
            Video(video.name, frames, video.width, video.height, video.source, video.frame_size_origin)
        )
    return Dataset(videos, dict(predicted.skipped))
