"""Shared pytest setup.

``--data=DIR`` (or ``make test DATA=DIR``) adds the checks in ``test_real_data.py`` against a
PoseTrack18-layout folder of the user's; without it those tests are not collected, since every
other test runs on data the project generates itself.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def pytest_addoption(parser):
    parser.addoption(
        "--data",
        default=None,
        metavar="DIR",
        help="also check a PoseTrack18-layout dataset (readers, pairs, tokens, training, evaluation)",
    )


def pytest_ignore_collect(collection_path, config):
    if collection_path.name == "test_real_data.py" and not config.getoption("--data"):
        return True
    return None


@pytest.fixture(scope="session")
def real_data_root(request):
    return request.config.getoption("--data")
