"""The Transformer Matching Network of KeyTrack (§3.2, A.5, Table 5, Table 6).

Pose Entailment as BERT does textual entailment: the 30 tokens of a pose pair (15 keypoints of the
current pose, then 15 of the earlier one, see :mod:`keytrack.tokenize`) are embedded, passed
through a stack of post-LayerNorm Transformer encoder layers, the first token is pooled and a
linear layer classifies the pair as non-matching (0) or matching (1). Names follow Hugging Face
BERT, which the paper adapted: ``embeddings`` → ``encoder`` → ``pooler`` → ``classifier``.

Paper settings (A.5): 432 Position tokens (24 × 18 grid), 15 Type tokens, Segment tokens for
δ = 4 (we use δ + 1 = 5 values: 0 marks the current pose, see :mod:`keytrack.tokenize`),
hidden size 128, intermediate size 128, 4 layers of 4 heads, dropout 0.1 everywhere, weights
from N(0, 0.02). The attention mask removes invisible keypoints as keys, "exactly as the
attention mask in BERT": a ``[M, 1, 1, 30]`` mask broadcast over heads and queries (A.5).

On the CPU, the attention, the dropout and inference over large batches take
:mod:`keytrack.models.cpu_path`: the same numbers from kernels that are faster there, chosen by
its one switch, :func:`keytrack.models.cpu_path.enabled`. Elsewhere this file is the whole network.

Parameter count (default config), against Table 6:

=============  ===========  ====================
module         ours         Table 6 (M params)
=============  ===========  ====================
embeddings          58,112  0.06
encoder (×4)       398,336  0.40
pooler              16,512  0.02
classifier             258  0.01
total              473,218  0.41
=============  ===========  ====================

Each component agrees with Table 6 when rounded *up* to 0.01 M (plain rounding also agrees for
the first three; the classifier's 258 parameters can only read 0.01 M when rounded up). Table 6's
components sum to 0.49 M, more than its own total. Its total of 0.41 M equals our count without
the three embedding lookup tables (473,218 − 57,856 = 415,362, i.e. 0.415 M, as Hugging Face's
``num_parameters(exclude_embeddings=True)`` counts), truncated to two decimals; that is the
likeliest reading, since no variant of this architecture with the stated sizes has 0.41 M
parameters in all. Figure 7's 0.43 M for the same configuration is a third, inconsistent figure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from keytrack.models import cpu_path

__all__ = ["TransformerConfig", "TransformerMatchingNetwork", "parameter_breakdown"]


@dataclass
class TransformerConfig:
    """Sizes of the Transformer Matching Network; defaults are the paper's (A.5)."""

    num_positions: int = 432  # w × h Position grid (also the Relative position vocabulary)
    num_types: int = 15  # |K| keypoint types
    num_segments: int = 5  # δ + 1 (0 = current pose, 1..δ = earlier pose)
    hidden: int = 128  # H
    intermediate: int = 128  # feed-forward size
    layers: int = 4
    heads: int = 4
    dropout: float = 0.1
    init_std: float = 0.02
    position: bool = True
    type: bool = True
    segment: bool = True
    relative_position: bool = False
    num_columns: int = 24  # factorised position: columns of the grid (0 = off)
    num_rows: int = 18  # factorised position: rows of the grid
    factorised_position: bool = False
    num_features: int = 0  # width of the continuous per-token features (0 = none)
    oks_prior: bool = False  # add a·logit(tokens["oks"]) + b to the match logit (a, b learnt)
    oks_prior_weight: float = 1.0  # initial a

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(
                f"TransformerConfig.hidden ({self.hidden}) must be divisible by heads ({self.heads})"
            )
        if not (
            self.position
            or self.type
            or self.segment
            or self.relative_position
            or self.factorised_position
            or self.num_features
            or self.oks_prior
        ):
            raise ValueError("TransformerConfig enables no embedding: at least one must be on")
        if self.num_features < 0:
            raise ValueError(f"TransformerConfig.num_features must be >= 0, got {self.num_features}")
        for f in ("num_positions", "num_types", "num_segments", "hidden", "intermediate", "layers", "heads"):
            if getattr(self, f) < 1:
                raise ValueError(f"TransformerConfig.{f} must be >= 1, got {getattr(self, f)}")


