"""An OKS gate in front of a matching network: the network scores only the poses OKS cannot settle.

Beyond the paper. Most poses of a frame have one obvious track: their (motion-moved) candidates of
one track overlap them and no other track's come close. :class:`GatedScorer` decides those by OKS
(:class:`~keytrack.tracking.scorers.OKSScorer`) and sends the rest to the network it wraps, so a
learned tracker spends its forwards where a learned similarity can change a decision.

A pose is *settled* when, over the tracks in the window (a track's OKS: the maximum over its
candidates, as the tracker scores a track, A.4):

* its best track has OKS ``>= high``,
* every other track has OKS ``< low`` with it, and
* every other pose of the frame has OKS ``< low`` with that track (nobody contests it).

A settled pose scores 1 with its track's candidates and 0 with the others; the network scores
every other pose against every candidate except those of the settled poses' tracks (taken). Each
frame's remaining pairs of a ``score_many`` call still share the network's forwards.
"""

from __future__ import annotations

import numpy as np

from keytrack.tracking.scorers import Candidates, OKSScorer

__all__ = ["GatedScorer", "settled"]


def settled(oks: np.ndarray, track_ids: np.ndarray, mask: np.ndarray, high: float, low: float):
    """``(rows, tracks, columns)``: the settled poses of one frame (indices into ``oks``'s ``[P, C]``
    rows), the track id each is settled to, and ``[C]`` True at the candidates of those tracks."""
    p = len(oks)
    tracks, col = np.unique(track_ids, return_inverse=True)
    per_track = np.zeros((p, len(tracks)))
    np.maximum.at(per_track.T, col, np.where(mask, oks, 0.0).T)
    if p == 0 or len(tracks) == 0:
        return np.zeros(0, np.int64), np.zeros(0, track_ids.dtype), np.zeros(len(track_ids), bool)
    best = per_track.argmax(axis=1)
    top = per_track[np.arange(p), best]
    near = per_track >= low  # [P, T]
    alone_in_row = near.sum(axis=1) == 1
    alone_in_column = near.sum(axis=0)[best] == 1
    rows = np.flatnonzero((top >= high) & alone_in_row & alone_in_column)
    taken = np.zeros(len(tracks), bool)
    taken[best[rows]] = True
    return rows, tracks[best[rows]], taken[col]


class GatedScorer:
    """A matching network ``scorer`` behind an OKS gate (see the module description).

    Args:
        scorer: a :class:`~keytrack.tracking.scorers.PoseEntailmentScorer` or
            :class:`~keytrack.tracking.track_scorer.TrackEntailmentScorer`.
        high: a pose's best track needs at least this OKS to settle it.
        low: every other track (and every other pose with that track) stays below this OKS.
        oks_scale: OKS's σ times this (:class:`~keytrack.tracking.scorers.OKSScorer`'s ``scale``).

    ``settled_poses`` and ``asked_poses`` count the poses decided by OKS and those sent to the network.
    """

    def __init__(self, scorer, high: float = 0.5, low: float = 0.1, oks_scale: float = 1.0):
        if not 0 <= low <= high <= 1:
            raise ValueError(f"GatedScorer: need 0 <= low <= high <= 1, got low={low}, high={high}")
        self.scorer, self.high, self.low = scorer, float(high), float(low)
        self.settled_poses = self.asked_poses = 0
        self._oks = OKSScorer(scale=oks_scale)

    def __getattr__(self, name):  # name, max_delta, motion, mixes_videos, begin_video, counters
        if name in ("scorer", "_oks"):
            raise AttributeError(name)
        return getattr(self.scorer, name)

    def __call__(self, keypoints, boxes, candidates: Candidates, frame_size=None, mask=None) -> np.ndarray:
        return self.score_many([(keypoints, boxes, candidates, frame_size, mask)])[0]

    def score_many(self, requests) -> list[np.ndarray]:
        """The ``[P, C]`` scores of each request ``(keypoints, boxes, candidates, frame_size, mask)``:
        settled poses by OKS, the others by one ``score_many`` of the network."""
        gated, decided = [], []
        for keypoints, boxes, candidates, frame_size, mask in requests:
            p, c = len(keypoints), len(candidates)
            mask = np.ones((p, c), bool) if mask is None else np.asarray(mask, bool)
            oks = self._oks(keypoints, boxes, candidates)
            rows, ids, taken = settled(oks, candidates.track_ids, mask, self.high, self.low)
            hard = np.ones(p, bool)
            hard[rows] = False
            self.settled_poses += len(rows)
            self.asked_poses += int(hard.sum())
            gated.append((keypoints, boxes, candidates, frame_size, mask & hard[:, None] & ~taken[None, :]))
            decided.append((rows, ids, mask))
        many = getattr(self.scorer, "score_many", None)
        scores = many(gated) if many is not None and len(gated) > 1 else [self.scorer(*g) for g in gated]
        out = []
        for (_, _, candidates, _, _), (rows, ids, mask), s in zip(gated, decided, scores):
            s = np.array(s, dtype=np.float64)
            s[rows] = (candidates.track_ids[None, :] == ids[:, None]) & mask[rows]
            out.append(s)
        return out
