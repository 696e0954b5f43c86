"""What every ablation shares: data profiles, a cache of runs, result tables, training reuse.

An ablation (one module of ``ablations/``) reproduces one table or figure of the paper. It is a
list of *runs* (one training, one tracking + evaluation cell, one point of a sweep), each named by
a key, whose results are gathered into one table with the paper's values beside ours:

* :class:`Profile`: where the data comes from. ``quick`` is the embedded synthetic default (the
  training set of ``keytrack train`` without ``data.root``, and a disjoint synthetic test set);
  ``full`` is a PoseTrack18-layout folder (``DATA=...``): its ``train`` split for training and
  tuning, its ``test`` split (``val`` when there is no test split) for evaluation (§4.1).
* :class:`RunCache`: each run's result is a JSON file ``<results>/runs/<key>.json`` (written
  atomically). Running an ablation again reuses every finished run and does only the missing
  ones; a run that raises is recorded with its error (type and message), shown as failed in the
  table, and does not stop the others.
* tables: :mod:`keytrack.tables` (the project's one table writer), re-exported here;
* :func:`train_or_reuse`: a matching network trained with :func:`keytrack.train.train` from an
  experiment config and overrides, or the finished run of the same configuration.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from keytrack.atomic import write_json
from keytrack.config import run_dir
from keytrack.io import default_eval_split
from keytrack.poses import Dataset
from keytrack.tables import (Column, Interval, MeanStd, csv_table, format_mean_std, format_value, markdown_table,  # noqa: F401
                             mean_std, write_table)

log = logging.getLogger("ablations")

__all__ = [
    "Profile", "default_eval_split", "display_path", "dataset_fingerprint", "file_digest",
    "RunRecord", "RunCache", "json_safe",
    "MeanStd", "mean_std", "format_mean_std", "Column", "format_value", "markdown_table", "csv_table",
    "write_table",
    "TrainedModel", "train_or_reuse", "find_finished_run",
]


# -- profiles ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Profile:
    """Where an ablation's data comes from.

    ``quick`` (``data_root is None``): training on the embedded synthetic default (what
    ``keytrack train`` uses without ``data.root``; its ``data.synthetic`` config picks the videos),
    evaluation on ``synthetic_eval_videos`` synthetic videos numbered from
    ``synthetic_eval_first_index``, disjoint from the training videos. Minutes on a laptop CPU.

    ``full``: ``data_root`` is a PoseTrack18-layout folder; ``train_split`` trains (and tunes
    baselines), ``eval_split`` evaluates (default: ``test``, else ``val``).
    """

    data_root: Path | None = None
    train_split: str = "train"
    eval_split: str | None = None
    synthetic_eval_videos: int = 20
    synthetic_eval_seed: int = 0
    synthetic_eval_first_index: int = 1000

    @classmethod
    def from_data(cls, data: str | Path | None, eval_split: str | None = None, **kwargs) -> "Profile":
        """The ``full`` profile of ``data`` (``eval_split`` found when not given), or ``quick``."""
        if data is None:
            return cls(None, **kwargs)
        root = Path(data).resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"{data}: no such data folder")
        return cls(root, eval_split=eval_split or default_eval_split(root), **kwargs)

    @property
    def name(self) -> str:
        return "quick" if self.data_root is None else "full"

    @property
    def tag(self) -> str:
        """``synthetic`` or ``<data folder>-<eval split>``, a name for the results of this profile."""
        return "synthetic" if self.data_root is None else f"{self.data_root.name}-{self.eval_split}"

    def results_dir(self, ablation: str, root: str | Path = "results") -> Path:
        """``results/<ablation>/`` for ``quick``, ``results/<ablation>/<tag>/`` for ``full``."""
        base = Path(root) / ablation
        return base if self.data_root is None else base / self.tag

    def train_overrides(self) -> list[str]:
        """``key=value`` overrides that point a training config at this profile's training data."""
        if self.data_root is None:
            return []
        return [f"data.root={self.data_root}", f"data.split={self.train_split}"]

    def load_train(self, synthetic_videos: int = 40, synthetic_seed: int = 0) -> Dataset:
        """Ground truth of the training split (all of it: training and validation videos)."""
        if self.data_root is None:
            from keytrack.synth import default_dataset
            return default_dataset(num_videos=int(synthetic_videos), seed=int(synthetic_seed))
        from keytrack.io import read_dataset
        return read_dataset(self.data_root, split=self.train_split, keep_empty_poses=True)

    def load_eval(self) -> Dataset:
        """Ground truth of the evaluation split, read as ``keytrack evaluate`` reads it."""
        if self.data_root is None:
            from keytrack.synth import generate_dataset
            return generate_dataset(self.synthetic_eval_videos, seed=self.synthetic_eval_seed,
                                    first_index=self.synthetic_eval_first_index)
        from keytrack.io import read_dataset
        return read_dataset(self.data_root, split=self.eval_split, keep_empty_poses=True)

    def describe(self, split: str) -> str:
        """Human-readable name of a split (``"train"`` or ``"eval"``) of this profile."""
        if self.data_root is None:
            if split == "train":
                return "synthetic default (keytrack.synth.default_dataset)"
            return (f"synthetic test set: generate_dataset({self.synthetic_eval_videos}, "
                    f"seed={self.synthetic_eval_seed}, first_index={self.synthetic_eval_first_index})")
        name = self.train_split if split == "train" else self.eval_split
        return f"{display_path(self.data_root)} [{name}]"


