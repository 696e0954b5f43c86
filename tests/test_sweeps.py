"""W&B sweep YAMLs (keytrack/experiments/sweeps/), run offline by keytrack.ablations.sweep into the training
spec of Figure 7 (left), keytrack/experiments/ablations/figure7.yaml."""

from __future__ import annotations

import csv
import json
import textwrap
import warnings
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from keytrack.ablations import cells, runner
from keytrack.ablations import sweep as sw
from keytrack.config import load_config
from keytrack.reference import paper_results
from keytrack.synth import SynthConfig, generate_dataset

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import sweeps

SWEEP_FILES = sorted(sw.SWEEPS_DIR.glob("*.yaml"))
SIZES = ("layers", "hidden", "intermediate", "heads")
#: Overrides that make a training run take seconds: a few batches, no W&B, no progress bars.
TINY = [
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.max_epochs=1",
    "logging.wandb=false",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.synthetic.videos=3",
    "model.hidden=32",
    "model.intermediate=32",
    "model.heads=2",
]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One CPU thread: tiny models on a shared CPU run fastest so; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def eval_gt():
    return generate_dataset(
        1, seed=7, config=SynthConfig(frames_per_video=(8, 10), people_per_video=(2, 3)), first_index=1000
    )


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


def _paper_sizes() -> set[tuple]:
    return {tuple(r[k] for k in SIZES) for r in paper_results()["transformer_hyperparameters"]["rows"]}


# -- sweep YAMLs ---------------------------------------------------------------------------------------


def test_the_three_sweeps_exist():
    assert {p.stem for p in SWEEP_FILES} >= {"figure7", "quick", "bayes"}


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_sweep_yaml_is_a_valid_wandb_sweep_running_keytrack_train(path):
    import yaml

    raw = yaml.safe_load(path.read_text())
    assert sweeps.schema_violations_from_proposed_config(raw) == []  # W&B's own validation
    spec = sw.load_sweep(path)
    assert raw.get("name") == spec.name == path.stem
    assert spec.metric in ("val/acc", "val/rank1") and spec.config["metric"]["goal"] == "maximize"
    command = spec.command
    assert command[:5] == ["${env}", "${interpreter}", "-m", "keytrack.cli", "train"]
    assert command[-1] == sw.ARGS_MACRO
    # Under a W&B agent the run must report to the server and every run must get its own folder.
    assert "logging.mode=online" in command
    run_names = [c for c in command if c.startswith("run_name=")]
    assert len(run_names) == 1
    for key in spec.swept:
        leaf = key if key != "model" else "model.layers"
        assert "${" + leaf + "}" in run_names[0], f"run_name does not name the swept {key}"


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_every_proposed_run_is_a_valid_keytrack_train_config(path):
    """All grid points (or the first bayes / random proposals) become rows whose config composes with
    the proposed values, with distinct names, and whose matching network builds."""
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
        row = sw.sweep_row(spec, run_config)
        assert not any(o.startswith(("run_name=", "logging.mode=")) for o in row["overrides"])
        cfg = load_config([f"experiment={row['experiment']}", *row["overrides"]])
        for key, value in sw.flatten_proposal(run_config).items():
            assert OmegaConf.select(cfg, key) == value, key
        names.add(row["key"])
        if spec.method == "grid":
            build_matcher(matcher_config(cfg))  # sizes are consistent (e.g. hidden divisible by heads)
    assert len(names) == len(proposals)


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_first_proposed_run_trains_with_fast_dev_run(path, tmp_path):
    from keytrack.lightning.train import train

    spec = sw.load_sweep(path)
    row = sw.sweep_row(spec, _proposals(spec, limit=1)[0])
    dev_run = [
        f"output_dir={tmp_path}",
        "trainer.fast_dev_run=true",
        "logging.wandb=false",
        "loader.val_batch_size=64",
        "trainer.enable_model_summary=false",
    ]
    cfg = load_config([f"experiment={row['experiment']}", *row["overrides"], *dev_run])
    result = train(cfg, generate_dataset(3, seed=5))
    assert result["global_step"] == 1 and result["parameters"] > 0


