"""Who uses a workspace's MongoDB right now: each fercurate process holds a lock file while it lives.

A process that uses the workspace's ``mongod`` (:func:`fercurate.annotate.database.ensure_database`)
registers by holding an exclusive lock on ``<database home>/users/<pid>.lock`` for the rest of its
life. The operating system drops that lock when the process ends, however it ends (``kill -9``
included), so a lock that can be taken belongs to a process that has gone: no pid to trust, no pid
reuse to fear. The database's keeper (``python -m fercurate.annotate.database``) stops ``mongod``
once nobody has held a lock for a short while, as FiftyOne's own database service does for its
clients. A ``keep`` file (``fercurate annotate database --keep``) counts as a user until
``--stop``.

Registering and the keeper's final count both happen under the database's state lock, so no
process can register between the keeper's last look and the stop.
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout

USERS_DIR = "users"
KEEP_NAME = "keep"
_held: dict[tuple[int, Path], FileLock] = {}  # (pid, lock path): what this process holds


def _dir(home: Path) -> Path:
    return Path(home) / USERS_DIR


def register(home: str | os.PathLike) -> Path:
    """Count this process as a user of the database at ``home`` until it exits (idempotent)."""
    path = _dir(Path(home)) / f"{os.getpid()}.lock"
    key = (os.getpid(), path)
    if key not in _held:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, is_singleton=False)
        lock.acquire(timeout=0)  # our own pid's file: nobody else holds it
        _held[key] = lock
    return path


def users(home: str | os.PathLike, *, sweep: bool = False) -> int:
    """How many processes use the database now (a ``keep`` file counts as one).

    ``sweep`` removes the files of processes that have gone (call it only under the state lock,
    where nobody is half-way through registering).
    """
    folder = _dir(Path(home))
    if not folder.is_dir():
        return 0
    count = int((folder / KEEP_NAME).exists())
    mine = f"{os.getpid()}.lock"
    for path in folder.glob("*.lock"):
        if path.name == mine:
            count += (os.getpid(), path) in _held
            continue
        probe = FileLock(path, is_singleton=False)
        try:
            probe.acquire(timeout=0)
        except Timeout:
            count += 1  # held: that process is alive
            continue
        except OSError:
            continue
        probe.release()
        if sweep:
            path.unlink(missing_ok=True)
    return count


def keep(home: str | os.PathLike, on: bool = True) -> None:
    """Mark the database as wanted with no process using it (``annotate database --keep``), or unmark it."""
    path = _dir(Path(home)) / KEEP_NAME
    if on:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("kept by 'fercurate annotate database --keep'; '--stop' removes this file\n")
    else:
        path.unlink(missing_ok=True)


def kept(home: str | os.PathLike) -> bool:
    """Whether ``annotate database --keep`` asked to keep the database running."""
    return (_dir(Path(home)) / KEEP_NAME).exists()


__all__ = ["KEEP_NAME", "USERS_DIR", "keep", "kept", "register", "users"]
