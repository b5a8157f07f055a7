"""``fercurate info``: what a manifest holds (counts per split x label, rejects, flags, layers)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fercurate.manifest import read_manifest, rejects_path
from fercurate.schema import CANONICAL_LABELS
from fercurate.workspace import manifest_name

NO_LABEL = "(none)"


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
            lines.append("flags: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.flags.items())))
        lines.append("layers: " + (", ".join(self.layers) if self.layers else "none"))
        return "\n".join(lines)


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
            flags[str(item["values"]).split(":")[0]] += item["counts"]

    rej: dict[str, int] = {}
    rp = rejects_path(m.path)
    if rp.exists():
        reasons = pq.read_table(rp, columns=["reason"]).column("reason").to_pylist()
        rej = dict(Counter(r.split(":")[0] for r in reasons).most_common())

    stem = manifest_name(m.path)
    layers = sorted(
        p.name[len(stem) + 1 : -len(".parquet")]
        for p in m.path.parent.glob(f"{stem}.*.parquet")
        if not p.name.endswith(".rejects.parquet")
    )
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
    )
