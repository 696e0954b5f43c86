"""Hyperparameter sweeps from W&B sweep YAMLs, run without a W&B server; Figure 7 (left, §5.1).

    keytrack ablate sweep experiments/sweeps/quick.yaml [--data DIR]

Each ``experiments/sweeps/<name>.yaml`` is a sweep in W&B's own format whose ``command`` runs
``keytrack train`` with W&B's ``${args_no_hyphens}`` macro, so ``wandb sweep`` + ``wandb agent``
run it unchanged against a server. This module does what ``wandb agent`` cannot do offline: it
plays the server with W&B's own search engine (the ``sweeps`` package: ``next_run`` proposes each
run, ``stop_runs`` decides hyperband's early termination from the per-epoch metric read from the
run's CSV log, and a stopped run gets SIGTERM as the agent sends it), formats each proposal with the
agent's own ``create_sweep_command_args`` and trains it in a subprocess. Each run's best checkpoint
then tracks the evaluation split through :class:`ablations.evaluate.Evaluator` (predicted boxes
and keypoints by default, as §5.1 and A.4), and :mod:`ablations.sweep_table` writes Figure 7's
table beside the paper's values. Every run is cached; a failed run is recorded and the sweep goes on.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field

from keytrack.config import config_path
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ablations.profile import Profile
from ablations.options import add_options, opt, options_from
from ablations.runs import RunCache, RunRecord, command_main, json_safe
from ablations.evaluate import GT_SETTING, EvalSet, Evaluator, TrackerSpec
from ablations.sweep_table import SIZE_KEYS, write_sweep_table
from ablations.training import find_finished_run
from keytrack.perturb import SETTINGS

log = logging.getLogger("ablations.sweep")

__all__ = [
    "SWEEPS_DIR", "SweepConfigError", "SweepSpec", "load_sweep", "list_sweeps", "agent_args",
    "expand_command", "train_overrides", "flatten_proposal", "metric_history", "hyperband_should_stop",
    "Execution", "execute", "SweepOptions", "SweepOutcome", "run_sweep", "main",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Where the sweep YAMLs live; ``python -m ablations.sweep quick`` means ``<SWEEPS_DIR>/quick.yaml``.
SWEEPS_DIR = config_path("sweeps")
#: The W&B macro whose ``key=value`` format ``keytrack train`` reads as omegaconf overrides.
ARGS_MACRO = "${args_no_hyphens}"
#: Keypoint setting of Figure 7's %IDSW (§5.1, A.4): predicted boxes and predicted keypoints.
DEFAULT_SETTING = "predicted_boxes_predicted_keypoints"


class SweepConfigError(ValueError):
    """A sweep YAML that W&B would reject or that the offline runner cannot run; names the file."""


def _sweeps():
    """W&B's ``sweeps`` package (its pydantic models warn about v1 config keys on import)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import sweeps
    except ImportError as err:    # pragma: no cover - depends on the environment
        raise ImportError("the offline sweep runner needs W&B's search engine: pip install --no-deps "
                          "sweeps==0.3.0 scikit-learn jsonschema jsonref pydantic PyYAML") from err
    return sweeps


# -- sweep configs -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep YAML: ``config`` is W&B's config with its defaults filled in."""

    name: str
    path: Path
    config: dict

    @property
    def method(self) -> str:
        return str(self.config["method"])

    @property
    def metric(self) -> str:
        return str(self.config["metric"]["name"])

    @property
    def goal(self) -> str:
        return str(self.config["metric"].get("goal", "minimize"))

    @property
    def command(self) -> list[str]:
        return [str(c) for c in self.config["command"]]

    @property
    def hyperband(self) -> bool:
        return (self.config.get("early_terminate") or {}).get("type") == "hyperband"

    def constant_parameters(self) -> dict:
        """Parameters with a single ``value`` (the same for every run), as a W&B run config."""
        return {k: {"value": p["value"]} for k, p in self.config["parameters"].items() if "value" in p}


