"""``keytrack convert-checkpoint OLD NEW``: a checkpoint of a former layout rewritten into the current one.

    keytrack convert-checkpoint runs/old/checkpoints/best.ckpt best-converted.ckpt
    keytrack convert-checkpoint runs/old/config.yaml runs/old/config.yaml     # a run's saved config

The former layouts, each refused by the loaders with a message that names this command
(:func:`check_current`):

* **separate Q, K, V**: each encoder layer held BERT's ``query``, ``key`` and ``value`` projections;
  they are one ``qkv`` projection now (:class:`keytrack.models.transformer.EncoderLayer`), the three
  weights stacked in that order. The optimizer's moments for them are stacked the same way, so a
  converted training checkpoint still resumes.
* **the flat model section**: ``model`` held the keys of every matcher (``hidden``, ...,
  ``cnn_channels``, ``gcn_embedding``, ...); it holds only its matcher's keys now, under their names
  in ``experiments/model/<name>.yaml`` (:mod:`keytrack.config`).
* **no joints record**: checkpoints written before ``trained_joints`` was kept (the joints the
  training data showed); they were tracked with every joint, which is what the conversion records.

A checkpoint in the current layout is left as it is (NEW is not written). The output is written
atomically: NEW is either the whole converted checkpoint or untouched.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

from keytrack.errors import CheckpointError

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "FLAT_MODEL_KEYS",
    "flat_model_section",
    "group_flat_model",
    "former_layout",
    "check_current",
    "convert",
    "convert_file",
]

#: In the flat ``model`` section, the keys of each matcher and their names in its group now.
FLAT_MODEL_KEYS = {
    "transformer": {k: k for k in ("hidden", "intermediate", "layers", "heads", "dropout", "init_std")},
    "cnn_keypoints": {"resolution": "resolution", "cnn_channels": "channels", "cnn_hidden": "hidden"},
    "cnn_crops": {"resolution": "resolution", "cnn_channels": "channels", "cnn_hidden": "hidden"},
    "gcn": {
        "gcn_channels": "channels",
        "gcn_embedding": "embedding",
        "gcn_margin": "margin",
        "gcn_coordinates": "coordinates",
    },
}

SEPARATE_QKV = "separate query / key / value weights"
FLAT_MODEL = "the flat model section"
NO_JOINTS = "no trained_joints record"

_QUERY = re.compile(r"(model\.encoder\.\d+\.)query\.weight")


def flat_model_section(cfg) -> bool:
    """Whether the config (a dict or a DictConfig) has the former flat ``model`` section."""
    model = cfg.get("model") if cfg is not None else None
    return model is not None and any(str(k).startswith(("cnn_", "gcn_")) for k in model)


def group_flat_model(cfg: dict) -> dict:
    """``cfg`` (a plain dict) with its flat ``model`` section reduced to its matcher's keys, renamed."""
    model = cfg["model"]
    keys = FLAT_MODEL_KEYS.get(str(model.get("name", "transformer")), {})
    grouped = {k: model[k] for k in ("name", "init_from") if k in model}
    grouped.update({new: model[old] for old, new in keys.items() if old in model})
    return {**cfg, "model": grouped}


def _saved_cfg(checkpoint: dict):
    return (checkpoint.get("hyper_parameters") or {}).get("cfg")


def former_layout(checkpoint: dict) -> list[str]:
    """What of a training checkpoint is in a former layout, one phrase each (empty: current)."""
    state = checkpoint.get("state_dict", {})
    found = []
    if any(_QUERY.fullmatch(k) for k in state):
        found.append(SEPARATE_QKV)
    if flat_model_section(_saved_cfg(checkpoint)):
        found.append(FLAT_MODEL)
    if "trained_joints" not in state:
        found.append(NO_JOINTS)
    return found


def check_current(checkpoint: dict, path: str | Path | None, *, joints_record: bool = True) -> None:
    """Raise :class:`~keytrack.errors.CheckpointError`, naming ``path`` and the conversion command, if
    ``checkpoint`` is in a former layout. ``joints_record=False``: a checkpoint without the
    ``trained_joints`` record passes (:func:`keytrack.models.factory.load_matcher` reads that as
    every joint)."""
    old = [f for f in former_layout(checkpoint) if joints_record or f != NO_JOINTS]
    if old:
        name = str(path) if path else "the checkpoint"
        raise CheckpointError(
            f"{name}: a checkpoint of a former layout ({', '.join(old)}); rewrite it with "
            f"`keytrack convert-checkpoint {path or 'OLD.ckpt'} NEW.ckpt`"
        )