class Embeddings(nn.Module):
    """§3.2: one lookup table per enabled token kind; E_sum = Σ E_kind, then LayerNorm, dropout.

    Beyond the paper: ``column`` + ``row`` tables (the factorised position) and a linear
    projection of the continuous ``features`` (Fourier position, per-joint displacement;
    :mod:`keytrack.tokenize`), added to the sum like any other embedding.
    """

    #: token-dict key -> (config flag, attribute of the lookup table, vocabulary size field)
    KINDS = {
        "position": ("position", "position_embeddings", "num_positions"),
        "type": ("type", "type_embeddings", "num_types"),
        "segment": ("segment", "segment_embeddings", "num_segments"),
        "relative": ("relative_position", "relative_position_embeddings", "num_positions"),
        "column": ("factorised_position", "column_embeddings", "num_columns"),
        "row": ("factorised_position", "row_embeddings", "num_rows"),
    }

    def __init__(self, config: TransformerConfig):
        super().__init__()
        for flag, attr, size in self.KINDS.values():
            table = nn.Embedding(getattr(config, size), config.hidden) if getattr(config, flag) else None
            setattr(self, attr, table)
        self.feature_projection = (
            nn.Linear(config.num_features, config.hidden) if config.num_features else None
        )
        self.layer_norm = nn.LayerNorm(config.hidden, eps=1e-12)
        self.dropout = Dropout(config.dropout)

    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        total = None
        for key, (_, attr, _) in self.KINDS.items():
            table = getattr(self, attr)
            if table is None:
                continue
            if key not in tokens:
                raise KeyError(
                    f"the matching network embeds '{key}' tokens but the batch has only "
                    f"{sorted(tokens)}; tokenize with the same TokenConfig"
                )
            e = table(tokens[key])
            total = e if total is None else total + e
        if self.feature_projection is not None:
            if "features" not in tokens:
                raise KeyError(
                    f"the matching network projects continuous 'features' but the batch has only "
                    f"{sorted(tokens)}; tokenize with the same TokenConfig"
                )
            e = self.feature_projection(tokens["features"].to(self.feature_projection.weight.dtype))
            total = e if total is None else total + e
        return self.dropout(self.layer_norm(total))


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float = 0.0) -> Tensor:
    """Scaled dot-product attention, Eq. 4: ``softmax(QKᵀ/√d_k + mask) V``, dropout on the
    probabilities (Table 5).

    ``q``: ``[M, heads, s_q, d]``; ``k``, ``v``: ``[M, heads, s, d]``; ``mask``: ``[M, 1, 1, s]`` bool,
    True = may be attended (BERT's attention mask, broadcast over heads and queries; A.5). On the
    CPU (:func:`keytrack.models.cpu_path.enabled`) :func:`keytrack.models.cpu_path.attention`
    computes it, faster there; elsewhere PyTorch's fused kernel.
    """
    if cpu_path.enabled(q):
        return cpu_path.attention(q, k, v, mask, dropout_p)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


class Dropout(nn.Dropout):
    """``nn.Dropout`` (A.5: p = 0.1 throughout the network); on the CPU the cheaper random mask of
    :func:`keytrack.models.cpu_path.dropout`. Its state is ``nn.Dropout``'s (none)."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training and cpu_path.enabled(x):
            return cpu_path.dropout(x, self.p, True)
        return super().forward(x)


class EncoderLayer(nn.Module):
    """One BERT (post-LayerNorm) Transformer encoder layer (§3.2, A.5): multi-head self-attention
    (Table 5's rows), then the feed-forward block, each added to its input and layer-normalised.

    Q, K and V come from one ``[H, 3H]`` projection, ``qkv``: BERT's ``query``, ``key`` and ``value``
    weights stacked in that order, one matrix product instead of three.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        h = config.hidden
        self.heads = config.heads
        self.attention_dropout = config.dropout
        self.qkv = nn.Linear(h, 3 * h)
        self.attention_output = nn.Linear(h, h)
        self.attention_norm = nn.LayerNorm(h, eps=1e-12)
        self.intermediate = nn.Linear(h, config.intermediate)
        self.output = nn.Linear(config.intermediate, h)
        self.output_norm = nn.LayerNorm(h, eps=1e-12)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: Tensor, attention_mask: Tensor, first_tokens: int | None = None) -> Tensor:
        """``x``: ``[M, 30, H]``; ``attention_mask``: ``[M, 1, 1, 30]`` bool, True = may be attended.

        ``first_tokens = n``: only the first ``n`` tokens are computed (``[M, n, H]``), their queries
        attending to all 30 keys. The last layer needs only the token the pooler reads (§3.2).
        """
        if first_tokens is None:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
        else:
            h = x.shape[-1]
            q = F.linear(x[:, :first_tokens], self.qkv.weight[:h], self.qkv.bias[:h])
            k, v = F.linear(x, self.qkv.weight[h:], self.qkv.bias[h:]).chunk(2, dim=-1)
            x = x[:, :first_tokens]
        # Table 5: Q, K, V [M, s, H] -> [M, heads, s, H / heads]; Eq. 4; the context back to [M, s, H].
        q, k, v = (rearrange(t, "m s (h d) -> m h s d", h=self.heads) for t in (q, k, v))
        context = attention(q, k, v, attention_mask, self.attention_dropout if self.training else 0.0)
        context = rearrange(context, "m h s d -> m s (h d)")
        x = self.attention_norm(x + self.dropout(self.attention_output(context)))
        ff = self.output(F.gelu(self.intermediate(x)))
        return self.output_norm(x + self.dropout(ff))


