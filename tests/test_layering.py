"""Imports point one way: the library core never reaches the Lightning layer or the ablations.

The core is ``keytrack/`` less three subpackages: ``keytrack/lightning/`` and ``keytrack/datamodules/``
(the Lightning wrappers, ``keytrack train``) and ``keytrack/ablations/`` (the paper's specs and their
runner). Those import the core; no module of the core imports them, nor Lightning, neither by an
import statement (absolute or relative) nor by a module path in a string (importlib, ``__import__``,
a command table). The commands that live there reach the command line as entry points (setup.cfg's
``keytrack.commands``), which the core finds without naming them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import keytrack

ROOT = Path(keytrack.__file__).parent

#: The subpackages of keytrack outside the core.
LAYERS = ("lightning", "datamodules", "ablations")

#: Modules the core must not import (each with its submodules).
OUTSIDE = (
    *(f"keytrack.{layer}" for layer in LAYERS),
    "pytorch_lightning",
    "lightning",
    "lightning_fabric",
)

#: A string naming one of those modules as a module path ("keytrack.ablations.runner", "lightning.pytorch").
MODULE_PATH = re.compile(
    r"^(keytrack\.(" + "|".join(LAYERS) + r")|pytorch_lightning|lightning|lightning_fabric)(\.\w+)*$"
)


def _outside(module: str) -> bool:
    return any(module == o or module.startswith(o + ".") for o in OUTSIDE)


def _absolute(module: str | None, level: int, package: str) -> str:
    """The module a ``from <level dots><module> import`` in package ``package`` names."""
    if not level:
        return module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (level - 1)] if level - 1 < len(parts) else []
    return ".".join([*base, *([module] if module else [])])


def offenders(source: str, where: str, package: str = "keytrack") -> list[str]:
    """Every import of an outside module in ``source`` (a module of ``package``, against which relative
    imports resolve; ``from keytrack import lightning`` counts), and every string constant that names
    one as a module path (docstrings included: a dotted name inside a line of text is no module path,
    a whole string equal to one is)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno} import {a.name}" for a in node.names if _outside(a.name)]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node.module, node.level, package)
            names = [module] + [f"{module}.{a.name}" for a in node.names]
            if any(_outside(n) for n in names):
                found.append(f"{where}:{node.lineno} from {'.' * node.level}{node.module or ''} import ...")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_PATH.match(node.value):
            found.append(f"{where}:{node.lineno} {node.value!r}")
    return found


def core_modules() -> list[tuple[Path, str]]:
    """Every source file of the core and the package its relative imports resolve against."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in LAYERS:
            continue
        package = ".".join(["keytrack", *rel.parts[:-1]])
        found.append((path, package))
    return found


def test_the_core_imports_neither_lightning_nor_the_lightning_layer_nor_the_ablations():
    for layer in LAYERS:  # the layers exist where the check expects them (a rename empties no check)
        assert (ROOT / layer / "__init__.py").is_file(), layer
    modules = core_modules()
    found = [
        o
        for path, package in modules
        for o in offenders(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT.parent)), package)
    ]
    assert len(modules) > 50 and not found, "\n".join(found)
    assert not any(package.startswith(tuple(f"keytrack.{x}" for x in LAYERS)) for _, package in modules)


def test_the_check_sees_every_kind_of_reference():
    bad = {
        "import keytrack.lightning.train": 1,
        "from keytrack.datamodules import PosePairDataModule": 1,
        "from keytrack import ablations": 1,
        "from keytrack import cli, lightning": 1,
        "from .ablations.runner import run": 1,
        "from . import datamodules": 1,
        "import pytorch_lightning as pl": 1,
        "from lightning.pytorch import Trainer": 1,
        "import importlib\nimportlib.import_module('keytrack.ablations.runner')": 1,
        "__import__('keytrack.lightning')": 1,
        "importlib.import_module('pytorch_lightning')": 1,
        "COMMANDS = {'ablate': ('keytrack.ablations.runner', 'run an ablation')}": 1,
    }
    for source, count in bad.items():
        assert len(offenders(source, "x.py")) == count, source
    assert len(offenders("from ..lightning import train", "x.py", package="keytrack.video")) == 1
    fine = [
        "from keytrack.lab import cells",
        "from keytrack.lightningish import x",
        "import torch",
        '"""The ablations: see keytrack.ablations.runner and docs/ablations.md."""',
        "help_ = 'run an ablation: a spec of keytrack/experiments/ablations/'",
        "from .relative import lightning",
        "from .tracking import cli",
    ]
    for source in fine:
        assert offenders(source, "x.py") == [], source
    assert offenders("from .lightning import x", "x.py", package="keytrack.video") == []
