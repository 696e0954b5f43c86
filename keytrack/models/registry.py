"""The matcher registry: every matching network is registered here once, and nothing else names it.

A matcher is its ``model.name``, a label for tables, its network (a class built from one typed
config: :class:`~keytrack.models.transformer.TransformerConfig`, :class:`~keytrack.models.cnn.CNNConfig`
or :class:`~keytrack.models.gcn.GCNConfig`), how that typed config is read from an experiment config,
a pair encoder (experiment config → :class:`keytrack.encoders.PairEncoder`) and its config group:
``experiments/model/<name>.yaml``, the defaults of its own ``model.*`` keys, merged under ``model``
before the experiment file and the overrides (:func:`keytrack.config.load_config`). A config therefore
holds only the keys of the matcher it trains (``model.layers`` for the transformer, ``model.channels``
for a CNN, ...).

:class:`MatcherConfig` (a name and its network's typed config) is what builds a network
(:func:`keytrack.models.factory.build_matcher`): the LightningModule takes one, and saves it with the
weights as plain values (:meth:`MatcherConfig.to_dict`).

Adding a matcher: write its network, its config dataclass and encoder, its
``experiments/model/<name>.yaml``, and one :func:`register` call below. The LightningModule, the
tracker's scorer, the datamodule, the ablations and ``make cost`` take it from here
(``keytrack.models.registry.MATCHERS``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from omegaconf import DictConfig
from torch import nn

__all__ = ["Matcher", "MatcherConfig", "MATCHERS", "register", "get", "names", "transformer_config"]


@dataclass(frozen=True)
class Matcher:
    name: str
    label: str  # how tables and plots name it
    classes: Callable[[], tuple[type, type[nn.Module]]]  # (its config dataclass, its network class)
    configure: Callable[[DictConfig], Any]  # its network's typed config, from a full experiment config
    encoder: Callable[[DictConfig], object]  # its PairEncoder, from a full experiment config
    baseline: bool = True  # a baseline of Pose Entailment (not the transformer)

    def group_file(self, directory: Path | None = None) -> Path:
        from keytrack.config import config_path

        return config_path("model", f"{self.name}.yaml", directory=directory)

    def build(self, network: Any) -> nn.Module:
        """The network from its typed config (an instance of this matcher's config dataclass)."""
        config_type, network_type = self.classes()
        if not isinstance(network, config_type):
            raise TypeError(
                f"matcher {self.name!r} is built from a {config_type.__name__}, got {type(network).__name__}"
            )
        return network_type(network)


@dataclass(frozen=True)
class MatcherConfig:
    """A matcher as a network is built from it: its registered ``name`` and its network's typed
    config (``TransformerConfig``, ``CNNConfig`` or ``GCNConfig``)."""

    name: str
    network: Any

    def __post_init__(self) -> None:
        config_type = get(self.name).classes()[0]
        if not isinstance(self.network, config_type):
            raise TypeError(
                f"MatcherConfig {self.name!r}: network must be a {config_type.__name__}, "
                f"got {type(self.network).__name__}"
            )

    def to_dict(self) -> dict:
        """Plain values (lists, numbers, strings), as a checkpoint's hyperparameters keep it."""
        from keytrack.settings import plain

        return {"name": self.name, "network": plain(self.network)}

    @classmethod
    def from_dict(cls, value: Mapping) -> "MatcherConfig":
        """The inverse of :meth:`to_dict`."""
        config_type = get(str(value["name"])).classes()[0]
        return cls(str(value["name"]), config_type(**dict(value["network"])))


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
        num_positions=token_config.num_positions,
        num_segments=token_config.num_segments,
        position=token_config.position_lookup,
        type=token_config.type,
        segment=token_config.segment,
        relative_position=token_config.relative_position,
        num_columns=int(token_config.grid[0]),
        num_rows=int(token_config.grid[1]),
        factorised_position=token_config.position_factorised,
        num_features=token_config.num_features,
        oks_prior=token_config.oks_prior,
    )
    known = {f.name for f in fields(TransformerConfig)}
    unknown = set(sizes) - known
    if unknown:
        raise TypeError(f"unknown TransformerConfig fields {sorted(unknown)}; known: {sorted(known)}")
    return TransformerConfig(**{**values, **sizes})


def _transformer_classes():
    from keytrack.models.transformer import TransformerConfig, TransformerMatchingNetwork

    return TransformerConfig, TransformerMatchingNetwork


def _transformer_config(cfg: DictConfig):
    from keytrack.encoders import token_config

    m = cfg.model
    return transformer_config(
        token_config(cfg),
        hidden=int(m.hidden),
        intermediate=int(m.intermediate),
        layers=int(m.layers),
        heads=int(m.heads),
        dropout=float(m.dropout),
        init_std=float(m.init_std),
    )


def _token_encoder(cfg: DictConfig):
    from keytrack.encoders import TokenEncoder, token_config

    return TokenEncoder(token_config(cfg))


# -- the CNNs (§5.2, A.5) and LightTrack's GCN (§4.2) ---------------------------------------------------


def _cnn_classes():
    from keytrack.models.cnn import CNNConfig, CNNMatchingNetwork

    return CNNConfig, CNNMatchingNetwork


def _cnn_config(cfg: DictConfig):
    from keytrack.models.cnn import CNNConfig

    m = cfg.model
    return CNNConfig(
        resolution=tuple(m.resolution),
        in_channels=6,
        channels=int(m.channels),
        hidden=None if m.hidden is None else int(m.hidden),
    )


def _resolution(cfg: DictConfig) -> tuple[int, int]:
    resolution = tuple(int(r) for r in cfg.model.resolution)
    if len(resolution) != 2 or min(resolution) < 1:
        raise ValueError(
            f"model.resolution must be [w, h] with positive ints, got {list(cfg.model.resolution)}"
        )
    return resolution


def _raster_encoder(cfg: DictConfig):
    from keytrack.encoders import RasterEncoder

    return RasterEncoder(resolution=_resolution(cfg), delta=int(cfg.pairs.delta))


def _crop_encoder(cfg: DictConfig):
    from keytrack.encoders import CropEncoder

    return CropEncoder(resolution=_resolution(cfg), delta=int(cfg.pairs.delta))


def _gcn_classes():
    from keytrack.models.gcn import GCNConfig, SiameseGCN

    return GCNConfig, SiameseGCN


def _gcn_config(cfg: DictConfig):
    from keytrack.models.gcn import GCNConfig

    m = cfg.model
    return GCNConfig(channels=int(m.channels), embedding=int(m.embedding), margin=float(m.margin))


def _graph_encoder(cfg: DictConfig):
    from keytrack.encoders import GraphEncoder

    return GraphEncoder(coordinates=str(cfg.model.coordinates), delta=int(cfg.pairs.delta))


register(
    Matcher(
        "transformer",
        "Pose Entailment",
        _transformer_classes,
        _transformer_config,
        _token_encoder,
        baseline=False,
    )
)
register(Matcher("cnn_keypoints", "CNN on keypoints", _cnn_classes, _cnn_config, _raster_encoder))
register(Matcher("cnn_crops", "CNN on image crops", _cnn_classes, _cnn_config, _crop_encoder))
register(Matcher("gcn", "GCN (ours)", _gcn_classes, _gcn_config, _graph_encoder))
