"""What a training run leaves in its folder, read without Lightning.

A run's folder (:func:`keytrack.config.run_dir`, ``<output_dir>/<experiment>/<run_name>/``) holds
``config.yaml``, ``checkpoints/{last,best}.ckpt`` (runs trained before the best checkpoint had a
fixed name hold ``best-epoch=NN.ckpt``), ``csv/version_N/metrics.csv`` (one per attempt: a resumed
run adds a file) and, when training ends, ``metrics.json``, whose checkpoint paths are relative to
the run's folder (:func:`read_run_metrics` resolves them). The training command
(``keytrack train``) writes them; the learning curves, the sweep runner and the ablations read them
through here.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import re
import socket
import tempfile
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from keytrack.config import ConfigError, with_defaults
from keytrack.errors import InputError

__all__ = [
    "read_metrics",
    "metrics_at_best",
    "best_epoch",
    "BEST_CHECKPOINTS",
    "find_best_checkpoint",
    "CHECKPOINT_KEYS",
    "relative_to_run",
    "resolve_in_run",
    "resolve_run_paths",
    "read_run_metrics",
    "finite",
    "usable_checkpoint",
    "progress_from_checkpoint",
    "check_resumable",
    "RunLocked",
    "run_lock",
    "finished_run",
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


#: The names of a run's best checkpoint: ``best.ckpt``, and ``best-epoch=NN.ckpt`` of older runs.
BEST_CHECKPOINTS = ("best.ckpt", "best-*.ckpt")

#: The keys of ``metrics.json`` that are paths of checkpoints (relative to the run's folder).
CHECKPOINT_KEYS = ("best_checkpoint", "last_checkpoint")


def find_best_checkpoint(run: str | Path) -> list[Path]:
    """The best checkpoints in a run's ``checkpoints/`` folder: ``best.ckpt``, else older runs'
    ``best-epoch=NN.ckpt`` (normally one)."""
    folder = Path(run) / "checkpoints"
    for pattern in BEST_CHECKPOINTS:
        found = sorted(folder.glob(pattern))
        if found:
            return found
    return []


def relative_to_run(path: str | Path | None, out: str | Path) -> str | None:
    """``path`` relative to the run folder ``out`` when inside it (as ``metrics.json`` stores it)."""
    if path is None or str(path) == "":
        return None
    try:
        return Path(path).resolve().relative_to(Path(out).resolve()).as_posix()
    except ValueError:
        return str(path)


def resolve_in_run(path: str | Path | None, out: str | Path) -> str | None:
    """A path of ``metrics.json`` as a path to open: relative ones are relative to the run folder
    ``out``. Runs written before that named the best checkpoint by its absolute path (kept as it is)
    and the last one relative to the working folder of the training (kept when only it exists)."""
    if path is None or str(path) == "":
        return None
    path = Path(path)
    if path.is_absolute():
        return str(path)
    inside = Path(out) / path
    return str(path) if not inside.exists() and path.exists() else str(inside)


def read_run_metrics(out: str | Path) -> dict:
    """A run's ``metrics.json`` with its checkpoint paths resolved (:func:`resolve_in_run`)."""
    saved = json.loads((Path(out) / "metrics.json").read_text(encoding="utf-8"))
    return resolve_run_paths(saved, out)


def resolve_run_paths(saved: dict, out: str | Path) -> dict:
    """``saved`` (a ``metrics.json``) with its checkpoint paths resolved against the run folder."""
    return {**saved, **{k: resolve_in_run(saved.get(k), out) for k in CHECKPOINT_KEYS if k in saved}}


def best_epoch(best_path: str | Path | None) -> int | None:
    """The epoch of the best checkpoint: its own ``epoch`` field, else (a file that cannot be read)
    the ``epoch=NN`` in an older run's file name (``best-epoch=NN.ckpt``); None when unknown."""
    if not best_path:
        return None
    path = Path(best_path)
    if path.is_file():
        import torch

        try:
            epoch = torch.load(path, map_location="cpu", weights_only=False, mmap=True).get("epoch")
        except Exception:  # noqa: BLE001 - an unreadable file: fall back to its name
            epoch = None
        if isinstance(epoch, int):
            return epoch
    match = re.search(r"epoch=(\d+)", path.name)
    return int(match.group(1)) if match else None


