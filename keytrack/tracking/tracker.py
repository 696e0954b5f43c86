"""The online tracker of KeyTrack (§3.1, Fig. 2, A.4).

:meth:`Tracker.track_frames` is the tracking step of §3.1; it assigns track ids frame by frame,
never looking ahead:

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
   With ``motion = "kalman"`` each track has a constant-velocity Kalman filter instead
   (:mod:`keytrack.tracking.kalman`, after OC-SORT's observation-centric re-update), and a
   candidate is moved by its track's predicted position at frame ``t`` minus the track's
   observed position at the candidate's frame.
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
8. With ``new_track_threshold = τ_new`` (beyond the paper; None, the paper's, keeps every pose),
   only a confident detection may start a track, as in ByteTrack's and the SORT family's trackers
   (Zhang et al., ECCV 2022: ``new_track_thresh``): a pose that continues no track and whose
   detection score is below ``τ_new`` is left out of the output and of the window. A detector's
   false positives rarely continue a track, so they no longer count as false positives, nor
   start tracks that take a person's identity later; a low-score pose of a tracked person keeps
   its track. A pose without a score (NaN) counts as confident; ground truth is never dropped.

Poses without a keypoint the tracker can see (none with ``c > 0`` and ``c >=
min_keypoint_confidence``) cannot be compared: each gets a new track id of its own and is not a
candidate for later frames. Track ids are assigned per video, ``0, 1, 2, ...`` in order of
appearance; a :class:`Window` holds what a video's next step needs of its past.

Which frames go through a step together (one video at a time, or the current frames of several
videos in one scorer call) is :mod:`keytrack.tracking.schedule`'s business; the frame and
keypoint transforms shared with evaluation are in :mod:`keytrack.tracking.transforms`.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from keytrack import pairs
from keytrack.errors import InputError
from keytrack.pairs import pose_centres, pose_motion, resolve_motion
from keytrack.poses import Dataset, Frame, Video
from keytrack.tracking.assignment import ASSIGNMENTS
from keytrack.tracking.kalman import KalmanTracks
from keytrack.tracking.schedule import track_together
from keytrack.tracking.scorers import Candidates, Scorer

__all__ = ["Tracker", "TrackingError", "Window", "MOTIONS"]

#: The tracker's motion models (step 6): those a matching network can be trained for
#: (:data:`keytrack.pairs.MOTIONS`) and ``"kalman"``.
MOTIONS: tuple[str, ...] = (*pairs.MOTIONS, "kalman")


class TrackingError(InputError):
    """Bad tracker input; the message names the video's file, the frame and the field."""


@dataclasses.dataclass
class _Tracked:
    """The tracked, comparable poses of one earlier frame."""

    index: int
    keypoints: np.ndarray  # [K, 15, 3] as the tracker sees them
    boxes: np.ndarray  # [K, 4]
    track_ids: np.ndarray  # [K]
    centres: np.ndarray  # [K, 2]
    velocity: np.ndarray  # [K, 2] the track's velocity per timestep (0 for a new track, or without motion)
    scores: np.ndarray  # [K] detection scores
    anchors: np.ndarray | None = None  # [K, 2] the track's Kalman observation here (motion "kalman")


