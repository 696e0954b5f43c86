"""The paper's ablations (Table 3, §5.1 timesteps and assignment, Table 4) end to end on tiny data.

Every test generates its own scenes; the matching network is either an untrained one saved in the
checkpoint format of ``keytrack.models.factory.load_matcher`` or trained for two steps.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest
import torch

from keytrack.ablations import cells, runner, training
from keytrack.ablations.cells import TrackingOptions
from keytrack.config import load_config
from keytrack.synth import SynthConfig, generate_dataset
from keytrack.tables import MeanStd

TINY = SynthConfig(frames_per_video=(10, 14), people_per_video=(2, 4))


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """The ablations run with ``threads=1`` here (much faster on a busy CPU); leave torch as found."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def eval_gt():
    return generate_dataset(2, seed=7, config=TINY, first_index=1000)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained δ = 4 network in the layout Lightning checkpoints have (``hyper_parameters.cfg``,
    ``state_dict`` with ``model.`` prefixes)."""
    from omegaconf import OmegaConf

    from keytrack.models.factory import build_matcher, matcher_config

    torch.manual_seed(0)
    cfg = load_config(["model.layers=1", "model.hidden=32", "model.intermediate=32", "model.heads=2"])
    model = build_matcher(matcher_config(cfg))
    path = tmp_path_factory.mktemp("ckpt") / "untrained.ckpt"
    torch.save(
        {
            "hyper_parameters": {"cfg": OmegaConf.to_container(cfg, resolve=True)},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        path,
    )
    return str(path)


def _finite(value) -> bool:
    return isinstance(value, MeanStd) and value.n > 0 and math.isfinite(value.mean)


# -- configs ------------------------------------------------------------------------------------------


def test_each_tokens_row_takes_the_paper_value_of_its_own_scheme():
    """The spec's rows, their ✓ columns and the Table 3 row each takes its paper value from agree."""
    from keytrack.reference import paper_results

    spec = runner.load_spec("tokens")
    paper = paper_results()["embedding_ablation"]["rows"]
    rows = runner.train_rows(runner.by_profile(spec, "quick"))
    with_paper = [r for r in rows if any(e["when"] == {"row": r["row"]} for e in spec["paper"])]
    assert len(with_paper) == len(paper) and [r["row"] for r in rows if r not in with_paper] == ["improved"]
    assert runner.paper_values(spec, {"row": "improved"}) == {}  # beyond the paper: no value beside it
    flags = {
        "position": "absolute_position",
        "type": "type",
        "segment": "segment",
        "relative_position": "relative_position",
    }
    for r in with_paper:
        cfg = load_config([f"experiment={r['experiment']}"])
        assert cfg.trainer.max_epochs == 25 and cfg.optim.lr == 1e-4  # the paper's training
        entry = next(e for e in spec["paper"] if e["when"] == {"row": r["row"]})
        source = paper[int(entry["from"].rsplit(".", 1)[1])]
        assert {k: bool(cfg.tokens[k]) for k in flags} == {k: source[v] for k, v in flags.items()}, r["row"]
        assert runner.paper_values(spec, {"row": r["row"]}) == {"val_acc_paper": source["value"]}
        assert set(spec["train"]["show"].values()) == {f"tokens.{k}" for k in flags}


def test_quick_budget_is_the_ablation_quick_experiment():
    from keytrack.ablations.training import budget_file_overrides

    spec = runner.load_spec("tokens")
    assert runner.by_profile(spec, "full")["train"]["budget"] is None  # the paper's training as it is
    overrides = budget_file_overrides(runner.by_profile(spec, "quick")["train"]["budget"])
    assert overrides and not any(o.startswith(("experiment=", "extends=")) for o in overrides)
    composed = load_config(["experiment=tokens_all", *overrides])
    alone = load_config(["experiment=ablation_quick"])
    for key in ("optim", "loader", "trainer"):
        assert composed[key] == alone[key], key
    assert composed.tokens.relative_position and not alone.tokens.relative_position
    steps = alone.trainer.max_epochs * alone.loader.samples_per_epoch // alone.loader.batch_size
    assert 100 <= steps <= 3000


