"""Bad input and how the command line reports it.

Every error that means "the input is wrong" (a file, a field, a config key, a checkpoint) derives
from :class:`InputError`, a ``ValueError`` whose message names what is wrong and where:
:class:`keytrack.io.DataError` (annotation files), :class:`keytrack.config.ConfigError`,
:class:`keytrack.tokenize.TokenizeError`, :class:`keytrack.tracking.TrackingError`,
:class:`keytrack.evaluation.EvaluationError`, :class:`keytrack.video.frames.VideoError` and
:class:`CheckpointError`. A path given that is missing (``FileNotFoundError``), a file where a folder
goes or the other way round (``NotADirectoryError``, ``IsADirectoryError``) or not allowed
(``PermissionError``) counts as bad input too.

:func:`run_command` runs a command so that bad input prints one line,
``<prog>: error: <message>``, on stderr and exits with status 2 (as argparse does for bad
arguments), with the traceback only under ``--debug`` or ``KEYTRACK_DEBUG=1``; any other
exception is a bug and keeps its traceback. ``keytrack``'s console script and every
``python -m keytrack.ablations.<name>`` (``sweep``, ``toks``, ``matcher_variants``) go through it.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

__all__ = ["InputError", "CheckpointError", "USER_ERRORS", "describe", "debug_requested", "run_command"]


class InputError(ValueError):
    """Input that cannot be used as it stands; the message names the file, field or key."""


class CheckpointError(InputError):
    """A checkpoint that is missing, unreadable or not a keytrack training checkpoint."""


#: Exceptions that are the user's input, not a bug: bad input, and a path given that is missing, is
#: a file where a folder goes (or the other way round), or may not be read or written.
USER_ERRORS: tuple[type[BaseException], ...] = (
    InputError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)

#: What :func:`describe` says of a path of each kind of :class:`OSError`.
_PATH_ERRORS = (
    (FileNotFoundError, "no such file or directory"),
    (NotADirectoryError, "not a folder (a file is in the way)"),
    (IsADirectoryError, "is a folder, not a file"),
    (PermissionError, "permission denied"),
)


def describe(err: BaseException) -> str:
    """One message for an error of :data:`USER_ERRORS`."""
    for kind, what in _PATH_ERRORS:
        if isinstance(err, kind) and err.filename:
            return f"{err.filename}: {what}"
    return str(err) or type(err).__name__


def debug_requested(argv: list[str] | None = None) -> bool:
    return "--debug" in (argv or []) or os.environ.get("KEYTRACK_DEBUG", "") not in ("", "0")


def run_command(prog: str, fn: Callable[[], int | None], *, debug: bool = False) -> int:
    """``fn()``'s exit status; bad input (:data:`USER_ERRORS`) becomes ``prog: error: ...`` and 2."""
    try:
        return int(fn() or 0)
    except USER_ERRORS as err:
        if debug or debug_requested():
            raise
        print(f"{prog}: error: {describe(err)}", file=sys.stderr)
        return 2
