"""Adjudication: the samples where annotators disagree, and a person's recorded decision on each.

A sample is *in disagreement* when the latest human labels of its annotators (withdrawn labels left
out) are not all the same type set and no adjudication at or after the last of those labels stands
(a withdrawn adjudication does not). A decision is an event with ``source="adjudication"``
appended to the annotation history; :func:`fercurate.annotations.latest_labels` makes the latest
one the sample's current label. A later human label re-opens the disagreement if it differs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from fercurate.annotate.agreement import labels_by_sample
from fercurate.annotate.identity import default_annotator
from fercurate.annotations import append_events, latest_labels, make_event, normalise_types, read_events
from fercurate.errors import InputError
from fercurate.manifest import read_manifest
from fercurate.workspace import Workspace

DISAGREEMENT_COLUMNS = ["sample_id", "labels", "n_annotators", "last_labelled_at"]


def disagreements(events: pa.Table, sample_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per open disagreement, sorted by sample_id.

    Columns: ``sample_id``; ``labels`` (annotator -> ``a|b`` types key, annotators sorted);
    ``n_annotators`` (people with a label there); ``last_labelled_at`` (the newest of those labels).
    ``sample_ids`` restricts the answer to those samples.
    """
    humans = latest_labels(events, source="human", per_annotator=True)
    if sample_ids is not None:
        humans = humans[humans["sample_id"].isin(set(sample_ids))]
    if humans.empty:
        return pd.DataFrame(columns=DISAGREEMENT_COLUMNS)
    grouped = humans.assign(types=humans["types"].map(tuple)).groupby("sample_id", sort=True)
    summary = pd.DataFrame(
        {
            "distinct": grouped["types"].nunique(),
            "n_annotators": grouped["annotator"].nunique(),
            "last_labelled_at": grouped["labelled_at"].max(),
        }
    )
    decided = latest_labels(events, source="adjudication", per_annotator=True).groupby("sample_id")["labelled_at"].max()
    summary["decided_at"] = decided.reindex(summary.index)
    settled = summary["decided_at"].notna() & (summary["decided_at"] >= summary["last_labelled_at"])
    open_ids = summary.index[(summary["distinct"] > 1) & ~settled]
    if len(open_ids) == 0:
        return pd.DataFrame(columns=DISAGREEMENT_COLUMNS)
    labels = pd.Series(labels_by_sample(humans[humans["sample_id"].isin(open_ids)]))
    out = pd.DataFrame(
        {
            "sample_id": open_ids,
            "labels": labels.reindex(open_ids).to_numpy(),
            "n_annotators": summary.loc[open_ids, "n_annotators"].astype("int64").to_numpy(),
            "last_labelled_at": summary.loc[open_ids, "last_labelled_at"].to_numpy(),
        }
    )
    return out.reset_index(drop=True)[DISAGREEMENT_COLUMNS]


def parse_decision(text: str) -> tuple[str, list[str]]:
    """``SAMPLE_ID=type|type`` (or ``type,type``) -> (sample_id, validated types)."""
    sample_id, sep, types = text.rpartition("=")
    if not sep or not sample_id.strip() or not types.strip():
        raise InputError(f"--decide {text!r}: expected SAMPLE_ID=type|type (e.g. ferplus/test/fer0000001.png=mask)")
    parts = [t.strip() for t in types.replace(",", "|").split("|") if t.strip()]
    return sample_id.strip(), normalise_types(parts, where=f"--decide {text!r}: ")


def decide(
    path: str | os.PathLike,
    sample_id: str,
    types: Iterable[str],
    *,
    adjudicator: str,
    now: datetime | None = None,
    origin: str = "cli",
    force: bool = False,
) -> dict[str, Any]:
    """Record ``adjudicator``'s decision ``types`` for ``sample_id`` in the annotation table at ``path``.

    Refuses (InputError) a sample that is not in open disagreement there, unless ``force`` (e.g. to
    overrule a unanimous label). Appends one ``source="adjudication"`` event (under the file's lock)
    and returns it.
    """
    path = Path(path)
    norm = normalise_types(types, where=f"{sample_id}: ")
    if not adjudicator or not adjudicator.strip():
        raise InputError("an adjudication needs the adjudicator's name")
    if not force:
        _refuse_settled(path, read_events(path), [sample_id])
    event = make_event(sample_id, norm, annotator=adjudicator, source="adjudication", labelled_at=now, origin=origin)
    append_events(path, [event])
    return event


