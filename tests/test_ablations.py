"""The ablation toolkit (tables, mean ± std, run cache, training reuse), the paper's numbers, the
tracker comparison of Figure 4 end to end, and `keytrack evaluate --stride`."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from keytrack.ablations import options as lab_options
from keytrack.ablations import training
from keytrack.ablations.runs import RunCache
from keytrack.ablations.training import train_or_reuse
from keytrack.evaluation.head_boxes import complete_head_boxes
from keytrack.poses import Dataset, Frame, Video
from keytrack.skeleton import JOINTS, NUM_JOINTS
from keytrack.synth import SynthConfig, generate_dataset
from keytrack.tables import Column, MeanStd, format_mean_std, mean_std, write_table

# -- tables ------------------------------------------------------------------------------------------


def _flat(params: dict) -> dict:
    """A cached run's parameters with an evaluation's tracker and evaluation set at the top level."""
    return {**params, **params.get("tracker", {}), **params.get("eval", {})}


def test_write_table_gives_exact_markdown_and_csv(tmp_path):
    rows = [
        {
            "name": "Pose Entailment",
            "stride": 1,
            "idsw": 0.6789,
            "mota": MeanStd(99.25, 0.5, 3),
            "paper": 0.7,
        },
        {
            "name": "a|b",
            "stride": 4,
            "idsw": None,
            "mota": MeanStd(98.0, 0.0, 1),
            "paper": float("nan"),
            "extra": "not shown",
        },
    ]
    columns = [
        Column("name", "Method"),
        Column("stride", "Stride"),
        Column("idsw", "%IDSW", digits=2),
        Column("paper", "%IDSW (paper)"),
        Column("mota", "MOTA"),
    ]
    md, csv_path = write_table(
        rows, tmp_path / "out", columns=columns, title="Demo", notes=["first note", "second"]
    )
    assert md == tmp_path / "out" / "table.md" and csv_path == tmp_path / "out" / "table.csv"
    assert md.read_text() == (
        "# Demo\n"
        "\n"
        "| Method | Stride | %IDSW | %IDSW (paper) | MOTA |\n"
        "|---|---:|---:|---:|---:|\n"
        "| Pose Entailment | 1 | 0.68 | 0.7 | 99.2 ± 0.5 |\n"
        "| a\\|b | 4 |  |  | 98.0 |\n"
        "\n"
        "- first note\n"
        "- second\n"
    )
    assert csv_path.read_text() == (
        "Method,Stride,%IDSW,%IDSW (paper),MOTA,MOTA std\n"
        "Pose Entailment,1,0.6789,0.7,99.25,0.5\n"
        "a|b,4,,nan,98.0,\n"
    )
    # No temporary files are left behind by the atomic writes.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["table.csv", "table.md"]


def test_write_table_default_columns_follow_first_appearance(tmp_path):
    md, _ = write_table([{"b": "x", "a": 2}, {"c": 1.25, "a": 3}], tmp_path, name="t")
    assert md.name == "t.md"
    assert md.read_text() == "| b | a | c |\n|---|---:|---:|\n| x | 2 |  |\n|  | 3 | 1.2 |\n"


def test_mean_std_over_seeds():
    ms = mean_std([1.0, 2.0, 3.0])
    assert (ms.mean, ms.std, ms.n) == (2.0, 1.0, 3)  # sample std, ddof = 1
    assert format_mean_std([1.0, 2.0, 3.0]) == "2.0 ± 1.0"
    assert format_mean_std([0.123, 0.456], digits=2) == "0.29 ± 0.24"
    assert format_mean_std([None, 5.0, float("nan")]) == "5.0"  # failed / undefined seeds skipped
    assert format_mean_std([]) == "" and mean_std([None]).n == 0
    assert str(MeanStd(1.25, 0.05, 2)) == "1.2 ± 0.1"


def test_an_interval_is_one_markdown_cell_and_three_csv_columns(tmp_path):
    from keytrack.tables import Interval

    rows = [{"m": "a", "d": Interval(0.125, -0.05, 0.3125)}, {"m": "b", "d": None}]
    md, csv_path = write_table(rows, tmp_path, columns=[Column("m", "M"), Column("d", "Δ", digits=2)])
    assert "| a | +0.12 [-0.05, +0.31] |" in md.read_text() and "| b |  |" in md.read_text()
    assert csv_path.read_text() == "M,Δ,Δ low,Δ high\na,0.125,-0.05,0.3125\nb,,,\n"


def _video_records(switches: list[list[float]], objects: list[float]) -> list:
    """Run records of tracking cells whose videos ``v0, v1, ...`` had these ID switches (one list per
    record)."""
    from keytrack.ablations.runs import RunRecord

    return [
        RunRecord(
            f"r{i}",
            "ok",
            {},
            result={"per_video": {f"v{j}": [s, n] for j, (s, n) in enumerate(zip(row, objects))}},
        )
        for i, row in enumerate(switches)
    ]


def test_video_bootstrap_gives_the_pooled_difference_and_an_interval_over_videos_and_seeds():
    from keytrack.ablations.runs import video_bootstrap
    from keytrack.tables import Interval

    objects = [100.0] * 10
    oks = _video_records([[1.0] * 10], objects)
    # one network, 2 more switches than OKS in every video: whichever videos are drawn, the difference is 2.0
    alike = video_bootstrap(_video_records([[3.0] * 10], objects), oks)
    assert alike.value == pytest.approx(100 * (30 - 10) / 1000)
    assert alike.low == pytest.approx(alike.value) and alike.high == pytest.approx(alike.value)
    # two training seeds (2 and 4 switches per video): each video's mean is 3, the value stays 2.0, and the
    # draws of the seeds (2, 3 or 4 on average) spread the interval over [1, 3]
    seeds = video_bootstrap(_video_records([[2.0] * 10, [4.0] * 10], objects), oks)
    assert seeds.value == pytest.approx(2.0)
    assert 1.0 - 1e-9 <= seeds.low < seeds.value < seeds.high <= 3.0 + 1e-9
    # the same total difference from one video of ten: the interval reaches 0 (draws without that video)
    one = video_bootstrap(_video_records([[1.0] * 9 + [21.0]], objects), oks)
    assert one.value == pytest.approx(2.0) and one.low == pytest.approx(0.0) and one.high > one.value
    assert video_bootstrap(oks, oks) == Interval(0.0, 0.0, 0.0)
    # reproducible: the draws come from a seeded generator
    assert video_bootstrap(_video_records([[1.0] * 9 + [21.0]], objects), oks) == one
    # no per-video counts (a cell stored before they were recorded), or another set of videos: no interval
    from keytrack.ablations.runs import RunRecord

    assert video_bootstrap([RunRecord("x", "ok", {}, result={})], oks) is None
    assert video_bootstrap(_video_records([[1.0] * 9], objects[:9]), oks) is None


# -- run cache ---------------------------------------------------------------------------------------


def test_run_cache_reuses_finished_runs(tmp_path):
    calls = []

    def work(x):
        calls.append(x)
        return {"value": x * 2.0, "nan": float("nan"), "array": np.arange(2)}

    cache = RunCache(tmp_path / "runs")
    first = cache.run("cell-a", lambda: work(1), {"x": 1})
    assert first.ok and not first.reused and first.result == {"value": 2.0, "nan": None, "array": [0, 1]}
    stored = json.loads((tmp_path / "runs" / "cell-a.json").read_text())
    assert stored["status"] == "ok" and stored["params"] == {"x": 1} and stored["result"]["value"] == 2.0

    again = RunCache(tmp_path / "runs").run("cell-a", lambda: work(1), {"x": 1})  # a new process, same files
    assert again.reused and again.result == first.result
    assert calls == [1]

    changed = cache.run("cell-a", lambda: work(5), {"x": 5})  # stale parameters: redone
    assert not changed.reused and changed.result["value"] == 10.0 and calls == [1, 5]
    with pytest.raises(ValueError, match="letters, digits"):
        cache.run("../escape", lambda: work(0))


def test_run_cache_records_failures_and_goes_on(tmp_path):
    calls = []

    def ok(name):
        calls.append(name)
        return {"name": name}

    def broken():
        calls.append("broken")
        raise ValueError("video 'v1' frame 3: no keypoints")

    cache = RunCache(tmp_path / "runs")
    records = [
        cache.run("one", lambda: ok("one")),
        cache.run("two", broken),
        cache.run("three", lambda: ok("three")),
    ]
    assert [r.status for r in records] == ["ok", "failed", "ok"] and calls == ["one", "broken", "three"]
    assert records[1].failure == "ValueError: video 'v1' frame 3: no keypoints"
    stored = json.loads((tmp_path / "runs" / "two.json").read_text())
    assert stored["error"]["type"] == "ValueError" and "frame 3" in stored["error"]["message"]
    assert "Traceback" in stored["error"]["traceback"]

    rows = [{"run": r.key, "status": "failed: " + r.failure if r.failure else None} for r in records]
    md, _ = write_table(rows, tmp_path)
    assert "| two | failed: ValueError: video 'v1' frame 3: no keypoints |" in md.read_text()

    # A recorded failure is kept with retry_failed=False and run again by default; finished runs are not.
    kept = RunCache(tmp_path / "runs", retry_failed=False).run("two", broken)
    assert kept.reused and not kept.ok and calls.count("broken") == 1
    for key, fn in (("one", lambda: ok("one")), ("two", broken), ("three", lambda: ok("three"))):
        RunCache(tmp_path / "runs").run(key, fn)
    assert calls.count("broken") == 2 and calls.count("one") == 1 and calls.count("three") == 1

    # A function that returns something that is not a dict of results is a failure too.
    assert cache.run("bad", lambda: [1, 2]).failure.startswith("TypeError")


# -- training reuse ----------------------------------------------------------------------------------


def _fake_run(root, run_name, overrides=()):
    from keytrack.config import load_config, to_yaml

    cfg = load_config(["experiment=quick", f"output_dir={root}", f"run_name={run_name}", *overrides])
    run = root / "quick" / run_name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(to_yaml(cfg))
    (run / "checkpoints" / "best-epoch=01.ckpt").write_bytes(b"x")
    (run / "metrics.json").write_text(
        json.dumps({"best_checkpoint": "/elsewhere/best-epoch=01.ckpt", "best_val_acc": 0.9})
    )
    return run


def test_train_or_reuse_reuses_a_finished_run_of_the_same_config(tmp_path):
    trained = []

    def fake_train(cfg, dataset=None):
        trained.append(cfg)
        return {"best_checkpoint": None, "last_checkpoint": None}

    run = _fake_run(tmp_path, "older-name")  # same configuration, started under another name
    got = train_or_reuse(
        "quick", [f"output_dir={tmp_path}", "trainer.enable_progress_bar=false"], train_fn=fake_train
    )
    assert got.reused and got.run_dir == run and trained == []
    assert got.checkpoint == run / "checkpoints" / "best-epoch=01.ckpt" and got.metrics["best_val_acc"] == 0.9

    # Another model is another run: it is trained (and a run without a checkpoint is an error).
    with pytest.raises(FileNotFoundError, match="without a checkpoint"):
        train_or_reuse("quick", [f"output_dir={tmp_path}", "model.layers=1"], train_fn=fake_train)
    assert len(trained) == 1 and trained[0].model.layers == 1


def test_train_or_reuse_finds_the_same_config_under_another_experiment(tmp_path):
    """Table 3's KeyTrack row is experiment=paper under another name: the finished run is reused."""
    run = _fake_run(tmp_path, "paper-seed0")
    moved = tmp_path / "renamed_experiment" / run.name
    moved.parent.mkdir()
    run.rename(moved)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "x").mkdir()
    (tmp_path / "notes" / "x" / "config.yaml").write_text("- not a training config\n")  # passed over
    got = train_or_reuse("quick", [f"output_dir={tmp_path}"], train_fn=lambda *a: pytest.fail("reuse it"))
    assert got.reused and got.run_dir == moved


