"""FERPlus ingest, from either of the two layouts FER+ users have on disk.

* ``folders``: what FER+'s ``generate_training_data.py`` produces: ``FER2013Train/``,
  ``FER2013Valid/``, ``FER2013Test/``, each with PNGs and a headerless ``label.csv`` (image name,
  optional face box ``"(left, top, right, bottom)"``, 10 vote counts).
* ``csv``: the raw pair ``fer2013.csv`` (emotion, pixels, Usage) + ``fer2013new.csv`` (Usage, Image
  name, 10 votes), joined by row order. The 48x48 pixels are written as PNGs exactly as
  ``generate_training_data.py`` writes them (same folders, names and bytes), so both layouts give
  the same ``sample_id`` for the same image.

Labels are the majority vote (argmax over the 10 FER+ votes, ties to the first column in FER+
order, flagged ``tie``); an ``unknown`` or ``NF`` majority gives no canonical label (flags
``unknown_majority`` / ``nf_majority``), as the FER+ paper excludes those images. All 10 counts are
kept in ``label_votes``; :func:`fercurate.votes.vote_targets` turns them into training targets.

When both ``label.csv`` and ``fer2013new.csv`` are present, ``label.csv`` is used (the RAN lists
follow it) and every disagreement with ``fer2013new.csv`` is flagged and counted, never hidden.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import io
import os
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fercurate import votes as vote_rules
from fercurate.atomic import storage_error
from fercurate.compat import moved_module
from fercurate.errors import InputError
from fercurate.ingest.paths import require_dir
from fercurate.ingest.rejects import Rejects, is_utf8_name
from fercurate.ingest.options import IngestOptions
from fercurate.ingest.result import IngestResult, Parsed, finish
from fercurate.parallel import map_chunks
from fercurate.schema import BBOX_TYPE, CANONICAL_LABELS, FERPLUS_VOTE_COLUMNS
from fercurate.workspace import manifest_name

# The vote rules moved to fercurate.votes (the trainer and the quality checks use them too).
__getattr__ = moved_module(__name__, "fercurate.votes", {"FERPLUS_VOTE_COLUMNS": "fercurate.schema:FERPLUS_VOTE_COLUMNS"})

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

IMAGE_SIDE = 48
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
_BOX_RE = re.compile(r"^\(\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*\)$")
LABEL_CSV_COLUMNS = "image name, face box, 10 votes (" + ", ".join(FERPLUS_VOTE_COLUMNS) + ")"

FLAG_CONFLICT = "votes_conflict:fer2013new"
FLAG_DUPLICATE = "duplicate_name:fer2013new"
FLAG_EARLIER_ROW = "votes_from_earlier_row:fer2013new"
FLAG_SPLIT_CONFLICT = "split_conflict:fer2013new"


# --------------------------------------------------------------------------------------------
# reading CSV text line by line (bad bytes or a bad row never hide the rest of the file)


def _csv_lines(path: Path) -> list[tuple[int, list[str] | None, str | None, str]]:
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
class _FerPlusRow:
    line: int
    usage: str
    name: str
    votes: list[int] | None
    raw_votes: str
    error: str | None = None


@dataclass
class _FerPlusCsv:
    """fer2013new.csv, parsed: one entry per data row (row index = position in fer2013.csv)."""

    path: Path
    rows: list[_FerPlusRow] = field(default_factory=list)

    def lines_by_name(self) -> dict[str, list[int]]:
        """Image name -> indices of the valid rows that name it, in file order."""
        out: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(self.rows):
            if r.error is None and r.name:
                out[r.name].append(i)
        return out


def read_ferplus_csv(path: str | os.PathLike) -> _FerPlusCsv:
    """Parse fer2013new.csv (header: Usage, Image name, 10 vote columns), keeping bad rows with a reason."""
    path = Path(path)
    lines = _csv_lines(path)
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
    result = _FerPlusCsv(path)
    for line_no, fields, err, text in lines[1:]:
        if err is None and len(fields) != width:
            err = f"expected {width} columns as in the header, found {len(fields)} (truncated or malformed row)"
        if err is not None:
            result.rows.append(_FerPlusRow(line_no, "", "", None, text, err))
            continue
        vote_fields = [fields[i] for i in idx[2:]]
        votes, verr = vote_rules.parse_votes(vote_fields)
        result.rows.append(
            _FerPlusRow(line_no, fields[idx[0]].strip(), fields[idx[1]].strip(), votes, ",".join(vote_fields), verr)
        )
    return result


# --------------------------------------------------------------------------------------------
# columns shared by both layouts


@dataclass
class _Rows:
    """Accepted rows of either layout, before the shared checks of ``fercurate.ingest.result.finish``."""

    sample_id: list[str] = field(default_factory=list)
    image_path: list[str] = field(default_factory=list)
    split: list[str] = field(default_factory=list)
    source_split: list[str] = field(default_factory=list)
    source_label: list[str] = field(default_factory=list)
    votes: list[list[int]] = field(default_factory=list)
    box: list[tuple[float, float, float, float] | None] = field(default_factory=list)
    extra_flags: list[list[str]] = field(default_factory=list)
    source_file: list[str] = field(default_factory=list)
    line: list[int] = field(default_factory=list)
    name: list[str] = field(default_factory=list)

    def add(self, *, folder: str, name: str, split: str, source_split: str, source_label: str,
            votes: list[int], box: tuple[float, float, float, float] | None, source_file: str, line: int) -> None:
        rel = f"{folder}/{name}"
        self.sample_id.append(f"{DATASET}/{rel}")
        self.image_path.append(rel)
        self.split.append(split)
        self.source_split.append(source_split)
        self.source_label.append(source_label)
        self.votes.append(votes)
        self.box.append(box)
        self.extra_flags.append([])
        self.source_file.append(source_file)
        self.line.append(line)
        self.name.append(name)

    def __len__(self) -> int:
        return len(self.sample_id)

    def columns(self) -> dict[str, Any]:
        n = len(self)
        votes = np.asarray(self.votes, dtype=np.int16).reshape(n, vote_rules.N_VOTES)
        label_id, top_index, tie = vote_rules.majority_labels(votes)
        flags = vote_rules.vote_flags(votes, top_index, tie)
        for f, extra in zip(flags, self.extra_flags):
            f.extend(extra)
        offsets = pa.array(np.arange(0, (n + 1) * vote_rules.N_VOTES, vote_rules.N_VOTES, dtype=np.int32))
        label_votes = pa.ListArray.from_arrays(offsets, pa.array(votes.reshape(-1)))
        has_box = np.array([b is not None for b in self.box], dtype=bool)
        coords = np.array([b if b is not None else (0, 0, 0, 0) for b in self.box], dtype=np.float32).reshape(n, 4)
        bbox = pa.StructArray.from_arrays(
            [pa.array(coords[:, k]) for k in range(4)],
            fields=list(BBOX_TYPE),
            mask=pa.array(~has_box),
        )
        names = np.array(CANONICAL_LABELS + (None,), dtype=object)
        return {
            "sample_id": self.sample_id,
            "dataset": [DATASET] * n,
            "split": self.split,
            "source_split": self.source_split,
            "image_path": self.image_path,
            "label": names[label_id].tolist(),
            "label_id": label_id,
            "source_label": self.source_label,
            "label_votes": label_votes,
            "bbox": bbox,
            "flags": pa.array([f or None for f in flags], type=pa.list_(pa.string())),
        }


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _name_problem(name: str) -> str | None:
    if not name:
        return "empty image name"
    if "/" in name or "\\" in name:
        return f"image name {name!r} must be a file name, not a path"
    if name in (".", "..") or "\x00" in name:
        return f"image name {name!r} is a reserved name, not a file name"
    return None


# --------------------------------------------------------------------------------------------
# layout (a): FER2013{Train,Valid,Test}/label.csv + PNGs


def _read_label_csv(path: Path, folder: str, root: Path, rows: _Rows, rejects: Rejects) -> int:
    """Parse one label.csv into ``rows``; returns the number of lines read."""
    src = _rel(path, root)
    lines = _csv_lines(path)
    width: int | None = None
    for line_no, fields, err, text in lines:
        if err is None and width is None:
            if len(fields) not in (vote_rules.N_VOTES + 1, vote_rules.N_VOTES + 2):
                raise InputError(
                    f"{path}:{line_no}: expected 12 columns ({LABEL_CSV_COLUMNS}) or 11 (no face box), "
                    f"found {len(fields)}: is this a FER+ label.csv?"
                )
            width = len(fields)
        if err is None and len(fields) != width:
            err = f"expected {width} columns ({LABEL_CSV_COLUMNS}), found {len(fields)} (truncated or malformed row)"
        name = fields[0].strip() if err is None else ""
        if err is None:
            err = _name_problem(name)
        box = None
        if err is None and width == vote_rules.N_VOTES + 2:
            box, err = _parse_box(fields[1])
        votes = None
        if err is None:
            votes, err = vote_rules.parse_votes(fields[width - vote_rules.N_VOTES :])
        if err is not None:
            rejects.add(err, source_file=src, row=line_no, image_path=f"{folder}/{name}" if name else None, raw=text)
            continue
        rows.add(folder=folder, name=name, split=SPLIT_OF_FOLDER[folder], source_split=folder,
                 source_label=",".join(fields[width - vote_rules.N_VOTES :]), votes=votes, box=box,
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


def _ingest_folders(root: Path, ferplus_csv: Path | None) -> tuple[_Rows, Rejects, list[str], dict[str, Any]]:
    rows, rejects, notes = _Rows(), Rejects(DATASET), []
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
        source["label_files"].append(_rel(label_path, root))
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


def _compare_with_ferplus_csv(rows: _Rows, new: _FerPlusCsv, root: Path, source: dict[str, Any]) -> list[str]:
    """Flag and count every disagreement between label.csv rows and fer2013new.csv."""
    src = _rel(new.path, root)
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


# --------------------------------------------------------------------------------------------
# layout (b): fer2013.csv + fer2013new.csv -> PNGs written as generate_training_data.py does


@dataclass
class _PixelTask:
    """Where one image's pixel text is in fer2013.csv and where its PNG goes."""

    csv_path: str
    offset: int
    length: int
    out_path: str


