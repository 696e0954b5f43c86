"""W&B sweep YAMLs (experiments/sweeps/), the offline sweep runner (ablations.sweep) and the Figure 7
table (ablations.sweep_table)."""
from __future__ import annotations

import csv
import json
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ablations import sweep as sw
from ablations.profile import Profile
from ablations.sweep_table import SIZE_KEYS, paper_figure7, table_rows, write_sweep_table
from keytrack.config import load_config
from keytrack.synth import generate_dataset

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import sweeps

SWEEP_FILES = sorted(sw.SWEEPS_DIR.glob("*.yaml"))
#: Overrides that make a training run take seconds: a few batches, no W&B, no progress bars.
TINY = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.max_epochs=1",
        "logging.wandb=false", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "data.synthetic.videos=3", "model.hidden=32", "model.intermediate=32", "model.heads=2"]


@pytest.fixture(scope="module")
def scenes():
    return generate_dataset(3, seed=5)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One CPU thread: tiny models on a shared CPU run fastest so; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _proposals(spec: sw.SweepSpec, limit: int = 20) -> list[dict]:
    """The grid's every run config, or the first ``limit`` proposals of a random / bayes search."""
    runs, out = [], []
    for _ in range(limit):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = sweeps.next_run(spec.config, runs)
        if run is None:
            break
        run.state = sweeps.RunState.finished
        runs.append(run)
        out.append(json.loads(json.dumps(run.config)))
    return out


# -- sweep YAMLs ---------------------------------------------------------------------------------------

def test_the_three_sweeps_exist():
    assert {p.stem for p in SWEEP_FILES} >= {"figure7", "quick", "bayes"}


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_sweep_yaml_is_a_valid_wandb_sweep_running_keytrack_train(path):
    import yaml

    raw = yaml.safe_load(path.read_text())
    assert sweeps.schema_violations_from_proposed_config(raw) == []       # W&B's own validation
    spec = sw.load_sweep(path)
    assert raw.get("name") == spec.name == path.stem
    assert spec.metric in ("val/acc", "val/rank1") and spec.goal == "maximize"   # logged by keytrack train
    command = spec.command
    assert command[:5] == ["${env}", "${interpreter}", "-m", "keytrack.cli", "train"]
    assert command[-1] == sw.ARGS_MACRO
    # Under a W&B agent the run must report to the server and every run must get its own folder.
    assert "logging.mode=online" in command
    run_names = [c for c in command if c.startswith("run_name=")]
    assert len(run_names) == 1
    swept = [k for k, p in spec.config["parameters"].items() if "value" not in p]
    for key in swept:
        leaf = key if key != "model" else "model.layers"
        assert "${" + leaf + "}" in run_names[0], f"run_name does not name the swept {key}"


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_every_proposed_run_is_a_valid_keytrack_train_config(path):
    """All grid points (or the first bayes / random proposals) compose with load_config, get
    distinct run folders and build their matching network."""
    from keytrack.models.factory import build_matcher, matcher_config

    spec = sw.load_sweep(path)
    proposals = _proposals(spec, limit=100 if spec.method == "grid" else 4)
    if spec.method == "grid":
        n = 1
        for p in spec.config["parameters"].values():
            n *= len(p.get("values", [p.get("value")]))
        assert len(proposals) == n
    names = set()
    for run_config in proposals:
        command = sw.expand_command(spec.command, sw.agent_args(run_config),
                                    program=spec.config.get("program"))
        assert command[command.index(sys.executable):][:4] == [sys.executable, "-m", "keytrack.cli", "train"]
        cfg = load_config(sw.train_overrides(command))
        for key, value in sw.flatten_proposal(run_config).items():
            assert OmegaConf.select(cfg, key) == value, key
        names.add(cfg.run_name)
        if spec.method == "grid":
            build_matcher(matcher_config(cfg))      # sizes are consistent (e.g. hidden divisible by heads)
    assert len(names) == len(proposals)


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_first_proposed_run_trains_with_fast_dev_run(path, tmp_path, scenes):
    from lightning_modules.train import train

    spec = sw.load_sweep(path)
    run_config = _proposals(spec, limit=1)[0]
    dev_run = [f"output_dir={tmp_path}", "trainer.fast_dev_run=true", "logging.wandb=false",
               "loader.val_batch_size=64", "trainer.enable_progress_bar=false",
               "trainer.enable_model_summary=false"]
    command = sw.expand_command(spec.command, [*sw.agent_args(run_config), *dev_run])
    cfg = load_config(sw.train_overrides(command))
    result = train(cfg, scenes)
    assert result["global_step"] == 1 and result["parameters"] > 0