def test_training_specs_are_checked_with_the_file_and_the_field():
    from keytrack.errors import InputError

    assert {"tokens", "resolution_sweep"} <= set(runner.spec_names())
    for overrides, message in (
        (["train.speed=1"], "train: unknown field(s) ['speed']"),
        (["track.setting=noisy"], "track.setting: 'noisy' is not one of"),
        (["compare.axis=seed"], "compare.axis: a training spec compares rows"),
        (["claims=figure9"], "claims: 'figure9' is not one of"),
        (["train.rows=[]"], "train.rows: expected a non-empty list"),
    ):
        with pytest.raises(InputError, match=re.escape(message)):
            runner.load_spec("tokens", overrides)
    # a list for a per-profile mapping: the file and the override, not omegaconf's bare TypeError
    bad = "train.each.resolution=[[12,9]]"
    with pytest.raises(InputError, match=re.escape(f"resolution_sweep.yaml: overrides {bad}")):
        runner.load_spec("resolution_sweep", [bad])
    full = runner.load_spec("resolution_sweep", ["train.each.resolution.full=[[12,9]]"])
    full = runner.by_profile(full, "full")
    assert full["train"]["each"]["resolution"] == [[12, 9]] and full["train"]["budget"] == "converged"


# -- the pair-score memo ------------------------------------------------------------------------------


def test_pair_score_memo_reuses_scores_and_tracks_identically(eval_gt, checkpoint):
    from keytrack.perturb import perturb
    from keytrack.tracking import PairScoreMemo, PoseEntailmentScorer, Tracker

    torch.set_num_threads(1)
    predicted = perturb(eval_gt, "predicted_boxes_predicted_keypoints", 0)
    direct = PoseEntailmentScorer.from_checkpoint(checkpoint)
    plain = Tracker(direct, delta=4).track_dataset(predicted)
    memo = PairScoreMemo(PoseEntailmentScorer.from_checkpoint(checkpoint))
    first = Tracker(memo, delta=4).track_dataset(predicted)
    scored = memo.pairs_scored
    assert scored == direct.pairs_scored > 0 and memo.pairs_reused == 0
    for a, b in zip(plain.videos, first.videos):
        for fa, fb in zip(a.frames, b.frames):
            np.testing.assert_array_equal(fa.track_ids, fb.track_ids)
    # the pairs of δ = 2 and of Hungarian assignment are among δ = 4's: no new network work
    Tracker(memo, delta=2).track_dataset(predicted)
    Tracker(memo, delta=4, assignment="hungarian").track_dataset(predicted)
    assert memo.pairs_scored == scored and memo.pairs_reused > scored


# -- tracking-time ablations --------------------------------------------------------------------------