def display_path(path: str | Path) -> str:
    """``path`` relative to the working directory when that is shorter (for notes under tables)."""
    path = Path(path)
    try:
        rel = os.path.relpath(path.resolve())
    except ValueError:           # another drive
        return str(path)
    return rel if len(rel) < len(str(path.resolve())) else str(path.resolve())


def dataset_fingerprint(dataset: Dataset) -> str:
    """16 hex digits that change whenever the videos, frames, poses or track ids change."""
    h = hashlib.sha256()
    for video in dataset.videos:
        h.update(f"{video.name}|{video.width}|{video.height}|{len(video.frames)}".encode())
        if video.frames:
            h.update(np.array([f.index for f in video.frames], np.int64).tobytes())
            h.update(np.array([f.num_poses for f in video.frames], np.int64).tobytes())
    t = dataset.table()
    for array in (t.keypoints, t.track_ids, t.boxes):
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    """16 hex digits of the SHA-256 of a file (names a checkpoint in run parameters)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


# -- run cache ----------------------------------------------------------------------------------------

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays as Python values and NaN/inf as ``None`` (JSON has no NaN)."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


@dataclass
class RunRecord:
    """One run's stored outcome: ``status`` is ``"ok"`` (``result`` holds its numbers) or
    ``"failed"`` (``error`` holds ``type``, ``message`` and ``traceback``)."""

    key: str
    status: str
    params: dict
    result: dict | None = None
    error: dict | None = None
    seconds: float = 0.0
    finished_at: str = ""
    reused: bool = field(default=False, compare=False)   # read from the cache (not stored)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failure(self) -> str | None:
        """``"<ErrorType>: <message>"`` for a failed run, else None."""
        if self.ok or not self.error:
            return None
        return f"{self.error.get('type', 'Error')}: {self.error.get('message', '')}"

    def to_dict(self) -> dict:
        return {"key": self.key, "status": self.status, "params": self.params, "result": self.result,
                "error": self.error, "seconds": self.seconds, "finished_at": self.finished_at}


class RunCache:
    """Results of an ablation's runs, one JSON file per run: ``<directory>/<key>.json``.

    :meth:`run` returns the stored record when the run finished before with the same parameters,
    and otherwise calls the function, stores what it returns (a JSON-able dict) or the exception
    it raised, and returns that. Failed runs are run again next time (``retry_failed``); a run
    whose stored parameters differ from the requested ones is stale and is run again.

    Args:
        directory: where the ``<key>.json`` files live (an ablation uses ``results/<name>/runs``).
        retry_failed: run a recorded failure again instead of returning it.
    """

    def __init__(self, directory: str | Path, retry_failed: bool = True):
        self.directory = Path(directory)
        self.retry_failed = bool(retry_failed)
        self.computed = 0        # runs executed by this object (not read from the cache)
        self.reused = 0

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"run key {key!r}: use letters, digits and . _ = + - only "
                             "(it names the file <key>.json)")
        return self.directory / f"{key}.json"

    def load(self, key: str) -> RunRecord | None:
        """The stored record of ``key``, or None when there is none (or it is unreadable)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return RunRecord(key=data["key"], status=data["status"], params=data.get("params") or {},
                             result=data.get("result"), error=data.get("error"),
                             seconds=float(data.get("seconds") or 0.0),
                             finished_at=data.get("finished_at", ""),
                             reused=True)
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("%s: unreadable run record (%s: %s); running it again", path, type(err).__name__, err)
            return None

    def run(self, key: str, fn: Callable[[], Mapping], params: Mapping | None = None) -> RunRecord:
        """The record of run ``key``: reused when it finished with these ``params``, else computed."""
        params = json_safe(dict(params or {}))
        stored = self.load(key)
        if stored is not None:
            if stored.params != params:
                log.info("run %s: parameters changed since it was stored; running it again", key)
            elif stored.ok or not self.retry_failed:
                self.reused += 1
                log.info("run %s: reused (%s)", key, stored.status)
                return stored
            else:
                log.info("run %s: failed last time (%s); running it again", key, stored.failure)
        start = time.perf_counter()
        try:
            result = fn()
            if not isinstance(result, Mapping):
                raise TypeError(f"run {key}: the run function returned {type(result).__name__}, "
                                "expected a dict of results")
            record = RunRecord(key, "ok", params, result=json_safe(dict(result)))
            json.dumps(record.result, allow_nan=False)       # must be storable
        except Exception as err:    # noqa: BLE001 - a failed run is recorded and shown, not fatal
            record = RunRecord(key, "failed", params, error={
                "type": type(err).__name__, "message": str(err),
                "traceback": traceback.format_exc(limit=20)})
            log.warning("run %s: FAILED (%s: %s)", key, type(err).__name__, err)
        record.seconds = round(time.perf_counter() - start, 3)
        record.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.computed += 1
        write_json(self.path(key), record.to_dict())
        if record.ok:
            log.info("run %s: done in %.1f s", key, record.seconds)
        return record


