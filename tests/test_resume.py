"""An interrupted training run resumes to the result of one that never stopped (SIGINT, SIGKILL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

#: Runs ``train`` in its own process; with ``KILL_AT=<step> KILL_SIGNAL=<name>`` the process sends
#: itself that signal after that training step (mid-epoch), as a user's Ctrl-C or the OOM killer would.
DRIVER = """
import os, signal, sys
import pytorch_lightning as pl
from keytrack.config import load_config
from keytrack.synth import SynthConfig, generate_dataset
from keytrack.lightning.train import train

kill_at = int(os.environ.get("KILL_AT", "-1"))
# A process started in the background by a non-interactive shell (CI) inherits SIGINT ignored;
# a user's terminal delivers it as KeyboardInterrupt, which is what this test is about.
signal.signal(signal.SIGINT, signal.default_int_handler)

class Kill(pl.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == kill_at:
            os.kill(os.getpid(), getattr(signal, os.environ["KILL_SIGNAL"]))

if kill_at >= 0:
    import functools
    init = pl.Trainer.__init__
    @functools.wraps(init)
    def patched(self, *args, callbacks=(), **kwargs):
        init(self, *args, callbacks=[*callbacks, Kill()], **kwargs)
    pl.Trainer.__init__ = patched
train(load_config(sys.argv[1:]), generate_dataset(5, seed=3, config=SynthConfig(frames_per_video=(12, 16))))
"""


def _train(out: Path, *, kill_at: int = -1, signal: str = "SIGINT", experiment: str = "quick"):
    overrides = [
        f"experiment={experiment}",
        f"output_dir={out}",
        "logging.wandb=false",
        "trainer.deterministic=true",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.max_epochs=3",
        "loader.samples_per_epoch=192",
        "loader.batch_size=16",
        "model.layers=1",
        "model.hidden=32",
        "model.intermediate=32",
        "model.heads=2",
        "augment.flip=0.5",
        "augment.jitter=0.02",
    ]
    env = {**os.environ, "KILL_AT": str(kill_at), "KILL_SIGNAL": signal, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", DRIVER, *overrides],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=str(ROOT),
    )


def _result(run: Path) -> tuple[dict, dict]:
    metrics = json.loads((run / "metrics.json").read_text())
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return metrics, state


@pytest.mark.slow
@pytest.mark.parametrize("signal", ["SIGINT", "SIGKILL"])
def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(tmp_path, signal):
    whole = _train(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    # 12 steps per epoch: killed at step 18, in the middle of the second epoch.
    killed = _train(tmp_path / "killed", kill_at=18, signal=signal)
    assert killed.returncode != 0
    assert "Traceback" not in killed.stderr or "KeyboardInterrupt" in killed.stderr, killed.stderr[-2000:]
    run = tmp_path / "killed" / "quick" / "synthetic-seed0"
    assert not (run / "metrics.json").exists(), "an interrupted run must not look finished"
    again = _train(tmp_path / "killed")  # the same command again
    assert again.returncode == 0, again.stderr[-2000:]
    (m1, s1), (m2, s2) = _result(tmp_path / "whole" / "quick" / "synthetic-seed0"), _result(run)
    assert m2["resumed_from"] and m2["global_step"] == m1["global_step"] == 36
    for key in s1["state_dict"]:
        assert torch.equal(s1["state_dict"][key], s2["state_dict"][key]), key
    assert s1["lr_schedulers"] == s2["lr_schedulers"]  # the learning-rate schedule too
    assert m1["metrics"] == m2["metrics"] and m1["best_score"] == m2["best_score"]


def test_an_unreadable_last_checkpoint_is_set_aside_not_loaded(tmp_path, caplog):
    from keytrack.runlogs import usable_checkpoint

    last = tmp_path / "last.ckpt"
    assert not usable_checkpoint(last)
    torch.save({"epoch": 1}, last)
    assert usable_checkpoint(last)
    last.write_bytes(last.read_bytes()[:40])  # what a write cut short would leave
    assert not usable_checkpoint(last)
    assert not last.exists() and (tmp_path / "last.ckpt.unreadable").is_file()
    assert "cannot be read" in caplog.text


def test_epoch_order_depends_on_seed_and_epoch_only():
    from keytrack.data import EpochRandomSampler, EpochWeightedRandomSampler

    data = list(range(50))
    a = EpochRandomSampler(data, num_samples=20, seed=1)
    first, second = list(a), list(a)  # passes count up without set_epoch
    assert first != second
    b = EpochRandomSampler(data, num_samples=20, seed=1)
    b.set_epoch(1)
    assert list(b) == second  # a resumed run at epoch 1
    w = EpochWeightedRandomSampler(torch.ones(50), num_samples=20, seed=1)
    w.set_epoch(3)
    again = EpochWeightedRandomSampler(torch.ones(50), num_samples=20, seed=1)
    again.set_epoch(3)
    assert list(w) == list(again) and list(EpochRandomSampler(data, num_samples=20, seed=2)) != first
