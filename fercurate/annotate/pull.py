"""``pull``: collect the labels made in the App into the append-only annotation table.

A sample's App label is its set of ``occ:*`` tags. ``occ_synced`` remembers the tags at the last
pull, so only changes become events; each event says who (``occ_by`` from the plugin, else the
annotator the App was launched for), when, and what. Events are merged into
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
import pyarrow.compute as pc

from fercurate.annotate.agreement import conflicts
from fercurate.annotate.dataset import info, load_dataset, refresh_fields
from fercurate.annotate.vocabulary import TAG_PREFIX, lookalike, occlusion_tags, parse_tags
from fercurate.annotations import append_events, latest_per_annotator, make_event, read_events
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
    fields = ["id", "sample_id", "tags", "occ_synced", "occ_synced_at", "occ_by", "occ_at"]
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
    """Merge the App dataset's labels for manifest ``name`` into ``annotations/<name>.occlusion.parquet``.

    ``annotator`` overrides the launch annotator for tags set without the plugin's buttons.
    Raises InputError when there is no such App dataset; per-sample problems are in the result.
    """
    ws = workspace or Workspace.current()
    ds = load_dataset(name, ws)
    meta = info(ds)
    manifest_name = meta.get("manifest") or name
    path = ws.annotation_path(manifest_name)
    session_annotator = (annotator or meta.get("annotator") or "").strip()
    when = _utc(now) or datetime.now(timezone.utc)
    result = PullResult(dataset=ds.name, path=path)

    history = read_events(path)
    latest = _latest_human(history)
    rows = pending_rows(ds)
    events, synced_ids, synced_values = [], [], []
    for i, sid in enumerate(rows["sample_id"]):
        tags = rows["tags"][i] or []
        occ = occlusion_tags(tags)
        before = sorted(rows["occ_synced"][i] or [])
        by, at, synced_at = rows["occ_by"][i], _utc(rows["occ_at"][i]), _utc(rows["occ_synced_at"][i])
        pressed = bool(by and at and (synced_at is None or at > synced_at))  # a plugin button since last pull
        if occ == before and not pressed:
            result.unchanged += 1
            continue
        parsed = parse_tags(tags)
        if parsed.problem:
            result.problems.append(Problem(sid, parsed.problem + " (not taken; fix the tags in the App)"))
            continue
        if not occ:
            result.removed.append(sid)
            synced_ids.append(rows["id"][i])
            synced_values.append([])
            continue
        if pressed:
            who, labelled_at, origin = by, at, f"fiftyone:{ds.name} (plugin)"
        else:
            who, labelled_at, origin = session_annotator, when, f"fiftyone:{ds.name} (tags)"
        if not who:
            result.problems.append(
                Problem(sid, "tags set without an annotator name: pull again with --annotator NAME")
            )
            continue
        types = list(parsed.types)
        synced_ids.append(rows["id"][i])
        synced_values.append(occ)
        if latest.get((sid, who)) == "|".join(types):
            result.unchanged += 1
            continue
        events.append(make_event(sid, types, annotator=who, source="human", labelled_at=labelled_at, origin=origin))
        result.by_annotator[who] += 1
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
    if synced_ids:
        ds.set_values("occ_synced", dict(zip(synced_ids, synced_values)), key_field="id")
        ds.set_values("occ_synced_at", {k: when for k in synced_ids}, key_field="id")
    result.conflicts = conflicts(merged)
    if events and meta.get("manifest_path") and Path(meta["manifest_path"]).exists():
        refresh_fields(ds, read_manifest(meta["manifest_path"]), ws, parts=("occlusion",))
    return result


def _latest_human(history) -> dict[tuple[str, str], str]:
    """(sample_id, annotator) -> that person's latest label as ``a|b`` (to skip re-pulling it).

    A person whose latest event is a withdrawal has no entry: the App's tags are their label again.
    """
    if history.num_rows == 0:
        return {}
    df = latest_per_annotator(history.filter(pc.equal(history.column("source"), "human")))
    return {(s, a): "|".join(t) for s, a, t in zip(df["sample_id"], df["annotator"], df["types"])}


def _lookalike_problems(ds: "fo.Dataset") -> list[Problem]:
    """Plain tags that look like occlusion labels (``mask`` instead of ``occ:mask``): reported, not taken."""
    out = []
    for tag, count in sorted(ds.count_sample_tags().items()):
        hint = lookalike(tag)
        if hint:
            out.append(Problem(None, f"tag {tag!r} on {count} sample(s) is not an occlusion tag ({hint}); not taken"))
    return out
