"""``keytrack train``: train a matching network from an experiment config (§3.2, A.4).

    keytrack train experiment=default data.root=<PoseTrack18 folder> trainer.max_epochs=3

A command plug-in of the ``keytrack`` command line (the entry point ``train`` of the group
``keytrack.commands`` in setup.cfg): the library names no Lightning module, and this one names them
all. The config is read and checked once (:func:`keytrack.settings.training_settings`), and each part
gets its typed settings: the DataModule (:class:`keytrack.datamodules.PosePairDataModule`) and the
LightningModule (:class:`keytrack.lightning.MatchingModule`). A config with ``model.name =
track_transformer`` (``experiments/track.yaml``; beyond the paper) trains the track-level matcher
instead: its settings (:func:`keytrack.track_lists.track_training_settings`) go to
:class:`keytrack.datamodules.TrackListDataModule` and :class:`keytrack.lightning.TrackMatchingModule`, through
the same trainer, callbacks and run folder.

Everything a run writes goes to ``<output_dir>/<experiment>/<run_name>/``: ``config.yaml``,
``checkpoints/{last,best}.ckpt`` (``best.ckpt`` keeps its name whichever epoch it is from),
``csv/version_N/metrics.csv`` (one per attempt; see :func:`keytrack.runlogs.read_metrics`), ``wandb/``
(offline unless configured otherwise) and, when training ends, ``metrics.json`` (its checkpoint
paths relative to the run folder; :func:`keytrack.runlogs.read_run_metrics` resolves them). Running
the same command again resumes from ``last.ckpt`` (``logging.resume=auto``); ``logging.resume=never``
starts over.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import logging
import os
import sys
import time
import types
import typing
import warnings
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, WandbLogger

from keytrack.atomic import write_json, write_text
from keytrack.config import ConfigError, load_config, run_dir, to_yaml
from keytrack.data import load_dataset
from keytrack.datamodules import PosePairDataModule
from keytrack.datamodules.pose_pairs import check_split
from keytrack.datamodules.track_lists import TrackListDataModule
from keytrack.lightning.callbacks import BestAndLastCheckpoint, ConfigRecord, EpochLine, EpochSeed, Throughput
from keytrack.lightning.matching import MatchingModule
from keytrack.lightning.track_matching import TrackMatchingModule
from keytrack.models.track_transformer import is_track_config
from keytrack.poses import Dataset
from keytrack.runlogs import (
    CHECKPOINT_KEYS,
    check_resumable,
    finished_run,
    finite,
    metrics_at_best,
    progress_from_checkpoint,
    relative_to_run,
    resolve_run_paths,
    run_lock,
    usable_checkpoint,
)
from keytrack.settings import TrainingSettings, training_settings
from keytrack.track_lists import TrackTrainingSettings, track_training_settings

__all__ = ["train", "datamodule", "matching_module", "check_trainer_args", "add_arguments", "run"]

#: ``keytrack --help``'s line for this command (read from the source, without importing Lightning).
HELP = "train a matching network (omegaconf key=value overrides)"

log = logging.getLogger("keytrack.train")


def datamodule(
    settings: TrainingSettings | TrackTrainingSettings, dataset: Dataset | None = None
) -> PosePairDataModule | TrackListDataModule:
    """The run's DataModule, from its typed settings (``dataset``: skip reading ``settings.data``)."""
    s = settings
    if isinstance(s, TrackTrainingSettings):
        return TrackListDataModule(
            s.data, s.pairs, s.augment, s.loader, s.model.history, s.hide_true, s.seed, dataset=dataset
        )
    return PosePairDataModule(
        s.data, s.pairs, s.encoder, s.augment, s.loader, s.loss, s.seed, dataset=dataset
    )


def matching_module(
    settings: TrainingSettings | TrackTrainingSettings,
) -> MatchingModule | TrackMatchingModule:
    """The run's LightningModule, from its typed settings."""
    s = settings
    if isinstance(s, TrackTrainingSettings):
        return TrackMatchingModule(s.model, s.optim, s.validation)
    return MatchingModule(s.matcher, s.optim, s.loss, s.validation, init_from=s.init_from)


