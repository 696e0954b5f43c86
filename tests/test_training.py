"""Configs, the balanced pair DataModule, the LightningModule and `keytrack train` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from keytrack.cli import main
from keytrack.config import ConfigError, list_experiments, load_config
from keytrack.lightning.matching import warmup_linear_decay
from keytrack.lightning.train import datamodule, train
from keytrack.runlogs import read_metrics
from keytrack.settings import training_settings
from keytrack.synth import generate_dataset


@pytest.fixture(scope="module")
def scenes():
    return generate_dataset(6, seed=3)


def _cfg(tmp_path, *overrides):
    return load_config(
        [
            f"output_dir={tmp_path}",
            "logging.wandb=false",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            *overrides,
        ]
    )


# -- configs -------------------------------------------------------------------------------------


def test_config_layers_base_experiment_and_overrides():
    cfg = load_config(["experiment=quick", "trainer.max_epochs=3", "model.layers=2"])
    assert cfg.experiment == "quick"
    assert cfg.trainer.max_epochs == 3  # override beats experiment file
    assert cfg.loader.samples_per_epoch == 2048  # from experiments/quick.yaml
    assert cfg.model.layers == 2 and cfg.model.hidden == 128  # override / base


def test_config_rejects_unknown_keys_and_experiments():
    with pytest.raises(ConfigError, match="model.layer"):
        load_config(["model.layer=2"])
    with pytest.raises(ConfigError, match="no file"):
        load_config(["experiment=does_not_exist"])


def test_config_extends(tmp_path):
    import shutil

    from keytrack.config import config_path

    (tmp_path / "base.yaml").write_text(config_path("base.yaml").read_text())
    shutil.copytree(config_path("model"), tmp_path / "model")
    (tmp_path / "a.yaml").write_text("model:\n  layers: 2\n  heads: 2\n")
    (tmp_path / "b.yaml").write_text("extends: a\nmodel:\n  heads: 8\n")
    cfg = load_config(["experiment=b"], directory=tmp_path)
    assert (cfg.model.layers, cfg.model.heads) == (2, 8)


def test_print_config_cli(capsys):
    assert main(["train", "--print-config", "experiment=quick", "seed=7"]) == 0
    out = capsys.readouterr().out
    assert "experiment: quick" in out and "seed: 7" in out and "run_name: synthetic-seed7" in out


def test_warmup_then_linear_decay():
    f = warmup_linear_decay(total_steps=1000, warmup_fraction=0.01)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)  # 10 warm-up steps
    assert f(10) == pytest.approx(1.0)
    assert f(505) == pytest.approx(0.5)
    assert f(1000) == 0.0


# -- data module ---------------------------------------------------------------------------------


def test_sampler_draws_classes_equally_and_deterministically(tmp_path, scenes):
    cfg = _cfg(tmp_path, "loader.samples_per_epoch=4000", "loader.batch_size=200")
    dm = datamodule(training_settings(cfg), scenes)
    dm.setup("fit")
    neg, pos = dm.train_set.class_counts()
    assert neg > 2 * pos, "the raw pairs should be imbalanced for this test to mean anything"
    labels = torch.cat([b["label"] for b in dm.train_dataloader()])
    assert len(labels) == 4000
    assert abs(labels.float().mean().item() - 0.5) < 0.04
    again = datamodule(training_settings(cfg), scenes)
    again.setup("fit")
    assert torch.equal(
        next(iter(again.train_dataloader()))["label"], next(iter(dm.train_dataloader()))["label"]
    )
    # validation: whole videos held out, every pair kept (the ranking metrics need all candidates),
    # the pair metrics' subset class-balanced
    labels = dm.val_set.labels[dm.val_set.balanced]
    assert int((labels == 0).sum()) == int((labels == 1).sum()) > 0
    assert len(dm.val_set) > len(labels)


def test_batches_carry_tokens_and_labels(tmp_path, scenes):
    dm = datamodule(training_settings(_cfg(tmp_path, "loader.batch_size=16")), scenes)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["label"].shape == (16,)
    for kind in ("position", "type", "segment", "mask"):
        assert batch[kind].shape == (16, 30)
    assert batch["type"][0].tolist() == list(range(15)) * 2


# -- training ------------------------------------------------------------------------------------


def _losses(run_dir):
    return [float(r["train/loss"]) for r in read_metrics(run_dir) if r.get("train/loss")]


@pytest.mark.slow
def test_short_training_lowers_loss_and_writes_checkpoints(tmp_path, scenes):
    cfg = _cfg(
        tmp_path,
        "loader.samples_per_epoch=3200",
        "trainer.max_epochs=3",
        "optim.lr=1e-3",
        "trainer.log_every_n_steps=10",
    )
    result = train(cfg, scenes)
    losses = _losses(tmp_path / "base" / "synthetic-seed0")
    assert len(losses) >= 10
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.2
    assert result["epochs"] == 3 and result["global_step"] == 300
    # Chance is 0.5 (balanced pairs). Over training seeds 0-2 this run reaches 0.69-0.79 (the
    # dropout mask's random stream decides where in that range), so the bar is well above chance
    # and below the spread.
    assert result["best_val_acc"] > 0.65
    assert (tmp_path / "base" / "synthetic-seed0" / "checkpoints" / "last.ckpt").is_file()
    saved = json.loads((tmp_path / "base" / "synthetic-seed0" / "metrics.json").read_text())
    assert saved["global_step"] == 300 and saved["train_pairs_per_s"] > 0


@pytest.mark.slow
def test_interrupted_run_resumes_from_last_checkpoint(tmp_path, scenes):
    first = train(_cfg(tmp_path, "loader.samples_per_epoch=320", "trainer.max_epochs=1"), scenes)
    assert first["global_step"] == 10 and first["resumed_from"] is None
    second = train(_cfg(tmp_path, "loader.samples_per_epoch=320", "trainer.max_epochs=2"), scenes)
    assert second["resumed_from"].endswith("last.ckpt")
    assert second["global_step"] == 20 and second["epochs"] == 2
    epochs = {r["epoch"] for r in read_metrics(tmp_path / "base" / "synthetic-seed0") if r.get("val/acc")}
    assert epochs == {"0", "1"}, "the first attempt's metrics must survive the resume"
    with pytest.raises(ConfigError, match="model.layers"):
        train(
            _cfg(tmp_path, "loader.samples_per_epoch=320", "trainer.max_epochs=3", "model.layers=2"), scenes
        )
    # Settings outside the model and data (optimiser, loader) make another run too, never a "resume"
    # that reports the finished run's numbers as theirs.
    with pytest.raises(ConfigError, match=r"loader\.batch_size \(32 -> 7\), optim\.lr \(0\.0001 -> 0\.5\)"):
        train(
            _cfg(
                tmp_path,
                "loader.samples_per_epoch=320",
                "trainer.max_epochs=2",
                "optim.lr=0.5",
                "loader.batch_size=7",
            ),
            scenes,
        )
    # ... while where it writes and how it logs may change.
    again = train(
        _cfg(
            tmp_path,
            "loader.samples_per_epoch=320",
            "trainer.max_epochs=2",
            "logging.project=x",
            "trainer.log_every_n_steps=3",
            "loader.val_batch_size=64",
        ),
        scenes,
    )
    assert again["resumed_from"].endswith("last.ckpt") and again["global_step"] == 20
    fresh = train(
        _cfg(tmp_path, "loader.samples_per_epoch=320", "trainer.max_epochs=1", "run_name=other"), scenes
    )
    assert fresh["resumed_from"] is None and fresh["global_step"] == 10


@pytest.mark.slow
def test_wandb_offline_run_is_written(tmp_path, scenes, monkeypatch):
    """Each training writes its own W&B run, also when several train in one process (a training
    spec's rows, a sweep): the run of one is finished before the next starts."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("first", "second"):
        # (fast_dev_run would swap every logger for a dummy one)
        cfg = _cfg(
            tmp_path,
            "logging.wandb=true",
            "trainer.max_steps=3",
            "trainer.limit_val_batches=1",
            "trainer.log_every_n_steps=1",
            f"run_name={name}",
        )
        train(cfg, scenes)
        runs = list((tmp_path / "base" / name / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(runs) == 1 and runs[0].stat().st_size > 0, f"W&B offline run file of {name} missing"


@pytest.mark.slow
@pytest.mark.parametrize("experiment", list_experiments())
def test_every_experiment_config_runs_a_fast_dev_run(tmp_path, scenes, experiment):
    # data.synthetic.seed names the scenes' seed: cnn_crops renders their frames from it.
    cfg = _cfg(tmp_path, f"experiment={experiment}", "trainer.fast_dev_run=true", "data.synthetic.seed=3")
    result = train(cfg, scenes)
    assert result["global_step"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_data_parallel_training_on_two_cpu_processes(tmp_path, strategy):
    """Lightning's DDP (as on several GPUs) with two CPU processes (gloo), run as a user runs it:
    the batches are shared between the processes, one metrics.json is written, and the best
    checkpoint and its score are known also when the workers were spawned."""
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "keytrack.cli",
        "train",
        "experiment=quick",
        f"output_dir={tmp_path}",
        "run_name=ddp",
        "logging.wandb=false",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.max_epochs=1",
        "loader.samples_per_epoch=640",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        f"trainer.strategy={strategy}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("quick/ddp: best val/acc") == 1 and "(2 processes)" in done.stdout
    saved = json.loads((tmp_path / "quick" / "ddp" / "metrics.json").read_text())
    assert saved["world_size"] == 2
    assert saved["global_step"] == 640 // 32 // 2 and saved["epochs"] == 1  # each process: half the batches
    assert 0.0 <= saved["best_val_acc"] <= 1.0
    assert (
        saved["best_checkpoint"].endswith(".ckpt") and (tmp_path / "quick" / "ddp" / "checkpoints").is_dir()
    )


@pytest.mark.slow
def test_listwise_training_chooses_the_checkpoint_by_rank1_and_reports_the_pair_accuracy_there(
    tmp_path, scenes
):
    cfg = _cfg(
        tmp_path,
        "experiment=improved",
        "loader.samples_per_epoch=320",
        "trainer.max_epochs=2",
        "trainer.check_val_every_n_epoch=1",
        "optim.lr=1e-3",
        "trainer.log_every_n_steps=5",
    )
    result = train(cfg, scenes)
    assert result["monitor"] == "val/rank1" and result["global_step"] == 20
    at_best = result["metrics_at_best"]
    assert {"val/rank1", "val/wrong_beats_true", "val/new_track", "val/accepted", "val/acc"} <= set(at_best)
    assert result["best_val_rank1"] == pytest.approx(result["best_score"])
    assert 0.0 <= at_best["val/rank1"] <= 1.0 and result["best_val_acc"] == at_best["val/acc"]
    # The best checkpoint's epoch has the highest val/rank1 of the run.
    per_epoch = {
        r["epoch"]: float(r["val/rank1"])
        for r in read_metrics(tmp_path / "improved" / "synthetic-seed0")
        if r.get("val/rank1")
    }
    assert len(per_epoch) == 2 and max(per_epoch.values()) == pytest.approx(at_best["val/rank1"])
    losses = _losses(tmp_path / "improved" / "synthetic-seed0")
    assert np.mean(losses[-2:]) < np.mean(losses[:2])


def test_training_stops_once_the_monitor_has_not_improved_for_patience_validations(tmp_path, scenes):
    # lr 0: the weights never change, so val/rank1 is the same at every validation; the first sets the
    # best, the next is no improvement, and patience 1 stops the run after 2 of its 5 epochs.
    common = ["experiment=quick", "optim.lr=0.0", "loader.samples_per_epoch=64", "trainer.max_epochs=5"]
    stopped = train(_cfg(tmp_path / "patience", *common, "validation.patience=1"), scenes)
    assert stopped["epochs"] == 2 and stopped["global_step"] == 2 * 64 // 32
    assert train(_cfg(tmp_path / "all", *common), scenes)["epochs"] == 5


def test_best_checkpoint_has_a_stable_name_and_metrics_json_paths_are_relative_to_the_run(
    tmp_path, scenes, monkeypatch
):
    """``checkpoints/best.ckpt`` whichever epoch is best; metrics.json names both checkpoints relative
    to the run folder (the run can move), and the readers resolve them; older runs' ``best-epoch=NN``
    still count."""
    from keytrack.runlogs import best_epoch, find_best_checkpoint, metrics_at_best, read_run_metrics
    from keytrack.weights import _checkpoint_in as checkpoint_in_run

    monkeypatch.chdir(tmp_path)  # a relative output_dir: run folders relative to the working folder
    cfg = _cfg(
        "out",
        "experiment=improved",
        "loader.samples_per_epoch=64",
        "trainer.max_epochs=2",
        "trainer.check_val_every_n_epoch=1",
        "model.hidden=16",
        "model.intermediate=16",
        "model.layers=1",
        "model.heads=2",
    )
    result = train(cfg, scenes)
    run = tmp_path / "out" / "improved" / "synthetic-seed0"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["best_checkpoint"] == "checkpoints/best.ckpt"
    assert saved["last_checkpoint"] == "checkpoints/last.ckpt"
    assert result["best_checkpoint"] == "out/improved/synthetic-seed0/checkpoints/best.ckpt"
    assert result["last_checkpoint"] == "out/improved/synthetic-seed0/checkpoints/last.ckpt"
    epoch = torch.load(run / "checkpoints" / "best.ckpt", weights_only=False, map_location="cpu")["epoch"]
    assert best_epoch(result["best_checkpoint"]) == epoch and result["metrics_at_best"]
    assert result["metrics_at_best"] == metrics_at_best(run, str(run / "checkpoints" / "best.ckpt"))
    # The run folder moved: its metrics.json still names its checkpoints.
    moved = tmp_path / "elsewhere"
    run.rename(moved)
    assert read_run_metrics(moved)["best_checkpoint"] == str(moved / "checkpoints" / "best.ckpt")
    assert checkpoint_in_run(moved) == moved / "checkpoints" / "best.ckpt"
    # An older run: best-epoch=NN.ckpt, found by its name, its epoch read from it (or its name).
    (moved / "checkpoints" / "best.ckpt").rename(moved / "checkpoints" / f"best-epoch={epoch:02d}.ckpt")
    (moved / "metrics.json").unlink()
    assert find_best_checkpoint(moved) == [moved / "checkpoints" / f"best-epoch={epoch:02d}.ckpt"]
    assert checkpoint_in_run(moved) == moved / "checkpoints" / f"best-epoch={epoch:02d}.ckpt"
    (tmp_path / "best-epoch=07.ckpt").write_bytes(b"not a checkpoint")
    assert best_epoch(tmp_path / "best-epoch=07.ckpt") == 7 and best_epoch(None) is None


def test_checkpoint_keeps_the_joints_training_showed_and_tracking_hides_the_others(tmp_path, scenes):
    """A dataset that never annotates the nose (as Bonn): the checkpoint records it, and the scorer
    of that checkpoint gives the same scores whatever a pose estimator puts at the nose."""
    import copy

    from keytrack.models.factory import load_matcher
    from keytrack.tracking import Candidates, PoseEntailmentScorer

    no_nose = copy.deepcopy(scenes)
    for v in no_nose.videos:
        for f in v.frames:
            f.keypoints[:, 0, 2] = 0
    cfg = _cfg(
        tmp_path,
        "loader.samples_per_epoch=64",
        "trainer.max_epochs=1",
        "model.hidden=16",
        "model.intermediate=16",
        "model.layers=1",
        "model.heads=2",
    )
    result = train(cfg, no_nose)
    model, _ = load_matcher(result["best_checkpoint"])
    assert model.trained_joints.tolist() == [False] + [True] * 14
    scorer = PoseEntailmentScorer.from_checkpoint(result["best_checkpoint"])
    assert scorer.trained_joints.tolist() == model.trained_joints.tolist()

    frame = next(f for v in scenes.videos for f in v.frames if f.num_poses >= 2)
    w, h = scenes.videos[0].width, scenes.videos[0].height
    cur = frame.keypoints.copy()
    cand = Candidates(
        frame.keypoints.copy(),
        np.full((frame.num_poses, 4), np.nan),
        np.arange(frame.num_poses),
        np.ones(frame.num_poses, int),
    )
    before = scorer(cur, frame.boxes, cand, (w, h))
    cur[:, 0, :2] += 80.0  # a wildly wrong visible nose
    cur[:, 0, 2] = 0.9
    after = scorer(cur, frame.boxes, cand, (w, h))
    np.testing.assert_allclose(after, before, atol=1e-6)
    # Without the record (all joints trained) the same nose changes the scores.
    scorer.trained_joints = None
    assert np.abs(scorer(cur, frame.boxes, cand, (w, h)) - before).max() > 1e-4
    # keytrack diagnose scores pairs the same way.
    from keytrack.diagnose import score_pairs
    from keytrack.pairs import sample_pairs

    scorer.trained_joints = model.trained_joints.numpy()
    hallucinated = copy.deepcopy(no_nose)
    for v in hallucinated.videos:
        for f in v.frames:
            f.keypoints[:, 0] = f.keypoints[:, 1] + [30.0, -40.0, 0.0]
            f.keypoints[:, 0, 2] = 0.7
    clean, noisy = no_nose.table(), hallucinated.table()
    pairs = sample_pairs(clean)
    np.testing.assert_allclose(
        score_pairs(scorer, noisy, pairs), score_pairs(scorer, clean, pairs), atol=1e-6
    )
    # A pose with nothing but the untrained joint cannot be compared: it scores 0.
    lone = np.zeros_like(cur[:1])
    lone[0, 0] = [100.0, 100.0, 1.0]
    scorer.trained_joints = model.trained_joints.numpy()
    assert (scorer(lone, frame.boxes[:1], cand, (w, h)) == 0).all()


def test_joints_seen_counts_both_poses_of_the_pairs():
    from keytrack.data import TokenizedPairs
    from keytrack.tokenize import TokenConfig

    cur = torch.zeros(200, 15, 3)
    prev = torch.zeros(200, 15, 3)
    cur[:, 1:, 2] = 1
    prev[:, 1:, 2] = 1
    prev[:3, 0, 2] = 1  # 3 of 400 poses: under 1 %
    cur[:5, 14, 2] = 0
    pairs = TokenizedPairs(
        cur,
        prev,
        torch.full((200, 2), 100.0),
        torch.ones(200, dtype=torch.long),
        torch.zeros(200, dtype=torch.long),
        TokenConfig(),
    )
    assert pairs.joints_seen().tolist() == [False] + [True] * 14
    prev[:2, 0, 2] = 1
    prev[3:5, 0, 2] = 1  # 5 of 400 poses
    assert pairs.joints_seen(min_share=0.01).tolist()[0] is True
    assert pairs.joints_seen(min_share=0.02).tolist()[0] is False


def test_bf16_mixed_training_through_lightning(tmp_path, scenes):
    """trainer.precision=bf16-mixed (autocast on this CPU): a short run trains, its weights stay fp32
    and its checkpoint tracks like any other."""
    from keytrack.models.factory import load_matcher

    cfg = _cfg(
        tmp_path,
        "experiment=improved",
        "trainer.precision=bf16-mixed",
        "loader.samples_per_epoch=64",
        "trainer.max_epochs=1",
        "trainer.check_val_every_n_epoch=1",
        "model.hidden=16",
        "model.intermediate=16",
        "model.layers=1",
        "model.heads=2",
    )
    result = train(cfg, scenes)
    assert result["global_step"] == 2 and np.isfinite(result["metrics"]["train/loss"])
    model, saved = load_matcher(result["best_checkpoint"])
    assert saved.trainer.precision == "bf16-mixed"
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_a_run_at_chance_is_called_so_and_a_log_gets_a_line_per_epoch(caplog):
    import logging
    from types import SimpleNamespace

    import torch

    from keytrack.lightning.callbacks import EpochLine
    from keytrack.lightning.train import chance_warning

    warning = chance_warning({"best_val_acc": 0.5, "global_step": 12})
    assert "at chance" in warning and "12 steps ran" in warning and "trainer.max_epochs" in warning
    assert chance_warning({"best_val_acc": 0.9}) is None and chance_warning({"best_val_acc": None}) is None
    # The AUROC where recorded: an accuracy far below 0.5 on unbalanced pairs is still chance.
    at_best = {"val/auroc": 0.52, "val/acc": 0.17}
    said = chance_warning({"metrics_at_best": at_best, "best_val_acc": 0.17})
    assert "best val/auroc 0.520 is at chance" in said
    assert chance_warning({"metrics_at_best": {"val/auroc": 0.97}, "best_val_acc": 0.2}) is None
    import pickle

    epoch = pickle.loads(pickle.dumps(EpochLine("quick/run: ")))  # ddp_spawn pickles the callbacks
    metrics = {"val/rank1": torch.tensor(0.75), "train/loss": torch.tensor(0.25), "lr": torch.tensor(1.0)}
    trainer = SimpleNamespace(
        is_global_zero=True, callback_metrics=metrics, max_epochs=4, current_epoch=1, global_step=20
    )
    epoch.on_train_epoch_start(trainer, None)
    with caplog.at_level(logging.INFO, logger="keytrack.train"):
        epoch.on_train_epoch_end(trainer, None)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "keytrack.train"]
    assert line.startswith("quick/run: epoch 2/4: step 20, ")
    assert line.endswith("train/loss 0.2500, val/rank1 0.7500")


class _FallingScore:
    """A tiny LightningModule whose validation score falls every epoch: the best epoch is the first."""

    @staticmethod
    def make():
        import pytorch_lightning as pl
        from torch.utils.data import DataLoader, TensorDataset

        class Module(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Linear(2, 1)

            def training_step(self, batch, i):
                return self.w(batch[0]).pow(2).mean()

            def validation_step(self, batch, i):
                self.log("score", -float(self.current_epoch))

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

            def train_dataloader(self):
                points = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
                return DataLoader(TensorDataset(points), batch_size=4)

            val_dataloader = train_dataloader

        return Module()


@pytest.mark.parametrize("every", [1, 2])
def test_last_checkpoint_is_the_last_epoch_even_when_the_monitor_stopped_improving(tmp_path, every):
    """Lightning 2.6 writes last.ckpt only beside a new best: a resumed run would go back to the best
    epoch. keytrack's checkpoint writes it after every validation, under ModelCheckpoint's state key."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from keytrack.lightning.callbacks import BestAndLastCheckpoint

    def checkpoint():
        return BestAndLastCheckpoint(
            dirpath=tmp_path, filename="best", monitor="score", mode="max", save_top_k=1, save_last=True,
            enable_version_counter=False,
        )  # fmt: skip

    assert checkpoint().state_key == ModelCheckpoint(monitor="score", mode="max").state_key

    def fit(epochs, resume=None):
        trainer = pl.Trainer(
            max_epochs=epochs, check_val_every_n_epoch=every, callbacks=[checkpoint()], logger=False,
            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        )  # fmt: skip
        trainer.fit(_FallingScore.make(), ckpt_path=resume)
        return trainer

    fit(4)
    best = torch.load(tmp_path / "best.ckpt", weights_only=False)
    last = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert best["global_step"] == 2 * every  # the first validated epoch: the score only falls after it
    assert last["global_step"] == 8  # 4 epochs of 2 steps: the last one, not the best one
    # resumed from it, a longer run goes on from step 8 and keeps the first epoch as its best
    trainer = fit(6, resume=tmp_path / "last.ckpt")
    assert trainer.global_step == 12
    assert torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"] == 12
    assert torch.load(tmp_path / "best.ckpt", weights_only=False)["global_step"] == 2 * every