@pytest.mark.slow
def test_timesteps_table_failures_and_reuse(tmp_path, eval_gt, checkpoint):
    from keytrack.ablations.evaluate import keypoint_hota
    from keytrack.evaluation import evaluate
    from keytrack.perturb import perturb
    from keytrack.tracking import PoseEntailmentScorer, Tracker, apply_keypoint_threshold

    # δ = 5 exceeds the network's Segment vocabulary (Δ = 1..4): those cells fail, the others go on
    opts = TrackingOptions(out=str(tmp_path / "t"), checkpoint=checkpoint, seeds=(0, 1), threads=1)
    spec = runner.load_spec("timesteps", ["axes.delta=[5,1,2,4,2]"])
    result = runner.run_spec(spec, opts, eval_gt=eval_gt)
    assert [(r["setting"], r["delta"]) for r in result.rows] == [
        (s, d)
        for s in ("predicted boxes, predicted keypoints", "GT boxes, GT keypoints")
        for d in (1, 2, 4, 5)
    ]
    for row in result.rows:
        if row["delta"] == 5:
            assert row["status"].startswith("failed") and "exceeds" in row["status"] and row["mota"].n == 0
        else:
            assert row["status"] is None and _finite(row["mota"]) and _finite(row["idsw"])
    pred_rows = [r for r in result.rows if r["setting"].startswith("predicted")]
    assert pred_rows[0]["mota"].n == 2 and result.rows[-2]["mota"].n == 1  # GT keypoints: first seed only
    assert pred_rows[2]["mota_paper"] == 66.6 and pred_rows[0]["d_mota_paper"] == -0.3
    assert len(result.failures) == 3  # 2 seeds + 1 GT cell
    md = (tmp_path / "t" / "table.md").read_text()
    assert "exceeds" in md and md.count("\n| ") == 9
    assert (tmp_path / "t" / "table.csv").is_file()
    assert (tmp_path / "t" / "timesteps.png").read_bytes()[:4] == b"\x89PNG"

    # smaller δ answered from the memo of δ = 4; δ = 4 agrees with the tracker comparison's cell
    ok = {c: r for c, r in result.records.items() if r.ok}
    assert all(r.result["pairs_scored"] == 0 for c, r in ok.items() if c.delta < 4)
    # the paper's output keypoint threshold, the spec's default
    cell = cells.Cell("predicted_boxes_predicted_keypoints", 1, 4, "greedy", 0.57)
    scorer = PoseEntailmentScorer.from_checkpoint(checkpoint)
    tracked = Tracker(scorer, delta=4, match_threshold=0.5).track_dataset(perturb(eval_gt, cell.setting, 1))
    shown = apply_keypoint_threshold(tracked, 0.57)
    direct = evaluate(eval_gt, shown, compute_ap=False)
    assert result.records[cell].result["idsw"]["Total"] == pytest.approx(direct.columns("idsw")["Total"])
    assert result.records[cell].result["mota"]["Total"] == pytest.approx(direct.columns("mota")["Total"])
    assert result.records[cell].result["hota"] == pytest.approx(
        keypoint_hota(eval_gt, shown)
    )  # same HOTA, IDF1
    assert "| HOTA | DetA | AssA | IDF1 |" in md

    # running again reuses every finished cell and retries only the failed ones
    again = runner.run_spec(spec, opts, eval_gt=eval_gt)
    assert all(r.reused == r.ok for r in again.records.values())
    assert [r["mota"] for r in again.rows] == [r["mota"] for r in result.rows]
    assert "(9 reused, 3 run now)" in (tmp_path / "t" / "table.md").read_text()


@pytest.mark.slow
def test_assignment_table(tmp_path, eval_gt, checkpoint):
    opts = TrackingOptions(out=str(tmp_path / "a"), checkpoint=checkpoint, seeds=(0, 1), threads=1)
    result = runner.run_spec("assignment", opts, eval_gt=eval_gt)
    assert [(r["setting"], r["assignment"]) for r in result.rows] == [
        (s, a)
        for s in (
            "GT boxes, GT keypoints",
            "GT boxes, predicted keypoints",
            "predicted boxes, predicted keypoints",
        )
        for a in ("greedy (KeyTrack)", "Hungarian")
    ]
    assert not result.failures and all(r["status"] is None and _finite(r["mota"]) for r in result.rows)
    for greedy, hungarian in zip(result.rows[::2], result.rows[1::2]):
        assert greedy["mota_paper"] is not None and "d_mota" not in greedy and "paper" not in greedy
        assert hungarian["paper"] and _finite(hungarian["d_mota"])
        assert hungarian["d_mota"].mean == pytest.approx(hungarian["mota"].mean - greedy["mota"].mean)
    hungarian_cells = [r for c, r in result.records.items() if c.assignment == "hungarian"]
    assert all(r.result["pairs_scored"] == 0 and r.result["pairs_reused"] > 0 for r in hungarian_cells)
    assert "Hungarian" in (tmp_path / "a" / "table.md").read_text()


@pytest.mark.slow
def test_threshold_table(tmp_path, eval_gt, checkpoint):
    opts = TrackingOptions(out=str(tmp_path / "k"), checkpoint=checkpoint, seeds=(0,), threads=1)
    result = runner.run_spec(
        runner.load_spec("threshold", ["axes.threshold=[0.6,0.05,0.5]"]), opts, eval_gt=eval_gt
    )
    assert [r["threshold"] for r in result.rows] == [0.05, 0.5, 0.6]
    assert [(r["ap_paper"], r["mota_paper"]) for r in result.rows] == [
        (81.6, 42.0),
        (76.7, 66.5),
        (72.8, 66.0),
    ]
    ap = [r["ap"].mean for r in result.rows]
    assert all(math.isfinite(a) for a in ap) and ap[0] >= ap[1] >= ap[2] and ap[0] > ap[2]
    assert sum(r["best"] == "best MOTA" for r in result.rows) == 1
    # one tracking for all thresholds
    assert sorted(r.result["tracking_reused"] for r in result.records.values()) == [False, True, True]
    assert (tmp_path / "k" / "threshold.png").read_bytes()[:4] == b"\x89PNG"


