"""Build a matching network from an experiment config (``model.name`` picks the matcher).

Every matcher maps a batch of tokenized pose pairs to 2-way logits ``[M, 2]`` (class 1 = same
person), so the LightningModule, the tracker and the ablations treat them alike.
"""
from __future__ import annotations

from omegaconf import DictConfig
from torch import nn

from keytrack.data import token_config


def build_matcher(cfg: DictConfig) -> nn.Module:
    name = cfg.model.name
    if name == "transformer":
        from keytrack.models.transformer import TransformerMatchingNetwork

        m = cfg.model
        return TransformerMatchingNetwork.from_token_config(
            token_config(cfg), hidden=int(m.hidden), intermediate=int(m.intermediate), layers=int(m.layers),
            heads=int(m.heads), dropout=float(m.dropout), init_std=float(m.init_std))
    raise ValueError(f"model.name: unknown matcher {name!r} (known: transformer)")


def load_matcher(checkpoint: str, map_location: str = "cpu") -> tuple[nn.Module, DictConfig]:
    """The matcher and the experiment config saved in a training checkpoint (``*.ckpt``).

    Reads the checkpoint with plain torch, so tracking needs no Lightning: the config is the
    ``cfg`` hyperparameter the LightningModule saved, the weights its ``model.*`` entries.
    """
    import torch
    from omegaconf import OmegaConf

    state = torch.load(checkpoint, map_location=map_location, weights_only=False)
    try:
        cfg = OmegaConf.create(state["hyper_parameters"]["cfg"])
    except KeyError:
        raise ValueError(f"{checkpoint}: not a keytrack training checkpoint (no hyper_parameters.cfg)") from None
    model = build_matcher(cfg)
    weights = {k.removeprefix("model."): v for k, v in state["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(weights)
    return model.eval(), cfg
