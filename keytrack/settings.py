"""Typed settings of a training run, read from an experiment config once.

The experiment config (:mod:`keytrack.config`) is where a user sets everything; the parts of a run
take only the typed pieces they use, as Lightning's modules take typed hyperparameters: the
LightningModule a :class:`~keytrack.models.registry.MatcherConfig`, :class:`OptimSettings`,
:class:`LossSettings` and :class:`ValidationSettings`; the DataModule :class:`DataSettings`,
:class:`PairSettings`, :class:`AugmentSettings`, :class:`LoaderSettings`, the matcher's pair encoder
and the seed. :func:`training_settings` reads and checks all of them (an unknown loss, motion or
matcher is refused before a run folder is made), and the training command hands each part its own.

Each dataclass mirrors one section of ``experiments/base.yaml`` key for key; the defaults stay in
the YAML, so every field is required here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping

from omegaconf import DictConfig, OmegaConf

from keytrack.config import ConfigError

if TYPE_CHECKING:
    from keytrack.encoders import PairEncoder
    from keytrack.models.registry import MatcherConfig

__all__ = [
    "SyntheticData",
    "DataSettings",
    "PairSettings",
    "AugmentSettings",
    "LossSettings",
    "OptimSettings",
    "LoaderSettings",
    "ValidationSettings",
    "TrainingSettings",
    "data_settings",
    "pair_settings",
    "augment_settings",
    "loss_settings",
    "training_settings",
    "as_settings",
    "plain",
]


@dataclass(frozen=True)
class SyntheticData:
    """``data.synthetic``: the embedded synthetic scenes used when no data folder is given."""

    videos: int
    seed: int


@dataclass(frozen=True)
class DataSettings:
    """``data``: which poses a run trains on (:func:`keytrack.data.load_dataset`) and the share of
    videos held out for validation."""

    root: str | None
    split: str
    val_fraction: float
    default_frame_size: tuple[int, int]
    synthetic: SyntheticData


@dataclass(frozen=True)
class PairSettings:
    """``pairs``: which pose pairs are drawn (§3.1) and how validation pairs are kept."""

    delta: int
    nearest: int | None
    strides: tuple[int, ...]
    motion: str
    val_balanced: bool


@dataclass(frozen=True)
class AugmentSettings:
    """``augment``: the augmentation of training pairs (:mod:`keytrack.augment`) and the
    predicted-like copies of the training videos (``predicted``)."""

    translate: bool
    flip: float
    scale: tuple[float, float] | None
    rotate: float
    jitter: float
    drop: float
    predicted: tuple[str, ...]

    def pair_options(self) -> dict:
        """The keyword arguments of :func:`keytrack.augment.augment_pairs`."""
        return {
            "translate": self.translate,
            "flip": self.flip,
            "scale": self.scale,
            "rotate": self.rotate,
            "jitter": self.jitter,
            "drop": self.drop,
        }


@dataclass(frozen=True)
class LossSettings:
    """``loss``: the training objective (``bce`` or ``listwise``, :mod:`keytrack.losses`)."""

    name: str
    hide_true: float

    def __post_init__(self) -> None:
        from keytrack.losses import LOSSES

        if self.name not in LOSSES:
            raise ConfigError(f"loss.name: unknown loss {self.name!r} (known: {', '.join(LOSSES)})")

    @property
    def listwise(self) -> bool:
        return self.name == "listwise"


@dataclass(frozen=True)
class OptimSettings:
    """``optim``: AdamW and its warm-up + linear decay schedule (A.4)."""

    lr: float
    weight_decay: float
    warmup_fraction: float


@dataclass(frozen=True)
class LoaderSettings:
    """``loader``: batch sizes, workers and the pairs (or candidate lists) drawn per epoch."""

    batch_size: int
    val_batch_size: int
    num_workers: int
    samples_per_epoch: int | None


@dataclass(frozen=True)
class ValidationSettings:
    """``validation``: the ranking metrics' match threshold and the metric choosing the best checkpoint."""

    match_threshold: float
    monitor: str


