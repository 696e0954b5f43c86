"""What a training run leaves in its folder, read without Lightning.

A run's folder (:func:`keytrack.config.run_dir`, ``<output_dir>/<experiment>/<run_name>/``) holds
``config.yaml``, ``checkpoints/{last,best-*}.ckpt``, ``csv/version_N/metrics.csv`` (one per attempt:
a resumed run adds a file) and, when training ends, ``metrics.json``. The training command
(``keytrack train``) writes them; the learning curves, the sweep runner and the ablations read them
through here.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from keytrack.config import ConfigError, with_defaults

__all__ = [
    "read_metrics",
    "metrics_at_best",
    "finite",
    "usable_checkpoint",
    "progress_from_checkpoint",
    "check_resumable",
]

log = logging.getLogger("keytrack.runlogs")


def finite(value) -> float | None:
    """``value`` as a float, or None when it is not finite."""
    value = float(value)
    return value if math.isfinite(value) else None


def read_metrics(out: str | Path) -> list[dict[str, str]]:
    """Every row the CSV logger wrote for a run, across resumed attempts, in order."""
    files = sorted(
        Path(out).glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1])
    )
    rows: list[dict[str, str]] = []
    for path in files:
        with open(path, newline="") as f:
            rows.extend(csv.DictReader(f))
    return rows


def metrics_at_best(out: str | Path, best_path: str | None) -> dict[str, float]:
    """The validation metrics (``val/*``) logged at the epoch of the best checkpoint
    (``best-epoch=NN.ckpt``), read from the run's CSV logs; empty when unknown."""
    match = re.search(r"epoch=(\d+)", Path(best_path).name) if best_path else None
    if not match:
        return {}
    epoch = str(int(match.group(1)))
    found: dict[str, float] = {}
    for row in read_metrics(out):
        if row.get("epoch") == epoch:
            for k, v in row.items():
                if k.startswith("val/") and v not in (None, ""):
                    found[k] = finite(v)
    return found


def usable_checkpoint(last: Path) -> bool:
    """Whether ``last.ckpt`` loads. Checkpoints are written to a temporary file and moved into place
    (Lightning's fsspec transaction), so a killed run leaves a whole file or none; should one still
    be unreadable, it is moved aside (``last.ckpt.unreadable``) and never resumed from."""
    import torch

    if not last.is_file():
        return False
    try:
        torch.load(last, map_location="cpu", weights_only=False, mmap=True)
        return True
    except Exception as err:  # noqa: BLE001 - any failure to load means: do not resume from it
        aside = last.with_name(last.name + ".unreadable")
        os.replace(last, aside)
        log.warning(
            "%s cannot be read (%s: %s); moved to %s, starting the run over",
            last,
            type(err).__name__,
            err,
            aside.name,
        )
        return False


def progress_from_checkpoint(last: Path, best_path: str | None, best_score: float | None):
    """``(epoch, global_step, best path, best score)`` from ``last.ckpt``: with ``ddp_spawn`` the
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


def check_resumable(cfg: DictConfig, saved_path: Path) -> None:
    """Refuse to resume a run saved with another configuration (:func:`keytrack.identity.changed_keys`:
    every key but where it writes and how it logs, and ``trainer.max_epochs``, which extends it)."""
    from keytrack.identity import changed_keys

    if not saved_path.is_file():
        return
    # Keys added to experiments/base.yaml since the run was saved compare at their defaults.
    saved = with_defaults(OmegaConf.load(saved_path), source=saved_path)
    changed = changed_keys(saved, cfg, resume=True)
    if changed:
        shown = ", ".join(
            f"{k} ({OmegaConf.select(saved, k)!r} -> {OmegaConf.select(cfg, k)!r})" for k in changed[:8]
        )
        shown += f" and {len(changed) - 8} more" if len(changed) > 8 else ""
        raise ConfigError(
            f"{saved_path.parent}: the run there was trained with another config: {shown}; "
            f"set run_name=<new name> for a new run, or logging.resume=never to start this one over"
        )
