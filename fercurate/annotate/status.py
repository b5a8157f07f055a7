"""``status``: how far occlusion labelling of a manifest has come, who did it, and how well people agree.

Counts come from the annotation table's current labels (adjudication > human > official;
suggestions are not labels; withdrawn labels are no labels), restricted to the manifest's samples
(optionally one split). Agreement is reported first over independent labels (made blind, see
:data:`fercurate.annotations.BLIND_ORIGIN`) with bootstrap confidence intervals, then over all
labels when that differs (marked "not independent": a second annotator may have seen the first's
label). Agreement is documented in :mod:`fercurate.annotate.agreement`, disagreements and
adjudication in :mod:`fercurate.annotate.adjudicate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.compute as pc

from fercurate.annotate.adjudicate import disagreements
from fercurate.annotate.agreement import PairAgreement, conflicts, pairwise_agreement, rater_labels
from fercurate.annotations import LABEL_SOURCES, is_blind, latest_labels, read_events
from fercurate.manifest import read_manifest
from fercurate.schema import OCCLUSION_TYPES, OCCLUSION_VALUES
from fercurate.workspace import Workspace


@dataclass
class AnnotatorStats:
    """One annotator's activity for one source (an adjudicator's decisions are its own row).

    ``samples``: samples where they hold a label now (withdrawn ones not counted); ``labels``: label
    events; ``withdrawals``: withdrawal events; ``adjudications``: decisions made (samples);
    ``blind``: samples where their current label was made blind.
    """

    annotator: str
    source: str
    samples: int
    events: int
    first: str
    last: str
    labels: int = 0
    withdrawals: int = 0
    adjudications: int = 0
    blind: int = 0


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
    agreement_independent: list[PairAgreement] = field(default_factory=list)
    independent_samples: int = 0
    n_disagreements: int = 0
    disagreement_examples: list[dict[str, Any]] = field(default_factory=list)
    adjudicated: int = 0
    pending_in_app: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def labelled(self) -> int:
        return self.human + self.official_only

    @property
    def all_labels_differ(self) -> bool:
        """Whether agreement over all labels differs from agreement over independent ones."""
        return _agreement_key(self.agreement) != _agreement_key(self.agreement_independent)

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)

        def interval(ci: tuple[float, float]) -> list[float | None]:
            return [num(ci[0]), num(ci[1])]

        def pairs(agreement: list[PairAgreement]) -> list[dict[str, Any]]:
            return [
                {
                    "a": p.a, "b": p.b, "shared": p.shared, "independent": p.independent,
                    "agreement": num(p.agreement),
                    "exact_kappa": num(p.exact_kappa), "exact_ci": interval(p.exact_ci),
                    "occluded_kappa": num(p.occluded_kappa), "occluded_ci": interval(p.occluded_ci),
                    "type_kappa": {t: num(k) for t, k in p.type_kappa.items()},
                    "type_ci": {t: interval(c) for t, c in p.type_ci.items()},
                    "type_n": p.type_n,
                    "occluded_positives": p.occluded_positives,
                    "type_positives": p.type_positives,
                    "warnings": p.warnings(),
                }
                for p in agreement
            ]

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
            "independent_samples": self.independent_samples,
            "agreement_independent": pairs(self.agreement_independent),
            "agreement": pairs(self.agreement),
            "agreement_all_differs": self.all_labels_differ,
            "disagreements": self.n_disagreements,
            "disagreement_examples": self.disagreement_examples,
            "adjudicated": self.adjudicated,
            "pending_in_app": self.pending_in_app,
            "notes": self.notes,
        }

    def render(self) -> str:
        def pct(n: int) -> str:
            return f"{100 * n / self.total:5.1f}%" if self.total else "  n/a"

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
            what = (f"{a.adjudications:>7,} decided" if a.source == "adjudication"
                    else f"{a.samples:>7,} samples ({a.labels:,} labels, {a.withdrawals:,} withdrawn, {a.blind:,} blind)")
            lines.append(f"  {a.annotator:<16} {a.source:<12} {what}  {a.events:,} events  {a.first} .. {a.last}")
        lines.append(f"independent labels: {self.independent_samples:,} sample(s) labelled blind by two or more people")
        lines.append("agreement over independent (blind) labels, Cohen's kappa [95% bootstrap CI] n=shared samples:")
        lines.extend(_render_pairs(self.agreement_independent, "  (needs two annotators labelling the same samples blind)"))
        if self.all_labels_differ:
            lines.append("agreement over all labels (not independent: an annotator may have seen another's label):")
            lines.extend(_render_pairs(self.agreement, "  (needs two annotators labelling the same samples)"))
        lines.append(f"conflicts: {self.n_conflicts:,} sample(s) where people's latest labels differ; "
                     f"open (not adjudicated): {self.n_disagreements:,}; adjudicated: {self.adjudicated:,}")
        for c in self.disagreement_examples:
            lines.append("  " + c["sample_id"] + ": " + "; ".join(f"{a}={t}" for a, t in c["labels"].items()))
        if self.n_disagreements:
            lines.append(f"  decide: fercurate annotate adjudicate {self.manifest} (or launch {self.manifest} --adjudicate)")
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
    labels = latest_labels(events, source=LABEL_SOURCES)
    suggested_ids = set(events.filter(pc.equal(source, "suggestion")).column("sample_id").to_pylist())
    human_ids = set(labels.loc[labels["source"].isin(["human", "adjudication"]), "sample_id"])  # people's word
    labelled_ids = set(labels["sample_id"])
    per_type = {t: 0 for t in OCCLUSION_VALUES}
    for types in labels["types"]:
        for t in types:
            per_type[t] = per_type.get(t, 0) + 1
    per_type = {t: n for t, n in per_type.items() if n or t in OCCLUSION_TYPES}
    conf = conflicts(events)
    open_ = disagreements(events)
    independent = rater_labels(events, independent_only=True)
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
        agreement_independent=pairwise_agreement(events, independent_only=True),
        independent_samples=int((independent.groupby("sample_id")["annotator"].nunique() >= 2).sum()),
        n_disagreements=len(open_),
        disagreement_examples=[
            {"sample_id": r.sample_id, "labels": r.labels} for r in open_.head(examples).itertuples()
        ],
        adjudicated=int((labels["source"] == "adjudication").sum()) if len(labels) else 0,
    )
    if app:
        report.pending_in_app = _pending_in_app(manifest.name, manifest.path, report, ws)
    return report


def _annotator_stats(events) -> list[AnnotatorStats]:
    """Per (annotator, source): current labels, label / withdrawal / decision events, blind labels."""
    if events.num_rows == 0:
        return []
    df = events.select(["sample_id", "annotator", "source", "types", "labelled_at"]).to_pandas()
    df["withdrawal"] = df["types"].map(len) == 0
    live = latest_labels(events, per_annotator=True, by_source=True)
    live["blind"] = [is_blind(o) for o in live["origin"]]
    live_counts = live.groupby(["annotator", "source"]).agg(samples=("sample_id", "nunique"), blind=("blind", "sum"))
    out = []
    for (who, src), part in df.groupby(["annotator", "source"], sort=True):
        labels = int((~part["withdrawal"]).sum())
        now = live_counts.loc[(who, src)] if (who, src) in live_counts.index else None
        out.append(
            AnnotatorStats(
                annotator=who,
                source=src,
                samples=int(now["samples"]) if now is not None else 0,
                events=len(part),
                first=pd.Timestamp(part["labelled_at"].min()).strftime("%Y-%m-%d %H:%M"),
                last=pd.Timestamp(part["labelled_at"].max()).strftime("%Y-%m-%d %H:%M"),
                labels=labels if src != "adjudication" else 0,
                withdrawals=int(part["withdrawal"].sum()),
                adjudications=int(part.loc[~part["withdrawal"], "sample_id"].nunique()) if src == "adjudication" else 0,
                blind=int(now["blind"]) if now is not None and src == "human" else 0,
            )
        )
    return out


def _agreement_key(pairs: list[PairAgreement]) -> list[tuple]:
    """What makes two agreement lists the same for the reader (pairs, shared samples, kappas)."""
    def r(x: float) -> float | None:
        return None if math.isnan(x) else round(x, 6)

    return [(p.a, p.b, p.shared, r(p.exact_kappa), r(p.occluded_kappa),
             tuple((t, r(k)) for t, k in p.type_kappa.items())) for p in pairs]


def _kappa_with_ci(kappa: float, ci: tuple[float, float], n: int, positives: int | None = None,
                   warning: str | None = None) -> str:
    if math.isnan(kappa):
        return f"n/a n={n}"
    bounds = "" if math.isnan(ci[0]) else f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    pos = "" if positives is None else f" positives={positives}"
    return f"{kappa:.2f}{bounds} n={n}{pos}" + (f" (warning: {warning})" if warning else "")


def _render_pairs(pairs: list[PairAgreement], empty: str) -> list[str]:
    if not pairs:
        return [empty]
    lines = []
    for p in pairs:
        warn = p.warnings()
        lines.append(f"  {p.a} vs {p.b}: shared {p.shared:,}, same set {100 * p.agreement:.1f}%, "
                     f"exact {_kappa_with_ci(p.exact_kappa, p.exact_ci, p.shared)}, "
                     f"occluded {_kappa_with_ci(p.occluded_kappa, p.occluded_ci, p.shared, p.occluded_positives)}"
                     + (f" (warning: {warn['occluded']})" if "occluded" in warn else ""))
        for t, x in p.type_kappa.items():
            lines.append(f"    {t:<11} {_kappa_with_ci(x, p.type_ci[t], p.type_n[t], p.type_positives.get(t), warn.get(t))}")
    return lines


def _pending_in_app(manifest_name: str, manifest_path: Path, report: StatusReport, workspace: Workspace) -> int | None:
    """Tags changed by hand in the App (shared dataset and every annotator's own, in their own
    databases too) and not pulled yet (None when there is no App dataset)."""
    from fercurate.annotate.database import DatabaseError, connect
    from fercurate.annotate.dataset import find_dataset_name

    try:
        fo = connect(workspace)
    except DatabaseError as exc:
        report.notes.append(f"App state unknown: {exc}")
        return None
    from fercurate.annotate.pull import annotator_datasets, databases_with, pending_count, pending_in

    name = find_dataset_name(fo, manifest_name, manifest_path)
    here = ([fo.load_dataset(name)] if name else []) + annotator_datasets(fo, manifest_path)
    elsewhere = databases_with(manifest_path)
    if not here and not elsewhere:
        return None
    return pending_count(here) + sum(pending_in(db, Path(manifest_path).resolve(), workspace) for db in elsewhere)