def _loggers(cfg: DictConfig, out: Path) -> list:
    # One csv/version_N/ per attempt: a resumed run adds a file instead of overwriting the last.
    loggers = [CSVLogger(save_dir=str(out), name="csv")]
    if cfg.logging.wandb:
        mode = os.environ.get("WANDB_MODE", cfg.logging.mode)
        loggers.append(
            WandbLogger(
                project=cfg.logging.project,
                name=f"{cfg.experiment}/{cfg.run_name}",
                id=f"{cfg.experiment}-{cfg.run_name}".replace("/", "-"),
                resume="allow",
                save_dir=str(out),
                mode=mode,
                config=dict(cfg),
            )
        )
        # Lightning passes anonymous=None, which W&B >= 0.19 warns about on every run; None is its default
        getattr(loggers[-1], "_wandb_init", {}).pop("anonymous", None)
    return loggers


def _trainer(cfg: DictConfig, out: Path, checkpoint: ModelCheckpoint, throughput: Throughput) -> pl.Trainer:
    """Lightning's Trainer with ``cfg.trainer`` as is, the run's loggers and callbacks."""
    callbacks = [
        checkpoint,
        throughput,
        EpochSeed(int(cfg.seed)),
        ConfigRecord(OmegaConf.to_container(cfg, resolve=True)),
    ]
    if (patience := cfg.validation.get("patience")) is not None:  # train until the monitor stops improving
        callbacks.append(EarlyStopping(monitor=cfg.validation.monitor, mode="max", patience=int(patience)))
    trainer_args = dict(cfg.trainer)
    if cfg.logging.wandb or not trainer_args.get("fast_dev_run"):
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    # A progress bar redraws in place: on a terminal only; a log file gets one line per epoch.
    trainer_args.setdefault("enable_progress_bar", sys.stderr.isatty())
    if not trainer_args["enable_progress_bar"]:
        callbacks.append(EpochLine(f"{cfg.experiment}/{cfg.run_name}: "))
    return pl.Trainer(
        default_root_dir=str(out), logger=_loggers(cfg, out), callbacks=callbacks, **trainer_args
    )


#: Trainer arguments keytrack train sets itself.
_OWN_TRAINER_ARGS = ("default_root_dir", "logger", "callbacks")

_SIMPLE = {int: "int", float: "float", bool: "bool", str: "str", type(None): "None"}


def _accepted(annotation) -> list | None:
    """The simple alternatives of a Trainer annotation (types among int, float, bool, str, None, or
    a ``Literal``'s values), or None when any alternative is something else (not checked)."""
    if annotation in _SIMPLE:
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return [("literal", v) for v in typing.get_args(annotation)]
    if origin in (typing.Union, types.UnionType):
        found = []
        for arg in typing.get_args(annotation):
            sub = _accepted(arg)
            if sub is None:
                return None
            found.extend(sub)
        return found
    return None


def _fits(value, kind) -> bool:
    if isinstance(kind, tuple):
        return type(value) is type(kind[1]) and value == kind[1]
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is type(None):
        return value is None
    return isinstance(value, kind)


#: The least value of the integer ``trainer.*`` keys Lightning would refuse only once the run started.
_TRAINER_MINIMA = {
    "max_epochs": -1,
    "min_epochs": 0,
    "max_steps": -1,
    "min_steps": 0,
    "check_val_every_n_epoch": 1,
    "log_every_n_steps": 1,
    "accumulate_grad_batches": 1,
    "num_sanity_val_steps": -1,
}