def list_sweeps(directory: Path = SWEEPS_DIR) -> list[str]:
    """Names of the sweep YAMLs in ``directory``."""
    return sorted(p.stem for p in Path(directory).glob("*.yaml"))


def _resolve_path(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file() and p.suffix == "" and len(p.parts) == 1:
        p = SWEEPS_DIR / f"{p.name}.yaml"
    if not p.is_file():
        raise SweepConfigError(f"{path}: no such sweep file (known in {SWEEPS_DIR}: "
                               f"{', '.join(list_sweeps()) or 'none'})")
    return p


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML (a path, or a name in :data:`SWEEPS_DIR`).

    Validation is W&B's own: ``sweeps.schema_violations_from_proposed_config`` (what ``wandb
    sweep`` and the local controller check), then ``sweeps.SweepConfig`` fills the defaults. The
    offline runner also needs a ``metric`` and a ``command`` that runs ``keytrack train`` with
    ``${args_no_hyphens}``.
    """
    import yaml

    sweeps = _sweeps()
    p = _resolve_path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise SweepConfigError(f"{p}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise SweepConfigError(f"{p}: a sweep config is a mapping, got {type(raw).__name__}")
    violations = sweeps.schema_violations_from_proposed_config(raw)
    if violations:
        raise SweepConfigError(f"{p}: not a valid W&B sweep config:\n  - " + "\n  - ".join(violations))
    try:
        config = json.loads(json.dumps(dict(sweeps.SweepConfig(raw))))
    except Exception as err:  # noqa: BLE001 - jsonschema / value errors from W&B's validator
        raise SweepConfigError(f"{p}: not a valid W&B sweep config: {err}") from None
    if "metric" not in config:
        raise SweepConfigError(f"{p}: no 'metric' (e.g. {{name: val/acc, goal: maximize}}); the runs, "
                               "early termination and bayes search are judged by it")
    command = [str(c) for c in config.get("command") or []]
    if ARGS_MACRO not in command:
        raise SweepConfigError(f"{p}: 'command' must pass the proposed values with {ARGS_MACRO} "
                               f"(key=value overrides for keytrack train), got {command or 'no command'}")
    if "train" not in command:
        raise SweepConfigError(f"{p}: 'command' must run `keytrack train` (e.g. [${{env}}, ${{interpreter}}, "
                               f"-m, keytrack.cli, train, {ARGS_MACRO}]), got {command}")
    return SweepSpec(name=p.stem, path=p, config=config)


def agent_args(run_config: Mapping) -> list[str]:
    """``${args_no_hyphens}`` of a proposed run, formatted by the function ``wandb agent`` uses.

    ``run_config`` is a W&B run config (``{"model.layers": {"value": 2}}``); the result is what
    ``wandb agent`` puts on the command line (``["model.layers=2"]``; a dict value is written as
    Python writes it, ``model={'layers': 2}``, which omegaconf reads as a mapping).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    return list(create_sweep_command_args({"args": dict(run_config)})["args_no_hyphens"])


def expand_command(command: Sequence[str], args: Sequence[str], *, program: str | None = None,
                   interpreter: str | None = None) -> list[str]:
    """The command ``wandb agent`` would run, with ``args`` in place of ``${args_no_hyphens}``.

    ``${env}`` is ``/usr/bin/env`` (as the agent, where it exists), ``${interpreter}`` this Python
    (the agent uses ``python`` from ``PATH``), ``${program}`` the config's program;
    ``${envvar:NAME}`` is the environment variable. Other macros cannot be run offline.
    """
    env_macro = re.compile(r"\$\{envvar:([A-Z0-9_]*)\}")
    out: list[str] = []
    for chunk in map(str, command):
        chunk = env_macro.sub(lambda m: os.environ.get(m.group(1), m.group(1)), chunk)
        if chunk == "${env}":
            if os.name != "nt" and Path("/usr/bin/env").exists():
                out.append("/usr/bin/env")
        elif chunk == "${interpreter}":
            out.append(interpreter or sys.executable)
        elif chunk == "${program}":
            if not program:
                raise SweepConfigError("command uses ${program} but the sweep config has no 'program'")
            out.append(program)
        elif chunk == ARGS_MACRO:
            out.extend(args)
        elif chunk.startswith("${") and chunk.endswith("}"):
            raise SweepConfigError(f"command macro {chunk} is not supported by the offline runner "
                                   f"(use {ARGS_MACRO})")
        else:
            out.append(chunk)
    return out


