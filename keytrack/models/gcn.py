"""LightTrack's Siamese graph convolutional matcher, the learned baseline of KeyTrack §4.2 / Table 6.

KeyTrack compares Pose Entailment with "the Graph Convolutional Network [37]" (LightTrack, Ning
et al. 2020), which embeds each pose with a spatial graph convolution over its joints (ST-GCN,
Yan et al. 2018, with a temporal kernel of 1) and calls two poses the same person when their
embeddings are close; §4.2 attributes its higher IDSW to relying "only on keypoint spatial
locations". :class:`SiameseGCN` follows LightTrack's ``graph/gcn_utils/gcn_model.py``:

* input per pose: 15 joints × ``(x, y, visible)`` (:class:`keytrack.encoders.GraphEncoder`),
  normalised by a BatchNorm over the 45 values (LightTrack's ``data_bn``);
* two spatial graph convolutions ``3 → 64 → 64`` channels, ReLU, each with a learnable
  edge-importance mask (LightTrack: ``edge_importance_weighting: True``). LightTrack's blocks
  compute a residual but never add it, so there is none here either;
* the graph is :data:`keytrack.skeleton.LIMBS` plus self-links, partitioned by ST-GCN's *spatial
  configuration* strategy (root / closer to the centre / farther), ``K = 3`` adjacency matrices,
  each column-normalised (``A D^-1``). The centre is ``head_bottom`` (LightTrack's node 12, the
  neck). Distances to the centre are true hop counts (ST-GCN computes them only up to
  ``max_hop = 1``, which lumps every farther joint into "root");
* average pooling over the joints, then a linear layer to a 128-d embedding;
* both poses go through the same weights (Siamese; one pass over the ``2M`` poses).

Training: LightTrack's contrastive loss (Hadsell et al. 2006) with margin ``m`` (1.0) on the
Euclidean distance ``d`` of the two embeddings, ``y d² + (1 − y) max(0, m − d)²``, averaged over
the pairs and halved (LightTrack sums and halves). :meth:`SiameseGCN.loss` is what
:class:`keytrack.lightning.MatchingModule` optimises instead of cross entropy.

Scores: so that the tracker, metrics and scorer treat it as any other matcher, ``forward`` returns
2-way logits ``[0, s · (m/2 − d)]`` with ``s = score_scale / m``: ``softmax(logits)[:, 1] =
sigmoid(s (m/2 − d))`` is a match score in ``[0, 1]`` that is 0.5 halfway between where the loss
pulls matches (``d = 0``) and pushes non-matches (``d ≥ m``), ≈ 0.993 at ``d = 0`` and ≈ 0.007 at
``d = m`` (``score_scale = 10``). The tracker's default threshold 0.5 is thus ``d < m / 2``.
:meth:`SiameseGCN.loss` recovers ``d`` from the logits exactly (``d = m/2 − logit_1 / s``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.csgraph import shortest_path
from torch import Tensor, nn

from keytrack.skeleton import JOINTS, LIMBS, NUM_JOINTS

__all__ = ["GCNConfig", "SiameseGCN", "spatial_adjacency", "contrastive_loss"]


def spatial_adjacency(center: int = JOINTS.index("head_bottom")) -> np.ndarray:
    """``[3, 15, 15]`` ST-GCN spatial-configuration adjacency of :data:`LIMBS` (root, closer, farther)."""
    v = NUM_JOINTS
    a = np.eye(v)
    i, j = np.array(LIMBS).T
    a[i, j] = a[j, i] = 1.0
    a = a / a.sum(axis=0, keepdims=True)  # A D^-1 (column-normalised)
    hops = shortest_path(a > 0, unweighted=True)  # joint-to-joint hop counts
    to_center = hops[:, center]
    # Entry [j, i]: the contribution of joint j to joint i (as ST-GCN's a_root[j, i]).
    neighbour = hops == 1
    same = to_center[:, None] == to_center[None, :]
    farther_j = to_center[:, None] > to_center[None, :]
    root = np.diag(np.diag(a))
    close = np.where(neighbour & (same | farther_j), a, 0.0)
    far = np.where(neighbour & ~same & ~farther_j, a, 0.0)
    return np.stack([root, close, far]).astype(np.float32)


def contrastive_loss(distance: Tensor, labels: Tensor, margin: float) -> Tensor:
    """``mean(y d² + (1 − y) max(0, m − d)²) / 2`` (Hadsell et al. 2006; LightTrack's loss)."""
    y = labels.float()
    return (y * distance.pow(2) + (1 - y) * F.relu(margin - distance).pow(2)).mean() / 2


@dataclass
class GCNConfig:
    """Sizes of the Siamese GCN; defaults are LightTrack's (``graph/config/train.yaml``)."""

    in_channels: int = 3  # x, y, visible
    channels: int = 64  # both graph convolutions
    embedding: int = 128  # LightTrack's ``num_class: 128`` (output feature size)
    margin: float = 1.0  # contrastive loss margin m
    score_scale: float = 10.0  # s · m: sharpness of the match score sigmoid(s (m/2 − d))

    def __post_init__(self) -> None:
        if min(self.in_channels, self.channels, self.embedding) < 1:
            raise ValueError(
                f"GCNConfig: in_channels, channels and embedding must be >= 1, got {asdict(self)}"
            )
        if not (self.margin > 0 and self.score_scale > 0):
            raise ValueError(f"GCNConfig: margin and score_scale must be > 0, got {asdict(self)}")


class GraphConv(nn.Module):
    """ST-GCN's spatial graph convolution: a 1×1 conv to ``K · C_out`` channels, summed over the
    ``K`` adjacency matrices (``einsum('nkcv,kvw->ncw')``), then ReLU."""

    def __init__(self, c_in: int, c_out: int, k: int):
        super().__init__()
        self.k, self.c_out = k, c_out
        self.linear = nn.Linear(c_in, k * c_out)

    def forward(self, x: Tensor, a: Tensor) -> Tensor:  # x [N, V, C_in], a [K, V, V]
        n, v, _ = x.shape
        h = self.linear(x).view(n, v, self.k, self.c_out)
        return torch.relu(torch.einsum("nvkc,kvw->nwc", h, a))


class SiameseGCN(nn.Module):
    """Pose pair ``{"current", "previous": [M, 15, 3]}`` → match logits ``[M, 2]`` (see module doc)."""

    def __init__(self, config: GCNConfig = GCNConfig()):
        super().__init__()
        self.config = config
        a = torch.from_numpy(spatial_adjacency())
        self.register_buffer("adjacency", a)
        k = a.shape[0]
        self.data_bn = nn.BatchNorm1d(NUM_JOINTS * config.in_channels)
        self.gcn = nn.ModuleList(
            [
                GraphConv(config.in_channels, config.channels, k),
                GraphConv(config.channels, config.channels, k),
            ]
        )
        self.edge_importance = nn.ParameterList([nn.Parameter(torch.ones_like(a)) for _ in self.gcn])
        self.fc = nn.Linear(config.channels, config.embedding)

    @property
    def _scale(self) -> float:
        return self.config.score_scale / self.config.margin

    def embed(self, joints: Tensor) -> Tensor:
        """``[N, 15, C]`` joints → ``[N, embedding]``."""
        n = joints.shape[0]
        x = self.data_bn(joints.reshape(n, -1)).view(n, NUM_JOINTS, -1)
        for conv, importance in zip(self.gcn, self.edge_importance):
            x = conv(x, self.adjacency * importance)
        return self.fc(x.mean(dim=1))

    def distance(self, batch: dict[str, Tensor]) -> Tensor:
        """``[M]`` Euclidean distance of the two poses' embeddings."""
        cur, prev = batch["current"], batch["previous"]
        shape = (NUM_JOINTS, self.config.in_channels)
        if cur.ndim != 3 or tuple(cur.shape[1:]) != shape or cur.shape != prev.shape:
            raise ValueError(
                f"SiameseGCN: current and previous must be [M, {shape[0]}, {shape[1]}], "
                f"got {tuple(cur.shape)} and {tuple(prev.shape)}"
            )
        e = self.embed(torch.cat([cur, prev]))
        e1, e2 = e.chunk(2)
        return ((e1 - e2).pow(2).sum(-1) + 1e-9).sqrt()

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        d = self.distance(batch)
        match = self._scale * (self.config.margin / 2 - d)
        return torch.stack([torch.zeros_like(match), match], dim=-1)

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Contrastive loss of the distances behind ``logits`` (``d = m/2 − logit_1 / s``)."""
        d = self.config.margin / 2 - logits[:, 1] / self._scale
        return contrastive_loss(d, labels, self.config.margin)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())
