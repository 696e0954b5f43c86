"""Atomic file output: a file is either whole or absent, even if the process dies mid-write.

The content goes to a temporary file in the target's folder, is flushed to disk, and is then
moved over the target with :func:`os.replace` (atomic on POSIX and Windows).
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _file_mode() -> int:
    """``0o666`` less the process umask: what ``open(path, "w")`` would give a new file."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _file_mode()


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; if the block succeeds it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _MODE)  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj, **kwargs) -> Path:
    """Pretty JSON (``indent=2`` unless given); NaN/inf are refused, they are not JSON."""
    return write_text(path, json.dumps(obj, **{"indent": 2, "allow_nan": False, **kwargs}) + "\n")
