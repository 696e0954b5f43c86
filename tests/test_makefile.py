"""The Makefile: every target has one recipe, and every module or console command it runs exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAKEFILE = ROOT / "Makefile"


def _targets() -> list[str]:
    text = MAKEFILE.read_text()
    phony = re.search(r"^\.PHONY:(.*)$", text, re.M).group(1).split()
    extra = re.search(r"^PHONY_EXTRA\s*:=(.*)$", text, re.M)
    names = [t for t in phony if not t.startswith("$(")] + (extra.group(1).split() if extra else [])
    return sorted(set(names))


def test_every_target_has_one_recipe_and_runs_what_exists(tmp_path):
    targets = _targets()
    assert {
        "install",
        "train",
        "test",
        "test-slow",
        "sweep",
        "resolution-sweep",
        "tracker-comparison",
    } <= set(targets)
    defined = re.findall(r"^([A-Za-z][\w-]*):(?!=)", MAKEFILE.read_text(), re.M)
    assert sorted(t for t in set(defined) if defined.count(t) > 1) == [], "a target is defined twice"
    assert set(targets) <= set(defined), f"phony targets without a recipe: {set(targets) - set(defined)}"
    for target in targets:
        # -n prints the commands without running them; VENV points at an empty folder so that
        # nothing of the real environment is touched.
        out = subprocess.run(
            [
                "make",
                "-n",
                "-C",
                str(ROOT),
                target,
                f"VENV={tmp_path / 'venv'}",
                "CHECKPOINT=x.ckpt",
                "INPUT=in",
                "VIDEO=v.mp4",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, f"make -n {target}: {out.stderr}"
        assert "warning" not in out.stderr.lower(), f"make -n {target}: {out.stderr}"
        for module in re.findall(r"python -m (keytrack(?:\.\w+)+)", out.stdout):
            path = ROOT / Path(*module.split("."))
            assert path.with_suffix(".py").is_file() or path.is_dir(), (
                f"make {target} runs {module}: no such module"
            )
    assert (
        "keytrack ablate sweep "
        in subprocess.run(
            ["make", "-n", "-C", str(ROOT), "sweep", f"VENV={tmp_path}"], capture_output=True, text=True
        ).stdout
    )
    # every ablation target is one line calling keytrack ablate
    for target in [t for t in targets if t.startswith("ablation-")] + [
        "tracker-comparison",
        "matcher-variants",
    ]:
        out = subprocess.run(
            ["make", "-n", "-C", str(ROOT), target, f"VENV={tmp_path}"], capture_output=True, text=True
        ).stdout
        assert "keytrack ablate " in out and "python -m keytrack.ablations" not in out, target
    assert (
        "keytrack ablate resolution_sweep"
        in subprocess.run(
            ["make", "-n", "-C", str(ROOT), "resolution-sweep", f"VENV={tmp_path}"],
            capture_output=True,
            text=True,
        ).stdout
    )
