"""The image files behind a manifest's rows: what each path is on disk, its pixel limit, and ``--verify``.

:func:`scan_files` classifies every row's path (a file, a folder, missing, a link leaving the root, a
broken link) by listing each folder once; :func:`oversized_images` reads only image headers, so the
pixel limit holds without decoding; :func:`verify_images` decodes every image on all cores.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fercurate import images
from fercurate.ingest.paths import as_string_array
from fercurate.ingest.rejects import is_utf8_name
from fercurate.parallel import chunked, map_chunks, resolve_workers
from fercurate.progress import progress

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


def file_reason(kind: int, root: Path, rel: str) -> str:
    """The reject reason for a path :func:`scan_files` did not find to be a file inside ``root``."""
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


def image_reason(err: str) -> str:
    """A reject reason for an image that failed to decode: refused by the reader (over the pixel limit,
    a format it does not decode, a decompression bomb), or corrupt."""
    return err if err.startswith(images.REFUSED_REASONS) else f"corrupt image: {err}"


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