class Window:
    """What the tracking of one video keeps between its frames (§3.1): the tracked, comparable
    poses of its last ``δ`` timesteps (the candidates of its next frame) and the next new id."""

    def __init__(self, video: Video):
        self.video = video
        self.frames: list[_Tracked] = []
        self.next_id = 0
        self.kalman = KalmanTracks()

    def recent(self, index: int, delta: int) -> list[_Tracked]:
        """The remembered frames at most ``delta`` timesteps before frame ``index``."""
        return [h for h in self.frames if index - h.index <= delta]

    def slide(self, index: int, delta: int) -> None:
        """Forgets the frames more than ``delta`` timesteps before frame ``index``."""
        self.frames = self.recent(index, delta)
        self.kalman.forget(index - delta)

    def new_ids(self, count: int) -> np.ndarray:
        """``count`` track ids never given in this video, in order of appearance."""
        ids = self.next_id + np.arange(count)
        self.next_id += count
        return ids

    def remember(self, frame: Frame, keypoints: np.ndarray, ids: np.ndarray, motion: str) -> None:
        """Adds the comparable poses of ``frame`` (``keypoints`` as the tracker sees them, their
        track ``ids``) as candidates for later frames, with their track's velocity (step 6)."""
        seen = (keypoints[..., 2] > 0).any(axis=-1)
        if not seen.any():
            return
        kp, anchors = keypoints[seen], None
        if motion == "velocity":
            velocity = _velocity(self.frames, frame.index, ids[seen], kp)
        elif motion == "kalman":
            anchors = self.kalman.observe(frame.index, ids[seen], kp)
            velocity = self.kalman.velocity(ids[seen])
        else:
            velocity = np.zeros((len(kp), 2))
        self.frames.append(
            _Tracked(
                frame.index,
                kp,
                frame.boxes[seen],
                ids[seen],
                pose_centres(kp),
                velocity,
                frame.scores[seen],
                anchors,
            )
        )

    def motion_shift(self, index: int, delta: np.ndarray, motion: str) -> np.ndarray | None:
        """``[C, 2]`` how far each remembered pose (in window order, ``delta`` timesteps before frame
        ``index``) is moved by its track's motion before scoring (step 6); None without motion."""
        if motion == "velocity":
            return np.concatenate([h.velocity for h in self.frames]) * delta[:, None]
        if motion == "kalman":
            ids = np.concatenate([h.track_ids for h in self.frames])
            return self.kalman.predict(ids, index) - np.concatenate([h.anchors for h in self.frames])
        return None