def test_matcher_axis_tracks_each_network_side_by_side(tmp_path, eval_gt, checkpoint, monkeypatch):
    """``axes.matcher``: one network per matcher (the paper's model by the profile's experiment, others by
    name), cells keyed by matcher, the paper's values beside the paper's model only, best row per matcher;
    ``--checkpoint`` tracks its one network."""
    from keytrack.ablations.runs import file_digest

    asked = []

    def network(
        profile, *, checkpoint: str | None, experiment: str, train_seed: int, train_overrides=(), wait=True
    ):
        asked.append(experiment)
        path = given if experiment == "default" else str(tmp_path / "other.ckpt")
        if experiment != "default" and not os.path.exists(path):
            torch.save(torch.load(given, weights_only=False), path)
        return {"checkpoint": path, "digest": file_digest(path), "source": "given", "experiment": asked[-1]}

    given = checkpoint
    monkeypatch.setattr(training, "matching_network", network)  # what every matcher's network comes from
    opts = TrackingOptions(out=str(tmp_path / "m"), seeds=(0,), threads=1)
    spec = runner.load_spec("threshold", ["axes.threshold=[0.05,0.5]"])
    assert spec["axes"]["matcher"] == ["paper", "improved"]
    result = runner.run_spec(spec, opts, eval_gt=eval_gt)
    assert asked == ["default", "improved"]  # quick profile: the paper's model is `default`
    assert [(r["matcher"], r["threshold"]) for r in result.rows] == [
        ("paper's model", 0.05),
        ("paper's model", 0.5),
        ("improved", 0.05),
        ("improved", 0.5),
    ]
    assert [r.get("mota_paper") for r in result.rows] == [42.0, 66.5, None, None]
    assert {c.matcher for c in result.records} == {"paper", "improved"}
    assert len({c.key for c in result.records}) == 4
    # the same weights give the same numbers under either name; one best row per matcher
    assert [r["mota"] for r in result.rows[:2]] == [r["mota"] for r in result.rows[2:]]
    assert sum(r["best"] == "best MOTA" for r in result.rows) == 2
    md = (tmp_path / "m" / "table.md").read_text()
    assert "| Matcher |" in md and "Matching network of improved" in md
    # one network given: no matcher column, the paper's values beside it as before
    one = runner.run_spec(
        spec,
        TrackingOptions(out=str(tmp_path / "c"), checkpoint=checkpoint, seeds=(0,), threads=1),
        eval_gt=eval_gt,
    )
    assert "matcher" not in one.rows[0] and [r["mota_paper"] for r in one.rows] == [42.0, 66.5]
    assert "| Matcher |" not in (tmp_path / "c" / "table.md").read_text()


def test_missing_network_fails_every_cell_but_writes_the_table(tmp_path, eval_gt):
    opts = TrackingOptions(out=str(tmp_path / "n"), checkpoint=str(tmp_path / "none.ckpt"), seeds=(0,))
    result = runner.run_spec(runner.load_spec("threshold", ["axes.threshold=[0.5]"]), opts, eval_gt=eval_gt)
    assert (
        "none.ckpt: no such checkpoint" in result.failures[0]
        and "shipped: keytrack-synthetic" in result.failures[0]
    )
    assert "no matching network" in result.rows[0]["status"]
    assert "unavailable" in (tmp_path / "n" / "table.md").read_text()


