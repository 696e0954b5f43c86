"""The track-level Pose Entailment scorer (beyond the paper; :mod:`keytrack.models.track_transformer`).

The tracker (:class:`~keytrack.tracking.tracker.Tracker`) asks a scorer for a ``[P, C]`` matrix of
(pose, candidate) scores and gives each track the maximum over its candidates in the window (A.4).
:class:`TrackEntailmentScorer` scores a pose against a whole *track* instead: the candidates are
grouped by ``track_ids``, each track's last ``k`` candidates (smallest ``Δ`` first, as the tracker
shows them: moved by its motion model where one is on) form its history, every (pose, track) pair
asked for goes through the network in one batched forward, and the track's score is written in
every column of that track, so the tracker's maximum over appearances is the track's score.

``mask`` (the tracker's ``n`` nearest candidates, §3.1) says which (pose, track) pairs are asked:
a pair is scored when at least one of the track's candidates is unmasked for the pose, and the
history is always the track's own last ``k`` appearances. Masked columns score 0, as with the other
scorers.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from keytrack.skeleton import NUM_JOINTS
from keytrack.tracking.scorers import Candidates

__all__ = ["TrackEntailmentScorer", "is_track_checkpoint", "track_histories"]


def is_track_checkpoint(checkpoint: str | Path) -> bool:
    """Whether ``checkpoint`` is a readable training checkpoint of the track-level matcher (False for
    anything else: the pair matchers' loader then reports what is wrong with it)."""
    import torch

    path = Path(checkpoint)
    if not path.is_file():
        return False
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        name = state["hyper_parameters"]["cfg"]["model"]["name"]
    except Exception:  # noqa: BLE001 - not a track checkpoint, whatever the reason
        return False
    from keytrack.models.track_transformer import TRACK_MODEL

    return str(name) == TRACK_MODEL


def track_histories(
    candidates: Candidates, history: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(tracks [T], column_track [C], rows [T, k], delta [T, k])``: the distinct track ids, each
    candidate's track (index into ``tracks``), and each track's last ``k = history`` candidates
    (columns, smallest ``Δ`` first, ``-1`` padded) with their ``Δ`` (0 padded)."""
    tracks, column_track = np.unique(candidates.track_ids, return_inverse=True)
    order = np.lexsort((np.arange(len(candidates)), candidates.delta, column_track))
    sorted_track = column_track[order]
    first = np.searchsorted(sorted_track, np.arange(len(tracks)))
    rank = np.arange(len(order)) - first[sorted_track]
    keep = rank < int(history)
    rows = np.full((len(tracks), int(history)), -1, np.int64)
    delta = np.zeros((len(tracks), int(history)), np.int64)
    rows[sorted_track[keep], rank[keep]] = order[keep]
    delta[sorted_track[keep], rank[keep]] = candidates.delta[order[keep]]
    return tracks, column_track.reshape(-1), rows, delta


class TrackEntailmentScorer:
    """Scores of poses against tracks from a track-level matcher (module docstring).

    Args:
        model: a :class:`~keytrack.models.track_transformer.TrackTransformer`.
        device: torch device to run on.
        batch_size: most (pose, track) pairs per forward.
        precision: ``"fp32"`` or ``"bf16"`` (the forward under bfloat16 autocast).
        motion: the tracker motion the network was trained for (``pairs.motion`` of its config).

    ``pairs_scored`` (pose-track pairs), ``forwards`` and ``network_seconds`` count the work done.
    """

    name = "track_entailment"
    PRECISIONS = ("fp32", "bf16")
    #: A score depends on the whole track, not on one (pose, candidate) pair: pair memos pass it by.
    scores_tracks = True

    def __init__(
        self, model, device="cpu", batch_size: int = 16384, precision: str = "fp32", motion: str = "none"
    ):
        import torch

        if int(batch_size) < 1:
            raise ValueError(f"TrackEntailmentScorer: batch_size must be >= 1, got {batch_size}")
        if precision not in self.PRECISIONS:
            raise ValueError(
                f"TrackEntailmentScorer: precision must be one of {', '.join(self.PRECISIONS)}, "
                f"got {precision!r}"
            )
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.batch_size, self.precision, self.motion = int(batch_size), precision, str(motion)
        self.pairs_scored, self.forwards, self.network_seconds = 0, 0, 0.0

    @property
    def max_delta(self) -> int:
        return int(self.model.config.max_delta)

    @property
    def history(self) -> int:
        return int(self.model.config.history)

    @property
    def mixes_videos(self) -> bool:
        """Frames of several videos may share a forward (``score_many``; ``--videos-at-once``)."""
        return True

    @classmethod
    def from_checkpoint(
        cls, checkpoint: str | Path, device="cpu", batch_size: int = 16384, precision: str = "fp32", **_
    ) -> "TrackEntailmentScorer":
        """The scorer of a track-level training checkpoint (the other keyword arguments of
        :meth:`keytrack.tracking.PoseEntailmentScorer.from_checkpoint`, those for image crops, are
        accepted and unused)."""
        from keytrack.models.track_transformer import load_track_model

        model, cfg = load_track_model(checkpoint)
        return cls(model, device, batch_size, precision, motion=str(cfg.pairs.get("motion", "none")))

    def __call__(self, keypoints, boxes, candidates: Candidates, frame_size=None, mask=None) -> np.ndarray:
        return self.score_many([(keypoints, boxes, candidates, frame_size, mask)])[0]

    def score_many(self, requests) -> list[np.ndarray]:
        """The ``[P, C]`` score matrices of several frames' ``(keypoints, boxes, candidates, frame_size,
        mask)`` (frames of different videos, :mod:`keytrack.tracking.schedule`), as ``__call__`` gives
        each, with the (pose, track) pairs of all of them in one batched forward."""
        asked = [self._asked(*request) for request in requests]
        parts = [a for a in asked if a[1] is not None]
        if not parts:
            return [out for out, *_ in asked]
        scores = self.track_scores(*(np.concatenate([p[2][i] for p in parts]) for i in range(3)))
        ends = np.cumsum([len(p[2][0]) for p in parts])
        for part, chunk in zip(parts, np.split(scores, ends[:-1])):
            out, (pose, track, column_track, mask), _ = part
            table = np.zeros((len(out), column_track.max() + 1))
            table[pose, track] = chunk
            out[:] = np.where(mask, table[:, column_track], 0.0)
        return [out for out, *_ in asked]

    def _asked(self, keypoints, boxes, candidates: Candidates, frame_size=None, mask=None):
        """``(out [P, C] zeros, where, (query, history, Δ))`` of one request: ``where`` = (the asked
        pairs' pose and track indices, each column's track, the mask), None when nothing is asked."""
        keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
        p, c = len(keypoints), len(candidates)
        mask = np.ones((p, c), bool) if mask is None else np.asarray(mask, bool)
        if mask.shape != (p, c):
            raise ValueError(f"TrackEntailmentScorer: mask must be [{p}, {c}], got {mask.shape}")
        bad = (candidates.delta < 1) | (candidates.delta > self.max_delta)
        if bad.any():
            raise ValueError(
                f"TrackEntailmentScorer: candidate Δ = {int(candidates.delta[bad][0])} is outside "
                f"1..{self.max_delta}, the δ the model was trained with"
            )
        out = np.zeros((p, c))
        if p == 0 or c == 0:
            return out, None, None
        tracks, column_track, rows, delta = track_histories(candidates, self.history)
        asked = np.zeros((p, len(tracks)), bool)
        np.logical_or.at(asked.T, column_track, mask.T)  # a track is asked when a candidate of it is
        seen = (keypoints[..., 2] > 0).any(-1)
        pose, track = np.nonzero(asked & seen[:, None])
        if len(pose) == 0:
            return out, None, None
        history = np.where((delta > 0)[..., None, None], candidates.keypoints[rows.clip(0)], 0.0)
        return out, (pose, track, column_track, mask), (keypoints[pose], history[track], delta[track])

    def track_scores(self, query: np.ndarray, history: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """``[N]`` ``sigmoid(z)`` of ``N`` (pose ``[N, 15, 3]``, history ``[N, k, 15, 3]``, ``Δ [N, k]``)
        pairs, ``batch_size`` pairs per forward."""
        import torch

        t0 = time.perf_counter()
        dev, out = self.device, []
        q = torch.as_tensor(query, dtype=torch.float32, device=dev)
        h = torch.as_tensor(history, dtype=torch.float32, device=dev)
        d = torch.as_tensor(delta, dtype=torch.long, device=dev)
        bf16 = self.precision == "bf16"
        with torch.inference_mode():
            for s in range(0, len(q), self.batch_size):
                chunk = slice(s, s + self.batch_size)
                with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
                    z = self.model({"query": q[chunk], "history": h[chunk], "delta": d[chunk]})
                out.append(torch.sigmoid(z.float()))
                self.forwards += 1
        self.network_seconds += time.perf_counter() - t0
        self.pairs_scored += len(q)
        return torch.cat(out).cpu().numpy().astype(np.float64)
