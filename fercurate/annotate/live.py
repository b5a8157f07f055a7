"""Labels written to the annotation file as they are made, a few seconds at a time.

The App's plugin runs inside the App server process. Every label a person saves there is handed to
an :class:`EventWriter` for its annotation file, which merges what has accumulated into the file
(:func:`fercurate.annotations.append_events`: under the file's lock, atomically, fsynced) every
:data:`FLUSH_S` seconds from a background thread, when the server exits normally (``atexit``), and
when the launcher dies (the watchdog in :mod:`fercurate.annotate.app_server` calls
:func:`flush_all` before stopping the server). So a label is on disk within seconds of the key
press, and nothing waits for ``annotate pull``. An event still waiting can be taken back
(:meth:`EventWriter.discard`, used by undo) without ever reaching the file.

Labels still waiting when the server exits (the disk is full, the file is locked) are not lost: the
last flush writes them to a spill file, ``<annotation file>.spill-<pid>.jsonl`` beside it, else
under ``$XDG_STATE_HOME/fercurate/spill/`` (``~/.local/state``), and the next launch (or the next
writer of that file) merges it in (:func:`merge_spilled`) and removes it. Only if no spill file can
be written either are the labels printed to the server's log as JSON lines and the server exits
with :data:`EXIT_LABELS_LOST`.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from fercurate.annotations import EVENT_SCHEMA, append_events, read_events
from fercurate.atomic import write_text
from fercurate.errors import FercurateError

FLUSH_S = 2.0
EXIT_LABELS_LOST = 75  # EX_TEMPFAIL: labels could neither be written nor spilled (they are in the log)
SPILL_FORMAT = "fercurate-spill"
_log = logging.getLogger(__name__)
_lost = 0  # labels this process could neither write nor spill


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
        self.last_cause: str | None = None  # why the last flush failed (the write error itself)

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
                self.last_cause = str(exc)
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

    def close(self) -> int:
        """The last flush (at exit): write what waits; what cannot be written goes to a spill file.

        Returns how many labels were written to the annotation file.
        """
        global _lost
        written = self.flush()
        with self._lock:
            waiting, self._pending = list(self._pending.values()), {}
        if not waiting:
            return written
        why = self.last_cause or "not written"
        try:
            spill = spill_events(self.path, waiting)
        except OSError as exc:
            _lost += len(waiting)
            for event in waiting:
                print(json.dumps(_jsonable(event), sort_keys=True), file=sys.stderr)
            _log.error("%s: %d labels could not be written (%s) nor spilled (%s): LOST, except for the JSON "
                       "lines above in this log", self.path, len(waiting), why, exc)
            return written
        _log.error("%s: %d labels could not be written (%s); kept in %s, merged into the file at the next "
                   "'fercurate annotate launch'", self.path, len(waiting), why, spill)
        return written


_writers: dict[Path, EventWriter] = {}
_registry_lock = threading.Lock()


def writer_for(path: str | os.PathLike, interval: float = FLUSH_S) -> EventWriter:
    """The one writer of this process for an annotation file (labels an earlier server spilled are merged first)."""
    key = Path(path).resolve()
    with _registry_lock:
        if key not in _writers:
            try:
                merge_spilled(key)
            except FercurateError as exc:  # still no room: the spill file stays for the next try
                _log.error("%s", exc)
            _writers[key] = EventWriter(key, interval)
        return _writers[key]


def flush_all() -> int:
    """The last flush of every writer of this process (at exit, and when the launcher dies); what cannot
    be written is spilled (see the module docstring)."""
    with _registry_lock:
        writers = list(_writers.values())
    return sum(w.close() for w in writers)


def exit_code() -> int:
    """0, or :data:`EXIT_LABELS_LOST` when labels could neither be written nor spilled."""
    return EXIT_LABELS_LOST if _lost else 0


def _at_exit() -> None:
    flush_all()
    if _lost:  # the only way to say so in the exit status once the interpreter is exiting
        sys.stderr.flush()
        os._exit(EXIT_LABELS_LOST)


atexit.register(_at_exit)


# --- spill files ---------------------------------------------------------------------------------


def spill_dir() -> Path:
    """Where spill files go when the annotation file's own folder takes none."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "fercurate" / "spill"


def spill_events(path: str | os.PathLike, events: list[Mapping[str, Any]]) -> Path:
    """Write ``events`` meant for annotation file ``path`` to a spill file; returns where (OSError if nowhere)."""
    path = Path(path).resolve()
    header = {"format": SPILL_FORMAT, "annotation_file": str(path), "events": len(events),
              "written_at": datetime.now(timezone.utc).isoformat(), "pid": os.getpid()}
    text = "".join(json.dumps(x, sort_keys=True) + "\n" for x in [header, *map(_jsonable, events)])
    name = f"{path.name}.spill-{os.getpid()}.jsonl"
    error: OSError | None = None
    for folder in (path.parent, spill_dir()):
        try:
            write_text(folder / name, text)
            return folder / name
        except OSError as exc:
            error = exc
    assert error is not None
    raise error


def merge_spilled(path: str | os.PathLike) -> list[tuple[Path, int]]:
    """Merge the spill files of annotation file ``path`` into it and remove them: [(spill file, labels added)].

    A merge that cannot write (the disk is still full) raises StorageError and leaves the spill file.
    """
    path = Path(path).resolve()
    found = sorted(path.parent.glob(f"{path.name}.spill-*.jsonl"))
    if spill_dir().is_dir():
        found += sorted(spill_dir().glob(f"{path.name}.spill-*.jsonl"))
    merged = []
    for spill in found:
        events = _read_spill(spill, path)
        if events is None:
            continue
        added, _ = append_events(path, events)
        spill.unlink()
        merged.append((spill, added))
    return merged


def _read_spill(spill: Path, path: Path) -> list[dict[str, Any]] | None:
    """The events of a spill file meant for ``path`` (None: another file's, or not a spill file)."""
    try:
        lines = spill.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0])
        if header.get("format") != SPILL_FORMAT or header.get("annotation_file") != str(path):
            return None
        events = [json.loads(x) for x in lines[1:] if x.strip()]
    except (OSError, ValueError, IndexError) as exc:
        _log.error("%s: not a readable spill file (%s); left as it is", spill, exc)
        return None
    for e in events:
        e["labelled_at"] = datetime.fromisoformat(e["labelled_at"])
    return events


def _jsonable(event: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in event.items()}


def merge_spilled_notes(path: str | os.PathLike) -> list[str]:
    """:func:`merge_spilled` for a launcher: one line per spill file merged, or why it is still waiting."""
    try:
        merged = merge_spilled(path)
    except FercurateError as exc:
        return [f"labels kept from an earlier App session are still waiting in a spill file ({exc})"]
    return [f"kept from an earlier App session: {added:,} labels merged into {Path(path).resolve()} from {spill} "
            "(now removed)" for spill, added in merged]
