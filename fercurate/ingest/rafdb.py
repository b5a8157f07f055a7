"""RAF-DB (basic) ingest: ``EmoLabel/list_patition_label.txt`` -> a manifest.

Supported layout (the RAF-DB "basic" release)::

    <root>/EmoLabel/list_patition_label.txt         lines "train_00001.jpg 5" (labels 1-7)
    <root>/Image/aligned/train_00001_aligned.jpg    (images="aligned", the default: 100x100 faces)
    <root>/Image/original/train_00001.jpg           (images="original")
    <root>/Annotation/manual/train_00001_manu_attri.txt     optional: 5 landmark lines "x<TAB>y"
                                                             (eyes, nose, mouth corners), then
                                                             gender, race, age lines (not used)
    <root>/Annotation/boundingbox/train_00001_boundingbox.txt   optional: "x1 y1 x2 y2"

Labels 1-7 = Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral (``source_label`` keeps the
digit). The split comes from the name prefix (``train_`` -> train, ``test_`` -> test). Landmarks and
boxes are in original-image coordinates, so they are attached only with images="original" (a missing
or unreadable annotation file leaves the row's landmarks/bbox null, flagged and counted in a note).
Not read: ``Annotation/auto`` (37 automatic landmarks). The RAF-DB **compound** release (the same file
names, labels 1-11, images ``train_0001`` / ``test_001``) is recognised and refused: its labels mean
other expressions (compound 1 is Happily Surprised, basic 1 Surprise), so reading it as basic would
mislabel every face.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fercurate.errors import InputError
from fercurate.images import IMAGE_SUFFIXES
from fercurate.ingest.options import IngestOptions
from fercurate.ingest.paths import require_dir, unsafe_path_reason
from fercurate.ingest.rejects import Rejects
from fercurate.ingest.result import IngestResult, Parsed, finish
from fercurate.schema import BBOX_TYPE, RAFDB_LABELS, label_id

DATASET = "rafdb"
LIST_FILE = "EmoLabel/list_patition_label.txt"
IMAGE_DIRS = {"aligned": "Image/aligned", "original": "Image/original"}
MANUAL_DIR = "Annotation/manual"
BBOX_DIR = "Annotation/boundingbox"
SPLIT_PREFIXES = {"train_": "train", "test_": "test"}
SOURCE_NAMES = {1: "Surprise", 2: "Fear", 3: "Disgust", 4: "Happiness", 5: "Sadness", 6: "Anger", 7: "Neutral"}
N_MANUAL_POINTS = 5
# RAF-DB compound (Li, Deng & Du, CVPR 2017): 11 classes, 4-digit train / 3-digit test numbers.
COMPOUND_LABELS = range(8, 12)
COMPOUND_NAME = re.compile(r"(train_\d{4}|test_\d{3})\.\w+")
BASIC_NAME = re.compile(r"(train_\d{5}|test_\d{4})\.\w+")


@dataclass
class _Rows:
    image_path: list[str] = field(default_factory=list)
    split: list[str] = field(default_factory=list)
    label: list[int] = field(default_factory=list)
    stem: list[str] = field(default_factory=list)
    line: list[int] = field(default_factory=list)
    named: set[str] = field(default_factory=set)  # the image file of every list line naming one, rejected or not


def ingest(
    root: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    images: str = "aligned",
    options: IngestOptions | None = None,
    **shared: Any,
) -> IngestResult:
    """Ingest RAF-DB basic under ``root``; ``images`` picks ``Image/aligned`` or ``Image/original``.

    ``options`` (or its fields as keywords: ``verify=True`` ...) are the options every ingest shares.
    """
    options = IngestOptions.of(options, **shared)
    if images not in IMAGE_DIRS:
        raise InputError(f"images must be 'aligned' or 'original', not {images!r}")
    root = require_dir(root, "RAF-DB basic root")
    list_path = root / LIST_FILE
    if not list_path.is_file():
        raise InputError(f"{list_path}: RAF-DB label list not found (expected {LIST_FILE} under the root)")
    image_dir = root / IMAGE_DIRS[images]
    if not image_dir.is_dir():
        other = "original" if images == "aligned" else "aligned"
        hint = f"; try images={other!r}" if (root / IMAGE_DIRS[other]).is_dir() else ""
        raise InputError(f"{image_dir}: image folder not found{hint}")

    t0 = time.perf_counter()
    rejects = Rejects(DATASET)
    notes: list[str] = []
    rows = _parse_list(list_path, images, rejects, notes)
    n = len(rows.line)
    columns: dict[str, Any] = {
        "sample_id": [f"{DATASET}/{p}" for p in rows.image_path],
        "dataset": [DATASET] * n,
        "split": rows.split,
        "source_split": rows.split,
        "image_path": rows.image_path,
        "label": [RAFDB_LABELS[v] for v in rows.label],
        "label_id": np.array([label_id(RAFDB_LABELS[v]) for v in rows.label], dtype=np.int8),
        "source_label": [str(v) for v in rows.label],
    }
    annotation_dirs = [d for d in (MANUAL_DIR, BBOX_DIR) if (root / d).is_dir()]
    if images == "original":
        columns.update(_annotations(root, rows.stem, notes))
    elif annotation_dirs:
        notes.append(
            f"{' and '.join(annotation_dirs)}: in original-image coordinates, not attached to aligned "
            "images (use images='original' to keep them)"
        )
    extra = _unlisted_images(image_dir, rows.named)
    if extra:
        notes.append(f"{IMAGE_DIRS[images]}: {extra:,} image file(s) not in {Path(LIST_FILE).name} (ignored)")
    parse_s = time.perf_counter() - t0

    parsed = Parsed(DATASET, columns, rejects, source={"layout": f"{LIST_FILE} + {IMAGE_DIRS[images]}/", "images": images},
                    notes=notes, row_numbers=rows.line, source_files=[str(list_path)] * n, timings={"parse": parse_s})
    return finish(parsed, root=root, out=out, options=options)


def _parse_list(path: Path, images: str, rejects: Rejects, notes: list[str]) -> _Rows:
    """Lines ``<name> <label>`` -> rows; bad lines become rejects naming the line."""
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM is not part of the first name
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
        ends_mid_line = False
    else:
        ends_mid_line = True
    rows = _Rows()
    blank = 0
    compound = _Compound()
    for number, raw in enumerate(lines, start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            blank += 1
            continue

        def bad(reason: str, raw: bytes = raw, number: int = number) -> None:
            rejects.add(
                reason,
                source_file=str(path),
                row=number,
                raw=raw.decode("utf-8", errors="backslashreplace"),
            )

        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad(f"non-UTF-8 bytes: byte {exc.start} of the line")
            continue
        fields = text.split()
        if fields:
            stem = fields[0].rsplit(".", 1)[0]
            rows.named.add(f"{stem}_aligned.jpg" if images == "aligned" else fields[0])
            compound.count(fields)
        if len(fields) != 2:
            last = number == len(lines) and ends_mid_line
            kind = "truncated line" if last else "malformed line"
            bad(f"{kind}: expected '<image> <label>', got {len(fields)} field(s)")
            continue
        name, value = fields
        reason = unsafe_path_reason(name)
        if reason is None and ("/" in name or "\\" in name):
            reason = f"image name {name!r} must be a plain file name"
        if reason:
            bad(reason)
            continue
        try:
            label = int(value)
        except ValueError:
            label = None
        if label not in RAFDB_LABELS:
            bad(f"unknown label: {value!r} (RAF-DB basic uses 1-7)")
            continue
        split = next((s for prefix, s in SPLIT_PREFIXES.items() if name.startswith(prefix)), None)
        if split is None:
            bad(f"unknown split: {name!r} does not start with train_ or test_")
            continue
        stem = name.rsplit(".", 1)[0]
        rel = f"{IMAGE_DIRS[images]}/{stem}_aligned.jpg" if images == "aligned" else f"{IMAGE_DIRS[images]}/{name}"
        rows.image_path.append(rel)
        rows.split.append(split)
        rows.label.append(label)
        rows.stem.append(stem)
        rows.line.append(number)
    compound.refuse(path)
    if blank:
        notes.append(f"{path.name}: {blank} blank line(s) ignored")
    return rows


@dataclass
class _Compound:
    """Evidence that a list is RAF-DB compound's: labels 8-11 and compound-style names (train_0001.jpg)."""

    lines: int = 0
    high_labels: int = 0
    compound_names: int = 0
    basic_names: int = 0
    example: str = ""

    def count(self, fields: list[str]) -> None:
        self.lines += 1
        if len(fields) > 1 and fields[1].isdigit() and int(fields[1]) in COMPOUND_LABELS:
            self.high_labels += 1
        if COMPOUND_NAME.fullmatch(fields[0]):
            self.compound_names += 1
            self.example = self.example or fields[0]
        elif BASIC_NAME.fullmatch(fields[0]):
            self.basic_names += 1

    def refuse(self, path: Path) -> None:
        """Raise when the list is compound's: labels 8-11 and names mostly compound-style (stray labels 8-11 in
        a basic list, or odd names alone, stay rejects)."""
        if not (self.high_labels and self.compound_names and self.compound_names >= self.basic_names):
            return
        raise InputError(
            f"{path}: this is the RAF-DB compound-expression list, not RAF-DB basic: {self.high_labels:,} of its "
            f"{self.lines:,} lines carry labels 8-11 (compound has 11 classes) and {self.compound_names:,} name their "
            f"image like compound's" + (f" ({self.example})" if self.example else "") + " (compound: train_0001.jpg, "
            "test_001.jpg; basic: train_00001.jpg, test_0001.jpg). fercurate ingests RAF-DB basic (labels 1-7) only: "
            "compound's labels mean other expressions (its 1 is Happily Surprised, basic's 1 Surprise), so no row "
            "was read")