def _stack_optimizer_moments(
    optimizer: dict, params: list[tuple[str, Tensor]], triples: dict[str, tuple[str, str, str]]
) -> None:
    """Re-index an AdamW state for the parameters with each Q, K, V triple stacked into one.

    The optimizer holds the LightningModule's parameters in ``named_parameters`` order (``params``),
    matrices first (weight decay) and vectors after (none), as ``configure_optimizers`` groups
    them. A triple's moments are concatenated as its weights are; every moment is checked against
    its parameter's shape."""
    import torch

    order = [n for n, t in params if t.ndim >= 2] + [n for n, t in params if t.ndim < 2]
    ids = [i for group in optimizer["param_groups"] for i in group["params"]]
    if len(ids) != len(order):
        raise CheckpointError(f"its optimizer holds {len(ids)} parameters, its weights {len(order)}")
    index, shape = dict(zip(order, ids)), dict(params)
    stacked = {part: name for name, parts in triples.items() for part in parts}
    state, start, new_id = {}, 0, 0
    for group in optimizer["param_groups"]:
        names, start = order[start : start + len(group["params"])], start + len(group["params"])
        new_ids = []
        for name in names:
            parts = triples.get(stacked.get(name), (name,))
            if name != parts[0]:
                continue  # the key or value of a stacked triple
            moments = [optimizer["state"].get(index[p]) for p in parts]
            if all(moments):
                for p, m in zip(parts, moments):
                    if m["exp_avg"].shape != shape[p].shape:
                        raise CheckpointError(f"its optimizer's moments for {p} are not of its shape")
                state[new_id] = {
                    **moments[0],
                    **{
                        k: torch.cat([m[k] for m in moments])
                        for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
                        if k in moments[0]
                    },
                }
            new_ids.append(new_id)
            new_id += 1
        group["params"] = new_ids
    optimizer["state"] = state


def convert(checkpoint: dict) -> tuple[dict, list[str]]:
    """``checkpoint`` in the current layout and what was changed, one phrase each; a checkpoint in
    the current layout comes back as it is, with no changes."""
    import copy

    import torch
    from omegaconf import OmegaConf

    from keytrack.skeleton import NUM_JOINTS

    old = former_layout(checkpoint)
    if not old:
        return checkpoint, []
    checkpoint = copy.deepcopy(checkpoint)
    state = checkpoint.setdefault("state_dict", {})
    if SEPARATE_QKV in old:
        params = [(k, v) for k, v in state.items() if k.startswith("model.")]
        triples = {
            f"{m.group(1)}qkv.{w}": tuple(f"{m.group(1)}{n}.{w}" for n in ("query", "key", "value"))
            for m in filter(None, map(_QUERY.fullmatch, state))
            for w in ("weight", "bias")
        }
        for optimizer in checkpoint.get("optimizer_states", []):
            _stack_optimizer_moments(optimizer, params, triples)
        first = {parts[0]: name for name, parts in triples.items()}
        rest = {p for parts in triples.values() for p in parts[1:]}
        state = {
            first.get(k, k): (torch.cat([state[p] for p in triples[first[k]]]) if k in first else v)
            for k, v in state.items()
            if k not in rest
        }
    if NO_JOINTS in old:  # they were tracked with every joint
        state = {"trained_joints": torch.ones(NUM_JOINTS, dtype=torch.bool), **state}
    checkpoint["state_dict"] = state
    if FLAT_MODEL in old:
        hyper = checkpoint["hyper_parameters"]
        cfg = hyper["cfg"]
        cfg = OmegaConf.to_container(cfg) if OmegaConf.is_config(cfg) else dict(cfg)
        hyper["cfg"] = group_flat_model(cfg)
    changes = {
        SEPARATE_QKV: "Q, K, V weights stacked into qkv",
        FLAT_MODEL: "model section grouped",
        NO_JOINTS: "trained_joints recorded as every joint",
    }
    return checkpoint, [changes[f] for f in old]


def convert_file(old: str | Path, new: str | Path) -> list[str]:
    """Convert the checkpoint (``*.ckpt``) or saved run config (``*.yaml``) ``old`` into ``new``,
    written atomically; returns what was changed. Nothing is written when ``old`` is current."""
    import torch
    from omegaconf import OmegaConf

    from keytrack.atomic import atomic_path, write_text

    old, new = Path(old), Path(new)
    if not old.is_file():
        raise CheckpointError(f"{old}: no such file")
    if old.suffix in (".yaml", ".yml"):
        cfg = OmegaConf.load(old)
        if not flat_model_section(cfg):
            return []
        write_text(new, OmegaConf.to_yaml(OmegaConf.create(group_flat_model(OmegaConf.to_container(cfg)))))
        return ["model section grouped"]
    try:
        checkpoint = torch.load(old, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(
            f"{old}: not a readable torch checkpoint ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{old}: not a keytrack training checkpoint (no state_dict)")
    try:
        checkpoint, changes = convert(checkpoint)
    except CheckpointError as err:
        raise CheckpointError(f"{old}: {err}") from None
    if changes:
        with atomic_path(new) as tmp:
            torch.save(checkpoint, tmp)
    return changes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", metavar="OLD", help="a checkpoint (*.ckpt) or a run's config.yaml")
    parser.add_argument("new", metavar="NEW", help="where the converted file goes (may be OLD itself)")


def run(args: argparse.Namespace) -> int:
    """``keytrack convert-checkpoint OLD NEW``."""
    changes = convert_file(args.old, args.new)
    if changes:
        print(f"{args.old} -> {args.new}: {'; '.join(changes)}")
    else:
        print(f"{args.old}: already in the current layout; left unchanged, {args.new} not written")
    return 0
