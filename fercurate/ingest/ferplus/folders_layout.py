"""The ``folders`` layout: FER2013{Train,Valid,Test}/ with PNGs and a headerless ``label.csv`` each.

What FER+'s ``generate_training_data.py`` produces: per row the image name, an optional face box
``"(left, top, right, bottom)"`` and 10 vote counts. When ``fer2013new.csv`` is present too, the
``label.csv`` votes are used (the RAN lists follow them) and every disagreement with it is flagged
and counted, never hidden.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

from fercurate.errors import InputError
from fercurate.ingest.ferplus.reader import (
    FLAG_DUPLICATE,
    FOLDER_OF_USAGE,
    LABEL_FILE,
    SPLIT_OF_FOLDER,
    SPLIT_OF_USAGE,
    DATASET,
    FerPlusCsv,
    csv_lines,
    name_problem,
    read_ferplus_csv,
    source_name,
)
from fercurate.ingest.ferplus.rows import Rows
from fercurate.ingest.rejects import Rejects
from fercurate.schema import FERPLUS_VOTE_COLUMNS
from fercurate.votes import N_VOTES, parse_votes

_BOX_RE = re.compile(r"^\(\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*\)$")
LABEL_CSV_COLUMNS = "image name, face box, 10 votes (" + ", ".join(FERPLUS_VOTE_COLUMNS) + ")"
FLAG_CONFLICT = "votes_conflict:fer2013new"
FLAG_EARLIER_ROW = "votes_from_earlier_row:fer2013new"
FLAG_SPLIT_CONFLICT = "split_conflict:fer2013new"


def _read_label_csv(path: Path, folder: str, root: Path, rows: Rows, rejects: Rejects) -> int:
    """Parse one label.csv into ``rows``; returns the number of lines read."""
    src = source_name(path, root)
    lines = csv_lines(path)
    width: int | None = None
    for line_no, fields, err, text in lines:
        if err is None and width is None:
            if len(fields) not in (N_VOTES + 1, N_VOTES + 2):
                raise InputError(
                    f"{path}:{line_no}: expected 12 columns ({LABEL_CSV_COLUMNS}) or 11 (no face box), "
                    f"found {len(fields)}: is this a FER+ label.csv?"
                )
            width = len(fields)
        if err is None and len(fields) != width:
            err = f"expected {width} columns ({LABEL_CSV_COLUMNS}), found {len(fields)} (truncated or malformed row)"
        name = fields[0].strip() if err is None else ""
        if err is None:
            err = name_problem(name)
        box = None
        if err is None and width == N_VOTES + 2:
            box, err = _parse_box(fields[1])
        votes = None
        if err is None:
            votes, err = parse_votes(fields[width - N_VOTES :])
        if err is not None:
            rejects.add(err, source_file=src, row=line_no, image_path=f"{folder}/{name}" if name else None, raw=text)
            continue
        rows.add(folder=folder, name=name, split=SPLIT_OF_FOLDER[folder], source_split=folder,
                 source_label=",".join(fields[width - N_VOTES :]), votes=votes, box=box,
                 source_file=src, line=line_no)
    return len(lines)


@functools.lru_cache(maxsize=1024)
def _parse_box(text: str) -> tuple[tuple[float, float, float, float] | None, str | None]:
    m = _BOX_RE.match(text.strip())
    if not m:
        return None, f"face box {text!r} is not '(left, top, right, bottom)'"
    left, top, right, bottom = (int(g) for g in m.groups())
    if right <= left or bottom <= top or left < 0 or top < 0:
        return None, f"face box {text!r} is empty or negative"
    return (float(left), float(top), float(right - left), float(bottom - top)), None


def ingest_folders(root: Path, ferplus_csv: Path | None) -> tuple[Rows, Rejects, list[str], dict[str, Any]]:
    """Read every split folder's label.csv: (rows, rejects, notes, provenance); compared with ``ferplus_csv`` if given."""
    rows, rejects, notes = Rows(), Rejects(DATASET), []
    source: dict[str, Any] = {"layout": "folders", "label_files": []}
    unlisted_total, unlisted_examples = 0, []
    for folder in FOLDER_OF_USAGE.values():
        folder_path = root / folder
        label_path = folder_path / LABEL_FILE
        if not folder_path.is_dir():
            notes.append(f"{folder}/ not found: no {SPLIT_OF_FOLDER[folder]} split")
            continue
        if not label_path.exists():
            pngs = sum(1 for e in os.scandir(folder_path) if e.name.lower().endswith(".png"))
            notes.append(f"{folder}/ has no {LABEL_FILE}: its {pngs:,} PNGs were not ingested")
            source["missing_label_files"] = source.get("missing_label_files", []) + [folder]
            continue
        start = len(rows)
        _read_label_csv(label_path, folder, root, rows, rejects)
        source["label_files"].append(source_name(label_path, root))
        listed = set(rows.name[start:])
        listed.update(r["image_path"].split("/", 1)[1] for r in rejects.rows
                      if r["image_path"] and r["image_path"].startswith(folder + "/"))
        unlisted = sorted(e.name for e in os.scandir(folder_path)
                          if e.name.lower().endswith(".png") and e.name not in listed)
        unlisted_total += len(unlisted)
        unlisted_examples += [f"{folder}/{n}" for n in unlisted[:3]]
    if unlisted_total:
        notes.append(
            f"{unlisted_total:,} PNGs have no {LABEL_FILE} row and were not ingested "
            f"(e.g. {', '.join(unlisted_examples[:3])})"
        )
        source["unlisted_pngs"] = unlisted_total
    if not source["label_files"]:
        raise InputError(f"{root}: no FER2013Train/, FER2013Valid/ or FER2013Test/ with a {LABEL_FILE}")
    if ferplus_csv is not None:
        notes += _compare_with_ferplus_csv(rows, read_ferplus_csv(ferplus_csv), root, source)
    return rows, rejects, notes, source