def _annotations(root: Path, stems: list[str], notes: list[str]) -> dict[str, Any]:
    """Manual 5-point landmarks and boxes for images="original" (null + flag where unusable)."""
    n = len(stems)
    landmarks: list[list[float] | None] = [None] * n
    boxes: list[dict[str, float] | None] = [None] * n
    flags: list[list[str] | None] = [None] * n
    for folder, suffix, parse, out, what in (
        (MANUAL_DIR, "_manu_attri.txt", _parse_manual, landmarks, "landmarks"),
        (BBOX_DIR, "_boundingbox.txt", _parse_bbox, boxes, "bbox"),
    ):
        directory = root / folder
        if not directory.is_dir():
            notes.append(f"{folder}: not found, no {what}")
            continue
        present = {e.name for e in os.scandir(directory)}
        missing = bad = 0
        first_bad = ""
        for i, stem in enumerate(stems):
            fname = stem + suffix
            if fname not in present:
                missing += 1
                flags[i] = (flags[i] or []) + [f"no_{what}_file"]
                continue
            try:
                out[i] = parse((directory / fname).read_text(encoding="utf-8-sig"))
            except (ValueError, UnicodeDecodeError, OSError) as exc:
                bad += 1
                first_bad = first_bad or f"{folder}/{fname}: {exc}"
                flags[i] = (flags[i] or []) + [f"bad_{what}_file"]
        found = n - missing - bad
        msg = f"{folder}: {what} for {found:,} of {n:,} rows"
        if missing:
            msg += f"; {missing:,} without a file"
        if bad:
            msg += f"; {bad:,} unreadable (first: {first_bad})"
        notes.append(msg)
    return {
        "landmarks": pa.array(landmarks, pa.list_(pa.float32())),
        "bbox": pa.array(boxes, BBOX_TYPE),
        "flags": pa.array(flags, pa.list_(pa.string())),
    }


