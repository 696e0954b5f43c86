"""Reading JSON with errors that point at the file and line, and writing it atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keytrack.atomic import write_text
from keytrack.io.errors import DataError


def load_json(path: str | Path) -> Any:
    """Parse a JSON file; a syntax error becomes a :class:`DataError` with its line and column."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DataError(path, f"malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err
    except UnicodeDecodeError as err:
        raise DataError(path, f"not UTF-8 text ({err.reason} at byte {err.start})") from err


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as compact JSON so that ``path`` is either the whole new file or left as it
    was (:mod:`keytrack.atomic`). ``NaN``/``inf`` are refused: they are not JSON."""
    return write_text(path, json.dumps(obj, allow_nan=False, separators=(",", ":")))
