"""Output paths checked before any work, prediction folders written whole, and their manifest.

:func:`check_output_folder` and :func:`check_output_file` refuse an output that cannot be written
(an existing file where a folder goes, a folder where a file goes, a parent that is a file or
not writable) with an :class:`~keytrack.errors.InputError` naming it, before a command starts its
work. The writability check creates and removes a temporary file in the nearest existing folder
on the way to the output, so it holds for whoever runs the command (root included).

:func:`write_folder` fills a temporary sibling folder and then renames it into place, so a
prediction folder is either whole or absent (an existing one is swapped out atomically where
the system allows it). The folder holds :data:`MANIFEST`, a JSON file that records how it was made
and the sha256 of every other file in it; :func:`verify_manifest` refuses a folder whose files
disagree with it (a file added, missing or changed). The manifest's name has no ``.json`` suffix,
so readers of prediction folders (``.json``/``.mat`` files) do not take it for a video.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from keytrack.errors import InputError

#: Where every command writes by default (gitignored): ``runs/ablations/<name>``, ``runs/sweeps/<name>``,
#: ``runs/bench``, ``runs/cost``, ... The tables committed under ``results/`` are written only when a
#: command is given ``--out results/...``: a command run as documented never overwrites them.
RUNS = Path("runs")


def default_out(*parts: str) -> Path:
    """The default output folder ``runs/<parts>`` of a command given no ``--out``."""
    return RUNS.joinpath(*parts)


#: The manifest of a prediction folder written by ``keytrack track``.
MANIFEST = "keytrack.manifest"
MANIFEST_FORMAT = "keytrack-predictions/1"


class OutputError(InputError):
    """An output path that cannot be written, or a prediction folder that disagrees with its manifest."""


def _existing_ancestor(path: Path) -> Path:
    """The nearest existing path at or above ``path`` (``path`` itself if it exists)."""
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path.parent != path:
        path = path.parent
    return path


def _check_writable_parent(path: Path, what: str) -> None:
    """``path``'s parent can be created and written to: no file on the way, a writable folder above."""
    base = _existing_ancestor(path.parent)
    if not base.is_dir():
        raise OutputError(f"{path}: cannot write the {what} there: {base} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".keytrack-write-check.", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(
            f"{path}: cannot write the {what} there: {base} is not writable ({err.strerror or err})"
        ) from None


def check_output_folder(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Refuse a folder output that cannot be written whole, before any work is done.

    An existing file, a parent that is a file or not writable, and (without ``overwrite``) a
    folder that already holds files are refused, naming the path.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a folder; --out must name a folder")
    _check_writable_parent(path, "output folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise OutputError(f"{path}: already holds results; pass --overwrite to replace the folder")
    return path


def check_output_file(path: str | os.PathLike, *, option: str = "--json") -> Path:
    """Refuse a file output that is a folder or whose parent is a file or not writable."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; {option} must name a file")
    _check_writable_parent(path, f"{option} file")
    return path


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digest_files(paths: Iterable[str | os.PathLike]) -> str:
    """One sha256 over several files: each file's name and content digest, in name order."""
    digest = hashlib.sha256()
    for path in sorted({str(Path(p)) for p in paths}):
        digest.update(f"{Path(path).name}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def _folder_files(folder: Path) -> dict[str, Path]:
    """Every file under ``folder`` but the manifest, by its path relative to ``folder``."""
    return {
        p.relative_to(folder).as_posix(): p
        for p in sorted(folder.rglob("*"))
        if not p.is_dir() and p.relative_to(folder).as_posix() != MANIFEST
    }


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    done = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0
    return done


def _move_into_place(tmp: Path, path: Path) -> None:
    """Rename the filled folder ``tmp`` to ``path``, replacing whatever folder is there."""
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        os.replace(tmp, path)  # a missing or empty folder is replaced by one rename
        return
    if _exchange(tmp, path):  # the old folder now sits at tmp
        shutil.rmtree(tmp)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
    os.replace(path, old / path.name)
    os.replace(tmp, path)
    shutil.rmtree(old)


@contextmanager
def write_folder(path: str | os.PathLike, manifest: dict | None = None):
    """Yield a temporary sibling of ``path`` to fill; on success it gets the manifest and becomes ``path``.

    ``manifest`` (if given) is written as :data:`MANIFEST` with ``files``: the sha256 of every file
    in the folder. On failure the temporary folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if manifest is not None:
            files = {name: sha256_file(p) for name, p in _folder_files(tmp).items()}
            doc = {"format": MANIFEST_FORMAT, **manifest, "files": files}
            (tmp / MANIFEST).write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        for p in tmp.rglob("*"):
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700; give the folder the usual mode
        _move_into_place(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def verify_manifest(folder: str | os.PathLike) -> dict | None:
    """Check a prediction folder against its :data:`MANIFEST`; the manifest, or None without one.

    A file added, missing or changed since the folder was written is refused, naming the folder
    and the files. A folder (or file) without a manifest is not checked.
    """
    folder = Path(folder)
    if not folder.is_dir() or not (folder / MANIFEST).exists():
        return None
    try:
        doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        recorded = doc["files"]
        if not isinstance(recorded, dict):
            raise TypeError("'files' is not an object")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise OutputError(f"{folder / MANIFEST}: not a readable keytrack manifest ({err})") from None
    present = _folder_files(folder)
    added = sorted(set(present) - set(recorded))
    missing = sorted(set(recorded) - set(present))
    changed = sorted(n for n in set(recorded) & set(present) if sha256_file(present[n]) != recorded[n])
    problems = [
        f"{what} {', '.join(names)}"
        for what, names in (("added", added), ("missing", missing), ("changed", changed))
        if names
    ]
    if problems:
        raise OutputError(
            f"{folder}: the files disagree with its {MANIFEST}: {'; '.join(problems)} "
            "(re-run keytrack track, or remove the manifest to score the folder as it is)"
        )
    return doc


__all__ = [
    "MANIFEST",
    "OutputError",
    "check_output_file",
    "check_output_folder",
    "digest_files",
    "sha256_file",
    "verify_manifest",
    "write_folder",
]