@pytest.mark.parametrize("name", ["figure7", "figure7_improved"])
def test_figure7_grid_is_the_papers_configurations(name):
    """Every distinct configuration of the paper's Figure 7 except the one no transformer can have
    (for the paper's model and for the improved matcher alike)."""
    spec = sw.load_sweep(name)
    grid = {tuple(v[k] for k in ("layers", "hidden", "intermediate", "heads"))
            for v in spec.config["parameters"]["model"]["values"]}
    paper = {tuple(r[k] for k in ("layers", "hidden", "intermediate", "heads")) for r in paper_figure7()}
    assert grid == {c for c in paper if c[1] % c[3] == 0}
    assert paper - grid == {(4, 128, 128, 6)}


def test_load_sweep_rejects_bad_configs_naming_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: gird\nparameters: {model.layers: {values: [1]}}\n"
                   "command: [train, '${args_no_hyphens}']\nmetric: {name: val/acc, goal: maximize}\n")
    with pytest.raises(sw.SweepConfigError, match="bad.yaml: not a valid W&B sweep config"):
        sw.load_sweep(bad)
    no_args = tmp_path / "no_args.yaml"
    no_args.write_text("method: grid\nparameters: {model.layers: {values: [1]}}\n"
                       "command: [keytrack, train, '${args}']\nmetric: {name: val/acc, goal: maximize}\n")
    with pytest.raises(sw.SweepConfigError, match=r"no_args.yaml: 'command' must pass .*args_no_hyphens"):
        sw.load_sweep(no_args)
    with pytest.raises(sw.SweepConfigError, match="no such sweep file"):
        sw.load_sweep(tmp_path / "missing.yaml")


def test_agent_args_and_command_expansion_follow_wandb_agent():
    args = sw.agent_args({"model": {"value": {"layers": 2, "heads": 4}}, "optim.lr": {"value": 0.001}})
    assert args == ["model={'layers': 2, 'heads': 4}", "optim.lr=0.001"]
    command = ["${env}", "${interpreter}", "-m", "keytrack.cli", "train", "a=1", "${args_no_hyphens}"]
    cmd = sw.expand_command(command, args, interpreter="PY")
    assert cmd[cmd.index("PY"):] == ["PY", "-m", "keytrack.cli", "train", "a=1", *args]
    cfg = load_config(["experiment=quick", *args])
    assert (cfg.model.layers, cfg.model.heads, cfg.model.hidden, cfg.optim.lr) == (2, 4, 128, 0.001)
    with pytest.raises(sw.SweepConfigError, match="args_json_file"):
        sw.expand_command(["train", "${args_json_file}"], [])


# -- early termination --------------------------------------------------------------------------------------

def _finished(name: str, history: list[float]):
    return sw._sweep_run(name, {}, sweeps.RunState.finished, "val/acc", history)


def test_hyperband_stops_a_bad_run_and_keeps_a_good_one():
    """bayes.yaml: bands at epochs 1, 2, 4 (min_iter 1, eta 2); a run outside the best half at its
    last band stops."""
    config = sw.load_sweep("bayes").config
    previous = [_finished(f"r{i}", h) for i, h in enumerate([[0.60, 0.80, 0.85], [0.62, 0.82, 0.88],
                                                             [0.58, 0.79, 0.86], [0.61, 0.83, 0.90]])]
    assert sw.hyperband_should_stop(config, previous, "bad", [0.50, 0.55])
    assert not sw.hyperband_should_stop(config, previous, "good", [0.63, 0.84])
    # At epoch 1, 0.615 is in the best half of (0.58, 0.60, 0.61, 0.615, 0.62): the run goes on; 0.55 is not.
    assert not sw.hyperband_should_stop(config, previous, "early", [0.615])
    assert sw.hyperband_should_stop(config, previous, "early", [0.55])
    assert not sw.hyperband_should_stop(config, [], "alone", [0.5])      # nothing to compare with


FAKE_TRAINER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    run, values = Path(sys.argv[1]), [float(v) for v in sys.argv[2:]]
    out = run / "csv" / "version_0"
    out.mkdir(parents=True)
    rows = ["epoch,step,train/loss,val/acc"]
    for epoch, v in enumerate(values):
        rows.append(f"{epoch},{epoch * 10 + 5},0.7,")
        rows.append(f"{epoch},{epoch * 10 + 9},,{v}")
        (out / "metrics.csv").write_text("\\n".join(rows) + "\\n")
        time.sleep(0.4)