@pytest.mark.parametrize("name", ["figure7", "figure7_improved"])
def test_figure7_grid_is_the_papers_configurations(name):
    """Every distinct configuration of the paper's Figure 7 except the one no transformer can have
    (for the paper's model and for the improved matcher alike), as the rows of the figure7 spec."""
    spec = sw.load_sweep(name)
    grid = {tuple(v[k] for k in SIZES) for v in spec.config["parameters"]["model"]["values"]}
    paper = _paper_sizes()
    assert grid == {c for c in paper if c[1] % c[3] == 0}
    assert paper - grid == {(4, 128, 128, 6)}
    rows = runner.train_rows(runner.by_profile(runner.load_spec("figure7"), "quick"))
    spec_sizes = [tuple(int(o.split("=")[1]) for o in r["overrides"]) for r in rows]
    assert all([o.split("=")[0] for o in r["overrides"]] == [f"model.{k}" for k in SIZES] for r in rows)
    assert set(spec_sizes) == grid and len(spec_sizes) == len(grid)


def test_figure7_spec_has_the_sweeps_budget_and_tracking():
    """The figure7 spec's quick budget is what figure7.yaml's command gives keytrack train."""
    spec = runner.by_profile(runner.load_spec("figure7"), "quick")
    sweep = sw.load_sweep("figure7")
    row = runner.train_rows(spec)[5]
    budget = runner.budget_file_overrides(spec["train"]["budget"])
    ours = load_config(["experiment=paper", *budget, *row["overrides"]])
    proposed = sw.sweep_row(sweep, {"model": {"value": dict(zip(SIZES, (4, 128, 128, 4)))}})
    theirs = load_config([f"experiment={proposed['experiment']}", *proposed["overrides"]])
    for key in ("optim", "loader", "trainer.max_epochs", "model", "tokens", "data"):
        assert OmegaConf.select(ours, key) == OmegaConf.select(theirs, key), key
    assert spec["train"]["cost"] and spec["track"] == {
        "setting": "predicted_boxes_predicted_keypoints",
        "perturb_seed": 0,
        "delta": 4,
        "keypoint_threshold": 0.5,
        "synthetic_test_videos": 8,
    }
    assert runner.by_profile(runner.load_spec("figure7"), "full")["train"]["budget"] is None


def test_the_papers_values_go_beside_the_rows_of_its_sizes():
    spec = runner.load_spec("figure7")
    chosen = {"row": "any name", "layers": 4, "hidden": 128, "intermediate": 128, "heads": 4}
    assert runner.paper_values(spec, chosen) == {"params_m_paper": 0.43, "idsw_paper": 0.8}
    assert runner.paper_values(spec, {**chosen, "heads": 2}) == {"params_m_paper": 0.43, "idsw_paper": 0.9}
    assert runner.paper_values(spec, {**chosen, "layers": 1}) == {}  # not one of the paper's sizes


def test_load_sweep_rejects_bad_configs_naming_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "method: gird\nparameters: {model.layers: {values: [1]}}\n"
        "command: [train, '${args_no_hyphens}']\nmetric: {name: val/acc, goal: maximize}\n"
    )
    with pytest.raises(sw.SweepConfigError, match="bad.yaml: not a valid W&B sweep config"):
        sw.load_sweep(bad)
    no_args = tmp_path / "no_args.yaml"
    no_args.write_text(
        "method: grid\nparameters: {model.layers: {values: [1]}}\n"
        "command: [keytrack, train, '${args}']\nmetric: {name: val/acc, goal: maximize}\n"
    )
    with pytest.raises(sw.SweepConfigError, match=r"no_args.yaml: 'command' must pass .*args_no_hyphens"):
        sw.load_sweep(no_args)
    with pytest.raises(sw.SweepConfigError, match="no such sweep file"):
        sw.load_sweep(tmp_path / "missing.yaml")


