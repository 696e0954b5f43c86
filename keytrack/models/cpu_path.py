"""The CPU path of the Transformer Matching Network: the same computation, in kernels that are
faster on a CPU than PyTorch's general ones for this model's small shapes (30 tokens of 32
dimensions per head, :mod:`keytrack.models.transformer`).

:func:`enabled` is the one switch: :mod:`keytrack.models.transformer` takes this path for every
tensor it says yes to (those on the CPU) and PyTorch's own kernels otherwise. What the path does:

* :func:`attention`: Eq. 4 (§3.2, Table 5) with the heads folded into the batch, the padding mask
  added as ``-inf`` by one ``baddbmm`` and one ``bmm`` applying the probabilities to V, in place of
  ``F.scaled_dot_product_attention``'s masked CPU kernel; attention dropout through :func:`dropout`;
* :func:`dropout`: the dropout mask drawn from 16-bit lanes of 64-bit random integers, four
  elements per draw, in place of ``F.dropout``'s one Bernoulli draw per element (the dropout of
  A.5, 0.1 throughout the network);
* :func:`in_chunks`: inference over a large batch in chunks of :data:`CHUNK` pairs, whose
  activations stay in the CPU caches.

Each is measured by ``keytrack bench`` (docs/performance.md); ``tests/test_transformer.py`` checks that
both paths compute the same numbers.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["CHUNK", "enabled", "attention", "dropout", "in_chunks"]

#: Pairs per chunk of :func:`in_chunks`.
CHUNK = 128


def enabled(x: Tensor) -> bool:
    """Whether the computation on ``x`` takes this path: on the CPU."""
    return x.device.type == "cpu"


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0) -> Tensor:
    """``softmax(QKᵀ/√d_k + mask) V`` (Eq. 4), as ``F.scaled_dot_product_attention(q, k, v,
    attn_mask=mask, dropout_p=dropout_p)`` computes it.

    ``q``: ``[M, heads, s_q, d]``; ``k``, ``v``: ``[M, heads, s, d]``; ``mask``: bool, broadcastable
    to ``[M, 1, 1, s]`` (True = may be attended; A.5's attention mask) or None. Returns
    ``[M, heads, s_q, d]``.
    """
    m, heads, s_q, d = q.shape
    s = k.shape[2]
    q, k, v = (t.reshape(m * heads, t.shape[2], d) for t in (q, k, v))
    if mask is None:
        scores = torch.bmm(q, k.transpose(1, 2)).mul_(d**-0.5)
    else:
        bias = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, float("-inf"))
        bias = bias.expand(m, heads, 1, s).reshape(m * heads, 1, s)
        scores = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=d**-0.5)
    probs = dropout(torch.softmax(scores, dim=-1), dropout_p, dropout_p > 0.0)
    return torch.bmm(probs, v).view(m, heads, s_q, d)


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout(x, p, training)`` with a mask read from 16-bit lanes of 64-bit draws.

    The draws come from the same generator as ``F.dropout``'s, so ``torch.manual_seed`` still
    decides the mask. An element is dropped with probability ``round(p · 2¹⁶) / 2¹⁶`` (within 1e-5
    of ``p``) and the others are scaled by ``1 / (1 - p)``, as ``F.dropout`` does.
    """
    if not training or p <= 0.0:
        return x
    if p >= 1.0:
        return F.dropout(x, p, training=True)
    n = x.numel()
    lanes = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None).view(torch.int16)[:n]
    scale = (lanes >= round(p * 65536) - 32768).view(x.shape).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * scale


def in_chunks(forward: Callable[[dict[str, Tensor]], Tensor], tokens: dict[str, Tensor]) -> Tensor:
    """``forward(tokens)`` over :data:`CHUNK` pairs at a time, the outputs concatenated: the same
    numbers as one pass over the batch (inference only: no state carries between chunks)."""
    m, chunk = len(tokens["mask"]), CHUNK
    if m <= chunk:
        return forward(tokens)
    return torch.cat([forward({k: v[i : i + chunk] for k, v in tokens.items()}) for i in range(0, m, chunk)])
