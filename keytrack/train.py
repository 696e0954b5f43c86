"""``keytrack train``: train a matching network from an experiment config (§3.2, A.4).

    keytrack train experiment=default data.root=<PoseTrack18 folder> trainer.max_epochs=3

Everything a run writes goes to ``<output_dir>/<experiment>/<run_name>/``: ``config.yaml``,
``checkpoints/{last,best-*}.ckpt``, ``csv/version_N/metrics.csv`` (one per attempt; see
:func:`read_metrics`), ``wandb/`` (offline unless configured
otherwise) and, when training ends, ``metrics.json``. Running the same command again resumes from
``last.ckpt`` (``logging.resume=auto``); ``logging.resume=never`` starts over.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import time
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, WandbLogger

from keytrack.atomic import write_json, write_text
from keytrack.config import ConfigError, load_config, run_dir, to_yaml, with_defaults
from keytrack.poses import Dataset

log = logging.getLogger("keytrack.train")


class Throughput(Callback):
    """Training pairs per second, measured over training steps after the first few (warm-up)."""

    def __init__(self, skip: int = 5):
        self.skip, self.pairs, self.seconds, self._seen, self._t0 = skip, 0, 0.0, 0, 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self._seen += 1
        if self._seen > self.skip:
            self.seconds += time.perf_counter() - self._t0
            self.pairs += len(batch["label"])

    @property
    def pairs_per_second(self) -> float | None:
        return self.pairs / self.seconds if self.seconds > 0 else None

    @property
    def mean_batch_pairs(self) -> float | None:
        """Pairs per measured batch (a listwise batch of candidate lists holds a varying number)."""
        measured = self._seen - self.skip
        return self.pairs / measured if measured > 0 else None


class EpochSeed(Callback):
    """Reseed torch, numpy and random from ``(seed, epoch)`` at the start of every training epoch,
    and torch again from ``(seed, step)`` before every training step.

    Dropout, augmentation and any other draw of epoch ``k`` then depend on the run's seed and ``k``
    alone, not on what the process did before (initialising a model that a checkpoint then
    overwrites, a sanity check): a run killed in epoch ``k`` and resumed from the checkpoint of
    epoch ``k - 1`` replays epoch ``k`` exactly, and ends with the weights and metrics of a run that
    was never interrupted (with ``trainer.deterministic=true``). The sampler's order is seeded the
    same way (:class:`keytrack.data.EpochRandomSampler`).
    """

    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        # Dropout of step n from (seed, n): Lightning creates the epoch's data iterator (a draw of
        # the global generator) at different moments in a fresh and a resumed run.
        import torch

        from keytrack.data import epoch_seed

        torch.manual_seed(epoch_seed(self.seed + 1, trainer.global_step))

    def on_train_epoch_start(self, trainer, module):
        import random

        import numpy as np
        import torch

        from keytrack.data import epoch_seed

        s = epoch_seed(self.seed, trainer.current_epoch)
        torch.manual_seed(s)
        np.random.seed(s % 2**32)
        random.seed(s)
        train_set = getattr(getattr(trainer, "datamodule", None), "train_set", None)
        if hasattr(train_set, "set_epoch"):                  # its augmentation generator
            train_set.set_epoch(trainer.current_epoch)
        # Lightning numbers the sampler's epochs by *processed* epochs, which a checkpoint saved at
        # the end of validation counts one short; the epoch being trained is what decides.
        from lightning_fabric.utilities.data import _set_sampler_epoch

        loader = trainer.train_dataloader
        for dl in (loader if isinstance(loader, (list, tuple)) else [loader]):
            if dl is not None:
                _set_sampler_epoch(dl, trainer.current_epoch)


def _usable_checkpoint(last: Path) -> bool:
    """Whether ``last.ckpt`` loads. Checkpoints are written to a temporary file and moved into place
    (Lightning's fsspec transaction), so a killed run leaves a whole file or none; should one still
    be unreadable, it is moved aside (``last.ckpt.unreadable``) and never resumed from."""
    import torch

    if not last.is_file():
        return False
    try:
        torch.load(last, map_location="cpu", weights_only=False, mmap=True)
        return True
    except Exception as err:     # noqa: BLE001 - any failure to load means: do not resume from it
        aside = last.with_name(last.name + ".unreadable")
        os.replace(last, aside)
        log.warning("%s cannot be read (%s: %s); moved to %s, starting the run over", last,
                    type(err).__name__, err, aside.name)
        return False


def _progress_from_checkpoint(last: Path, best_path: str | None, best_score: float | None):
    """``(epoch, global_step, best path, best val/acc)`` from ``last.ckpt``: with ``ddp_spawn`` the
    training ran in spawned workers, and the main process's trainer never saw it."""
    import torch

    if not last.is_file():
        return 0, 0, best_path, best_score
    state = torch.load(last, map_location="cpu", weights_only=False)
    for key, cb in state.get("callbacks", {}).items():
        if key.startswith("ModelCheckpoint") and cb.get("best_model_score") is not None:
            best_path, best_score = cb.get("best_model_path") or best_path, float(cb["best_model_score"])
    # ``last.ckpt`` of a finished fit is saved at the end of its final epoch (index ``epoch``).
    return int(state.get("epoch", -1)) + 1, int(state.get("global_step", 0)), best_path, best_score


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def read_metrics(out: str | Path) -> list[dict[str, str]]:
    """Every row the CSV logger wrote for a run, across resumed attempts, in order."""
    import csv

    files = sorted(Path(out).glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    rows: list[dict[str, str]] = []
    for path in files:
        with open(path, newline="") as f:
            rows.extend(csv.DictReader(f))
    return rows


def metrics_at_best(out: str | Path, best_path: str | None) -> dict[str, float]:
    """The validation metrics (``val/*``) logged at the epoch of the best checkpoint
    (``best-epoch=NN.ckpt``), read from the run's CSV logs; empty when unknown."""
    import re

    match = re.search(r"epoch=(\d+)", Path(best_path).name) if best_path else None
    if not match:
        return {}
    epoch = str(int(match.group(1)))
    found: dict[str, float] = {}
    for row in read_metrics(out):
        if row.get("epoch") == epoch:
            for k, v in row.items():
                if k.startswith("val/") and v not in (None, ""):
                    found[k] = _finite(v)
    return found


def _loggers(cfg: DictConfig, out: Path) -> list:
    # One csv/version_N/ per attempt: a resumed run adds a file instead of overwriting the last.
    loggers = [CSVLogger(save_dir=str(out), name="csv")]
    if cfg.logging.wandb:
        mode = os.environ.get("WANDB_MODE", cfg.logging.mode)
        loggers.append(WandbLogger(project=cfg.logging.project, name=f"{cfg.experiment}/{cfg.run_name}",
                                   id=f"{cfg.experiment}-{cfg.run_name}".replace("/", "-"), resume="allow",
                                   save_dir=str(out), mode=mode, config=dict(cfg)))
    return loggers


def _check_resumable(cfg: DictConfig, saved_path: Path) -> None:
    """Refuse to resume a run saved with another configuration (:func:`keytrack.identity.changed_keys`:
    every key but where it writes and how it logs, and ``trainer.max_epochs``, which extends it)."""
    from keytrack.identity import changed_keys

    if not saved_path.is_file():
        return
    # Keys added to experiments/base.yaml since the run was saved compare at their defaults.
    saved = with_defaults(OmegaConf.load(saved_path))
    changed = changed_keys(saved, cfg, resume=True)
    if changed:
        shown = ", ".join(f"{k} ({OmegaConf.select(saved, k)!r} -> {OmegaConf.select(cfg, k)!r})"
                          for k in changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
        raise ConfigError(
            f"{saved_path.parent}: the run there was trained with another config: {shown}; "
            f"set run_name=<new name> for a new run, or logging.resume=never to start this one over")


def train(cfg: DictConfig, dataset: Dataset | None = None) -> dict:
    """Fit the configured matcher; returns (and writes to ``metrics.json``) the final numbers."""
    from datamodules import PosePairDataModule
    from lightning_modules import MatchingModule

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    out = run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "checkpoints" / "last.ckpt"
    resume = str(last) if cfg.logging.resume == "auto" and _usable_checkpoint(last) else None
    if resume:
        _check_resumable(cfg, out / "config.yaml")
        log.info("resuming from %s", resume)
    write_text(out / "config.yaml", to_yaml(cfg))

    datamodule = PosePairDataModule(cfg, dataset)
    module = MatchingModule(cfg)
    checkpoint = ModelCheckpoint(dirpath=out / "checkpoints", filename="best-{epoch:02d}",
                                 monitor=str(cfg.validation.monitor), mode="max", save_top_k=1, save_last=True)
    throughput = Throughput()
    callbacks = [checkpoint, throughput, EpochSeed(int(cfg.seed))]
    trainer_args = dict(cfg.trainer)
    if cfg.logging.wandb or not trainer_args.get("fast_dev_run"):
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    trainer = pl.Trainer(default_root_dir=str(out), logger=_loggers(cfg, out), callbacks=callbacks,
                         **trainer_args)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    metrics = {k: _finite(v) for k, v in trainer.callback_metrics.items() if k.startswith(("val/", "train/"))}
    epochs, step = trainer.current_epoch, trainer.global_step
    best_path = checkpoint.best_model_path or None
    best_score = float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None
    if datamodule.train_set is None:                 # ddp_spawn: only the spawned workers trained
        datamodule.setup("fit")
        epochs, step, best_path, best_score = _progress_from_checkpoint(last, best_path, best_score)
    monitor = str(cfg.validation.monitor)
    at_best = metrics_at_best(out, best_path)
    # Under DDP every process measures its own share of the batches: the run's rate is their sum.
    pairs_per_s = throughput.pairs_per_second
    world = int(trainer.world_size)
    result = {
        "experiment": cfg.experiment, "run_name": cfg.run_name, "run_dir": str(out),
        "epochs": epochs, "global_step": step,
        "resumed_from": resume, "seconds": round(time.perf_counter() - start, 2),
        "train_pairs_per_s": None if pairs_per_s is None else pairs_per_s * world,
        "batch_size": int(cfg.loader.batch_size), "mean_batch_pairs": throughput.mean_batch_pairs,
        "world_size": world,
        "parameters": sum(p.numel() for p in module.model.parameters()),
        "train_pairs": len(datamodule.train_set), "val_pairs": len(datamodule.val_set),
        "best_checkpoint": best_path,
        "best_val_acc": at_best.get("val/acc", best_score if monitor == "val/acc" else None),
        "best_val_rank1": at_best.get("val/rank1", best_score if monitor == "val/rank1" else None),
        "monitor": monitor, "best_score": best_score, "metrics_at_best": at_best,
        "last_checkpoint": str(last) if last.is_file() else None,
        "metrics": metrics,
        "global_zero": bool(trainer.is_global_zero),
    }
    if trainer.is_global_zero:                       # one metrics.json per run, however many processes
        write_json(out / "metrics.json", result)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="experiment=<name> picks experiments/<name>.yaml; any other key=value "
                             "overrides the config (e.g. data.root=DIR trainer.max_epochs=3)")
    parser.add_argument("--print-config", action="store_true", help="print the composed config and exit")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    cfg = load_config(args.overrides)
    if args.print_config:
        print(to_yaml(cfg), end="")
        return 0
    result = train(cfg)
    if not result.get("global_zero", True):          # DDP: the other processes stay quiet
        return 0
    acc = result["best_val_acc"]
    rank1 = result["best_val_rank1"]
    pps = result["train_pairs_per_s"]
    world = result["world_size"]
    processes = "" if world == 1 else f" ({world} processes)"
    print(f"{cfg.experiment}/{cfg.run_name}: best val/acc {acc if acc is None else f'{acc:.4f}'}, "
          f"val/rank1 {rank1 if rank1 is None else f'{rank1:.4f}'} (checkpoint chosen by {result['monitor']}), "
          f"{result['train_pairs']} train pairs, "
          f"{'n/a' if pps is None else f'{pps:.0f}'} train pairs/s at batch {result['batch_size']}"
          f"{processes}; "
          f"run dir {result['run_dir']}")
    return 0
