"""Experiment configuration with omegaconf: a base config, small experiment files, CLI overrides.

The experiment files live in the package, ``keytrack/experiments/`` (:func:`experiments_dir`); paths
below are relative to ``keytrack/``. ``load_config(["experiment=quick", "trainer.max_epochs=3"])``
merges, in order:

1. ``experiments/base.yaml``, the paper's settings (A.4, A.5);
2. ``experiments/model/<model.name>.yaml`` under ``model``: the chosen matcher's own keys and their
   defaults (its config group, :mod:`keytrack.models.registry`), ``model.name`` being the last one
   the experiment files or the overrides set;
3. ``experiments/<experiment>.yaml``, which overrides only what that experiment changes
   (an experiment file may name another with ``extends: <name>`` to build on it);
4. the ``key=value`` overrides, in omegaconf's dotlist syntax.

The base config is a closed schema: an override naming a key that does not exist is an error
(a typo must not silently train the default). ``trainer`` stays open: it is passed to lightning's
``Trainer`` as is, so any of its arguments can be set (``trainer.fast_dev_run=true``).
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError

from keytrack.errors import InputError


def experiments_dir() -> Path:
    """The folder of experiment YAMLs: ``KEYTRACK_EXPERIMENTS`` when set (read at every call, so a
    test or a tool may point it elsewhere), else the package's own ``keytrack/experiments/``, installed
    with it as package data (so every command finds the configs from any directory, editable install
    or wheel). Every path to a config file goes through here (:func:`config_path`)."""
    return Path(os.environ.get("KEYTRACK_EXPERIMENTS") or Path(__file__).resolve().parent / "experiments")


def config_path(*parts: str, directory: Path | str | None = None) -> Path:
    """A path under the experiments folder (``directory``, default :func:`experiments_dir`):
    ``config_path("base.yaml")``, ``config_path("model", "gcn.yaml")``, ``config_path("ablations")``,
    ``config_path("sweeps", "figure7.yaml")``."""
    return Path(directory or experiments_dir()).joinpath(*parts)


#: Keys an experiment file may carry that the base does not.
_META_KEYS = ("extends",)


class ConfigError(InputError):
    """An experiment file or an override that cannot be applied; the message names it."""


def list_experiments(directory: Path | None = None) -> list[str]:
    """Names of the experiment files (``experiments/*.yaml`` except the base)."""
    return sorted(p.stem for p in config_path(directory=directory).glob("*.yaml") if p.stem != "base")


def _experiment_chain(name: str, directory: Path) -> list[DictConfig]:
    chain: list[DictConfig] = []
    seen: set[str] = set()
    while name and name != "base":
        if name in seen:
            raise ConfigError(f"experiment {name!r}: 'extends' forms a cycle ({' -> '.join(seen)})")
        seen.add(name)
        path = config_path(f"{name}.yaml", directory=directory)
        if not path.is_file():
            raise ConfigError(
                f"experiment {name!r}: no file {path} (known: {', '.join(list_experiments(directory))})"
            )
        cfg = OmegaConf.load(path)
        chain.insert(0, cfg)
        name = cfg.pop("extends", None)
    return chain


def load_config(overrides: list[str] | None = None, directory: Path | None = None) -> DictConfig:
    """Compose base + experiment file(s) + ``key=value`` overrides into one resolved config."""
    directory = config_path(directory=directory)
    overrides = list(overrides or [])
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"overrides must be key=value, got {bad}")
    experiment = "base"
    for o in overrides:
        key, value = o.split("=", 1)
        if key == "experiment":
            experiment = value
    layers = [(f"experiments/{experiment}.yaml", layer) for layer in _experiment_chain(experiment, directory)]
    layers.append(("overrides", OmegaConf.from_dotlist(overrides)))
    cfg = OmegaConf.load(config_path("base.yaml", directory=directory))
    model = cfg.model.name
    for _, layer in layers:
        model = OmegaConf.select(layer, "model.name", default=model)
    cfg.model = OmegaConf.merge(cfg.model, model_group(str(model), directory))
    reference = cfg.copy()
    OmegaConf.set_struct(cfg, True)
    OmegaConf.set_struct(cfg.trainer, False)  # any lightning Trainer argument may be given
    for source, layer in layers:
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except ConfigKeyError as err:
            raise ConfigError(
                f"{source}: unknown key {err.full_key!r} (not in experiments/base.yaml, nor in "
                f"experiments/model/{model}.yaml for model.name={model})"
            ) from None
    cfg.experiment = experiment
    if cfg.run_name is None:
        cfg.run_name = f"{data_tag(cfg.data)}-seed{cfg.seed}"
    OmegaConf.resolve(cfg)
    check_types(cfg, reference, str(model))
    return cfg


def _type_name(value) -> str:
    if isinstance(value, DictConfig):
        return "mapping"
    if isinstance(value, ListConfig):
        return "list"
    return type(value).__name__


def _same_kind(value, default) -> bool:
    """Whether ``value`` may stand where the reference config has ``default``: the same kind of
    value (an int for a float too, any scalar but a bool for a string); a null default takes any."""
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    if isinstance(default, ListConfig):
        return isinstance(value, ListConfig)
    if isinstance(default, DictConfig):
        return isinstance(value, DictConfig)
    return True


def check_types(cfg: DictConfig, reference: DictConfig, model: str, prefix: str = "") -> None:
    """Refuse a value of another type than the reference config's (base.yaml with the matcher
    ``model``'s group; ``trainer`` aside: lightning's ``Trainer`` takes other types than base.yaml's
    examples, and the training command checks its arguments against the Trainer's annotations)."""
    for key in reference:
        full = f"{prefix}{key}"
        if full == "trainer" or key not in cfg:
            continue
        default, value = reference[key], cfg[key]
        if not _same_kind(value, default):
            group = full.startswith("model.") and full not in ("model.name", "model.init_from")
            source = f"experiments/model/{model}.yaml" if group else "experiments/base.yaml"
            got = f"{value!r} ({_type_name(value)})"
            raise ConfigError(f"{full}: expected {_type_name(default)} (as in {source}), got {got}")
        if isinstance(default, DictConfig) and isinstance(value, DictConfig):
            check_types(value, default, model, f"{full}.")


def overrides_for(experiment: str, overrides: list[str], directory: Path | None = None) -> list[str]:
    """``overrides`` without the ``model.<key>=...`` ones that only another matcher has.

    For ablations that give one list of overrides to several matchers (a tiny model for a test,
    say ``model.layers=1 model.channels=8``): each matcher takes the keys of its own config group.
    A key no matcher has stays, so :func:`load_config` still refuses a typo.
    """
    directory = config_path(directory=directory)
    model = OmegaConf.load(config_path("base.yaml", directory=directory)).model.name
    layers = [
        *_experiment_chain(experiment, directory),
        OmegaConf.from_dotlist([o for o in overrides if "=" in o]),
    ]
    for layer in layers:
        model = OmegaConf.select(layer, "model.name", default=model)
    own = {"name", "init_from", *model_group(str(model), directory)}
    anyone = {k for name in model_names(directory) for k in model_group(name, directory)}

    def foreign(o: str) -> bool:
        key = o.split("=", 1)[0].split(".")
        return len(key) >= 2 and key[0] == "model" and key[1] not in own and key[1] in anyone

    return [o for o in overrides if not foreign(o)]


def data_tag(data: DictConfig) -> str:
    """A short name for the configured data: ``synthetic`` or ``<folder name>-<split>``."""
    if data.root is None:
        return "synthetic"
    return f"{Path(str(data.root)).resolve().name}-{data.split}"


def run_dir(cfg: DictConfig) -> Path:
    """A training run's folder: ``<output_dir>/<experiment>/<run_name>``."""
    return Path(cfg.output_dir) / cfg.experiment / cfg.run_name


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def model_names(directory: Path | None = None) -> list[str]:
    """The matchers that have a config group (``experiments/model/<name>.yaml``)."""
    return sorted(p.stem for p in config_path("model", directory=directory).glob("*.yaml"))


def model_group(name: str, directory: Path | None = None) -> DictConfig:
    """``experiments/model/<name>.yaml``: the keys and defaults of matcher ``name``."""
    path = config_path("model", f"{name}.yaml", directory=directory)
    if not path.is_file():
        raise ConfigError(
            f"model.name: unknown matcher {name!r}: no {path} (known: {', '.join(model_names(directory))})"
        )
    group = OmegaConf.load(path)
    bad = {"name", "init_from"} & set(group)
    if bad:
        raise ConfigError(
            f"{path}: {sorted(bad)} belong to base.yaml's model section, not to a matcher's group"
        )
    return group


def with_defaults(
    saved: DictConfig, directory: Path | None = None, source: str | Path | None = None
) -> DictConfig:
    """A saved config (a run's ``config.yaml``, a checkpoint's ``cfg``) merged onto the current
    ``experiments/base.yaml`` and its matcher's group: keys added after the run was saved take
    their default values, so an old run equals a new config that leaves the new keys at their
    defaults. A config of the former flat ``model`` section is refused (the message names
    ``source``, the file it came from, and ``keytrack convert-checkpoint``, :mod:`keytrack.convert`)."""
    from keytrack.convert import flat_model_section

    if flat_model_section(saved):
        raise ConfigError(
            f"{source or 'a saved config'}: saved with the former flat model section (the "
            f"keys of every matcher); rewrite it with "
            f"`keytrack convert-checkpoint {source or 'OLD'} NEW`"
        )
    base = OmegaConf.load(config_path("base.yaml", directory=directory))
    name = OmegaConf.select(saved, "model.name", default=None) or base.model.name
    base.model = OmegaConf.merge(base.model, model_group(str(name), directory))
    return OmegaConf.merge(base, saved)
