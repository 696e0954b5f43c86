"""Track-level Pose Entailment: does a pose continue a *track*? (Beyond the paper.)

The paper's matcher (§3.2, :mod:`keytrack.models.transformer`) compares the current pose with one
earlier pose at a time, and the tracker takes the maximum over a track's appearances in the last
``δ`` frames (A.4). This network is not in the paper: it reads the current pose together with the
track's last ``k <= δ`` appearances in that window and gives one logit, "the pose continues this
track". The paper's pair model stays as it is; this is a separate matcher
(``model.name = track_transformer``, ``experiments/track.yaml``).

**Tokens** (:func:`track_tokens`): one pooled ``[CLS]`` token, then the 15 keypoints of the query
pose, then the 15 keypoints of each of the ``k`` history slots, most recent first: ``1 + 15 (1 + k)``
tokens (76 for ``k = 4``). Each keypoint token carries

* a **Type** embedding: the joint ``0..14`` (the ``[CLS]`` token has its own type, 15);
* a **Segment** embedding: ``0`` for the query pose, ``Δ`` (``1..δ``) for a history pose seen ``Δ``
  frames earlier;
* a **position** that is free of translation and scale: each keypoint relative to the centre of the
  track's most recent pose (mean of its visible keypoints) divided by that pose's scale (``√`` of its
  keypoint-box area, at least 1 px), through the Fourier features of the improved pair matcher
  (:func:`keytrack.tokenize._continuous_features`: ``tanh(u / 4)``, ``sin``/``cos`` at ``π 2^k / 8``);
* with ``displacement``: the joint's own motion (history tokens: from the history pose to the query;
  query tokens: from the most recent pose), ``tanh(d / 2)``, ``tanh(|d|² / 4)`` and "present in both".

Invisible keypoints and padded history slots (``Δ = 0``, a track seen fewer than ``k`` times) are
masked as attention keys. With ``oks_prior`` the OKS of the query with the track's most recent pose
(:func:`keytrack.tokenize.pair_oks`) enters the logit as ``a · logit(OKS) + b``, as in the improved
pair matcher; the classifier then starts at zero, so the untrained network ranks tracks by OKS.

**Network**: the embeddings and post-LayerNorm encoder layers of the pair model
(:class:`~keytrack.models.transformer.Embeddings`, :class:`~keytrack.models.transformer.EncoderLayer`,
:class:`~keytrack.models.transformer.Pooler`), the pooled ``[CLS]`` token and a linear layer to one
logit ``z``. Trained listwise against a "no match" logit fixed at 0
(:func:`keytrack.losses.track_listwise_loss`), ``sigmoid(z)`` is the probability that the track beats
"new track", so the tracker's threshold 0.5 keeps its meaning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from keytrack.models import cpu_path
from keytrack.models.transformer import Embeddings, EncoderLayer, Pooler, TransformerConfig
from keytrack.skeleton import NUM_JOINTS

__all__ = [
    "TRACK_MODEL",
    "TrackTransformerConfig",
    "TrackTransformer",
    "track_tokens",
    "track_reference",
    "track_model_config",
    "is_track_config",
    "load_track_model",
]

#: ``model.name`` of the track-level matcher (its config group: ``experiments/model/track_transformer.yaml``).
TRACK_MODEL = "track_transformer"
#: The Type id of the pooled first token (joints are 0..14).
CLS_TYPE = NUM_JOINTS
#: Displacement features per keypoint: tanh(dx/2), tanh(dy/2), tanh(|d|²/4), present in both.
DISPLACEMENT_FEATURES = 4


@dataclass(frozen=True)
class TrackTransformerConfig:
    """Sizes and inputs of the track-level matcher (the ``model.*`` keys of its config group)."""

    history: int = 4  # k: the track's last k appearances in the window
    max_delta: int = 4  # δ: Segment vocabulary 0..δ
    hidden: int = 64
    intermediate: int = 128
    layers: int = 3
    heads: int = 4
    dropout: float = 0.1
    init_std: float = 0.02
    fourier_bands: int = 6
    displacement: bool = True
    oks_prior: bool = True
    oks_prior_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("history", "max_delta", "hidden", "intermediate", "layers", "heads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrackTransformerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if int(self.history) > int(self.max_delta):
            raise ValueError(
                f"TrackTransformerConfig.history ({self.history}) must be <= max_delta ({self.max_delta}): "
                "a track appears at most once per frame of the window"
            )
        if int(self.fourier_bands) < 0:
            raise ValueError(f"TrackTransformerConfig.fourier_bands must be >= 0, got {self.fourier_bands}")
        if self.hidden % self.heads:
            raise ValueError(
                f"TrackTransformerConfig.hidden ({self.hidden}) must be divisible by heads ({self.heads})"
            )

    @property
    def num_features(self) -> int:
        return 2 + 4 * int(self.fourier_bands) + (DISPLACEMENT_FEATURES if self.displacement else 0)

    @property
    def sequence_length(self) -> int:
        return 1 + NUM_JOINTS * (1 + int(self.history))

    def encoder_config(self) -> TransformerConfig:
        """The pair model's config whose embeddings and layers this network reuses."""
        return TransformerConfig(
            num_positions=1,
            num_types=NUM_JOINTS + 1,
            num_segments=int(self.max_delta) + 1,
            hidden=self.hidden,
            intermediate=self.intermediate,
            layers=self.layers,
            heads=self.heads,
            dropout=self.dropout,
            init_std=self.init_std,
            position=False,
            type=True,
            segment=True,
            num_features=self.num_features,
        )


