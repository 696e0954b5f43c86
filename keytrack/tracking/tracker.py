"""The online tracker of KeyTrack (§3.1, Fig. 2, A.4) and the frame/keypoint post-processing.

:class:`Tracker` assigns track ids frame by frame, never looking ahead:

1. The poses of frame ``t`` are compared with the tracked poses of the previous ``δ`` timesteps
   (frames ``t-1 .. t-δ``; ``δ = 4`` in the paper), which makes tracking robust to a person the
   detector misses for up to ``δ - 1`` frames (§3.1). ``Δ`` is the difference of the frames'
   ``index`` values, so a frame absent from the video leaves its ``Δ`` without candidates.
2. With ``nearest = n``, each pose is compared only with the ``n`` poses of each earlier frame
   whose centres (mean of the visible keypoints) lie nearest to its own, which bounds the work
   per pose to ``O(δ n)`` (§3.1). These are exactly the pairs :func:`keytrack.pairs.sample_pairs`
   trains on.
3. A scorer (:mod:`keytrack.tracking.scorers`) gives the ``[P, C]`` match scores of the frame in
   one call (for Pose Entailment: one batched forward of the network).
4. A track's score is the maximum of the scores of its appearances in the window, "the maximum
   match score from the previous 4 timesteps" (A.4).
5. Poses are assigned to tracks greedily by decreasing score (§3.1), or by the Hungarian
   algorithm (§5.1); each pose and each track is used at most once per frame. A pose whose best
   available score is below ``match_threshold`` starts a new track with a new id.
6. With ``motion = "velocity"`` (beyond the paper; the paper's tracker is ``"none"``), each
   candidate is first moved to where its track's motion puts it at frame ``t``: every tracked pose
   carries its track's velocity (how far it moved since the track's previous appearance in the
   window, per timestep, :func:`keytrack.pairs.pose_motion`; 0 for a new track), and a candidate
   seen ``Δ`` timesteps ago is translated, keypoints and box, by ``Δ`` times that velocity before
   any scorer sees it. It uses the tracker's own earlier output only, so tracking stays online;
   it matters most at low frame rates, where people move far between frames (docs/matchers.md).
7. With ``detection_threshold = τ`` (beyond the paper; None, the paper's, assigns every pose in
   one pass), confident detections and the tracks they made come first, in the spirit of
   ByteTrack (Zhang et al., ECCV 2022): the poses whose detection score (``Frame.scores``) is at
   least ``τ`` are first assigned to the *confident tracks*, those with at least one appearance of
   score ``>= τ`` in the window; then every pose left over every track left, as in step 5. A
   detector's false positives (a duplicate pose next to a person, background clutter) score
   lower than the people they sit next to, and the tracks they start are not confident, so a
   person is no longer handed the track of its own duplicate, nor its track to a duplicate,
   because the matcher happens to score that pair a little higher. Nothing is dropped: a pose
   left over still continues a track or starts one. A pose without a score (NaN) counts as
   confident.

Poses without a keypoint the tracker can see (none with ``c > 0`` and ``c >=
min_keypoint_confidence``) cannot be compared: each gets a new track id of its own and is not a
candidate for later frames. Track ids are assigned per video, ``0, 1, 2, ...`` in order of
appearance.

Post-processing and frame-rate helpers shared by the ``track`` and ``evaluate`` commands:

* :func:`apply_keypoint_threshold`: A.3's keypoint confidence threshold, applied to the output
  only (Table 4): tracking sees every keypoint the pose estimator kept.
* :func:`subsample`: keep every ``k``-th frame, the same videos at ``1/k`` the frame rate.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from keytrack.errors import InputError
from keytrack.pairs import MOTIONS, pose_centres, pose_motion, resolve_motion
from keytrack.poses import Dataset, Frame, Video
from keytrack.tracking.assignment import ASSIGNMENTS
from keytrack.tracking.scorers import Candidates, Scorer

__all__ = ["Tracker", "TrackingError", "MOTIONS", "subsample", "apply_keypoint_threshold", "drop_track_ids"]


class TrackingError(InputError):
    """Bad tracker input; the message names the video's file, the frame and the field."""


