"""Training objectives of the matching networks.

* ``bce``: the paper's objective (§3.2, A.4): 2-way cross entropy on pose pairs drawn
  class-balanced by a ``WeightedRandomSampler``. Each pair is judged alone.
* ``listwise``: train as the tracker decides (§3.1 assigns a pose to the best of its candidates,
  or to a new track when none scores above the threshold). For one pose of frame ``t`` and its
  candidates ``c`` of frame ``t - Δ`` (a *candidate list*), the match logit of each pair is
  ``z_c = logit_1 - logit_0`` of the network's two outputs, and a "no match" option has logit 0:

      L = -log softmax([z_1, ..., z_C, 0])[target]

  with ``target`` the true continuation when it is among the candidates, else "no match" (the
  person is new, or absent from frame ``t - Δ``). The no-match logit is fixed at 0 and the
  classifier's bias is learnt, which is the same family as a learnt no-match logit ``b`` (only
  ``z_c - b`` matters) with one parameter fewer. The tracker's score of a pair,
  ``softmax(logits)[1] = sigmoid(z_c)``, is then the probability that ``c`` beats "no match", so
  the tracker's threshold 0.5 keeps its meaning. Every other person in the frame is a negative
  of the list: the hard negatives (people nearby, look-alikes) are all there by construction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LOSSES", "match_logit", "listwise_loss", "pair_loss"]

#: The values of the ``loss.name`` setting.
LOSSES = ("bce", "listwise")


def match_logit(logits: Tensor) -> Tensor:
    """``z = logit_1 - logit_0`` of ``[M, 2]`` two-way logits: ``sigmoid(z)`` is the match probability."""
    return logits[:, 1] - logits[:, 0]


def listwise_loss(logits: Tensor, labels: Tensor, group: Tensor, num_groups: int | None = None) -> Tensor:
    """Mean over candidate lists of ``-log softmax([z_1..z_C, 0])[target]`` (module docstring).

    Args:
        logits: ``[M, 2]`` two-way logits of ``M`` pairs.
        labels: ``[M]`` 1 where the pair's candidate is the same person (at most one per list).
        group: ``[M]`` the list of each pair, ``0..G-1``.
        num_groups: ``G`` (default ``group.max() + 1``).
    """
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ValueError(f"listwise_loss: logits must be [M, 2], got {tuple(logits.shape)}")
    if labels.shape != group.shape or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"listwise_loss: labels {tuple(labels.shape)} and group {tuple(group.shape)} must be "
            f"[{logits.shape[0]}]"
        )
    z = match_logit(logits).float()
    if len(z) == 0:
        return logits.sum() * 0.0
    g = int(num_groups if num_groups is not None else int(group.max()) + 1)
    group = group.long()
    # logsumexp over each list and its no-match logit 0, stabilised by the list's maximum.
    top = torch.zeros(g, dtype=z.dtype, device=z.device).scatter_reduce(
        0, group, z.detach(), "amax", include_self=True
    )
    total = torch.exp(-top).scatter_add(0, group, torch.exp(z - top[group]))
    lse = top + torch.log(total)
    target = torch.zeros(g, dtype=z.dtype, device=z.device).scatter_add(
        0, group, z * (labels > 0).to(z.dtype)
    )
    return (lse - target).mean()


def pair_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """The paper's per-pair 2-way cross entropy (A.4)."""
    return F.cross_entropy(logits, labels)
