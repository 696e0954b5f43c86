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
* ``track_listwise_loss`` (the track-level matcher, :mod:`keytrack.models.track_transformer`; not in
  the paper): the same softmax, over the *tracks* alive in the window and "no match". Each list is one
  pose of frame ``t`` with one logit ``z_k`` per track (the pose against the track's last appearances),
  and ``L = -log softmax([z_1, ..., z_T, b])[target]`` with ``b`` the no-match logit (0 by default, so
  ``sigmoid(z_k) > 0.5`` exactly when the track beats "new track").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "LOSSES",
    "match_logit",
    "listwise_loss",
    "pair_loss",
    "track_listwise_loss",
    "track_list_choice",
    "list_positions",
]

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


def list_positions(group: Tensor, num_groups: int) -> Tensor:
    """``[E]`` the position of each entry within its list (``0..len-1``, in the entries' order),
    for ``group [E]`` the list of each entry, ``0..G-1`` (any order)."""
    group = group.long()
    counts = torch.bincount(group, minlength=num_groups)
    order = torch.argsort(group, stable=True)
    first = torch.cumsum(counts, 0) - counts
    pos = torch.empty_like(group)
    pos[order] = torch.arange(len(group), device=group.device) - first[group[order]]
    return pos


def _check_track_lists(logits: Tensor, group: Tensor, target: Tensor, where: str) -> int:
    if logits.ndim != 1:
        raise ValueError(f"{where}: logits must be [E] (one per query-track pair), got {tuple(logits.shape)}")
    if group.shape != logits.shape:
        raise ValueError(f"{where}: group must be [{len(logits)}] like logits, got {tuple(group.shape)}")
    if target.ndim != 1:
        raise ValueError(f"{where}: target must be [G] (one per list), got {tuple(target.shape)}")
    g = len(target)
    if len(group) and (int(group.min()) < 0 or int(group.max()) >= g):
        raise ValueError(f"{where}: group values must lie in 0..{g - 1} (target has {g} lists)")
    counts = torch.bincount(group.long(), minlength=g)
    bad = (target < -1) | (target >= counts)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{where}: target[{i}] = {int(target[i])} but list {i} holds {int(counts[i])} tracks "
            "(expected -1 for no match or 0..len-1)"
        )
    return g


def track_listwise_loss(
    logits: Tensor, group: Tensor, target: Tensor, no_match: Tensor | float = 0.0
) -> Tensor:
    """Mean over lists of ``-log softmax([z_1..z_T, b])[target]`` (module docstring).

    Args:
        logits: ``[E]`` one logit per (query pose, track) pair.
        group: ``[E]`` the list (query pose) of each pair, ``0..G-1``.
        target: ``[G]`` each list's true track as its position among the list's pairs (in the
            order they appear in ``logits``), or ``-1`` for "no match" (a new track).
        no_match: ``b``, the no-match logit (a number, or a learnt scalar tensor).
    """
    g = _check_track_lists(logits, group, target, "track_listwise_loss")
    if g == 0:
        return logits.sum() * 0.0
    z, group, target = logits.float(), group.long(), target.long()
    b = torch.as_tensor(no_match, dtype=z.dtype, device=z.device).expand(g)
    # logsumexp over each list and its no-match logit, stabilised by the list's maximum.
    top = b.detach().clone().scatter_reduce(0, group, z.detach(), "amax", include_self=True)
    total = torch.exp(b - top).scatter_add(0, group, torch.exp(z - top[group]))
    lse = top + torch.log(total)
    hit = list_positions(group, g) == target[group]
    true_logit = torch.zeros(g, dtype=z.dtype, device=z.device).scatter_add(
        0, group, torch.where(hit, z, 0.0)
    )
    return (lse - torch.where(target >= 0, true_logit, b)).mean()


def track_list_choice(logits: Tensor, group: Tensor, num_groups: int, no_match: float = 0.0) -> Tensor:
    """``[G]`` the argmax of each list over its tracks and "no match": the position of the best track
    when its logit beats ``no_match``, else ``-1`` (what the tracker decides for a pose alone)."""
    z, group = logits.detach().float(), group.long()
    none = torch.full((num_groups,), -1, dtype=torch.long, device=z.device)
    if len(z) == 0:
        return none
    top = torch.full((num_groups,), float("-inf"), device=z.device).scatter_reduce(
        0, group, z, "amax", include_self=True
    )
    index = torch.arange(len(z), device=z.device)
    # the first entry of each list that reaches the list's maximum
    first = torch.full((num_groups,), len(z), dtype=torch.long, device=z.device).scatter_reduce(
        0, group, torch.where(z == top[group], index, len(z)), "amin", include_self=True
    )
    best = list_positions(group, num_groups)[first.clamp_max(len(z) - 1)]
    return torch.where((first < len(z)) & (top > no_match), best, none)