def _check_inputs(query: Tensor, history: Tensor, delta: Tensor, config: TrackTransformerConfig) -> None:
    n, k = len(query), int(config.history)
    if query.ndim != 3 or tuple(query.shape[1:]) != (NUM_JOINTS, 3):
        raise ValueError(f"track_tokens: query must be [N, {NUM_JOINTS}, 3], got {tuple(query.shape)}")
    if tuple(history.shape) != (n, k, NUM_JOINTS, 3):
        raise ValueError(
            f"track_tokens: history must be [{n}, {k}, {NUM_JOINTS}, 3], got {tuple(history.shape)}"
        )
    if tuple(delta.shape) != (n, k):
        raise ValueError(f"track_tokens: delta must be [{n}, {k}], got {tuple(delta.shape)}")
    if n == 0:
        return
    bad = (delta < 0) | (delta > config.max_delta)
    if bad.any():
        i = int(bad.any(1).nonzero()[0, 0])
        raise ValueError(
            f"track_tokens: delta of track {i} is {delta[i].tolist()}, expected 1..{config.max_delta} "
            "(0 = padded slot)"
        )
    if (delta[:, 0] < 1).any():
        i = int((delta[:, 0] < 1).nonzero()[0, 0])
        raise ValueError(
            f"track_tokens: delta[{i}, 0] is {int(delta[i, 0])}: the first history slot must hold the "
            "track's most recent pose (Δ >= 1)"
        )


def track_reference(latest: Tensor, visible: Tensor) -> tuple[Tensor, Tensor]:
    """``(centre [N, 2], scale [N])`` of poses ``[N, 15, 3]``: the mean of the visible keypoints and
    ``√`` of their keypoint-box area (at least 1 px), as :func:`keytrack.tokenize.pair_geometry`."""
    xy, vis = latest[..., :2], visible[..., None]
    centre = torch.where(vis, xy, 0.0).sum(1) / vis.sum(1).clamp_min(1)
    big = torch.finfo(latest.dtype).max
    extent = torch.where(
        vis.any(1), torch.where(vis, xy, -big).amax(1) - torch.where(vis, xy, big).amin(1), 0.0
    )
    scale = (extent[:, 0] * extent[:, 1]).clamp_min(0).sqrt().clamp_min(1.0)
    return centre, scale


def _displacement(poses: Tensor, visible: Tensor, scale: Tensor) -> Tensor:
    """``[N, 1 + k, 15, 4]``: each joint's motion to the query, per slot (module docstring)."""
    query, qvis = poses[:, :1], visible[:, :1]
    ref = torch.cat([poses[:, 1:2], poses[:, 1:]], dim=1)  # the query compares with the latest pose
    rvis = torch.cat([visible[:, 1:2], visible[:, 1:]], dim=1)
    both = qvis & rvis
    d = torch.where(both[..., None], (query[..., :2] - ref[..., :2]) / scale[:, None, None, None], 0.0)
    return torch.cat(
        [torch.tanh(d / 2.0), torch.tanh((d**2).sum(-1, keepdim=True) / 4.0), both[..., None].to(d.dtype)],
        dim=-1,
    )


