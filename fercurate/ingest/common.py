"""What every ingestor shares: the rejects table, path checks, file checks, ``--verify`` and writing.

An ingestor parses its dataset's native files into manifest columns and a :class:`Rejects` list,
then calls :func:`finish` which applies the checks every dataset needs (unsafe paths, duplicate
paths, missing files, optionally undecodable images) and writes the manifest and its rejects table.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fercurate import images
from fercurate.errors import InputError, RejectsError
from fercurate.manifest import build_table, rejects_path, write_manifest, write_rejects
from fercurate.parallel import map_chunks
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
                "source_file": None if source_file is None else str(source_file),
                "row": row,
                "image_path": image_path,
                "reason": reason,
                "raw": raw if raw is None or len(raw) <= 2000 else raw[:2000] + "…",
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

    def summary(self) -> str:
        splits = ", ".join(f"{k} {v:,}" for k, v in sorted(self.split_counts.items()))
        lines = [f"{self.dataset}: {self.rows:,} rows ({splits}) -> {self.manifest_path}"]
        if self.rejected:
            reasons = "; ".join(f"{k} {v:,}" for k, v in sorted(self.reject_reasons.items()))
            lines.append(f"rejected {self.rejected:,} rows ({reasons}) -> {self.rejects_path}")
            lines.append(f"first: {self.first_reject}")
        lines.extend(self.notes)
        return "\n".join(lines)


def unsafe_path_reason(path: str) -> str | None:
    """Why a dataset-relative path may not be used (absolute, '..', empty), or None if it is fine."""
    if not path or not path.strip():
        return "empty image path"
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        return f"absolute image path {path!r} (paths must be relative to the dataset root)"
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if ".." in parts:
        return f"image path {path!r} leaves the dataset root ('..')"
    return None


def check_paths(paths: Sequence[str]) -> list[str | None]:
    """:func:`unsafe_path_reason` for many paths (fast path: only suspicious ones are inspected)."""
    arr = pa.array(paths, type=pa.string())
    suspicious = pc.or_(
        pc.or_(pc.match_substring(arr, ".."), pc.starts_with(arr, "/")),
        pc.or_(pc.match_substring(arr, ":"), pc.less_equal(pc.utf8_length(pc.utf8_trim_whitespace(arr)), 0)),
    )
    suspicious = pc.or_(pc.fill_null(suspicious, True), pc.starts_with(arr, "\\"))
    out: list[str | None] = [None] * len(paths)
    for i in np.flatnonzero(suspicious.to_numpy(zero_copy_only=False)):
        p = paths[i]
        out[i] = "empty image path" if p is None else unsafe_path_reason(p)
    return out


def existing_files(root: Path, rel_paths: Sequence[str]) -> np.ndarray:
    """Boolean mask: which relative paths exist under ``root``; lists each folder once (fast)."""
    by_dir: dict[str, list[int]] = defaultdict(list)
    names: list[str] = []
    for i, p in enumerate(rel_paths):
        d, _, name = p.rpartition("/")
        by_dir[d].append(i)
        names.append(name)
    found = np.zeros(len(rel_paths), dtype=bool)
    for d, idx in by_dir.items():
        folder = root / d if d else root
        try:
            with os.scandir(folder) as it:
                present = {e.name for e in it}
        except (FileNotFoundError, NotADirectoryError):
            continue
        for i in idx:
            found[i] = names[i] in present
    return found


def _inspect_chunk(paths: Sequence[str]) -> list[tuple[int, int, str] | str]:
    out: list[tuple[int, int, str] | str] = []
    for p in paths:
        try:
            info = images.inspect(p)
            out.append((info.width, info.height, info.sha256))
        except images.ImageReadError as exc:
            out.append(str(exc).split(": ", 1)[-1])
    return out


def verify_images(
    root: Path, rel_paths: Sequence[str], *, workers: int | None = None, desc: str = "verify"
) -> tuple[np.ndarray, np.ndarray, list[str | None], list[str | None]]:
    """Decode every image on all cores: (width, height, sha256, error) per path."""
    abs_paths = [str(root / p) for p in rel_paths]
    width = np.zeros(len(abs_paths), dtype=np.int32)
    height = np.zeros(len(abs_paths), dtype=np.int32)
    sha: list[str | None] = [None] * len(abs_paths)
    err: list[str | None] = [None] * len(abs_paths)
    i = 0
    for chunk in map_chunks(_inspect_chunk, abs_paths, workers=workers, chunk_size=512, desc=desc):
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
) -> IngestResult:
    """Apply the shared checks, then write the manifest and rejects table atomically.

    ``row_numbers``/``source_files`` (parallel to the rows) let rejects found here name the file and
    line each row came from.
    """
    name = name or dataset
    out_path = Path(out) if out else Workspace.current().manifest_path(name)
    n = len(columns["sample_id"])
    keep = np.ones(n, dtype=bool)
    paths: list[str] = list(columns["image_path"])
    raw_ids: list[str] = list(columns["sample_id"])

    def where(i: int) -> dict[str, Any]:
        return {
            "source_file": source_files[i] if source_files is not None else None,
            "row": int(row_numbers[i]) if row_numbers is not None else None,
            "image_path": paths[i],
        }

    for i, reason in enumerate(check_paths(paths)):
        if reason:
            rejects.add(reason, **where(i))
            keep[i] = False

    first_seen: dict[str, int] = {}
    for i, sid in enumerate(raw_ids):
        if not keep[i]:
            continue
        if sid in first_seen:
            j = first_seen[sid]
            at = f"row {row_numbers[j]}" if row_numbers is not None else "an earlier row"
            rejects.add(f"duplicate path: {paths[i]} already listed at {at}", **where(i))
            keep[i] = False
        else:
            first_seen[sid] = i

    if check_files:
        idx = np.flatnonzero(keep)
        found = existing_files(root, [paths[i] for i in idx])
        for i in idx[~found]:
            rejects.add(f"image file missing: {root / paths[i]}", **where(i))
            keep[i] = False

    if verify:
        idx = np.flatnonzero(keep)
        w, h, sha, err = verify_images(root, [paths[i] for i in idx], workers=workers, desc=f"verify {dataset}")
        width = np.zeros(n, dtype=np.int32)
        height = np.zeros(n, dtype=np.int32)
        sha_all: list[str | None] = [None] * n
        for k, i in enumerate(idx):
            if err[k]:
                rejects.add(f"corrupt image: {err[k]}", **where(i))
                keep[i] = False
            else:
                width[i], height[i], sha_all[i] = w[k], h[k], sha[k]
        columns = dict(columns, width=width, height=height, sha256=sha_all)

    mask = pa.array(keep)
    kept = {k: _filter(v, mask, keep) for k, v in columns.items() if v is not None}
    table = build_table(kept, num_rows=int(keep.sum()))
    rej_path = rejects_path(out_path)
    split_counts = dict(Counter(table.column("split").to_pylist()))
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
    )
    write_rejects(rejects.table(), rej_path)
    if strict and len(rejects):
        result.manifest_path = None
        raise RejectsError(
            f"{len(rejects):,} rows rejected (--strict); first: {rejects.first_message()}; "
            f"all in {rej_path}"
        )
    if table.num_rows == 0:
        raise InputError(
            f"{root}: no usable rows for {dataset}"
            + (f"; first reject: {rejects.first_message()} (all in {rej_path})" if len(rejects) else "")
        )
    src = dict(source or {})
    src.update({"rows": table.num_rows, "rejected": len(rejects)})
    write_manifest(table, out_path, name=name, dataset=dataset, root=root, source=src)
    return result


def _filter(value: Any, mask: pa.Array, keep: np.ndarray) -> Any:
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
