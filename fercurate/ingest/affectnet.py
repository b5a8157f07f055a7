"""AffectNet ingest: the manually annotated file lists -> a manifest, without decoding any image.

Supported layout (as AffectNet's publishers ship it)::

    <root>/Manually_Annotated_file_lists/training.csv     -> split "train"
    <root>/Manually_Annotated_file_lists/validation.csv   -> split "test" (the RAN paper's test set)
    <root>/Manually_Annotated_Images/<subDirectory_filePath>

Both CSVs have the columns ``subDirectory_filePath, face_x, face_y, face_width, face_height,
facial_landmarks, expression, valence, arousal`` (extra columns are ignored; a file without a header
row is read in this order, with a note). ``facial_landmarks`` is 68 ``x;y`` pairs (136 numbers) ->
``landmarks`` x0,y0,x1,y1,... ``expression`` 0-10: 0-7 map to the canonical classes, 8 None,
9 Uncertain and 10 No-Face are kept with a null canonical label (label_id -1). valence/arousal -2
means "not given" -> null. The face box becomes ``bbox``; a box with a non-positive side is kept as
null with the flag ``bad_bbox``.

The training list has ~420k rows, so parsing is vectorised end to end: pyarrow's multithreaded CSV
reader (every column read as text, so one bad value cannot sink the file), Arrow kernels for the
landmark strings and numbers (split + cast, in row chunks on all cores), and numpy lookups for labels.
Python only touches rejected rows, each recorded with its file, line and reason.

Long because the vectorised parse is one pipeline over shared row masks (every column's checks, the
threaded landmark split, the sorted gather), measured on the 420k-row list; it is due to be rewritten
for streaming CSV reading, and is split by stage then rather than twice.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from fercurate.errors import InputError
from fercurate.ingest.options import IngestOptions
from fercurate.ingest.paths import check_paths, require_dir
from fercurate.ingest.rejects import Rejects, invalid_utf8_rows, shown_text
from fercurate.ingest.result import IngestResult, Parsed, finish
from fercurate.parallel import resolve_workers
from fercurate.schema import AFFECTNET_LABELS, AFFECTNET_SOURCE_NAMES, BBOX_TYPE, label_id

DATASET = "affectnet"
LISTS_DIR = "Manually_Annotated_file_lists"
IMAGES_DIR = "Manually_Annotated_Images"
# (file name, manifest split, source split)
LIST_FILES: tuple[tuple[str, str, str], ...] = (
    ("training.csv", "train", "training"),
    ("validation.csv", "test", "validation"),
)
COLUMNS: tuple[str, ...] = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
)
N_LANDMARK_VALUES = 136  # 68 points x (x, y)
NOT_GIVEN = -2.0
_FLOAT_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_INT_RE = r"^[+-]?\d{1,9}$"  # longer digit runs are not labels either (and would overflow)
_CHUNK_ROWS = 32_768

# Lookup tables indexed by the expression code (0-10).
_CODES = np.arange(max(AFFECTNET_LABELS) + 1)
_LABEL_NAMES = sorted({v for v in AFFECTNET_LABELS.values() if v is not None})
_LABEL_INDEX = np.array(
    [_LABEL_NAMES.index(AFFECTNET_LABELS[c]) if AFFECTNET_LABELS[c] else -1 for c in _CODES], dtype=np.int32
)
_LABEL_ID = np.array([label_id(AFFECTNET_LABELS[c]) for c in _CODES], dtype=np.int8)
_SOURCE_NAMES = [AFFECTNET_SOURCE_NAMES[c] for c in _CODES]


@dataclass
class _FileRows:
    """The accepted rows of one list file, as Arrow arrays (before the shared checks)."""

    source_file: str
    split: str
    source_split: str
    lines: np.ndarray
    path: pa.Array
    expression: np.ndarray
    valence: pa.Array
    arousal: pa.Array
    bbox: pa.Array
    bad_bbox: np.ndarray
    landmarks: np.ndarray  # (rows, 136) float32; rows where has_landmarks is false are undefined
    has_landmarks: np.ndarray
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)


def ingest(
    root: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    options: IngestOptions | None = None,
    **shared: Any,
) -> IngestResult:
    """Ingest AffectNet's manually annotated lists under ``root`` into a manifest.

    ``options`` (or its fields as keywords) are the options every ingest shares: ``check_files=False``
    skips the image-existence and pixel-limit (header) checks (CSV-only ingest); ``verify`` decodes
    every image and records width, height and sha256.
    """
    options = IngestOptions.of(options, **shared)
    root = require_dir(root, "AffectNet root")
    lists = root / LISTS_DIR
    if not lists.is_dir():
        raise InputError(f"{lists}: AffectNet file lists folder not found (expected {LISTS_DIR}/ under the root)")
    present = [(lists / f, split, src) for f, split, src in LIST_FILES if (lists / f).is_file()]
    if not present:
        raise InputError(f"{lists}: neither training.csv nor validation.csv found")
    notes = [f"{f}: not found, no {split} split" for f, split, _ in LIST_FILES if not (lists / f).is_file()]

    t0 = time.perf_counter()
    rejects = Rejects(DATASET)
    parts = [_parse_file(path, split, src, rejects, options.workers) for path, split, src in present]
    for p in parts:
        notes.extend(p.notes)
    columns, lines, source_files = _columns(parts)
    parse_s = time.perf_counter() - t0

    no_label = int(np.isin(columns.pop("_expression"), [8, 9, 10]).sum())
    if no_label:
        notes.append(f"{no_label:,} rows of classes 8-10 (None/Uncertain/No-Face) kept with no canonical label")
    if not options.check_files:
        notes.append("image files not checked (check_files off)")
    source = {
        "layout": f"{LISTS_DIR}/{{training,validation}}.csv + {IMAGES_DIR}/",
        "lists": {Path(p.source_file).name: {"split": p.split, "accepted_rows": len(p)} for p in parts},
        "check_files": options.check_files,
    }
    parsed = Parsed(DATASET, columns, rejects, source=source, notes=notes, row_numbers=lines,
                    source_files=source_files, timings={"parse": parse_s})
    return finish(parsed, root=root, out=out, options=options)


# --- reading one CSV ---------------------------------------------------------------------------


def _header(path: Path) -> tuple[list[str], int, list[str]]:
    """Column names, rows to skip (1 with a header) and notes, from the file's first line."""
    with open(path, "rb") as fh:
        first = fh.readline(1 << 20)
    if not first.strip():
        raise InputError(f"{path}: empty file (expected a header with {', '.join(COLUMNS)})")
    first = first.removeprefix(b"\xef\xbb\xbf").rstrip(b"\r\n")
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}:1: header line is not valid UTF-8 (byte {exc.start})") from exc
    names = [c.strip().strip('"') for c in text.split(",")]
    if COLUMNS[0] not in names and len(names) == len(COLUMNS) and ("/" in names[0] or "." in names[0]):
        return list(COLUMNS), 0, [f"{path.name}: no header row; read in the standard column order"]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        which = "column" if len(missing) == 1 else "columns"
        raise InputError(
            f"{path}: missing {which} {', '.join(repr(m) for m in missing)} "
            f"(header has: {', '.join(names)})"
        )
    dupes = sorted({c for c in COLUMNS if names.count(c) > 1})
    if dupes:
        raise InputError(f"{path}: column {dupes[0]!r} appears more than once in the header")
    return names, 1, []


