"""Imports point one way: the library (keytrack/) never reaches the Lightning layer or the ablations.

``lightning_modules/`` and ``datamodules/`` (the Lightning wrappers, ``keytrack train``) and
``ablations/`` (the paper's specs and their runner) import keytrack; no module of keytrack imports
them, nor Lightning, neither by an import statement nor by a module path in a string (importlib,
``__import__``, a command table). The commands that live there reach the command line as entry
points (setup.cfg's ``keytrack.commands``), which the library finds without naming them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import keytrack

ROOT = Path(keytrack.__file__).parent

#: Packages the library must not import.
OUTSIDE = (
    "lightning_modules",
    "datamodules",
    "ablations",
    "pytorch_lightning",
    "lightning",
    "lightning_fabric",
)

#: A string naming a module of the project's outside packages as a module path ("ablations.runner").
MODULE_PATH = re.compile(r"^(ablations|datamodules|lightning_modules)(\.\w+)*$")


def _outside(module: str) -> bool:
    return module.split(".")[0] in OUTSIDE


def offenders(source: str, where: str) -> list[str]:
    """Every import of an outside package in ``source``, and every string constant that names one of
    the project's outside packages as a module path (docstrings included: a dotted name alone on a
    line of text is no module path, a whole string equal to one is)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno} import {a.name}" for a in node.names if _outside(a.name)]
        elif isinstance(node, ast.ImportFrom) and not node.level and _outside(node.module or ""):
            found.append(f"{where}:{node.lineno} from {node.module} import ...")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_PATH.match(node.value):
            found.append(f"{where}:{node.lineno} {node.value!r}")
    return found


def test_the_library_imports_neither_lightning_nor_the_lightning_layer_nor_the_ablations():
    paths = sorted(ROOT.rglob("*.py"))
    found = [
        o
        for path in paths
        for o in offenders(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT.parent)))
    ]
    assert len(paths) > 50 and not found, "\n".join(found)


def test_the_check_sees_every_kind_of_reference():
    bad = {
        "import lightning_modules.train": 1,
        "from datamodules import PosePairDataModule": 1,
        "import pytorch_lightning as pl": 1,
        "from lightning.pytorch import Trainer": 1,
        "import importlib\nimportlib.import_module('ablations.runner')": 1,
        "__import__('lightning_modules')": 1,
        "COMMANDS = {'ablate': ('ablations.runner', 'run an ablation')}": 1,
    }
    for source, count in bad.items():
        assert len(offenders(source, "x.py")) == count, source
    fine = [
        "from keytrack.lab import cells",
        "import torch",
        '"""The ablations: see ablations.runner and docs/ablations.md."""',
        "help_ = 'run an ablation: a spec of experiments/ablations/'",
        "from .relative import lightning_modules",
    ]
    for source in fine:
        assert offenders(source, "x.py") == [], source
