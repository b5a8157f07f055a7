"""Inter-process locks for read-merge-replace of shared files (annotations, layers, subsets).

Each shared file ``x.parquet`` gets a lock file ``.x.parquet.lock`` beside it, held with the
``filelock`` library (``fcntl``/``msvcrt`` locks, released by the OS if the holder dies). A writer
that finds the lock taken waits for it (retrying), so concurrent writers are serialised and none
of their events is lost; only after ``timeout`` seconds does it give up, with an error naming the file.

A run that writes one output for a long time (``pose`` and its parts folder, a training run folder)
holds the same lock for the whole run (:func:`run_lock`): a second run of the same output refuses
at once instead of breaking the first's files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from fercurate.errors import FercurateError

DEFAULT_TIMEOUT_S = 600.0


class LockTimeout(FercurateError):
    """Another process held a shared file's lock for longer than we were willing to wait."""


def lock_path(target: str | os.PathLike) -> Path:
    """``dir/x.parquet`` -> ``dir/.x.parquet.lock``."""
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


@contextlib.contextmanager
def locked(target: str | os.PathLike, timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[Path]:
    """Hold ``target``'s lock (re-entrant within a process) for a read-merge-replace of ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path(target), is_singleton=True)
    try:
        lock.acquire(timeout=timeout)
    except Timeout as exc:
        raise LockTimeout(
            f"{target}: another fercurate process has held its lock ({lock_path(target)}) for over "
            f"{timeout:g} s; retry when it has finished"
        ) from exc
    try:
        yield target
    finally:
        lock.release()


@contextlib.contextmanager
def run_lock(target: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold ``target``'s lock for a whole run of ``what`` (e.g. "pose run"); a second run refuses at once.

    The lock is the one :func:`locked` takes, so the run's own final write of ``target`` goes through.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path(target), is_singleton=True)
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        raise LockTimeout(
            f"{target}: another fercurate {what} is writing it now (it holds {lock_path(target)}); "
            "wait for that one to finish, then run again"
        ) from exc
    try:
        yield target
    finally:
        lock.release()
