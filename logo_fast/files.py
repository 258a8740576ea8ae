"""Atomic file writes and JSON metadata: the one place every writer in the package gets them.

A leaf module (standard library and numpy only), so the dataset readers and writers, the
collector, the world-model checkpoints and the reports can all import it at the top without
an import circle.

Atomic writes: data goes to a hidden temp file (or directory) next to the target, named
``.NAME.<uuid>.<host>-<pid>.tmp[SUFFIX]``, and is moved over the target with ``os.replace``
only once complete; on any exception (including KeyboardInterrupt, and SIGTERM when the
command line turned it into ``SystemExit``) the temp file is removed and an existing target
is untouched. A ``kill -9`` cannot be caught, so every write first sweeps stale temp files of
the same target: those whose writing process is no longer running on this machine (by the pid
and host in the name), those from another host not modified for ``STALE_FOREIGN_S`` seconds,
and those in the older ``.NAME.<uuid>.tmp*`` form that carries no pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "atomic_dir",
    "atomic_path",
    "json_default",
    "metadata_to_json",
    "sweep_stale_temps",
    "temp_name",
    "writable_problem",
    "write_json",
]

STALE_FOREIGN_S = 24 * 3600  # a temp file of another machine's writer is kept this long after its last change


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` for the package: numpy scalars -> numbers, arrays -> lists, paths -> str.

    Anything else raises TypeError (so ``metadata_to_json`` turns it into a clear ValueError)
    rather than being stored as its ``str()``: a silent ``repr`` in a manifest or file header
    cannot be read back as what it was.
    """
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def metadata_to_json(metadata: Mapping[str, Any], *, indent: int | None = None) -> str:
    """JSON text for ``metadata`` (keys sorted); ValueError naming the problem when it cannot be stored."""
    try:
        return json.dumps(dict(metadata), default=json_default, sort_keys=True, allow_nan=True, indent=indent)
    except (TypeError, ValueError) as err:
        raise ValueError(f"metadata: cannot be stored as JSON ({err})") from err


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def temp_name(path: Path, kind: str = "tmp", suffix: str = "") -> Path:
    """A fresh hidden sibling of ``path``: ``.NAME.<uuid12>.<host>-<pid>.<kind><suffix>``."""
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.{_host()}-{os.getpid()}.{kind}{suffix}"


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def sweep_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove leftover temp files/directories of writes to ``path`` whose writer is gone; returns them.

    A temp entry is stale when the process named in it no longer runs on this machine, when it
    names another machine and has not changed for ``STALE_FOREIGN_S`` seconds, or when it has
    the older name form with no pid. Temp entries of other targets are never touched.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(
        r"^\." + re.escape(path.name) + r"\.[0-9a-f]{12}(?:\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+))?\.(?:tmp|old)"
    )
    host = _host()
    removed = []
    for entry in path.parent.iterdir():
        m = pattern.match(entry.name)
        if m is None:
            continue
        if m["pid"] is not None:
            if m["host"] == host:
                if _pid_running(int(m["pid"])):
                    continue
            else:
                with contextlib.suppress(OSError):
                    if time.time() - entry.lstat().st_mtime < STALE_FOREIGN_S:
                        continue
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed


def _prepare(path: Path) -> None:
    """Create the parent directory and sweep stale temps; an OSError names the target, not a temp file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, f"cannot create the directory for {path}: {err.strerror or err}") from err
    sweep_stale_temps(path)


def _name_the_target(err: OSError, tmp: Path, path: Path) -> OSError:
    """The OSError to show for a failed write: it names the target, not the hidden temp file."""
    if tmp.name not in str(err):
        return err
    reason = err.strerror or (f"errno {err.errno}" if err.errno else type(err).__name__)
    return OSError(err.errno, f"cannot write {path} ({reason})")


def writable_problem(path: str | os.PathLike, name: str = "out") -> str | None:
    """A message when a file cannot be created at ``path`` (checked by creating a probe), else None.

    For argument checks before long work: the nearest existing ancestor directory must accept
    a new file (``os.access`` is not enough: it says yes to root on /proc).
    """
    path = Path(path).expanduser()
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{name}: {parent} is not a directory, so {path} cannot be created"
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        return f"{name}: cannot create files in {parent} ({err.strerror or err})"
    return None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it replaces ``path``, on any error it is removed.

    ``suffix`` ends the temp name (libraries such as h5py or numpy pick behaviour by it).
    """
    path = Path(path)
    _prepare(path)
    tmp = temp_name(path, "tmp", suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        named = _name_the_target(err, tmp, path)
        if named is err:
            raise
        raise named from err
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temp directory next to ``path``; on success it becomes ``path``, on error it is removed.

    An existing directory at ``path`` is swapped out (renamed aside, the new one renamed in,
    the old one deleted), so readers see either the old or the new tree, never a partial one;
    if the swap fails the old directory is put back.
    """
    path = Path(path)
    _prepare(path)
    tmp = temp_name(path, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            aside = temp_name(path, "old")
            os.replace(path, aside)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(aside, path)
                raise
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove_tree(tmp)
        raise


def _remove_tree(path: Path, tries: int = 5) -> None:
    """``rmtree`` that tries again when a late writer (a library's I/O thread) refilled the tree."""
    for attempt in range(tries):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.02 * (attempt + 1))


def write_json(path: str | os.PathLike, obj: Mapping[str, Any], indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (``json_default`` conversions, keys sorted) atomically; returns the path."""
    path = Path(path)
    text = metadata_to_json(obj, indent=indent)
    with atomic_path(path, ".json") as tmp:
        tmp.write_text(text + "\n")
    return path
