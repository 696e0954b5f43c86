"""W&B sweep YAMLs run without a W&B server, into Figure 7 (left)'s table (§5.1).

W&B's search engine (the ``sweeps`` package) proposes each run of ``keytrack/experiments/sweeps/<name>.yaml``;
the proposal, as ``wandb agent`` formats it, becomes a row of ``keytrack/experiments/ablations/figure7.yaml``
trained by :func:`keytrack.ablations.runner.train_row`. Offline there is no early termination. Writes
``runs/sweeps/<name>/`` (``--out``; the committed tables are under ``results/sweep_<name>/``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from keytrack.ablations import runner
from keytrack.ablations.cells import TrackingOptions
from keytrack.ablations.options import RunOptions, add_options, opt, options_from
from keytrack.ablations.runs import Result, command_main, finish, json_safe
from keytrack.atomic import write_json
from keytrack.config import config_path
from keytrack.errors import InputError

log = logging.getLogger("keytrack.ablations.sweep")

SWEEPS_DIR = config_path("sweeps")
#: W&B's macro for the proposed values, ``key=value`` as ``keytrack train`` reads them.
ARGS_MACRO = "${args_no_hyphens}"
TABLE_SPEC = "figure7"
#: Overrides of a sweep's command for W&B agents only (offline the runner names runs, W&B logs offline).
AGENT_ONLY = ("run_name=", "logging.mode=")


class SweepConfigError(InputError):
    """A sweep YAML that W&B would reject or that the offline runner cannot run; names the file."""


def _sweeps():
    """W&B's ``sweeps`` package (quiet: it warns about pydantic v1 keys on import)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import sweeps
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the offline sweep runner needs W&B's search engine: pip install --no-deps "
            "sweeps==0.3.0 scikit-learn jsonschema jsonref pydantic PyYAML"
        ) from err
    return sweeps


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep YAML: ``config`` is W&B's config with its defaults filled in."""

    name: str
    path: Path
    config: dict

    method = property(lambda self: str(self.config["method"]))
    metric = property(lambda self: str(self.config["metric"]["name"]))
    command = property(lambda self: [str(c) for c in self.config["command"]])

    @property
    def swept(self) -> list[str]:
        """The parameters that vary between runs (those without a single ``value``)."""
        return [k for k, p in self.config["parameters"].items() if "value" not in p]


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML (a path, or a name in :data:`SWEEPS_DIR`) as ``wandb sweep`` does,
    plus a ``metric`` and a ``command`` running ``keytrack train`` with ``${args_no_hyphens}``."""
    import yaml

    sweeps = _sweeps()
    p = Path(path)
    if not p.is_file() and p.suffix == "" and len(p.parts) == 1:
        p = SWEEPS_DIR / f"{p.name}.yaml"
    if not p.is_file():
        known = ", ".join(sorted(q.stem for q in SWEEPS_DIR.glob("*.yaml")))
        raise SweepConfigError(f"{path}: no such sweep file (known in {SWEEPS_DIR}: {known or 'none'})")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise SweepConfigError(f"{p}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise SweepConfigError(f"{p}: a sweep config is a mapping, got {type(raw).__name__}")
    if violations := sweeps.schema_violations_from_proposed_config(raw):
        raise SweepConfigError(f"{p}: not a valid W&B sweep config:\n  - " + "\n  - ".join(violations))
    try:
        config = json.loads(json.dumps(dict(sweeps.SweepConfig(raw))))
    except Exception as err:  # noqa: BLE001 - jsonschema / value errors from W&B's validator
        raise SweepConfigError(f"{p}: not a valid W&B sweep config: {err}") from None
    if "metric" not in config:
        raise SweepConfigError(
            f"{p}: no 'metric' (e.g. {{name: val/acc, goal: maximize}}); a random or bayes "
            "search is steered by it"
        )
    command = [str(c) for c in config.get("command") or []]
    if ARGS_MACRO not in command:
        raise SweepConfigError(
            f"{p}: 'command' must pass the proposed values with {ARGS_MACRO} "
            f"(key=value overrides for keytrack train), got {command or 'no command'}"
        )
    if "train" not in command:
        raise SweepConfigError(
            f"{p}: 'command' must run `keytrack train` (e.g. [${{env}}, ${{interpreter}}, "
            f"-m, keytrack.cli, train, {ARGS_MACRO}]), got {command}"
        )
    return SweepSpec(name=p.stem, path=p, config=config)


def agent_args(run_config: Mapping) -> list[str]:
    """``${args_no_hyphens}`` of a proposed run as ``wandb agent`` writes it: ``{"a.b": {"value": 2}}`` →
    ``["a.b=2"]`` (a dict value as Python writes it, which omegaconf reads as a mapping)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    return list(create_sweep_command_args({"args": dict(run_config)})["args_no_hyphens"])