def train_overrides(command: Sequence[str]) -> list[str]:
    """The ``key=value`` overrides a command passes to ``keytrack train`` (what follows ``train``)."""
    command = [str(c) for c in command]
    if "train" not in command:
        raise SweepConfigError(f"command does not run `keytrack train`: {command}")
    return command[command.index("train") + 1:]


def flatten_proposal(run_config: Mapping) -> dict:
    """``{"model": {"value": {"layers": 2}}, "seed": {"value": 0}}`` →
    ``{"model.layers": 2, "seed": 0}``."""
    flat: dict[str, Any] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                visit(f"{prefix}.{k}", v)
        else:
            flat[prefix] = value

    for key, entry in run_config.items():
        visit(str(key), entry["value"] if isinstance(entry, Mapping) and "value" in entry else entry)
    return flat


_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


def _slug(flat: Mapping, constant: set[str]) -> str:
    """A run name from the values that vary between runs (``layers2-hidden128``), hashed when long."""
    parts = [f"{k.rsplit('.', 1)[-1]}{'' if isinstance(v, (int, float)) else '-'}{v}"
             for k, v in flat.items() if k not in constant]
    slug = _UNSAFE.sub("_", "-".join(parts)).strip("_-") or "run"
    if len(slug) > 80:
        slug = f"{slug[:60]}-{_digest(dict(flat))}"
    return slug


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


# -- metric history and early termination ----------------------------------------------------------------

def metric_history(run: str | Path, metric: str) -> list[float]:
    """The run's ``metric`` once per validation epoch, from its CSV log (every resumed attempt).

    Rows are those of ``keytrack.train.read_metrics``; one value per ``epoch`` (a repeated epoch
    keeps its last value), in epoch order. A file caught half-written yields what parses.
    """
    import csv

    from keytrack.train import read_metrics

    try:
        rows = read_metrics(run)
    except (OSError, csv.Error, ValueError):
        return []
    by_epoch: dict[int, float] = {}
    for i, row in enumerate(rows):
        value = row.get(metric)
        if value in (None, ""):
            continue
        try:
            v = float(value)
            epoch = int(float(row["epoch"])) if row.get("epoch") not in (None, "") else 10**6 + i
        except (TypeError, ValueError):
            continue
        by_epoch[epoch] = v
    return [by_epoch[e] for e in sorted(by_epoch)]


def _sweep_run(name: str, run_config: Mapping, state: str, metric: str, history: Sequence[float] = (),
               stopped: bool = False):
    sweeps = _sweeps()
    hist = [{metric: float(v)} for v in history]
    return sweeps.SweepRun(name=name, config=dict(run_config), state=state, history=hist, stopped=stopped,
                           summary_metrics={metric: float(history[-1])} if len(history) else {})