# -- tokens (Table 3) ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_tokens_trains_tracks_records_failures_and_reuses(tmp_path, eval_gt, monkeypatch):
    train_data = generate_dataset(3, seed=11, config=TINY)
    calls = []
    real = training.train_or_reuse

    def flaky(experiment, overrides, **kwargs):
        calls.append(experiment)
        if experiment == "tokens_pos_segment" and fail:
            raise RuntimeError("out of memory (simulated)")
        return real(experiment, overrides, **kwargs)

    monkeypatch.setattr(training, "train_or_reuse", flaky)  # what TrainAndTrack trains with
    fail = True
    opts = TrackingOptions(
        out=str(tmp_path / "res"),
        train_seeds=(0,),
        threads=1,
        train_overrides=(
            f"output_dir={tmp_path / 'runs'}",
            "logging.wandb=false",
            "loader.samples_per_epoch=128",  # 2 steps of batch 64
            "trainer.limit_val_batches=1",
            "loader.val_batch_size=256",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "model.layers=1",
            "model.hidden=32",
            "model.intermediate=32",
        ),
    )
    spec = runner.load_spec("tokens", ["compare.videos=true"])  # and the interval over the videos
    result = runner.run_train_spec(spec, opts, name="tokens", train_dataset=train_data, eval_gt=eval_gt)

    assert [r["experiment"] for r in result.rows] == [
        f"tokens_{s}" for s in ("pos_type", "pos_segment", "pos_type_segment", "type_segment_rel", "all")
    ] + ["improved"]
    assert [r.get("val_acc_paper") for r in result.rows] == [72.6, 90.0, 93.2, 91.3, 92.0, None]
    assert [r["relative_position"] for r in result.rows] == ["", "", "", "✓", "✓", ""]
    for row in result.rows:
        if row["experiment"] == "tokens_pos_segment":
            assert "training failed" in row["status"] and "out of memory (simulated)" in row["status"]
            assert row["val_acc"].n == 0 and row["mota"].n == 0
        else:
            assert row["status"] is None and row["steps"].mean == 2
            assert 0 <= row["val_acc"].mean <= 100 and _finite(row["mota"]) and _finite(row["idsw"])
            if row["experiment"] == "tokens_pos_type_segment":  # the reference of the paired Δ
                assert "d_val_acc" not in row
            else:
                assert row["d_val_acc"].n == 1 and row["d_idsw"].n == 1
                assert row["v_idsw"].low <= row["v_idsw"].value <= row["v_idsw"].high
    assert len(list((tmp_path / "runs" / "tokens_all").glob("synthetic-all-quick-*-seed0/metrics.json"))) == 1
    md = (tmp_path / "res" / "table.md").read_text()
    assert "out of memory (simulated)" in md and "Abs. Position + Type + Segment" in md
    assert "quick profile" in md

    # again: the finished schemes are reused from the cache; only the failed one trains
    calls.clear()
    fail = False
    again = runner.run_train_spec("tokens", opts, train_dataset=train_data, eval_gt=eval_gt)
    assert calls == ["tokens_pos_segment"]
    assert all(r["status"] is None for r in again.rows)
    assert [r["val_acc"] for r in again.rows if r["experiment"] != "tokens_pos_segment"] == [
        r["val_acc"] for r in result.rows if r["experiment"] != "tokens_pos_segment"
    ]
    assert not again.failures

    # a recorded training whose checkpoint was deleted is looked up again, not trusted
    os.remove(again.records[("train", "all", 0)].result["checkpoint"])
    calls.clear()
    third = runner.run_train_spec("tokens", opts, train_dataset=train_data, eval_gt=eval_gt)
    assert calls == ["tokens_all"] and not third.failures


def test_cli_parsers_build_options():
    # keytrack ablate: tracking options and spec overrides in any order
    parsed = runner._options_parser("timesteps").parse_intermixed_args(
        ["axes.delta=[1,4]", "--seeds", "3", "4", "--profile", "full", "plot.ncols=1", "--train-seeds", "5"]
    )
    assert (
        parsed.seeds == [3, 4]
        and parsed.profile == "full"
        and parsed.overrides == ["axes.delta=[1,4]", "plot.ncols=1"]
    )
    assert cells.tracking_options(parsed).train_seeds == (5,)
    assert runner.load_spec("timesteps", parsed.overrides)["axes"]["delta"] == [1, 4]
    with pytest.raises(ValueError, match="seeds"):
        TrackingOptions(seeds=())
    assert TrackingOptions(profile="full").training_experiment == "paper"
    assert TrackingOptions().training_experiment == "default"


