"""The wheel works anywhere: built from the working tree, installed (not editable) into a fresh
environment, every command finds its configs in the installed package from an unrelated folder.

The fresh environment reaches the dependencies (torch, Lightning, ...) of the test's own environment
through a ``.pth`` line naming its site-packages (a plain path: the ``.pth`` files there, the editable
install of this checkout among them, are not run), so nothing is downloaded; ``keytrack`` itself
comes from the wheel alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The former top-level packages, which must not install under generic names.
FORMER_TOP_LEVEL = ("ablations", "datamodules", "lightning_modules", "experiments")


def _run(cmd, cwd, env, timeout=300):
    out = subprocess.run(
        [str(c) for c in cmd], cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout
    )
    return out


def _ok(out, what):
    assert out.returncode == 0, f"{what}: status {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _build_wheel(tmp_path: Path) -> Path:
    """The wheel of the working tree, built from a copy (the checkout gets no build/ nor egg-info)."""
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "keytrack", src / "keytrack", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    dist = tmp_path / "dist"
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _ok(
        _run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, src],
            tmp_path,
            env,
        ),
        "pip wheel",
    )
    (wheel,) = dist.glob("keytrack-*.whl")
    return wheel


def _fresh_env(tmp_path: Path, wheel: Path) -> Path:
    """A venv without pip, the dependencies through a .pth line, the wheel installed into it."""
    venv = tmp_path / "venv"
    _ok(_run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, dict(os.environ)), "venv")
    python = venv / "bin" / "python"
    purelib = _ok(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, {}),
        "purelib",
    ).stdout.strip()
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(purelib) / "keytrack_test_deps.pth").write_text("\n".join(deps) + "\n")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _ok(
        _run(
            [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet", wheel],
            tmp_path,
            env,
        ),
        "pip install the wheel",
    )
    return venv


def _tiny_checkpoint(path: Path) -> None:
    """A checkpoint in the layout ``keytrack train`` writes (its config in ``hyper_parameters.cfg``), of
    a small untrained matcher (as tests/test_tracking.py makes one)."""
    import torch
    from omegaconf import OmegaConf

    from keytrack.config import load_config
    from keytrack.models.factory import build_matcher, matcher_config

    cfg = load_config(["model.hidden=16", "model.intermediate=16", "model.layers=1", "model.heads=2"])
    torch.manual_seed(0)
    model = build_matcher(matcher_config(cfg))
    torch.save(
        {
            "hyper_parameters": {"cfg": OmegaConf.to_container(cfg)},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        path,
    )


@pytest.mark.slow
def test_the_wheel_holds_the_configs_and_every_command_runs_from_anywhere(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"keytrack"}, sorted(top)
    assert not any(n.startswith(tuple(f"{p}/" for p in FORMER_TOP_LEVEL)) for n in names)
    for data in (
        "keytrack/experiments/base.yaml",
        "keytrack/experiments/quick.yaml",
        "keytrack/experiments/model/transformer.yaml",
        "keytrack/experiments/ablations/threshold.yaml",
        "keytrack/experiments/sweeps/quick.yaml",
        "keytrack/reference/paper_results.yaml",
        "keytrack/lightning/train.py",
        "keytrack/ablations/runner.py",
        "keytrack/datamodules/pose_pairs.py",
    ):
        assert data in names, data
    expected = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "keytrack/experiments").rglob("*.yaml"))
    assert sorted(n for n in names if n.startswith("keytrack/experiments/")) == expected
    assert "train = keytrack.lightning.train" in entry_points
    assert "ablate = keytrack.ablations.runner" in entry_points

    venv = _fresh_env(tmp_path, wheel)
    site = Path(
        _run(
            [venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            tmp_path,
            {},
        ).stdout.strip()
    )
    anywhere = tmp_path / "elsewhere"
    anywhere.mkdir()
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KEYTRACK_EXPERIMENTS", "VIRTUAL_ENV")
    }
    env.update(OMP_NUM_THREADS="1", WANDB_MODE="offline", WANDB_SILENT="true", PYTHONDONTWRITEBYTECODE="1")
    keytrack = venv / "bin" / "keytrack"

    probe = (
        "import keytrack, keytrack.config as c, keytrack.cli as cli\n"
        "print(keytrack.__file__); print(c.experiments_dir())\n"
        "print(sorted(m for name, (m, _) in cli.plugin_commands().items()))"
    )
    lines = _ok(_run([venv / "bin/python", "-c", probe], anywhere, env), "import").stdout.splitlines()
    assert Path(lines[0]).is_relative_to(site) and not Path(lines[0]).is_relative_to(ROOT), lines
    assert Path(lines[1]) == site / "keytrack" / "experiments", lines
    assert lines[2] == "['keytrack.ablations.runner', 'keytrack.lightning.train']", lines

    out = _ok(_run([keytrack, "train", "--print-config", "experiment=quick"], anywhere, env), "train")
    assert "samples_per_epoch: 2048" in out.stdout  # from experiments/quick.yaml

    _ok(_run([keytrack, "ablate", "--help"], anywhere, env), "ablate --help")
    _ok(_run([keytrack, "--help"], anywhere, env), "--help")

    # track: the config the checkpoint carries, completed from the installed base.yaml
    ckpt = anywhere / "m.ckpt"
    _tiny_checkpoint(ckpt)
    _ok(
        _run(
            [keytrack, "synth", "--out", "data", "--videos", "1", "--frames", "6", "--people", "2"],
            anywhere,
            env,
        ),
        "synth",
    )
    (split,) = (anywhere / "data" / "annotations").iterdir()
    out = _ok(
        _run(
            [keytrack, "track", "--data", split, "--out", "tracked", "--checkpoint", ckpt],
            anywhere,
            env,
        ),
        "track --checkpoint",
    )
    assert "pairs/s" in out.stdout and list((anywhere / "tracked").glob("*.json"))

    out = _ok(_run([keytrack, "cost", "--out", "cost"], anywhere, env), "cost")
    table = (anywhere / "cost" / "table.md").read_text()
    assert "failed" not in table and "Transformer Matching Network" in table

    # a cell that cannot be counted fails the command (no configs where KEYTRACK_EXPERIMENTS points)
    (anywhere / "empty").mkdir()
    out = _run(
        [keytrack, "cost", "--experiments", "default", "--out", "cost-failed"],
        anywhere,
        {**env, "KEYTRACK_EXPERIMENTS": str(anywhere / "empty")},
    )
    assert out.returncode != 0 and "default" in out.stderr, out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        "keytrack cost: error: could not count default (see cost-failed/table.md)"
    ), out.stderr


def test_the_configs_resolve_from_the_package(monkeypatch, tmp_path):
    import keytrack
    from keytrack.config import experiments_dir, list_experiments

    monkeypatch.delenv("KEYTRACK_EXPERIMENTS", raising=False)
    assert experiments_dir() == Path(keytrack.__file__).resolve().parent / "experiments"
    assert (experiments_dir() / "base.yaml").is_file() and "quick" in list_experiments()
    monkeypatch.setenv("KEYTRACK_EXPERIMENTS", str(tmp_path))
    assert experiments_dir() == tmp_path