def test_proposals_become_rows_as_wandb_agent_formats_them():
    args = sw.agent_args({"model": {"value": {"layers": 2, "heads": 4}}, "optim.lr": {"value": 0.001}})
    assert args == ["model={'layers': 2, 'heads': 4}", "optim.lr=0.001"]
    command = ["${env}", "${interpreter}", "-m", "keytrack.cli", "train", "a=1", "${args_no_hyphens}"]
    assert sw.train_overrides(command, args) == ["a=1", *args]
    cfg = load_config(["experiment=quick", *args])
    assert (cfg.model.layers, cfg.model.heads, cfg.model.hidden, cfg.optim.lr) == (2, 4, 128, 0.001)
    row = sw.sweep_row(
        sw.load_sweep("figure7"),
        {"model": {"value": {"layers": 2, "hidden": 64, "intermediate": 256, "heads": 4}}},
    )
    assert (
        row["key"] == row["row"] == "layers2-hidden64-intermediate256-heads4"
        and row["experiment"] == "default"
    )
    assert row["overrides"][-1] == "model={'layers': 2, 'hidden': 64, 'intermediate': 256, 'heads': 4}"
    assert "output_dir=runs/sweep_figure7" in row["overrides"] and "trainer.max_epochs=2" in row["overrides"]


def test_random_search_needs_a_count(tmp_path):
    path = tmp_path / "rand.yaml"
    path.write_text(
        "method: random\nmetric: {name: val/acc, goal: maximize}\n"
        "parameters: {optim.lr: {min: 0.0001, max: 0.001}}\n"
        "command: ['${interpreter}', '-m', keytrack.cli, train, '${args_no_hyphens}']\n"
    )
    with pytest.raises(sw.SweepConfigError, match="--count"):
        sw.run_sweep(path, sw.SweepOptions(out=str(tmp_path / "r")))


# -- the offline runner, training and tracking stood in for ------------------------------------------------


@pytest.fixture
def fake_runs(monkeypatch, tmp_path):
    """Training, tracking and the cost stand in for (each still a cached run of the runner): val/acc
    rises with the learning rate, %IDSW falls with it, parameters grow with the blocks."""
    from keytrack.models import cost

    trained = []

    def train(self, key, experiment, overrides, quiet=()):
        def fn():
            trained.append(key)
            cfg = load_config([f"experiment={experiment}", *overrides])
            return {
                "best_val_acc": min(0.99, 0.5 + 100 * float(cfg.optim.lr)),
                "global_step": 2,
                "train_seconds": 1.0,
                "run_dir": str(tmp_path),
                "checkpoint": "none",
            }

        return self.cache.run(key, fn, {"kind": "train", "overrides": list(overrides)})

    def track(self, key, record, matcher="network"):
        if not record.ok:
            return self.evaluator.fail(key, f"training failed ({record.failure})", self.tracker, self.evalset)
        return self.cache.run(
            key,
            lambda: {"idsw": {"Total": 100 * (1 - record.result["best_val_acc"])}, "mota": {"Total": 50.0}},
            {"kind": "track", "train": record.key},
        )

    monkeypatch.setattr(cells.TrainAndTrack, "train", train)
    monkeypatch.setattr(cells.TrainAndTrack, "track", track)
    monkeypatch.setattr(
        cost,
        "per_pair",
        lambda experiment, overrides: {
            "params": 100_000 * int(load_config([f"experiment={experiment}", *overrides]).model.layers),
            "flops": 1,
        },
    )
    return trained


