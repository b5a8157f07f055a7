"""The occlusion annotation table: an append-only history of who labelled what, when, from where.

``annotations/<name>.occlusion.parquet`` holds one row per labelling *event*. Events are only ever
appended (merged by ``event_id``), never rewritten or deleted, so a label made earlier or by another
annotator can't be lost; the *current* label of a sample, and each annotator's latest label, are
derived from the history by :func:`latest_labels` (the one place that does so).

Two kinds of event besides a plain label:

* a *withdrawal* (:func:`make_withdrawal`, ``types == []``) undoes an annotator's saved label: from
  then on that annotator has no label for the sample (an earlier label of theirs does not come back);
* an *adjudication* (``source="adjudication"``) is a person's decision where annotators disagree;
  the latest one is the sample's current label.

A human label made where nobody else's labels were shown (an annotator's own blind App session)
carries ``origin`` ``BLIND_ORIGIN + <dataset>``: only such labels are independent for agreement.

Mixed versions in a team lose nothing: the file records its schema version (:data:`SCHEMA_VERSION`,
in the Parquet metadata; a file without it is version 1), and a merge keeps every column and
metadata key this version does not know, with a note (the events it adds leave those columns
empty). A file it cannot keep whole (a column it knows with another type, a column it does not
know that may not be empty) is refused before anything is written. A damaged file (``labelled_at``
as text, an empty annotator, an unknown source) is one error naming the file, the column and the
first row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fercurate.atomic import atomic_path
from fercurate.errors import InputError
from fercurate.locks import locked
from fercurate.schema import OCCLUSION_SOURCES, OCCLUSION_TYPES, OCCLUSION_VALUES

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("types", pa.list_(pa.string()), nullable=False),
        pa.field("annotator", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("labelled_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("source_code", pa.string()),  # raw code from an official list, e.g. "3"
        pa.field("origin", pa.string()),  # where the event came from (file:line, App dataset, ...)
        pa.field("note", pa.string()),
    ]
)
# Precedence when deciding the current label: an adjudicator's decision beats the annotators' labels,
# a person's word beats a list, a list beats a machine.
SOURCE_RANK = {"adjudication": 4, "human": 3, "official": 2, "synthetic": 1, "suggestion": 0}
# Every source but machine suggestions: the events that are labels (a suggestion only pre-fills the App
# for a person to confirm; subsets, status and the App's ``occlusion`` field never count it).
LABEL_SOURCES: tuple[str, ...] = tuple(s for s in OCCLUSION_SOURCES if s != "suggestion")
# ``origin`` prefix of a human label made blind (no other annotator's labels shown): an independent label.
BLIND_ORIGIN = "app-blind:"
# The version of EVENT_SCHEMA, kept in each file's metadata under META_KEY (no key: version 1).
SCHEMA_VERSION = 1
META_KEY = b"fercurate.annotations"
_REQUIRED = [f.name for f in EVENT_SCHEMA if not f.nullable]
_log = logging.getLogger(__name__)
_noted: set[tuple[str, tuple[str, ...]]] = set()


def is_blind(origin: str | None) -> bool:
    """True for the origin of a label made blind (``BLIND_ORIGIN + <dataset>``); None/other: False."""
    return isinstance(origin, str) and origin.startswith(BLIND_ORIGIN)


def normalise_types(types: Iterable[str], where: str = "") -> list[str]:
    """Sorted, de-duplicated types; raises InputError for a value outside the vocabulary."""
    out = sorted(set(types))
    bad = [t for t in out if t not in OCCLUSION_VALUES]
    if bad:
        raise InputError(
            f"{where}occlusion type {bad[0]!r} is not in the vocabulary ({', '.join(OCCLUSION_VALUES)})"
        )
    if not out:
        raise InputError(f"{where}an occlusion label needs at least one type (use 'none' for no occlusion)")
    if "none" in out and len(out) > 1:
        raise InputError(f"{where}'none' cannot be combined with other types: {out}")
    return out


def make_event(
    sample_id: str,
    types: Iterable[str],
    *,
    annotator: str,
    source: str,
    labelled_at: datetime | None = None,
    source_code: str | None = None,
    origin: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """One validated labelling event; its ``event_id`` is a hash of its content (idempotent merges)."""
    norm = normalise_types(types, where=f"{sample_id}: ")
    return _event(sample_id, norm, annotator=annotator, source=source, labelled_at=labelled_at,
                  source_code=source_code, origin=origin, note=note)


def make_withdrawal(
    sample_id: str,
    *,
    annotator: str,
    source: str = "human",
    labelled_at: datetime | None = None,
    origin: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """An event withdrawing ``annotator``'s label of ``sample_id`` (``types == []``; the undo of a save).

    From ``labelled_at`` on, the annotator has no label for the sample in ``source``: derived views
    (:func:`latest_labels`, agreement, conflicts) skip them there, and their earlier labels do not
    come back. Withdrawing again later is a new event (the time is part of its id).
    """
    return _event(sample_id, [], annotator=annotator, source=source, labelled_at=labelled_at,
                  source_code=None, origin=origin, note=note)


def _event(
    sample_id: str,
    norm: list[str],
    *,
    annotator: str,
    source: str,
    labelled_at: datetime | None,
    source_code: str | None,
    origin: str | None,
    note: str | None,
) -> dict[str, Any]:
    if source not in OCCLUSION_SOURCES:
        raise InputError(f"unknown annotation source {source!r} (known: {', '.join(OCCLUSION_SOURCES)})")
    if not annotator or not annotator.strip():
        raise InputError("an annotation needs an annotator name")
    if not sample_id:
        raise InputError("an annotation needs a sample_id")
    when = labelled_at or datetime.now(timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    when = when.astimezone(timezone.utc)
    key = "\x1f".join([sample_id, "|".join(norm), annotator, source, when.isoformat(), source_code or ""])
    return {
        "event_id": hashlib.sha1(key.encode()).hexdigest(),
        "sample_id": sample_id,
        "types": norm,
        "annotator": annotator.strip(),
        "source": source,
        "labelled_at": when,
        "source_code": source_code,
        "origin": origin,
        "note": note,
    }


def read_events(path: str | os.PathLike) -> pa.Table:
    """The event history (an empty table if the file does not exist yet), in :data:`EVENT_SCHEMA`.

    Raises InputError naming the file for an unreadable or damaged one (see the module docstring).
    """
    path = Path(path)
    table, _ = _read_file(path)
    return table.select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA)


def _read_file(path: Path) -> tuple[pa.Table, int]:
    """The whole file (columns this version does not know too), checked, and its schema version."""
    if not path.exists():
        return EVENT_SCHEMA.empty_table(), SCHEMA_VERSION
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable annotation table ({exc})") from exc
    version = _file_version(path, table)
    newer = (f" (the file is schema version {version}, this fercurate reads version {SCHEMA_VERSION}: "
             "upgrade fercurate)") if version > SCHEMA_VERSION else ""
    missing = [n for n in EVENT_SCHEMA.names if n not in table.column_names]
    if missing:
        raise InputError(f"{path}: annotation table lacks columns {missing}{newer}")
    for want in EVENT_SCHEMA:
        got = table.schema.field(want.name).type
        if not _same_kind(got, want.type):
            why = newer or " (damaged, or rewritten by another tool)"
            raise InputError(f"{path}: column {want.name!r} is {got}, not {want.type}{why}")
    for name in _REQUIRED:
        col = table.column(name)
        bad = pc.is_null(col)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            bad = pc.or_(bad, pc.equal(pc.utf8_trim_whitespace(pc.fill_null(col, "")), ""))
        if pc.any(bad).as_py():
            rows = np.flatnonzero(bad.to_numpy(zero_copy_only=False))
            raise InputError(f"{path}: column {name!r} is empty in {len(rows):,} rows (first: row {rows[0] + 1} "
                             f"of {table.num_rows:,}); every event needs one{newer}")
    sources = pc.unique(table.column("source").cast(pa.string())).to_pylist()
    unknown = sorted(set(sources) - set(OCCLUSION_SOURCES))
    if unknown:
        raise InputError(f"{path}: unknown annotation source {unknown[0]!r} (known: {', '.join(OCCLUSION_SOURCES)})"
                         f"{newer}")
    return table, version


def _file_version(path: Path, table: pa.Table) -> int:
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        return 1
    try:
        return int(json.loads(raw)["schema_version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: unreadable {META_KEY.decode()} metadata ({raw[:60]!r})") from exc


def _same_kind(got: pa.DataType, want: pa.DataType) -> bool:
    """True when a column of type ``got`` holds ``want``'s values exactly (string/large_string, any
    timestamp unit with a time zone, lists of either)."""
    if got == want:
        return True
    if pa.types.is_dictionary(got):
        return _same_kind(got.value_type, want)
    if pa.types.is_string(want):
        return pa.types.is_string(got) or pa.types.is_large_string(got)
    if pa.types.is_timestamp(want):
        return pa.types.is_timestamp(got) and got.tz is not None
    if pa.types.is_list(want):
        return (pa.types.is_list(got) or pa.types.is_large_list(got)) and _same_kind(got.value_type, want.value_type)
    return False


def append_events(
    path: str | os.PathLike, events: Iterable[Mapping[str, Any]] | pa.Table
) -> tuple[int, int]:
    """Merge events into the table atomically; returns (added, already present).

    Existing rows are kept as they are, with every column and metadata key of the file; an event
    whose ``event_id`` is already present is skipped, so pulling the same labels twice changes
    nothing. The read-merge-replace holds the file's lock (:mod:`fercurate.locks`): a concurrent
    writer waits its turn and merges into the file as this one left it, so no writer's events are
    lost. When this returns, the events are on disk (fsynced). A file this version cannot keep whole
    raises InputError before anything is written.
    """
    path = Path(path)
    new = events if isinstance(events, pa.Table) else pa.Table.from_pylist(list(events), schema=EVENT_SCHEMA)
    new = new.select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA)
    with locked(path):
        return _merge_events(path, new)


def _merge_events(path: Path, new: pa.Table) -> tuple[int, int]:
    old, version = _read_file(path)
    seen = set(old.column("event_id").to_pylist())
    ids = new.column("event_id").to_pylist()
    keep, batch_seen = [], set()
    for i, eid in enumerate(ids):
        if eid not in seen and eid not in batch_seen:
            keep.append(i)
            batch_seen.add(eid)
    added = new.take(pa.array(keep, type=pa.int64()))
    if added.num_rows == 0:
        return 0, len(ids)
    merged = _carry_through(path, old, added, version)
    with atomic_path(path, suffix=".parquet.tmp") as tmp:
        pq.write_table(merged, tmp, compression="zstd")
    return added.num_rows, len(ids) - added.num_rows


def _carry_through(path: Path, old: pa.Table, added: pa.Table, version: int) -> pa.Table:
    """``old`` + ``added`` keeping the file's own columns (in its order), types and metadata; the
    columns this version does not know are empty in the added rows."""
    extra = [f for f in old.schema if f.name not in EVENT_SCHEMA.names]
    blocked = [f.name for f in extra if not f.nullable]
    if blocked:
        raise InputError(
            f"{path}: cannot add events without losing data: the file (schema version {version}) has columns "
            f"this fercurate (version {SCHEMA_VERSION}) does not know and may not leave empty ({', '.join(blocked)}); "
            "nothing was written: upgrade fercurate to add events to it"
        )
    if extra and (str(path), tuple(f.name for f in extra)) not in _noted:
        _noted.add((str(path), tuple(f.name for f in extra)))
        _log.warning("%s has columns this fercurate does not know (%s): kept as they are; the events added now "
                     "leave them empty", path, ", ".join(f.name for f in extra))
    columns = []
    for f in old.schema:
        if f.name in EVENT_SCHEMA.names:
            columns.append(added.column(f.name).cast(f.type))
        else:
            columns.append(pa.nulls(added.num_rows, f.type))
    meta = dict(old.schema.metadata or {})
    meta[META_KEY] = json.dumps({"schema_version": max(version, SCHEMA_VERSION)}).encode()
    if not old.num_rows and not extra:
        return added.replace_schema_metadata(meta)
    return pa.concat_tables([old, pa.Table.from_arrays(columns, schema=old.schema)]).replace_schema_metadata(meta)


def types_key(types: Iterable[str]) -> str:
    """A label's types as one string, ``a|b`` (sorted): only for where a person or a JSON report reads it."""
    return "|".join(sorted(types))