def hyperband_should_stop(config: Mapping, previous: Sequence, name: str, history: Sequence[float]) -> bool:
    """Whether W&B's hyperband (``sweeps.stop_runs``) stops the running run ``name`` now.

    ``previous`` are the sweep's other runs (``sweeps.SweepRun``, finished or stopped, with their
    metric histories); ``history`` is this run's metric, one value per epoch so far. Bands are at
    ``min_iter · eta^k`` epochs (or below ``max_iter``); at a band the run stops when it is not
    in the best ``1/eta`` of the runs that reached that band (``strict``: its value at the band;
    else its best value so far).
    """
    sweeps = _sweeps()
    metric = str(config["metric"]["name"])
    current = _sweep_run(name, {}, sweeps.RunState.running, metric, history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stop = sweeps.stop_runs(dict(config), [*previous, current])
    return any(r is current for r in stop)


@dataclass
class Execution:
    """How a training subprocess ended: exit status, whether the runner stopped it, its history."""

    returncode: int
    stopped: bool
    history: list[float]
    seconds: float


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def execute(command: Sequence[str], *, run: Path, metric: str, log_path: Path,
            env: Mapping[str, str] | None = None, should_stop: Callable[[list[float]], bool] | None = None,
            poll_seconds: float = 5.0, kill_seconds: float = 60.0) -> Execution:
    """Run a training command, watching ``run``'s CSV log; stop it when ``should_stop(history)`` says so.

    ``should_stop`` is asked once per new epoch of ``metric``. Stopping sends SIGTERM (Lightning
    ends the fit at the next batch), then SIGKILL after ``kill_seconds``. Output goes to ``log_path``.
    An interrupted runner (Ctrl-C) stops the subprocess before re-raising.
    """
    # metric_history's reader, imported before the run starts rather than at its first epoch
    import keytrack.train  # noqa: F401

    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    stopped = False
    seen = 0
    with open(log_path, "ab") as out:
        out.write(f"$ {' '.join(command)}\n".encode())
        out.flush()
        proc = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT,
                                env=dict(env or os.environ))
        try:
            while True:
                try:
                    proc.wait(timeout=poll_seconds)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if should_stop is None:
                    continue
                history = metric_history(run, metric)
                if len(history) > seen:
                    seen = len(history)
                    if should_stop(history):
                        log.info("%s: early termination after epoch %d (%s %s)", run.name, seen, metric,
                                 ", ".join(f"{v:.4f}" for v in history))
                        stopped = True
                        _stop(proc, kill_seconds)
                        break
        except BaseException:
            if proc.poll() is None:
                _stop(proc, kill_seconds)
            raise
    return Execution(int(proc.returncode), stopped, metric_history(run, metric), time.perf_counter() - start)


def _stop(proc: subprocess.Popen, kill_seconds: float) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=kill_seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- tracking evaluation ----------------------------------------------------------------------------------

def _model_info(checkpoint: str | Path) -> dict:
    """Sizes and parameter count of a checkpoint's matching network."""
    from keytrack.models.factory import load_matcher

    model, cfg = load_matcher(str(checkpoint))
    info = {"model": {k: int(cfg.model[k]) for k in SIZE_KEYS if k in cfg.model},
            "parameters": int(sum(p.numel() for p in model.parameters()))}
    if cfg.model.name == "transformer":
        from keytrack.models.transformer import parameter_breakdown
        info["parameter_breakdown"] = parameter_breakdown(model)
    return info


