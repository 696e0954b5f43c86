"""Build a matching network from its typed config (``model.name`` picks the matcher from
:mod:`keytrack.models.registry`; :func:`matcher_config` reads that config from an experiment config).

Every matcher maps a batch of encoded pose pairs to 2-way logits ``[M, 2]`` (class 1 = same
person), so the LightningModule, the tracker and the ablations treat them alike. Its input comes
from its pair encoder (:func:`keytrack.encoders.pair_encoder`):

* ``transformer``: the Transformer Matching Network on tokens (§3.2, A.5);
* ``cnn_keypoints`` / ``cnn_crops``: the CNN of §5.2 / A.5 on the pair drawn as an image or on
  the RGB crops of both poses (:mod:`keytrack.models.cnn`);
* ``gcn``: LightTrack's Siamese GCN with a contrastive loss (§4.2, :mod:`keytrack.models.gcn`).

A matcher may define ``loss(logits, labels)``; the LightningModule then optimises that instead of
cross entropy (the GCN does).
"""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn

from keytrack.models import registry
from keytrack.models.registry import MatcherConfig

__all__ = [
    "MatcherConfig",
    "matcher_config",
    "build_matcher",
    "build_encoder",
    "load_matcher",
    "load_weights",
]


def matcher_config(cfg: DictConfig) -> MatcherConfig:
    """The typed config of the matcher an experiment config trains: ``model.name`` and its
    network's config (its ``model.*`` keys, and for the transformer the token settings' vocabularies)."""
    matcher = registry.get(str(cfg.model.name))
    return MatcherConfig(matcher.name, matcher.configure(cfg))


def build_matcher(matcher: MatcherConfig) -> nn.Module:
    """The network of ``matcher`` (:mod:`keytrack.models.registry`), freshly initialised."""
    if not isinstance(matcher, MatcherConfig):
        raise TypeError(
            f"build_matcher takes a MatcherConfig (keytrack.models.factory.matcher_config(cfg) "
            f"reads one from an experiment config), got {type(matcher).__name__}"
        )
    return registry.get(matcher.name).build(matcher.network)


def build_encoder(cfg: DictConfig):
    """The pair encoder of the configured matcher (:func:`keytrack.encoders.pair_encoder`)."""
    return registry.get(str(cfg.model.name)).encoder(cfg)


def load_matcher(checkpoint: str, map_location: str = "cpu") -> tuple[nn.Module, DictConfig]:
    """The matcher and the experiment config saved in a training checkpoint (``*.ckpt``).

    Reads the checkpoint with plain torch, so tracking needs no Lightning: the config is the
    ``cfg`` hyperparameter ``keytrack train`` writes into every checkpoint, the run's whole config
    (completed with the current base defaults
    for keys added since, :func:`keytrack.config.with_defaults`), the weights its ``model.*``
    entries. ``model.trained_joints`` is the ``[15]`` bool record of the joints the training data
    showed (``None`` for a checkpoint without it: every joint). A checkpoint of a former layout is
    refused with a message naming ``keytrack convert-checkpoint`` (:mod:`keytrack.convert`).
    ``checkpoint`` may name a shipped matcher instead (:func:`keytrack.weights.resolve_checkpoint`).
    """
    import torch
    from omegaconf import OmegaConf

    from keytrack.config import with_defaults
    from keytrack.convert import check_current
    from keytrack.errors import CheckpointError
    from keytrack.weights import resolve_checkpoint

    checkpoint = str(resolve_checkpoint(checkpoint))
    try:
        state = torch.load(checkpoint, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(
            f"{checkpoint}: not a readable torch checkpoint ({type(err).__name__}: {err})"
        ) from err
    try:
        saved = OmegaConf.create(state["hyper_parameters"]["cfg"])
    except (KeyError, TypeError):
        raise CheckpointError(
            f"{checkpoint}: not a keytrack training checkpoint (no hyper_parameters.cfg)"
        ) from None
    check_current(state, checkpoint, joints_record=False)
    cfg = with_defaults(saved, source=checkpoint)
    model = build_matcher(matcher_config(cfg))
    weights = {k.removeprefix("model."): v for k, v in state["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"{checkpoint}: its weights do not fit its own config ({err})") from None
    # The joints its training data showed (None: a checkpoint without the record, every joint).
    joints = state["state_dict"].get("trained_joints")
    model.trained_joints = None if joints is None else joints.to(torch.bool).cpu()
    return model.eval(), cfg


def load_weights(model: nn.Module, checkpoint: str) -> nn.Module:
    """Copy the matcher weights of a training checkpoint into ``model`` (same architecture; the
    error names the checkpoint and the mismatching keys otherwise)."""
    import torch

    from keytrack.config import ConfigError
    from keytrack.convert import check_current

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise ConfigError(f"model.init_from: no checkpoint {checkpoint}") from None
    check_current(state, checkpoint, joints_record=False)
    weights = {
        k.removeprefix("model."): v for k, v in state.get("state_dict", {}).items() if k.startswith("model.")
    }
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected or not weights:
        raise ConfigError(
            f"model.init_from: {checkpoint} does not fit this matcher (missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]})"
        )
    return model
