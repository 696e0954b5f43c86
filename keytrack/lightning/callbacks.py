"""Callbacks of ``keytrack train``: throughput, per-epoch reseeding, the run's config in every checkpoint."""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Mapping

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.data import _set_sampler_epoch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from keytrack.data import epoch_seed

__all__ = ["Throughput", "EpochSeed", "ConfigRecord", "EpochLine", "BestAndLastCheckpoint"]


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
        torch.manual_seed(epoch_seed(self.seed + 1, trainer.global_step))

    def on_train_epoch_start(self, trainer, module):
        s = epoch_seed(self.seed, trainer.current_epoch)
        torch.manual_seed(s)
        np.random.seed(s % 2**32)
        random.seed(s)
        train_set = getattr(getattr(trainer, "datamodule", None), "train_set", None)
        if hasattr(train_set, "set_epoch"):  # its augmentation generator
            train_set.set_epoch(trainer.current_epoch)
        # Lightning numbers the sampler's epochs by *processed* epochs, which a checkpoint saved at
        # the end of validation counts one short; the epoch being trained is what decides.
        loader = trainer.train_dataloader
        for dl in loader if isinstance(loader, (list, tuple)) else [loader]:
            if dl is not None:
                _set_sampler_epoch(dl, trainer.current_epoch)


class ConfigRecord(Callback):
    """Write the run's resolved experiment config into every checkpoint, as the hyperparameter
    ``cfg``: tracking rebuilds the matcher and its pair encoder from it with plain torch
    (:func:`keytrack.models.factory.load_matcher`), and the identity of the run is kept with its
    weights. The LightningModule itself holds only its typed arguments."""

    def __init__(self, cfg: Mapping[str, Any]):
        self.cfg = dict(cfg)

    def on_save_checkpoint(self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint.setdefault("hyper_parameters", {})["cfg"] = self.cfg


class EpochLine(Callback):
    """One line per epoch instead of a progress bar (a log file or a pipe: no TTY to redraw on): the
    epoch, its steps, seconds and the logged ``train/loss`` and ``val/*`` numbers, logged after
    ``prefix`` to ``keytrack.train`` (a plain object: ``ddp_spawn`` pickles the callbacks)."""

    def __init__(self, prefix: str = ""):
        self.prefix, self._t0 = prefix, 0.0

    def on_train_epoch_start(self, trainer, module):
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        if trainer.is_global_zero:
            logging.getLogger("keytrack.train").info("%s%s", self.prefix, self.line(trainer))

    def line(self, trainer) -> str:
        metrics = trainer.callback_metrics
        shown = [k for k in sorted(metrics) if k.startswith("val/") or k == "train/loss"]
        numbers = ", ".join(f"{k} {float(metrics[k]):.4f}" for k in shown)
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        return (
            f"epoch {trainer.current_epoch + 1}/{epochs}: step {trainer.global_step}, "
            f"{time.perf_counter() - self._t0:.0f} s" + (f"; {numbers}" if numbers else "")
        )


class BestAndLastCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint with ``last.ckpt`` written after *every* validation.

    Lightning 2.6 writes ``last.ckpt`` only when a top-k checkpoint was written in the same step, so
    with a monitor it would hold the best epoch, not the last one: a run killed after epochs without
    improvement would resume from its best epoch and redo the others, and ``last.ckpt`` would not hold
    the final weights. Where Lightning already wrote it (an improvement, older versions), nothing is
    written twice.
    """

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._save_last_too(trainer, at_epoch_end=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._save_last_too(trainer, at_epoch_end=False)

    def _save_last_too(self, trainer: pl.Trainer, at_epoch_end: bool) -> None:
        # the hook in which Lightning saves (the end of the training epoch when it validates every
        # epoch, else the end of validation); skipped where this step is already saved
        if (
            self.save_last
            and self._should_save_on_train_epoch_end(trainer) == at_epoch_end
            and not self._should_skip_saving_checkpoint(trainer)
        ):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    @property
    def state_key(self) -> str:
        # ModelCheckpoint's key: a run saved before this class resumes with its best score and path
        return "ModelCheckpoint" + super().state_key[len(type(self).__qualname__) :]