def metrics_at_best(out: str | Path, best_path: str | None) -> dict[str, float]:
    """The validation metrics (``val/*``) logged at the epoch of the best checkpoint
    (:func:`best_epoch`), read from the run's CSV logs; empty when unknown."""
    epoch = best_epoch(best_path)
    if epoch is None:
        return {}
    found: dict[str, float] = {}
    for row in read_metrics(out):
        if row.get("epoch") == str(epoch):
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


#: The file in a run's folder that says which process trains it.
LOCK_NAME = "train.lock"


class RunLocked(InputError):
    """Another process is training the run in this folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _read_lock(lock: Path) -> dict | None:
    try:
        holder = json.loads(lock.read_text())
        return holder if isinstance(holder, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def run_lock(out: Path):
    """Hold ``<out>/train.lock`` (the pid and host of this process) while a run trains: a second
    training of the same folder is refused (:class:`RunLocked`) while the holder lives. A lock whose
    pid no longer runs on this host (a killed training) is stale and taken over. Every DDP rank
    runs this command (Lightning starts the others as children running the same command) and trains
    under rank zero's lock (only rank zero takes it)."""
    if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0":
        yield
        return
    lock, host, pid = Path(out) / LOCK_NAME, socket.gethostname(), os.getpid()
    fd, tmp = tempfile.mkstemp(prefix=".train.lock.", dir=out)
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": pid, "host": host, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}, f)
    owned = False
    try:
        for _ in range(3):
            try:
                os.link(tmp, lock)  # atomic: fails when a lock is there
                owned = True
                break
            except FileExistsError:
                pass
            holder = _read_lock(lock)
            if holder is None:  # released meanwhile
                continue
            other, where = holder.get("pid"), holder.get("host")
            if where == host and isinstance(other, int) and not _alive(other):
                log.warning("%s: taking over the stale lock of pid %s (not running)", lock, other)
                os.replace(tmp, lock)
                owned = True
                break
            if not holder:
                raise RunLocked(f"{lock}: unreadable lock file; delete it if no training runs in {out}")
            raise RunLocked(
                f"{out}: another keytrack train (pid {other} on {where}, since "
                f"{holder.get('started', '?')}) is training this run; wait for it, or set "
                f"run_name=<new name> for another run (a stale lock is taken over when its pid no "
                f"longer runs on {where}; delete {lock} if it is gone)"
            )
        else:
            raise RunLocked(f"{lock}: could not take the lock; try again")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    try:
        yield
    finally:
        if owned and (_read_lock(lock) or {}).get("pid") == pid:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()


def finished_run(cfg: DictConfig, out: Path) -> dict | None:
    """The run's ``metrics.json`` when the run in ``out`` already trained as far as ``cfg.trainer``
    asks (``max_epochs``, or ``max_steps``), else None. The caller has checked that the saved config
    is this one (:func:`check_resumable`)."""
    path = Path(out) / "metrics.json"
    if not path.is_file() or not (Path(out) / "checkpoints" / "last.ckpt").is_file():
        return None
    try:
        saved = resolve_run_paths(json.loads(path.read_text()), out)
    except (OSError, ValueError):
        return None
    trainer = cfg.trainer
    if trainer.get("fast_dev_run"):
        return None
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps")
    epochs, steps = saved.get("epochs"), saved.get("global_step")
    if isinstance(max_steps, int) and max_steps > 0 and isinstance(steps, int) and steps >= max_steps:
        return saved
    if isinstance(max_epochs, int) and max_epochs >= 0 and isinstance(epochs, int) and epochs >= max_epochs:
        return saved
    return None