class Pooler(nn.Module):
    """§3.2: "pools" the pair by taking the first token through Linear(H, H) and tanh."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden, config.hidden)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.dense(x[:, 0]))


class TransformerMatchingNetwork(nn.Module):
    """Pose pair tokens → match logits ``[M, 2]`` (index 1 = same person).

    ``forward`` takes the dict of :func:`keytrack.tokenize.tokenize_pairs`: ``[M, 30]`` long
    tokens for each enabled embedding (``position``, ``type``, ``segment``, ``relative``) and the
    bool visibility ``mask``. A pair whose mask is all False (no visible keypoint at all) would
    leave attention without any key; such a row attends to all its tokens instead, so its output
    stays finite.

    With ``config.oks_prior`` (beyond the paper) the match logit ``z = logit_1 - logit_0`` gets
    ``a · logit(OKS) + b`` added, ``OKS = tokens["oks"]`` clamped to ``[1e-4, 1 - 1e-4]``, ``a`` and
    ``b`` learnt (``a`` starts at ``config.oks_prior_weight``, ``b`` at 0), and the classifier
    starts at zero: before training the network ranks candidates exactly as OKS does, and what it
    learns is a correction of OKS.
    """

    def __init__(self, config: TransformerConfig = TransformerConfig()):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = nn.ModuleList(EncoderLayer(config) for _ in range(config.layers))
        self.pooler = Pooler(config)
        self.classifier = nn.Sequential(Dropout(config.dropout), nn.Linear(config.hidden, 2))
        self.apply(self._init_weights)
        if config.oks_prior:
            self.oks_prior = nn.Parameter(torch.tensor([float(config.oks_prior_weight), 0.0]))
            nn.init.zeros_(self.classifier[1].weight)
        else:
            self.register_parameter("oks_prior", None)

    def _init_weights(self, module: nn.Module) -> None:
        """BERT initialisation (A.5): N(0, init_std) weights, zero biases, LayerNorm 1 / 0."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        """Match logits ``[M, 2]``; at inference on the CPU in chunks (:func:`cpu_path.in_chunks`)."""
        if not self.training and cpu_path.enabled(tokens["mask"]):
            return cpu_path.in_chunks(self._forward, tokens)
        return self._forward(tokens)

    def _forward(self, tokens: dict[str, Tensor]) -> Tensor:
        mask = tokens["mask"].bool()
        # A row with no visible token attends to all of them rather than to nothing (NaN).
        mask = mask | ~mask.any(dim=-1, keepdim=True)
        attention_mask = mask[:, None, None, :]  # [M, 1, 1, 30], as in A.5
        x = self.embeddings(tokens)
        # The pooler reads the first token only, so the last layer computes that token alone.
        for i, layer in enumerate(self.encoder):
            x = layer(x, attention_mask, first_tokens=1 if i == len(self.encoder) - 1 else None)
        logits = self.classifier(self.pooler(x))
        if self.oks_prior is None:
            return logits
        if "oks" not in tokens:
            raise KeyError(
                f"the matching network adds the pair's OKS but the batch has only "
                f"{sorted(tokens)}; tokenize with the same TokenConfig"
            )
        # In fp32 even under bf16 autocast: bf16 cannot tell OKS 0.995 from 0.999, which is
        # where the true continuation and its nearest rival usually differ.
        oks = tokens["oks"].float().clamp(1e-4, 1.0 - 1e-4)
        z = self.oks_prior[0].float() * torch.logit(oks) + self.oks_prior[1].float()
        return logits.float() + torch.stack([torch.zeros_like(z), z], dim=-1)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())


def parameter_breakdown(model: TransformerMatchingNetwork) -> dict[str, int]:
    """Trainable parameters per Table 6 row: embeddings, encoder, pooler, classifier, total."""

    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters() if p.requires_grad)

    parts = {name: count(getattr(model, name)) for name in ("embeddings", "encoder", "pooler", "classifier")}
    parts["total"] = count(model)
    return parts