def _png_chunk(tasks: Sequence[_PixelTask]) -> list[tuple[str | None, str | None]]:
    """Decode pixel fields and write PNGs atomically; (error, sha256) per task."""
    from PIL import Image

    out: list[tuple[str | None, str | None]] = []
    if not tasks:
        return out
    made: set[str] = set()
    with open(tasks[0].csv_path, "rb") as fh:
        for t in tasks:
            fh.seek(t.offset)
            pixels, err = decode_pixels(fh.read(t.length))
            if err is not None:
                out.append((err, None))
                continue
            buf = io.BytesIO()
            # Exactly generate_training_data.py's call: 8-bit grayscale PNG, zlib level 0.
            Image.fromarray(pixels).save(buf, format="PNG", compress_level=0)
            data = buf.getvalue()
            folder = os.path.dirname(t.out_path)
            try:
                if folder not in made:
                    os.makedirs(folder, exist_ok=True)
                    made.add(folder)
                _write_file_atomic(t.out_path, data)
            except OSError as exc:
                raise storage_error(t.out_path, exc) from exc
            out.append((None, hashlib.sha256(data).hexdigest()))
    return out


def _write_file_atomic(path: str, data: bytes) -> None:
    """Temp file + rename (a reader never sees half a PNG).

    No fsync per file: at ~5 ms each it would dominate writing 35k tiny PNGs, and ext4 flushes a
    file's data before a rename that replaces it (auto_da_alloc).
    """
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def decode_pixels(field: bytes) -> tuple[np.ndarray | None, str | None]:
    """A fer2013.csv ``pixels`` field -> (48, 48) uint8, or the reason it is unusable."""
    field = field.strip().strip(b'"').strip()
    if field.translate(None, b"0123456789 ") == b"":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = np.fromstring(field, dtype=np.int64, sep=" ")  # noqa: NPY201 - text mode is supported
        count = len(values)  # only digits and spaces: every token was parsed
        if count == N_PIXELS:
            if values.max(initial=0) > 255:
                bad = values[values > 255][0]
                return None, f"pixel value {bad} is out of range 0..255"
            return values.astype(np.uint8).reshape(IMAGE_SIDE, IMAGE_SIDE), None
        return None, f"pixels field has {count:,} values, expected {N_PIXELS:,} (48x48)"
    try:
        text = field.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"pixels field is not valid UTF-8 (byte {exc.start + 1})"
    tokens = text.split()
    for tok in tokens:
        if not (tok.isascii() and tok.isdigit()):
            kind = "negative" if tok.startswith("-") and tok[1:].isdigit() else "not an integer"
            return None, f"pixel value {tok!r} is {kind}"
    return None, f"pixels field has {len(tokens):,} values, expected {N_PIXELS:,} (48x48)"