def test_train_or_reuse_waits_for_a_run_in_progress(tmp_path, monkeypatch):
    run = _fake_run(tmp_path, "synthetic-seed0")
    (run / "metrics.json").unlink()  # being trained: config written just now
    sleeps = []

    def finish(seconds):
        sleeps.append(seconds)
        best = run / "checkpoints" / "best-epoch=01.ckpt"
        (run / "metrics.json").write_text(json.dumps({"best_checkpoint": str(best)}))

    monkeypatch.setattr(training.time, "sleep", finish)
    got = train_or_reuse(
        "quick",
        [f"output_dir={tmp_path}"],
        poll_seconds=7,
        train_fn=lambda *a: pytest.fail("must not train a second copy"),
    )
    assert got.reused and sleeps == [7]


def test_train_or_reuse_resolves_metrics_json_paths_against_the_run_folder(tmp_path, monkeypatch):
    """A run of today: checkpoints/best.ckpt, named relative to the run folder in metrics.json."""
    run = _fake_run(tmp_path, "synthetic-seed0")
    (run / "checkpoints" / "best-epoch=01.ckpt").rename(run / "checkpoints" / "best.ckpt")
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (run / "metrics.json").write_text(
        json.dumps({"best_checkpoint": "checkpoints/best.ckpt", "last_checkpoint": "checkpoints/last.ckpt"})
    )
    monkeypatch.chdir(run / "checkpoints")  # a relative path is the run's, not the working folder's
    got = train_or_reuse("quick", [f"output_dir={tmp_path}"], train_fn=lambda *a: pytest.fail("reuse it"))
    assert got.reused and got.checkpoint == run / "checkpoints" / "best.ckpt"
    assert got.metrics["last_checkpoint"] == str(run / "checkpoints" / "last.ckpt")
    # An older run's metrics.json: the best checkpoint absolute, the last relative to the working
    # folder of its training; both still name the files.
    from keytrack.runlogs import read_run_metrics

    monkeypatch.chdir(tmp_path)
    relative_run = run.relative_to(tmp_path)
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "best_checkpoint": str(run / "checkpoints" / "best.ckpt"),
                "last_checkpoint": str(relative_run / "checkpoints" / "last.ckpt"),
            }
        )
    )
    old = read_run_metrics(relative_run)
    assert old["best_checkpoint"] == str(run / "checkpoints" / "best.ckpt")
    assert old["last_checkpoint"] == str(relative_run / "checkpoints" / "last.ckpt")


# -- paper numbers and head boxes --------------------------------------------------------------------


def test_paper_results_loader():
    from keytrack.reference import paper_results

    fig4 = paper_results()["tracker_comparison"]["settings"]
    assert fig4["gt_boxes_gt_keypoints"]["pose_entailment"]["mota_total"] == 99.3
    assert fig4["predicted_boxes_predicted_keypoints"]["ap_total"] == 81.6
    assert fig4["gt_boxes_predicted_keypoints"]["gcn"]["idsw"][-1] == 1.5
    assert paper_results()["settings"]["mota_keypoint_threshold"] == 0.57
    fig4["gt_boxes_gt_keypoints"]["ap_total"] = -1  # a copy: the source is unchanged
    assert paper_results()["tracker_comparison"]["settings"]["gt_boxes_gt_keypoints"]["ap_total"] == 100