def track_tokens(
    query: Tensor, history: Tensor, delta: Tensor, config: TrackTransformerConfig
) -> dict[str, Tensor]:
    """Tokens of ``N`` (query pose, track) pairs (module docstring).

    Args:
        query: ``[N, 15, 3]`` keypoints ``x, y, c`` of the query poses.
        history: ``[N, k, 15, 3]`` each track's last ``k`` poses, most recent first; padded slots
            hold anything (they are masked).
        delta: ``[N, k]`` each slot's frame gap ``Δ`` (``1..δ``), 0 for a padded slot; slot 0 must
            hold a pose.
        config: ``k``, ``δ`` and the features.

    Returns ``features [N, S, F]``, ``type``, ``segment`` (int64) and ``mask`` (bool, True = may be
    attended) ``[N, S]`` with ``S = 1 + 15 (1 + k)``, and ``oks [N]`` with ``oks_prior``.
    """
    from keytrack.tokenize import TokenConfig, _continuous_features, pair_oks

    delta = torch.as_tensor(delta, device=query.device).long()
    _check_inputs(query, history, delta, config)
    n, k = len(query), int(config.history)
    poses = torch.cat([query[:, None], history.to(query.dtype)], dim=1)  # [N, 1 + k, 15, 3]
    slot = torch.cat([torch.ones(n, 1, dtype=torch.bool, device=query.device), delta > 0], dim=1)
    visible = (poses[..., 2] > 0) & slot[..., None]  # [N, 1 + k, 15]
    centre, scale = track_reference(poses[:, 1], visible[:, 1])
    u = torch.where(
        visible[..., None], (poses[..., :2] - centre[:, None, None]) / scale[:, None, None, None], 0.0
    )
    flat = poses.reshape(n, -1, 3)
    mask = visible.reshape(n, -1)
    fourier = TokenConfig(position_encoding="fourier", fourier_bands=int(config.fourier_bands))
    features = _continuous_features(flat, mask, fourier, u.reshape(n, -1, 2), scale)
    if config.displacement:
        moved = _displacement(poses, visible, scale).reshape(n, -1, DISPLACEMENT_FEATURES)
        features = torch.cat([features, torch.where(mask[..., None], moved, 0.0)], dim=-1)
    segment = torch.cat([torch.zeros(n, 1, dtype=torch.long, device=query.device), delta], dim=1)
    segment = torch.where(slot, segment, 0).repeat_interleave(NUM_JOINTS, dim=1)  # [N, 15 (1 + k)]
    joints = torch.arange(NUM_JOINTS, device=query.device).repeat(1 + k)
    one = torch.ones(n, 1, dtype=torch.long, device=query.device)
    tokens = {
        "features": torch.cat([features.new_zeros(n, 1, features.shape[-1]), features], dim=1),
        "type": torch.cat([one * CLS_TYPE, joints.expand(n, -1)], dim=1),
        "segment": torch.cat([one * 0, segment], dim=1),
        "mask": torch.cat([one.bool(), mask], dim=1),
    }
    if config.oks_prior:
        pair = torch.cat([poses[:, 0], poses[:, 1]], dim=1)  # query, then the latest pose
        tokens["oks"] = pair_oks(pair, torch.cat([visible[:, 0], visible[:, 1]], dim=1), scale)
    return tokens


