"""``pull``: collect the labels made in the App into the append-only annotation table.

Labels saved with the plugin's keys and buttons are written to the file as they are made
(:mod:`fercurate.annotate.live`). ``pull`` collects what was done by hand: a face's App label is its
set of ``occ:*`` tags, and ``occ_synced`` remembers the tags at the last save or pull, so only
changes become events; each event says who (the owner of the annotator's own dataset, else
``--annotator``), when, and what. Events are merged into
``annotations/<name>.occlusion.parquet`` atomically; nothing already there is rewritten. Tags that
are not a valid label (outside the vocabulary, or ``none`` mixed with a type) are reported with the
sample and never taken; they stay in the App to be fixed.

Each annotator's own datasets live in a database of their own
(:func:`fercurate.annotate.database.annotator_database`), and a process can use only one: a pull
of a manifest visits every annotator database that holds a dataset of it in a child process
(``python -m fercurate.annotate.pull --database DB``) and adds up what each collected.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from fercurate.annotate import session
from fercurate.annotate.agreement import conflicts
from fercurate.annotate.children import child_env
from fercurate.annotate.database import annotator_databases, connect
from fercurate.annotate.dataset import (
    BASE_KEY,
    DATASET_PREFIX,
    INFO_KEY,
    OWNER_KEY,
    find_dataset_name,
    info,
    load_dataset,
    refresh_fields,
)
from fercurate.annotate.vocabulary import TAG_PREFIX, lookalike, occlusion_tags, parse_tags
from fercurate.annotations import BLIND_ORIGIN, append_events, latest_labels, make_event, read_events
from fercurate.errors import FercurateError, InputError
from fercurate.manifest import read_manifest
from fercurate.workspace import Workspace, manifest_name

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
    that annotator, a blind label; in their own database too) and in the shared dataset (as
    ``annotator``). ``name`` may also be an App dataset's name: then that dataset and the copies of
    it in this database (the launcher pulls its annotator's own dataset so). Raises InputError when
    there is no such App dataset; per-sample problems are in the result.
    """
    ws = workspace or Workspace.current()
    when = _utc(now) or datetime.now(timezone.utc)
    fo = connect(ws)
    datasets, mname, manifest_path = _datasets_of(fo, name, ws)
    elsewhere = databases_with(manifest_path) if manifest_path and not _is_own(datasets) else []
    if not datasets and not elsewhere:
        load_dataset(name, ws)  # raises the InputError naming the App datasets there are
    path = ws.annotation_path(mname)
    result = PullResult(dataset=datasets[0].name if datasets else mname, path=path)
    if datasets:
        _pull_datasets(datasets, path, ws, annotator, when, result)
    for database in elsewhere:
        _merge(result, _pull_in(database, manifest_path, ws, when))
    result.conflicts = conflicts(read_events(path))
    return result


def _is_own(datasets: list["fo.Dataset"]) -> bool:
    """Whether the dataset named is an annotator's own: then only its own database counts."""
    return bool(datasets) and session.owner(datasets[0]) is not None


def _datasets_of(fo: Any, name: str, ws: Workspace) -> tuple[list["fo.Dataset"], str, Path | None]:
    """The App datasets in this database that ``name`` (manifest name or path, or App dataset) stands
    for, the manifest's name, and its path when known."""
    mpath = Path(name) if name.endswith(".parquet") else ws.manifest_path(name)
    if mpath.exists():
        mname = manifest_name(mpath)
        base = find_dataset_name(fo, mname, mpath)
        shared = [fo.load_dataset(base)] if base else []
        return [*shared, *annotator_datasets(fo, mpath)], mname, mpath.resolve()
    if name.startswith(DATASET_PREFIX) and fo.dataset_exists(name):
        ds = fo.load_dataset(name)
        meta = info(ds)
        known = Path(meta["manifest_path"]) if meta.get("manifest_path") else None
        return [ds, *own_datasets(ds)], meta.get("manifest") or name, known
    return [], manifest_name(mpath), None


def _pull_datasets(
    datasets: list["fo.Dataset"], path: Path, ws: Workspace, annotator: str | None, when: datetime, result: PullResult
) -> None:
    """Collect the hand-set tags of ``datasets`` (all in this process's database) into ``path``."""
    history = read_events(path)
    latest = _latest_human(history)
    events: list[dict[str, Any]] = []
    synced: list[tuple[Any, dict[str, list[str]]]] = []
    for ds in datasets:
        who = session.owner(ds) or (annotator or "").strip()
        origin = f"{BLIND_ORIGIN}{ds.name}" if session.owner(ds) else f"fiftyone:{ds.name} (tags)"
        ds_events, ds_synced = _collect(ds, who, origin, when, latest, result)
        events.extend(ds_events)
        synced.append((ds, ds_synced))
    for ds in datasets:
        result.problems.extend(_lookalike_problems(ds))

    if events:
        # The App's "synced" mark is set only once the events are durably in the file (append_events
        # holds the file's lock and fsyncs), and checked by reading the file back.
        added, already = append_events(path, events)
        result.added += added
        result.already += already
        written = set(read_events(path).column("event_id").to_pylist())
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
    meta = info(datasets[0])
    if events and meta.get("manifest_path") and Path(meta["manifest_path"]).exists():
        manifest = read_manifest(meta["manifest_path"])
        for ds, _ in synced:
            refresh_fields(ds, manifest, ws, parts=("occlusion",))