def test_bayes_sweep_is_told_each_result_and_continues_from_its_runs(
    tmp_path, eval_gt, fake_runs, monkeypatch
):
    told = []
    real = sweeps.next_run

    def next_run(config, runs):
        told.append([r.summary_metrics.get("val/acc") for r in runs])
        return real(config, runs)

    monkeypatch.setattr(sweeps, "next_run", next_run)
    opts = sw.SweepOptions(out=str(tmp_path / "results"), count=2)
    first = sw.run_sweep("bayes", opts, eval_gt=eval_gt)
    assert len(first.rows) == 2 and len(fake_runs) == 2 and len(set(fake_runs)) == 2
    # each proposal saw the runs before it, with the metric of each
    assert (
        len(told) == 2 and told[0] == [] and told[1] == [pytest.approx(first.rows[0]["val_acc"].mean / 100)]
    )
    fake_runs.clear()
    told.clear()
    more = sw.run_sweep("bayes", sw.SweepOptions(out=str(tmp_path / "results"), count=3), eval_gt=eval_gt)
    assert len(fake_runs) == 1 and len(told) == 1 and len(told[0]) == 2  # only the third is proposed and run
    assert [r["row"] for r in more.rows][:2] == [r["row"] for r in first.rows]
    assert "Its early termination needs a W&B server" in (tmp_path / "results" / "table.md").read_text()
    # another budget (--extra) starts the search again
    fake_runs.clear()
    other = sw.run_sweep(
        "bayes",
        sw.SweepOptions(out=str(tmp_path / "results"), count=1, extra=("trainer.max_epochs=1",)),
        eval_gt=eval_gt,
    )
    assert len(told) == 2 and told[-1] == [] and len(other.rows) == 1


def test_a_failed_run_is_recorded_and_the_others_go_on(tmp_path, eval_gt):
    path = tmp_path / "broken.yaml"
    path.write_text(
        textwrap.dedent("""
        name: broken
        method: grid
        metric: {name: val/acc, goal: maximize}
        parameters:
          experiment: {values: [no_such_experiment, nor_this_one]}
        command: ["${env}", "${interpreter}", "-m", keytrack.cli, train, "${args_no_hyphens}"]
    """)
    )
    result = sw.run_sweep(path, sw.SweepOptions(out=str(tmp_path / "results")), eval_gt=eval_gt)
    assert [r["row"] for r in result.rows] == ["experiment-no_such_experiment", "experiment-nor_this_one"]
    assert all("training failed" in r["status"] for r in result.rows)
    assert any("no_such_experiment" in f for f in result.failures)
    assert any("nor_this_one" in f for f in result.failures)  # the sweep went on after the first
    record = json.loads(
        (tmp_path / "results" / "runs" / "train-experiment-no_such_experiment-seed0.json").read_text()
    )
    assert record["status"] == "failed" and record["error"]["type"] == "ConfigError"
    assert "ConfigError" in (tmp_path / "results" / "table.md").read_text()


