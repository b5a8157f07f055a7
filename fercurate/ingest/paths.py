"""Path safety: which dataset-relative paths may be used, which rows repeat a path, and the dataset root.

A path from a dataset's own files (a CSV, a list) is untrusted: absolute paths, ``..``, ``.``, empty
names and NUL characters are rejects, never opened. The checks run on Arrow arrays so 420k paths cost
a few kernel calls; only suspicious paths are looked at in Python.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fercurate.errors import InputError


def unsafe_path_reason(path: str) -> str | None:
    """Why a dataset-relative path may not be used (absolute, '..', '.', empty, NUL), or None if it is fine."""
    if not path or not path.strip():
        return "empty image path"
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        return f"absolute image path {path!r} (paths must be relative to the dataset root)"
    if "\x00" in path:
        return f"image path {path!r} contains a NUL character"
    parts = path.replace("\\", "/").split("/")
    if ".." in parts:
        return f"image path {path!r} leaves the dataset root ('..')"
    if "." in parts:
        return f"image path {path!r} has a reserved name ('.') as a component"
    return None


def as_string_array(values: Any) -> pa.Array:
    """A flat Arrow string array from a list, numpy array, pandas Series or (chunked) Arrow array."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        if pa.types.is_large_string(values.type) or pa.types.is_string_view(values.type):
            values = values.cast(pa.string())
        return values
    return pa.array(values, type=pa.string(), from_pandas=True)


def check_paths(paths: Sequence[str] | pa.Array) -> list[str | None]:
    """:func:`unsafe_path_reason` for many paths (fast path: only suspicious ones are inspected)."""
    arr = as_string_array(paths)
    suspicious = pc.or_(
        pc.or_(pc.match_substring_regex(arr, r"(^|[/\\])\.\.?([/\\]|$)|\x00"), pc.starts_with(arr, "/")),
        pc.or_(pc.match_substring(arr, ":"), pc.less_equal(pc.utf8_length(pc.utf8_trim_whitespace(arr)), 0)),
    )
    suspicious = pc.or_(pc.fill_null(suspicious, True), pc.fill_null(pc.starts_with(arr, "\\"), True))
    out: list[str | None] = [None] * len(arr)
    for i in np.flatnonzero(suspicious.to_numpy(zero_copy_only=False)):
        p = arr[int(i)].as_py()
        out[i] = "empty image path" if p is None else unsafe_path_reason(p)
    return out


def first_duplicates(ids: Sequence[str] | pa.Array, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Among rows where ``candidates`` is true, the later repeats of an id and each one's first row.

    Returns (row indices of repeats, row index of the first occurrence for each), both ascending
    in the first array; vectorised (hash-encode + a stable sort), no per-row Python.
    """
    idx = np.flatnonzero(candidates)
    if len(idx) == 0:
        return idx, idx
    arr = as_string_array(ids)
    if len(idx) < len(arr):
        arr = arr.take(pa.array(idx))
    if len(arr) > 1 and pc.all(pc.less_equal(arr.slice(0, len(arr) - 1), arr.slice(1))).as_py():
        # sorted input (AffectNet sorts its rows itself): repeats are adjacent, no hashing needed
        starts = np.r_[True, pc.not_equal(arr.slice(1), arr.slice(0, len(arr) - 1)).to_numpy(zero_copy_only=False)]
        first = np.maximum.accumulate(np.where(starts, np.arange(len(arr)), 0))
        return idx[~starts], idx[first[~starts]]
    codes = arr.dictionary_encode().indices.to_numpy()
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]
    first_pos = order[np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))]
    dup_sorted = ~starts
    rows = idx[order[dup_sorted]]
    firsts = idx[first_pos[dup_sorted]]
    by_row = np.argsort(rows, kind="stable")
    return rows[by_row], firsts[by_row]


def require_dir(path: str | os.PathLike, what: str) -> Path:
    """The dataset root as an absolute path, or a clear error if it is not a folder."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{p}: {what} not found")
    if not p.is_dir():
        raise InputError(f"{p}: {what} must be a folder")
    return p.resolve()