def check_trainer_args(cfg: DictConfig) -> None:
    """Refuse a ``trainer.*`` key that is no argument of ``pytorch_lightning.Trainer`` (a typo must
    not fail after the run's folder and W&B run exist), one this command sets itself, and a value
    whose type the argument's annotation rules out (where it is simple: int, float, bool, str,
    None, literals)."""
    signature = inspect.signature(pl.Trainer.__init__, eval_str=True).parameters
    params = {n: p.annotation for n, p in signature.items() if n != "self" and p.kind is not p.VAR_KEYWORD}
    any_key = any(p.kind is p.VAR_KEYWORD for p in signature.values())  # a Trainer wrapped to take any key
    valid = sorted(n for n in params if n not in _OWN_TRAINER_ARGS)
    for key, value in cfg.trainer.items():
        if key in _OWN_TRAINER_ARGS:
            raise ConfigError(f"trainer.{key}: set by keytrack train itself; it cannot be overridden")
        if key not in params and any_key:
            continue
        if key not in params:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean trainer.{close[0]}?)" if close else ""
            raise ConfigError(
                f"trainer.{key}: not an argument of pytorch_lightning.Trainer{hint}; valid trainer.* "
                f"keys: {', '.join(valid)}"
            )
        kinds = _accepted(params[key])
        if kinds and not any(_fits(value, k) for k in kinds):
            names = list(dict.fromkeys(repr(k[1]) if isinstance(k, tuple) else _SIMPLE[k] for k in kinds))
            raise ConfigError(
                f"trainer.{key}: expected {' or '.join(names)} (pytorch_lightning.Trainer's {key}), "
                f"got {value!r} ({type(value).__name__})"
            )
        low = _TRAINER_MINIMA.get(key)
        if low is not None and isinstance(value, int) and not isinstance(value, bool) and value < low:
            raise ConfigError(f"trainer.{key}: must be >= {low}, got {value}")


def _resume_from(cfg: DictConfig, out: Path) -> str | None:
    """``last.ckpt`` when the run resumes from it (refused when its saved config differs)."""
    last = out / "checkpoints" / "last.ckpt"
    if cfg.logging.resume != "auto" or not usable_checkpoint(last):
        return None
    check_resumable(cfg, out / "config.yaml")
    log.info("resuming from %s", last)
    return str(last)


def train(cfg: DictConfig, dataset: Dataset | None = None) -> dict:
    """Fit the configured matcher; returns (and writes to ``metrics.json``) the final numbers."""
    # every part's, checked before any file is written
    settings = track_training_settings(cfg) if is_track_config(cfg) else training_settings(cfg)
    check_trainer_args(cfg)
    if dataset is None:
        dataset = load_dataset(settings.data)
    check_split(len(dataset.videos), settings.data)
    pl.seed_everything(settings.seed, workers=True, verbose=False)
    out = run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out):
        resume = _resume_from(cfg, out)
        done = finished_run(cfg, out) if resume else None
        if done is not None:
            return {**done, "finished_before": True}
        write_text(out / "config.yaml", to_yaml(cfg))
        return _fit(cfg, settings, dataset, out, resume)


def _fit(
    cfg: DictConfig,
    settings: TrainingSettings | TrackTrainingSettings,
    dataset: Dataset,
    out: Path,
    resume: str | None,
) -> dict:
    data, module = datamodule(settings, dataset), matching_module(settings)
    monitor = settings.validation.monitor
    checkpoint = BestAndLastCheckpoint(
        dirpath=out / "checkpoints",
        filename="best",  # one stable name: checkpoints/best.ckpt, whichever epoch it is from
        auto_insert_metric_name=False,
        enable_version_counter=False,
        monitor=monitor,
        mode="max",
        save_top_k=1,
        save_last=True,
    )
    throughput = Throughput()
    trainer = _trainer(cfg, out, checkpoint, throughput)
    start = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=resume)
    seconds = round(time.perf_counter() - start, 2)
    if cfg.logging.wandb:  # the next training of this process (a spec's row, a sweep's run) gets its own run
        import wandb

        wandb.finish()
    epochs, step = trainer.current_epoch, trainer.global_step
    best_path = checkpoint.best_model_path or None
    best_score = float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None
    last = out / "checkpoints" / "last.ckpt"
    if data.train_set is None:  # ddp_spawn: only the spawned workers trained
        data.setup("fit")
        epochs, step, best_path, best_score = progress_from_checkpoint(last, best_path, best_score)
    at_best = metrics_at_best(out, best_path)
    # Under DDP every process measures its own share of the batches: the run's rate is their sum.
    pairs_per_s, world = throughput.pairs_per_second, int(trainer.world_size)
    result = {
        "experiment": cfg.experiment,
        "run_name": cfg.run_name,
        "run_dir": str(out),
        "epochs": epochs,
        "global_step": step,
        "resumed_from": resume,
        "seconds": seconds,
        "train_pairs_per_s": None if pairs_per_s is None else pairs_per_s * world,
        "batch_size": settings.loader.batch_size,
        "mean_batch_pairs": throughput.mean_batch_pairs,
        "world_size": world,
        "parameters": sum(p.numel() for p in module.model.parameters()),
        "train_pairs": len(data.train_set),
        "val_pairs": len(data.val_set),
        "best_checkpoint": best_path,
        "best_val_acc": at_best.get("val/acc", best_score if monitor == "val/acc" else None),
        "best_val_rank1": at_best.get("val/rank1", best_score if monitor == "val/rank1" else None),
        "monitor": monitor,
        "best_score": best_score,
        "metrics_at_best": at_best,
        "last_checkpoint": str(last) if last.is_file() else None,
        "metrics": {
            k: finite(v) for k, v in trainer.callback_metrics.items() if k.startswith(("val/", "train/"))
        },
        "global_zero": bool(trainer.is_global_zero),
    }
    # metrics.json names the checkpoints relative to the run folder (the folder can move); the result
    # returned names them as paths to open, as read_run_metrics does.
    saved = {k: relative_to_run(v, out) if k in CHECKPOINT_KEYS else v for k, v in result.items()}
    if trainer.is_global_zero:  # one metrics.json per run, however many processes
        write_json(out / "metrics.json", saved)
    return resolve_run_paths(saved, out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="experiment=<name> picks experiments/<name>.yaml; any other key=value "
        "overrides the config (e.g. data.root=DIR trainer.max_epochs=3)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the composed config and exit")


