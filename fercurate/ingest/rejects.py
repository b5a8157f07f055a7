"""Rows an ingestor could not accept, each with its file, line and reason, and how names are shown in them.

A reject is never a silent drop: every ingestor and :func:`fercurate.ingest.result.finish` add to one
:class:`Rejects` list, written beside the manifest as its rejects table. File names from the disk may
be any bytes, so everything stored or printed goes through :func:`printable` first.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from fercurate.schema import REJECTS_SCHEMA


@dataclass
class Rejects:
    """Rows an ingestor could not accept, each with a reason (never silently dropped)."""

    dataset: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        reason: str,
        *,
        source_file: str | os.PathLike | None = None,
        row: int | None = None,
        image_path: str | None = None,
        raw: str | None = None,
    ) -> None:
        self.rows.append(
            {
                "dataset": self.dataset,
                "source_file": None if source_file is None else printable(str(source_file)),
                "row": row,
                "image_path": None if image_path is None else printable(image_path),
                "reason": printable(reason),
                "raw": None if raw is None else printable(raw if len(raw) <= 2000 else raw[:2000] + "…"),
            }
        )

    def __len__(self) -> int:
        return len(self.rows)

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, schema=REJECTS_SCHEMA)

    def reasons(self) -> Counter:
        """Counts per reason kind (the text before the first ':')."""
        return Counter(r["reason"].split(":")[0] for r in self.rows)

    def first_message(self) -> str | None:
        """One line naming the first bad file/row and why, for the CLI."""
        if not self.rows:
            return None
        r = self.rows[0]
        where = r["source_file"] or r["image_path"] or self.dataset
        if r["row"] is not None:
            where = f"{where}:{r['row']}"
        return f"{where}: {r['reason']}"


def printable(text: str) -> str:
    """``text`` safe to store as UTF-8 and print: undecodable file-name bytes (surrogate escapes from
    ``os.listdir``) are shown as ``\\xff``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8_name(name: str) -> bool:
    """Whether a name from ``os.listdir``/``os.scandir`` was valid UTF-8 on disk."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def invalid_utf8_rows(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Rows of a text column whose bytes are not valid UTF-8 (error path only: one decode per row)."""
    out = np.zeros(len(col), dtype=bool)
    for i, b in enumerate(col.cast(pa.binary()).to_pylist()):
        if b is not None:
            try:
                b.decode("utf-8")
            except UnicodeDecodeError:
                out[i] = True
    return out


def shown_text(value: Any) -> str | None:
    """Raw field bytes from a dataset file as a reject shows them: bytes that are not UTF-8 as ``\\xff``."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return value


def non_utf8_reason(folder: str | os.PathLike, name: str) -> str:
    """The reject reason for a file name that is not valid UTF-8, naming the folder and the raw bytes."""
    return f"file name is not valid UTF-8: {os.fsencode(name)!r} in {printable(str(folder))}"


def reject_non_utf8(rejects: Rejects, names: list[tuple[str, str]]) -> None:
    """One reject per non-UTF-8 file name (skipping those the ingestor already rejected)."""
    seen = {(r["source_file"], r["raw"]) for r in rejects.rows if r["reason"].startswith("file name is not valid")}
    for folder, name in sorted(set(names)):
        raw = repr(os.fsencode(name))
        if (printable(folder), raw) not in seen:
            rejects.add(non_utf8_reason(folder, name), source_file=folder, raw=raw)
