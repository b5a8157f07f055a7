"""``status``: how far occlusion labelling of a manifest has come, who did it, and how well people agree.

Counts come from the annotation table's current labels (human > official; suggestions are not
labels), restricted to the manifest's samples (optionally one split). Agreement is documented in
:mod:`fercurate.annotate.agreement`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from fercurate.annotate.agreement import PairAgreement, conflicts, pairwise_agreement
from fercurate.annotations import current_labels, label_events, read_events
from fercurate.manifest import read_manifest
from fercurate.schema import OCCLUSION_VALUES
from fercurate.workspace import Workspace


@dataclass
class AnnotatorStats:
    annotator: str
    source: str
    samples: int
    events: int
    first: str
    last: str


@dataclass
class StatusReport:
    """Everything ``fercurate annotate status`` prints (also as JSON)."""

    manifest: str
    path: Path
    split: str | None
    total: int
    human: int
    official_only: int
    unlabelled: int
    suggested: int
    occluded: int
    per_type: dict[str, int]
    annotators: list[AnnotatorStats]
    n_conflicts: int
    conflict_examples: list[dict[str, Any]]
    agreement: list[PairAgreement]
    pending_in_app: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def labelled(self) -> int:
        return self.human + self.official_only

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)

        return {
            "manifest": self.manifest,
            "annotations": str(self.path),
            "split": self.split,
            "total": self.total,
            "labelled": self.labelled,
            "human": self.human,
            "official_only": self.official_only,
            "remaining": self.unlabelled,
            "suggested": self.suggested,
            "occluded": self.occluded,
            "per_type": self.per_type,
            "annotators": [a.__dict__ for a in self.annotators],
            "conflicts": self.n_conflicts,
            "conflict_examples": self.conflict_examples,
            "agreement": [
                {
                    "a": p.a, "b": p.b, "shared": p.shared, "agreement": num(p.agreement),
                    "exact_kappa": num(p.exact_kappa), "occluded_kappa": num(p.occluded_kappa),
                    "type_kappa": {t: num(k) for t, k in p.type_kappa.items()}, "type_n": p.type_n,
                }
                for p in self.agreement
            ],
            "pending_in_app": self.pending_in_app,
            "notes": self.notes,
        }

    def render(self) -> str:
        def pct(n: int) -> str:
            return f"{100 * n / self.total:5.1f}%" if self.total else "  n/a"

        def k(x: float) -> str:
            return "  n/a" if x is None or math.isnan(x) else f"{x:5.2f}"

        where = f" (split {self.split})" if self.split else ""
        lines = [
            f"{self.manifest}{where}: {self.total:,} samples; labels in {self.path}",
            f"  labelled      {self.labelled:>8,} {pct(self.labelled)}  (by people {self.human:,}, official list only "
            f"{self.official_only:,})",
            f"  remaining     {self.unlabelled:>8,} {pct(self.unlabelled)}  (with a suggestion: {self.suggested:,})",
            f"  occluded      {self.occluded:>8,} {pct(self.occluded)}",
        ]
        if self.pending_in_app is not None:
            lines.append(f"  in the App, not pulled yet: {self.pending_in_app:,} (run 'fercurate annotate pull')")
        lines.append("per type (current labels):")
        for t, n in self.per_type.items():
            lines.append(f"  {t:<14}{n:>8,}")
        lines.append("per annotator:")
        if not self.annotators:
            lines.append("  (none yet)")
        for a in self.annotators:
            lines.append(f"  {a.annotator:<16} {a.source:<9} {a.samples:>7,} samples {a.events:>7,} events  "
                         f"{a.first} .. {a.last}")
        lines.append(f"conflicts: {self.n_conflicts:,} sample(s) where people's latest labels differ")
        for c in self.conflict_examples:
            lines.append("  " + c["sample_id"] + ": " + "; ".join(f"{a}={t}" for a, t in c["labels"].items()))
        lines.append("agreement (Cohen's kappa on shared samples; exact = same type set, occl = occluded or not):")
        if not self.agreement:
            lines.append("  (needs two annotators labelling the same samples)")
        for p in self.agreement:
            per = " ".join(f"{t}={k(x).strip()}(n={p.type_n[t]})" for t, x in p.type_kappa.items())
            lines.append(
                f"  {p.a} vs {p.b}: shared {p.shared:,}, same set {100 * p.agreement:.1f}%, "
                f"exact {k(p.exact_kappa).strip()}, occl {k(p.occluded_kappa).strip()}; per type {per}"
            )
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def status(
    name: str,
    *,
    split: str | None = None,
    workspace: Workspace | None = None,
    app: bool = True,
    examples: int = 5,
) -> StatusReport:
    """Progress, per-type counts, per-annotator activity, conflicts and agreement for manifest ``name``.

    With ``app`` the App dataset (if any) is asked how many tag changes are not pulled yet.
    """
    ws = workspace or Workspace.current()
    manifest = read_manifest(ws.resolve_manifest(name))
    if split:
        manifest = manifest.where_split(split)
    ids = manifest.table.column("sample_id")
    path = ws.annotation_path(manifest.name)
    events = read_events(path)
    events = events.filter(pc.is_in(events.column("sample_id"), value_set=ids))
    source = events.column("source")
    labels = current_labels(label_events(events))
    suggested_ids = set(events.filter(pc.equal(source, "suggestion")).column("sample_id").to_pylist())
    human_ids = set(labels.loc[labels["source"] == "human", "sample_id"])
    labelled_ids = set(labels["sample_id"])
    per_type = {t: 0 for t in OCCLUSION_VALUES}
    for types in labels["types"]:
        for t in types:
            per_type[t] = per_type.get(t, 0) + 1
    per_type = {t: n for t, n in per_type.items() if n or t in OCCLUSION_VALUES[:6]}
    conf = conflicts(events)
    report = StatusReport(
        manifest=manifest.name,
        path=path,
        split=split,
        total=len(manifest),
        human=len(human_ids),
        official_only=len(labelled_ids - human_ids),
        unlabelled=len(manifest) - len(labelled_ids),
        suggested=len(suggested_ids - labelled_ids),
        occluded=int(labels["occluded"].sum()) if len(labels) else 0,
        per_type=per_type,
        annotators=_annotator_stats(events),
        n_conflicts=len(conf),
        conflict_examples=[
            {"sample_id": r.sample_id, "labels": r.labels} for r in conf.head(examples).itertuples()
        ],
        agreement=pairwise_agreement(events),
    )
    if app:
        report.pending_in_app = _pending_in_app(manifest.name, manifest.path, report)
    return report


def _annotator_stats(events) -> list[AnnotatorStats]:
    if events.num_rows == 0:
        return []
    df = events.select(["sample_id", "annotator", "source", "labelled_at"]).to_pandas()
    out = []
    for (who, src), part in df.groupby(["annotator", "source"], sort=True):
        out.append(
            AnnotatorStats(
                annotator=who,
                source=src,
                samples=int(part["sample_id"].nunique()),
                events=len(part),
                first=pd.Timestamp(part["labelled_at"].min()).strftime("%Y-%m-%d %H:%M"),
                last=pd.Timestamp(part["labelled_at"].max()).strftime("%Y-%m-%d %H:%M"),
            )
        )
    return out


def _pending_in_app(manifest_name: str, manifest_path: Path, report: StatusReport) -> int | None:
    """Samples whose App tags differ from what was last pulled (None when there is no App dataset)."""
    from fercurate.annotate.database import DatabaseError, connect
    from fercurate.annotate.dataset import find_dataset_name
    from fercurate.annotate.vocabulary import occlusion_tags

    try:
        fo = connect()
    except DatabaseError as exc:
        report.notes.append(f"App state unknown: {exc}")
        return None
    name = find_dataset_name(fo, manifest_name, manifest_path)
    if name is None:
        return None
    from fercurate.annotate.pull import pending_rows

    rows = pending_rows(fo.load_dataset(name))
    tags, synced = rows["tags"], rows["occ_synced"]
    return int(np.sum([occlusion_tags(t or []) != sorted(s or []) for t, s in zip(tags, synced)]))
