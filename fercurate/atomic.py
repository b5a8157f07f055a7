"""Atomic file writes: write to a temporary file beside the target, fsync, then rename.

A crash at any point leaves either the old file or the new one, never a half-written file. The
temporary file is ``.<name>.<pid>.<random>.tmp``; for Parquet tables (manifests, rejects, layers,
annotations) one left by a killed run is swept by the next write of the same table (when its
writer's process is gone, or it is older than a day). The new
file gets the permissions a plain ``open()`` would give (``0666`` less the umask; an existing
file's mode is kept), not ``mkstemp``'s ``0600``. A full disk or a permission error becomes a
:class:`StorageError`: one line naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from fercurate.errors import FercurateError
from fercurate.pids import pid_alive

# A temp file without a live writer's pid is only swept when older than this (a run that writes one
# file for longer than a day is not expected; pids are reused, so a live pid alone is not proof).
STALE_AFTER_S = 24 * 3600.0
LEGACY_STALE_AFTER_S = 3600.0


class StorageError(FercurateError, OSError):
    """A file could not be written (full disk, no permission, read-only filesystem ...)."""


def storage_error(path: str | os.PathLike, exc: OSError) -> StorageError:
    """One line naming ``path`` and what the OS said (``exc`` may lack errno, as pyarrow's do)."""
    if isinstance(exc, StorageError):
        return exc
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc):
        why = "no space left on the device"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = "permission denied"
    elif exc.errno == errno.EROFS:
        why = "read-only filesystem"
    else:
        why = exc.strerror or str(exc)
    return StorageError(f"{path}: cannot write ({why})")


def current_umask() -> int:
    """The process umask: from ``/proc/self/status`` on Linux (no window where another thread sees a
    changed umask), else by setting and restoring it."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it over ``target``."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix == ".parquet":  # tables only: image folders hold too many files to scan per write
            sweep_stale_temps(target)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.{os.getpid()}.", suffix=suffix or ".tmp", dir=target.parent
        )
        os.close(fd)
    except OSError as exc:
        raise storage_error(target, exc) from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, _mode_for(target))
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise storage_error(target, exc) from exc
        raise


def sweep_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Remove temp files of ``target`` left by killed runs; returns what was removed.

    Only files of this module's naming (``.<name>.<pid>.<random>.tmp`` and the older
    ``.<name>.<random>.tmp``) are considered; a file whose writer is alive and recent is kept.
    """
    target = Path(target)
    prefix = f".{target.name}."
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for e in entries:
        name = e.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        try:
            age = now - e.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        pid_text = name[len(prefix):].split(".", 1)[0]
        if pid_text.isdigit():
            pid = int(pid_text)
            stale = age > STALE_AFTER_S or (pid != os.getpid() and not pid_alive(pid))
        else:
            stale = age > LEGACY_STALE_AFTER_S
        if stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(e.path)
                removed.append(Path(e.path))
    return removed


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Atomically replace ``target`` with ``data``."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike, text: str) -> None:
    """Atomically replace ``target`` with ``text`` (UTF-8)."""
    write_bytes(target, text.encode("utf-8"))


def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