def test_complete_head_boxes_draws_missing_ones_as_posetrack_does():
    kp = np.zeros((4, NUM_JOINTS, 3))
    top, bottom, ankle = JOINTS.index("head_top"), JOINTS.index("head_bottom"), JOINTS.index("left_ankle")
    kp[:3, top] = [100, 100, 1]
    kp[:3, bottom] = [100, 150, 1]
    kp[:3, ankle] = [100, 400, 1]
    kp[2, [top, bottom]] = 0  # no head joints: person-box rule
    kp[3, ankle] = [300, 200, 1]  # a single point: the video's median
    head = np.array([[1, 2, 3, 4]] + [[np.nan] * 4] * 3, float)
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [80, 100, 60, 300], [300, 200, 0, 0]], float)
    frame = Frame.from_poses(0, kp, [0, 1, 2, 3], boxes=boxes, head_boxes=head)
    ds = Dataset([Video("v", [frame], 640, 480)])
    out, added = complete_head_boxes(ds)
    hb = out.videos[0].frames[0].head_boxes
    assert added == 3 and np.isfinite(hb).all()
    np.testing.assert_array_equal(hb[0], [1, 2, 3, 4])  # kept
    np.testing.assert_allclose(hb[1], [80, 100, 40, 50])  # 0.8 L × L around the head joints
    s = 0.1 * math.hypot(60, 300)  # head size from the person box
    np.testing.assert_allclose(0.6 * math.hypot(*hb[2, 2:]), s)
    np.testing.assert_allclose(hb[3, 2:], np.median(hb[:3, 2:], axis=0))
    np.testing.assert_allclose(hb[3, :2] + hb[3, 2:] / 2, [300, 200])
    assert np.isnan(ds.videos[0].frames[0].head_boxes[1:]).all()  # the input is not modified


# -- the tracker comparison, end to end --------------------------------------------------------------

TINY = SynthConfig(people_per_video=(2, 4), frames_per_video=(10, 14))


