"""Matching networks for experiments: trained from an experiment config, or the finished run of the same
configuration reused (:func:`keytrack.identity.identity` decides what is the same), and training budgets."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ablations.profile import Profile
from ablations.runs import file_digest
from keytrack.config import run_dir
from keytrack.poses import Dataset

log = logging.getLogger("ablations")


def config_dotlist(node: Mapping, prefix: str = "") -> list[str]:
    """``key=value`` overrides (values as JSON, which is YAML) of every leaf of a nested mapping."""
    out = []
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += config_dotlist(value, f"{name}.")
        else:
            out.append(f"{name}={json.dumps(value)}")
    return out


def budget_file_overrides(name: str) -> list[str]:
    """The ``key=value`` overrides of a training-budget file ``experiments/<name>.yaml`` (less its
    ``experiment`` name), which an ablation's quick profile adds to each experiment it trains."""
    from omegaconf import OmegaConf

    from keytrack.config import config_path

    path = config_path(f"{name}.yaml")
    budget = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if budget.pop("extends", None):
        raise ValueError(
            f"{path}: a training budget file must not use 'extends' (its keys are applied as overrides)"
        )
    budget.pop("experiment", None)
    return config_dotlist(budget)


def budget_overrides(experiment: str, overrides: Sequence[str] = ()) -> list[str]:
    """The training budget of ``experiment`` (with ``overrides``) as ``key=value`` overrides: its
    ``optim`` and ``loader`` sections and ``trainer.max_epochs``. Added to a learned baseline's own
    experiment file, they train it as Pose Entailment's network was trained (A.5: "the batch size,
    learning rate, and number of training epochs are the same")."""
    from omegaconf import OmegaConf

    from keytrack.config import load_config

    cfg = load_config([f"experiment={experiment}", *overrides])
    out = [
        f"{section}.{key}={json.dumps(value)}"
        for section in ("optim", "loader")
        for key, value in OmegaConf.to_container(cfg[section], resolve=True).items()
    ]
    return [*out, f"trainer.max_epochs={json.dumps(OmegaConf.select(cfg, 'trainer.max_epochs'))}"]


def describe_budget(cfg) -> str:
    """The training budget of a composed config in words, for table notes: batch, peak lr and its
    schedule, epochs and pairs (steps) per epoch."""
    per_epoch = cfg.loader.samples_per_epoch
    epochs = cfg.trainer.get("max_epochs")
    return (
        f"batch {cfg.loader.batch_size}, peak lr {cfg.optim.lr:g} (warm-up over "
        f"{100 * cfg.optim.warmup_fraction:g} % of the steps, then linear decay), {epochs} epoch(s) of "
        + (
            f"{per_epoch:,} pairs ({int(epochs) * int(per_epoch) // int(cfg.loader.batch_size):,} steps)"
            if per_epoch
            else "every training pair"
        )
    )


@dataclass
class TrainedModel:
    """A finished training run: the checkpoint to track with and the run's ``metrics.json``."""

    checkpoint: Path
    run_dir: Path
    metrics: dict
    reused: bool


def _signature(cfg) -> dict:
    """What decides the result of a finished training (:func:`keytrack.identity.identity`)."""
    from keytrack.identity import identity

    return identity(cfg)


def _checkpoint_of(run: Path, metrics: Mapping) -> Path:
    for key in ("best_checkpoint", "last_checkpoint"):
        value = metrics.get(key)
        if not value:
            continue
        for path in (Path(value), run / "checkpoints" / Path(value).name):
            if path.is_file():
                return path
    last = run / "checkpoints" / "last.ckpt"
    if last.is_file():
        return last
    raise FileNotFoundError(
        f"{run}: finished run (metrics.json) without a checkpoint in {run / 'checkpoints'}"
    )


def _same_config(run: Path, signature: dict) -> bool:
    from omegaconf import OmegaConf

    from keytrack.config import with_defaults

    saved = run / "config.yaml"
    # A run saved before experiments/base.yaml gained a key compares with that key at its default.
    return saved.is_file() and _signature(with_defaults(OmegaConf.load(saved))) == signature


def find_finished_run(cfg) -> Path | None:
    """The run folder of a finished training (``metrics.json`` present) of the same configuration.

    ``<output_dir>/<experiment>/<run_name>`` first; otherwise any other run of the experiment whose
    ``config.yaml`` has the same :func:`keytrack.identity.identity` (a run started under another
    name).
    """
    sig = _signature(cfg)
    own = run_dir(cfg)
    finished = (Path(cfg.output_dir) / cfg.experiment).glob("*/metrics.json")
    candidates = [own] + sorted(p.parent for p in finished if p.parent != own)
    return next((r for r in candidates if (r / "metrics.json").is_file() and _same_config(r, sig)), None)