""")


@pytest.mark.slow
def test_execute_stops_a_run_midway_with_sigterm(tmp_path):
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAINER)
    run = tmp_path / "run"
    values = ["0.5", "0.52", "0.53", "0.54", "0.55", "0.56", "0.57", "0.58", "0.59", "0.6"]
    asked = []

    def should_stop(history):
        asked.append(list(history))
        return len(history) >= 2

    out = sw.execute([sys.executable, str(script), str(run), *values], run=run, metric="val/acc",
                     log_path=tmp_path / "log.txt", should_stop=should_stop, poll_seconds=0.05,
                     kill_seconds=5)
    assert out.stopped and out.returncode != 0
    assert 2 <= len(out.history) < len(values)
    assert out.history[:2] == [0.5, 0.52]
    assert asked[0] == [0.5] and asked[-1][:2] == [0.5, 0.52]
    # Without a stop rule the same run goes to its end.
    run2 = tmp_path / "run2"
    out = sw.execute([sys.executable, str(script), str(run2), "0.5", "0.6"], run=run2, metric="val/acc",
                     log_path=tmp_path / "log2.txt", poll_seconds=0.05)
    assert not out.stopped and out.returncode == 0 and out.history == [0.5, 0.6]


def test_metric_history_one_value_per_epoch_across_attempts(tmp_path):
    for version, text in ((0, "epoch,step,val/acc,train/loss\n0,9,0.5,\n0,10,,0.7\n1,19,0.6,\n"),
                          (1, "epoch,step,val/acc\n2,29,0.7\n3,39,0.65\n")):
        path = tmp_path / "csv" / f"version_{version}" / "metrics.csv"
        path.parent.mkdir(parents=True)
        path.write_text(text)
    assert sw.metric_history(tmp_path, "val/acc") == [0.5, 0.6, 0.7, 0.65]
    assert sw.metric_history(tmp_path / "missing", "val/acc") == []


# -- the offline runner, end to end -------------------------------------------------------------------

@pytest.mark.slow
def test_offline_runner_runs_the_quick_grid_then_reuses_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KEYTRACK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    test = Profile(synthetic_eval_videos=1, synthetic_eval_first_index=1000).load_eval()
    opts = sw.SweepOptions(out=str(tmp_path / "results"), runs_dir=str(tmp_path / "runs"), extra=tuple(TINY),
                           poll_seconds=0.2, threads=1)
    outcome = sw.run_sweep(sw.SWEEPS_DIR / "quick.yaml", opts, eval_gt=test)
    assert outcome.failures == []
    assert [r["name"] for r in outcome.results] == ["quick-L1", "quick-L2"]
    for layers, r in zip((1, 2), outcome.results):
        assert r["status"] == "finished" and r["training"] == "trained"
        assert r["model"] == {"layers": layers, "hidden": 32, "intermediate": 32, "heads": 2}
        assert r["parameters"] == r["parameter_breakdown"]["total"] > 0
        assert len(r["history"]) == r["epochs"] == 1 and 0.0 <= r["val_acc"] <= 1.0
        assert 0.0 <= r["idsw_total"] <= 100.0 and r["num_objects"] > 0
        assert Path(r["checkpoint"]).is_file()
        assert Path(r["run_dir"]).parent.parent == outcome.train_root
    assert outcome.results[1]["parameters"] > outcome.results[0]["parameters"]
    with open(outcome.out / "table.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [row["Layers"] for row in table] == ["1", "2"]
    assert float(table[0]["%IDSW"]) == pytest.approx(outcome.results[0]["idsw_total"])
    assert (outcome.out / "idsw_vs_params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data.synthetic.videos=3" in (outcome.out / "table.md").read_text()

    again = sw.run_sweep(sw.SWEEPS_DIR / "quick.yaml", opts, eval_gt=test)
    assert again.results == outcome.results
    assert "(2 reused, 0 run now)" in again.notes[-1]
    # Only the missing run is done again.
    (outcome.out / "runs" / "quick-L2.json").unlink()
    third = sw.run_sweep(sw.SWEEPS_DIR / "quick.yaml", opts, eval_gt=test)
    assert "(1 reused, 1 run now)" in third.notes[-1]
    assert third.results[1]["training"] == "reused"          # its finished training is reused too


@pytest.mark.slow
def test_offline_runner_records_a_failed_run_and_goes_on(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(textwrap.dedent("""
        name: broken
        method: grid
        metric: {name: val/acc, goal: maximize}
        parameters:
          experiment: {values: [no_such_experiment, nor_this_one]}
        command: ["${env}", "${interpreter}", "-m", keytrack.cli, train, "${args_no_hyphens}"]
    """))
    opts = sw.SweepOptions(out=str(tmp_path / "results"), runs_dir=str(tmp_path / "runs"), track=False)
    outcome = sw.run_sweep(path, opts)
    assert [r["status"] for r in outcome.results] == ["failed", "failed"]
    assert len(outcome.failures) == 2 and "no_such_experiment" in outcome.failures[0]
    assert "nor_this_one" in outcome.failures[1]                 # the sweep went on after the first
    record = json.loads((outcome.out / "runs" / "broken-experiment-no_such_experiment.json").read_text())
    assert record["status"] == "failed" and record["error"]["type"] == "ConfigError"
    assert "failed: ConfigError" in (outcome.out / "table.md").read_text()


def _fake_training(calls):
    """Stands in for training + tracking: val/acc rises with the learning rate, one epoch."""
    def fake(spec, cfg, command, key, flat, previous, out, env, opts, test):
        calls.append((key, len(previous)))
        acc = min(0.99, 0.5 + 100 * float(cfg.optim.lr))
        return {"name": key, "status": "finished", "params": flat, "history": [acc], "epochs": 1,
                "val_acc": acc, "model": {k: int(cfg.model[k]) for k in SIZE_KEYS},
                "parameters": 1000 * int(cfg.model.layers)}
    return fake


@pytest.mark.slow
def test_bayes_sweep_continues_from_its_finished_runs(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sw, "_train_and_evaluate", _fake_training(calls))
    opts = sw.SweepOptions(out=str(tmp_path / "results"), runs_dir=str(tmp_path / "runs"), track=False,
                           count=2)
    first = sw.run_sweep("bayes", opts)
    assert len(first.results) == 2 and [n for _, n in calls] == [0, 1]     # each run sees the ones before
    assert len({r["name"] for r in first.results}) == 2
    calls.clear()
    opts.count = 3
    more = sw.run_sweep("bayes", opts)
    assert [n for _, n in calls] == [2]                        # only the missing run; the 2 are reused
    assert {r["name"] for r in more.results} > {r["name"] for r in first.results} and len(more.results) == 3


@pytest.mark.slow
def test_runs_that_share_a_run_name_are_refused(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sw, "_train_and_evaluate", _fake_training(calls))
    path = tmp_path / "same.yaml"
    path.write_text("method: grid\nmetric: {name: val/acc, goal: maximize}\n"
                    "parameters: {model.layers: {values: [1, 2]}}\n"
                    "command: ['${interpreter}', '-m', keytrack.cli, train, run_name=fixed, "
                    "'${args_no_hyphens}']\n")
    opts = sw.SweepOptions(out=str(tmp_path / "r"), runs_dir=str(tmp_path / "runs"), track=False)
    outcome = sw.run_sweep(path, opts)
    assert [k for k, _ in calls] == ["fixed"]
    assert outcome.results[1]["status"] == "failed"
    assert "repeats an earlier run" in outcome.results[1]["error"]


def test_random_search_needs_a_count(tmp_path):
    path = tmp_path / "rand.yaml"
    path.write_text("method: random\nmetric: {name: val/acc, goal: maximize}\n"
                    "parameters: {optim.lr: {min: 0.0001, max: 0.001}}\n"
                    "command: ['${interpreter}', '-m', keytrack.cli, train, '${args_no_hyphens}']\n")
    with pytest.raises(sw.SweepConfigError, match="--count"):
        sw.run_sweep(path, sw.SweepOptions(out=str(tmp_path / "r"), track=False))


# -- the Figure 7 table --------------------------------------------------------------------------------------

def _result(name, layers, hidden, intermediate, heads, **kw):
    return {"name": name, "status": "finished", "model": {"layers": layers, "hidden": hidden,
                                                          "intermediate": intermediate, "heads": heads}, **kw}


def test_table_rows_put_the_papers_values_beside_ours():
    results = [
        _result("b", 4, 64, 256, 4, parameters=230_000, val_acc=0.91, idsw_total=1.5, mota_total=60.0,
                epochs=2),
        _result("a", 4, 128, 128, 4, parameters=473_218, val_acc=0.9, idsw_total=1.25, mota_total=61.0,
                epochs=2),
        _result("x", 1, 128, 128, 4, parameters=170_000, val_acc=0.8, idsw_total=3.0, epochs=1),
        {"name": "f", "status": "failed", "error": "ValueError: boom",
         "model": {"layers": 2, "hidden": 128, "intermediate": 512, "heads": 4}},
    ]
    rows = table_rows(results)
    by_run = {r["run"]: r for r in rows if r["run"]}
    a = by_run["a"]
    assert (a["params_m"], a["val_acc"], a["idsw"], a["paper_params_m"], a["paper_idsw"]) == \
        (pytest.approx(0.473218), pytest.approx(90.0), 1.25, 0.43, 0.8)
    assert by_run["x"]["paper_idsw"] is None                         # not one of the paper's rows
    assert by_run["f"]["status"] == "failed: ValueError: boom" and by_run["f"]["paper_idsw"] == 1.0
    # Paper order first (its rows 1, 4, 6 are f, b, a), ours without a paper row last.
    assert [r["run"] for r in rows][:1] == ["f"]
    assert [r["run"] for r in rows if r["run"]] == ["f", "b", "a", "x"]
    assert rows[-1]["run"] == "x"
    paper_only = [r for r in rows if r["run"] is None]
    assert len(paper_only) == len(paper_figure7()) - 3
    six = next(r for r in paper_only if r["heads"] == 6)
    assert six["status"].startswith("not run: hidden 128 does not split into 6 heads")
    assert len(table_rows(results[2:3])) == 1          # no paper configuration run: no paper-only rows


def test_write_sweep_table_markdown_csv_and_plot(tmp_path):
    results = [_result("fig-a", 4, 128, 128, 4, parameters=473_218, val_acc=0.9, idsw_total=1.234,
                       mota_total=61.0, epochs=2),
               _result("fig-s", 2, 128, 512, 4, parameters=400_000, val_acc=0.8, idsw_total=2.0,
                       mota_total=50.0, epochs=1, status="stopped", stopped_after_epoch=1)]
    files = write_sweep_table(results, tmp_path, title="T", notes=["a note"])
    assert [f.name for f in files] == ["table.md", "table.csv", "idsw_vs_params.png"]
    md = (tmp_path / "table.md").read_text()
    assert md.startswith("# T\n\n| Run | Layers | Hidden | Intermediate | Heads | Params (M) | Val acc (%) | "
                         "%IDSW | MOTA | Epochs | Params (M, paper) | %IDSW (paper) | Status |\n")
    assert ("| fig-s | 2 | 128 | 512 | 4 | 0.40 | 80.0 | 2.00 | 50.0 | 1 | 0.40 | 1.0 | "
            "stopped by hyperband after epoch 1 |") in md
    assert "| fig-a | 4 | 128 | 128 | 4 | 0.47 | 90.0 | 1.23 | 61.0 | 2 | 0.43 | 0.8 | finished |" in md
    assert md.rstrip().endswith("- a note")
    with open(tmp_path / "table.csv", newline="") as f:
        rows = {r["Run"]: r for r in csv.DictReader(f)}
    assert float(rows["fig-a"]["%IDSW"]) == 1.234
    assert float(rows["fig-a"]["Params (M)"]) == pytest.approx(0.473218)
    assert rows[""]["%IDSW (paper)"] != ""                    # the paper's other rows, ours empty
    assert (tmp_path / "idsw_vs_params.png").stat().st_size > 10_000
    # A run at chance level is flagged: its %IDSW says nothing about its architecture.
    write_sweep_table([_result("flat", 1, 32, 32, 2, parameters=9_000, val_acc=0.5, idsw_total=70.0)],
                      tmp_path / "u", title="U", plot=False)
    assert "(flat): the run did not learn to match" in (tmp_path / "u" / "table.md").read_text()
    assert not (tmp_path / "u" / "idsw_vs_params.png").exists()
    # A sweep whose runs chose their checkpoint by val/rank1 (figure7_improved) shows it beside val/acc.
    write_sweep_table([_result("r", 4, 128, 128, 4, parameters=421_890, val_acc=0.95, val_rank1=0.9812,
                               idsw_total=0.5, epochs=2)], tmp_path / "r", title="R", plot=False)
    md = (tmp_path / "r" / "table.md").read_text()
    assert "| Val acc (%) | Val rank-1 (%) |" in md and "| 95.0 | 98.1 |" in md