def latest_labels(
    events: pa.Table,
    *,
    source: str | Iterable[str] | None = None,
    per_annotator: bool = False,
    by_source: bool = False,
) -> pd.DataFrame:
    """The latest labels of the history: each sample's current label, or each annotator's latest label.

    ``source`` keeps only the events of that source (or those sources) first: ``LABEL_SOURCES`` for
    labels without machine suggestions, ``"human"`` for people's labels; None keeps every event.
    Types are lists of names (sorted, as stored).

    With ``per_annotator``: each annotator's latest event per sample (per source too with
    ``by_source``), withdrawals applied: where the latest event is a withdrawal the annotator has no
    row for that sample (their earlier labels stay superseded). Ties in time go to the event appended
    later (the history's order). Columns: sample_id, annotator, source, types, labelled_at, origin.

    Without it, one row per sample, its current label. Rules: each annotator's latest event per
    source counts, and a withdrawal as the latest event means that annotator has no label there. Of
    what remains, the highest-ranked source wins (adjudication > human > official > synthetic >
    suggestion). Within it, if annotators' latest labels differ the sample is marked ``conflict`` and
    the most recent label is used; the latest adjudication is a decision, never a conflict. A sample
    whose labels were all withdrawn has no row. Columns: sample_id, types, source, annotator,
    labelled_at, n_annotators (annotators of the winning source), conflict, occluded.
    """
    if by_source and not per_annotator:
        raise ValueError("by_source is for per_annotator labels (a sample's current label weighs every source)")
    if source is not None:
        wanted = [source] if isinstance(source, str) else list(source)
        events = events.filter(pc.is_in(events.column("source"), value_set=pa.array(wanted, pa.string())))
    if per_annotator:
        return _latest_per_annotator(events, by_source=by_source)
    return _current(events)


