"""Assigning the poses of a frame to existing tracks from a ``[P, T]`` score matrix (§3.1, §5.1).

``scores[i, k]`` is the match score of pose ``i`` of the current frame with track ``k`` (the
maximum over the track's appearances in the last ``δ`` timesteps); ``-inf`` (or NaN) marks a
pose-track pair that was not compared (the track lies outside the pose's ``n`` nearest). Both
functions return ``(poses, tracks)``, index arrays of the accepted pairs, sorted by pose. A pair
is accepted only when its score is ``>= threshold``; every pose and every track appears at most
once, and poses left out start new tracks in the tracker.

* :func:`greedy_assignment`: KeyTrack's assignment. Pairs are taken in order of decreasing score;
  a pair is taken when neither its pose nor its track is taken yet. Each pose therefore gets the
  track of its maximum available match score ``m* = max(M)`` (§3.1), highest scores first.
* :func:`hungarian_assignment`: the maximum-total-score one-to-one assignment
  (``scipy.optimize.linear_sum_assignment``), the alternative §5.1 reports as worse on detected
  poses; pairs scoring below the threshold are rejected after solving.
"""

from __future__ import annotations

import numpy as np

__all__ = ["greedy_assignment", "hungarian_assignment", "ASSIGNMENTS"]


def _valid(scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"assignment: scores must be a [P, T] matrix, got shape {scores.shape}")
    with np.errstate(invalid="ignore"):
        return scores, np.isfinite(scores) & (scores >= threshold)


def greedy_assignment(scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one assignment by decreasing score (§3.1).

    Ties are broken by lower pose index, then lower track index, so the result is deterministic.
    The candidate pairs are sorted once (vectorised); the scan over them stops as soon as every
    pose or every track is taken.
    """
    scores, valid = _valid(scores, threshold)
    p, t = scores.shape
    rows, cols = np.nonzero(valid)  # row-major: pose, then track order
    order = np.argsort(-scores[rows, cols], kind="stable")
    pose_taken = np.zeros(p, bool)
    track_taken = np.zeros(t, bool)
    out_rows, out_cols = [], []
    limit = min(p, t)
    for i, k in zip(rows[order].tolist(), cols[order].tolist()):
        if pose_taken[i] or track_taken[k]:
            continue
        pose_taken[i] = track_taken[k] = True
        out_rows.append(i)
        out_cols.append(k)
        if len(out_rows) == limit:
            break
    return _sorted(np.asarray(out_rows, np.int64), np.asarray(out_cols, np.int64))


def hungarian_assignment(scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-total-score assignment (Hungarian / Jonker-Volgenant), then the threshold.

    Pairs that were not compared or score below ``threshold`` enter the solver with score 0, the
    value of leaving pose and track unmatched (scores lie in ``[0, 1]``), and are dropped from its
    answer; the result is thus a maximum-weight matching over the accepted pairs only.
    """
    from scipy.optimize import linear_sum_assignment  # imported on use: scipy.optimize is slow to import

    scores, valid = _valid(scores, threshold)
    if scores.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows, cols = linear_sum_assignment(np.where(valid, scores, 0.0), maximize=True)
    keep = valid[rows, cols]
    return _sorted(rows[keep].astype(np.int64), cols[keep].astype(np.int64))


def _sorted(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(rows, kind="stable")
    return rows[order], cols[order]


#: Assignment functions by command-line name.
ASSIGNMENTS = {"greedy": greedy_assignment, "hungarian": hungarian_assignment}
