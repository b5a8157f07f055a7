"""The official RAN subset lists (Wang et al., TIP 2020), imported onto a manifest.

:func:`import_ran_lists` (``fercurate import-ran-lists``) matches every line of the published lists
(:mod:`fercurate.subsets.list_files`) to a manifest row and writes:

* the ``official`` layer ``manifests/<name>.official.parquet``: sample_id, list, label_id (the
  list's label converted to the canonical space), source_code, source_file, line;
* ``manifests/<name>.official.unmatched.parquet``: every line that was not imported (no matching
  row, malformed, unsafe path, duplicate), with file, line, entry and reason;
* occlusion events in ``annotations/<name>.occlusion.parquet`` (source ``official``, annotator
  ``ran-authors``, a fixed date so a re-import adds nothing);
* the ``official-<list>`` subsets (:func:`official_subsets`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fercurate.annotations import append_events, make_event
from fercurate.atomic import atomic_path
from fercurate.errors import InputError, RejectsError
from fercurate.layers import read_layer, write_layer
from fercurate.manifest import Manifest, read_manifest
from fercurate.subsets.list_files import (
    DATASET_FOLDERS,
    FERPLUS_OCCLUSION_CODES,
    KNOWN_OTHER_FILES,
    LIST_NAMES,
    LIST_SPECS,
    ListStats,
    manifest_keys,
    occlusion_types,
    parse_list,
)
from fercurate.subsets.names import OFFICIAL_PREFIX, OFFICIAL_RULE
from fercurate.subsets.store import SubsetInfo, write_subset
from fercurate.workspace import Workspace, layer_path

OFFICIAL_LAYER = "official"
ANNOTATOR = "ran-authors"
# The lists carry no dates; events get the day the paper (and the lists) went public, arXiv
# 1905.04075 v1, so re-importing the same list yields the same event ids and adds nothing.
LABELLED_AT = datetime(2019, 5, 10, tzinfo=timezone.utc)

OFFICIAL_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("list", pa.string(), nullable=False),
        pa.field("label_id", pa.int8()),
        pa.field("source_code", pa.string()),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("line", pa.int32(), nullable=False),
    ]
)
UNMATCHED_SCHEMA = pa.schema(
    [
        pa.field("list", pa.string()),
        pa.field("file", pa.string(), nullable=False),
        pa.field("line", pa.int32()),
        pa.field("entry", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
    ]
)


@dataclass
class ImportResult:
    """What ``import-ran-lists`` did, for the CLI and tests."""

    manifest_path: Path
    dataset: str
    layer_path: Path
    unmatched_path: Path
    annotations_path: Path | None
    lists: list[ListStats]
    unmatched_examples: list[str]
    events_added: int = 0
    events_present: int = 0
    subsets: list[SubsetInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unmatched(self) -> int:
        return sum(s.unmatched for s in self.lists)

    @property
    def duplicates(self) -> int:
        return sum(s.duplicates for s in self.lists)

    def summary(self) -> str:
        head = (f"{'list':<14} {'file':<58} {'lines':>6} {'matched':>7} {'dup':>4} {'unmatched':>9} "
                f"{'label≠manifest':>14}")
        lines = [f"{self.dataset}: {len(self.lists)} official RAN lists -> {self.layer_path}", head]
        for s in self.lists:
            lines.append(f"{s.name:<14} {s.file:<58} {s.lines:>6,} {s.matched:>7,} {s.duplicates:>4,} "
                         f"{s.unmatched:>9,} {s.label_disagreements:>14,}")
        for s in self.lists:
            if s.occlusion_types:
                types = ", ".join(f"{t} {n:,}" for t, n in s.occlusion_types.items())
                lines.append(f"{s.name} types: {types}")
        if self.annotations_path is not None:
            lines.append(f"occlusion events: {self.events_added:,} added, {self.events_present:,} already present "
                         f"-> {self.annotations_path}")
        not_imported = self.unmatched + self.duplicates
        lines.append(f"lines not imported: {self.unmatched:,} unmatched/malformed, {self.duplicates:,} duplicates "
                     f"-> {self.unmatched_path}")
        lines += [f"  {e}" for e in self.unmatched_examples]
        if not_imported and len(self.unmatched_examples) < not_imported:
            lines.append(f"  ... ({not_imported - len(self.unmatched_examples):,} more in the table)")
        for s in self.lists:
            lines += [f"{s.name}: {n}" for n in s.notes]
        lines += self.notes
        if self.subsets:
            lines.append("subsets: " + ", ".join(f"{s.name} {s.size:,}" for s in self.subsets))
        return "\n".join(lines)


def import_ran_lists(
    lists_dir: str | os.PathLike,
    manifest: str | os.PathLike,
    *,
    workspace: Workspace | None = None,
    strict: bool = False,
) -> ImportResult:
    """Import the official RAN lists of the manifest's dataset (see the module docstring)."""
    root = Path(lists_dir).expanduser()
    if not root.is_dir():
        raise InputError(f"{root}: RAN lists folder not found")
    ws = workspace or Workspace.choose(manifest=manifest)
    m = read_manifest(manifest)
    if m.dataset not in LIST_SPECS:
        raise InputError(
            f"{m.path}: dataset {m.dataset!r} has no official RAN lists (they exist for {', '.join(LIST_SPECS)})"
        )
    specs = [s for s in LIST_SPECS[m.dataset] if (root / s.path).exists()]
    if not specs:
        expected = ", ".join(s.path for s in LIST_SPECS[m.dataset])
        raise InputError(f"{root}: no official RAN lists for {m.dataset} (expected {expected})")
    notes = [f"not found, skipped: {s.path}" for s in LIST_SPECS[m.dataset] if not (root / s.path).exists()]
    notes += _other_files(root, m.dataset)

    keys, ambiguous, labels = manifest_keys(m)
    all_stats, layer_rows, bad_rows = [], [], []
    for spec in specs:
        stats, rows, bad = parse_list(root, spec, m.dataset, keys, ambiguous, labels)
        all_stats.append(stats)
        layer_rows += rows
        bad_rows += bad

    out_layer = layer_path(m.path, OFFICIAL_LAYER)
    out_unmatched = layer_path(m.path, f"{OFFICIAL_LAYER}.unmatched")
    _write_unmatched(bad_rows, out_unmatched)
    examples = [f"{b['file']}:{b['line']}: {b['reason']} ({b['entry']})" for b in bad_rows[:5]]
    result = ImportResult(m.path, m.dataset, out_layer, out_unmatched, None, all_stats, examples, notes=notes)
    unmatched = sum(s.unmatched for s in all_stats)
    if strict and unmatched:
        raise RejectsError(
            f"{unmatched:,} list lines unmatched or malformed (--strict); first: {examples[0]}; "
            f"all in {out_unmatched}"
        )
    if not layer_rows:
        raise InputError(
            f"{root}: no list line matched a row of {m.path}"
            + (f"; first: {examples[0]} (all in {out_unmatched})" if examples else "")
        )
    layer_rows.sort(key=lambda r: (r["sample_id"], LIST_NAMES.index(r["list"]), r["line"]))
    table = pa.Table.from_pylist(layer_rows, schema=OFFICIAL_SCHEMA)
    occlusion = [r for r in layer_rows if r["list"] == "occlusion"]
    events = [
        make_event(r["sample_id"], occlusion_types(m.dataset, r["source_code"]), annotator=ANNOTATOR,
                   source="official", labelled_at=LABELLED_AT, source_code=r["source_code"],
                   origin=f"{r['source_file']}:{r['line']}")
        for r in sorted(occlusion, key=lambda r: r["line"])
    ]

    def add_events() -> None:  # with the layer: a full disk leaves both as they were, never one of them
        if events:
            result.annotations_path = ws.annotation_path(m.name)
            result.events_added, result.events_present = append_events(result.annotations_path, events)

    write_layer(table, out_layer, layer=OFFICIAL_LAYER, manifest=m.name, sort=False, before_replace=add_events,
                provenance={
                    "lists_dir": str(root.resolve()),
                    "files": [s.path for s in specs],
                    "counts": {s.name: s.matched for s in all_stats},
                    "unmatched": unmatched,
                    "duplicates": sum(s.duplicates for s in all_stats),
                })
    result.subsets = official_subsets(m, workspace=ws)
    return result


