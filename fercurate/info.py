"""``fercurate info``: what a manifest holds (counts per split x label, rejects, flags, layers)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fercurate.errors import InputError
from fercurate.layers import read_layer
from fercurate.manifest import read_manifest, read_rejects, rejects_path
from fercurate.schema import CANONICAL_LABELS
from fercurate.workspace import layer_path, manifest_name

NO_LABEL = "(none)"
# Manifest source keys already shown elsewhere (rows/rejects) or too long for the text view.
_SOURCE_HIDDEN = {"rows", "rejected", "notes"}


@dataclass
class ManifestInfo:
    path: Path
    name: str
    dataset: str
    schema_version: str
    root: Path
    rows: int
    counts: pd.DataFrame  # split x label (+ totals)
    rejects: dict[str, int]
    flags: dict[str, int]
    layers: list[str]
    source: dict[str, Any] = field(default_factory=dict)
    official: dict[str, int] = field(default_factory=dict)  # official RAN list -> members
    official_unmatched: int = 0

    def render(self) -> str:
        lines = [
            f"{self.path}  ({self.name}: dataset {self.dataset}, schema v{self.schema_version})",
            f"root: {self.root}",
            f"rows: {self.rows:,}",
            "",
            self.counts.to_string(),
            "",
        ]
        if self.rejects:
            total = sum(self.rejects.values())
            lines.append(f"rejects: {total:,} (" + ", ".join(f"{k} {v:,}" for k, v in self.rejects.items()) + ")")
        else:
            lines.append("rejects: 0")
        if self.flags:
            ordered = sorted(self.flags.items(), key=lambda kv: (-kv[1], kv[0]))
            lines.append("flags: " + ", ".join(f"{k} {v:,}" for k, v in ordered))
        lines.append("layers: " + (", ".join(self.layers) if self.layers else "none"))
        if self.official:
            counts = ", ".join(f"{k} {v:,}" for k, v in self.official.items())
            extra = f"; {self.official_unmatched:,} lines not imported" if self.official_unmatched else ""
            lines.append(f"official RAN lists: {counts}{extra}")
        described = {
            k: v for k, v in self.source.items() if k not in _SOURCE_HIDDEN and not isinstance(v, (dict, list))
        }
        if described:
            lines.append("source: " + "; ".join(f"{k}={v}" for k, v in sorted(described.items())))
        notes = self.source.get("notes") or []
        if notes:
            lines.append("ingest notes:")
            lines += [f"  - {n}" for n in notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Everything shown, as plain JSON-ready values."""
        return {
            "path": str(self.path),
            "name": self.name,
            "dataset": self.dataset,
            "schema_version": self.schema_version,
            "root": str(self.root),
            "rows": self.rows,
            "counts": {s: {k: int(v) for k, v in self.counts[s].items()} for s in self.counts.columns},
            "rejects": self.rejects,
            "flags": self.flags,
            "layers": self.layers,
            "official": self.official,
            "official_unmatched": self.official_unmatched,
            "source": self.source,
        }


def manifest_info(path: str | os.PathLike) -> ManifestInfo:
    """Summarise a manifest and the files beside it."""
    m = read_manifest(path)
    t = m.table
    df = pd.DataFrame(
        {
            "split": t.column("split").cast("string").to_pandas(),
            "label": t.column("label").cast("string").to_pandas().fillna(NO_LABEL),
        }
    )
    counts = pd.crosstab(df["label"], df["split"], margins=True, margins_name="total")
    order = [lab for lab in (*CANONICAL_LABELS, NO_LABEL) if lab in counts.index] + ["total"]
    split_order = [s for s in ("train", "val", "test") if s in counts.columns]
    split_order += [s for s in counts.columns if s not in split_order and s != "total"] + ["total"]
    counts = counts.loc[order, split_order]

    flags: Counter = Counter()
    flat = pc.list_flatten(t.column("flags"))
    if len(flat):
        for item in pc.value_counts(flat).to_pylist():
            flags[str(item["values"])] += item["counts"]

    reasons = read_rejects(rejects_path(m.path)).column("reason").to_pylist()
    rej = dict(Counter(str(r).split(":")[0] for r in reasons).most_common())

    stem = manifest_name(m.path)
    layers = sorted(
        p.name[len(stem) + 1 : -len(".parquet")]
        for p in m.path.parent.glob(f"{stem}.*.parquet")
        if not p.name.endswith((".rejects.parquet", ".unmatched.parquet"))
    )
    official, official_unmatched = _official_summary(m.path)
    return ManifestInfo(
        path=m.path,
        name=m.name,
        dataset=m.dataset,
        schema_version=m.meta.schema_version,
        root=m.root,
        rows=len(m),
        counts=counts,
        rejects=rej,
        flags=dict(flags),
        layers=layers,
        source=m.meta.source,
        official=official,
        official_unmatched=official_unmatched,
    )


def _official_summary(manifest_path: Path) -> tuple[dict[str, int], int]:
    """Members per imported official RAN list, and how many list lines were not imported."""
    layer = layer_path(manifest_path, "official")
    if not layer.exists():
        return {}, 0
    lists = read_layer(layer, "official", columns=["list"])[0].column("list")
    counts = {v["values"]: v["counts"] for v in pc.value_counts(lists).to_pylist()}
    unmatched = layer_path(manifest_path, "official.unmatched")
    try:
        n_unmatched = pq.read_metadata(unmatched).num_rows if unmatched.exists() else 0
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{unmatched}: not a readable Parquet file ({exc}); import the lists again") from exc
    return dict(sorted(counts.items())), n_unmatched
