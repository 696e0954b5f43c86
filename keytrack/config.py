"""Experiment configuration with omegaconf: a base config, small experiment files, CLI overrides.

``load_config(["experiment=quick", "trainer.max_epochs=3"])`` merges, in order:

1. ``experiments/base.yaml``, the paper's settings (A.4, A.5);
2. ``experiments/<experiment>.yaml``, which overrides only what that experiment changes
   (an experiment file may name another with ``extends: <name>`` to build on it);
3. the ``key=value`` overrides, in omegaconf's dotlist syntax.

The base config is a closed schema: an override naming a key that does not exist is an error
(a typo must not silently train the default). ``trainer`` stays open: it is passed to lightning's
``Trainer`` as is, so any of its arguments can be set (``trainer.fast_dev_run=true``).
"""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError

#: Where experiment YAMLs live; override with ``KEYTRACK_EXPERIMENTS``.
EXPERIMENTS_DIR = Path(os.environ.get("KEYTRACK_EXPERIMENTS", Path(__file__).resolve().parents[1] / "experiments"))

#: Keys an experiment file may carry that the base does not.
_META_KEYS = ("extends",)


class ConfigError(ValueError):
    """An experiment file or an override that cannot be applied; the message names it."""


def list_experiments(directory: Path = EXPERIMENTS_DIR) -> list[str]:
    """Names of the experiment files (``experiments/*.yaml`` except the base)."""
    return sorted(p.stem for p in directory.glob("*.yaml") if p.stem != "base")


def _experiment_chain(name: str, directory: Path) -> list[DictConfig]:
    chain: list[DictConfig] = []
    seen: set[str] = set()
    while name and name != "base":
        if name in seen:
            raise ConfigError(f"experiment {name!r}: 'extends' forms a cycle ({' -> '.join(seen)})")
        seen.add(name)
        path = directory / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"experiment {name!r}: no file {path} (known: {', '.join(list_experiments(directory))})")
        cfg = OmegaConf.load(path)
        chain.insert(0, cfg)
        name = cfg.pop("extends", None)
    return chain


def load_config(overrides: list[str] | None = None, directory: Path | None = None) -> DictConfig:
    """Compose base + experiment file(s) + ``key=value`` overrides into one resolved config."""
    directory = Path(directory or EXPERIMENTS_DIR)
    overrides = list(overrides or [])
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"overrides must be key=value, got {bad}")
    experiment = "base"
    for o in overrides:
        key, value = o.split("=", 1)
        if key == "experiment":
            experiment = value
    cfg = OmegaConf.load(directory / "base.yaml")
    OmegaConf.set_struct(cfg, True)
    OmegaConf.set_struct(cfg.trainer, False)   # any lightning Trainer argument may be given
    layers = [(f"experiments/{experiment}.yaml", layer) for layer in _experiment_chain(experiment, directory)]
    layers.append(("overrides", OmegaConf.from_dotlist(overrides)))
    for source, layer in layers:
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except ConfigKeyError as err:
            raise ConfigError(f"{source}: unknown key {err.full_key!r} (not in experiments/base.yaml)") from None
    cfg.experiment = experiment
    if cfg.run_name is None:
        cfg.run_name = f"{data_tag(cfg.data)}-seed{cfg.seed}"
    OmegaConf.resolve(cfg)
    return cfg


def data_tag(data: DictConfig) -> str:
    """A short name for the configured data: ``synthetic`` or ``<folder name>-<split>``."""
    if data.root is None:
        return "synthetic"
    return f"{Path(str(data.root)).resolve().name}-{data.split}"


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def with_defaults(saved: DictConfig, directory: Path | None = None) -> DictConfig:
    """A saved config (a run's ``config.yaml``, a checkpoint's ``cfg``) merged onto the current
    ``experiments/base.yaml``: keys the base gained after the run was saved take their default
    values, so an old run equals a new config that leaves the new keys at their defaults."""
    base = OmegaConf.load(Path(directory or EXPERIMENTS_DIR) / "base.yaml")
    return OmegaConf.merge(base, saved)