def _find_fer2013_csv(root: Path) -> Path:
    exact = root / FER2013_CSV
    if exact.exists():
        return exact
    candidates = sorted(
        p for p in root.glob("fer2013*.csv")
        if p.name != FERPLUS_CSV and not p.name.startswith(("derived_", "."))
    )
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise InputError(f"{root}: no {FER2013_CSV} (the Kaggle file with emotion, pixels, Usage)")
    raise InputError(
        f"{root}: no {FER2013_CSV} and several candidates ({', '.join(p.name for p in candidates)}): "
        "pass the file explicitly"
    )


def _scan_fer2013(path: Path) -> tuple[list[tuple[int, int, int, str | None, str, str | None, str]], int]:
    """Per data line of fer2013.csv: (line, pixel offset, pixel length, usage, emotion, error, raw head).

    Each line is parsed with the ``csv`` module (quoted fields, commas inside quotes, a BOM, CRLF);
    the pixels are decoded later in worker processes, which read them back by offset (so the whole
    file is never held in memory): the pixel field is digits and spaces only, so it appears verbatim
    in the line whether it was quoted or not.
    """
    out = []
    header_cols: list[str] | None = None
    offset = 0
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            start = offset
            offset += len(raw)
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
                start += 3
            body = raw.rstrip(b"\r\n")
            if not body.strip():
                continue
            head = body[:60].decode("utf-8", errors="replace") + ("…" if len(body) > 60 else "")
            # surrogateescape keeps bad bytes in place, so the field they are in can be named
            text = body.decode("utf-8", errors="surrogateescape")
            if header_cols is None and not is_utf8_name(text):
                raise InputError(f"{path}:{line_no}: unreadable header (not valid UTF-8)")
            try:
                fields = next(csv.reader([text], strict=True))
            except csv.Error as exc:
                if header_cols is None:
                    raise InputError(f"{path}:{line_no}: unreadable header (malformed CSV: {exc})") from exc
                out.append((line_no, 0, 0, None, "", f"malformed CSV ({exc})", head))
                continue
            if header_cols is None:
                header_cols = [c.strip().lower() for c in fields]
                missing = [c for c in ("emotion", "pixels", "usage") if c not in header_cols]
                if missing:
                    raise InputError(
                        f"{path}:{line_no}: missing column(s) {missing} (found {header_cols}); "
                        "expected the Kaggle fer2013.csv header emotion,pixels,Usage"
                    )
                i_emotion, i_pixels, i_usage = (header_cols.index(c) for c in ("emotion", "pixels", "usage"))
                continue
            if len(fields) != len(header_cols):
                out.append((line_no, 0, 0, None, "", f"expected {len(header_cols)} columns (emotion, pixels, "
                            f"Usage), found {len(fields)} (truncated or malformed row)", head))
                continue
            pixels = fields[i_pixels].strip().encode("utf-8", errors="surrogateescape")
            at = body.find(pixels)
            usage, emotion = fields[i_usage].strip(), fields[i_emotion].strip()
            err = None
            pix_start, pix_len = (start + at, len(pixels)) if at >= 0 else (0, 0)
            if not (is_utf8_name(usage) and is_utf8_name(emotion)):
                err = "not valid UTF-8 in the emotion or Usage field"
            elif at < 0:
                err = "pixels field is not space-separated numbers"
            elif usage not in FOLDER_OF_USAGE:
                err = f"unknown Usage {usage!r} (expected {', '.join(FOLDER_OF_USAGE)})"
            elif not (emotion.isascii() and emotion.isdigit() and int(emotion) <= 6):
                err = f"unknown FER2013 emotion code {emotion!r} (expected 0..6)"
            out.append((line_no, pix_start, pix_len, usage, emotion, err, head))
    if header_cols is None:
        raise InputError(f"{path}: empty file (expected the header emotion,pixels,Usage)")
    return out, offset


