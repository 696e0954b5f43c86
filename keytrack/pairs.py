"""Pose pairs for Pose Entailment (KeyTrack §3.1, §3.2, A.4).

Pose Entailment classifies whether a pose ``p^{t-Δ}`` of an earlier frame (the *premise*) and a
pose ``p^t`` of the current frame (the *hypothesis*) belong to the same person. Training pairs are
drawn exactly as the tracker of §3.1 compares poses: every pose of frame ``t`` against every pose
of frames ``t-1 .. t-δ`` of the same video (δ = 4 in the paper), optionally limited to the ``n``
spatially nearest poses of each earlier frame. A pair is *matching* (label 1) when both poses carry
the same track id, else *non-matching* (label 0); A.4 balances the two classes with a
``WeightedRandomSampler`` downstream, so nothing is dropped here to balance them.

Everything works on the columns of a :class:`~keytrack.poses.PoseTable`: candidate frames are found
with ``searchsorted`` on a (video, frame) key and pairs are expanded with ``np.repeat``; the only
Python loop runs over ``Δ = 1..δ``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from keytrack.poses import PoseTable
from keytrack.skeleton import NUM_JOINTS

__all__ = [
    "PairIndex",
    "sample_pairs",
    "split_videos",
    "pose_centres",
    "pose_motion",
    "track_velocity",
    "moved_previous",
    "MOTIONS",
    "resolve_motion",
]

#: How the earlier pose of a pair is shown to the matcher: where it was (the paper), or moved by
#: its track's velocity to where the track is heading (``pairs.motion``; the tracker's ``motion``).
MOTIONS: tuple[str, ...] = ("none", "velocity")


def resolve_motion(
    motion: str | None, scorer=None, where: str = "motion", known: tuple[str, ...] = MOTIONS
) -> str:
    """``motion``, or when None the ``scorer``'s (a matching network's ``pairs.motion``, what it was
    trained for; ``"none"`` for a scorer without one); a value not in ``known`` raises, naming
    ``where``."""
    motion = str(getattr(scorer, "motion", "none")) if motion is None else str(motion)
    if motion not in known:
        raise ValueError(f"{where}: unknown motion {motion!r} (known: {', '.join(known)})")
    return motion


@dataclass
class PairIndex:
    """Pose pairs as rows of a :class:`PoseTable`, sorted by ``(current, delta, previous)``.

    ``current`` indexes the pose at frame ``t`` (hypothesis), ``previous`` the pose at frame
    ``t - delta`` (premise) of the same video; ``label`` is 1 when both have the same track id.
    """

    current: np.ndarray  # [M] int64
    previous: np.ndarray  # [M] int64
    delta: np.ndarray  # [M] int64, 1..δ
    label: np.ndarray  # [M] int64, 1 = matching, 0 = non-matching

    def __len__(self) -> int:
        return len(self.current)

    def select(self, keep: np.ndarray) -> "PairIndex":
        """The pairs that ``keep`` (bool mask or indices) selects, in their current order."""
        return PairIndex(self.current[keep], self.previous[keep], self.delta[keep], self.label[keep])

    @property
    def num_matching(self) -> int:
        return int(self.label.sum())


def _empty_pairs() -> PairIndex:
    z = np.zeros(0, np.int64)
    return PairIndex(z, z.copy(), z.copy(), z.copy())


def pose_centres(keypoints: np.ndarray) -> np.ndarray:
    """``[N, 2]`` centre of each pose: the mean of its visible (``c > 0``) keypoints, NaN if none."""
    kp = np.asarray(keypoints, dtype=np.float64)
    vis = kp[..., 2] > 0
    n = vis.sum(axis=-1, keepdims=True)
    total = np.where(vis[..., None], kp[..., :2], 0.0).sum(axis=-2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 for a pose without keypoints
        return np.where(n > 0, total / n, np.nan)


def _check_table(table: PoseTable) -> None:
    n = len(table.keypoints)
    if table.keypoints.ndim != 3 or table.keypoints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"PoseTable.keypoints must be [N, {NUM_JOINTS}, 3], got {table.keypoints.shape}")
    for name in ("track_ids", "video", "frame"):
        col = np.asarray(getattr(table, name))
        if col.shape != (n,):
            raise ValueError(f"PoseTable.{name} must be [{n}] (one per pose), got {col.shape}")
        if n and not np.issubdtype(col.dtype, np.integer):
            raise ValueError(f"PoseTable.{name} must hold integers, got dtype {col.dtype}")


def sample_pairs(table: PoseTable, delta: int = 4, nearest: int | None = None) -> PairIndex:
    """All (current, earlier) pose pairs of a table, Δ = 1..``delta`` frames apart (§3.1).

    For every pose at frame ``t`` with a known track id (``>= 0``) and at least one visible
    keypoint, pair it with every such pose of frame ``t - Δ`` of the same video, for each
    ``Δ = 1..delta``. ``Δ`` is the difference of the frames' ``index`` values (the ``frame``
    column), so a frame missing from a video leaves its Δ without candidates rather than shifting
    the others.

    ``nearest=n`` keeps, for each (pose, Δ), only the ``n`` poses of frame ``t - Δ`` whose centres
    (mean of visible keypoints) lie nearest to the pose's centre, ties broken by lower table row.
    This is exactly the candidate set the tracker of §3.1 scores: the matching pose is *not*
    added back when it falls outside the ``n`` nearest, so the training distribution equals the
    one seen at tracking time.

    Returns a :class:`PairIndex` sorted by ``(current, delta, previous)``.
    """
    if int(delta) < 1:
        raise ValueError(f"delta must be >= 1, got {delta}")
    if nearest is not None and int(nearest) < 1:
        raise ValueError(f"nearest must be >= 1 or None, got {nearest}")
    _check_table(table)
    delta = int(delta)

    kp = np.asarray(table.keypoints)
    track = np.asarray(table.track_ids, dtype=np.int64)
    visible_any = (kp[..., 2] > 0).any(axis=-1)
    rows = np.flatnonzero((track >= 0) & visible_any)
    if len(rows) == 0:
        return _empty_pairs()

    # One integer key per (video, frame): frames of a video, shifted by ``delta``, stay inside the
    # video's band of ``span`` keys, so ``key - Δ`` can never reach another video.
    video = np.asarray(table.video, dtype=np.int64)[rows]
    frame = np.asarray(table.frame, dtype=np.int64)[rows]
    f0 = frame.min()
    span = frame.max() - f0 + delta + 1
    key = (video - video.min()) * span + (frame - f0 + delta)
    order = np.argsort(key, kind="stable")
    rows, key = rows[order], key[order]
    centres = pose_centres(kp[rows]) if nearest is not None else None

    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for d in range(1, delta + 1):
        lo = np.searchsorted(key, key - d, side="left")
        hi = np.searchsorted(key, key - d, side="right")
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            continue
        query = np.repeat(np.arange(len(rows)), counts)  # position of the current pose
        first = np.cumsum(counts) - counts  # first pair of each query
        cand = lo[query] + (np.arange(total) - first[query])  # position of the earlier pose
        if nearest is not None:
            dist = ((centres[query] - centres[cand]) ** 2).sum(axis=-1)
            by_dist = np.lexsort((rows[cand], dist, query))  # per query: nearest first, then row
            rank = np.arange(total) - first[query[by_dist]]
            keep = by_dist[rank < nearest]
            query, cand = query[keep], cand[keep]
        parts.append((rows[query], rows[cand], np.full(len(query), d, np.int64)))

    if not parts:
        return _empty_pairs()
    current, previous, deltas = (np.concatenate(c) for c in zip(*parts))
    order = np.lexsort((previous, deltas, current))
    current, previous, deltas = current[order], previous[order], deltas[order]
    label = (track[current] == track[previous]).astype(np.int64)
    return PairIndex(current.astype(np.int64), previous.astype(np.int64), deltas, label)


def pose_motion(now: np.ndarray, past: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``[K, 2]`` how far poses ``now`` moved from poses ``past`` (``[K, 15, 3]`` each) per frame:
    the mean displacement of the joints visible in both, over the ``frames`` ``[K]`` between them
    (the change of the pose centre when no joint is visible in both). Joints seen in one pose only
    do not move the estimate, so a joint that appears or vanishes is not taken for motion."""
    now, past = np.asarray(now, dtype=np.float64), np.asarray(past, dtype=np.float64)
    both = (now[..., 2] > 0) & (past[..., 2] > 0)  # [K, 15]
    n = both.sum(axis=-1, keepdims=True)
    shift = np.where(both[..., None], now[..., :2] - past[..., :2], 0.0).sum(axis=-2)
    common = np.divide(shift, n, out=np.zeros_like(shift), where=n > 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # centres of poses without keypoints
        moved = np.where(n > 0, common, pose_centres(now) - pose_centres(past))
    return np.nan_to_num(moved) / np.maximum(np.asarray(frames, dtype=np.float64), 1)[:, None]


def track_velocity(table: PoseTable, delta: int) -> np.ndarray:
    """``[N, 2]`` each pose's track velocity per timestep, as the tracker computes it online.

    How far the pose moved (:func:`pose_motion`) since its track's latest earlier appearance in
    the same video at most ``delta`` frames back, per frame between them; 0 for a track's first
    pose in that window, a pose without a track id or without visible keypoints
    (:class:`keytrack.tracking.Tracker` with ``motion="velocity"``).
    """
    kp = np.asarray(table.keypoints)
    n = len(kp)
    velocity = np.zeros((n, 2))
    track = np.asarray(table.track_ids, dtype=np.int64)
    rows = np.flatnonzero((track >= 0) & (kp[..., 2] > 0).any(axis=-1))
    if len(rows) < 2:
        return velocity
    video, frame = np.asarray(table.video)[rows], np.asarray(table.frame, dtype=np.int64)[rows]
    order = np.lexsort((frame, track[rows], video))  # by video, track, frame
    rows, video, frame = rows[order], video[order], frame[order]
    gap = np.diff(frame)
    same = (np.diff(video) == 0) & (np.diff(track[rows]) == 0) & (gap >= 1) & (gap <= int(delta))
    velocity[rows[1:][same]] = pose_motion(kp[rows[1:][same]], kp[rows[:-1][same]], gap[same])
    return velocity


def moved_previous(table: PoseTable, pairs: PairIndex, delta: int) -> np.ndarray:
    """``[M, 15, 3]`` the earlier pose of each pair moved by its track's velocity times the pair's
    ``Δ`` (:func:`track_velocity`): what the tracker with ``motion="velocity"`` scores."""
    kp = np.array(table.keypoints[pairs.previous], dtype=np.float64)
    shift = track_velocity(table, delta)[pairs.previous] * np.asarray(pairs.delta)[:, None]
    kp[..., :2] += shift[:, None, :]
    return kp


def split_videos(num_videos: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split video indices ``0..num_videos-1`` into sorted ``(train, val)`` arrays, by seed.

    Pairs never cross videos, so splitting by video keeps validation pairs unseen. The validation
    share is ``round(val_fraction * num_videos)`` clipped so that both parts hold at least one
    video when ``num_videos >= 2``; ``val_fraction == 0`` gives an empty validation part and a
    single video always goes to training. The same ``seed`` always gives the same split.
    """
    if num_videos < 0:
        raise ValueError(f"num_videos must be >= 0, got {num_videos}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(num_videos)
    n_val = int(round(val_fraction * num_videos))
    if val_fraction > 0 and num_videos >= 2:
        n_val = min(max(n_val, 1), num_videos - 1)
    elif num_videos < 2:
        n_val = 0
    return np.sort(perm[n_val:]).astype(np.int64), np.sort(perm[:n_val]).astype(np.int64)
