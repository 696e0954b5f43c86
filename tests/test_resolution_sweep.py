"""The resolution sweep of Figure 7 (right) end to end on tiny data (``keytrack ablate
resolution_sweep``, a training spec of :mod:`keytrack.ablations.runner`), and its claims checker."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from keytrack.ablations import claims, runner
from keytrack.ablations.cells import TrackingOptions
from keytrack.ablations.training import budget_file_overrides
from keytrack.config import load_config
from keytrack.synth import generate_dataset
from keytrack.tables import MeanStd


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- claims -------------------------------------------------------------------------------------------


def _ms(*values: float) -> MeanStd:
    from keytrack.tables import mean_std

    return mean_std(values)


def test_claims_hold_when_the_transformer_wins_low_and_cnns_catch_up():
    idsw = {
        "transformer": {(12, 9): _ms(2.0, 2.2), (24, 18): _ms(1.5), (96, 72): _ms(1.4)},
        "cnn_keypoints": {(12, 9): _ms(6.0, 5.0), (24, 18): _ms(3.0), (96, 72): _ms(1.5)},
        "cnn_crops": {(12, 9): _ms(8.0), (24, 18): _ms(4.0), (96, 72): _ms(1.2)},
    }
    low, high = claims.check_claims(idsw)
    assert (low.status, high.status) == ("holds", "holds")
    assert "12x9: transformer 2.10 vs CNN (keypoints) 5.50" in low.evidence
    assert "CNN (image crops) − transformer: +5.90 at 12x9, -0.20 at 96x72" in high.evidence
    assert low.line().startswith('Claim "the transformer has fewer ID switches') and "**holds**" in low.line()


def test_claims_do_not_hold_and_missing_methods_are_said():
    idsw = {
        "transformer": {(12, 9): _ms(3.0), (96, 72): _ms(1.0)},
        "cnn_keypoints": {(12, 9): _ms(2.0), (96, 72): _ms(4.0)},  # better low, worse high
        "cnn_crops": {(12, 9): MeanStd(math.nan, math.nan, 0), (96, 72): MeanStd(math.nan, math.nan, 0)},
    }
    low, high = claims.check_claims(idsw)
    assert (low.status, high.status) == ("does not hold", "does not hold")
    assert "no numbers for CNN (image crops)" in low.evidence
    assert "+3.00 at 96x72" in high.evidence
    ahead = claims.check_claims(
        {
            "transformer": {(12, 9): _ms(5.0), (48, 36): _ms(9.0)},
            "cnn_keypoints": {(12, 9): _ms(2.0), (48, 36): _ms(1.0)},
        }
    )
    assert [c.status for c in ahead] == ["does not hold", "holds"]
    assert ahead[1].evidence.startswith("only trivially: no CNN is behind")
    only = claims.check_claims({"transformer": {(12, 9): _ms(1.0)}})
    assert [c.status for c in only] == ["not testable", "not testable"]
    # a low resolution is one whose long edge is at most 24 (the paper's 24 × 18)
    high_only = claims.check_claims(
        {"transformer": {(48, 36): _ms(1.0)}, "cnn_keypoints": {(48, 36): _ms(2.0)}}
    )
    assert high_only[0].status == "not testable"


# -- configuration ------------------------------------------------------------------------------------


def test_spec_expands_methods_by_resolution_per_profile():
    spec = runner.load_spec("resolution_sweep")
    quick = runner.by_profile(spec, "quick")
    rows = runner.train_rows(quick)
    assert [r["key"] for r in rows[:5]] == [
        "transformer-12x9",
        "transformer-24x18",
        "transformer-48x36",
        "transformer-96x72",
        "cnn_keypoints-12x9",
    ]
    assert len(rows) == 16 and quick["train"]["seeds"] == [0, 1] and quick["track"]["nearest"] == 1
    full = runner.by_profile(spec, "full")
    assert runner.train_rows(full)[5]["resolution"] == [384, 288] and full["track"]["nearest"] is None
    assert full["train"]["budget"] == "converged" and quick["train"]["budget"] == "resolution_quick"
    # the full budget: the paper's schedule, stopped once val/rank1 has not improved for 3 epochs
    assert {"validation.patience=3", "trainer.max_epochs=25"} <= set(budget_file_overrides("converged"))
    # the transformer's resolution is its Position grid, a CNN's its input image
    for r in (rows[2], rows[6], rows[14]):
        cfg = load_config([f"experiment={r['experiment']}", *r["overrides"]])
        key = "model.resolution" if r["row"].startswith("cnn_") else "tokens.grid"
        assert list(cfg[key.split(".")[0]][key.split(".")[1]]) == [48, 36], r
    # the improved matcher is measured on the grid with the paper's lookup Position tokens
    improved = load_config([f"experiment={rows[14]['experiment']}", *rows[14]["overrides"]])
    assert rows[14]["row"] == "improved" and improved.tokens.position_encoding == "lookup"
    assert improved.loss.name == "listwise" and improved.tokens.oks_prior
    budget = load_config(
        [
            f"experiment={rows[14]['experiment']}",
            *rows[14]["overrides"],
            *budget_file_overrides(quick["train"]["budget"]),
        ]
    )
    assert budget.trainer.max_epochs == 1 and budget.trainer.check_val_every_n_epoch == 1  # validated once
    only = runner.train_rows(
        runner.by_profile(runner.load_spec("resolution_sweep", ["train.only=[cnn_crops]"]), "quick")
    )
    assert {r["row"] for r in only} == {"cnn_crops"}
    from keytrack.errors import InputError

    with pytest.raises(InputError, match="train.only: no row is named"):
        runner.train_rows(
            runner.by_profile(runner.load_spec("resolution_sweep", ["train.only=[rnn]"]), "quick")
        )


# -- end to end ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sweep_trains_tracks_records_a_failure_and_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("KEYTRACK_CACHE", str(tmp_path / "cache"))  # crops of the synthetic frames
    train_data = generate_dataset(3, seed=3)
    eval_gt = generate_dataset(1, seed=3, first_index=1000)
    calls = []
    from keytrack.ablations import training

    real = training.train_or_reuse
    fail = True

    def flaky(experiment, overrides, **kwargs):
        calls.append(
            (experiment, next(o for o in overrides if o.startswith(("tokens.grid", "model.resolution"))))
        )
        if experiment == "cnn_keypoints" and "model.resolution=[12,9]" in overrides and fail:
            raise RuntimeError("out of memory (simulated)")
        return real(experiment, overrides, **kwargs)

    monkeypatch.setattr(training, "train_or_reuse", flaky)  # what TrainAndTrack trains with
    opts = TrackingOptions(
        out=str(tmp_path / "res"),
        train_seeds=(0,),
        threads=1,
        train_overrides=(
            f"output_dir={tmp_path / 'runs'}",
            "logging.wandb=false",
            "data.synthetic.seed=3",
            "loader.samples_per_epoch=64",
            "loader.val_batch_size=64",
            "trainer.enable_model_summary=false",
            "model.layers=1",
            "model.hidden=16",
            "model.intermediate=16",
            "model.heads=2",
            "model.channels=4",
        ),
    )
    spec = runner.load_spec("resolution_sweep", ["train.each.resolution.quick=[[8,6],[12,9]]"])
    result = runner.run_train_spec(spec, opts, train_dataset=train_data, eval_gt=eval_gt)

    labels = runner.load_spec("resolution_sweep")["labels"]["row"]
    assert [(r["row"], r["resolution"]) for r in result.rows] == [
        (labels[m], res)
        for m in ("transformer", "cnn_keypoints", "cnn_crops", "improved")
        for res in ("8x6", "12x9")
    ]
    for row in result.rows:
        if (row["row"], row["resolution"]) == (labels["cnn_keypoints"], "12x9"):
            assert "training failed: RuntimeError: out of memory (simulated)" in row["status"]
            assert row["idsw"].n == 0 and row["params_m"] > 0
        else:
            assert row["status"] is None, row["status"]
            assert row["steps"].mean == 2 and 0 <= row["val_acc"].mean <= 100
            assert 0 <= row["idsw"].mean <= 100 and math.isfinite(row["mota"].mean)
            assert row["params_m"] > 0 and row["mflops"] > 0
    cnn = {r["resolution"]: r for r in result.rows if r["row"] == labels["cnn_crops"]}
    assert cnn["12x9"]["mflops"] > cnn["8x6"]["mflops"]  # a CNN's cost grows with the pixels
    assert len(result.failures) == 2  # the training, and its tracking
    assert all("out of memory" in f for f in result.failures)
    out = tmp_path / "res"
    md = (out / "table.md").read_text()
    assert "out of memory (simulated)" in md and "| Status |" in md and 'Claim "' in md
    assert "resolution_quick.yaml" in md and "nearest poses" in md  # the quick profile's nearest = 1
    with open(out / "table.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 8
    png = (out / "idsw_vs_resolution.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert (
        len(
            list((tmp_path / "runs" / "cnn_crops").glob("synthetic-cnn_crops-8x6-quick-*-seed0/metrics.json"))
        )
        == 1
    )

    # again: everything finished is reused; only the failed training runs
    calls.clear()
    fail = False
    again = runner.run_train_spec(spec, opts, train_dataset=train_data, eval_gt=eval_gt)
    assert calls == [("cnn_keypoints", "model.resolution=[12,9]")]
    assert not again.failures and all(r["status"] is None for r in again.rows)
    assert [r["idsw"] for r in again.rows if r["resolution"] == "8x6"] == [
        r["idsw"] for r in result.rows if r["resolution"] == "8x6"
    ]
    assert "reused" in (out / "table.md").read_text()