def _best_checkpoint(run: Path) -> Path:
    """The best checkpoint (by ``val/acc``) of a run, finished or stopped; else its last one."""
    metrics = run / "metrics.json"
    if metrics.is_file():
        best = json.loads(metrics.read_text(encoding="utf-8")).get("best_checkpoint")
        for path in ([Path(best), run / "checkpoints" / Path(best).name] if best else []):
            if path.is_file():
                return path
    candidates = sorted((run / "checkpoints").glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    if candidates:
        return candidates[-1]
    if (run / "checkpoints" / "last.ckpt").is_file():
        return run / "checkpoints" / "last.ckpt"
    raise FileNotFoundError(f"{run}: no checkpoint in {run / 'checkpoints'} (did training finish an epoch?)")


# -- the offline runner -------------------------------------------------------------------------------------

@dataclass
class SweepOptions:
    """Everything an offline sweep depends on besides its YAML (the command-line options)."""

    count: int | None = opt(type=int, help="most runs in the sweep (default: the whole grid; run_cap for "
                                           "random/bayes)")
    data: str | None = opt(help="PoseTrack18-layout folder: train on its train split, track its test (else val) "
                                "split; default: the synthetic default and a disjoint synthetic test set")
    eval_split: str | None = opt(help="evaluation split under --data (default: test, else val)")
    extra: tuple[str, ...] = opt((), nargs="+", action="extend", metavar="KEY=VALUE",
                                 help="more keytrack train overrides for every run (after the proposed values)")
    out: str | None = opt(help="results folder (default: results/sweep_<name>[/<data>-<split>])")
    runs_dir: str = opt("runs", help="root of the training runs (default: runs)")
    test_videos: int = opt(8, type=int, help="videos of the synthetic test set without --data (default: 8)")
    setting: str = opt(DEFAULT_SETTING, choices=SETTINGS,
                       help=f"keypoint setting tracked for %%IDSW (default: {DEFAULT_SETTING}, as §5.1)")
    perturb_seed: int = opt(0, type=int, help="seed of the predicted poses (default: 0)")
    match_threshold: float = opt(0.5, type=float, help="tracker match threshold (default: 0.5)")
    keypoint_threshold: float = opt(0.5, type=float,
                                    help="output keypoint threshold before MOTA / %%IDSW (A.3; default: 0.5)")
    delta: int = opt(4, type=int, help="δ: timesteps looked back (paper: 4)")
    device: str = opt("cpu", help="torch device for tracking")
    batch_size: int = opt(16384, type=int, help="most pose pairs per network forward")
    track: bool = opt(True, "--no-track", action="store_false", help="train only: no %%IDSW")
    search_seed: int = opt(0, type=int, help="numpy seed of random / bayes proposals")
    threads: int | None = opt(type=int, help="torch CPU threads of training and tracking (default: torch's choice; "
                                             "1 is fastest on a CPU shared with other jobs)")
    poll_seconds: float = opt(5.0, type=float, help="how often a running run's log is read (default: 5)")
    kill_seconds: float = 60.0
    retry_failed: bool = opt(True, "--no-retry-failed", action="store_false",
                             help="keep recorded failures instead of running them again")

    def __post_init__(self) -> None:
        if self.count is not None and self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.setting not in SETTINGS:
            raise ValueError(f"setting: unknown {self.setting!r}; expected one of {list(SETTINGS)}")
        bad = [e for e in self.extra if "=" not in e]
        if bad:
            raise ValueError(f"--extra takes key=value overrides, got {bad}")
        if self.test_videos < 1:
            raise ValueError(f"test_videos must be >= 1, got {self.test_videos}")

    def tracker(self) -> TrackerSpec:
        """The §3.1 tracker every run's network tracks with."""
        return TrackerSpec("network", match_threshold=self.match_threshold, delta=self.delta)

    def evalset(self, gt) -> EvalSet:
        """The evaluation set of the runs: ``gt``'s predictions of the option's setting and seed."""
        kp = self.keypoint_threshold if self.setting != GT_SETTING else 0.0
        return EvalSet(gt, self.setting, self.perturb_seed, keypoint_threshold=kp)


@dataclass
class SweepOutcome:
    """What :func:`run_sweep` produced: one result dict per run (see :mod:`ablations.sweep_table`),
    the files written and the failures."""

    spec: SweepSpec
    results: list[dict]
    out: Path
    files: list[Path]
    failures: list[str]
    profile: Profile
    train_root: Path
    notes: list[str] = field(default_factory=list)


def _result_of(record: RunRecord) -> dict:
    """A cached run as a table-builder result: its stored result, or its failure."""
    if record.ok:
        return dict(record.result)
    return {"name": record.key, "status": "failed", "params": record.params.get("flat", {}),
            "model": record.params.get("model", {}), "error": record.failure}


def _record_matches(record: RunRecord, spec: SweepSpec, budget: str, eval_params: dict) -> bool:
    p = record.params
    return (record.ok and p.get("sweep") == spec.name and p.get("budget") == budget
            and p.get("eval") == eval_params)


def _run_env(spec: SweepSpec, threads: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(int(threads))
    env["WANDB_MODE"] = "disabled" if os.environ.get("WANDB_MODE") == "disabled" else "offline"
    env.setdefault("WANDB_SILENT", "true")
    env["WANDB_RUN_GROUP"] = f"sweep_{spec.name}"
    env["WANDB_JOB_TYPE"] = "sweep"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return env


def run_sweep(path: str | Path, opts: SweepOptions | None = None, *,
              eval_gt=None) -> SweepOutcome:
    """Run (or reuse) the runs of a sweep YAML without a W&B server, then write its table.

    See the module docstring. ``eval_gt`` replaces the profile's evaluation split (tests pass a tiny
    one). Runs train into ``<runs_dir>/sweep_<name>/<data tag>-<budget digest>/<experiment>/<run_name>``:
    the digest covers what every run of the sweep shares (the YAML's command, its constant
    parameters, the data and ``--extra``), so a changed budget never resumes a run of another one.
    """
    from keytrack.config import ConfigError, load_config

    opts = opts or SweepOptions()
    sweeps = _sweeps()
    spec = load_sweep(path)
    profile = Profile.from_data(opts.data, opts.eval_split, synthetic_eval_videos=opts.test_videos)
    out = Path(opts.out) if opts.out else profile.results_dir(f"sweep_{spec.name}")
    cache = RunCache(out / "runs", retry_failed=opts.retry_failed)
    common_overrides = [*profile.train_overrides(), *opts.extra]
    budget = _digest({"command": train_overrides(spec.command), "constants": spec.constant_parameters(),
                      "common": common_overrides})
    train_root = Path(opts.runs_dir) / f"sweep_{spec.name}" / f"{profile.tag}-{budget}"
    evaluator = Evaluator(device=opts.device, batch_size=opts.batch_size)
    evalset = opts.evalset(profile.load_eval() if eval_gt is None else eval_gt) if opts.track else None
    eval_params = evaluator.params(opts.tracker(), evalset) if evalset is not None else {"track": False}
    names_run = any(o.startswith("run_name=") for o in spec.command)
    constant = set(flatten_proposal(spec.constant_parameters()))
    env = _run_env(spec, opts.threads)
    _set_threads(opts.threads)

    limit = opts.count or spec.config.get("run_cap")
    if limit is None and spec.method != "grid":
        raise SweepConfigError(f"{spec.path}: a {spec.method} search never ends by itself; give --count N "
                               "or run_cap in the YAML")
    runs: list = []
    records: list[RunRecord] = []
    if spec.method != "grid":
        # Random and bayes proposals differ between invocations: continue from the finished runs.
        for file in sorted(cache.directory.glob("*.json")):
            record = cache.load(file.stem)
            if record is not None and _record_matches(record, spec, budget, eval_params):
                records.append(record)
        records.sort(key=lambda r: r.finished_at)
        runs = [_sweep_run(r.key, r.params["proposal"], "finished", spec.metric, r.result.get("history", []),
                           stopped=r.result.get("status") == "stopped") for r in records]
        if records:
            log.info("sweep %s: continuing from %d finished runs in %s", spec.name, len(records),
                     cache.directory)

    failures: list[str] = []
    used: dict[str, str] = {r.key: " ".join(agent_args(r.params["proposal"])) for r in records}
    while limit is None or len(runs) < limit:
        import numpy as np
        np.random.seed(opts.search_seed + len(runs))     # random / bayes proposals: reproducible per history
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proposal = sweeps.next_run(spec.config, runs)
        if proposal is None:
            break
        run_config = json.loads(json.dumps(proposal.config))
        flat = flatten_proposal(run_config)
        args = agent_args(run_config)
        tail = [*common_overrides, f"output_dir={train_root}"]
        if not names_run:
            tail.append(f"run_name={spec.name}-{_slug(flat, constant)}")
        command = expand_command(spec.command, [*args, *tail], program=spec.config.get("program"))
        overrides = train_overrides(command)
        config_error: Exception | None = None
        try:
            cfg = load_config(overrides)
            key = _UNSAFE.sub("_", str(cfg.run_name))
            model = {k: cfg.model.get(k) for k in SIZE_KEYS}
        except ConfigError as err:
            cfg, key, model, config_error = None, f"{spec.name}-{_slug(flat, constant)}", {}, err
        if key in used:
            config_error = SweepConfigError(
                f"{spec.path}: run_name {key!r} repeats an earlier run of this sweep ({used[key]}); "
                "name every swept parameter in the command's run_name=... (e.g. ${model.layers})")
            key = f"{key}-{_digest(flat)}"
        used[key] = " ".join(args)
        params = json.loads(json.dumps({"sweep": spec.name, "budget": budget, "proposal": run_config,
                                        "flat": flat, "model": model, "overrides": overrides,
                                        "eval": eval_params}, default=str))

        def one(cfg=cfg, command=command, key=key, flat=flat, previous=list(runs), error=config_error):
            if error is not None:
                raise error
            return _train_and_evaluate(spec, cfg, command, key, flat, previous, out, env, opts,
                                       evalset and (evaluator, evalset))

        log.info("sweep %s: run %d%s: %s", spec.name, len(runs) + 1, f"/{limit}" if limit else "",
                 " ".join(args))
        record = cache.run(key, one, params)
        records.append(record)
        if record.ok:
            r = record.result
            runs.append(_sweep_run(key, run_config, "finished", spec.metric, r.get("history", []),
                                   stopped=r.get("status") == "stopped"))
        else:
            runs.append(_sweep_run(key, run_config, "failed", spec.metric))
            failures.append(f"{key}: {record.failure}")

    results = [_result_of(r) for r in records]
    notes = _notes(spec, opts, profile, evalset, train_root, cache, results)
    files = write_sweep_table(results, out, title=f"Sweep {spec.name}: transformer size against tracking "
                              f"(Figure 7 left, §5.1)", notes=notes)
    return SweepOutcome(spec, results, out, files, failures, profile, train_root, notes)


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch
        torch.set_num_threads(int(threads))


def _train_and_evaluate(spec: SweepSpec, cfg, command: list[str], key: str, flat: dict, previous: list,
                        out: Path, env: Mapping[str, str], opts: SweepOptions, evaluation: tuple | None) -> dict:
    """One run: train (or reuse the finished training), then track the test split with it."""
    from keytrack.config import run_dir

    run = run_dir(cfg)
    finished = find_finished_run(cfg)
    if finished is not None:
        log.info("run %s: training finished before (%s); reusing it", key, finished)
        run, status, seconds, training = finished, "finished", 0.0, "reused"
        history = metric_history(run, spec.metric)
    else:
        should_stop = None
        if spec.hyperband:
            def should_stop(history: list[float]) -> bool:
                return hyperband_should_stop(spec.config, previous, key, history)
        log_path = out / "logs" / f"{key}.log"
        execution = execute(command, run=run, metric=spec.metric, log_path=log_path, env=env,
                            should_stop=should_stop, poll_seconds=opts.poll_seconds,
                            kill_seconds=opts.kill_seconds)
        if execution.returncode != 0 and not execution.stopped:
            raise RuntimeError(f"keytrack train exited with status {execution.returncode} "
                               f"(log: {log_path}):\n{_tail(log_path)}")
        status = "stopped" if execution.stopped else "finished"
        history, seconds, training = execution.history, round(execution.seconds, 1), "trained"
    checkpoint = _best_checkpoint(run)
    metrics = _metrics_json(run)
    result = {"name": key, "status": status, "params": flat, "history": history,
              "epochs": metrics.get("epochs") or len(history),   # validation may skip epochs
              "val_acc": max(history) if history and spec.metric == "val/acc" else metrics.get("best_val_acc"),
              "val_rank1": metrics.get("best_val_rank1"),
              "run_dir": str(run), "checkpoint": str(checkpoint), "training": training,
              "train_seconds": seconds, **_model_info(checkpoint)}
    if status == "stopped":
        result["stopped_after_epoch"] = len(history)
    if evaluation is not None:
        evaluator, evalset = evaluation
        log.info("run %s: tracking %s with %s", key, evalset.setting, checkpoint.name)
        scored = evaluator.evaluate(dataclasses.replace(opts.tracker(), checkpoint=str(checkpoint)), evalset)
        result.update(scored, idsw_total=scored["idsw"]["Total"], mota_total=scored["mota"]["Total"])
    return json_safe(result)


def _metrics_json(run: Path) -> dict:
    path = run / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _notes(spec: SweepSpec, opts: SweepOptions, profile: Profile, evalset: EvalSet | None, train_root: Path,
           cache: RunCache, results: Sequence[Mapping]) -> list[str]:
    shared = [o for o in train_overrides(spec.command)
              if o != ARGS_MACRO and not o.startswith(("run_name=", "output_dir=", "logging."))]
    constants = [f"{k}={v}" for k, v in flatten_proposal(spec.constant_parameters()).items()]
    swept = [k for k in spec.config["parameters"] if k not in spec.constant_parameters()]
    notes = [
        f"Sweep: {spec.path.name} ({spec.method} over {', '.join(swept) or 'nothing'}; metric {spec.metric}, "
        f"{spec.goal}" + (f"; early termination: {spec.config['early_terminate']}" if spec.hyperband else "")
        + "), run offline by `python -m ablations.sweep` with W&B's search engine (the sweeps package).",
        "Training budget of every run (keytrack train overrides): "
        + " ".join(shared + constants + list(opts.extra)) + f"; data: {profile.describe('train')}.",
        "Params (M): every trainable parameter of the matching network (embeddings included), from its "
        "checkpoint. The paper's counts are inconsistent with its own Table 6 "
        "(see keytrack/models/transformer.py).",
        ("Val acc: best validation match accuracy (val/acc, balanced pairs of held-out training videos) "
         "over the run's epochs; its best checkpoint tracks." if spec.metric == "val/acc" else
         f"Val acc: validation match accuracy (val/acc, balanced pairs of held-out training videos) and val "
         f"rank-1 (the true continuation scores highest among the tracker's candidates) of the checkpoint with "
         f"the best {spec.metric}, which tracks."),
    ]
    if evalset is not None:
        notes.append(
            f"%IDSW and MOTA: {profile.describe('eval')}, {evalset.setting.replace('_', ' ')} "
            f"(keytrack.perturb, seed {opts.perturb_seed}); tracker §3.1 with δ = {opts.delta}, greedy "
            f"assignment, match threshold {opts.match_threshold:g}; keypoints below "
            f"{opts.keypoint_threshold:g} removed before MOTA and %IDSW (A.3). %IDSW = 100 · ID switches "
            "/ GT joints (poseval's Total). The paper: PoseTrack 2018 val, predicted boxes and keypoints "
            "(A.4).")
    if any(r.get("status") == "stopped" for r in results):
        notes.append("Stopped: ended early by hyperband (sweeps.stop_runs) after the epochs shown.")
    notes.append(f"Training runs: {train_root}; W&B offline runs in their wandb/ folders (wandb sync). "
                 f"Runs cached in {cache.directory}/ ({cache.reused} reused, {cache.computed} run now).")
    return notes


# -- command line -------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", help="sweep YAML (experiments/sweeps/<name>.yaml, or just <name>)")
    add_options(parser, SweepOptions)


def options_from_args(args: argparse.Namespace) -> SweepOptions:
    return options_from(SweepOptions, args)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)      # unwinds through execute(), which stops the training run first


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        opts = options_from_args(args)
        start = time.perf_counter()
        outcome = run_sweep(args.sweep, opts)
    except (SweepConfigError, ValueError, FileNotFoundError) as err:
        print(f"sweep: {err}", file=sys.stderr)
        return 2
    print((outcome.out / "table.md").read_text(encoding="utf-8"))
    print(f"wrote {', '.join(str(f) for f in outcome.files)} in {time.perf_counter() - start:.0f} s")
    if outcome.failures:
        print(f"{len(outcome.failures)} failed run(s):\n  " + "\n  ".join(outcome.failures), file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("python -m ablations.sweep", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    from keytrack.errors import run_command

    sys.exit(run_command("python -m ablations.sweep", main))