@dataclass(frozen=True)
class TrainingSettings:
    """Every typed piece of a training run (:func:`training_settings`)."""

    seed: int
    data: DataSettings
    pairs: PairSettings
    augment: AugmentSettings
    loss: LossSettings
    optim: OptimSettings
    loader: LoaderSettings
    validation: ValidationSettings
    matcher: MatcherConfig
    encoder: PairEncoder  # the matcher's pair encoder
    init_from: str | None  # a checkpoint whose matcher weights start the training


def _optional(value, kind):
    return None if value is None else kind(value)


def data_settings(data: DictConfig) -> DataSettings:
    """The ``data`` section of an experiment config, typed."""
    return DataSettings(
        root=_optional(data.root, str),
        split=str(data.split),
        val_fraction=float(data.val_fraction),
        default_frame_size=tuple(int(v) for v in data.default_frame_size),
        synthetic=SyntheticData(int(data.synthetic.videos), int(data.synthetic.seed)),
    )


def pair_settings(pairs: DictConfig) -> PairSettings:
    """The ``pairs`` section, typed; an unknown ``pairs.motion`` is refused."""
    from keytrack.pairs import resolve_motion

    return PairSettings(
        delta=int(pairs.delta),
        nearest=_optional(pairs.nearest, int),
        strides=tuple(int(s) for s in pairs.strides),
        motion=resolve_motion(pairs.get("motion", "none"), where="pairs.motion"),
        val_balanced=bool(pairs.val_balanced),
    )


def augment_settings(augment: DictConfig) -> AugmentSettings:
    """The ``augment`` section, typed."""
    a = augment
    return AugmentSettings(
        translate=bool(a.translate),
        flip=float(a.flip),
        scale=None if a.scale is None else tuple(float(v) for v in a.scale),
        rotate=float(a.rotate),
        jitter=float(a.jitter),
        drop=float(a.drop),
        predicted=tuple(str(p) for p in (a.get("predicted") or ())),
    )


def loss_settings(loss: DictConfig) -> LossSettings:
    """The ``loss`` section, typed; an unknown ``loss.name`` is refused."""
    return LossSettings(name=str(loss.name), hide_true=float(loss.hide_true))


def training_settings(cfg: DictConfig) -> TrainingSettings:
    """Every typed piece of the run an experiment config describes, each checked."""
    from keytrack.encoders import pair_encoder
    from keytrack.models.factory import matcher_config

    o, loader, v = cfg.optim, cfg.loader, cfg.validation
    return TrainingSettings(
        seed=int(cfg.seed),
        data=data_settings(cfg.data),
        pairs=pair_settings(cfg.pairs),
        augment=augment_settings(cfg.augment),
        loss=loss_settings(cfg.loss),
        optim=OptimSettings(
            lr=float(o.lr), weight_decay=float(o.weight_decay), warmup_fraction=float(o.warmup_fraction)
        ),
        loader=LoaderSettings(
            batch_size=int(loader.batch_size),
            val_batch_size=int(loader.val_batch_size),
            num_workers=int(loader.num_workers),
            samples_per_epoch=_optional(loader.samples_per_epoch, int),
        ),
        validation=ValidationSettings(match_threshold=float(v.match_threshold), monitor=str(v.monitor)),
        matcher=matcher_config(cfg),
        encoder=pair_encoder(cfg),
        init_from=_optional(OmegaConf.select(cfg, "model.init_from"), str),
    )


def as_settings(kind: type, value: Any) -> Any:
    """``value`` as the settings dataclass ``kind``: itself, or its plain form (a mapping of its
    fields, as a checkpoint's hyperparameters keep it, so a LightningModule loaded from a checkpoint
    gets its typed arguments back)."""
    if isinstance(value, kind):
        return value
    if isinstance(value, Mapping):
        from_dict = getattr(kind, "from_dict", None)  # nested settings read their own plain form
        return from_dict(value) if from_dict else kind(**dict(value))
    raise TypeError(f"expected a {kind.__name__} or a mapping of its fields, got {type(value).__name__}")


def plain(settings: Any) -> dict:
    """A settings dataclass as plain values (lists for tuples), for a checkpoint's hyperparameters."""

    def convert(value):
        if isinstance(value, Mapping):
            return {k: convert(x) for k, x in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(x) for x in value]
        return value

    return convert(asdict(settings))
