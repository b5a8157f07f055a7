"""Labels written to the annotation file as they are made, a few seconds at a time.

The App's plugin runs inside the App server process. Every label a person saves there is handed to
an :class:`EventWriter` for its annotation file, which merges what has accumulated into the file
(:func:`fercurate.annotations.append_events`: under the file's lock, atomically, fsynced) every
:data:`FLUSH_S` seconds from a background thread, when the server exits normally (``atexit``), and
when the launcher dies (the watchdog in :mod:`fercurate.annotate.app_server` calls
:func:`flush_all` before stopping the server). So a label is on disk within seconds of the key
press, and nothing waits for ``annotate pull``. An event still waiting can be taken back
(:meth:`EventWriter.discard`, used by undo) without ever reaching the file.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from fercurate.annotations import EVENT_SCHEMA, append_events, read_events

FLUSH_S = 2.0
_log = logging.getLogger(__name__)


class EventWriter:
    """Buffers events for one annotation file and merges them into it every ``interval`` seconds."""

    def __init__(self, path: str | os.PathLike, interval: float = FLUSH_S) -> None:
        self.path = Path(path)
        self.interval = interval
        self._pending: dict[str, dict[str, Any]] = {}
        self._writing: dict[str, dict[str, Any]] = {}  # taken by a flush, on their way to the file
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.last_error: str | None = None

    def add(self, event: Mapping[str, Any]) -> None:
        """Queue one event (see :func:`fercurate.annotations.make_event`) for the next flush."""
        with self._lock:
            self._pending[event["event_id"]] = dict(event)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=f"fercurate-writer-{self.path.name}",
                                                daemon=True)
                self._thread.start()

    def discard(self, event_id: str) -> bool:
        """Take back an event not written yet; False when it is in the file or being written now."""
        with self._lock:
            return self._pending.pop(event_id, None) is not None

    def history(self) -> pa.Table:
        """The file's events followed by the ones still waiting: what the file will hold after a flush."""
        with self._lock:
            waiting = [*self._writing.values(), *self._pending.values()]
        events = read_events(self.path)
        written = set(events.column("event_id").to_pylist())
        waiting = [e for e in waiting if e["event_id"] not in written]
        if not waiting:
            return events
        return pa.concat_tables([events, pa.Table.from_pylist(waiting, schema=EVENT_SCHEMA)])

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._writing)

    def flush(self) -> int:
        """Merge every waiting event into the file now; returns how many were written.

        Events being written can no longer be discarded (an undo then appends a new event instead).
        On a write error they go back to the queue for the next try and the error is kept in
        :attr:`last_error` (the App shows it) instead of being lost with the events.
        """
        with self._flushing:
            with self._lock:
                self._writing, self._pending = self._pending, {}
                batch = list(self._writing.values())
            if not batch:
                return 0
            try:
                added, _ = append_events(self.path, batch)
            except Exception as exc:  # noqa: BLE001 - keep the events; report and retry on the next flush
                with self._lock:
                    self._pending = {**self._writing, **self._pending}
                    self._writing = {}
                self.last_error = f"{self.path}: labels not saved yet ({exc}); retrying"
                _log.error(self.last_error)
                return 0
            with self._lock:
                self._writing = {}
            self.last_error = None
            self.written += added
            return added

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()


_writers: dict[Path, EventWriter] = {}
_registry_lock = threading.Lock()


def writer_for(path: str | os.PathLike, interval: float = FLUSH_S) -> EventWriter:
    """The one writer of this process for an annotation file."""
    key = Path(path).resolve()
    with _registry_lock:
        if key not in _writers:
            _writers[key] = EventWriter(key, interval)
        return _writers[key]


def flush_all() -> int:
    """Write every queued event of this process (at exit, and when the launcher dies)."""
    with _registry_lock:
        writers = list(_writers.values())
    return sum(w.flush() for w in writers)


atexit.register(flush_all)
