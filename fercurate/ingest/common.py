"""What every ingestor shares: the rejects table, path checks, file checks, ``--verify`` and writing.

An ingestor parses its dataset's native files into manifest columns and a :class:`Rejects` list,
then calls :func:`finish` which applies the checks every dataset needs (unsafe paths, duplicate
paths, missing files, optionally undecodable images) and writes the manifest and its rejects table.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fercurate import images
from fercurate.errors import InputError, RejectsError
from fercurate.manifest import build_table, failed_rejects_path, rejects_path, write_manifest, write_rejects
from fercurate.parallel import chunked, map_chunks, resolve_workers
from fercurate.progress import progress
from fercurate.schema import REJECTS_SCHEMA
from fercurate.workspace import Workspace


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


@dataclass
class IngestResult:
    """What an ingest produced, for the CLI summary and for tests."""

    dataset: str
    manifest_path: Path | None
    rejects_path: Path
    rows: int
    rejected: int
    reject_reasons: dict[str, int]
    split_counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    first_reject: str | None = None
    # seconds per stage (parse, checks, files, verify, build, write), for benchmarks and profiling
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        splits = ", ".join(f"{k} {v:,}" for k, v in sorted(self.split_counts.items()))
        lines = [f"{self.dataset}: {self.rows:,} rows ({splits}) -> {self.manifest_path}"]
        if self.rejected:
            reasons = "; ".join(f"{k} {v:,}" for k, v in sorted(self.reject_reasons.items()))
            lines.append(f"rejected {self.rejected:,} rows ({reasons}) -> {self.rejects_path}")
            lines.append(f"first: {self.first_reject}")
        lines.extend(self.notes)
        return printable("\n".join(lines))


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


def non_utf8_reason(folder: str | os.PathLike, name: str) -> str:
    """The reject reason for a file name that is not valid UTF-8, naming the folder and the raw bytes."""
    return f"file name is not valid UTF-8: {os.fsencode(name)!r} in {printable(str(folder))}"


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


MISSING, FILE, FOLDER, OUTSIDE, BROKEN_LINK = range(5)


@dataclass
class FileScan:
    """What :func:`scan_files` found: a kind per path, and the names that are not valid UTF-8."""

    kind: np.ndarray  # int8, one of MISSING, FILE, FOLDER, OUTSIDE, BROKEN_LINK per path
    non_utf8: list[tuple[str, str]] = field(default_factory=list)  # (folder, name as listed)


def _inside(real: str, real_root: str) -> bool:
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def scan_files(root: Path, rel_paths: Sequence[str] | pa.Array, *, follow_links: bool = False) -> FileScan:
    """Classify relative paths under ``root``: a file, a folder, missing, a link leaving the root, a broken link.

    Vectorised: each distinct folder is listed once (``os.scandir``; entry types come from the
    directory listing), full paths are rebuilt with Arrow and matched in one hash lookup, so 420k
    paths in 1,000 folders cost about as much as listing the folders. Containment is decided on the
    resolved real path: a folder or file that is (or sits behind) a symlink leaving ``root`` is
    ``OUTSIDE`` unless ``follow_links``. Names that are not valid UTF-8 can't be any row's path;
    they are returned in ``non_utf8`` (with their folder) so the caller can reject them visibly.
    """
    arr = as_string_array(rel_paths)
    scan = FileScan(np.zeros(len(arr), dtype=np.int8))
    if len(arr) == 0:
        return scan
    real_root = os.path.realpath(root)
    split = pc.split_pattern(pc.fill_null(arr, ""), "/", max_splits=1, reverse=True)
    has_dir = pc.equal(pc.list_value_length(split), 2)
    dirs = pc.unique(pc.if_else(has_dir, pc.list_element(split, 0), "")).to_pylist()
    names: list[str] = []
    kinds: list[int] = []
    prefixes: list[str] = []
    counts: list[int] = []
    for d in dirs:
        folder = root / d if d else root
        try:
            entries = list(os.scandir(folder))
        except OSError:  # missing, not a folder, unreadable: its paths stay MISSING
            continue
        listed = [e.name for e in entries]
        if not is_utf8_name("/".join(listed)):  # rare: keep only the names that are valid UTF-8
            scan.non_utf8.extend((str(folder), e.name) for e in entries if not is_utf8_name(e.name))
            entries = [e for e in entries if is_utf8_name(e.name)]
            listed = [e.name for e in entries]
        if not follow_links and not _inside(os.path.realpath(folder), real_root):
            kind = [OUTSIDE] * len(entries)
        else:
            # only links and folders need a closer look; the entry types come from the listing
            kind = [FILE] * len(entries)
            special = [k for k, e in enumerate(entries) if e.is_symlink() or e.is_dir(follow_symlinks=False)]
            for k in special:
                kind[k] = _entry_kind(entries[k], real_root, follow_links)
        names.extend(listed)
        kinds.extend(kind)
        prefixes.append(f"{d}/" if d else "")
        counts.append(len(listed))
    if not names:
        return scan
    prefix = pa.DictionaryArray.from_arrays(
        pa.array(np.repeat(np.arange(len(prefixes), dtype=np.int32), counts)), pa.array(prefixes, pa.string())
    ).cast(pa.string())
    present = pc.binary_join_element_wise(prefix, pa.array(names, pa.string()), "")
    idx = pc.fill_null(pc.index_in(arr, value_set=present), -1).to_numpy(zero_copy_only=False)
    kind_of = np.asarray(kinds, dtype=np.int8)
    scan.kind = np.where(idx >= 0, kind_of[np.maximum(idx, 0)], MISSING).astype(np.int8)
    return scan


def _entry_kind(entry: os.DirEntry, real_root: str, follow_links: bool) -> int:
    """FOLDER, OUTSIDE, BROKEN_LINK or FILE for a directory entry that is a link or a folder."""
    if not entry.is_symlink():
        return FOLDER
    real = os.path.realpath(entry.path)
    if not os.path.exists(real):
        return BROKEN_LINK
    if not follow_links and not _inside(real, real_root):
        return OUTSIDE
    return FOLDER if os.path.isdir(real) else FILE


def existing_files(root: Path, rel_paths: Sequence[str] | pa.Array) -> np.ndarray:
    """Boolean mask: which relative paths exist under ``root`` (as any directory entry); see :func:`scan_files`."""
    return scan_files(root, rel_paths, follow_links=True).kind != MISSING


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


def _inspect_chunk(paths: Sequence[str], max_pixels: int | None = None) -> list[tuple[int, int, str] | str]:
    out: list[tuple[int, int, str] | str] = []
    for p in paths:
        try:
            info = images.inspect(p, max_pixels)
            out.append((info.width, info.height, info.sha256))
        except images.ImageReadError as exc:
            out.append(str(exc)[len(p) + 2 :] if str(exc).startswith(f"{p}: ") else str(exc))
    return out


def _header_chunk(paths: Sequence[str], max_pixels: int | None = None) -> list[str | None]:
    return [images.pixel_limit_reason(p, max_pixels) for p in paths]


def _image_reason(err: str) -> str:
    """A reject reason for an image that failed to decode: over the pixel limit, or corrupt."""
    return err if err.startswith("image too large") else f"corrupt image: {err}"


def oversized_images(
    root: Path, rel_paths: Sequence[str], *, max_pixels: int | None = None, workers: int | None = None,
    desc: str = "image headers",
) -> list[str | None]:
    """Per path, why it is over the pixel limit (read from its header only), or None.

    Threads, not processes: each file costs one small read (which releases the GIL) and a few
    microseconds of parsing, so starting worker processes would cost more than the work.
    """
    abs_paths = [str(root / p) for p in rel_paths]
    out: list[str | None] = []
    fn = functools.partial(_header_chunk, max_pixels=max_pixels)
    chunks = chunked(abs_paths, 2048)
    bar = progress(total=len(abs_paths), desc=desc, unit="img")
    try:
        with ThreadPoolExecutor(min(resolve_workers(workers), max(1, len(chunks)))) as pool:
            for chunk in pool.map(fn, chunks):
                out.extend(chunk)
                bar.update(len(chunk))
    finally:
        bar.close()
    return out


def verify_images(
    root: Path, rel_paths: Sequence[str], *, workers: int | None = None, desc: str = "verify",
    max_pixels: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str | None], list[str | None]]:
    """Decode every image on all cores: (width, height, sha256, error) per path."""
    abs_paths = [str(root / p) for p in rel_paths]
    width = np.zeros(len(abs_paths), dtype=np.int32)
    height = np.zeros(len(abs_paths), dtype=np.int32)
    sha: list[str | None] = [None] * len(abs_paths)
    err: list[str | None] = [None] * len(abs_paths)
    i = 0
    fn = functools.partial(_inspect_chunk, max_pixels=max_pixels)
    for chunk in map_chunks(fn, abs_paths, workers=workers, chunk_size=512, desc=desc):
        for res in chunk:
            if isinstance(res, str):
                err[i] = res
            else:
                width[i], height[i], sha[i] = res
            i += 1
    return width, height, sha, err


def finish(
    dataset: str,
    columns: dict[str, Any],
    rejects: Rejects,
    *,
    root: Path,
    out: str | os.PathLike | None,
    name: str | None = None,
    verify: bool = False,
    workers: int | None = None,
    strict: bool = False,
    check_files: bool = True,
    source: dict[str, Any] | None = None,
    notes: list[str] | None = None,
    row_numbers: Sequence[int] | None = None,
    source_files: Sequence[str] | None = None,
    follow_links: bool = False,
    max_pixels: int | None = None,
) -> IngestResult:
    """Apply the shared checks, then write the manifest and rejects table atomically.

    ``row_numbers``/``source_files`` (parallel to the rows) let rejects found here name the file and
    line each row came from. Checks: unsafe paths, duplicates; with ``check_files`` also missing
    files, folders named like images, symlinks leaving ``root`` (unless ``follow_links``), file
    names that are not UTF-8, and images over ``max_pixels`` (default :func:`images.max_pixels`,
    read from each header, or from the decode with ``verify``). The manifest and its rejects table
    are replaced together; if the ingest fails (``strict``, or no usable rows) the previous pair is
    left as it was and the rejects go to ``<name>.rejects.failed.parquet``.
    """
    name = name or dataset
    out_path = Path(out) if out else Workspace.current().manifest_path(name)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    n = len(columns["sample_id"])
    keep = np.ones(n, dtype=bool)
    paths = as_string_array(columns["image_path"])
    columns = dict(columns, image_path=paths)

    def where(i: int) -> dict[str, Any]:
        return {
            "source_file": source_files[i] if source_files is not None else None,
            "row": int(row_numbers[i]) if row_numbers is not None else None,
            "image_path": paths[int(i)].as_py(),
        }

    for i, reason in enumerate(check_paths(paths)):
        if reason:
            rejects.add(reason, **where(i))
            keep[i] = False

    dup_rows, dup_firsts = first_duplicates(columns["sample_id"], keep)
    for i, j in zip(dup_rows.tolist(), dup_firsts.tolist()):
        if row_numbers is None:
            at = "an earlier row"
        elif source_files is not None and source_files[j] != source_files[i]:
            at = f"{Path(str(source_files[j])).name}:{row_numbers[j]}"
        else:
            at = f"row {row_numbers[j]}"
        rejects.add(f"duplicate path: {paths[i].as_py()} already listed at {at}", **where(i))
        keep[i] = False
    timings["checks"] = time.perf_counter() - t0

    if check_files:
        t0 = time.perf_counter()
        idx = np.flatnonzero(keep)
        scan = scan_files(root, paths if len(idx) == n else paths.take(pa.array(idx)), follow_links=follow_links)
        for k in np.flatnonzero(scan.kind != FILE):
            i = int(idx[k])
            rejects.add(_file_reason(int(scan.kind[k]), root, paths[i].as_py()), **where(i))
            keep[i] = False
        _reject_non_utf8(rejects, scan.non_utf8)
        timings["files"] = time.perf_counter() - t0

    limit = max_pixels or images.max_pixels()
    known_size = columns.get("width") is not None and columns.get("height") is not None
    if known_size and not verify:  # sizes the ingestor knows (FERPlus csv writes 48x48 PNGs)
        pixels = np.asarray(columns["width"], dtype=np.int64) * np.asarray(columns["height"], dtype=np.int64)
        for i in np.flatnonzero(keep & (pixels > limit)):
            rejects.add(f"image too large: {int(pixels[i]):,} pixels is over the limit of {limit:,}", **where(i))
            keep[i] = False
    elif check_files and not verify:
        t0 = time.perf_counter()
        idx = np.flatnonzero(keep)
        too_big = oversized_images(root, paths.take(pa.array(idx)).to_pylist(), max_pixels=limit,
                                   workers=workers, desc=f"headers {dataset}")
        for k, reason in enumerate(too_big):
            if reason:
                rejects.add(reason, **where(int(idx[k])))
                keep[idx[k]] = False
        timings["headers"] = time.perf_counter() - t0

    if verify:
        t0 = time.perf_counter()
        idx = np.flatnonzero(keep)
        w, h, sha, err = verify_images(
            root, paths.take(pa.array(idx)).to_pylist(), workers=workers, desc=f"verify {dataset}",
            max_pixels=limit,
        )
        width = np.zeros(n, dtype=np.int32)
        height = np.zeros(n, dtype=np.int32)
        sha_all: list[str | None] = [None] * n
        for k, i in enumerate(idx):
            if err[k]:
                rejects.add(_image_reason(err[k]), **where(i))
                keep[i] = False
            else:
                width[i], height[i], sha_all[i] = w[k], h[k], sha[k]
        columns = dict(columns, width=width, height=height, sha256=sha_all)
        timings["verify"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    mask = pa.array(keep)
    kept = {k: _filter(v, mask, keep) for k, v in columns.items() if v is not None}
    table = build_table(kept, num_rows=int(keep.sum()))
    rej_path = rejects_path(out_path)
    split_counts = {
        v["values"]: v["counts"]
        for v in pc.value_counts(table.column("split").cast(pa.string())).to_pylist()
    }
    timings["build"] = time.perf_counter() - t0
    result = IngestResult(
        dataset=dataset,
        manifest_path=out_path,
        rejects_path=rej_path,
        rows=table.num_rows,
        rejected=len(rejects),
        reject_reasons=dict(rejects.reasons()),
        split_counts=split_counts,
        notes=list(notes or []),
        first_reject=rejects.first_message(),
        timings=timings,
    )
    t0 = time.perf_counter()
    if (strict and len(rejects)) or table.num_rows == 0:
        # A failed ingest leaves the previous manifest and rejects pair untouched.
        failed = failed_rejects_path(out_path)
        write_rejects(rejects.table(), failed)
        result.manifest_path = None
        if strict and len(rejects):
            raise RejectsError(
                f"{len(rejects):,} rows rejected (--strict); first: {rejects.first_message()}; "
                f"all in {failed} (the previous manifest, if any, is unchanged)"
            )
        raise InputError(
            f"{root}: no usable rows for {dataset}"
            + (f"; first reject: {rejects.first_message()} (all in {failed})" if len(rejects) else "")
        )
    src = dict(source or {})
    src.update({"rows": table.num_rows, "rejected": len(rejects)})
    write_manifest(table, out_path, name=name, dataset=dataset, root=root, source=src, rejects=rejects.table())
    with contextlib.suppress(FileNotFoundError):
        failed_rejects_path(out_path).unlink()
    timings["write"] = time.perf_counter() - t0
    return result


def _file_reason(kind: int, root: Path, rel: str) -> str:
    path = root / rel
    if kind == FOLDER:
        return f"not an image file: {path} is a folder"
    if kind == OUTSIDE:
        return (
            f"links outside the dataset root: {path} resolves to {os.path.realpath(path)} "
            "(use --follow-links to allow)"
        )
    if kind == BROKEN_LINK:
        return f"image file missing: {path} is a broken link"
    return f"image file missing: {path}"


def _reject_non_utf8(rejects: Rejects, names: list[tuple[str, str]]) -> None:
    """One reject per non-UTF-8 file name (skipping those the ingestor already rejected)."""
    seen = {(r["source_file"], r["raw"]) for r in rejects.rows if r["reason"].startswith("file name is not valid")}
    for folder, name in sorted(set(names)):
        raw = repr(os.fsencode(name))
        if (printable(folder), raw) not in seen:
            rejects.add(non_utf8_reason(folder, name), source_file=folder, raw=raw)


def _filter(value: Any, mask: pa.Array, keep: np.ndarray) -> Any:
    if keep.all():
        return value
    if isinstance(value, (pa.Array, pa.ChunkedArray)):
        return value.filter(mask)
    if isinstance(value, np.ndarray):
        return value[keep]
    return [v for v, k in zip(value, keep) if k]


def require_dir(path: str | os.PathLike, what: str) -> Path:
    """The dataset root as an absolute path, or a clear error if it is not a folder."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{p}: {what} not found")
    if not p.is_dir():
        raise InputError(f"{p}: {what} must be a folder")
    return p.resolve()
