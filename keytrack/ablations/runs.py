"""Runs of an experiment (a training, a tracking cell, a sweep point), each cached as one JSON file
(:class:`RunCache`), and the statistics over them across training seeds and evaluation videos."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from keytrack.atomic import write_json
from keytrack.poses import Dataset
from keytrack.tables import Interval, MeanStd, mean_std

log = logging.getLogger("keytrack.ablations")

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
    reused: bool = field(default=False, compare=False)  # read from the cache (not stored)

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
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "reused"}


class RunCache:
    """Results of runs as ``<directory>/<key>.json``: :meth:`run` reuses a run stored with the same
    parameters (a failure only without ``retry_failed``), else runs it and stores its result or error."""

    def __init__(self, directory: str | Path, retry_failed: bool = True):
        self.directory = Path(directory)
        self.retry_failed = bool(retry_failed)
        self.computed = 0  # runs executed by this object (not read from the cache)
        self.reused = 0

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(
                f"run key {key!r}: use letters, digits and . _ = + - only (it names the file <key>.json)"
            )
        return self.directory / f"{key}.json"

    def load(self, key: str) -> RunRecord | None:
        """The stored record of ``key``, or None when there is none (or it is unreadable)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            record = RunRecord(d["key"], d["status"], d.get("params") or {}, d.get("result"), d.get("error"))
            record.seconds, record.finished_at = float(d.get("seconds") or 0.0), d.get("finished_at", "")
            record.reused = True
            return record
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
                what = type(result).__name__
                raise TypeError(f"run {key}: the run function returned {what}, expected a dict of results")
            record = RunRecord(key, "ok", params, result=json_safe(dict(result)))
            json.dumps(record.result, allow_nan=False)  # must be storable
        except Exception as err:  # noqa: BLE001 - a failed run is recorded and shown, not fatal
            error = dict(type=type(err).__name__, message=str(err), traceback=traceback.format_exc(limit=20))
            record = RunRecord(key, "failed", params, error=error)
            log.warning("run %s: FAILED (%s: %s)", key, type(err).__name__, err)
        record.seconds = round(time.perf_counter() - start, 3)
        record.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.computed += 1
        write_json(self.path(key), record.to_dict())
        if record.ok:
            log.info("run %s: done in %.1f s", key, record.seconds)
        return record


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


def seed_stat(records: Iterable[RunRecord], getter: Callable[[Mapping], float | None]) -> MeanStd:
    """Mean ± sample std of ``getter(result)`` over the successful records (one value: the value)."""
    return mean_std(getter(r.result) for r in records if r.ok)


def paired_difference(
    records: Sequence[RunRecord], reference: Sequence[RunRecord], getter: Callable[[Mapping], float | None]
) -> MeanStd:
    """Mean ± std of ``getter(record) - getter(reference)``, paired by seed; a single reference record
    (OKS: no training seed) is paired with every record."""
    pairs = zip(records, list(reference) * len(records) if len(reference) == 1 else reference)
    values = [(getter(r.result), getter(ref.result)) for r, ref in pairs if r.ok and ref.ok]
    return mean_std([a - b for a, b in values if a is not None and b is not None])