class TrackTransformer(nn.Module):
    """(query pose, track history) → one logit ``z [N]``: "the query continues the track".

    ``forward`` takes ``{"query": [N, 15, 3], "history": [N, k, 15, 3], "delta": [N, k]}`` (see
    :func:`track_tokens`); ``sigmoid(z)`` is the track's score against a "new track" logit of 0.
    """

    def __init__(self, config: TrackTransformerConfig = TrackTransformerConfig()):
        super().__init__()
        self.config = config
        encoder = config.encoder_config()
        self.embeddings = Embeddings(encoder)
        self.encoder = nn.ModuleList(EncoderLayer(encoder) for _ in range(config.layers))
        self.pooler = Pooler(encoder)
        self.classifier = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.hidden, 1))
        self.apply(self._init_weights)
        if config.oks_prior:
            self.oks_prior = nn.Parameter(torch.tensor([float(config.oks_prior_weight), 0.0]))
            nn.init.zeros_(self.classifier[1].weight)
        else:
            self.register_parameter("oks_prior", None)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def tokens(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        for key in ("query", "history", "delta"):
            if key not in batch:
                raise KeyError(f"TrackTransformer: the batch has no {key!r} (it has {sorted(batch)})")
        return track_tokens(batch["query"].float(), batch["history"].float(), batch["delta"], self.config)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits ``[N]``; at inference on the CPU in chunks (:func:`cpu_path.in_chunks`)."""
        tokens = self.tokens(batch)
        if not self.training and cpu_path.enabled(tokens["mask"]):
            return cpu_path.in_chunks(self._forward, tokens)
        return self._forward(tokens)

    def _forward(self, tokens: dict[str, Tensor]) -> Tensor:
        attention_mask = tokens["mask"][:, None, None, :]
        x = self.embeddings(tokens)
        for i, layer in enumerate(self.encoder):
            x = layer(x, attention_mask, first_tokens=1 if i == len(self.encoder) - 1 else None)
        z = self.classifier(self.pooler(x))[:, 0].float()
        if self.oks_prior is None:
            return z
        oks = tokens["oks"].float().clamp(1e-4, 1.0 - 1e-4)
        return z + self.oks_prior[0].float() * torch.logit(oks) + self.oks_prior[1].float()

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())


def is_track_config(cfg) -> bool:
    """Whether an experiment config trains the track-level matcher."""
    model = cfg.get("model") if hasattr(cfg, "get") else None
    return model is not None and str(model.get("name")) == TRACK_MODEL


def track_model_config(cfg) -> TrackTransformerConfig:
    """The network config of an experiment config (its ``model.*`` keys, ``δ = pairs.delta``)."""
    m = cfg.model
    history = int(m.history)
    if history < 1 or history > int(cfg.pairs.delta):
        raise ValueError(f"model.history must lie in 1..pairs.delta ({int(cfg.pairs.delta)}), got {history}")
    return TrackTransformerConfig(
        history=history,
        max_delta=int(cfg.pairs.delta),
        hidden=int(m.hidden),
        intermediate=int(m.intermediate),
        layers=int(m.layers),
        heads=int(m.heads),
        dropout=float(m.dropout),
        init_std=float(m.init_std),
        fourier_bands=int(m.fourier_bands),
        displacement=bool(m.displacement),
        oks_prior=bool(m.oks_prior),
        oks_prior_weight=float(m.oks_prior_weight),
    )


def _read_checkpoint(checkpoint: str | Path, map_location: str = "cpu"):
    """``(state, cfg)`` of a training checkpoint, or of a shipped matcher's name
    (:func:`keytrack.weights.resolve_checkpoint`); the config completed with the current defaults."""
    from omegaconf import OmegaConf

    from keytrack.config import with_defaults
    from keytrack.errors import CheckpointError
    from keytrack.weights import resolve_checkpoint

    path = resolve_checkpoint(checkpoint)
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
        saved = OmegaConf.create(state["hyper_parameters"]["cfg"])
    except (KeyError, TypeError):
        raise CheckpointError(
            f"{checkpoint}: not a keytrack training checkpoint (no hyper_parameters.cfg)"
        ) from None
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(
            f"{checkpoint}: not a readable torch checkpoint ({type(err).__name__}: {err})"
        ) from err
    return state, with_defaults(saved, source=checkpoint)


def load_track_model(checkpoint: str | Path, map_location: str = "cpu"):
    """``(model, cfg)`` of a track-level training checkpoint: the network in eval mode and the run's
    experiment config (saved in the checkpoint by ``keytrack train``); plain torch, no Lightning."""
    from keytrack.errors import CheckpointError

    state, cfg = _read_checkpoint(checkpoint, map_location)
    if not is_track_config(cfg):
        raise CheckpointError(
            f"{checkpoint}: a checkpoint of model.name={cfg.model.name}, not of the track-level matcher"
        )
    model = TrackTransformer(track_model_config(cfg))
    weights = {k.removeprefix("model."): v for k, v in state["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"{checkpoint}: its weights do not fit its own config ({err})") from None
    return model.eval(), cfg
