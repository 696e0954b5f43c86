"""Shipped matchers (keytrack.weights): found by name wherever a checkpoint is taken, exported stripped
to weights and config, and scoring exactly as the training checkpoint they came from."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from keytrack import weights
from keytrack.errors import CheckpointError
from keytrack.tracking.scorers import PoseEntailmentScorer

SHIPPED = "keytrack-synthetic"


def _training_checkpoint(path):
    """A small transformer matcher saved as ``keytrack train`` saves one: weights, config, the joints
    record, and the optimizer, scheduler and loop state that tracking never reads."""
    from omegaconf import OmegaConf

    from keytrack.config import load_config
    from keytrack.models.factory import build_matcher, matcher_config

    cfg = load_config(["model.hidden=16", "model.intermediate=16", "model.layers=1", "model.heads=2"])
    torch.manual_seed(0)
    model = build_matcher(matcher_config(cfg))
    state_dict = {f"model.{k}": v for k, v in model.state_dict().items()}
    state_dict["trained_joints"] = torch.ones(15, dtype=torch.bool)
    torch.save(
        {
            "epoch": 3,
            "global_step": 40,
            "hyper_parameters": {"cfg": OmegaConf.to_container(cfg)},
            "state_dict": state_dict,
            "optimizer_states": [{"state": {i: {"exp_avg": torch.randn(64)} for i in range(8)}}],
            "lr_schedulers": [{"last_epoch": 40}],
            "loops": {"fit_loop": {"epoch_progress": {"current": 3}}},
            "callbacks": {"ModelCheckpoint": {"best_model_path": str(path)}},
        },
        path,
    )
    return path


def _scene_pairs(seed: int = 0):
    """Every pose of each frame of a synthetic scene against every pose of the frame before it:
    ``(current, previous, frame_size, delta, same_person, query)`` over the pairs."""
    from keytrack.synth import generate_dataset

    current, previous, sizes, same, query = [], [], [], [], []
    for v, video in enumerate(generate_dataset(2, seed=seed).videos):
        for before, frame in zip(video.frames, video.frames[1:]):
            for i in range(frame.num_poses):
                for j in range(before.num_poses):
                    current.append(frame.keypoints[i])
                    previous.append(before.keypoints[j])
                    sizes.append((video.width, video.height))
                    same.append(frame.track_ids[i] == before.track_ids[j])
                    query.append((v, frame.index, i))
    m = len(current)
    _, query = np.unique(np.asarray(query), axis=0, return_inverse=True)
    return (
        np.asarray(current),
        np.asarray(previous),
        np.asarray(sizes, dtype=np.float32),
        np.ones(m, np.int64),
        np.asarray(same),
        query.reshape(m),
    )


def test_an_exported_checkpoint_holds_weights_and_config_only_and_scores_exactly_as_the_original(
    tmp_path,
):
    original = _training_checkpoint(tmp_path / "best-epoch=03.ckpt")
    out = weights.export_weights(original, tmp_path / "exported.pt")
    state = torch.load(out, map_location="cpu", weights_only=False)
    assert set(state) == {"state_dict", "hyper_parameters", "keytrack_export"}
    assert state["keytrack_export"]["epoch"] == 3 and state["keytrack_export"]["global_step"] == 40
    assert all(v.dtype == torch.float32 for v in state["state_dict"].values() if v.is_floating_point())
    assert out.stat().st_size < original.stat().st_size
    # The same checkpoint gives the same bytes (a run folder gives its best checkpoint).
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    original.rename(tmp_path / "run" / "checkpoints" / original.name)
    again = weights.export_weights(tmp_path / "run", tmp_path / "again.pt")
    assert again.read_bytes() == out.read_bytes()

    # Both load through the normal path and give the same scores, bit for bit.
    current, previous, sizes, delta, _, _ = _scene_pairs()
    a = PoseEntailmentScorer.from_checkpoint(str(tmp_path / "run" / "checkpoints" / original.name))
    b = PoseEntailmentScorer.from_checkpoint(str(out))
    sa = a.pair_scores(current, previous, sizes, delta)
    assert len(sa) > 100 and np.array_equal(sa, b.pair_scores(current, previous, sizes, delta))
    assert np.array_equal(a.trained_joints, b.trained_joints) and a.motion == b.motion


def test_export_refuses_what_is_not_a_training_checkpoint(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        weights.export_weights(junk, tmp_path / "out.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a keytrack training checkpoint"):
        weights.export_weights(tmp_path / "plain.pt", tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_a_shipped_name_resolves_and_anything_else_is_refused_with_the_shipped_names(tmp_path):
    path = weights.resolve_checkpoint(SHIPPED)
    assert path == weights.SHIPPED[SHIPPED].path and path.parent == weights.WEIGHTS_DIR
    assert path.is_file() and path.stat().st_size < 5_000_000  # a few MB at most
    assert SHIPPED in weights.names()
    mine = _training_checkpoint(tmp_path / "mine.ckpt")
    assert weights.resolve_checkpoint(str(mine)) == mine  # a file is taken as it is
    for bad in ("keytrack-nope", str(tmp_path / "missing.ckpt"), str(tmp_path)):
        with pytest.raises(CheckpointError, match=f"no such checkpoint|a folder.*shipped: {SHIPPED}"):
            weights.resolve_checkpoint(bad)
    with pytest.raises(CheckpointError, match=f"shipped: {SHIPPED}"):
        weights.load("keytrack-nope")


def test_the_shipped_matcher_loads_and_ranks_the_same_person_first_on_a_synthetic_scene():
    from keytrack.models.factory import load_matcher

    scorer = weights.load(SHIPPED)
    assert isinstance(scorer, PoseEntailmentScorer) and scorer.max_delta == 4
    model, cfg = load_matcher(SHIPPED)
    assert cfg.experiment == "improved" and cfg.model.name == "transformer"
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in scorer.model.parameters())

    current, previous, sizes, delta, same, query = _scene_pairs(seed=7)  # not the training scenes' seed
    scores = scorer.pair_scores(current, previous, sizes, delta)
    assert scores[same].mean() > 0.9 and np.median(scores[~same]) < 0.1
    # Every pose that has its own person and someone else among the earlier poses: its own scores higher.
    ranked = [
        scores[(query == q) & same].max() > scores[(query == q) & ~same].max()
        for q in np.unique(query)
        if ((query == q) & same).any() and ((query == q) & ~same).any()
    ]
    assert len(ranked) > 50 and np.mean(ranked) > 0.95


def test_the_commands_take_a_shipped_name_for_checkpoint(tmp_path, capsys):
    from keytrack.cli import main
    from keytrack.io import write_posetrack18
    from keytrack.synth import SynthConfig, generate_dataset

    data = generate_dataset(1, seed=3, config=SynthConfig(frames_per_video=(6, 7)))
    write_posetrack18(data, tmp_path / "annotations" / "val")
    out = tmp_path / "tracked"
    assert (
        main(
            [
                "track",
                "--data",
                str(tmp_path),
                "--split",
                "val",
                "--out",
                str(out),
                "--checkpoint",
                SHIPPED,
            ]
        )
        == 0
    )
    manifest = json.loads((out / "keytrack.manifest").read_text())
    assert manifest["checkpoint"]["path"] == str(weights.resolve_checkpoint(SHIPPED))
    assert manifest["settings"]["scorer"] == "pose_entailment"
    capsys.readouterr()

    report = tmp_path / "diagnose"
    args = ["diagnose", "--checkpoint", SHIPPED, "--data", str(tmp_path), "--split", "val"]
    assert main([*args, "--out", str(report)]) == 0
    assert (report / "ranking.md").is_file()
    capsys.readouterr()

    with pytest.raises(SystemExit) as exit_:
        main(["track", "--data", str(tmp_path), "--out", str(tmp_path / "x"), "--checkpoint", "nope"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "nope: no such checkpoint" in err and f"shipped: {SHIPPED}" in err


def test_keytrack_export_weights(tmp_path, capsys):
    from keytrack.cli import main

    original = _training_checkpoint(tmp_path / "best.ckpt")
    assert main(["export-weights", str(original), str(tmp_path / "w.pt")]) == 0
    assert "sha256" in capsys.readouterr().out
    assert weights.resolve_checkpoint(tmp_path / "w.pt") == tmp_path / "w.pt"
    assert main(["export-weights", str(tmp_path / "missing.ckpt"), str(tmp_path / "w2.pt")]) == 2
    assert "missing.ckpt: no such checkpoint" in capsys.readouterr().err


def test_keytrack_track_help_names_its_default_and_the_comparison_that_chose_it(capsys):
    from pathlib import Path

    from keytrack.cli import main
    from keytrack.tracking.cli import DEFAULT_MOTION, DEFAULT_SCORER

    with pytest.raises(SystemExit):
        main(["track", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"else the default tracker: {DEFAULT_SCORER} with the {DEFAULT_MOTION} motion" in text
    assert SHIPPED in text
    folder = "results/tracker_comparison/bonn_mppt-test-default"
    assert folder in text.replace("- ", "-")
    table = Path(__file__).resolve().parents[1] / folder / "table.md"
    assert not table.parent.parent.is_dir() or table.is_file()  # the comparison ships with the sources
