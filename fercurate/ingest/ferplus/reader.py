"""The FER+ files both layouts read: their names and splits, CSV text line by line, and fer2013new.csv.

Both layouts are joined to ``fer2013new.csv`` (the FER+ votes; the ``folders`` layout compares its
``label.csv`` votes with it, the ``csv`` layout takes them from it). CSV text is read line by line,
so bad bytes or a bad row never hide the rest of the file: each line comes back with its own error.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from fercurate.errors import InputError
from fercurate.schema import FERPLUS_VOTE_COLUMNS
from fercurate.votes import parse_votes

DATASET = "ferplus"
# FER2013 "Usage" -> the folder generate_training_data.py writes to, and our split names.
FOLDER_OF_USAGE: dict[str, str] = {
    "Training": "FER2013Train",
    "PublicTest": "FER2013Valid",
    "PrivateTest": "FER2013Test",
}
SPLIT_OF_FOLDER: dict[str, str] = {"FER2013Train": "train", "FER2013Valid": "val", "FER2013Test": "test"}
SPLIT_OF_USAGE: dict[str, str] = {u: SPLIT_OF_FOLDER[f] for u, f in FOLDER_OF_USAGE.items()}
LABEL_FILE = "label.csv"
FERPLUS_CSV = "fer2013new.csv"
FER2013_CSV = "fer2013.csv"
FLAG_DUPLICATE = "duplicate_name:fer2013new"


def csv_lines(path: Path) -> list[tuple[int, list[str] | None, str | None, str]]:
    """(1-based line, fields, error, raw text) for each non-blank line; errors are per line."""
    try:
        data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM is not part of the first field
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    out = []
    for line_no, raw in enumerate(data.split(b"\n"), 1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            shown = raw.decode("utf-8", errors="replace")
            out.append((line_no, None, f"not valid UTF-8 (byte {exc.start + 1} of the line)", shown))
            continue
        try:
            fields = next(csv.reader([text], strict=True))
        except csv.Error as exc:
            out.append((line_no, None, f"malformed CSV ({exc})", text))
            continue
        out.append((line_no, fields, None, text))
    return out


@dataclass
class FerPlusRow:
    """One data row of fer2013new.csv (``error``: why it is unusable, else None)."""

    line: int
    usage: str
    name: str
    votes: list[int] | None
    raw_votes: str
    error: str | None = None


@dataclass
class FerPlusCsv:
    """fer2013new.csv, parsed: one entry per data row (row index = position in fer2013.csv)."""

    path: Path
    rows: list[FerPlusRow] = field(default_factory=list)

    def lines_by_name(self) -> dict[str, list[int]]:
        """Image name -> indices of the valid rows that name it, in file order."""
        out: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(self.rows):
            if r.error is None and r.name:
                out[r.name].append(i)
        return out


def read_ferplus_csv(path: str | os.PathLike) -> FerPlusCsv:
    """Parse fer2013new.csv (header: Usage, Image name, 10 vote columns), keeping bad rows with a reason."""
    path = Path(path)
    lines = csv_lines(path)
    if not lines:
        raise InputError(
            f"{path}: empty file (expected a header: Usage, Image name, {', '.join(FERPLUS_VOTE_COLUMNS)})"
        )
    line_no, header, err, _ = lines[0]
    if err:
        raise InputError(f"{path}:{line_no}: unreadable header ({err})")
    names = [h.strip().lower() for h in header]
    wanted = ["usage", "image name", *[c.lower() for c in FERPLUS_VOTE_COLUMNS]]
    missing = [w for w in wanted if w not in names]
    if missing:
        raise InputError(
            f"{path}:{line_no}: missing column(s) {missing} (found {header}); expected Usage, Image name, "
            + ", ".join(FERPLUS_VOTE_COLUMNS)
        )
    idx = [names.index(w) for w in wanted]
    width = len(header)
    result = FerPlusCsv(path)
    for line_no, fields, err, text in lines[1:]:
        if err is None and len(fields) != width:
            err = f"expected {width} columns as in the header, found {len(fields)} (truncated or malformed row)"
        if err is not None:
            result.rows.append(FerPlusRow(line_no, "", "", None, text, err))
            continue
        vote_fields = [fields[i] for i in idx[2:]]
        votes, verr = parse_votes(vote_fields)
        result.rows.append(
            FerPlusRow(line_no, fields[idx[0]].strip(), fields[idx[1]].strip(), votes, ",".join(vote_fields), verr)
        )
    return result


def source_name(path: Path, root: Path) -> str:
    """``path`` as rejects and notes name it: relative to ``root`` when inside it."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def name_problem(name: str) -> str | None:
    """Why an image name from a FER+ file cannot be a PNG's name in its folder, or None."""
    if not name:
        return "empty image name"
    if "/" in name or "\\" in name:
        return f"image name {name!r} must be a file name, not a path"
    if name in (".", "..") or "\x00" in name:
        return f"image name {name!r} is a reserved name, not a file name"
    return None