def video_bootstrap(
    records: Sequence[RunRecord],
    reference: Sequence[RunRecord],
    *,
    level: float = 0.95,
    resamples: int = 4000,
    seed: int = 0,
) -> Interval | None:
    """Pooled %IDSW (100 · switches / GT joints) of ``records`` minus ``reference``'s, each video's switches
    averaged over a side's records, with a ``level`` percentile interval of a two-way bootstrap over videos
    and records (Owen 2007, "The pigeonhole bootstrap"); None without ``per_video`` counts on both sides."""

    def per_video(recs: Sequence[RunRecord]):
        tables = [r.result.get("per_video") for r in recs if r.ok]
        if not tables or not all(tables):
            return None
        names = sorted(tables[0])
        if any(sorted(t) != names for t in tables):
            return None
        return (
            names,
            np.array([[t[n][0] for n in names] for t in tables], float),
            np.array([tables[0][n][1] for n in names], float),
        )

    mine, theirs = per_video(records), per_video(reference)
    if mine is None or theirs is None or mine[0] != theirs[0]:
        return None
    (_, a, objects), (_, b, _) = mine, theirs  # a: [records, videos], b: [reference records, videos]

    def pooled(a, b, n):  # over the last axis
        return 100.0 * (a.sum(-1) - b.sum(-1)) / np.maximum(n.sum(-1), 1)

    value = float(pooled(a.mean(0), b.mean(0), objects))
    rng = np.random.default_rng(seed)
    videos = rng.integers(0, a.shape[1], (resamples, a.shape[1]))

    def drawn(side: np.ndarray) -> np.ndarray:  # [draws, videos]: the drawn records' mean, drawn videos
        means = side[rng.integers(0, len(side), (resamples, len(side)))].mean(1)
        return np.take_along_axis(means, videos, 1)

    diffs = pooled(drawn(a), drawn(b), objects[videos])
    low, high = np.percentile(diffs, [50 * (1 - level), 50 * (1 + level)])
    return Interval(value, float(low), float(high))


def failure_status(records: Sequence[RunRecord], seeds: Sequence[int]) -> str | None:
    """``"failed: seed 1: <error>; ..."`` for a row with failed runs, else None."""
    failed = [
        f"seed {s}: {r.failure}" if len(records) > 1 else r.failure
        for s, r in zip(seeds, records)
        if not r.ok
    ]
    return "failed: " + "; ".join(failed) if failed else None


def total(metric: str) -> Callable[[Mapping], float | None]:
    """Getter of a metric's Total column from a cell result (``idsw``, ``mota``, ``ap``)."""
    return lambda result: (result.get(metric) or {}).get("Total")


def pooled_mota(result: Mapping) -> float | None:
    """MOTA over the joints pooled, ``100 · (1 - (misses + false positives + switches) / GT joints)``:
    unlike poseval's Total (the mean of the per-joint MOTAs), a joint with almost no ground truth (Bonn's
    nose: a handful of GT points) cannot drag it to minus thousands when a tracker reports poses there."""
    objects = result.get("num_objects")
    if not objects:
        return None
    errors = sum(float(result.get(k) or 0) for k in ("num_misses", "num_false_positives", "num_switches"))
    return 100.0 * (1.0 - errors / float(objects))


@dataclass
class Result:
    """What an ablation run produced: table rows, the files written and the failed runs."""

    rows: list[dict]
    out: Path
    files: list[Path]
    failures: list[str]
    records: dict = field(default_factory=dict)
    tables: list[str] = field(default_factory=lambda: ["table"])  # printed by finish: <out>/<name>.md
    tuning_rows: list[dict] = field(default_factory=list)  # OKS / IoU thresholds tuned
    thresholds: dict = field(default_factory=dict)  # each matcher's match threshold


def finish(name: str, result: Result) -> int:
    """Print the result's tables and the files written; when a run failed, list the failures on stderr,
    end with ``keytrack ablate <name>: error: ...`` and return status 1."""
    import sys

    for table in result.tables:
        print((result.out / f"{table}.md").read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(f) for f in result.files))
    if result.failures:
        print("  " + "\n  ".join(result.failures), file=sys.stderr)
        print(
            f"keytrack ablate {name}: error: {len(result.failures)} run(s) failed (listed above; the "
            f"results of the others are in {display_out(result.out)}/)",
            file=sys.stderr,
        )
        return 1
    return 0


def display_out(path: Path) -> str:
    """``path`` relative to the working folder when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def command_main(
    prog: str, doc: str, add_arguments: Callable, run: Callable, argv: Sequence[str] | None
) -> int:
    """``python -m <module>`` of an experiment command: parse ``argv`` and run it."""
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