def _active_run(cfg, quiet_seconds: float) -> Path | None:
    """A run of the same configuration without ``metrics.json`` that wrote a file recently."""
    sig = _signature(cfg)
    own = run_dir(cfg)
    runs = [own] + [p for p in (Path(cfg.output_dir) / cfg.experiment).glob("*") if p.is_dir() and p != own]
    now = time.time()
    for run in runs:
        if (run / "metrics.json").is_file() or not _same_config(run, sig):
            continue
        # The CSV logger writes csv/version_N/metrics.csv (one folder per attempt) every 100 steps.
        watched = [
            run / "checkpoints" / "last.ckpt",
            run / "config.yaml",
            *run.glob("csv/version_*/metrics.csv"),
        ]
        if any(p.is_file() and now - p.stat().st_mtime < quiet_seconds for p in watched):
            return run
    return None


def train_or_reuse(
    experiment: str,
    overrides: Sequence[str] = (),
    *,
    dataset: Dataset | None = None,
    wait: bool = True,
    quiet_seconds: float = 180.0,
    poll_seconds: float = 15.0,
    train_fn: Callable | None = None,
) -> TrainedModel:
    """Train ``experiment`` with ``overrides`` (:func:`lightning_modules.train.train`), or reuse its finished
    run.

    A finished run of the same configuration (:func:`find_finished_run`) is reused as is. When a
    run of that configuration is being trained by another process (a checkpoint or log written in
    the last ``quiet_seconds``), this waits for its ``metrics.json`` instead of training a second
    copy (``wait=False`` trains at once, which resumes from its ``last.ckpt``). Returns the best
    checkpoint (by validation accuracy) of the run. ``train_fn(cfg, dataset) -> metrics`` replaces
    :func:`lightning_modules.train.train` (which is imported, with Lightning, only when a run is trained).
    """
    from keytrack.config import load_config, overrides_for

    # One override list may serve several matchers: each takes the model keys of its own group.
    cfg = load_config([f"experiment={experiment}", *overrides_for(experiment, list(overrides))])
    while True:
        finished = find_finished_run(cfg)
        if finished is not None:
            metrics = json.loads((finished / "metrics.json").read_text(encoding="utf-8"))
            log.info("training %s/%s: reusing the finished run %s", cfg.experiment, cfg.run_name, finished)
            return TrainedModel(_checkpoint_of(finished, metrics), finished, metrics, reused=True)
        active = _active_run(cfg, quiet_seconds) if wait else None
        if active is None:
            break
        log.info(
            "training %s: %s is being trained by another process; waiting for its metrics.json",
            cfg.experiment,
            active,
        )
        time.sleep(poll_seconds)
    log.info("training %s/%s (%s)", cfg.experiment, cfg.run_name, " ".join(overrides) or "no overrides")
    if train_fn is None:
        from lightning_modules.train import train as train_fn
    metrics = train_fn(cfg, dataset)
    run = run_dir(cfg)
    return TrainedModel(_checkpoint_of(run, metrics), run, metrics, reused=False)


def matching_network(
    profile: Profile,
    *,
    checkpoint: str | None,
    experiment: str,
    train_seed: int,
    train_overrides: Sequence[str] = (),
    wait: bool = True,
) -> dict:
    """The matching network an ablation tracks with: ``checkpoint`` when given, else the finished
    run of ``experiment`` on the profile's training split (trained now if missing). Returns
    ``{checkpoint, digest, source, ...}``; raises when there is none."""
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"--checkpoint {path}: no such file")
        return {"checkpoint": str(path), "digest": file_digest(path), "source": "given"}
    overrides = [*profile.train_overrides(), f"seed={train_seed}", *train_overrides]
    trained = train_or_reuse(experiment, overrides, wait=wait)
    return {
        "checkpoint": str(trained.checkpoint),
        "digest": file_digest(trained.checkpoint),
        "source": "reused" if trained.reused else "trained",
        "run_dir": str(trained.run_dir),
        "best_val_acc": trained.metrics.get("best_val_acc"),
        "best_val_rank1": trained.metrics.get("best_val_rank1"),
        "experiment": experiment,
        "overrides": overrides,
    }


def network_or_error(
    profile: Profile, what: str = "matching network", **kwargs
) -> tuple[dict | None, str | None]:
    """:func:`matching_network` as ``(network, None)``, or ``(None, "<error>")`` when there is none
    (logged as ``what``): the cells that need it then fail with that message, the others still run."""
    try:
        return matching_network(profile, **kwargs), None
    except Exception as err:  # noqa: BLE001 - recorded in the table, the other cells go on
        log.error("%s: %s: %s", what, type(err).__name__, err)
        return None, f"{type(err).__name__}: {err}"
