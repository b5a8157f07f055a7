"""The ``csv`` layout: ``fer2013.csv`` (emotion, pixels, Usage) + ``fer2013new.csv`` (Usage, Image name, 10 votes).

The two files are joined by row order. The 48x48 pixels are written as PNGs exactly as
``generate_training_data.py`` writes them (same folders, names and bytes), so both layouts give the
same ``sample_id`` for the same image; a failed ingest removes the PNGs it created.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fercurate.atomic import storage_error
from fercurate.errors import InputError
from fercurate.ingest.ferplus.reader import (
    DATASET,
    FER2013_CSV,
    FERPLUS_CSV,
    FLAG_DUPLICATE,
    FOLDER_OF_USAGE,
    SPLIT_OF_USAGE,
    name_problem,
    read_ferplus_csv,
    source_name,
)
from fercurate.ingest.ferplus.rows import Rows
from fercurate.ingest.rejects import Rejects, is_utf8_name
from fercurate.parallel import map_chunks

IMAGE_SIDE = 48
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE


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


def find_fer2013_csv(root: Path) -> Path:
    """``root``'s fer2013.csv, or its one ``fer2013*.csv`` look-alike (a renamed download)."""
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


def ingest_csv(
    fer_path: Path, new_path: Path, images_out: Path, root: Path, workers: int | None, created: list[str]
) -> tuple[Rows, Rejects, list[str], dict[str, Any], dict[str, Any]]:
    """Parse the csv pair and write the PNGs; ``created`` gets the PNG paths that did not exist
    before (before any is written), so a failed ingest can remove them and leave no orphans."""
    rows, rejects, notes = Rows(), Rejects(DATASET), []
    fer_src, new_src = source_name(fer_path, root), source_name(new_path, root)
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
        problem = name_problem(plus.name)
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

