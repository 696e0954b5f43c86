"""Reading JSON with errors that point at the file and line, and writing it atomically."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from keytrack.io.errors import DataError


def _file_mode() -> int:
    """``0o666`` less the process umask: what ``open(path, "w")`` would give a new file."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _file_mode()


def load_json(path: str | Path) -> Any:
    """Parse a JSON file; a syntax error becomes a :class:`DataError` with its line and column."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DataError(path, f"malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") \
            from err
    except UnicodeDecodeError as err:
        raise DataError(path, f"not UTF-8 text ({err.reason} at byte {err.start})") from err


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as JSON so that ``path`` is either the whole new file or left as it was.

    The text goes to a temporary file in the same folder, is flushed to disk and then moved over
    ``path`` with :func:`os.replace` (atomic on POSIX and Windows). ``NaN``/``inf`` are refused:
    they are not JSON.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, allow_nan=False, separators=(",", ":"))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _MODE)             # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
