"""Atomic file writes: write to a temporary file beside the target, fsync, then rename.

A crash at any point leaves either the old file or the new one, never a half-written file. The
temporary file is ``.<name>.<pid>.<random>.tmp`` (for a name too long to take that much more,
``.<cut name>~<hash>.<pid>.<random>.tmp``: every legal name can be written); for tables, JSON
files and checkpoints (manifests, rejects, layers, annotations, ``ran.pt``) one left by a killed
run is swept by the next write of the same file (when its writer's process is gone, or it is older
than a day). :func:`fitting_name` shortens a name derived from an input's name to what the
filesystem allows, with a stable hash. The new
file gets the permissions a plain ``open()`` would give (``0666`` less the umask; an existing
file's mode is kept), not ``mkstemp``'s ``0600``. A full disk or a permission error becomes a
:class:`StorageError`: one line naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
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
# Targets whose folder is scanned for stale temp files on each write (not images: their folders hold
# too many files to scan per write).
SWEPT_SUFFIXES = frozenset({".parquet", ".pt", ".json", ".jsonl", ".npy"})
DEFAULT_NAME_MAX = 255
# What a temp name adds to its prefix: pid (up to 7 digits), '.', mkstemp's 8 characters, a suffix
# of up to 16 bytes (".parquet.tmp").
_TEMP_EXTRA = 7 + 1 + 8 + 16
_HASH_CHARS = 12


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


def name_max(folder: str | os.PathLike) -> int:
    """The longest file name (in bytes) the filesystem holding ``folder`` (or its nearest existing parent) takes."""
    here = Path(folder)
    while not here.exists() and here != here.parent:
        here = here.parent
    try:
        return int(os.pathconf(here, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return DEFAULT_NAME_MAX


def _cut(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of its filesystem encoding, not inside a UTF-8 character."""
    raw = os.fsencode(text)[: max(0, max_bytes)]
    for k in range(min(4, len(raw) + 1)):
        try:
            raw[: len(raw) - k].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return os.fsdecode(raw[: len(raw) - k])
    return os.fsdecode(raw)  # a name that is not UTF-8 anyway: any cut is as good


def fitting_name(name: str, max_bytes: int = DEFAULT_NAME_MAX) -> str:
    """``name`` if it fits in ``max_bytes``, else its stem cut short + ``~`` + a hash of the whole name + its suffix.

    Stable (the same name always gives the same short one) and distinct for names that differ
    anywhere, so a rerun finds the files an earlier run wrote.
    """
    if len(os.fsencode(name)) <= max_bytes:
        return name
    suffix = "".join(Path(name).suffixes[-1:])
    if len(os.fsencode(suffix)) > 16:
        suffix = ""
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:_HASH_CHARS]
    keep = max_bytes - len(os.fsencode(suffix)) - 1 - _HASH_CHARS
    stem = name[: len(name) - len(suffix)] if suffix else name
    return f"{_cut(stem, keep)}~{digest}{suffix}"


def temp_prefix(target: str | os.PathLike) -> str:
    """The start of the temp names for ``target``: ``.<name>.``, or for a long name ``.<cut name>~<hash>.``
    so that the temp name (pid, random part and suffix added) still fits the filesystem."""
    target = Path(target)
    room = name_max(target.parent) - 2 - _TEMP_EXTRA
    return f".{fitting_name(target.name, room)}."


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it over ``target``."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix in SWEPT_SUFFIXES:
            sweep_stale_temps(target)
        fd, tmp = tempfile.mkstemp(
            prefix=f"{temp_prefix(target)}{os.getpid()}.", suffix=suffix or ".tmp", dir=target.parent
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
        fsync_dir(target.parent)
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
    prefix = temp_prefix(target)
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


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a folder's entries (a rename into it) durable; errors are ignored (not every filesystem can)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