@dataclasses.dataclass
class _Request:
    """One frame's question to the scorer: the video and frame it comes from (named in an error),
    the poses it compares (``query``, indices into the frame) and the scorer's arguments
    ``(keypoints, boxes, candidates, frame_size, mask)``."""

    video: Video
    frame: Frame
    query: np.ndarray
    args: tuple
    #: the detection scores of the poses ``[Q]`` and of the candidates ``[C]`` (step 7; None without it)
    detection: tuple[np.ndarray, np.ndarray] | None = None


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
        motion: ``"none"`` (the paper's), ``"velocity"``: candidates are translated by their
            track's velocity times ``Δ`` before scoring (step 6 above), or ``"kalman"``: by their
            track's Kalman prediction (:mod:`keytrack.tracking.kalman`). None (default):
            the scorer's ``motion`` (a matching network's ``pairs.motion``, what it was trained
            for), else ``"none"``.
        detection_threshold: ``τ`` of the two-pass assignment, confident detections first (step
            7); None (default, the paper's): one pass.
        new_track_threshold: ``τ_new``: a pose that continues no track starts one only if its
            detection score is at least this, else it is left out (step 8); None (default, the
            paper's): every pose is kept.

    ``frames_tracked`` and ``seconds`` add up the frames and the wall-clock time of every
    :meth:`track_videos`, for frames/s reports.
    """

    def __init__(
        self,
        scorer: Scorer,
        delta: int = 4,
        nearest: int | None = None,
        assignment: str = "greedy",
        match_threshold: float = 0.5,
        min_keypoint_confidence: float = 0.0,
        motion: str | None = None,
        detection_threshold: float | None = None,
        new_track_threshold: float | None = None,
    ):
        if int(delta) < 1:
            raise ValueError(f"Tracker: delta must be >= 1, got {delta}")
        max_delta = getattr(scorer, "max_delta", None)
        if max_delta is not None and int(delta) > int(max_delta):
            raise ValueError(
                f"Tracker: delta = {delta} exceeds the scorer's δ = {max_delta} "
                "(the Segment vocabulary the matching network was trained with)"
            )
        if nearest is not None and int(nearest) < 1:
            raise ValueError(f"Tracker: nearest must be >= 1 or None, got {nearest}")
        if assignment not in ASSIGNMENTS:
            raise ValueError(f"Tracker: unknown assignment {assignment!r} (known: {', '.join(ASSIGNMENTS)})")
        if detection_threshold is not None and not np.isfinite(float(detection_threshold)):
            raise ValueError(
                f"Tracker: detection_threshold must be a finite number or None, got {detection_threshold}"
            )
        if new_track_threshold is not None and not np.isfinite(float(new_track_threshold)):
            raise ValueError(
                f"Tracker: new_track_threshold must be a finite number or None, got {new_track_threshold}"
            )
        self.motion = resolve_motion(motion, scorer, where="Tracker", known=MOTIONS)
        self.scorer = scorer
        self.delta = int(delta)
        self.nearest = None if nearest is None else int(nearest)
        self.assignment = assignment
        self._assign = ASSIGNMENTS[assignment]
        self.match_threshold = float(match_threshold)
        self.min_keypoint_confidence = float(min_keypoint_confidence)
        self.detection_threshold = None if detection_threshold is None else float(detection_threshold)
        self.new_track_threshold = None if new_track_threshold is None else float(new_track_threshold)
        self.frames_tracked = 0
        self.seconds = 0.0

    # -- videos ------------------------------------------------------------------------------

    def track_video(self, video: Video) -> Video:
        """A copy of ``video`` with ``track_ids`` filled in, frame by frame (online)."""
        return self.track_videos([video])[0]

    def track_dataset(self, dataset: Dataset, videos_at_once: int = 1) -> Dataset:
        """Every video tracked independently (track ids restart at 0 in each video); see
        :meth:`track_videos`."""
        return Dataset(self.track_videos(dataset.videos, videos_at_once), dict(dataset.skipped))

    def track_videos(self, videos: list[Video], videos_at_once: int = 1) -> list[Video]:
        """Tracked copies of ``videos``, each online and on its own.

        ``videos_at_once = k > 1``, for a scorer that can score frames of several videos in one call
        (``mixes_videos``: a matching network on keypoints), lets ``k`` videos advance together and
        their frames' pairs go through one network forward; the track ids are those of one video at
        a time (:mod:`keytrack.tracking.schedule`). Other scorers track one video at a time.
        """
        t0 = time.perf_counter()
        out = track_together(self, videos, videos_at_once)
        self.frames_tracked += sum(len(v.frames) for v in videos)
        self.seconds += time.perf_counter() - t0
        return out

    # -- one step ----------------------------------------------------------------------------

    def start(self, video: Video) -> Window:
        """The empty window of ``video``, whose frames must come in increasing ``index`` (the tracker is
        online). A scorer that reads the video's images (``begin_video``) is told which video comes."""
        if hasattr(self.scorer, "begin_video"):
            self.scorer.begin_video(video)
        _check_order(video)
        return Window(video)

    def compares(self, window: Window, frame: Frame) -> bool:
        """Whether the step of ``frame`` asks the scorer anything: the frame has a pose the tracker
        can see and the window a candidate for it."""
        seen = (self._visible(frame.keypoints)[..., 2] > 0).any()
        return bool(seen) and bool(window.recent(frame.index, self.delta))

    def track_frames(self, windows: list[Window], frames: list[Frame]) -> list[Frame]:
        """The next frame of each window's video, with its track ids: one step of the tracker (§3.1).

        Each video is tracked on its own, as in the paper; only the scorer call is shared:

        1. candidates: the frame's poses against the tracked poses of the video's last ``δ``
           timesteps (the ``n`` nearest of each earlier frame, moved by their track's motion, where
           asked; steps 1, 2, 6 of the module's description);
        2. scores: the ``[P, C]`` match score of every (pose, candidate) pair, one scorer call for
           all frames (step 3);
        3. assignment: a track scores the maximum over its appearances (A.4) and poses take tracks
           greedily, highest score first (confident detections first where asked; steps 4, 5, 7);
        4. new ids: a pose whose best available score is below the match threshold, or that had
           nothing to compare with, starts a new track (if its detection score allows it, step 8;
           else it is left out of the frame).

        The tracked poses join their window as candidates for the frames that follow.
        """
        for window, frame in zip(windows, frames):
            _check_frame(window.video, frame)
            window.slide(frame.index, self.delta)
        visible = [self._visible(frame.keypoints) for frame in frames]
        requests = [self._candidates(w, f, kp) for w, f, kp in zip(windows, frames, visible)]  # 1.
        scores = iter(self._score([r for r in requests if r is not None]))  # 2.
        tracked = []
        for window, frame, kp, request in zip(windows, frames, visible, requests):
            ids = np.full(frame.num_poses, -1, np.int64)
            if request is not None:
                ids[request.query] = self._assigned(request, next(scores))  # 3.
            new = ids < 0
            kept = ~(new & ~_confident(frame.scores, self.new_track_threshold))  # 8.
            new &= kept
            ids[new] = window.new_ids(int(new.sum()))  # 4.
            out = frame.select(np.flatnonzero(kept))  # copies the arrays
            out.track_ids = ids[kept]
            tracked.append(out)
            window.remember(out, kp[kept], out.track_ids, self.motion)
        return tracked

    # -- the parts of a step -----------------------------------------------------------------

    def _visible(self, keypoints: np.ndarray) -> np.ndarray:
        """Keypoints as the tracker sees them: ``c`` set to 0 below ``min_keypoint_confidence``."""
        kp = np.array(keypoints, dtype=np.float64)
        c = kp[..., 2]
        kp[..., 2] = np.where((c > 0) & (c >= self.min_keypoint_confidence), c, 0.0)
        return kp

    def _candidates(self, window: Window, frame: Frame, kp: np.ndarray) -> _Request | None:
        """What the scorer is asked for ``frame`` (keypoints ``kp`` as the tracker sees them): its
        comparable poses against the window's, each candidate moved by its track's motion where
        asked (step 6); None when there is nothing to compare."""
        query = np.flatnonzero((kp[..., 2] > 0).any(axis=-1))
        history = window.frames
        if not (len(query) and history):
            return None
        delta = np.concatenate([np.full(len(h.track_ids), frame.index - h.index) for h in history])
        keypoints = np.concatenate([h.keypoints for h in history])
        boxes = np.concatenate([h.boxes for h in history])
        centres = np.concatenate([h.centres for h in history])
        shift = window.motion_shift(frame.index, delta, self.motion)
        if shift is not None:
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
        detection = (
            None
            if self.detection_threshold is None
            else (frame.scores[query], np.concatenate([h.scores for h in history]))
        )
        video = window.video
        args = (kp_q, frame.boxes[query], cand, (video.width, video.height), mask)
        return _Request(video, frame, query, args, detection)

    def _nearest_mask(self, centres: np.ndarray, cand_centres: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """``[Q, C]`` True where the candidate is among the query's ``n`` nearest of its frame (step 2)."""
        q, c = len(centres), len(cand_centres)
        if self.nearest is None:
            return np.ones((q, c), bool)
        dist = ((centres[:, None, :] - cand_centres[None, :, :]) ** 2).sum(-1)  # [Q, C]
        mask = np.zeros((q, c), bool)
        for d in np.unique(delta):  # ≤ δ frames
            cols = np.flatnonzero(delta == d)
            if len(cols) <= self.nearest:
                mask[:, cols] = True
                continue
            near = np.argsort(dist[:, cols], axis=1, kind="stable")[:, : self.nearest]  # ties: lower index
            mask[np.arange(q)[:, None], cols[near]] = True
        return mask

    def _score(self, requests: list[_Request]) -> list[np.ndarray]:
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

    def _assigned(self, request: _Request, scores: np.ndarray) -> np.ndarray:
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
        if request.detection is not None:  # step 7: confident first
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
    same = ids[:, None] == past_ids[None, :]  # [K, H]
    found = same.any(axis=1)
    latest = np.argmax(np.where(same, past_index[None, :], -1), axis=1)  # the latest appearance
    velocity[found] = pose_motion(
        keypoints[found], past_keypoints[latest[found]], (index - past_index[latest])[found]
    )
    return velocity


def _confident(detection_scores: np.ndarray, threshold: float | None) -> np.ndarray:
    """True where a detection score is at least ``threshold``, or unknown (NaN), or ``threshold`` is None."""
    scores = np.asarray(detection_scores, np.float64)
    return np.ones(scores.shape, bool) if threshold is None else ~(scores < threshold)


def _where(video: Video, frame: Frame) -> str:
    src = video.source or "<memory>"
    name = f" {frame.file_name}" if frame.file_name else ""
    return f"{src} (video {video.name!r}, frame {frame.index}{name})"


def _check_order(video: Video) -> None:
    idx = np.array([f.index for f in video.frames], dtype=np.int64)
    bad = np.flatnonzero(np.diff(idx) <= 0)
    if len(bad):
        f = video.frames[bad[0] + 1]
        raise TrackingError(
            f"{_where(video, f)}: frame.index must increase strictly along the video "
            f"(previous frame has index {idx[bad[0]]}); the tracker runs online in frame "
            "order"
        )


def _check_frame(video: Video, frame: Frame) -> None:
    kp = frame.keypoints
    bad = (kp[..., 2] > 0) & ~np.isfinite(kp[..., :2]).all(-1)
    if bad.any():
        p, j = (int(v) for v in np.argwhere(bad)[0])
        raise TrackingError(
            f"{_where(video, frame)}: keypoints[{p}, {j}] is present (c = {kp[p, j, 2]}) "
            f"but has non-finite coordinates {kp[p, j, :2].tolist()}"
        )
