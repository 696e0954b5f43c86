"""A fault campaign: ``keytrack track``, ``evaluate`` and ``train`` killed (SIGKILL) at random points
and run again end with the outputs of a run that was never stopped.

Each command is first run once uninterrupted (the reference, and its duration). Then, in a fresh
output folder, the same command is started and killed after a seeded random delay within that
duration, 20 times in a row, each start finding whatever the previous kill left; a last run goes to
the end. Its outputs must equal the reference's: every prediction file, the evaluation JSON, the
trained weights, learning-rate schedule and metrics.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

KEYTRACK = str(Path(sys.executable).parent / "keytrack")
KILLS = 20
ENV = {**os.environ, "WANDB_MODE": "disabled", "WANDB_SILENT": "true"}


def _run(cmd: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=ENV)
    return done, time.perf_counter() - start


def _campaign(cmd: list[str], seconds: float, seed: int) -> tuple[subprocess.CompletedProcess, int]:
    """Start ``cmd`` and SIGKILL it after a random delay in [0, ``seconds``], :data:`KILLS` times, then
    run it to the end; returns the last run and how many kills hit a running process."""
    rng, landed = random.Random(seed), 0
    for _ in range(KILLS):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        try:
            proc.wait(timeout=rng.uniform(0.0, seconds))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            landed += 1
    final, _ = _run(cmd)
    return final, landed


def _files(folder: Path) -> dict[str, bytes]:
    """The prediction files of a tracking output (a manifest, if any, records paths and times)."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.json")) if "manifest" not in p.name}


@pytest.fixture(scope="module")
def annotations(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("campaign") / "data"
    done, _ = _run([KEYTRACK, "synth", "--out", str(root), "--videos", "12", "--seed", "0", "--split", "val"])
    assert done.returncode == 0, done.stderr
    return root / "annotations" / "val"


def _track_command(annotations: Path, out: Path) -> list[str]:
    help_text = subprocess.run([KEYTRACK, "track", "--help"], capture_output=True, text=True).stdout
    overwrite = ["--overwrite"] if "--overwrite" in help_text else []
    return [
        KEYTRACK,
        "track",
        "--data",
        str(annotations),
        "--scorer",
        "oks",
        "--out",
        str(out),
        *overwrite,
    ]


@pytest.mark.slow
def test_track_killed_at_random_points_ends_with_the_uninterrupted_output(tmp_path, annotations):
    reference, seconds = _run(_track_command(annotations, tmp_path / "reference"))
    assert reference.returncode == 0, reference.stderr
    final, landed = _campaign(_track_command(annotations, tmp_path / "killed"), seconds, seed=0)
    assert final.returncode == 0, final.stderr
    assert _files(tmp_path / "killed") == _files(tmp_path / "reference")
    assert landed > 0
    print(f"track: {landed} of {KILLS} kills hit a running process")


@pytest.mark.slow
def test_evaluate_killed_at_random_points_ends_with_the_uninterrupted_output(tmp_path, annotations):
    def command(out: Path) -> list[str]:
        return [
            KEYTRACK,
            "evaluate",
            "--gt",
            str(annotations),
            "--pred",
            str(annotations),
            "--json",
            str(out),
        ]

    reference, seconds = _run(command(tmp_path / "reference.json"))
    assert reference.returncode == 0, reference.stderr
    final, landed = _campaign(command(tmp_path / "killed.json"), seconds, seed=1)
    assert final.returncode == 0, final.stderr
    assert json.loads((tmp_path / "killed.json").read_text()) == json.loads(
        (tmp_path / "reference.json").read_text()
    )
    assert not list(tmp_path.glob("*.tmp*")), "a killed write left a partial file"
    assert landed > 0
    print(f"evaluate: {landed} of {KILLS} kills hit a running process")


def _train_command(out: Path) -> list[str]:
    return [
        KEYTRACK,
        "train",
        "experiment=quick",
        f"output_dir={out}",
        "logging.wandb=false",
        "trainer.deterministic=true",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.max_epochs=3",
        "loader.samples_per_epoch=192",
        "loader.batch_size=16",
        "data.synthetic.videos=5",
        "model.layers=1",
        "model.hidden=32",
        "model.intermediate=32",
        "model.heads=2",
    ]


@pytest.mark.slow
def test_train_killed_at_random_points_ends_with_the_uninterrupted_result(tmp_path):
    ENV["KEYTRACK_CACHE"] = str(tmp_path / "cache")  # the synthetic scenes are cached (and killed) here too
    reference, seconds = _run(_train_command(tmp_path / "reference"))
    assert reference.returncode == 0, reference.stderr[-2000:]
    final, landed = _campaign(_train_command(tmp_path / "killed"), seconds, seed=2)
    assert final.returncode == 0, final.stderr[-2000:]
    results = []
    for side in ("reference", "killed"):
        run = tmp_path / side / "quick" / "synthetic-seed0"
        metrics = json.loads((run / "metrics.json").read_text())
        state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        results.append((metrics, state))
    (m1, s1), (m2, s2) = results
    assert m1["global_step"] == m2["global_step"]
    assert s1["global_step"] == s2["global_step"] == m1["global_step"]  # last.ckpt is the last step
    for key in s1["state_dict"]:
        assert torch.equal(s1["state_dict"][key], s2["state_dict"][key]), key
    assert s1["lr_schedulers"] == s2["lr_schedulers"]
    assert m1["metrics"] == m2["metrics"] and m1["best_score"] == m2["best_score"]
    assert landed > 0
    print(f"train: {landed} of {KILLS} kills hit a running process")