def quiet_libraries() -> None:
    """Keep the console to what a run says: Lightning's hardware lines and tips, W&B's banners and
    library deprecation notices about code that is not keytrack's are left out (warnings stay)."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("WANDB_SILENT", "true")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    quiet_libraries()
    cfg = load_config(args.overrides)
    check_trainer_args(cfg)
    if args.print_config:
        print(to_yaml(cfg), end="")
        return 0
    result = train(cfg)
    if not result.get("global_zero", True):  # DDP: the other processes stay quiet
        return 0
    if result.get("finished_before"):
        print(
            f"{cfg.experiment}/{cfg.run_name}: already trained ({result['epochs']} epochs, "
            f"trainer.max_epochs={cfg.trainer.get('max_epochs')}); nothing to do (a larger "
            f"trainer.max_epochs extends it); metrics in {result['run_dir']}/metrics.json"
        )
        return 0
    acc, rank1, pps = result["best_val_acc"], result["best_val_rank1"], result["train_pairs_per_s"]
    world = result["world_size"]
    processes = "" if world == 1 else f" ({world} processes)"
    print(
        f"{cfg.experiment}/{cfg.run_name}: best val/acc {acc if acc is None else f'{acc:.4f}'}, "
        f"val/rank1 {rank1 if rank1 is None else f'{rank1:.4f}'} "
        f"(checkpoint chosen by {result['monitor']}), "
        f"{result['train_pairs']} train pairs, "
        f"{'n/a' if pps is None else f'{pps:.0f}'} train pairs/s at batch {result['batch_size']}"
        f"{processes}; "
        f"run dir {result['run_dir']}"
    )
    if (warning := chance_warning(result)) is not None:
        print(f"keytrack train: warning: {warning}", file=sys.stderr)
    return 0


#: a pair classifier whose validation AUROC (or balanced accuracy) is at most this has learned ~nothing
CHANCE_ACCURACY = 0.55


def chance_warning(result: dict) -> str | None:
    """What to say when the best checkpoint's validation is at chance, else None: its ``val/auroc``
    (chance 0.5 whatever the share of matching pairs) where recorded, else its ``val/acc`` (0.5 on
    balanced pairs)."""
    auroc = (result.get("metrics_at_best") or {}).get("val/auroc")
    name, value = ("val/auroc", auroc) if auroc is not None else ("val/acc", result.get("best_val_acc"))
    if value is None or value > CHANCE_ACCURACY:
        return None
    return (
        f"best {name} {value:.3f} is at chance (0.5): this network has not learned to "
        f"match poses and will track badly; train longer (trainer.max_epochs, loader.samples_per_epoch; "
        f"{result.get('global_step')} steps ran) or with more data"
    )