_CURRENT_COLUMNS = ["sample_id", "types", "source", "annotator", "labelled_at", "n_annotators", "conflict", "occluded"]
_LATEST_COLUMNS = ["sample_id", "annotator", "source", "types", "labelled_at", "origin"]


def _current(events: pa.Table) -> pd.DataFrame:
    """Each sample's current label (the rules are in :func:`latest_labels`)."""
    if events.num_rows == 0:
        return pd.DataFrame(columns=_CURRENT_COLUMNS)
    df = _latest_per_annotator(events, by_source=True)
    if df.empty:
        return pd.DataFrame(columns=_CURRENT_COLUMNS)
    df["types_key"] = df["types"].map(tuple)
    df["rank"] = df["source"].map(SOURCE_RANK)
    best = df.groupby("sample_id")["rank"].transform("max")
    df = df[df["rank"] == best]
    grouped = df.sort_values(["sample_id", "labelled_at"]).groupby("sample_id", sort=True)
    latest = grouped.tail(1).set_index("sample_id")
    n_ann = grouped["annotator"].nunique()
    n_distinct = grouped["types_key"].nunique().reindex(latest.index)
    out = pd.DataFrame(
        {
            "sample_id": latest.index,
            "types": latest["types"].map(list).to_numpy(),
            "source": latest["source"].to_numpy(),
            "annotator": latest["annotator"].to_numpy(),
            "labelled_at": latest["labelled_at"].to_numpy(),
            "n_annotators": n_ann.reindex(latest.index).to_numpy(),
            "conflict": ((n_distinct > 1) & (latest["source"] != "adjudication")).to_numpy(),
        }
    )
    out["occluded"] = out["types"].map(lambda t: any(x != "none" for x in t))
    return out.reset_index(drop=True)[_CURRENT_COLUMNS]