@dataclasses.dataclass
class _Request:
    """One frame's question to the scorer: the video and frame it comes from (named in an error)
    and the scorer's arguments ``(keypoints, boxes, candidates, frame_size, mask)``."""

    video: Video
    frame: Frame
    args: tuple
    #: the detection scores of the poses ``[Q]`` and of the candidates ``[C]`` (step 7; None without it)
    detection: tuple[np.ndarray, np.ndarray] | None = None


@dataclasses.dataclass
class _Tracked:
    """The tracked, comparable poses of one earlier frame."""

    index: int
    keypoints: np.ndarray   # [K, 15, 3] as the tracker sees them
    boxes: np.ndarray       # [K, 4]
    track_ids: np.ndarray   # [K]
    centres: np.ndarray     # [K, 2]
    velocity: np.ndarray    # [K, 2] the track's velocity per timestep (0 for a new track, or without motion)
    scores: np.ndarray      # [K] detection scores


class Tracker:
    """Online multi-person pose tracker (§3.1).

    Args:
        scorer: a :class:`~keytrack.tracking.scorers.Scorer` (Pose Entailment, OKS, IoU, ...).
        delta: ``δ``, how many timesteps back poses are compared (paper: 4).
        nearest: ``n``, compare with the ``n`` spatially nearest poses of each earlier frame only
            (None = every pose).
        assignment: ``"greedy"`` (the paper's) or ``"hungarian"``.
        match_threshold: a pose starts a new track when its best available track score is below
            this value. The default 0.5 is the decision boundary of the two-class Pose Entailment
            network.
        min_keypoint_confidence: keypoints with ``c`` below this are invisible to the tracker
            (the pose estimator's own minimum; A.4 uses 0.1). Default 0: every keypoint with
            ``c > 0``. The output keeps all keypoints either way.
        motion: ``"none"`` (the paper's) or ``"velocity"``: candidates are translated by their
            track's velocity times ``Δ`` before scoring (step 6 above). None (default):
            the scorer's ``motion`` (a matching network's ``pairs.motion``, what it was trained
            for), else ``"none"``.
        detection_threshold: ``τ`` of the two-pass assignment, confident detections first (step
            7); None (default, the paper's): one pass.
    """

    def __init__(self, scorer: Scorer, delta: int = 4, nearest: int | None = None,
                 assignment: str = "greedy", match_threshold: float = 0.5,
                 min_keypoint_confidence: float = 0.0, motion: str | None = None,
                 detection_threshold: float | None = None):
        if int(delta) < 1:
            raise ValueError(f"Tracker: delta must be >= 1, got {delta}")
        max_delta = getattr(scorer, "max_delta", None)
        if max_delta is not None and int(delta) > int(max_delta):
            raise ValueError(f"Tracker: delta = {delta} exceeds the scorer's δ = {max_delta} "
                             "(the Segment vocabulary the matching network was trained with)")
        if nearest is not None and int(nearest) < 1:
            raise ValueError(f"Tracker: nearest must be >= 1 or None, got {nearest}")
        if assignment not in ASSIGNMENTS:
            raise ValueError(f"Tracker: unknown assignment {assignment!r} (known: {', '.join(ASSIGNMENTS)})")
        self.motion = resolve_motion(motion, scorer, where="Tracker")
        self.scorer = scorer
        self.delta = int(delta)
        self.nearest = None if nearest is None else int(nearest)
        self.assignment = assignment
        self._assign = ASSIGNMENTS[assignment]
        self.match_threshold = float(match_threshold)
        self.min_keypoint_confidence = float(min_keypoint_confidence)
        if detection_threshold is not None and not np.isfinite(float(detection_threshold)):
            raise ValueError(f"Tracker: detection_threshold must be a finite number or None, got {detection_threshold}")
        self.detection_threshold = None if detection_threshold is None else float(detection_threshold)
        self.frames_tracked = 0
        self.seconds = 0.0

    # -- videos ------------------------------------------------------------------------------

    def track_video(self, video: Video) -> Video:
        """A copy of ``video`` with ``track_ids`` filled in, frame by frame (online)."""
        return self.track_videos([video])[0]

    def track_dataset(self, dataset: Dataset, videos_at_once: int = 1) -> Dataset:
        """Every video tracked independently (track ids restart at 0 in each video); see :meth:`track_videos`."""
        return Dataset(self.track_videos(dataset.videos, videos_at_once), dict(dataset.skipped))

    def track_videos(self, videos: list[Video], videos_at_once: int = 1) -> list[Video]:
        """Tracked copies of ``videos``, each online and on its own.

        ``videos_at_once = k > 1``, for a scorer that can score frames of several videos in one call
        (``mixes_videos``: a matching network on keypoints, :meth:`PoseEntailmentScorer.score_many`):
        ``k`` videos advance together, one frame each per step, and the pairs of all ``k`` frames go
        through one network forward. Each video still sees only its own earlier frames, so the track
        ids are those of one video at a time; what changes is the batch the network sees (larger
        batches pay on a GPU). Other scorers track one video at a time.
        """
        t0 = time.perf_counter()
        k = max(1, int(videos_at_once)) if getattr(self.scorer, "mixes_videos", False) else 1
        out: list[Video | None] = [None] * len(videos)
        waiting = iter(enumerate(videos))
        active: dict[int, tuple] = {}                     # video's position -> (its tracking, its request)

        def advance(i: int, tracking, scores) -> None:
            try:
                active[i] = (tracking, tracking.send(scores))
            except StopIteration as done:
                active.pop(i, None)
                out[i] = done.value

        def refill() -> None:
            while len(active) < k:
                nxt = next(waiting, None)
                if nxt is None:
                    return
                i, video = nxt
                if hasattr(self.scorer, "begin_video"):       # scorers that need the video (image crops)
                    self.scorer.begin_video(video)
                advance(i, self._tracking(video), None)

        refill()
        while active:
            items = list(active.items())
            scores = self._score([request for _, (_, request) in items])
            for (i, (tracking, _)), s in zip(items, scores):
                advance(i, tracking, s)
            refill()
        self.frames_tracked += sum(len(v.frames) for v in videos)
        self.seconds += time.perf_counter() - t0
        return out

    # -- internals ---------------------------------------------------------------------------

    def _score(self, requests: list["_Request"]) -> list[np.ndarray]:
        """The ``[P, C]`` scores of each request: one scorer call per request, or one ``score_many``
        for several (a failure there is located by scoring them one by one)."""
        if len(requests) > 1:
            try:
                return self.scorer.score_many([r.args for r in requests])
            except ValueError:
                pass
        out = []
        for r in requests:
            try:
                out.append(self.scorer(*r.args))
            except ValueError as err:
                raise TrackingError(f"{_where(r.video, r.frame)}: scoring failed: {err}") from err
        return out

    def _tracking(self, video: Video):
        """Tracks ``video`` online, as a generator: yields a :class:`_Request` for each frame that
        has poses to compare, is sent its scores, and returns the tracked copy of the video."""
        _check_order(video)
        history: list[_Tracked] = []
        next_id = 0
        frames = []
        for frame in video.frames:
            _check_frame(video, frame)
            history = [h for h in history if frame.index - h.index <= self.delta]
            kp = self._visible(frame.keypoints)
            seen = (kp[..., 2] > 0).any(axis=-1)
            ids = np.full(frame.num_poses, -1, np.int64)
            query = np.flatnonzero(seen)
            if len(query) and history:
                request = self._request(video, frame, kp, query, history)
                scores = yield request
                ids[query] = self._assigned(request, scores)
            new = ids < 0
            ids[new] = next_id + np.arange(int(new.sum()))
            next_id += int(new.sum())
            out = frame.select(np.arange(frame.num_poses))        # copies the arrays
            out.track_ids = ids
            frames.append(out)
            if seen.any():
                kp = kp[seen]
                velocity = (_velocity(history, frame.index, ids[seen], kp) if self.motion == "velocity"
                            else np.zeros((len(kp), 2)))
                history.append(_Tracked(frame.index, kp, frame.boxes[seen], ids[seen], pose_centres(kp), velocity,
                                        frame.scores[seen]))
        return dataclasses.replace(video, frames=frames)

    def _visible(self, keypoints: np.ndarray) -> np.ndarray:
        """Keypoints as the tracker sees them: ``c`` set to 0 below ``min_keypoint_confidence``."""
        kp = np.array(keypoints, dtype=np.float64)
        c = kp[..., 2]
        kp[..., 2] = np.where((c > 0) & (c >= self.min_keypoint_confidence), c, 0.0)
        return kp

    def _request(self, video: Video, frame: Frame, kp: np.ndarray, query: np.ndarray,
                 history: list[_Tracked]) -> "_Request":
        """What the scorer is asked for frame ``frame``: its comparable poses against the window's."""
        delta = np.concatenate([np.full(len(h.track_ids), frame.index - h.index) for h in history])
        keypoints = np.concatenate([h.keypoints for h in history])
        boxes = np.concatenate([h.boxes for h in history])
        centres = np.concatenate([h.centres for h in history])
        if self.motion == "velocity":           # step 6: each candidate where its track's motion puts it now
            shift = np.concatenate([h.velocity for h in history]) * delta[:, None]
            keypoints = keypoints.copy()
            keypoints[..., :2] += shift[:, None, :]
            boxes = boxes.copy()
            boxes[:, :2] += shift
            centres = centres + shift
        cand = Candidates(
            keypoints=keypoints,
            boxes=boxes,
            track_ids=np.concatenate([h.track_ids for h in history]),
            delta=delta,
            frame=np.concatenate([np.full(len(h.track_ids), h.index) for h in history]),
        )
        kp_q = kp[query]
        mask = self._nearest_mask(pose_centres(kp_q), centres, cand.delta)
        detection = (None if self.detection_threshold is None
                     else (frame.scores[query], np.concatenate([h.scores for h in history])))
        return _Request(video, frame, (kp_q, frame.boxes[query], cand, (video.width, video.height), mask), detection)

    def _assigned(self, request: "_Request", scores: np.ndarray) -> np.ndarray:
        """Track ids of the request's poses from their match scores (-1 = new track): steps 4, 5 and 7."""
        _, _, cand, _, mask = request.args
        scores = np.where(mask, np.asarray(scores, dtype=np.float64), -np.inf)
        # A track's score: the maximum over its appearances in the window (A.4).
        tracks, col = np.unique(cand.track_ids, return_inverse=True)
        track_scores = np.full((len(mask), len(tracks)), -np.inf)
        np.maximum.at(track_scores.T, col, scores.T)
        ids = np.full(len(mask), -1, np.int64)
        every_pose, every_track = np.ones(len(mask), bool), np.ones(len(tracks), bool)
        passes = [(every_pose, every_track)]
        if request.detection is not None:                          # step 7: confident first
            pose_scores, candidate_scores = request.detection
            confident_track = np.zeros(len(tracks), bool)
            np.logical_or.at(confident_track, col, _confident(candidate_scores, self.detection_threshold))
            passes = [(_confident(pose_scores, self.detection_threshold), confident_track), *passes]
        free = np.ones(len(tracks), bool)
        for poses, allowed in passes:
            poses, left = np.flatnonzero(poses & (ids < 0)), np.flatnonzero(allowed & free)
            if not len(poses) or not len(left):
                continue
            rows, cols = self._assign(track_scores[np.ix_(poses, left)], self.match_threshold)
            ids[poses[rows]] = tracks[left[cols]]
            free[left[cols]] = False
        return ids

    def _nearest_mask(self, centres: np.ndarray, cand_centres: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """``[Q, C]`` True where the candidate is among the query's ``n`` nearest of its frame."""
        q, c = len(centres), len(cand_centres)
        if self.nearest is None:
            return np.ones((q, c), bool)
        dist = ((centres[:, None, :] - cand_centres[None, :, :]) ** 2).sum(-1)      # [Q, C]
        mask = np.zeros((q, c), bool)
        for d in np.unique(delta):                                                   # ≤ δ frames
            cols = np.flatnonzero(delta == d)
            if len(cols) <= self.nearest:
                mask[:, cols] = True
                continue
            near = np.argsort(dist[:, cols], axis=1, kind="stable")[:, :self.nearest]  # ties: lower index
            mask[np.arange(q)[:, None], cols[near]] = True
        return mask


def _velocity(history: list[_Tracked], index: int, ids: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """``[K, 2]`` velocity per timestep of the tracks ``ids`` now at ``keypoints`` (frame ``index``),
    from each track's latest appearance in ``history`` (:func:`keytrack.pairs.pose_motion`); 0 for
    a track not in it."""
    velocity = np.zeros((len(ids), 2))
    if not history:
        return velocity
    past_ids = np.concatenate([h.track_ids for h in history])
    past_index = np.concatenate([np.full(len(h.track_ids), h.index) for h in history])
    past_keypoints = np.concatenate([h.keypoints for h in history])
    same = ids[:, None] == past_ids[None, :]                                   # [K, H]
    found = same.any(axis=1)
    latest = np.argmax(np.where(same, past_index[None, :], -1), axis=1)        # the latest appearance
    velocity[found] = pose_motion(keypoints[found], past_keypoints[latest[found]], (index - past_index[latest])[found])
    return velocity


def _confident(detection_scores: np.ndarray, threshold: float) -> np.ndarray:
    """True where a detection score is at least ``threshold``, or unknown (NaN)."""
    return ~(np.asarray(detection_scores, np.float64) < threshold)


def _where(video: Video, frame: Frame) -> str:
    src = video.source or "<memory>"
    name = f" {frame.file_name}" if frame.file_name else ""
    return f"{src} (video {video.name!r}, frame {frame.index}{name})"


def _check_order(video: Video) -> None:
    idx = np.array([f.index for f in video.frames], dtype=np.int64)
    bad = np.flatnonzero(np.diff(idx) <= 0)
    if len(bad):
        f = video.frames[bad[0] + 1]
        raise TrackingError(f"{_where(video, f)}: frame.index must increase strictly along the video "
                            f"(previous frame has index {idx[bad[0]]}); the tracker runs online in frame order")


def _check_frame(video: Video, frame: Frame) -> None:
    kp = frame.keypoints
    bad = (kp[..., 2] > 0) & ~np.isfinite(kp[..., :2]).all(-1)
    if bad.any():
        p, j = (int(v) for v in np.argwhere(bad)[0])
        raise TrackingError(f"{_where(video, frame)}: keypoints[{p}, {j}] is present (c = {kp[p, j, 2]}) "
                            f"but has non-finite coordinates {kp[p, j, :2].tolist()}")


# -- post-processing and frame-rate helpers ---------------------------------------------------

def apply_keypoint_threshold(dataset: Dataset, threshold: float) -> Dataset:
    """Remove keypoints whose confidence ``c`` is below ``threshold`` (A.3, Table 4).

    Removed keypoints become ``(0, 0, 0)``; the poses themselves, their boxes, scores and track ids
    are kept, even when no keypoint survives. ``threshold <= 0`` keeps everything. Returns a copy.
    """
    threshold = float(threshold)

    def frame_copy(f: Frame) -> Frame:
        out = f.select(np.arange(f.num_poses))
        if threshold > 0:
            out.keypoints[out.keypoints[..., 2] < threshold] = 0.0
        return out

    return Dataset([dataclasses.replace(v, frames=[frame_copy(f) for f in v.frames]) for v in dataset.videos],
                   dict(dataset.skipped))


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
    videos = [dataclasses.replace(v, frames=[dataclasses.replace(f, index=f.index // k)
                                             for f in v.frames if f.index % k == 0])
              for v in dataset.videos]
    return Dataset(videos, dict(dataset.skipped))


def drop_track_ids(dataset: Dataset) -> Dataset:
    """A copy with every ``track_ids`` set to -1 (the input of the tracker is untracked)."""
    def frame_copy(f: Frame) -> Frame:
        out = f.select(np.arange(f.num_poses))
        out.track_ids = np.full(f.num_poses, -1, np.int64)
        return out

    return Dataset([dataclasses.replace(v, frames=[frame_copy(f) for f in v.frames]) for v in dataset.videos],
                   dict(dataset.skipped))
