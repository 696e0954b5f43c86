"""The matcher registry: every matching network is registered here once, and nothing else names it.

A matcher is its ``model.name``, a label for tables, a builder (experiment config → ``nn.Module``
mapping encoded pairs to 2-way logits), a pair encoder (experiment config →
:class:`keytrack.encoders.PairEncoder`) and its config group: ``experiments/model/<name>.yaml``,
the defaults of its own ``model.*`` keys, merged under ``model`` before the experiment file and
the overrides (:func:`keytrack.config.load_config`). A config therefore holds only the keys of the
matcher it trains (``model.layers`` for the transformer, ``model.channels`` for a CNN, ...).

Adding a matcher: write its network and encoder, its ``experiments/model/<name>.yaml``, and one
:func:`register` call below. The LightningModule, the tracker's scorer, the datamodule, the ablations
and ``make cost`` take it from here (``keytrack.models.registry.MATCHERS``).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig
from torch import nn

__all__ = ["Matcher", "MATCHERS", "register", "get", "names", "transformer_config", "MODEL_GROUPS_DIR"]

#: ``experiments/model/<name>.yaml``: each matcher's own ``model.*`` keys and their defaults.
MODEL_GROUPS_DIR = Path(__file__).resolve().parents[2] / "experiments" / "model"


@dataclass(frozen=True)
class Matcher:
    name: str
    label: str                                   # how tables and plots name it
    build: Callable[[DictConfig], nn.Module]     # the network, from a full experiment config
    encoder: Callable[[DictConfig], object]      # its PairEncoder, from a full experiment config
    baseline: bool = True                        # a baseline of Pose Entailment (not the transformer)

    def group_file(self, directory: Path | None = None) -> Path:
        return Path(directory or MODEL_GROUPS_DIR) / f"{self.name}.yaml"


MATCHERS: dict[str, Matcher] = {}


def register(matcher: Matcher) -> Matcher:
    if matcher.name in MATCHERS:
        raise ValueError(f"matcher {matcher.name!r} is registered twice")
    MATCHERS[matcher.name] = matcher
    return matcher


def names() -> tuple[str, ...]:
    return tuple(MATCHERS)


def get(name: str) -> Matcher:
    try:
        return MATCHERS[name]
    except KeyError:
        raise ValueError(f"model.name: unknown matcher {name!r} (known: {', '.join(MATCHERS)})") from None


# -- the transformer (§3.2, A.5) ------------------------------------------------------------------

def transformer_config(token_config, **sizes):
    """The :class:`~keytrack.models.transformer.TransformerConfig` whose vocabularies and embeddings
    fit ``token_config`` (a :class:`keytrack.tokenize.TokenConfig`); ``sizes`` set the others
    (``hidden=64``, ...). The network reads only this config, never the tokenizer."""
    from keytrack.models.transformer import TransformerConfig

    values = dict(
        num_positions=token_config.num_positions, num_segments=token_config.num_segments,
        position=token_config.position_lookup, type=token_config.type, segment=token_config.segment,
        relative_position=token_config.relative_position,
        num_columns=int(token_config.grid[0]), num_rows=int(token_config.grid[1]),
        factorised_position=token_config.position_factorised, num_features=token_config.num_features,
        oks_prior=token_config.oks_prior,
    )
    known = {f.name for f in fields(TransformerConfig)}
    unknown = set(sizes) - known
    if unknown:
        raise TypeError(f"unknown TransformerConfig fields {sorted(unknown)}; known: {sorted(known)}")
    return TransformerConfig(**{**values, **sizes})


def _build_transformer(cfg: DictConfig) -> nn.Module:
    from keytrack.encoders import token_config
    from keytrack.models.transformer import TransformerMatchingNetwork

    m = cfg.model
    return TransformerMatchingNetwork(transformer_config(
        token_config(cfg), hidden=int(m.hidden), intermediate=int(m.intermediate), layers=int(m.layers),
        heads=int(m.heads), dropout=float(m.dropout), init_std=float(m.init_std)))


def _token_encoder(cfg: DictConfig):
    from keytrack.encoders import TokenEncoder, token_config

    return TokenEncoder(token_config(cfg))


# -- the CNNs (§5.2, A.5) and LightTrack's GCN (§4.2) ---------------------------------------------------

def _build_cnn(cfg: DictConfig) -> nn.Module:
    from keytrack.models.cnn import CNNConfig, CNNMatchingNetwork

    m = cfg.model
    return CNNMatchingNetwork(CNNConfig(resolution=tuple(m.resolution), in_channels=6, channels=int(m.channels),
                                        hidden=None if m.hidden is None else int(m.hidden)))


def _resolution(cfg: DictConfig) -> tuple[int, int]:
    resolution = tuple(int(r) for r in cfg.model.resolution)
    if len(resolution) != 2 or min(resolution) < 1:
        raise ValueError(f"model.resolution must be [w, h] with positive ints, got {list(cfg.model.resolution)}")
    return resolution


def _raster_encoder(cfg: DictConfig):
    from keytrack.encoders import RasterEncoder

    return RasterEncoder(resolution=_resolution(cfg), delta=int(cfg.pairs.delta))


def _crop_encoder(cfg: DictConfig):
    from keytrack.encoders import CropEncoder

    return CropEncoder(resolution=_resolution(cfg), delta=int(cfg.pairs.delta))


def _build_gcn(cfg: DictConfig) -> nn.Module:
    from keytrack.models.gcn import GCNConfig, SiameseGCN

    m = cfg.model
    return SiameseGCN(GCNConfig(channels=int(m.channels), embedding=int(m.embedding), margin=float(m.margin)))


def _graph_encoder(cfg: DictConfig):
    from keytrack.encoders import GraphEncoder

    return GraphEncoder(coordinates=str(cfg.model.coordinates), delta=int(cfg.pairs.delta))


register(Matcher("transformer", "Pose Entailment", _build_transformer, _token_encoder, baseline=False))
register(Matcher("cnn_keypoints", "CNN on keypoints", _build_cnn, _raster_encoder))
register(Matcher("cnn_crops", "CNN on image crops", _build_cnn, _crop_encoder))
register(Matcher("gcn", "GCN (ours)", _build_gcn, _graph_encoder))
