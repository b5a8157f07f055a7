"""A training run's log, ``metrics.jsonl``: one JSON record per line, appended as the run goes.

A kill can cut the last line short (no newline, not JSON): readers leave that line out and say so,
and a resumed run rewrites the log without it. Any other line that is not a JSON record is damage,
reported with the file and line number.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from fercurate.atomic import atomic_path
from fercurate.errors import InputError

FILE_NAME = "metrics.jsonl"
_log = logging.getLogger(__name__)


def read_records(path: str | os.PathLike, *, skip_damaged: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """The log's records and notes on what was left out: a last line cut short; with ``skip_damaged``
    also any other line that is not a JSON record (else InputError naming the file and line)."""
    lines, notes = _read(Path(path), skip_damaged)
    return [record for _, record in lines], notes


def _read(path: Path, skip_damaged: bool = False) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    lines = text.splitlines()
    records, notes = [], []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append((line, record))
            continue
        if no == len(lines) and not text.endswith("\n"):
            notes.append(f"{path}: line {no} was cut short (a write the run did not finish) and is left out")
            continue
        damaged = f"{path}: line {no} is not a JSON record ({line[:60]!r}); the log is damaged"
        if not skip_damaged:
            raise InputError(damaged)
        notes.append(damaged)
    return records, notes


class MetricsLog:
    """Appends records to ``metrics.jsonl`` (the main process only); a resumed run first drops the lines
    past its checkpoint (and a last line a kill cut short)."""

    def __init__(self, path: Path, enabled: bool, resume_step: int | None) -> None:
        self.path, self.enabled = path, enabled
        self.lines: list[dict[str, Any]] = []
        if enabled and resume_step is not None and path.exists():
            records, notes = _read(path)
            for note in notes:
                _log.warning(note)
            kept = [line for line, r in records if r.get("step", 0) <= resume_step]
            with atomic_path(path) as tmp:
                tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        elif enabled and resume_step is None and path.exists():
            path.unlink()

    def log(self, record: dict[str, Any]) -> None:
        self.lines.append(record)
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, sort_keys=True) + "\n")