def _read(path: Path, names: list[str], skip: int, threads: bool) -> tuple[pa.Table, list[tuple[int | None, int, str]]]:
    invalid: list[tuple[int | None, int, str]] = []

    def on_invalid(row: Any) -> str:
        invalid.append((row.number, row.actual_columns, row.text))
        return "skip"

    try:
        table = pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(
                column_names=names, skip_rows=skip, use_threads=threads, block_size=1 << 24
            ),
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in names},
                include_columns=list(COLUMNS),
                check_utf8=False,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: cannot parse as CSV ({exc})") from exc
    return table, invalid


def _parse_file(path: Path, split: str, source_split: str, rejects: Rejects, workers: int | None) -> _FileRows:
    names, skip, notes = _header(path)
    table, invalid = _read(path, names, skip, threads=True)
    n = table.num_rows
    pending: list[tuple[int, str, str | None, str | None]] = []  # (line, reason, image_path, raw)
    if invalid:
        # Multithreaded parsing does not know line numbers; re-read on one thread (error path only).
        table, invalid = _read(path, names, skip, threads=False)
        n = table.num_rows
        bad_lines = np.array([num for num, _, _ in invalid], dtype=np.int64)
        lines = np.setdiff1d(np.arange(skip + 1, skip + 1 + n + len(invalid)), bad_lines)
        ends_mid_row = not _ends_with_newline(path)
        last_line = skip + n + len(invalid)
        for num, got, text in invalid:
            kind = "truncated row" if ends_mid_row and num == last_line else "malformed row"
            suffix = " (the file ends mid-row)" if kind == "truncated row" else ""
            first_field = text.split(",", 1)[0].strip() if text else ""
            pending.append(
                (
                    num,
                    f"{kind}: {got} of {len(names)} fields{suffix}",
                    f"{IMAGES_DIR}/{first_field}" if first_field else None,
                    text,
                )
            )
    else:
        lines = np.arange(skip + 1, skip + 1 + n, dtype=np.int64)

    # the landmark text (~1 kB a row) stays in the reader's chunks: no 400 MB copy
    cols = {c: table.column(c) if c == "facial_landmarks" else table.column(c).combine_chunks() for c in COLUMNS}
    original = dict(cols)
    bad = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}

    def reject(mask: np.ndarray, reason_of: Any) -> None:
        for i in np.flatnonzero(mask & ~bad):
            reasons[int(i)] = reason_of(int(i))
        bad[mask] = True

    # non-UTF-8 bytes (validated per column in C++; rows located only when a column fails)
    for c in COLUMNS:
        try:
            cols[c].validate(full=True)
        except pa.ArrowInvalid:
            mask = invalid_utf8_rows(cols[c])
            reject(mask, lambda i, c=c: f"non-UTF-8 bytes: in column {c!r}")
            fixed = pc.if_else(pa.array(mask), pa.scalar(b""), pa.concat_arrays(
                [ch.cast(pa.binary()) for ch in _chunks(cols[c])]
            ))
            cols[c] = fixed.cast(pa.string())

    # empty lines are not rows: ignored, counted in a note
    empty_line = np.ones(n, dtype=bool)
    for c in COLUMNS:
        empty_line &= pc.equal(pc.binary_length(cols[c]), 0).to_numpy(zero_copy_only=False)
    empty_line &= ~bad
    if empty_line.any():
        notes.append(f"{path.name}: {int(empty_line.sum())} empty line(s) ignored")

    # unsafe paths (absolute, '..') are judged on the list's own value, before the images prefix
    unsafe = check_paths(cols["subDirectory_filePath"])
    unsafe_mask = np.array([r is not None for r in unsafe], dtype=bool) & ~empty_line
    reject(unsafe_mask, lambda i: str(unsafe[i]))

    # numbers
    nums: dict[str, np.ndarray] = {}
    for c in ("face_x", "face_y", "face_width", "face_height", "valence", "arousal"):
        values, invalid_mask, empty = _numbers(cols[c], _FLOAT_RE, pa.float64())
        reject(empty & ~empty_line, lambda i, c=c: f"missing value: column {c!r} is empty")
        reject(invalid_mask, lambda i, c=c: f"bad number: {c} {cols[c][i].as_py()!r}")
        nums[c] = values
    for c in ("face_x", "face_y", "face_width", "face_height"):
        reject(~np.isfinite(nums[c]) & ~empty_line, lambda i, c=c: f"bad number: {c} {cols[c][i].as_py()!r}")
    expr_values, expr_invalid, expr_empty = _numbers(cols["expression"], _INT_RE, pa.int64())
    reject(expr_empty & ~empty_line, lambda i: "missing value: column 'expression' is empty")
    unknown = expr_invalid | (~expr_empty & ((expr_values < 0) | (expr_values > _CODES[-1])))
    reject(unknown, lambda i: f"unknown label: expression {cols['expression'][i].as_py()!r} (AffectNet uses 0-10)")

    for c in ("valence", "arousal"):
        v = nums[c]
        outside = ~np.isfinite(v) | ((v != NOT_GIVEN) & ((v < -1) | (v > 1)))
        reject(outside & ~empty_line, lambda i, c=c: f"bad value: {c} {cols[c][i].as_py()!r} outside [-1, 1] (-2 = not given)")

    lm_values, lm_ok, lm_bad = _landmarks(cols["facial_landmarks"], workers)
    reject(lm_bad, lambda i: _landmark_reason(cols["facial_landmarks"][i].as_py()))

    if bad.any():
        idx = pa.array(sorted(reasons), type=pa.int64())
        raw_rows = pa.table({c: original[c].cast(pa.binary()).take(idx) for c in COLUMNS}).to_pylist()
        for (i, reason), raw in zip(sorted(reasons.items()), raw_rows):
            rel = f"{IMAGES_DIR}/{shown_text(raw['subDirectory_filePath'])}"
            pending.append((int(lines[i]), reason, rel, ",".join(shown_text(raw[c]) or "" for c in COLUMNS)))
    for line, reason, rel, raw_text in sorted(pending, key=lambda p: p[0]):
        rejects.add(reason, source_file=str(path), row=line, image_path=rel, raw=raw_text)

    keep = ~bad & ~empty_line
    k = pa.array(keep)

    def kept(arr: pa.Array) -> pa.Array:
        return arr if keep.all() else arr.filter(k)

    x, y, w, h = (nums[c][keep] for c in ("face_x", "face_y", "face_width", "face_height"))
    finite = np.isfinite(x) & np.isfinite(y) & np.isfinite(w) & np.isfinite(h)
    bad_bbox = finite & ((w <= 0) | (h <= 0))
    bbox = pa.StructArray.from_arrays(
        [pa.array(a.astype(np.float32)) for a in (x, y, w, h)],
        fields=list(BBOX_TYPE),
        mask=pa.array(~finite | bad_bbox),
    )
    return _FileRows(
        source_file=str(path),
        split=split,
        source_split=source_split,
        lines=lines[keep],
        path=kept(cols["subDirectory_filePath"]),
        expression=expr_values[keep].astype(np.int64),
        valence=_given(nums["valence"][keep]),
        arousal=_given(nums["arousal"][keep]),
        bbox=bbox,
        bad_bbox=bad_bbox,
        landmarks=lm_values if keep.all() else lm_values[keep],
        has_landmarks=lm_ok[keep],
        notes=notes,
    )


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            return True
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) in (b"\n", b"\r")


