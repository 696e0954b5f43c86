"""One run identity (keytrack.identity): what makes two training configs the same run."""

from __future__ import annotations

from pathlib import Path

from keytrack.config import load_config
from keytrack.identity import changed_keys, digest, identity


def test_identity_ignores_where_a_run_writes_and_how_it_logs():
    a = load_config(["experiment=quick"])
    b = load_config(
        [
            "experiment=quick",
            "run_name=elsewhere",
            "output_dir=/tmp/x",
            "logging.wandb=false",
            "trainer.log_every_n_steps=1",
            "loader.num_workers=2",
            "loader.val_batch_size=7",
        ]
    )
    assert identity(a) == identity(b) and digest(a) == digest(b)
    assert changed_keys(a, b) == []


def test_identity_names_every_changed_setting_and_max_epochs_only_extends():
    a = load_config(["experiment=quick", "trainer.max_epochs=1"])
    b = load_config(
        [
            "experiment=quick",
            "trainer.max_epochs=1",
            "optim.lr=0.5",
            "loader.batch_size=7",
            "trainer.check_val_every_n_epoch=3",
        ]
    )
    assert changed_keys(a, b) == ["loader.batch_size", "optim.lr", "trainer.check_val_every_n_epoch"]
    assert digest(a) != digest(b)
    longer = load_config(["experiment=quick", "trainer.max_epochs=5"])
    assert changed_keys(a, longer) == ["trainer.max_epochs"]  # another finished result ...
    assert changed_keys(a, longer, resume=True) == []  # ... but the same run to resume
    assert digest(a, resume=True) == digest(longer, resume=True) and digest(a) != digest(longer)


def test_identity_resolves_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rel = load_config(["data.root=data"])
    absolute = load_config([f"data.root={Path(tmp_path) / 'data'}"])
    assert changed_keys(rel, absolute) == [] and identity(rel)["data"]["root"] == str(tmp_path / "data")


def test_a_setting_added_later_at_its_neutral_value_keeps_older_runs_the_same_run():
    from omegaconf import OmegaConf

    from keytrack.identity import NEUTRAL

    now = load_config(["experiment=improved"])
    older = OmegaConf.to_container(now, resolve=True)
    for key in NEUTRAL:  # a run saved before these settings existed
        *parents, leaf = key.split(".")
        section = older
        for p in parents:
            section = section[p]
        assert section.pop(leaf) == NEUTRAL[key]
    assert digest(now) == digest(older) and changed_keys(now, older) == []
    moved = load_config(["experiment=improved", "pairs.motion=velocity"])
    assert changed_keys(now, moved) == ["pairs.motion"] and digest(now) != digest(moved)