def own_datasets(base: "fo.Dataset") -> list["fo.Dataset"]:
    """The annotators' own copies of a shared App dataset in this database, by name."""
    import fiftyone as fo

    out = []
    for cand in sorted(fo.list_datasets(glob_patt=f"{base.name}--*")):
        ds = fo.load_dataset(cand)
        if info(ds).get(BASE_KEY) == base.name:
            out.append(ds)
    return out


def annotator_datasets(fo: Any, manifest_path: str | Path) -> list["fo.Dataset"]:
    """The annotators' own datasets of a manifest in this process's database."""
    target = str(Path(manifest_path).resolve())
    out = []
    for cand in sorted(fo.list_datasets(glob_patt=f"{DATASET_PREFIX}*--*")):
        ds = fo.load_dataset(cand)
        meta = info(ds)
        if meta.get(OWNER_KEY) and meta.get("manifest_path") == target:
            out.append(ds)
    return out


def databases_with(manifest_path: str | Path) -> list[str]:
    """The annotators' databases holding a dataset of this manifest (FiftyOne must be connected).

    Looked up in each database's list of datasets (``datasets``, where FiftyOne keeps each
    dataset's ``info``), so that no child process starts for a database with nothing to pull.
    """
    import fiftyone.core.odm.database as fod

    client = fod.get_db_client()
    query = {f"info.{INFO_KEY}.manifest_path": str(Path(manifest_path).resolve()),
             f"info.{INFO_KEY}.{OWNER_KEY}": {"$exists": True}}
    return [db for db in annotator_databases() if client[db].datasets.find_one(query, {"_id": 1}) is not None]


def _pull_in(database: str, manifest_path: Path, ws: Workspace, when: datetime, dry_run: bool = False) -> dict:
    """Run the pull of one annotator's database in a child process (a process uses one database)."""
    cmd = [sys.executable, "-m", "fercurate.annotate.pull", "--database", database, "--workspace", str(ws.root),
           "--now", when.isoformat(), str(manifest_path)] + (["--dry-run"] if dry_run else [])
    proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise FercurateError(f"pulling the labels in database {database!r} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pending_in(database: str, manifest_path: Path, ws: Workspace) -> int:
    """Tags changed by hand and not pulled yet in one annotator's database (for ``status``)."""
    return int(_pull_in(database, manifest_path, ws, datetime.now(timezone.utc), dry_run=True)["pending"])


def pending_count(datasets: list["fo.Dataset"]) -> int:
    """Faces whose ``occ:*`` tags were changed by hand and not pulled yet, over ``datasets``."""
    total = 0
    for ds in datasets:
        rows = pending_rows(ds)
        total += sum(occlusion_tags(t or []) != sorted(s or []) for t, s in zip(rows["tags"], rows["occ_synced"]))
    return total


def _merge(result: PullResult, part: dict) -> None:
    """Add what a child pull collected to ``result``."""
    result.added += part["added"]
    result.already += part["already"]
    result.unchanged += part["unchanged"]
    result.by_annotator.update(part["by_annotator"])
    result.removed.extend(part["removed"])
    result.problems.extend(Problem(sid, message) for sid, message in part["problems"])


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


def main(argv: list[str] | None = None) -> None:
    """``python -m fercurate.annotate.pull --database DB --workspace WS --now T MANIFEST``: pull one
    annotator database's datasets of a manifest; prints what it collected as one JSON line."""
    parser = argparse.ArgumentParser(description="Pull the hand-set occlusion tags of one annotator database.")
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--database", required=True)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--now", required=True, help="the pull's time (ISO 8601), the same for every database")
    parser.add_argument("--dry-run", action="store_true", help="only count the tags waiting to be pulled")
    args = parser.parse_args(argv)
    ws = Workspace(args.workspace.resolve())
    fo = connect(ws, database=args.database)
    datasets = annotator_datasets(fo, args.manifest)
    result = PullResult(dataset=args.database, path=ws.annotation_path(manifest_name(args.manifest)))
    pending = pending_count(datasets)
    if datasets and not args.dry_run:
        _pull_datasets(datasets, result.path, ws, None, datetime.fromisoformat(args.now), result)
    print(json.dumps({
        "added": result.added, "already": result.already, "unchanged": result.unchanged,
        "by_annotator": dict(result.by_annotator), "removed": result.removed,
        "problems": [[p.sample_id, p.message] for p in result.problems], "pending": pending,
    }))


if __name__ == "__main__":
    main()