def test_figure7_sweep_puts_the_papers_values_beside_ours(tmp_path, eval_gt, fake_runs):
    result = sw.run_sweep("figure7", sw.SweepOptions(out=str(tmp_path / "r")), eval_gt=eval_gt)
    assert len(result.rows) == 7 and not result.failures
    by_size = {tuple(r[k] for k in SIZES): r for r in result.rows}
    paper = {tuple(r[k] for k in SIZES): r for r in paper_results()["transformer_hyperparameters"]["rows"]}
    for size, row in by_size.items():
        assert (row["params_m_paper"], row["idsw_paper"]) == (paper[size]["params_m"], paper[size]["value"])
        assert row["params_m"] == pytest.approx(0.1 * size[0])
    md = (tmp_path / "r" / "table.md").read_text()
    assert md.startswith("# Sweep figure7: transformer size against parameters and %IDSW")
    assert "| Run | Layers | Hidden | Intermediate | Heads | Params (M) | Params (M, paper) |" in md
    assert "| layers4-hidden128-intermediate128-heads4 | 4 | 128 | 128 | 4 | 0.40 | 0.43 |" in md
    assert "does not split into 6 attention heads" in md
    assert (tmp_path / "r" / "idsw_vs_params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the offline runner, end to end ---------------------------------------------------------------------


@pytest.mark.slow
def test_offline_runner_runs_the_quick_grid_then_reuses_it(tmp_path, eval_gt, monkeypatch):
    monkeypatch.setenv("KEYTRACK_CACHE", str(tmp_path / "cache"))
    opts = sw.SweepOptions(
        out=str(tmp_path / "results"), extra=(*TINY, f"output_dir={tmp_path / 'runs'}"), threads=1
    )
    result = sw.run_sweep(sw.SWEEPS_DIR / "quick.yaml", opts, eval_gt=eval_gt)
    assert result.failures == []
    assert [r["row"] for r in result.rows] == ["layers1", "layers2"]
    for layers, r in zip((1, 2), result.rows):
        assert (r["layers"], r["hidden"], r["intermediate"], r["heads"]) == (layers, 32, 32, 2)
        assert r["params_m"] > 0 and r["steps"].mean == 2 and 0 <= r["val_acc"].mean <= 100
        assert 0.0 <= r["idsw"].mean <= 100.0 and r["status"] is None
        assert r.get("idsw_paper") is None  # not one of the paper's sizes
    assert result.rows[1]["params_m"] > result.rows[0]["params_m"]
    trained = [result.records[("train", k, 0)].result for k in ("layers1", "layers2")]
    assert all(
        Path(t["checkpoint"]).is_file() and Path(t["run_dir"]).parent.parent == tmp_path / "runs"
        for t in trained
    )
    out = tmp_path / "results"
    with open(out / "table.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [row["Layers"] for row in table] == ["1", "2"]
    assert (out / "idsw_vs_params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Sweep: quick.yaml (grid over model.layers" in (out / "table.md").read_text()

    again = sw.run_sweep(sw.SWEEPS_DIR / "quick.yaml", opts, eval_gt=eval_gt)
    assert [r["idsw"] for r in again.rows] == [r["idsw"] for r in result.rows]
    assert "(6 reused, 0 run now)" in (out / "table.md").read_text()
    # Only what is missing is done again: a deleted training record finds its finished run.
    (out / "runs" / "train-layers2-seed0.json").unlink()
    (out / "runs" / "track-layers2-seed0.json").unlink()
    third = sw.run_sweep(sw.SWEEPS_DIR / "quick.yaml", opts, eval_gt=eval_gt)
    assert "(4 reused, 2 run now)" in (out / "table.md").read_text()
    assert third.records[("train", "layers2", 0)].result["reused_run"]  # its training is reused too


def test_keytrack_ablate_sweep_fills_results_sweep_name(monkeypatch):
    """``make sweep SWEEP=figure7`` runs ``keytrack ablate sweep figure7``
    (keytrack/experiments/sweeps/figure7.yaml): the figure7 spec, its rows the proposals, written to
    runs/sweeps/figure7/ (the committed table, results/sweep_figure7/, only with --out)."""
    calls = []

    class Started(Exception):
        pass

    def start(spec, opts, **kwargs):
        calls.append((spec, opts, kwargs))
        raise Started

    monkeypatch.setattr(runner, "start_train_spec", start)
    with pytest.raises(Started):
        sw.main([str(sw.SWEEPS_DIR / "figure7.yaml"), "--count", "1", "--extra", "a=1"])
    ((spec, opts, kwargs),) = calls
    assert kwargs["name"] == "sweep_figure7" and opts.train_overrides == ("a=1",) and opts.out is None
    from keytrack.ablations.profile import Profile

    assert Profile().results_dir(kwargs["name"]).as_posix() == "runs/sweeps/figure7"
    assert spec["train"]["rows"] == [] and spec["train"]["cost"] and spec["paper"] and spec["plot"]
