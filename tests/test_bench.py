"""``keytrack bench`` (make bench): every row measured, rates and fractions of the roofline."""

from __future__ import annotations

import csv
import math

import pytest


@pytest.mark.slow
def test_bench_writes_every_row_with_rates_and_fractions(tmp_path):
    from keytrack import bench

    out = bench.measure(bench_args(tmp_path))
    rows = list(csv.DictReader(open(out / "table.csv")))
    what = [r["What"] for r in rows]
    assert what[0].startswith("roofline") and float(rows[0]["of roofline"]) == 1.0
    assert (
        sum(w.startswith("matcher forward") for w in what) == 2
        and sum("training step" in w for w in what) == 3
    )
    assert any(w.startswith("`keytrack train` whole step") for w in what)
    tracking = [w for w in what if w.startswith("tracking 2 generated videos")]
    assert [w.endswith("+ motion") for w in tracking] == [False, True, False]
    assert tracking[2].endswith("2 videos at once")
    one, together = (next(r for r in rows if r["What"] == w) for w in (tracking[0], tracking[2]))
    assert (
        float(together["pairs / forward"]) > float(one["pairs / forward"]) > 0
    )  # the same pairs, fewer forwards
    for r in rows:
        assert (
            float(r["GFLOP/s"]) > 0 and float(r["of roofline"]) > 0 and math.isfinite(float(r["of roofline"]))
        )
    track = next(r for r in rows if r["What"].startswith("tracking"))
    assert float(track["frames/s"]) > 0 and 0 < float(track["network share"]) <= 1
    md = (out / "table.md").read_text()
    assert "threads" in md
    # The roofline is measured around every timed row: at least twice per row after the first two.
    measured = int(md.split("the roofline was measured ")[1].split(" times")[0])
    assert measured >= 2 * (len(rows) - 1)


def bench_args(tmp_path):
    import argparse

    from keytrack import bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(
        [
            "--experiment",
            "quick",
            "--batches",
            "8",
            "16",
            "--repeats",
            "1",
            "--square",
            "128",
            "--train-steps",
            "12",
            "--track-videos",
            "2",
            "--out",
            str(tmp_path / "bench"),
            "model.layers=1",
            "model.hidden=32",
            "model.intermediate=32",
            "model.heads=2",
        ]
    )


def test_comparison_rows_time_each_tracker_on_the_same_frames():
    import importlib.util

    import torch

    from keytrack.bench import comparison_rows
    from keytrack.synth import generate_dataset

    data = generate_dataset(1, seed=3)
    data.videos[0].frames = data.videos[0].frames[:12]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared CPU: several threads wait on each other
    try:
        from keytrack.config import load_config

        cfg = load_config(["experiment=quick"])
        rows = comparison_rows(data, "one video", device="cpu", cfg=cfg)
    finally:
        torch.set_num_threads(threads)
    names = [r["what"].split(": ", 1)[1] for r in rows]
    boxmot = importlib.util.find_spec("boxmot") is not None
    assert names[:6] == [
        "OKS",
        "OKS + Kalman",
        "track-level matcher + Kalman",
        "track-level matcher + Kalman, 8 videos at once",
        "track-level matcher + Kalman behind the OKS gate 0.5 / 0.1, 8 videos at once",
        "pair matcher + motion behind the OKS gate 0.5 / 0.1",
    ]
    assert len(names) == 6 + 5 * boxmot  # a row per boxmot tracker where the extra is installed
    assert all(r["what"].startswith(f"tracking one video ({data.num_frames} frames)") for r in rows)
    assert all(math.isfinite(r["frames_s"]) and r["frames_s"] > 0 for r in rows)