@pytest.fixture
def one_thread():
    """Tiny networks run fastest on one thread (no synchronisation overhead on a shared CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """An untrained, small matching network saved as ``keytrack.models.factory.load_matcher`` reads it."""
    from keytrack.config import load_config
    from keytrack.models.factory import build_matcher, matcher_config

    cfg = load_config(["model.hidden=16", "model.intermediate=16", "model.layers=1", "model.heads=2"])
    torch.manual_seed(0)
    model = build_matcher(matcher_config(cfg))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save(
        {
            "hyper_parameters": {"cfg": OmegaConf.to_container(cfg)},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        path,
    )
    return path


def _compare(tmp_path, eval_gt, train_gt=None, out="tc", **options):
    """``keytrack ablate tracker_comparison`` with ``options`` (``strides``, ``methods``, ... as the
    command line gives them) on the given ground truth."""
    from keytrack.ablations import runner
    from keytrack.ablations.cells import TrackingOptions

    opts = TrackingOptions(out=str(tmp_path / out), **options)
    spec = runner.load_spec("tracker_comparison", opts.spec_overrides())
    return runner.run_spec(spec, opts, eval_gt=eval_gt, train_gt=train_gt)


def _ours(result) -> list[dict]:
    """The rows of a comparison that we ran (not the paper's alone)."""
    return [r for r in result.rows if "mota" in r]


@pytest.mark.slow
def test_tracker_comparison_end_to_end(tmp_path, tiny_checkpoint, one_thread):
    from keytrack.ablations.evaluate import SETTING_LABELS
    from keytrack.perturb import SETTINGS

    labels = {"pose_entailment": "Pose Entailment", "oks": "OKS (greedy)", "iou": "IoU (greedy)"}
    paper_only = ("GCN (paper)", "Optical Flow (paper)")
    train_gt = generate_dataset(2, seed=11, config=TINY)
    eval_gt = generate_dataset(3, seed=12, config=TINY)
    opts = dict(strides=(1, 2), checkpoint=str(tiny_checkpoint), grid=(0.1, 0.5), methods=tuple(labels))
    result = _compare(tmp_path, eval_gt, train_gt, **opts)
    assert result.failures == []
    assert result.thresholds["pose_entailment"] == 0.5
    # OKS and IoU: one threshold of the grid per keypoint setting and stride, tuned on the training split
    assert all(
        set(result.thresholds[m]) == {(s, k) for s in SETTINGS for k in (1, 2)}
        and set(result.thresholds[m].values()) <= {0.1, 0.5}
        for m in ("oks", "iou")
    )

    ours = _ours(result)
    assert [(r["setting"], r["stride"], r["matcher"]) for r in ours] == [
        (SETTING_LABELS[s], k, m) for s in SETTINGS for k in (1, 2) for m in labels.values()
    ]
    for r in ours:
        assert all(math.isfinite(r[c].mean) for c in ("Head", "Shou", "Ankl", "idsw", "mota", "ap")), r
        assert 0 <= r["idsw"].mean <= 100 and r["status"] is None
        assert all(0 <= r[c].mean <= 100 for c in ("HOTA", "DetA", "AssA", "IDF1")), r
        assert (r.get("ap_paper") is not None) == (r["stride"] == 1)
        assert (r.get("mota_paper") is not None) == (r["stride"] == 1 and r["matcher"] == "Pose Entailment")
    gt_rows = [r for r in ours if r["setting"] == SETTING_LABELS["gt_boxes_gt_keypoints"]]
    assert all(r["ap"].mean == 100.0 for r in gt_rows)  # the ground-truth keypoints themselves
    pe_gt = next(r for r in gt_rows if r["matcher"] == "Pose Entailment" and r["stride"] == 1)
    assert (pe_gt["idsw_paper"], pe_gt["mota_paper"], pe_gt["ap_paper"]) == (0.7, 99.3, 100)
    paper = [r for r in result.rows if r["matcher"] in paper_only]
    assert len(paper) == 6 and all(r.get("idsw") is None and r["mota_paper"] > 60 for r in paper)
    # the paper's rows follow each setting's stride-1 rows
    assert [r["matcher"] for r in result.rows[:5]] == [*labels.values(), *paper_only]

    out = tmp_path / "tc"
    table = (out / "table.md").read_text()
    for label in (
        *SETTING_LABELS.values(),
        *labels.values(),
        *paper_only,
        "%IDSW Total (paper)",
        "| HOTA | DetA | AssA | IDF1 |",
        "| Match thr. | Head |",
    ):
        assert label in table
    with open(out / "table.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(SETTINGS) * (2 * len(labels) + len(paper_only))
    speed = (out / "speed.md").read_text()
    assert "| Pose Entailment |" in speed and "Pairs/s" in speed
    tuning = (out / "tuning.md").read_text()
    assert tuning.count("| yes |") == 2 * 6  # OKS and IoU × 3 settings × 2 strides
    assert len(list((out / "runs").glob("*.json"))) == 18 + 24  # 18 cells + 2 × 6 × 2 tuning points

    # A second run reuses every cell and gives the same table.
    again = _compare(tmp_path, eval_gt, train_gt, **opts)
    assert [r for r in again.rows] == result.rows
    assert "(42 reused, 0 run now)" in (out / "table.md").read_text()


def test_tracker_comparison_runs_a_method_with_motion_beside_it(tmp_path, one_thread):
    from keytrack.ablations import runner
    from keytrack.errors import InputError

    train_gt = generate_dataset(2, seed=11, config=TINY)
    eval_gt = generate_dataset(2, seed=12, config=TINY)
    result = _compare(
        tmp_path,
        eval_gt,
        train_gt,
        strides=(1, 4),
        grid=(0.1, 0.5),
        methods=("oks", "oks+motion"),
        settings=("gt_boxes_gt_keypoints",),
    )
    assert result.failures == []
    assert [(r["stride"], r["matcher"]) for r in _ours(result)] == [
        (1, "OKS (greedy)"),
        (1, "OKS (greedy) + motion"),
        (4, "OKS (greedy)"),
        (4, "OKS (greedy) + motion"),
    ]
    # each tuned on the training split, per keypoint setting and stride, with its own motion
    gt = "gt_boxes_gt_keypoints"
    assert {m: set(t) for m, t in result.thresholds.items()} == {
        m: {(gt, 1), (gt, 4)} for m in ("oks", "oks+motion")
    }
    tuning = (tmp_path / "tc" / "tuning.md").read_text()
    assert tuning.count("| yes |") == 4 and "| OKS (greedy) + motion | GT boxes, GT keypoints | 4 |" in tuning
    tracked = [
        _flat(json.loads(p.read_text())["params"])
        for p in (tmp_path / "tc" / "runs").glob("*gt_boxes*.json")
        if not p.name.startswith("tune-")
    ]
    assert sorted(c.get("motion", "none") for c in tracked) == ["none", "none", "velocity", "velocity"]
    for c in tracked:  # each cell at its own tuned threshold
        matcher = "oks+motion" if c.get("motion") else "oks"
        assert c["match_threshold"] == result.thresholds[matcher][gt, c.get("stride", 1)]
    assert "+ motion (beyond the paper)" in (tmp_path / "tc" / "table.md").read_text()
    # a + motion row is compared with OKS + motion, not with itself or plain OKS: no difference is shown
    assert all("v_idsw" not in r and "d_idsw" not in r for r in _ours(result))
    plot = tmp_path / "tc" / "idsw_vs_stride.png"  # one line per matcher against the stride
    assert plot in result.files and plot.read_bytes()[:4] == b"\x89PNG"
    # A two-point grid has only edges: the notes say the tuned thresholds may lie beyond it.
    assert (
        "OKS (greedy) + motion (GT boxes, GT keypoints, stride 4)"
        in (tmp_path / "tc" / "table.md").read_text()
    )
    with pytest.raises(InputError, match="axes.matcher: .'oks\\+speed'. are not one of"):
        runner.load_spec("tracker_comparison", ["axes.matcher=[oks+speed]"])


def test_tracker_comparison_runs_a_method_with_the_kalman_motion_beside_it(tmp_path, one_thread):
    """``oks+kalman`` tracks with motion="kalman", is tuned with it, labelled and noted as such."""
    eval_gt = generate_dataset(2, seed=12, config=TINY)
    result = _compare(
        tmp_path,
        eval_gt,
        generate_dataset(2, seed=11, config=TINY),
        strides=(4,),
        grid=(0.1, 0.5),
        methods=("oks", "oks+motion", "oks+kalman"),
        settings=("gt_boxes_gt_keypoints",),
    )
    assert result.failures == []
    assert [r["matcher"] for r in _ours(result)] == [
        "OKS (greedy)",
        "OKS (greedy) + motion",
        "OKS (greedy) + Kalman",
    ]
    cells = [
        _flat(json.loads(p.read_text())["params"])
        for p in (tmp_path / "tc" / "runs").glob("oks+kalman*.json")
    ]
    assert cells and all(c["motion"] == "kalman" for c in cells)
    tuned = [
        json.loads(p.read_text())["params"] for p in (tmp_path / "tc" / "runs").glob("tune-oks+kalman*.json")
    ]
    assert tuned and all(t["tracker"]["motion"] == "kalman" for t in tuned)
    assert "+ Kalman (beyond the paper)" in (tmp_path / "tc" / "table.md").read_text()


def test_tracker_comparison_compares_each_matcher_with_oks_over_the_videos(tmp_path, one_thread):
    eval_gt = generate_dataset(4, seed=12, config=TINY)
    result = _compare(
        tmp_path,
        eval_gt,
        strides=(1,),
        settings=("gt_boxes_predicted_keypoints",),
        oks_threshold=0.2,
        iou_threshold=0.1,
        methods=("oks", "iou", "oks+motion", "iou+motion"),
    )
    assert result.failures == []
    cells = {c.matcher: r for c, r in result.records.items()}
    for r in cells.values():  # per-video counts add up to the cell's totals
        per_video = r.result["per_video"]
        assert set(per_video) == {v.name for v in eval_gt.videos}
        assert sum(s for s, _ in per_video.values()) == r.result["num_switches"]
        assert sum(n for _, n in per_video.values()) == r.result["num_objects"]
    rows = {r["matcher"]: r for r in _ours(result)}

    def pooled(m):
        return 100 * cells[m].result["num_switches"] / cells[m].result["num_objects"]

    for matcher, label, reference in (
        ("iou", "IoU (greedy)", "oks"),
        ("iou+motion", "IoU (greedy) + motion", "oks+motion"),
    ):
        row = rows[label]
        assert row["v_idsw"].value == pytest.approx(pooled(matcher) - pooled(reference))
        assert row["v_idsw"].low <= row["v_idsw"].value <= row["v_idsw"].high
        assert row["d_idsw"].mean == pytest.approx(
            cells[matcher].result["idsw"]["Total"] - cells[reference].result["idsw"]["Total"]
        )
    assert "v_idsw" not in rows["OKS (greedy)"] and "v_idsw" not in rows["OKS (greedy) + motion"]
    table = (tmp_path / "tc" / "table.md").read_text()
    assert "Δ%IDSW vs OKS (greedy) (95 % CI, videos × seeds)" in table and "two-way bootstrap" in table
    header = (tmp_path / "tc" / "table.csv").read_text().splitlines()[0]
    assert "Δ%IDSW vs OKS (greedy) (95 % CI, videos × seeds) low" in header
    plot = tmp_path / "tc" / "idsw_vs_oks.png"  # the differences, drawn with their intervals
    assert plot in result.files and plot.read_bytes()[:4] == b"\x89PNG"
    assert "no interval over the videos" not in table
    # a cell cached before per-video counts were recorded: no interval, and the notes say how to get one
    for path in (tmp_path / "tc" / "runs").glob("iou*.json"):
        record = json.loads(path.read_text())
        record["result"].pop("per_video")
        path.write_text(json.dumps(record))
    again = _compare(
        tmp_path,
        eval_gt,
        strides=(1,),
        settings=("gt_boxes_predicted_keypoints",),
        oks_threshold=0.2,
        iou_threshold=0.1,
        methods=("oks", "iou", "oks+motion", "iou+motion"),
    )
    assert {r["matcher"]: r["v_idsw"] is None for r in _ours(again) if "v_idsw" in r} == {
        "IoU (greedy)": True,
        "IoU (greedy) + motion": True,
    }
    assert "2 row(s) have no interval over the videos" in (tmp_path / "tc" / "table.md").read_text()


def test_tracker_comparison_matches_only_confident_keypoints_where_asked(tmp_path, one_thread):
    from keytrack.ablations.cells import TrackingOptions
    from keytrack.ablations.evaluate import EvalSet, Evaluator, TrackerSpec

    eval_gt = generate_dataset(2, seed=12, config=TINY)
    predicted = "predicted_boxes_predicted_keypoints"
    result = _compare(
        tmp_path,
        eval_gt,
        strides=(1,),
        methods=("oks", "oks+motion"),
        oks_threshold=0.2,
        settings=("gt_boxes_gt_keypoints", predicted),
        min_keypoint_confidence=("oks=0.6",),
    )
    assert result.failures == []
    cells = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "tc" / "runs").glob("*.json")}
    conf = {k: c["params"]["tracker"].get("min_keypoint_confidence", 0.0) for k, c in cells.items()}
    # Only OKS, only with predicted keypoints (ground truth has c = 1); OKS + motion keeps every keypoint.
    key = "{}-{}-delta4-greedy-kp{:g}-seed0"
    assert conf == {
        key.format("oks", predicted, 0.5): 0.6,
        key.format("oks+motion", predicted, 0.5): 0.0,
        key.format("oks", "gt_boxes_gt_keypoints", 0): 0.0,
        key.format("oks+motion", "gt_boxes_gt_keypoints", 0): 0.0,
    }
    # The cell is the tracker with that setting, and the setting changes what it tracks.
    runs = {
        t: Evaluator().evaluate(
            TrackerSpec("oks", match_threshold=0.2, min_keypoint_confidence=t),
            EvalSet(eval_gt, predicted, 0, keypoint_threshold=0.5, compute_hota=False),
        )
        for t in (0.0, 0.6)
    }
    cell = cells[key.format("oks", predicted, 0.5)]["result"]
    assert cell["num_switches"] == runs[0.6]["num_switches"] and cell["idsw"] == runs[0.6]["idsw"]
    assert (runs[0.0]["num_switches"], runs[0.0]["num_misses"]) != (
        runs[0.6]["num_switches"],
        runs[0.6]["num_misses"],
    )
    assert "confidence ≥ τ" in (tmp_path / "tc" / "table.md").read_text()

    assert TrackingOptions(min_keypoint_confidence=("0.2", "oks+motion=0.35")).confidence == {
        "*": 0.2,
        "oks+motion": 0.35,
    }
    with pytest.raises(ValueError, match="min_keypoint_confidence"):
        TrackingOptions(min_keypoint_confidence=("oks=1.2",))