def _numbers(col: pa.Array, pattern: str, typ: pa.DataType) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Text -> numbers: (values, NaN / -1 where empty or not a number; invalid mask; empty mask)."""
    trimmed = pc.utf8_trim_whitespace(col)
    empty = pc.equal(pc.utf8_length(trimmed), 0)
    candidates = pc.if_else(empty, pa.scalar(None, pa.string()), trimmed)
    try:
        values = pc.cast(candidates, typ)
        invalid = np.zeros(len(col), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        ok = pc.fill_null(pc.match_substring_regex(candidates, pattern), True)
        invalid = ~ok.to_numpy(zero_copy_only=False)
        values = pc.cast(pc.if_else(ok, candidates, pa.scalar(None, pa.string())), typ)
    empty_np = empty.to_numpy(zero_copy_only=False)
    if pa.types.is_floating(typ):
        arr = values.to_numpy(zero_copy_only=False).astype(np.float64)
    else:
        arr = pc.fill_null(values, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return arr, invalid, empty_np


def _given(values: np.ndarray) -> pa.Array:
    """float32 with -2 ("not given") and NaN as null."""
    mask = np.isnan(values) | (values == NOT_GIVEN)
    return pa.array(values.astype(np.float32), mask=mask)


# --- landmarks --------------------------------------------------------------------------------


def _chunks(col: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(col.chunks) if isinstance(col, pa.ChunkedArray) else [col]


def _landmarks(col: pa.Array | pa.ChunkedArray, workers: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x;y;...`` strings -> (rows x 136 float32, has-landmarks mask, malformed mask).

    Each chunk is split and cast by Arrow kernels (which release the GIL) on a thread per core;
    an empty field means "no landmarks" (not an error).
    """
    pieces = [c.slice(s, _CHUNK_ROWS) for c in _chunks(col) for s in range(0, len(c), _CHUNK_ROWS)]
    n = len(col)
    values = np.empty((n, N_LANDMARK_VALUES), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    bad = np.zeros(n, dtype=bool)
    starts = np.cumsum([0] + [len(p) for p in pieces])

    def run(k: int) -> None:
        good_rows, vals, bad_rows = _landmark_chunk(pieces[k])
        lo = starts[k]
        if len(good_rows) == len(pieces[k]):  # the usual case: a straight copy
            values[lo : lo + len(good_rows)] = vals
            ok[lo : lo + len(good_rows)] = True
        else:
            values[lo + good_rows] = vals
            ok[lo + good_rows] = True
        bad[lo + bad_rows] = True

    n_threads = min(resolve_workers(workers), len(pieces))
    if n_threads > 1:
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(run, range(len(pieces))))
    else:
        for k in range(len(pieces)):
            run(k)
    return values, ok, bad