def _compare_with_ferplus_csv(rows: Rows, new: FerPlusCsv, root: Path, source: dict[str, Any]) -> list[str]:
    """Flag and count every disagreement between label.csv rows and fer2013new.csv."""
    src = source_name(new.path, root)
    by_name = new.lines_by_name()
    conflicts = earlier = split_conflicts = absent = 0
    duplicates: dict[str, list[int]] = {n: idx for n, idx in by_name.items() if len(idx) > 1}
    earlier_examples: list[str] = []
    for i, name in enumerate(rows.name):
        idx = by_name.get(name)
        if not idx:
            absent += 1
            continue
        last = new.rows[idx[-1]]
        flags = rows.extra_flags[i]
        if len(idx) > 1:
            flags.append(FLAG_DUPLICATE)
        if rows.votes[i] != last.votes:
            match = [new.rows[j] for j in idx[:-1] if new.rows[j].votes == rows.votes[i]]
            if match:
                flags.append(FLAG_EARLIER_ROW)
                earlier += 1
                earlier_examples.append(
                    f"{rows.image_path[i]}: {LABEL_FILE} has the votes of {src} line {match[0].line}, but "
                    f"generate_training_data.py wrote the pixels of the later line {last.line} "
                    f"(votes {last.raw_votes}) into the PNG"
                )
            else:
                flags.append(FLAG_CONFLICT)
                conflicts += 1
        if SPLIT_OF_USAGE.get(last.usage) != rows.split[i]:
            flags.append(FLAG_SPLIT_CONFLICT)
            split_conflicts += 1
    bad_rows = [r for r in new.rows if r.error]
    notes = [
        f"{LABEL_FILE} votes are used (the RAN lists follow them); {src} disagrees on the votes of "
        f"{conflicts:,} images (flag {FLAG_CONFLICT})"
    ]
    if duplicates:
        dup_text = ", ".join(
            f"{n} (lines {', '.join(str(new.rows[j].line) for j in idx)})" for n, idx in sorted(duplicates.items())
        )
        notes.append(
            f"{src} names {len(duplicates):,} images on more than one row: {dup_text}; the PNG holds the "
            f"later row's pixels (flag {FLAG_DUPLICATE})"
        )
    notes += [f"{e} (flag {FLAG_EARLIER_ROW})" for e in earlier_examples[:10]]
    if split_conflicts:
        notes.append(f"{split_conflicts:,} images are in a different split in {src} (flag {FLAG_SPLIT_CONFLICT})")
    if absent:
        notes.append(f"{absent:,} {LABEL_FILE} images are not named in {src}")
    if bad_rows:
        r = bad_rows[0]
        notes.append(
            f"{len(bad_rows):,} rows of {src} are unreadable and were not compared; first: line {r.line}: {r.error}"
        )
    source["fer2013new"] = {
        "file": src,
        "votes_conflicts": conflicts,
        "duplicate_names": {n: [new.rows[j].line for j in idx] for n, idx in sorted(duplicates.items())},
        "votes_from_earlier_row": earlier,
        "split_conflicts": split_conflicts,
        "not_named": absent,
        "unreadable_rows": len(bad_rows),
    }
    return notes
