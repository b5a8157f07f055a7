"""``pull``: collect the labels made in the App into the append-only annotation table.

Labels saved with the plugin's keys and buttons are written to the file as they are made
(:mod:`fercurate.annotate.live`). ``pull`` collects what was done by hand: a face's App label is its
set of ``occ:*`` tags, and ``occ_synced`` remembers the tags at the last save or pull, so only
changes become events; each event says who (the owner of the annotator's own dataset, else
``--annotator``), when, and what. Events are merged into
``annotations/<name>.occlusion.parquet`` atomically; nothing already there is rewritten. Tags that
are not a valid label (outside the vocabulary, or ``none`` mixed with a type) are reported with the
sample and never taken; they stay in the App to be fixed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from fercurate.annotate import session
from fercurate.annotate.agreement import conflicts
from fercurate.annotate.dataset import BASE_KEY, info, load_dataset, refresh_fields
from fercurate.annotate.vocabulary import TAG_PREFIX, lookalike, occlusion_tags, parse_tags
from fercurate.annotations import BLIND_ORIGIN, append_events, latest_labels, make_event, read_events
from fercurate.errors import InputError
from fercurate.manifest import read_manifest
from fercurate.workspace import Workspace

if TYPE_CHECKING:
    import fiftyone as fo


@dataclass
class Problem:
    """A label (or tag) pull did not take, and why."""

    sample_id: str | None
    message: str

    def line(self) -> str:
        return f"{self.sample_id}: {self.message}" if self.sample_id else self.message


@dataclass
class PullResult:
    """What a pull did: events added, unchanged/removed labels, problems and conflicts."""

    dataset: str
    path: Path
    added: int = 0
    already: int = 0
    unchanged: int = 0
    by_annotator: Counter = field(default_factory=Counter)
    removed: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    conflicts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["sample_id", "labels"]))

    def summary(self) -> str:
        who = ", ".join(f"{a} {n}" for a, n in sorted(self.by_annotator.items())) or "nobody"
        lines = [
            f"pulled {self.dataset} -> {self.path}: {self.added} new label(s) ({who}), "
            f"{self.unchanged} unchanged since the last pull"
        ]
        if self.removed:
            lines.append(
                f"{len(self.removed)} sample(s) had their occ:* tags removed in the App, e.g. {self.removed[0]}: "
                "their labels stay in the history; label them again (e.g. occ:none) to change them"
            )
        if len(self.conflicts):
            first = self.conflicts.iloc[0]
            detail = "; ".join(f"{a}={t}" for a, t in first["labels"].items())
            lines.append(
                f"{len(self.conflicts)} sample(s) with conflicting labels from different annotators, kept both, "
                f"e.g. {first['sample_id']} ({detail}); see 'fercurate annotate status'"
            )
        return "\n".join(lines)


def pending_rows(ds: "fo.Dataset") -> dict[str, list[Any]]:
    """Samples whose occ:* tags or last-pulled tags are non-empty (the only ones that can change)."""
    from fiftyone import ViewField as F

    has_tag = F("tags").filter(F().starts_with(TAG_PREFIX)).length() > 0
    had_tag = F("occ_synced").exists() & (F("occ_synced").length() > 0)
    view = ds.match(has_tag | had_tag)
    fields = ["id", "sample_id", "tags", "occ_synced"]
    return dict(zip(fields, view.values(fields)))


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def pull(
    name: str,
    *,
    workspace: Workspace | None = None,
    annotator: str | None = None,
    now: datetime | None = None,
) -> PullResult:
    """Merge the App's labels for manifest ``name`` into ``annotations/<name>.occlusion.parquet``.

    The labels saved with the plugin are already in the file (:mod:`fercurate.annotate.live`); pull
    collects ``occ:*`` tags set by hand (the App's tag menu) in every annotator's own dataset (as
    that annotator, a blind label) and in the shared dataset (as ``annotator``). Raises InputError
    when there is no such App dataset; per-sample problems are in the result.
    """
    ws = workspace or Workspace.current()
    base = load_dataset(name, ws)
    meta = info(base)
    path = ws.annotation_path(meta.get("manifest") or name)
    when = _utc(now) or datetime.now(timezone.utc)
    result = PullResult(dataset=base.name, path=path)
    history = read_events(path)
    latest = _latest_human(history)
    events: list[dict[str, Any]] = []
    synced: list[tuple[Any, dict[str, list[str]]]] = []
    datasets = [base, *own_datasets(base)]
    for ds in datasets:
        who = session.owner(ds) or (annotator or "").strip()
        origin = f"{BLIND_ORIGIN}{ds.name}" if session.owner(ds) else f"fiftyone:{ds.name} (tags)"
        ds_events, ds_synced = _collect(ds, who, origin, when, latest, result)
        events.extend(ds_events)
        synced.append((ds, ds_synced))
    for ds in datasets:
        result.problems.extend(_lookalike_problems(ds))

    merged = history
    if events:
        # The App's "synced" mark is set only once the events are durably in the file (append_events
        # holds the file's lock and fsyncs), and checked by reading the file back.
        result.added, result.already = append_events(path, events)
        merged = read_events(path)
        written = set(merged.column("event_id").to_pylist())
        lost = [e["sample_id"] for e in events if e["event_id"] not in written]
        if lost:
            raise InputError(
                f"{path}: {len(lost)} pulled label(s) are not in the file after writing (e.g. {lost[0]}); "
                "the App samples stay unsynced: pull again"
            )
    for ds, values in synced:
        if values:
            ds.set_values("occ_synced", values, key_field="id")
            ds.set_values("occ_synced_at", {k: when for k in values}, key_field="id")
    result.conflicts = conflicts(merged)
    if events and meta.get("manifest_path") and Path(meta["manifest_path"]).exists():
        manifest = read_manifest(meta["manifest_path"])
        for ds, _ in synced:
            refresh_fields(ds, manifest, ws, parts=("occlusion",))
    return result


def own_datasets(base: "fo.Dataset") -> list["fo.Dataset"]:
    """The annotators' own copies of a shared App dataset, by name."""
    import fiftyone as fo

    out = []
    for cand in sorted(fo.list_datasets(glob_patt=f"{base.name}--*")):
        ds = fo.load_dataset(cand)
        if info(ds).get(BASE_KEY) == base.name:
            out.append(ds)
    return out


def _collect(
    ds: "fo.Dataset", who: str, origin: str, when: datetime, latest: dict, result: PullResult
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Events for the tags changed by hand in ``ds`` since the last pull, and the new synced marks."""
    rows = pending_rows(ds)
    events, synced = [], {}
    for i, sid in enumerate(rows["sample_id"]):
        tags = rows["tags"][i] or []
        occ = occlusion_tags(tags)
        if occ == sorted(rows["occ_synced"][i] or []):
            result.unchanged += 1
            continue
        parsed = parse_tags(tags)
        if parsed.problem:
            result.problems.append(Problem(sid, parsed.problem + f" (in {ds.name}; not taken; fix the tags in the App)"))
            continue
        if not occ:
            result.removed.append(sid)
            synced[rows["id"][i]] = []
            continue
        if not who:
            result.problems.append(
                Problem(sid, f"tags set in {ds.name} without an annotator name: pull again with --annotator NAME")
            )
            continue
        types = list(parsed.types)
        synced[rows["id"][i]] = occ
        if latest.get((sid, who)) == types:
            result.unchanged += 1
            continue
        events.append(make_event(sid, types, annotator=who, source="human", labelled_at=when, origin=origin))
        result.by_annotator[who] += 1
    return events, synced


def _latest_human(history: pa.Table) -> dict[tuple[str, str], list[str]]:
    """(sample_id, annotator) -> that person's latest label's types (to skip re-pulling it).

    A person whose latest event is a withdrawal has no entry: the App's tags are their label again.
    """
    df = latest_labels(history, source="human", per_annotator=True)
    return {(s, a): list(t) for s, a, t in zip(df["sample_id"], df["annotator"], df["types"])}


def _lookalike_problems(ds: "fo.Dataset") -> list[Problem]:
    """Plain tags that look like occlusion labels (``mask`` instead of ``occ:mask``): reported, not taken."""
    out = []
    for tag, count in sorted(ds.count_sample_tags().items()):
        hint = lookalike(tag)
        if hint:
            out.append(Problem(None, f"tag {tag!r} on {count} sample(s) in {ds.name} is not an occlusion tag ({hint}); "
                                     "not taken"))
    return out