def _parse_manual(text: str) -> list[float]:
    """``x<TAB>y`` on each of the first 5 lines -> [x0, y0, ..., x4, y4]."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < N_MANUAL_POINTS:
        raise ValueError(f"{len(lines)} lines, expected {N_MANUAL_POINTS} landmark lines")
    values: list[float] = []
    for k, ln in enumerate(lines[:N_MANUAL_POINTS], start=1):
        parts = ln.split()
        if len(parts) != 2:
            raise ValueError(f"line {k}: expected 'x y', got {ln.strip()!r}")
        values.extend(_finite(p, k) for p in parts)
    return values


def _parse_bbox(text: str) -> dict[str, float]:
    """``x1 y1 x2 y2`` -> {x, y, w, h}."""
    parts = text.split()
    if len(parts) != 4:
        raise ValueError(f"expected 'x1 y1 x2 y2', got {text.strip()!r}")
    x1, y1, x2, y2 = (_finite(p, 1) for p in parts)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"empty box {x1:g} {y1:g} {x2:g} {y2:g}")
    return {"x": x1, "y": y1, "w": x2 - x1, "h": y2 - y1}


def _finite(text: str, line: int) -> float:
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(f"line {line}: {text!r} is not a finite number")
    return value


def _unlisted_images(image_dir: Path, listed: set[str]) -> int:
    with os.scandir(image_dir) as it:
        return sum(
            1
            for e in it
            if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES) and e.name not in listed
        )