def _latest_per_annotator(events: pa.Table, *, by_source: bool) -> pd.DataFrame:
    """Each annotator's latest event per sample (and source), withdrawals applied (see :func:`latest_labels`)."""
    if events.num_rows == 0:
        return pd.DataFrame(columns=_LATEST_COLUMNS)
    df = events.select(_LATEST_COLUMNS).to_pandas()
    keys = ["sample_id", "source", "annotator"] if by_source else ["sample_id", "annotator"]
    df = df.sort_values([*keys, "labelled_at"], kind="stable").groupby(keys, sort=False).tail(1)
    df = df[df["types"].map(len) > 0]
    return df.sort_values(["sample_id", "annotator", "source"], kind="stable").reset_index(drop=True)[_LATEST_COLUMNS]


def current_labels(events: pa.Table) -> pd.DataFrame:
    """Deprecated (issue 30): ``latest_labels(events)``."""
    _retired("current_labels(events)", "latest_labels(events)")
    return latest_labels(events)


def latest_per_annotator(events: pa.Table, *, by_source: bool = False) -> pd.DataFrame:
    """Deprecated (issue 30): ``latest_labels(events, per_annotator=True, by_source=...)``."""
    _retired("latest_per_annotator(events)", "latest_labels(events, per_annotator=True)")
    return latest_labels(events, per_annotator=True, by_source=by_source)


def label_events(events: pa.Table) -> pa.Table:
    """Deprecated (issue 30): the events that are labels; ``latest_labels(events, source=LABEL_SOURCES)``."""
    _retired("label_events(events)", "latest_labels(events, source=LABEL_SOURCES)")
    return events.filter(pc.not_equal(events.column("source"), "suggestion"))


def _retired(old: str, new: str) -> None:
    """Warn that ``fercurate.annotations.<old>`` is now ``<new>`` (one function for the latest labels)."""
    warnings.warn(f"fercurate.annotations.{old} is fercurate.annotations.{new} now; call that",
                  DeprecationWarning, stacklevel=3)


def occlusion_types_present(labels: pd.DataFrame) -> list[str]:
    """Resolved types (in vocabulary order) that occur in ``latest_labels`` output, 'none' excluded."""
    present = set(pc.list_flatten(pa.array(labels["types"].tolist(), type=pa.list_(pa.string()))).to_pylist())
    return [t for t in OCCLUSION_VALUES if t in present and t != "none"]


__all__ = [
    "BLIND_ORIGIN",
    "EVENT_SCHEMA",
    "LABEL_SOURCES",
    "META_KEY",
    "OCCLUSION_TYPES",
    "SCHEMA_VERSION",
    "SOURCE_RANK",
    "append_events",
    "is_blind",
    "latest_labels",
    "make_event",
    "make_withdrawal",
    "normalise_types",
    "occlusion_types_present",
    "read_events",
    "types_key",
]
