"""Ranking metrics of a matcher, computed as the tracker decides (§3.1).

For every pose of frame ``t`` (a *query*) with candidates in frames ``t-1 .. t-δ``, a track's
score is its best pair score in the window (A.4) and the tracker takes the best-scoring track, or
starts a new one when that score is below the match threshold. From the pair scores of all
queries:

* ``rank1``: of the queries whose person is among the candidates, the share whose true
  continuation scores strictly above every wrong candidate (a query with only its true
  candidate counts as ranked first);
* ``wrong_beats_true``: of the same queries, the share where some wrong candidate scores strictly
  above the true one (``1 - rank1`` up to exact ties);
* ``new_track``: of the queries whose person is *not* among the candidates (a new person, or one
  absent from the whole window), the share correctly sent to a new track, every candidate
  scoring below the threshold;
* ``accepted``: of the queries whose person is among the candidates, the share the tracker would
  assign correctly: ranked first *and* scoring at least the threshold.

Queries without any candidate are not counted (the tracker has no decision to make). Everything
is a scatter over the pairs, no Python loop. :class:`TrackingRanking` is the torchmetrics form
used during validation (``val/rank1`` etc.).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["ranking_stats", "per_query", "TrackingRanking", "RANKING_KEYS"]

RANKING_KEYS = ("rank1", "wrong_beats_true", "new_track", "accepted")


def per_query(scores: Tensor, labels: Tensor, query: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(query ids, best true score, best wrong score, has true)`` per distinct query; a missing
    true or wrong candidate scores ``-inf``."""
    ids, inv = torch.unique(query, return_inverse=True)
    n = len(ids)
    scores = scores.double()
    neg = torch.full((n,), float("-inf"), dtype=torch.float64, device=scores.device)
    true = labels > 0
    best_true = neg.clone().scatter_reduce(0, inv, torch.where(true, scores, float("-inf")), "amax")
    best_wrong = neg.clone().scatter_reduce(0, inv, torch.where(true, float("-inf"), scores), "amax")
    has_true = torch.zeros(n, dtype=torch.bool, device=scores.device).scatter_reduce(0, inv, true, "amax")
    return ids, best_true, best_wrong, has_true


def ranking_stats(
    scores: Tensor, labels: Tensor, query: Tensor, match_threshold: float = 0.5
) -> dict[str, float]:
    """The metrics of the module docstring from ``[M]`` pair scores, labels and query ids,
    plus ``queries``, ``continuing`` and ``new`` (the counts they are shares of). A share of no
    query is NaN."""
    if not (scores.shape == labels.shape == query.shape):
        raise ValueError(
            f"ranking_stats: scores {tuple(scores.shape)}, labels {tuple(labels.shape)} and "
            f"query {tuple(query.shape)} must have one shape [M]"
        )
    _, best_true, best_wrong, has_true = per_query(scores, labels, query)
    cont, new = int(has_true.sum()), int((~has_true).sum())
    first = has_true & (best_true > best_wrong)

    def share(hits: Tensor, of: int) -> float:
        return float(hits.sum()) / of if of else float("nan")

    return {
        "rank1": share(first, cont),
        "wrong_beats_true": share(has_true & (best_wrong > best_true), cont),
        "new_track": share(~has_true & (best_wrong < match_threshold), new),
        "accepted": share(first & (best_true >= match_threshold), cont),
        "queries": cont + new,
        "continuing": cont,
        "new": new,
    }


class TrackingRanking(Metric):
    """torchmetrics form of :func:`ranking_stats`: ``update(scores, labels, query)`` per batch (a
    query's pairs may span batches), ``compute()`` → ``{rank1, wrong_beats_true, new_track, accepted}``."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, match_threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.match_threshold = float(match_threshold)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.add_state("query", default=[], dist_reduce_fx="cat")

    def update(self, scores: Tensor, labels: Tensor, query: Tensor) -> None:
        self.scores.append(scores.detach().float())
        self.labels.append(labels.detach().long())
        self.query.append(query.detach().long())

    def compute(self) -> dict[str, Tensor]:
        def cat(x):
            return torch.cat(x) if isinstance(x, list) else x

        if isinstance(self.scores, list) and not self.scores:
            return {k: torch.tensor(float("nan")) for k in RANKING_KEYS}
        stats = ranking_stats(cat(self.scores), cat(self.labels), cat(self.query), self.match_threshold)
        return {k: torch.tensor(stats[k]) for k in RANKING_KEYS}
