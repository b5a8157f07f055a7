"""Storing subsets: a subset is a layer file ``manifests/subsets/<manifest>-<subset>.parquet``.

One row per member with the rule that admitted it (``rule``, ``threshold``, ``source``, ``built_at``
and the value compared, e.g. the pose angle), and the manifest it belongs to in its metadata, so
``fercurate eval --subset pose45`` can find both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from fercurate.errors import InputError
from fercurate.layers import read_layer, write_layer
from fercurate.manifest import Manifest
from fercurate.workspace import Workspace

SUBSET_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("threshold", pa.float64()),
        pa.field("value", pa.float64()),  # what was compared with the threshold (e.g. max |angle|)
        pa.field("source", pa.string()),
        pa.field("built_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class SubsetInfo:
    """A stored subset: its name and rule, its size, its file and the manifest it belongs to."""

    name: str
    manifest: str
    dataset: str
    rule: str
    size: int
    path: Path
    manifest_path: Path | None
    built_at: str | None = None

    def line(self) -> str:
        return f"{self.name:<28} {self.rule:<48} {self.size:>7,}  {self.dataset} ({self.manifest})"


_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


def subset_file_name(subset: str) -> str:
    """A safe subset name: lower case, ``|`` and spaces become ``-or-`` / ``_``."""
    name = subset.strip().lower().replace("|", "-or-").replace(" ", "_")
    if not _NAME_RE.match(name):
        raise InputError(f"invalid subset name {subset!r} (use letters, digits, '-', '_', '.')")
    return name


def subset_path(manifest_name: str, subset: str, workspace: Workspace | None = None) -> Path:
    """Where the subset ``subset`` of the manifest ``manifest_name`` is stored."""
    ws = workspace or Workspace.current()
    return ws.subsets / f"{manifest_name}-{subset_file_name(subset)}.parquet"


def write_subset(
    manifest: Manifest,
    subset: str,
    sample_ids: Sequence[str],
    *,
    rule: str,
    threshold: float | None = None,
    values: Sequence[float] | None = None,
    source: str | None = None,
    workspace: Workspace | None = None,
) -> SubsetInfo:
    """Write the subset file; every id must belong to ``manifest`` (else InputError)."""
    name = subset_file_name(subset)
    ids = pa.array(list(sample_ids), type=pa.string())
    known = manifest.table.column("sample_id")
    outside = pc.invert(pc.is_in(ids, value_set=known))
    if pc.any(outside).as_py():
        example = ids.filter(outside)[0].as_py()
        raise InputError(f"subset {name}: {pc.sum(outside).as_py()} ids not in {manifest.path}, e.g. {example}")
    n = len(ids)
    now = datetime.now(timezone.utc)
    table = pa.Table.from_arrays(
        [
            ids,
            pa.array([rule] * n, type=pa.string()),
            pa.array([threshold] * n, type=pa.float64()),
            pa.array(values if values is not None else [None] * n, type=pa.float64()),
            pa.array([source] * n, type=pa.string()),
            pa.array([now] * n, type=pa.timestamp("us", tz="UTC")),
        ],
        schema=SUBSET_SCHEMA,
    )
    path = subset_path(manifest.name, name, workspace)
    write_layer(
        table,
        path,
        layer="subset",
        manifest=manifest.name,
        provenance={
            "subset": name,
            "manifest_path": str(manifest.path.resolve()) if manifest.path else None,
            "dataset": manifest.dataset,
            "rule": rule,
            "threshold": threshold,
            "source": source,
            "size": n,
            "built_at": now.isoformat(),
        },
    )
    return SubsetInfo(name, manifest.name, manifest.dataset, rule, n, path, manifest.path, now.isoformat())


def read_subset(path: str | os.PathLike) -> tuple[pa.Table, dict]:
    """The subset's rows and provenance."""
    table, meta = read_layer(path, "subset", columns=["sample_id"])
    return table, meta.get("provenance", {}) | {"manifest": meta.get("manifest")}


def read_subset_info(path: Path) -> SubsetInfo:
    """The :class:`SubsetInfo` of one subset file, from its provenance (InputError naming a damaged file)."""
    _, prov = read_subset(path)
    mp = prov.get("manifest_path")
    return SubsetInfo(
        name=prov.get("subset", path.stem),
        manifest=prov.get("manifest", "?"),
        dataset=prov.get("dataset", "?"),
        rule=prov.get("rule", "?"),
        size=int(prov.get("size", 0)),
        path=path,
        manifest_path=Path(mp) if mp else None,
        built_at=prov.get("built_at"),
    )


@dataclass(frozen=True)
class Unreadable:
    """A file that could not be read, and why (the error names the file)."""

    path: Path
    error: str

    def __str__(self) -> str:
        return self.error


def list_subsets(workspace: Workspace | None = None, manifest: str | None = None) -> list[SubsetInfo]:
    """All readable subsets in the workspace (optionally of one manifest), sorted by manifest and name;
    :func:`scan_subsets` also says which files could not be read."""
    return scan_subsets(workspace, manifest)[0]


def scan_subsets(
    workspace: Workspace | None = None, manifest: str | None = None
) -> tuple[list[SubsetInfo], list[Unreadable]]:
    """The subsets of the workspace (optionally of one manifest) and the subset files that could not be
    read (for a manifest: those whose file name starts with its name)."""
    ws = workspace or Workspace.current()
    out, bad = [], []
    for path in sorted(ws.subsets.glob("*.parquet")) if ws.subsets.exists() else []:
        try:
            info = read_subset_info(path)
        except InputError as exc:
            if not manifest or path.name.startswith(f"{manifest}-"):
                bad.append(Unreadable(path, str(exc)))
            continue
        if manifest and info.manifest != manifest:
            continue
        out.append(info)
    return sorted(out, key=lambda s: (s.manifest, s.name)), bad


def subset_ids(info: SubsetInfo) -> set[str]:
    """The sample ids of a subset's members."""
    table, _ = read_subset(info.path)
    return set(table.column("sample_id").to_pylist())