def _ingest_csv(
    fer_path: Path, new_path: Path, images_out: Path, root: Path, workers: int | None, created: list[str]
) -> tuple[_Rows, Rejects, list[str], dict[str, Any], dict[str, Any]]:
    """Parse the csv pair and write the PNGs; ``created`` gets the PNG paths that did not exist
    before (before any is written), so a failed ingest can remove them and leave no orphans."""
    rows, rejects, notes = _Rows(), Rejects(DATASET), []
    fer_src, new_src = _rel(fer_path, root), _rel(new_path, root)
    new = read_ferplus_csv(new_path)
    fer_rows, _ = _scan_fer2013(fer_path)
    all_names = Counter(r.name for r in new.rows if r.error is None and r.name)

    dropped = 0
    winners: dict[str, int] = {}  # image name -> index into fer_rows of the row that wins
    for i, (line, _, _, usage, _, err, head) in enumerate(fer_rows):
        if i >= len(new.rows):
            rejects.add(f"no {new_src} row at this position ({new_src} has {len(new.rows):,} data rows; "
                        "the files are joined by row order)", source_file=fer_src, row=line, raw=head)
            continue
        plus = new.rows[i]
        if plus.error is None and not plus.name:
            dropped += 1
            rejects.add("dropped by FER+ (no image name)", source_file=new_src, row=plus.line,
                        raw=f"{plus.usage},,{plus.raw_votes}")
            continue
        if plus.error is not None:
            rejects.add(plus.error, source_file=new_src, row=plus.line, raw=plus.raw_votes)
            continue
        if err is not None:
            rejects.add(err, source_file=fer_src, row=line, image_path=plus.name, raw=head)
            continue
        problem = _name_problem(plus.name)
        if problem:
            rejects.add(problem, source_file=new_src, row=plus.line, raw=plus.name)
            continue
        if plus.usage != usage:
            rejects.add(f"Usage {usage!r} in {fer_src} line {line} but {plus.usage!r} in {new_src} line "
                        f"{plus.line}: the files do not line up", source_file=fer_src, row=line,
                        image_path=plus.name, raw=head)
            continue
        if plus.name in winners:
            j = winners[plus.name]
            earlier = new.rows[j]
            rejects.add(
                f"duplicate image name: {new_src} lines {earlier.line} and {plus.line} both name {plus.name}; "
                f"the later row (line {plus.line}) wins, as in generate_training_data.py",
                source_file=new_src, row=earlier.line, image_path=f"{FOLDER_OF_USAGE[new.rows[j].usage]}/{plus.name}",
                raw=f"{earlier.usage},{earlier.name},{earlier.raw_votes}",
            )
        winners[plus.name] = i

    order = sorted(winners.values())
    tasks = []
    for i in order:
        line, pix_off, pix_len, usage, _, _, _ = fer_rows[i]
        plus = new.rows[i]
        folder = FOLDER_OF_USAGE[usage]
        tasks.append(_PixelTask(str(fer_path), pix_off, pix_len, str(images_out / folder / plus.name)))
    existing: set[str] = set()
    for folder in {os.path.dirname(t.out_path) for t in tasks}:
        with contextlib.suppress(FileNotFoundError):
            existing.update(os.path.join(folder, f) for f in os.listdir(folder))
    created.extend(t.out_path for t in tasks if t.out_path not in existing)
    sha: list[str | None] = []
    written = 0
    results = []
    for chunk in map_chunks(_png_chunk, tasks, workers=workers, chunk_size=512, desc="write FER+ PNGs"):
        results.extend(chunk)
    for i, (err, digest) in zip(order, results):
        line, _, _, usage, _, _, head = fer_rows[i]
        plus = new.rows[i]
        folder = FOLDER_OF_USAGE[usage]
        if err is not None:
            rejects.add(err, source_file=fer_src, row=line, image_path=f"{folder}/{plus.name}", raw=head)
            continue
        written += 1
        rows.add(folder=folder, name=plus.name, split=SPLIT_OF_USAGE[usage], source_split=usage,
                 source_label=plus.raw_votes, votes=plus.votes, box=None, source_file=new_src, line=plus.line)
        if all_names[plus.name] > 1:
            rows.extra_flags[-1].append(FLAG_DUPLICATE)
        sha.append(digest)

    source: dict[str, Any] = {
        "layout": "csv",
        "fer2013_csv": str(fer_path),
        "fer2013new_csv": str(new_path),
        "images_written": written,
        "dropped_by_ferplus": dropped,
    }
    if dropped:
        notes.append(f"{dropped:,} rows dropped by FER+ (no image name in {new_src}) were excluded (in the rejects)")
    dup_names = sorted(n for n, c in all_names.items() if c > 1)
    if dup_names:
        present = [n for n in dup_names if n in winners]
        notes.append(
            f"{new_src} names {len(dup_names):,} images on more than one row ({', '.join(dup_names[:6])}); "
            + (f"{len(present):,} of them are among the rows ingested here: the later row wins, as in "
               f"generate_training_data.py (flag {FLAG_DUPLICATE})" if present
               else "none of them is among the rows ingested here")
        )
        source["duplicate_names"] = dup_names
    n_fer, n_new = len(fer_rows), len(new.rows)
    if n_new > n_fer:
        rest = new.rows[n_fer:]
        named = sum(1 for r in rest if r.error is None and r.name)
        notes.append(
            f"{fer_src} has {n_fer:,} data rows, {new_src} {n_new:,}: {new_src} lines {rest[0].line:,}-"
            f"{rest[-1].line:,} ({named:,} named images) have no pixels here and were not ingested "
            "(an incomplete fer2013.csv, not bad rows, so they are not in the rejects)"
        )
        source["ferplus_rows_without_pixels"] = {"rows": len(rest), "named": named,
                                                 "lines": [rest[0].line, rest[-1].line]}
    extra = {"width": None, "height": None, "sha256": sha}
    return rows, rejects, notes, source, extra