def people_labels(events: pa.Table, sample_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """sample_id -> {annotator: ``a|b``} of the people's latest labels (withdrawn ones left out)."""
    people = latest_labels(events, source="human", per_annotator=True)
    return labels_by_sample(people[people["sample_id"].isin(set(sample_ids))])


def _refuse_settled(path: Path, events: pa.Table, sample_ids: Sequence[str]) -> None:
    """InputError naming the first of ``sample_ids`` that is not in open disagreement, and why."""
    open_ids = set(disagreements(events, sample_ids)["sample_id"])
    settled = [s for s in sample_ids if s not in open_ids]
    if not settled:
        return
    sid = settled[0]
    labels = people_labels(events, [sid]).get(sid)
    if not labels:
        why = "no person has labelled it"
    elif len(set(labels.values())) == 1:
        why = "its labels agree (" + ", ".join(f"{a}={t}" for a, t in labels.items()) + ")"
    else:
        why = "it was already adjudicated after its last label"
    raise InputError(f"{path}: {sid} is not in disagreement: {why}; use force (--force) to decide anyway")


@dataclass
class AdjudicationResult:
    """What ``fercurate annotate adjudicate`` shows: open disagreements, or the decisions it recorded."""

    manifest: str
    path: Path
    split: str | None
    open: pd.DataFrame  # disagreements() plus image_path, after any decisions were recorded
    decided: list[dict[str, Any]] = field(default_factory=list)
    before: dict[str, dict[str, str]] = field(default_factory=dict)  # sample_id -> labels decided over

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "annotations": str(self.path),
            "split": self.split,
            "decided": [
                {"sample_id": e["sample_id"], "types": e["types"], "adjudicator": e["annotator"],
                 "labelled_at": e["labelled_at"].isoformat(), "event_id": e["event_id"],
                 "labels": self.before.get(e["sample_id"], {})}
                for e in self.decided
            ],
            "open": [
                {"sample_id": r.sample_id, "image_path": r.image_path, "labels": r.labels,
                 "n_annotators": int(r.n_annotators), "last_labelled_at": pd.Timestamp(r.last_labelled_at).isoformat()}
                for r in self.open.itertuples()
            ],
        }

    def render(self) -> str:
        where = f" (split {self.split})" if self.split else ""
        lines = []
        for e in self.decided:
            was = "; ".join(f"{a}={t}" for a, t in self.before.get(e["sample_id"], {}).items()) or "no labels"
            lines.append(f"decided {e['sample_id']}: {'|'.join(e['types'])} by {e['annotator']} (was {was})")
        if self.decided:
            lines.append(f"{len(self.decided)} decision(s) recorded in {self.path}; "
                         f"{len(self.open):,} disagreement(s) still open in {self.manifest}{where}")
            return "\n".join(lines)
        if self.open.empty:
            return f"{self.manifest}{where}: no open disagreements (labels in {self.path})"
        annotators = sorted({a for labels in self.open["labels"] for a in labels})
        table = pd.DataFrame({"sample_id": self.open["sample_id"], "image": self.open["image_path"]})
        for a in annotators:
            table[a] = [labels.get(a, "-") for labels in self.open["labels"]]
        lines.append(f"{self.manifest}{where}: {len(self.open):,} face(s) where annotators disagree "
                     f"(labels in {self.path}):")
        lines.append(table.to_string(index=False))
        lines.append(f"decide: fercurate annotate adjudicate {self.manifest} --decide SAMPLE_ID=type|type --by YOU")
        lines.append(f"    or in the App: fercurate annotate launch {self.manifest} --adjudicate")
        return "\n".join(lines)


def adjudicate(
    name: str,
    *,
    split: str | None = None,
    decisions: Sequence[str] = (),
    adjudicator: str | None = None,
    force: bool = False,
    now: datetime | None = None,
    workspace: Workspace | None = None,
) -> AdjudicationResult:
    """Open disagreements of manifest ``name`` (optionally one split); first records ``decisions``.

    Each decision is ``SAMPLE_ID=type|type``. All are checked (sample in the manifest/split, types
    in the vocabulary, in disagreement unless ``force``, an adjudicator name) before any is
    recorded. ``adjudicator`` defaults to ``$FERCURATE_ANNOTATOR`` / ``$USER``.
    """
    ws = workspace or Workspace.current()
    manifest = read_manifest(ws.resolve_manifest(name))
    if split:
        manifest = manifest.where_split(split)
    ids = manifest.table.column("sample_id").to_pylist()
    image = dict(zip(ids, manifest.table.column("image_path").to_pylist()))
    path = ws.annotation_path(manifest.name)
    events = read_events(path)
    result = AdjudicationResult(manifest=manifest.name, path=path, split=split, open=pd.DataFrame())
    if decisions:
        if not adjudicator:
            adjudicator = default_annotator()
        if not adjudicator or not adjudicator.strip():
            raise InputError("who decides? pass --by NAME (or set $USER)")
        parsed = [parse_decision(d) for d in decisions]
        where = f"{manifest.path or manifest.name}" + (f" split {split}" if split else "")
        for sid, _ in parsed:
            if sid not in image:
                raise InputError(f"--decide: sample {sid!r} is not in {where}")
        seen = [sid for sid, _ in parsed]
        dup = sorted({sid for sid in seen if seen.count(sid) > 1})
        if dup:
            raise InputError(f"--decide: {dup[0]!r} is decided twice; give one decision per sample")
        if not force:
            _refuse_settled(path, events, seen)
        result.before = people_labels(events, seen)
        for sid, types in parsed:
            result.decided.append(decide(path, sid, types, adjudicator=adjudicator, now=now,
                                         origin=f"cli:{manifest.name}", force=True))
        events = read_events(path)
    open_ = disagreements(events, ids)
    open_.insert(1, "image_path", [image[s] for s in open_["sample_id"]])
    result.open = open_
    return result


__all__ = [
    "DISAGREEMENT_COLUMNS", "AdjudicationResult", "adjudicate", "decide", "disagreements", "parse_decision",
    "people_labels",
]