def test_grid_edge_flags_a_tuned_threshold_at_either_end_of_its_grid():
    from keytrack.ablations.cells import grid_edge

    grid = (0.05, 0.1, 0.2)
    assert [grid_edge(t, grid) for t in grid] == [True, False, True]
    assert not grid_edge(None, grid)
    # 0 and 1 are the ends of every grid: nothing lies beyond them
    assert [grid_edge(t, (0.0, 0.5, 1.0)) for t in (0.0, 0.5, 1.0)] == [False, False, False]


def test_oks_is_tuned_per_keypoint_setting_and_stride_as_the_cells_track(tmp_path, one_thread):
    """``--tune-on cell`` (the default): each (setting, stride) gets the grid point with the fewest ID
    switches
    on the training split drawn in that setting, every k-th frame, tracked with the cells' tracker settings;
    ``--tune-on gt``: one threshold, on GT keypoints at stride 1."""
    from keytrack.ablations.cells import TrackingOptions, tune_thresholds
    from keytrack.ablations.evaluate import EvalSet, Evaluator, TrackerSpec

    train_gt, _ = complete_head_boxes(generate_dataset(3, seed=11, config=TINY))
    predicted, gt = "predicted_boxes_predicted_keypoints", "gt_boxes_gt_keypoints"
    grid = (0.0, 0.2, 0.6)
    opts = TrackingOptions(
        grid=grid,
        detection_threshold=0.5,
        keypoint_threshold=0.5,
        seeds=(3,),
        min_keypoint_confidence=("oks=0.3",),
    )
    evaluator = Evaluator(RunCache(tmp_path / "runs"))
    thresholds, rows, _ = tune_thresholds(
        opts, None, evaluator, ["oks"], 4, train_gt, cells=[(predicted, 2), (gt, 1)]
    )
    assert set(thresholds["oks"]) == {(predicted, 2), (gt, 1)}
    drawn = EvalSet(train_gt, predicted, 3, 2, keypoint_threshold=0.5, compute_hota=False)
    direct = {
        t: Evaluator().evaluate(
            TrackerSpec("oks", match_threshold=t, min_keypoint_confidence=0.3, detection_threshold=0.5), drawn
        )["idsw"]["Total"]
        for t in grid
    }
    tuned = {r["threshold"]: r["idsw_total"] for r in rows if (r["setting"], r["stride"]) == (predicted, 2)}
    assert tuned == pytest.approx(direct)
    assert direct[thresholds["oks"][predicted, 2]] == min(direct.values())
    assert len(rows) == 2 * len(grid) and sum(r["chosen"] == "yes" for r in rows) == 2

    once, rows, _ = tune_thresholds(
        TrackingOptions(grid=grid, tune_on="gt"),
        None,
        Evaluator(RunCache(tmp_path / "gt")),
        ["oks"],
        4,
        train_gt,
        cells=[(predicted, 2)],
    )
    assert once["oks"] in grid and {(r["setting"], r["stride"]) for r in rows} == {(gt, 1)}
    with pytest.raises(ValueError):
        TrackingOptions(tune_on="test")


def test_oks_sigma_scale_is_tuned_with_the_threshold_and_the_cells_track_with_it(tmp_path, one_thread):
    """``--oks-scale 1 4``: each cell's (threshold, σ scale) is the pair with the fewest ID switches on the
    training split (ties: higher MOTA, lower threshold, lower scale), and the cell tracks with that scale."""
    from keytrack.ablations.cells import TrackingOptions, tune_thresholds
    from keytrack.ablations.evaluate import EvalSet, Evaluator, TrackerSpec

    train_gt, _ = complete_head_boxes(generate_dataset(3, seed=11, config=TINY))
    gt, grid = "gt_boxes_gt_keypoints", (0.05, 0.3)
    opts = TrackingOptions(grid=grid, oks_scale=(1.0, 4.0), seeds=(0,))
    evaluator = Evaluator(RunCache(tmp_path / "runs"))
    thresholds, rows, _ = tune_thresholds(opts, None, evaluator, ["oks+kalman"], 4, train_gt, cells=[(gt, 4)])
    assert len(rows) == 2 * len(grid) and sum(r["chosen"] == "yes" for r in rows) == 1
    drawn = EvalSet(train_gt, gt, 0, 4, compute_hota=False)
    direct = {
        (k, t): Evaluator().evaluate(
            TrackerSpec("oks", match_threshold=t, motion="kalman", oks_scale=k), drawn
        )
        for k in (1.0, 4.0)
        for t in grid
    }
    best = min(
        direct, key=lambda kt: (direct[kt]["idsw"]["Total"], -direct[kt]["mota"]["Total"], kt[1], kt[0])
    )
    assert (opts.tuned_scales["oks", gt, 4], thresholds["oks+kalman"][gt, 4]) == best
    assert opts.scale_of("oks+kalman", gt, 4) == best[0] and opts.scale_of("oks", gt, 1) == 1.0
    assert {(r["oks_scale"], r["threshold"]): r["idsw_total"] for r in rows} == pytest.approx(
        {kt: r["idsw"]["Total"] for kt, r in direct.items()}
    )
    with pytest.raises(ValueError, match="oks_scale"):
        TrackingOptions(oks_scale=(0.0,))


def test_a_matchers_own_threshold_replaces_the_default_and_the_tuning():
    """``--matcher-threshold MATCHER=T`` sets that matcher's match threshold only; OKS given one is not tuned
    (no training data is read: the profile and cache are not touched)."""
    from keytrack.ablations.cells import TrackingOptions, tune_thresholds

    opts = TrackingOptions(matcher_threshold=("improved=0.9", "oks+motion=0.05"), oks_threshold=0.2)
    thresholds, rows, filled = tune_thresholds(
        opts, None, None, ["improved", "improved+motion", "oks", "oks+motion"], 4
    )
    assert thresholds == {"improved": 0.9, "improved+motion": 0.5, "oks": 0.2, "oks+motion": 0.05}
    assert rows == [] and filled == 0
    for bad in (("0.9",), ("oks=1.5",)):
        with pytest.raises(ValueError, match="matcher_threshold"):
            TrackingOptions(matcher_threshold=bad)


def test_tracker_comparison_assigns_confident_detections_first_where_asked(tmp_path, one_thread):
    from keytrack.ablations.evaluate import EvalSet, Evaluator, TrackerSpec

    eval_gt = generate_dataset(2, seed=12, config=TINY)
    predicted = "predicted_boxes_predicted_keypoints"
    key = f"oks-{predicted}-delta4-greedy-kp0.5-seed0.json"
    result = _compare(
        tmp_path,
        eval_gt,
        strides=(1,),
        methods=("oks",),
        oks_threshold=0.2,
        settings=(predicted,),
        detection_threshold=0.5,
    )
    assert result.failures == []
    cell = json.loads((tmp_path / "tc" / "runs" / key).read_text())
    assert cell["params"]["tracker"]["detection_threshold"] == 0.5
    # The cell is the tracker with that setting.
    run = Evaluator().evaluate(
        TrackerSpec("oks", match_threshold=0.2, detection_threshold=0.5),
        EvalSet(eval_gt, predicted, 0, keypoint_threshold=0.5, compute_hota=False),
    )
    assert cell["result"]["num_switches"] == run["num_switches"] and cell["result"]["idsw"] == run["idsw"]
    assert "detection score >= 0.5 are assigned first" in (tmp_path / "tc" / "table.md").read_text()
    # Without it, no new key: the cached cells of the one-pass tracker stay valid.
    _compare(
        tmp_path, eval_gt, out="one", strides=(1,), methods=("oks",), oks_threshold=0.2, settings=(predicted,)
    )
    cell = json.loads((tmp_path / "one" / "runs" / key).read_text())
    assert "detection_threshold" not in cell["params"]["tracker"]

    from keytrack.cli import main  # the option reaches the runner's command line, checked

    assert main(["ablate", "tracker_comparison", "--detection-threshold", "2"]) == 2