def _landmark_chunk(col: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One chunk: (indices of good rows, their values as (k, 136) float32, indices of bad rows)."""
    if pc.any(pc.ends_with(col, ";")).as_py():
        col = pc.utf8_rtrim(col, ";")
    parts = pc.split_pattern(col, ";")
    lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    empty = pc.equal(pc.binary_length(col), 0).to_numpy(zero_copy_only=False)
    good = ~empty & (lengths == N_LANDMARK_VALUES)
    bad = ~empty & ~good
    rows = parts if good.all() else parts.filter(pa.array(good))
    values = _cast_floats(pc.list_flatten(rows))
    if values is None:
        # some value is not a number: find those rows (error path), then cast the rest
        ok_rows = pc.match_substring_regex(pc.list_flatten(rows), _FLOAT_RE).to_numpy(zero_copy_only=False)
        ok_rows = ok_rows.reshape(-1, N_LANDMARK_VALUES).all(axis=1)
        good_idx = np.flatnonzero(good)
        bad[good_idx[~ok_rows]] = True
        good[good_idx[~ok_rows]] = False
        values = _cast_floats(pc.list_flatten(parts.filter(pa.array(good))))
    arr = values.to_numpy(zero_copy_only=False).reshape(-1, N_LANDMARK_VALUES)
    finite = np.isfinite(arr).all(axis=1)
    good_idx = np.flatnonzero(good)
    if not finite.all():
        bad[good_idx[~finite]] = True
        good_idx, arr = good_idx[finite], arr[finite]
    return good_idx, arr, np.flatnonzero(bad)


def _cast_floats(values: pa.Array) -> pa.Array | None:
    try:
        return pc.cast(values, pa.float32())
    except pa.ArrowInvalid:
        return None


def _landmark_reason(text: str | bytes | None) -> str:
    text = shown_text(text) or ""
    items = text.rstrip(";").split(";")
    if len(items) != N_LANDMARK_VALUES:
        return f"bad landmarks: {len(items)} values (expected {N_LANDMARK_VALUES} = 68 x;y pairs)"
    for item in items:
        try:
            if not np.isfinite(float(item)):
                return f"bad landmarks: {item!r} is not a finite number"
        except ValueError:
            return f"bad landmarks: {item!r} is not a number"
    return "bad landmarks"


# --- manifest columns ------------------------------------------------------------------------------


def _constant_dict(value: str, n: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value]))


def _columns(parts: list[_FileRows]) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Manifest columns for all accepted rows of all files, sorted by sample_id (then file, line),
    plus ``_expression`` for the notes; also the rows' line numbers and source files."""
    expression = np.concatenate([p.expression for p in parts])
    n = len(expression)
    path = pa.concat_arrays([p.path for p in parts])
    image_path = pc.binary_join_element_wise(IMAGES_DIR, path, "/")
    sample_id = pc.binary_join_element_wise(DATASET, image_path, "/")
    # sort here: numpy's row gather of the (n, 136) landmarks is ~3x cheaper than Arrow's list take,
    # and the manifest writer skips its own sort for sorted input. sample_id = a constant prefix +
    # path, so sorting the shorter paths gives the same order; the sort is stable, so duplicates
    # keep file order (the first listed stays first).
    order = pc.sort_indices(path).to_numpy()
    take = pa.array(order)
    expression = expression[order]
    has = np.concatenate([p.has_landmarks for p in parts])[order]
    dense = parts[0].landmarks if len(parts) == 1 else np.concatenate([p.landmarks for p in parts])
    dense = dense[order]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.where(has, N_LANDMARK_VALUES, 0), out=offsets[1:])
    flat = dense.reshape(-1) if has.all() else dense[has].reshape(-1)
    landmarks = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat), mask=None if has.all() else pa.array(~has))

    label_idx = _LABEL_INDEX[expression] if n else np.zeros(0, dtype=np.int32)
    label = pa.DictionaryArray.from_arrays(
        pa.array(label_idx, mask=label_idx < 0), pa.array(_LABEL_NAMES, pa.string())
    )
    source_label = pa.DictionaryArray.from_arrays(
        pa.array(expression.astype(np.int32)), pa.array(_SOURCE_NAMES, pa.string())
    )
    bad_bbox = np.concatenate([p.bad_bbox for p in parts])[order]
    flags = None
    if bad_bbox.any():
        flags = pa.array([["bad_bbox"] if b else None for b in bad_bbox], pa.list_(pa.string()))
    file_index = np.concatenate([np.full(len(p), k, dtype=np.int32) for k, p in enumerate(parts)])[order]
    splits = pa.DictionaryArray.from_arrays(pa.array(file_index), pa.array([p.split for p in parts]))
    source_splits = pa.DictionaryArray.from_arrays(pa.array(file_index), pa.array([p.source_split for p in parts]))
    columns: dict[str, Any] = {
        "sample_id": sample_id.take(take),
        "dataset": _constant_dict(DATASET, n),
        "split": splits,
        "source_split": source_splits,
        "image_path": image_path.take(take),
        "label": label,
        "label_id": _LABEL_ID[expression] if n else np.zeros(0, dtype=np.int8),
        "source_label": source_label,
        "valence": pa.concat_arrays([p.valence for p in parts]).take(take),
        "arousal": pa.concat_arrays([p.arousal for p in parts]).take(take),
        "bbox": pa.concat_arrays([p.bbox for p in parts]).take(take),
        "landmarks": landmarks,
        "flags": flags,
        "_expression": expression,
    }
    lines = np.concatenate([p.lines for p in parts])[order]
    source_files = np.array([p.source_file for p in parts], dtype=object)[file_index]
    return columns, lines, source_files