def train_overrides(command: Sequence[str], args: Sequence[str] = ()) -> list[str]:
    """What ``command`` passes to ``keytrack train`` (what follows ``train``), ``args`` in place of
    ``${args_no_hyphens}``."""
    command = [str(c) for c in command]
    return [a for c in command[command.index("train") + 1 :] for a in (args if c == ARGS_MACRO else [c])]


def flatten_proposal(run_config: Mapping) -> dict:
    """``{"model": {"value": {"layers": 2}}, "seed": {"value": 0}}`` → ``{"model.layers": 2, "seed": 0}``."""
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


def sweep_row(sweep: SweepSpec, run_config: Mapping) -> dict:
    """A proposed run as a row of a training spec, named by its swept values (``layers2-hidden128``), with
    the experiment and overrides the sweep's command would give ``keytrack train``."""
    overrides = [
        o for o in train_overrides(sweep.command, agent_args(run_config)) if not o.startswith(AGENT_ONLY)
    ]
    experiments = [o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")]
    swept = flatten_proposal({k: v for k, v in run_config.items() if k in sweep.swept})
    words = (
        f"{k.rsplit('.', 1)[-1]}{'' if isinstance(v, (int, float)) else '-'}{v}" for k, v in swept.items()
    )
    name = re.sub(r"[^A-Za-z0-9._=+-]+", "_", "-".join(words)).strip("_-") or "run"
    if len(name) > 80:
        digest = hashlib.sha256(json.dumps(swept, sort_keys=True).encode()).hexdigest()[:8]
        name = f"{name[:60]}-{digest}"
    return {
        "row": name,
        "key": name,
        "values": {"row": name},
        "experiment": (experiments or ["base"])[-1],
        "overrides": [o for o in overrides if not o.startswith("experiment=")],
    }


def sweep_spec(sweep: SweepSpec) -> dict:
    """:data:`TABLE_SPEC` with the sweep's title and a note on it; its rows are the proposals."""
    spec = runner.load_spec(TABLE_SPEC)
    shared = " ".join(
        o for o in train_overrides(sweep.command) if o != ARGS_MACRO and not o.startswith(AGENT_ONLY)
    )
    note = (
        f"Sweep: {sweep.path.name} ({sweep.method} over {', '.join(sweep.swept) or 'nothing'}; metric "
        f"{sweep.metric}), run offline by `keytrack ablate sweep` with W&B's search engine (the sweeps "
        f"package); every run is `keytrack train {shared}` with its proposed values (the Run column)."
    )
    if (sweep.config.get("early_terminate") or {}).get("type"):
        note += " Its early termination needs a W&B server: offline every run trains its whole budget."
    spec["title"] = f"Sweep {sweep.name}: transformer size against parameters and %IDSW (Figure 7 left, §5.1)"
    spec["notes"] = [note.replace("{", "{{").replace("}", "}}"), *spec.get("notes", [])]
    spec["train"] = {**spec["train"], "rows": [], "budget": None}
    return spec


@dataclass
class SweepOptions(RunOptions):
    """An offline sweep's options: the runner's, how many runs, the search's seed, overrides for every run."""

    synthetic_test_videos: int | None = opt(
        type=int,
        help="videos of the synthetic test set without --data "
        f"(default: experiments/ablations/{TABLE_SPEC}.yaml's)",
    )
    count: int | None = opt(type=int, help="most runs (default: the whole grid; run_cap for random / bayes)")
    search_seed: int = opt(0, type=int, help="numpy seed of random / bayes proposals")
    extra: tuple[str, ...] = opt(
        (),
        nargs="+",
        action="extend",
        metavar="KEY=VALUE",
        help="more keytrack train overrides for every run (after the proposed values)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.count is not None and self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
        if bad := [e for e in self.extra if "=" not in e]:
            raise ValueError(f"--extra takes key=value overrides, got {bad}")

    def tracking(self) -> TrackingOptions:
        """The runner's options: these, ``--extra`` as training overrides."""
        return TrackingOptions(
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(RunOptions)},
            train_overrides=tuple(self.extra),
        )


def run_sweep(
    path: str | Path, opts: SweepOptions | None = None, *, train_dataset=None, eval_gt=None
) -> Result:
    """Propose, train and track a sweep's runs one at a time (each cached; a random or bayes search
    continues an earlier invocation's), then write its table; ``train_dataset`` / ``eval_gt``: tests'."""
    import numpy as np

    opts = opts or SweepOptions()
    sweeps = _sweeps()
    sweep = load_sweep(path)
    limit = opts.count or sweep.config.get("run_cap")
    if limit is None and sweep.method != "grid":
        raise SweepConfigError(
            f"{sweep.path}: a {sweep.method} search never ends by itself; give --count N "
            "or run_cap in the YAML"
        )
    run = runner.start_train_spec(
        sweep_spec(sweep),
        opts.tracking(),
        name=f"sweep_{sweep.name}",
        train_dataset=train_dataset,
        eval_gt=eval_gt,
    )
    state, saved = json_safe({"config": sweep.config, "extra": list(opts.extra)}), run.out / "proposals.json"
    earlier = json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else {}
    resume = sweep.method != "grid" and {k: earlier.get(k) for k in state} == state
    earlier = earlier.get("runs", []) if resume else []
    runs, rows, metric = [], [], sweep.metric.replace("/", "_")  # val/acc: its training's best_val_acc
    while limit is None or len(runs) < limit:
        if len(runs) < len(earlier):
            run_config = earlier[len(runs)]
        else:
            np.random.seed(opts.search_seed + len(runs))  # random / bayes proposals: reproducible per history
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                proposal = sweeps.next_run(sweep.config, runs)
            if proposal is None:
                break
            run_config = json.loads(json.dumps(proposal.config))
        row = sweep_row(sweep, run_config)
        of = f"/{limit}" if limit else ""
        log.info("sweep %s: run %d%s: %s", sweep.name, len(runs) + 1, of, row["key"])
        done = runner.train_row(run, row)
        rows.append(row)
        values = [v for v in (runner.trained_metric(t, metric) for t in done["trains"]) if v is not None]
        value = sum(values) / len(values) if values else None
        runs.append(
            sweeps.SweepRun(
                name=row["key"],
                config=run_config,
                state=sweeps.RunState.finished if value is not None else sweeps.RunState.failed,
                history=[] if value is None else [{sweep.metric: value}],
                summary_metrics={} if value is None else {sweep.metric: value},
            )
        )
        if sweep.method != "grid":
            write_json(saved, {**state, "runs": [r.config for r in runs]})
    return runner.train_table(run, rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sweep",
        help="a sweep of keytrack/experiments/sweeps/ by name (quick, figure7, ...), or a sweep YAML's path",
    )
    add_options(parser, SweepOptions, "sweep_<name>")


def run(args: argparse.Namespace) -> int:
    try:
        opts = options_from(SweepOptions, args)
    except ValueError as err:
        raise InputError(f"keytrack ablate sweep: {err}") from None
    return finish(f"sweep {args.sweep}", run_sweep(args.sweep, opts))


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    return command_main("python -m keytrack.ablations.sweep", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    from keytrack.errors import run_command

    sys.exit(run_command("python -m keytrack.ablations.sweep", main))