@pytest.fixture(scope="module")
def tiny_gcn_checkpoint(tmp_path_factory):
    """An untrained GCN matcher in the checkpoint layout ``load_matcher`` reads."""
    from keytrack.config import load_config
    from keytrack.models.factory import build_matcher, matcher_config

    cfg = load_config(["experiment=gcn", "model.channels=8", "model.embedding=8"])
    torch.manual_seed(0)
    model = build_matcher(matcher_config(cfg))
    path = tmp_path_factory.mktemp("ckpt") / "gcn.ckpt"
    torch.save(
        {
            "hyper_parameters": {"cfg": OmegaConf.to_container(cfg)},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        path,
    )
    return path


@pytest.mark.slow
def test_tracker_comparison_with_a_learned_gcn_adds_cells_beside_the_paper(
    tmp_path, tiny_checkpoint, tiny_gcn_checkpoint, one_thread
):
    eval_gt = generate_dataset(2, seed=12, config=TINY)
    setting = "predicted_boxes_predicted_keypoints"
    base = dict(strides=(1,), settings=(setting,), checkpoint=str(tiny_checkpoint), oks_threshold=0.2)
    first = _compare(tmp_path, eval_gt, methods=("pose_entailment", "oks"), **base)
    assert [r["matcher"] for r in first.rows] == [
        "Pose Entailment",
        "OKS (greedy)",
        "GCN (paper)",
        "Optical Flow (paper)",
    ]

    # Adding the GCN adds its cells and reuses the others; its row carries the paper's GCN values.
    result = _compare(
        tmp_path,
        eval_gt,
        methods=("pose_entailment", "oks", "gcn"),
        baseline_checkpoint=(f"gcn={tiny_gcn_checkpoint}",),
        baseline_nearest=1,
        **base,
    )
    assert result.failures == [] and result.thresholds["gcn"] == 0.5
    assert [r["matcher"] for r in result.rows] == [
        "Pose Entailment",
        "OKS (greedy)",
        "GCN (ours)",
        "Optical Flow (paper)",
    ]
    gcn = result.rows[2]
    assert (gcn["idsw_paper"], gcn["mota_paper"]) == (1.6, 65.9)
    assert 0 <= gcn["idsw"].mean <= 100 and math.isfinite(gcn["mota"].mean) and gcn["status"] is None
    table = (tmp_path / "tc" / "table.md").read_text()
    assert "(2 reused, 1 run now)" in table
    assert "GCN (ours) is our implementation" in table and "the 1 nearest poses" in table
    stored = json.loads(
        (tmp_path / "tc" / "runs" / f"gcn-{setting}-delta4-greedy-kp0.5-seed0.json").read_text()
    )
    assert stored["params"]["tracker"]["nearest"] == 1 and stored["params"]["tracker"]["checkpoint"]
    # the learned network is scored pair by pair: the speed table counts its pairs
    with open(tmp_path / "tc" / "speed.csv", newline="") as f:
        assert any(r["Method"] == "GCN (ours)" and int(r["Pairs scored"]) > 0 for r in csv.DictReader(f))


def test_tracker_comparison_learned_baselines_take_pose_entailments_budget(tmp_path, monkeypatch):
    from keytrack.ablations.training import budget_overrides

    budget = budget_overrides("default")
    assert "loader.samples_per_epoch=24000" in budget and "trainer.max_epochs=6" in budget
    assert "optim.lr=0.0001" in budget and "loader.batch_size=32" in budget
    seen = {}

    def fake_network(profile, *, checkpoint, experiment, train_seed, train_overrides=(), wait=True):
        seen[experiment] = list(train_overrides)
        raise RuntimeError("no training in this test")

    monkeypatch.setattr(training, "matching_network", fake_network)
    gt = generate_dataset(2, seed=13, config=TINY)
    result = _compare(
        tmp_path,
        gt,
        strides=(1,),
        settings=("gt_boxes_gt_keypoints",),
        methods=("cnn_keypoints", "iou"),
        iou_threshold=0.3,
        train_seed=2,
    )
    assert "trainer.max_epochs=6" in seen["cnn_keypoints"]
    assert "run_name=synthetic-default-budget-seed2" in seen["cnn_keypoints"]
    cnn, iou = _ours(result)
    assert cnn["matcher"] == "CNN on keypoints" and iou["matcher"] == "IoU (greedy)"
    assert cnn["status"].startswith("failed: RuntimeError: no cnn_keypoints network")
    assert iou["status"] is None and any("cnn_keypoints network" in f for f in result.failures)


def test_crop_cnn_is_skipped_on_data_without_images(tmp_path):
    from keytrack.ablations.cells import missing_images
    from keytrack.ablations.profile import Profile
    from keytrack.io import write_posetrack18

    gt = generate_dataset(2, seed=13, config=TINY)
    root = tmp_path / "data"
    for split in ("train", "test"):
        write_posetrack18(gt, root / "annotations" / split)
    profile = Profile.from_data(root)
    assert missing_images(Profile.from_data(None), gt) is None
    reason = missing_images(profile, profile.load_eval())
    assert reason and "no image files" in reason and "not found" in reason

    result = _compare(
        tmp_path,
        None,
        data=str(root),
        strides=(1,),
        settings=("gt_boxes_gt_keypoints",),
        methods=("cnn_crops", "iou"),
        iou_threshold=0.3,
    )
    crops = next(r for r in result.rows if r["matcher"] == "CNN on image crops")
    assert crops["status"].startswith("skipped: the data has no image files") and crops["idsw"].n == 0
    assert result.failures == [] and not list((tmp_path / "tc" / "runs").glob("*cnn_crops*"))
    assert "CNN on image crops: skipped" in (tmp_path / "tc" / "table.md").read_text()


def test_tracker_comparison_shows_a_failed_method_and_runs_the_others(tmp_path):
    bad = tmp_path / "not-a-checkpoint.ckpt"
    torch.save({"state_dict": {}}, bad)
    gt = generate_dataset(2, seed=13, config=TINY)
    result = _compare(
        tmp_path,
        gt,
        strides=(1,),
        settings=("gt_boxes_predicted_keypoints",),
        methods=("pose_entailment", "iou"),
        checkpoint=str(bad),
        iou_threshold=0.2,
    )
    pe, iou = _ours(result)
    assert pe["status"].startswith("failed: CheckpointError")
    assert "not a keytrack training checkpoint" in pe["status"]
    assert pe["idsw"].n == 0 and pe["mota"].n == 0
    assert iou["status"] is None and math.isfinite(iou["mota"].mean) and iou["match_threshold"] == 0.2
    assert len(result.failures) == 1 and result.tuning_rows == []
    table = (tmp_path / "tc" / "table.md").read_text()
    assert "| Status |" in table and "not a keytrack training checkpoint" in table


# -- keytrack evaluate --stride ------------------------------------------------------------------


def test_evaluate_cli_frame_stride_scores_predictions_tracked_at_that_stride(tmp_path, capsys):
    from keytrack.cli import main
    from keytrack.io import write_posetrack18

    gt = generate_dataset(2, seed=14, config=TINY)
    write_posetrack18(gt, tmp_path / "gt")
    gt_dir, pred_dir = str(tmp_path / "gt"), str(tmp_path / "pred")
    assert (
        main(
            [
                "track",
                "--data",
                gt_dir,
                "--out",
                pred_dir,
                "--scorer",
                "oks",
                "--match-threshold",
                "0.1",
                "--stride",
                "2",
            ]
        )
        == 0
    )
    capsys.readouterr()

    assert (
        main(
            [
                "evaluate",
                "--gt",
                gt_dir,
                "--pred",
                pred_dir,
                "--stride",
                "2",
                "--json",
                str(tmp_path / "eval.json"),
            ]
        )
        == 0
    )
    assert "frame stride 2" in capsys.readouterr().out
    result = json.loads((tmp_path / "eval.json").read_text())
    kept = sum(1 for v in gt.videos for f in v.frames if f.index % 2 == 0)
    assert result["num_frames"] == kept
    assert result["total"]["ap"] == 100.0 and result["total"]["mota"] > 90  # GT keypoints, tracked by OKS

    from keytrack.evaluation import EvaluationError

    assert main(["evaluate", "--gt", gt_dir, "--pred", pred_dir]) == 2  # without the stride: refused
    assert capsys.readouterr().err.startswith("keytrack evaluate: error: ")
    with pytest.raises(EvaluationError, match="frames"):  # the traceback under --debug
        main(["--debug", "evaluate", "--gt", gt_dir, "--pred", pred_dir])
    assert main(["evaluate", "--gt", gt_dir, "--pred", gt_dir, "--stride", "2"]) == 2  # every frame
    assert "--stride 2" in capsys.readouterr().err  # not from track
    assert main(["evaluate", "--gt", gt_dir, "--pred", pred_dir, "--stride", "0"]) == 2
    assert "error: --stride must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
def test_tracker_comparison_shows_the_improved_matcher_over_several_training_seeds(
    tmp_path, tiny_checkpoint, monkeypatch, one_thread
):
    trained = []

    def fake_network(profile, *, checkpoint, experiment, train_seed, train_overrides=(), wait=True):
        trained.append((experiment, train_seed, tuple(train_overrides)))
        return {
            "checkpoint": str(tiny_checkpoint),
            "digest": f"{experiment}-{train_seed}",
            "source": "given",
            "experiment": experiment,
            "best_val_rank1": 0.5,
        }

    monkeypatch.setattr(training, "matching_network", fake_network)
    gt = generate_dataset(2, seed=13, config=TINY)
    result = _compare(
        tmp_path,
        gt,
        strides=(1,),
        settings=("gt_boxes_gt_keypoints",),
        methods=("pose_entailment", "pose_entailment_improved", "oks"),
        oks_threshold=0.1,
        train_seeds=(0, 1),
        improved_overrides=("trainer.max_epochs=8",),
    )
    assert result.failures == []
    # Each learned matcher trains from its own experiment and overrides, once per seed.
    assert trained == [
        ("default", 0, ()),
        ("default", 1, ()),
        ("improved", 0, ("trainer.max_epochs=8",)),
        ("improved", 1, ("trainer.max_epochs=8",)),
    ]
    rows = {r["matcher"]: r for r in _ours(result)}
    improved, oks = rows["Pose Entailment (improved)"], rows["OKS (greedy)"]
    assert improved["idsw"].n == 2 and oks["idsw"].n == 1  # OKS: no training, one cell
    keys = sorted(p.stem for p in (tmp_path / "tc" / "runs").glob("*.json"))
    assert keys == sorted(
        [
            "oks-gt_boxes_gt_keypoints-delta4-greedy-kp0-seed0",
            *(
                f"{m}-gt_boxes_gt_keypoints-delta4-greedy-kp0-train{s}-seed0"
                for m in ("pose_entailment", "pose_entailment_improved")
                for s in (0, 1)
            ),
        ]
    )
    table = (tmp_path / "tc" / "table.md").read_text()
    assert "Pose Entailment (improved)" in table and "trained with seeds 0, 1" in table
    assert "experiments/improved.yaml with trainer.max_epochs=8" in table
    assert "Pose Entailment (improved), seed 1" in table and "val/rank1 0.5000" in table


@pytest.mark.slow
def test_matcher_variants_table_trains_each_variant_once_and_chains_init_from(
    tmp_path, tiny_checkpoint, monkeypatch, one_thread
):
    from keytrack.ablations import matcher_variants as mv

    spec = tmp_path / "variants.yaml"
    spec.write_text(
        "budget: [trainer.max_epochs=1]\n"
        "oks_motion: true\n"
        "oks_min_keypoint_confidence: [0.4]\n"
        "oks_detection_threshold: [0.5]\n"
        "variants:\n"
        "  - {name: first, experiment: default, overrides: [optim.lr=1e-3]}\n"
        "  - {name: first moved, experiment: default, overrides: [optim.lr=1e-3], motion: velocity}\n"
        "  - {name: first confident, experiment: default, overrides: [optim.lr=1e-3],\n"
        "     min_keypoint_confidence: 0.4}\n"
        "  - {name: first detected, experiment: default, overrides: [optim.lr=1e-3],\n"
        "     detection_threshold: 0.5}\n"
        "  - {name: second, experiment: improved, init_from: first}\n"
        "  - {name: broken, experiment: default, overrides: [model.layers=0]}\n"
    )
    trained = []

    def fake_train(experiment, overrides):
        trained.append((experiment, list(overrides)))
        if "model.layers=0" in overrides:
            raise ValueError("model.layers must be positive")
        return training.TrainedModel(
            tiny_checkpoint,
            tmp_path,
            {"global_step": 7, "seconds": 60.0, "metrics_at_best": {"val/acc": 0.8}},
            False,
        )

    fit, val = generate_dataset(2, seed=21, config=TINY), generate_dataset(2, seed=22, config=TINY)
    monkeypatch.setattr(mv, "train_or_reuse", fake_train)
    monkeypatch.setattr(mv, "_validation_ground_truth", lambda profile, cfg: (fit, val))
    out = mv.run_variants(spec, None, str(tmp_path / "mv"), 0, [], None)
    assert [e for e, _ in trained] == ["default", "default", "default", "default", "improved", "default"]
    assert "optim.lr=1e-3" in trained[0][1] and "trainer.max_epochs=1" in trained[0][1]
    assert f"model.init_from={tiny_checkpoint}" in trained[4][1]
    rows = list(csv.DictReader(open(out / "table.csv")))
    by = {r["Variant"]: r for r in rows}
    oks = [v for v in by if v.startswith("OKS")]
    assert set(by) == {"first", "first moved", "first confident", "first detected", "second", "broken", *oks}
    thr = by[oks[0]]["Variant"].split("threshold ")[1].split(" ")[0]
    assert sorted(oks) == sorted(
        [
            f"OKS (no learning, threshold {thr} tuned on the training videos)",
            f"OKS + motion (threshold {thr})",
            f"OKS, keypoints c ≥ 0.4 (threshold {thr})",
            f"OKS + motion, keypoints c ≥ 0.4 (threshold {thr})",
            f"OKS, confident detections first τ = 0.5 (threshold {thr})",
        ]
    )
    cells = {p.stem: _flat(json.loads(p.read_text())["params"]) for p in (out / "runs").glob("net*.json")}
    moved = [c for k, c in cells.items() if "-motion-velocity" in k]
    assert len(moved) == 6 and all(c["motion"] == "velocity" for c in moved)  # 2 strides × 3 cells
    # The confidence and detection settings reach the predicted-keypoint cells only (ground truth has
    # c = 1 and scores 1); the variants of one network share its ranking and GT cells.
    assert sorted(
        k.split("-", 1)[1] for k, c in cells.items() if c.get("min_keypoint_confidence") == 0.4
    ) == ["stride1-predicted-conf0.4", "stride4-predicted-conf0.4"]
    assert sorted(k.split("-", 1)[1] for k, c in cells.items() if c.get("detection_threshold") == 0.5) == [
        "stride1-predicted-det0.5",
        "stride4-predicted-det0.5",
    ]
    assert len(cells) == 2 * (3 + 3 + 1 + 1)  # per stride: 3 plain, 3 moved, 1 confident, 1 detected
    assert by["first detected"]["%IDSW stride 1"] == by["first"]["%IDSW stride 1"]
    for name in ("first", "first moved", "first confident", "first detected", "second", *oks[:2]):
        for col in ("rank-1 stride 1", "%IDSW stride 1", "%IDSW stride 4", "%IDSW pred. stride 4"):
            assert 0 <= float(by[name][col]) <= 100
    for name in oks[2:]:  # predicted keypoints only
        assert 0 <= float(by[name]["%IDSW pred. stride 4"]) <= 100 and by[name]["%IDSW stride 1"] == ""
    assert "Keypoints c ≥ τ" in (out / "table.md").read_text()
    assert "Confident detections first τ" in (out / "table.md").read_text()
    assert float(by["first detected"]["ID switches pred. stride 4"]) >= 0
    assert by["broken"]["Status"].startswith("failed: ValueError")
    assert float(by["first"]["val pair acc."]) == 0.8
    # A second run reuses every cached cell (no tracking, the same table).
    before = (out / "table.md").read_text()
    mv.run_variants(spec, None, str(tmp_path / "mv"), 0, [], None)
    assert (out / "table.md").read_text() == before


def test_matcher_variants_track_at_each_variants_match_threshold(
    tmp_path, tiny_checkpoint, monkeypatch, one_thread
):
    """A variant's ``match_threshold`` and the spec's ``oks_thresholds`` reach the tracker; predicted-only
    rows have no ranking or ground-truth cells."""
    from keytrack.ablations import matcher_variants as mv
    from keytrack.ablations.evaluate import Evaluator

    spec = tmp_path / "variants.yaml"
    spec.write_text(
        "strides: [1, 2]\n"
        "oks_detection_threshold: [0.4]\n"
        "oks_thresholds: [0.3]\n"
        "variants:\n"
        "  - {name: low, experiment: default, match_threshold: 0.2, detection_threshold: 0.4,\n"
        "     predicted_only: true}\n"
    )
    tracked = []

    def fake_evaluate(self, tracker, evalset):
        scorer = "PoseEntailmentScorer" if tracker.learned else "OKSScorer"
        frames = len(self.inputs(evalset)[0].videos[0].frames)
        tracked.append((scorer, tracker.match_threshold, tracker.detection_threshold, frames))
        return {"idsw": {"Total": 10 * tracker.match_threshold}, "mota": {"Total": 50.0}, "num_switches": 3}

    fit, val = generate_dataset(2, seed=21, config=TINY), generate_dataset(2, seed=22, config=TINY)
    monkeypatch.setattr(Evaluator, "evaluate", fake_evaluate)
    monkeypatch.setattr(
        mv,
        "train_or_reuse",
        lambda experiment, overrides: training.TrainedModel(
            tiny_checkpoint, tmp_path, {"global_step": 7}, False
        ),
    )
    monkeypatch.setattr(mv, "_validation_ground_truth", lambda profile, cfg: (fit, val))
    out = mv.run_variants(spec, None, str(tmp_path / "mv"), 0, [], None)
    by = {r["Variant"]: r for r in csv.DictReader(open(out / "table.csv"))}
    frames = len(val.videos[0].frames)
    learned = sorted(t for t in tracked if t[0] == "PoseEntailmentScorer")
    assert learned == [("PoseEntailmentScorer", 0.2, 0.4, n) for n in sorted((frames, (frames + 1) // 2))]
    assert float(by["low"]["%IDSW pred. stride 1"]) == pytest.approx(2.0)
    assert by["low"]["%IDSW stride 1"] == "" and by["low"]["rank-1 stride 1"] == ""
    assert by["OKS, threshold 0.3, confident detections first τ = 0.4"]["%IDSW pred. stride 2"] == "3.0"
    assert ("OKSScorer", 0.3, 0.4) in {t[:3] for t in tracked}
    cells = {p.stem: _flat(json.loads(p.read_text())["params"]) for p in (out / "runs").glob("net*.json")}
    assert sorted(k.split("-", 1)[1] for k in cells) == [
        "thr0.2-stride1-predicted-det0.4",
        "thr0.2-stride2-predicted-det0.4",
    ]
    assert all(c["match_threshold"] == 0.2 for c in cells.values())


@pytest.mark.parametrize(
    "module, cls", [("toks", "Options"), ("sweep", "SweepOptions"), ("cells", "TrackingOptions")]
)
def test_each_ablation_spells_its_options_once(module, cls):
    """The command line is made from the options dataclass (keytrack.ablations.options.opt): no option
    given, every field keeps the dataclass's default; each option given sets its own field."""
    import argparse
    import dataclasses
    import importlib

    mod = importlib.import_module(f"keytrack.ablations.{module}")
    options = getattr(mod, cls)
    parser = argparse.ArgumentParser()
    if module == "cells":
        mod.add_tracking_arguments(parser, "x")
    else:
        mod.add_arguments(parser)
    given = ["x"] if module == "sweep" else []
    convert = {
        "sweep": getattr(mod, "options_from_args", None),
        "cells": getattr(mod, "tracking_options", None),
    }.get(module) or (lambda args: lab_options.options_from(options, args))
    assert convert(parser.parse_args(given)) == options()
    flags = {a.dest: a for a in parser._actions}
    refused = []
    for f in dataclasses.fields(options):
        if "argparse" not in f.metadata or (
            module == "toks" and f.name in ("device", "batch_size", "wait_for_training")
        ):
            continue
        action = flags[f.name]
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            value, argv = not f.default, [action.option_strings[0]]
        elif action.choices:
            value = list(action.choices)[-1]
            argv = [action.option_strings[0], value]
            value = (value,) if action.nargs == "+" else value
        elif action.type in (int, float):
            text = "64" if action.type is int else "0.375"
            value, argv = action.type(text), [action.option_strings[0], text]
            value = (value,) if action.nargs == "+" else value
            if isinstance(action.nargs, int):  # a fixed count of values (--gate HIGH LOW)
                value, argv = (value,) * action.nargs, [action.option_strings[0], *[text] * action.nargs]
        else:
            argv = [action.option_strings[0], "gcn=0.5"]  # a key=value, a matcher and a number
            value = (
                ("gcn=0.5",)
                if action.nargs == "+" or isinstance(action, argparse._AppendAction)
                else "gcn=0.5"
            )
        try:
            got = convert(parser.parse_args([*given, *argv]))
        except ValueError:  # a value the options refuse (a box dilation below 1)
            refused.append(f.name)
            continue
        assert getattr(got, f.name) == value, (f.name, argv)
    assert len(refused) <= 1, refused


@pytest.mark.parametrize(
    "name, option",
    [
        ("tracker_comparison", "--baseline-nearest"),
        ("toks", "--estimator"),
        ("sweep", "--count"),
        ("matcher_variants", "--only"),
    ],
)
def test_keytrack_ablate_runs_the_plugins_with_their_own_options(name, option, capsys):
    """Every ablation is ``keytrack ablate NAME``: the ones that stay code take their own options."""
    from keytrack.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["ablate", name, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and f"keytrack ablate {name}" in out and option in out


def test_keytrack_ablate_hands_a_variants_spec_to_matcher_variants(monkeypatch):
    from keytrack.ablations import matcher_variants
    from keytrack.cli import main

    calls = []
    monkeypatch.setattr(matcher_variants, "run_variants", lambda *a: calls.append(a))
    assert main(["ablate", "matcher_detection", "--seed", "2", "--only", "improved"]) == 0
    ((spec, data, out, seed, extra, threads, only),) = calls
    assert (
        spec.endswith("experiments/ablations/matcher_detection.yaml") and seed == 2 and only == ["improved"]
    )
    assert data is None and out is None and extra == []


def test_a_network_note_gives_its_training_steps_and_time():
    from keytrack.ablations.cells import describe_network

    net = {"checkpoint": "runs/paper/x/checkpoints/best.ckpt", "source": "reused", "experiment": "paper"}
    assert describe_network(net, None).endswith("(reused, experiment paper).")
    timed = {**net, "best_val_rank1": 0.95, "global_step": 53400, "train_seconds": 5400.0}
    assert describe_network(timed, None).endswith(
        "(reused, experiment paper, val/rank1 0.9500, 53,400 steps in 1.50 h)."
    )
