"""What makes two training runs the same run: one definition for resume, caches and sweeps.

A run is determined by its whole composed config (``experiments/base.yaml`` + experiment file +
overrides) except the settings listed here:

* :data:`OBSERVING`: where a run writes, how it logs, how fast it evaluates; two runs that differ
  only in these compute the same weights and metrics.
* :data:`EXTENDING`: settings that only make a run longer. A run resumed with a larger
  ``trainer.max_epochs`` continues the same run (the learning-rate schedule is re-derived from the
  new step count, as when a run is trained that long from the start). They are part of the
  identity of a *finished result* (a cache of 2-epoch runs must not answer for 8 epochs), not of
  the run to resume.
* :data:`NEUTRAL`: settings added to the config after runs were made, at the value that computes
  what those runs computed; at that value they are left out, so a run made before the setting
  existed stays the same run.

:func:`identity` is the config with those keys removed (and ``data.root`` made absolute);
:func:`digest` its hash; :func:`changed_keys` the dotted keys where two configs differ, for
messages. ``keytrack train`` refuses to resume a run whose saved config differs in any key of the
resume identity and names them; :func:`keytrack.ablations.training.find_finished_run` (the ablations' and the
sweep runner's reuse of finished trainings) reuses a run only when the full identity agrees.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = ["OBSERVING", "EXTENDING", "NEUTRAL", "identity", "digest", "changed_keys"]

#: Dotted keys (or whole sections) that never change what a run computes.
OBSERVING: tuple[str, ...] = (
    "experiment",
    "run_name",
    "output_dir",
    "logging",
    "loader.num_workers",
    "loader.val_batch_size",
    "trainer.log_every_n_steps",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.default_root_dir",
)
#: Dotted keys that only extend a run: a resumed run may change them.
EXTENDING: tuple[str, ...] = ("trainer.max_epochs",)
#: Dotted keys added later -> the value that reproduces the runs made without them.
NEUTRAL: dict[str, Any] = {"pairs.motion": "none"}


def _container(cfg: DictConfig | dict) -> dict:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return json.loads(json.dumps(cfg, default=str))


def _get(tree: dict, dotted: str, missing: Any = None) -> Any:
    for p in dotted.split("."):
        if not isinstance(tree, dict) or p not in tree:
            return missing
        tree = tree[p]
    return tree


def _drop(tree: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        tree = tree.get(p)
        if not isinstance(tree, dict):
            return
    tree.pop(leaf, None)


def identity(cfg: DictConfig | dict, *, resume: bool = False) -> dict[str, Any]:
    """The part of ``cfg`` that decides what a run computes; ``resume=True`` also leaves out the
    :data:`EXTENDING` settings (what may change when the same run is continued)."""
    tree = _container(cfg)
    for key in (*OBSERVING, *(EXTENDING if resume else ())):
        _drop(tree, key)
    for key, value in NEUTRAL.items():
        if _get(tree, key) == value:
            _drop(tree, key)
    data = tree.get("data")
    if isinstance(data, dict) and data.get("root") is not None:
        data["root"] = str(Path(str(data["root"])).resolve())
    return tree


def digest(cfg: DictConfig | dict, *, resume: bool = False, length: int = 12) -> str:
    """A short hash of :func:`identity` (canonical JSON, sorted keys)."""
    text = json.dumps(identity(cfg, resume=resume), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed_keys(a: DictConfig | dict, b: DictConfig | dict, *, resume: bool = False) -> list[str]:
    """Dotted keys whose values differ between the identities of ``a`` and ``b`` (sorted)."""
    fa, fb = _flatten(identity(a, resume=resume)), _flatten(identity(b, resume=resume))
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k, "<absent>") != fb.get(k, "<absent>"))