# --------------------------------------------------------------------------------------------
# entry point


def detect_layout(root: str | os.PathLike) -> str:
    """``folders`` if any FER2013{Train,Valid,Test}/label.csv exists, else ``csv`` if fer2013new.csv does."""
    root = Path(root)
    if any((root / f / LABEL_FILE).exists() for f in FOLDER_OF_USAGE.values()):
        return "folders"
    if (root / FERPLUS_CSV).exists():
        return "csv"
    raise InputError(
        f"{root}: not a FERPlus folder: expected FER2013Train/ FER2013Valid/ FER2013Test/ with label.csv "
        f"(generate_training_data.py output), or {FER2013_CSV} + {FERPLUS_CSV}"
    )


def ingest(
    path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    layout: str = "auto",
    images_out: str | os.PathLike | None = None,
    fer2013_csv: str | os.PathLike | None = None,
    ferplus_csv: str | os.PathLike | None = None,
    options: IngestOptions | None = None,
    **shared: Any,
) -> IngestResult:
    """Ingest FERPlus from ``path`` into a manifest (+ rejects table); see the module docstring.

    ``images_out`` (csv layout) is where the PNGs are written and becomes the manifest's root
    (default: ``data/ferplus`` in the workspace). ``fer2013_csv`` / ``ferplus_csv`` override the
    files looked up in ``path``. ``options`` (or its fields as keywords: ``workers=2`` ...) are the
    options every ingest shares; the manifest is named after its file unless ``name`` says otherwise.
    """
    options = IngestOptions.of(options, **shared)
    root = require_dir(path, "FERPlus root")
    if layout not in ("auto", "folders", "csv"):
        raise InputError(f"unknown FERPlus layout {layout!r} (auto, folders, csv)")
    if layout == "auto":
        layout = detect_layout(root)
    out_path = options.manifest_path(out, DATASET)
    options = dataclasses.replace(options, name=options.name or manifest_name(out_path))
    new_path = Path(ferplus_csv) if ferplus_csv else root / FERPLUS_CSV
    if ferplus_csv and not new_path.exists():
        raise InputError(f"{new_path}: {FERPLUS_CSV} not found")
    extra: dict[str, Any] = {}
    created: list[str] = []
    if layout == "folders":
        rows, rejects, notes, source = _ingest_folders(root, new_path if new_path.exists() else None)
        data_root = root
    else:
        if not new_path.exists():
            raise InputError(f"{root}: no {FERPLUS_CSV} (needed for the csv layout)")
        fer_path = Path(fer2013_csv) if fer2013_csv else _find_fer2013_csv(root)
        if not fer_path.exists():
            raise InputError(f"{fer_path}: {FER2013_CSV} not found")
        if fer_path.name != FER2013_CSV:
            notes_prefix = [f"using {fer_path.name} as {FER2013_CSV}"]
        else:
            notes_prefix = []
        data_root = Path(images_out) if images_out else options.current_workspace().root / "data" / DATASET
        data_root.mkdir(parents=True, exist_ok=True)
        data_root = data_root.resolve()
        try:
            rows, rejects, notes, source, extra = _ingest_csv(fer_path, new_path, data_root, root, options.workers, created)
        except BaseException:
            _remove(created)
            raise
        notes = notes_prefix + notes
        source["input_root"] = str(root)
    source["label_mode"] = "majority: argmax over the 10 FER+ votes, ties to the first in FER+ order"
    source["notes"] = notes
    columns = rows.columns() if len(rows) else {"sample_id": [], "image_path": []}
    if len(rows) and extra.get("sha256") is not None:
        columns["sha256"] = extra["sha256"]
        columns["width"] = np.full(len(rows), IMAGE_SIDE, dtype=np.int32)
        columns["height"] = np.full(len(rows), IMAGE_SIDE, dtype=np.int32)
    parsed = Parsed(DATASET, columns, rejects, source=source, notes=notes, row_numbers=rows.line,
                    source_files=rows.source_file)
    try:
        return finish(parsed, root=data_root, out=out_path, options=options)
    except BaseException:
        _remove(created)  # PNGs this run wrote for a manifest that was not written are orphans
        raise


def _remove(paths: list[str]) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