# -- training budgets ------------------------------------------------------------------------------

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

    from keytrack.config import EXPERIMENTS_DIR

    path = Path(EXPERIMENTS_DIR) / f"{name}.yaml"
    budget = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if budget.pop("extends", None):
        raise ValueError(f"{path}: a training budget file must not use 'extends' "
                         "(its keys are applied as overrides)")
    budget.pop("experiment", None)
    return config_dotlist(budget)


def opt(default: Any = None, *flags: str, **argparse_kw: Any) -> Any:
    """A field of an options dataclass that is also its command-line option, spelled once: ``flags``
    (default ``--<name>``, underscores as dashes) and ``argparse_kw`` as ``add_argument`` takes them;
    the field's name is the option's ``dest`` and its default the option's (tuples as lists).
    ``{ablation}`` in the help is the ablation's name (:func:`add_options`)."""
    return field(default=default, metadata={"flags": flags, "argparse": argparse_kw})


def add_options(parser, cls, ablation: str = "", *, skip: Sequence[str] = (),
                only: Sequence[str] | None = None) -> None:
    """Every :func:`opt` field of the dataclass ``cls`` (those of ``only``, but ``skip``) as an option
    of ``parser``."""
    for f in dataclasses.fields(cls):
        if "argparse" not in f.metadata or f.name in skip or (only is not None and f.name not in only):
            continue
        kw = dict(f.metadata["argparse"])
        if "help" in kw:
            kw["help"] = kw["help"].replace("{ablation}", ablation)
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        parser.add_argument(*(f.metadata["flags"] or [f"--{f.name.replace('_', '-')}"]), dest=f.name,
                            default=default, **kw)


@dataclass
class RunOptions:
    """The options every ablation that trains or tracks shares; each ablation's options extend them
    (:func:`add_options` makes them command-line options)."""

    data: str | None = opt(help="PoseTrack18-layout folder (train split + test, or val) instead of the synthetic "
                                "default")
    eval_split: str | None = opt(help="evaluation split under --data (default: test, else val)")
    out: str | None = opt(help="results folder (default: results/{ablation}, with --data "
                               "results/{ablation}/<data>-<split>)")
    synthetic_test_videos: int | None = opt(20, type=int, help="videos of the synthetic test set without --data "
                                                               "(default: %(default)s)")
    device: str = opt("cpu", help="torch device of the matching network")
    batch_size: int = opt(16384, type=int, help="most pose pairs per network forward")
    threads: int | None = opt(type=int, help="torch CPU threads (default: torch's choice; 1 is fastest on a CPU "
                                             "shared with other jobs)")
    retry_failed: bool = opt(True, "--no-retry-failed", action="store_false",
                             help="keep recorded failures instead of rerunning them")
    wait_for_training: bool = opt(True, "--no-wait", action="store_false",
                                  help="do not wait for a training of the same configuration running in another "
                                       "process")

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.synthetic_test_videos is not None and self.synthetic_test_videos < 1:
            raise ValueError(f"synthetic_test_videos must be >= 1, got {self.synthetic_test_videos}")


def options_from(cls, args, **given):
    """An options dataclass ``cls`` from parsed arguments: each field from the argument of the same
    name (lists as tuples), ``given`` as they are; fields without an argument keep their defaults."""
    values = dict(given)
    for f in dataclasses.fields(cls):
        if f.name not in values and hasattr(args, f.name):
            v = getattr(args, f.name)
            values[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**values)