def _other_files(root: Path, dataset: str) -> list[str]:
    """Notes for files in the dataset's folders that are not imported (never silently ignored)."""
    known = {s.path for s in LIST_SPECS[dataset]} | {s.label_file for s in LIST_SPECS[dataset] if s.label_file}
    notes = []
    for folder in DATASET_FOLDERS[dataset]:
        base = root / folder
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*.txt")):
            rel = p.relative_to(root).as_posix()
            if rel in known or p.name.lower() == "readme.txt":
                continue
            why = KNOWN_OTHER_FILES.get(rel, "not a known RAN list")
            notes.append(f"not imported: {rel} ({why})")
    return notes


def _write_unmatched(rows: list[dict[str, Any]], path: Path) -> None:
    table = pa.Table.from_pylist(rows, schema=UNMATCHED_SCHEMA)
    with atomic_path(path, suffix=".parquet.tmp") as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_official(manifest: str | os.PathLike) -> pa.Table:
    """The official layer of a manifest (InputError if the lists were never imported)."""
    table, _ = read_layer(layer_path(manifest, OFFICIAL_LAYER), OFFICIAL_LAYER)
    return table


def official_subsets(manifest: Manifest, *, workspace: Workspace | None = None) -> list[SubsetInfo]:
    """One subset per official RAN list imported for this manifest (``official-<list>``).

    The FERPlus occlusion list also gives one subset per occlusion type it codes
    (``official-occlusion-upper`` ..., the rows of RAN Table I).
    """
    lp = layer_path(manifest.path, OFFICIAL_LAYER)
    if not lp.exists():
        raise InputError(f"{lp}: no official lists imported; run 'fercurate import-ran-lists DIR --manifest {manifest.path}'")
    table, _ = read_layer(lp, OFFICIAL_LAYER)
    out = []
    lists = table.column("list").to_pylist()
    ids = table.column("sample_id").to_pylist()
    files = table.column("source_file").to_pylist()
    for name in sorted(set(lists)):
        members = sorted({i for i, lst in zip(ids, lists) if lst == name})
        source = sorted({f for f, lst in zip(files, lists) if lst == name})
        out.append(write_subset(manifest, f"{OFFICIAL_PREFIX}{name}", members, rule=f"{OFFICIAL_RULE}{name}",
                                source=", ".join(source), workspace=workspace))
    codes = table.column("source_code").to_pylist()
    if manifest.dataset == "ferplus" and "occlusion" in lists:
        for code, types in sorted(FERPLUS_OCCLUSION_CODES.items()):
            members = sorted({i for i, lst, c in zip(ids, lists, codes) if lst == "occlusion" and c == code})
            if members:
                sub = f"occlusion-{types[0]}"
                source = sorted({f for f, lst in zip(files, lists) if lst == "occlusion"})
                out.append(write_subset(manifest, f"{OFFICIAL_PREFIX}{sub}", members, rule=f"{OFFICIAL_RULE}{sub}",
                                        source=f"{', '.join(source)} (code {code})", workspace=workspace))
    return out