def test_ablation_specs_are_checked_with_the_file_and_the_field(tmp_path):
    from keytrack.errors import InputError

    assert {"timesteps", "assignment", "threshold"} <= set(runner.spec_names())
    spec = runner.load_spec("threshold", ["axes.threshold=[0.6,0.05,0.6]"])
    assert spec["axes"]["threshold"] == [0.05, 0.6] and spec["axes"]["delta"] == [4]
    for overrides, message in (
        (["axes.delta=[0]"], "axes.delta: [0] are not integers >= 1"),
        (["axes.setting=[noisy]"], "axes.setting: ['noisy'] are not one of"),
        (["axes.speed=[1]"], "axes: unknown axis ['speed']"),
        (["colour=red"], "unknown field(s) ['colour']"),
        (["axes.assignment=[]"], "axes.assignment: expected a non-empty list"),
    ):
        with pytest.raises(InputError, match=re.escape(message)) as err:
            runner.load_spec("timesteps", overrides)
        assert "timesteps.yaml" in str(err.value)
    with pytest.raises(InputError, match="no such ablation spec"):
        runner.load_spec("nonexistent")
    broken = tmp_path / "broken.yaml"
    broken.write_text("axes: {delta: [4}\n")
    with pytest.raises(InputError, match="broken.yaml: "):
        runner.load_spec(str(broken))
    bad = tmp_path / "mine.yaml"
    bad.write_text(
        "axes: {delta: [4]}\npaper: [{when: {delta: 4}, from: 'nowhere.{setting}', values: {x: y}}]\n"
    )
    with pytest.raises(
        InputError, match="mine.yaml: paper: no 'nowhere.predicted_boxes_predicted_keypoints'"
    ):
        runner.paper_values(
            runner.load_spec(str(bad)), {"setting": "predicted_boxes_predicted_keypoints", "delta": 4}
        )
    # the paper's values come from keytrack/reference/paper_results.yaml, by axis value
    values = runner.paper_values(
        runner.load_spec("threshold"), {"setting": "predicted_boxes_predicted_keypoints", "threshold": 0.57}
    )
    assert values == {"ap_paper": 74.3, "idsw_paper": 0.8, "mota_paper": 66.6}
    assert (
        runner.paper_values(
            runner.load_spec("threshold"), {"setting": "gt_boxes_gt_keypoints", "threshold": 0.57}
        )
        == {}
    )


def test_paper_rows_follow_each_settings_stride_one_rows_or_its_last():
    """``paper_rows``: the paper's rows of a setting after its stride-1 rows, after its last row without a
    stride 1; ``unless: gcn`` drops the paper's GCN row when our GCN is in the table."""
    spec = runner.load_spec("tracker_comparison")
    settings = ["gt_boxes_gt_keypoints", "predicted_boxes_predicted_keypoints"]

    def table(strides, matchers):
        raw = [{"setting": s, "stride": k, "matcher": m} for s in settings for k in strides for m in matchers]
        return raw, [{"matcher": v["matcher"], "stride": v["stride"]} for v in raw]

    raw, rows = table([1, 4], ["oks", "iou"])
    out = runner._with_paper_rows(spec, rows, raw, ["oks", "iou"], {"stride": [1, 4]})
    assert [(r["matcher"], r["stride"]) for r in out[:6]] == [
        ("oks", 1),
        ("iou", 1),
        ("GCN (paper)", 1),
        ("Optical Flow (paper)", 1),
        ("oks", 4),
        ("iou", 4),
    ]
    assert out[2]["mota_paper"] == 98.5 and out[2]["ap_paper"] == 100 and len(out) == 12
    raw, rows = table([2, 4], ["oks", "gcn"])
    out = runner._with_paper_rows(spec, rows, raw, ["oks", "gcn"], {"stride": [2, 4]})
    assert [r["matcher"] for r in out] == ["oks", "gcn", "oks", "gcn", "Optical Flow (paper)"] * 2