def describe_budget(cfg) -> str:
    """The training budget of a composed config in words, for table notes: batch, peak lr and its
    schedule, epochs and pairs (steps) per epoch."""
    per_epoch = cfg.loader.samples_per_epoch
    epochs = cfg.trainer.get("max_epochs")
    return (f"batch {cfg.loader.batch_size}, peak lr {cfg.optim.lr:g} (warm-up over "
            f"{100 * cfg.optim.warmup_fraction:g} % of the steps, then linear decay), {epochs} epoch(s) of "
            + (f"{per_epoch:,} pairs ({int(epochs) * int(per_epoch) // int(cfg.loader.batch_size):,} steps)"
               if per_epoch else "every training pair"))


# -- training -----------------------------------------------------------------------------------------

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
    raise FileNotFoundError(f"{run}: finished run (metrics.json) without a checkpoint in "
                            f"{run / 'checkpoints'}")


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
        watched = [run / "checkpoints" / "last.ckpt", run / "config.yaml", *run.glob("csv/version_*/metrics.csv")]
        if any(p.is_file() and now - p.stat().st_mtime < quiet_seconds for p in watched):
            return run
    return None


def train_or_reuse(experiment: str, overrides: Sequence[str] = (), *, dataset: Dataset | None = None,
                   wait: bool = True, quiet_seconds: float = 180.0, poll_seconds: float = 15.0,
                   train_fn: Callable | None = None) -> TrainedModel:
    """Train ``experiment`` with ``overrides`` (:func:`keytrack.train.train`), or reuse its finished run.

    A finished run of the same configuration (:func:`find_finished_run`) is reused as is. When a
    run of that configuration is being trained by another process (a checkpoint or log written in
    the last ``quiet_seconds``), this waits for its ``metrics.json`` instead of training a second
    copy (``wait=False`` trains at once, which resumes from its ``last.ckpt``). Returns the best
    checkpoint (by validation accuracy) of the run. ``train_fn(cfg, dataset) -> metrics`` replaces
    :func:`keytrack.train.train` (which is imported, with Lightning, only when a run is trained).
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
        log.info("training %s: %s is being trained by another process; waiting for its metrics.json",
                 cfg.experiment, active)
        time.sleep(poll_seconds)
    log.info("training %s/%s (%s)", cfg.experiment, cfg.run_name, " ".join(overrides) or "no overrides")
    if train_fn is None:
        from keytrack.train import train as train_fn
    metrics = train_fn(cfg, dataset)
    run = run_dir(cfg)
    return TrainedModel(_checkpoint_of(run, metrics), run, metrics, reused=False)


def matching_network(profile: Profile, *, checkpoint: str | None, experiment: str, train_seed: int,
                     train_overrides: Sequence[str] = (), wait: bool = True) -> dict:
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
    return {"checkpoint": str(trained.checkpoint), "digest": file_digest(trained.checkpoint),
            "source": "reused" if trained.reused else "trained", "run_dir": str(trained.run_dir),
            "best_val_acc": trained.metrics.get("best_val_acc"),
            "best_val_rank1": trained.metrics.get("best_val_rank1"), "experiment": experiment,
            "overrides": overrides}


def network_or_error(profile: Profile, what: str = "matching network", **kwargs) -> tuple[dict | None, str | None]:
    """:func:`matching_network` as ``(network, None)``, or ``(None, "<error>")`` when there is none
    (logged as ``what``): the cells that need it then fail with that message, the others still run."""
    try:
        return matching_network(profile, **kwargs), None
    except Exception as err:    # noqa: BLE001 - recorded in the table, the other cells go on
        log.error("%s: %s: %s", what, type(err).__name__, err)
        return None, f"{type(err).__name__}: {err}"


# -- commands -----------------------------------------------------------------------------------------

@dataclass
class Result:
    """What an ablation run produced: table rows, the files written and the failed runs."""

    rows: list[dict]
    out: Path
    files: list[Path]
    failures: list[str]
    records: dict = field(default_factory=dict)
    tables: list[str] = field(default_factory=lambda: ["table"])    # printed by finish: <out>/<name>.md
    tuning_rows: list[dict] = field(default_factory=list)            # OKS / IoU thresholds tuned
    thresholds: dict = field(default_factory=dict)                   # each matcher's match threshold


def finish(name: str, result: Result) -> int:
    """Print the result's tables (``<out>/<name>.md``) and the files written; exit status 1 when a run failed."""
    import sys

    for table in result.tables:
        print((result.out / f"{table}.md").read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(f) for f in result.files))
    if result.failures:
        print(f"{name}: {len(result.failures)} failure(s):\n  " + "\n  ".join(result.failures), file=sys.stderr)
        return 1
    return 0


def command_main(prog: str, doc: str, add_arguments: Callable, run: Callable, argv: Sequence[str] | None) -> int:
    """``python -m ablations.<module>``: parse ``argv`` with the module's options and run it."""
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
