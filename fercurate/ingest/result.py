"""The last step of every ingest: the checks all datasets share, then the manifest and its rejects written.

An ingestor parses its dataset's native files into manifest columns and a :class:`Rejects` list
(a :class:`Parsed`), then calls :func:`finish`, which applies the checks every dataset needs (unsafe
paths, duplicate paths, missing files, the pixel limit, optionally undecodable images) and writes the
manifest and its rejects table together.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fercurate import images
from fercurate.errors import InputError, RejectsError
from fercurate.ingest.files import FILE, file_reason, image_reason, oversized_images, scan_files, verify_images
from fercurate.ingest.options import IngestOptions
from fercurate.ingest.paths import as_string_array, check_paths, first_duplicates
from fercurate.ingest.rejects import Rejects, printable, reject_non_utf8
from fercurate.manifest import build_table, failed_rejects_path, rejects_path, write_manifest, write_rejects


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


@dataclass
class Parsed:
    """What an ingestor read from its dataset's files, before the shared checks of :func:`finish`.

    ``row_numbers``/``source_files`` (parallel to the rows, when the rows come from text files) let
    rejects found later name the file and line each row came from.
    """

    dataset: str
    columns: dict[str, Any]  # manifest columns; ``sample_id`` and ``image_path`` at least
    rejects: Rejects
    source: dict[str, Any] = field(default_factory=dict)  # provenance, stored in the manifest
    notes: list[str] = field(default_factory=list)  # lines for the summary
    row_numbers: Sequence[int] | None = None
    source_files: Sequence[str] | None = None
    timings: dict[str, float] = field(default_factory=dict)  # the ingestor's own stages, e.g. "parse"


def finish(parsed: Parsed, *, root: Path, out: str | os.PathLike | None, options: IngestOptions) -> IngestResult:
    """Apply the shared checks, then write the manifest and rejects table atomically.

    Checks: unsafe paths, duplicates; with ``options.check_files`` also missing files, folders named
    like images, symlinks leaving ``root`` (unless ``follow_links``), file names that are not UTF-8,
    and images over ``max_pixels`` (default :func:`images.max_pixels`, read from each header, or from
    the decode with ``verify``). The manifest and its rejects table are replaced together; if the
    ingest fails (``strict``, or no usable rows) the previous pair is left as it was and the rejects
    go to ``<name>.rejects.failed.parquet``.
    """
    dataset, rejects, row_numbers, source_files = parsed.dataset, parsed.rejects, parsed.row_numbers, parsed.source_files
    name = options.name or dataset
    out_path = options.manifest_path(out, dataset)
    timings: dict[str, float] = dict(parsed.timings)
    t0 = time.perf_counter()
    n = len(parsed.columns["sample_id"])
    keep = np.ones(n, dtype=bool)
    paths = as_string_array(parsed.columns["image_path"])
    columns = dict(parsed.columns, image_path=paths)

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

    if options.check_files:
        t0 = time.perf_counter()
        idx = np.flatnonzero(keep)
        scan = scan_files(root, paths if len(idx) == n else paths.take(pa.array(idx)),
                          follow_links=options.follow_links)
        for k in np.flatnonzero(scan.kind != FILE):
            i = int(idx[k])
            rejects.add(file_reason(int(scan.kind[k]), root, paths[i].as_py()), **where(i))
            keep[i] = False
        reject_non_utf8(rejects, scan.non_utf8)
        timings["files"] = time.perf_counter() - t0

    limit = options.max_pixels or images.max_pixels()
    known_size = columns.get("width") is not None and columns.get("height") is not None
    if known_size and not options.verify:  # sizes the ingestor knows (FERPlus csv writes 48x48 PNGs)
        pixels = np.asarray(columns["width"], dtype=np.int64) * np.asarray(columns["height"], dtype=np.int64)
        for i in np.flatnonzero(keep & (pixels > limit)):
            rejects.add(f"image too large: {int(pixels[i]):,} pixels is over the limit of {limit:,}", **where(i))
            keep[i] = False
    elif options.check_files and not options.verify:
        t0 = time.perf_counter()
        idx = np.flatnonzero(keep)
        too_big = oversized_images(root, paths.take(pa.array(idx)).to_pylist(), max_pixels=limit,
                                   workers=options.workers, desc=f"headers {dataset}")
        for k, reason in enumerate(too_big):
            if reason:
                rejects.add(reason, **where(int(idx[k])))
                keep[idx[k]] = False
        timings["headers"] = time.perf_counter() - t0

    if options.verify:
        t0 = time.perf_counter()
        idx = np.flatnonzero(keep)
        w, h, sha, err = verify_images(
            root, paths.take(pa.array(idx)).to_pylist(), workers=options.workers, desc=f"verify {dataset}",
            max_pixels=limit,
        )
        width = np.zeros(n, dtype=np.int32)
        height = np.zeros(n, dtype=np.int32)
        sha_all: list[str | None] = [None] * n
        for k, i in enumerate(idx):
            if err[k]:
                rejects.add(image_reason(err[k]), **where(i))
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
        notes=list(parsed.notes),
        first_reject=rejects.first_message(),
        timings=timings,
    )
    t0 = time.perf_counter()
    if (options.strict and len(rejects)) or table.num_rows == 0:
        # A failed ingest leaves the previous manifest and rejects pair untouched.
        failed = failed_rejects_path(out_path)
        write_rejects(rejects.table(), failed)
        result.manifest_path = None
        if options.strict and len(rejects):
            raise RejectsError(
                f"{len(rejects):,} rows rejected (--strict); first: {rejects.first_message()}; "
                f"all in {failed} (the previous manifest, if any, is unchanged)"
            )
        raise InputError(
            f"{root}: no usable rows for {dataset}"
            + (f"; first reject: {rejects.first_message()} (all in {failed})" if len(rejects) else "")
        )
    src = dict(parsed.source)
    src.update({"rows": table.num_rows, "rejected": len(rejects)})
    write_manifest(table, out_path, name=name, dataset=dataset, root=root, source=src, rejects=rejects.table())
    with contextlib.suppress(FileNotFoundError):
        failed_rejects_path(out_path).unlink()
    timings["write"] = time.perf_counter() - t0
    return result


def _filter(value: Any, mask: pa.Array, keep: np.ndarray) -> Any:
    if keep.all():
        return value
    if isinstance(value, (pa.Array, pa.ChunkedArray)):
        return value.filter(mask)
    if isinstance(value, np.ndarray):
        return value[keep]
    return [v for v, k in zip(value, keep) if k]
