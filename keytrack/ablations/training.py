"""Matching networks for experiments: trained from an experiment config, or the finished run of the same
configuration reused (:func:`keytrack.identity.identity` decides what is the same), and training budgets."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from keytrack.ablations.profile import Profile
from keytrack.ablations.runs import file_digest
from keytrack.config import run_dir
from keytrack.poses import Dataset
from keytrack.runlogs import find_best_checkpoint, read_run_metrics

log = logging.getLogger("keytrack.ablations")


def config_dotlist(node: Mapping, prefix: str = "") -> list[str]:
    """``key=value`` overrides (values as JSON, which is YAML) of every leaf of a nested mapping."""
    out = []
    for key, value in node.items():
        if isinstance(value, dict):
            out += config_dotlist(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def budget_file_overrides(name: str) -> list[str]:
    """The overrides of a training-budget file ``experiments/<name>.yaml`` (less its ``experiment``)."""
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
    """``experiment``'s ``optim``, ``loader`` and ``trainer.max_epochs`` as overrides: a learned baseline
    trained as Pose Entailment's network was (A.5: "the batch size, learning rate, and number of training
    epochs are the same")."""
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
    """The training budget of a composed config in words, for table notes."""
    per_epoch, epochs = cfg.loader.samples_per_epoch, cfg.trainer.get("max_epochs")
    steps = int(epochs) * int(per_epoch) // int(cfg.loader.batch_size) if per_epoch else 0
    return (
        f"batch {cfg.loader.batch_size}, peak lr {cfg.optim.lr:g} (warm-up over "
        f"{100 * cfg.optim.warmup_fraction:g} % of the steps, then linear decay), {epochs} epoch(s) of "
        + (f"{per_epoch:,} pairs ({steps:,} steps)" if per_epoch else "every training pair")
    )


@dataclass
class TrainedModel:
    """A finished training run: the checkpoint to track with and the run's ``metrics.json``."""

    checkpoint: Path
    run_dir: Path
    metrics: dict
    reused: bool


def _checkpoint_of(run: Path, metrics: Mapping) -> Path:
    """The checkpoint of a finished run: ``metrics``' best (else last) checkpoint, resolved
    (:func:`keytrack.runlogs.read_run_metrics`), or the file of that name in the run's checkpoints
    folder (a run moved since), else its best checkpoint (``best.ckpt``, or an older run's
    ``best-epoch=NN.ckpt``), else ``last.ckpt``."""
    for value in (metrics.get("best_checkpoint"), metrics.get("last_checkpoint")):
        for path in (Path(value), run / "checkpoints" / Path(value).name) if value else ():
            if path.is_file():
                return path
    best = find_best_checkpoint(run)
    if len(best) == 1:
        return best[0]
    if (run / "checkpoints" / "last.ckpt").is_file():
        return run / "checkpoints" / "last.ckpt"
    raise FileNotFoundError(
        f"{run}: finished run (metrics.json) without a checkpoint in {run / 'checkpoints'}"
    )


def _same_config(run: Path, signature: dict) -> bool:
    from omegaconf import OmegaConf

    from keytrack.config import with_defaults
    from keytrack.identity import identity

    saved = run / "config.yaml"
    if not saved.is_file():
        return False
    try:  # a config.yaml that is not a training's (another tool's folder) is not this run
        # A run saved before experiments/base.yaml gained a key compares with that key at its default.
        return identity(with_defaults(OmegaConf.load(saved))) == signature
    except Exception:  # noqa: BLE001
        return False


def _runs(cfg) -> Iterator[Path]:
    """The run folders that hold ``cfg``'s configuration: its own folder, then its experiment's other
    runs, then other experiments' (the experiment's name is not part of what a run computes:
    Table 3's KeyTrack row is ``experiment=paper`` under another name)."""
    from keytrack.identity import identity

    own, sig, root = run_dir(cfg), identity(cfg), Path(cfg.output_dir)
    mine = sorted(p for p in (root / cfg.experiment).glob("*") if p.is_dir() and p != own)
    elsewhere = sorted(p for p in root.glob("*/*") if p.is_dir() and p.parent.name != cfg.experiment)
    return (r for r in [own, *mine, *elsewhere] if _same_config(r, sig))


def find_finished_run(cfg) -> Path | None:
    """The folder of a finished training (``metrics.json``) of the same configuration: its own run
    folder first, else any other run of the same identity (:func:`_runs`)."""
    return next((r for r in _runs(cfg) if (r / "metrics.json").is_file()), None)


def _active_run(cfg, quiet_seconds: float) -> Path | None:
    """A run of the same configuration without ``metrics.json`` that wrote a file recently."""
    now = time.time()
    for run in _runs(cfg):
        # The CSV logger writes csv/version_N/metrics.csv (one folder per attempt) every 100 steps.
        watched = [
            run / "checkpoints" / "last.ckpt",
            run / "config.yaml",
            *run.glob("csv/version_*/metrics.csv"),
        ]
        if not (run / "metrics.json").is_file() and any(
            p.is_file() and now - p.stat().st_mtime < quiet_seconds for p in watched
        ):
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
    """Train ``experiment`` with ``overrides``, or reuse the finished run of its configuration; while
    another process trains it (a file written in the last ``quiet_seconds``) wait for that unless
    ``wait=False``. ``train_fn(cfg, dataset) -> metrics`` replaces :func:`keytrack.lightning.train.train`."""
    from keytrack.config import load_config, overrides_for

    # One override list may serve several matchers: each takes the model keys of its own group.
    cfg = load_config([f"experiment={experiment}", *overrides_for(experiment, list(overrides))])
    while True:
        finished = find_finished_run(cfg)
        if finished is not None:
            metrics = read_run_metrics(finished)
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
        from keytrack.lightning.train import train as train_fn
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
    """``{checkpoint, digest, source, ...}`` of ``checkpoint`` when given (a file or a shipped matcher's
    name, :func:`keytrack.weights.resolve_checkpoint`), else of the finished run of ``experiment`` on the
    profile's training split (trained now if missing); raises when there is none."""
    if checkpoint is not None:
        from keytrack.weights import resolve_checkpoint

        path = resolve_checkpoint(checkpoint)
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
        "global_step": trained.metrics.get("global_step"),
        "train_seconds": trained.metrics.get("seconds"),  # the last attempt's, for a resumed run
        "experiment": experiment,
        "overrides": overrides,
    }


def network_or_error(
    profile: Profile, what: str = "matching network", **kwargs
) -> tuple[dict | None, str | None]:
    """:func:`matching_network` as ``(network, None)``, or ``(None, "<error>")`` (logged as ``what``):
    the cells that need it then fail with that message, the others still run."""
    try:
        return matching_network(profile, **kwargs), None
    except Exception as err:  # noqa: BLE001 - recorded in the table, the other cells go on
        log.error("%s: %s: %s", what, type(err).__name__, err)
        return None, f"{type(err).__name__}: {err}"
