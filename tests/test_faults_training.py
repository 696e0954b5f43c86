"""`keytrack train` refuses bad input before it writes anything, and guards its run folder: a
mistyped or wrongly typed Trainer argument, data too small to hold out validation, a second
training of the same folder, and a rerun of a finished training."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYTRACK = str(Path(sys.executable).parent / "keytrack")

TINY = [
    "logging.wandb=false",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.accelerator=cpu",
    "loader.samples_per_epoch=64",
    "loader.batch_size=16",
    "loader.val_batch_size=64",
    "model.layers=1",
    "model.hidden=16",
    "model.intermediate=16",
    "model.heads=2",
    "trainer.log_every_n_steps=1",
]


def _keytrack(*args):
    env = {**os.environ, "KEYTRACK_DEBUG": "", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    return subprocess.run(
        [KEYTRACK, *args], capture_output=True, text=True, timeout=300, env=env, cwd=str(ROOT)
    )


def _refused(out, *needles):
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("keytrack train: error: "), out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    for needle in needles:
        assert needle in last, (needle, last)
    return last


def _folder(root: Path, videos: int) -> Path:
    from keytrack.io import write_posetrack18
    from keytrack.synth import SynthConfig, generate_dataset

    scenes = generate_dataset(videos, seed=3, config=SynthConfig(frames_per_video=(8, 10)))
    write_posetrack18(scenes, root / "annotations" / "train")
    return root


@pytest.fixture(scope="module")
def four_videos(tmp_path_factory):
    return _folder(tmp_path_factory.mktemp("four"), 4)


def test_a_mistyped_trainer_key_is_refused_before_any_folder(tmp_path):
    for extra in ([], ["--print-config"]):
        out = _keytrack("train", *extra, f"output_dir={tmp_path}", "trainer.max_epoch=3")
        last = _refused(
            out, "trainer.max_epoch", "did you mean trainer.max_epochs", "valid trainer.* keys", "max_steps"
        )
        assert "accelerator" in last and "fast_dev_run" in last
    assert not any(tmp_path.iterdir()), "nothing may be written for a refused config"


@pytest.mark.slow
def test_a_wrongly_typed_value_is_refused_naming_key_type_and_value(tmp_path):
    for extra in ([], ["--print-config"]):
        out = _keytrack("train", *extra, f"output_dir={tmp_path}", "trainer.max_epochs=abc")
        _refused(out, "trainer.max_epochs", "expected int or None", "'abc'")
    out = _keytrack("train", f"output_dir={tmp_path}", "optim.lr=fast", "trainer.devices=auto")
    _refused(out, "optim.lr", "expected float", "experiments/base.yaml", "'fast'")
    assert not any(tmp_path.iterdir())
    from keytrack.config import ConfigError, load_config
    from keytrack.lightning.train import check_trainer_args

    with pytest.raises(ConfigError, match=r"model.layers: expected int .*model/transformer.yaml.*1.5"):
        load_config(["model.layers=1.5"])
    # What the Trainer takes beyond base.yaml's examples still passes.
    check_trainer_args(load_config(["trainer.devices=auto", "trainer.precision=bf16-mixed"]))
    with pytest.raises(ConfigError, match=r"trainer.precision: expected .*'bf16-mixed'.*got 'bf17'"):
        check_trainer_args(load_config(["trainer.precision=bf17"]))


def test_a_single_video_is_too_few_to_hold_out_validation(tmp_path):
    root = _folder(tmp_path / "one", 1)
    out = _keytrack("train", f"data.root={root}", f"output_dir={tmp_path / 'runs'}", *TINY)
    _refused(out, "1 video(s), too few videos to hold out validation", "data.val_fraction")
    assert not (tmp_path / "runs").exists()


def test_a_run_folder_trained_by_a_live_process_is_refused(tmp_path, four_videos):
    args = [
        "train",
        f"data.root={four_videos}",
        f"output_dir={tmp_path}",
        "run_name=r",
        *TINY,
        "trainer.max_epochs=1",
    ]
    run = tmp_path / "base" / "r"
    run.mkdir(parents=True)
    lock = run / "train.lock"
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2024-01-01T00:00:00"}
    lock.write_text(json.dumps(holder))
    out = _keytrack(*args)
    _refused(out, f"pid {os.getpid()} on {socket.gethostname()}", "is training this run")
    assert json.loads(lock.read_text()) == holder, "the holder's lock stays"
    assert sorted(p.name for p in run.iterdir()) == ["train.lock"]


@pytest.mark.slow
def test_a_stale_lock_is_taken_over(tmp_path, four_videos):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    run = tmp_path / "base" / "r"
    run.mkdir(parents=True)
    (run / "train.lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    out = _keytrack(
        "train",
        f"data.root={four_videos}",
        f"output_dir={tmp_path}",
        "run_name=r",
        *TINY,
        "trainer.max_epochs=1",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "stale lock" in out.stderr
    assert (run / "metrics.json").is_file() and not (run / "train.lock").exists()


@pytest.mark.slow
def test_rerunning_a_finished_training_keeps_it_and_a_larger_max_epochs_extends_it(tmp_path, four_videos):
    args = ["train", f"data.root={four_videos}", f"output_dir={tmp_path}", "run_name=r", *TINY]
    run = tmp_path / "base" / "r"
    first = _keytrack(*args, "trainer.max_epochs=1")
    assert first.returncode == 0, first.stderr[-3000:]
    metrics = (run / "metrics.json").read_bytes()
    checkpoints = {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()}
    again = _keytrack(*args, "trainer.max_epochs=1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip().splitlines() == [
        f"base/r: already trained (1 epochs, trainer.max_epochs=1); nothing to do "
        f"(a larger trainer.max_epochs extends it); metrics in {run}/metrics.json"
    ]
    assert (run / "metrics.json").read_bytes() == metrics
    assert {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()} == checkpoints
    assert len(list(run.glob("csv/version_*"))) == 1, "no second attempt was logged"
    longer = _keytrack(*args, "trainer.max_epochs=2")
    assert longer.returncode == 0, longer.stderr[-3000:]
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["epochs"] == 2 and saved["resumed_from"].endswith("last.ckpt")
    assert not (run / "train.lock").exists()
