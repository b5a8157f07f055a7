"""One annotator's labelling session: their own App dataset, their queue, and labels saved as made.

Every annotator labels in their own App dataset of the manifest (``<dataset>--<name>``, built from
the manifest and its layers), opened by their own ``annotate launch`` on their own App server, in
a MongoDB database of their own (:func:`fercurate.annotate.database.annotator_database`) so that
their App lists no one else's dataset. It shows the official lists and the automatic suggestions
but never another person's labels, so every label made there is an independent (blind) label,
recorded with origin ``app-blind:<dataset>``. Who labelled is the owner of the dataset, fixed at
its creation: one annotator's launch can never relabel another's clicks. The dataset records its
workspace: its labels go to that workspace's ``annotations/``, whichever process saves them.

Three modes (:data:`MODES`):

* ``label``: the faces nobody has labelled yet, most likely occluded first;
* ``second-pass``: a seeded sample of faces others labelled and this annotator has not, in
  shuffled order and without their labels, for agreement;
* ``adjudicate``: the faces where people disagree; the panel shows each person's label and the
  decision is recorded as an ``adjudication`` event by the adjudicator.

A saved label replaces the annotator's own earlier label of that face (it never adds to it, and
never touches anyone else's). It is written to the annotation file within seconds
(:mod:`fercurate.annotate.live`); :func:`undo` takes back the last one (still queued: dropped;
already written: the earlier label is restored, or withdrawn when there was none).
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Not "from fercurate import annotations": fercurate/__init__ binds that name to its __future__ import.
import fercurate.annotations as history
from fercurate.annotate import adjudicate, live
from fercurate.annotate.database import connect
from fercurate.annotate.dataset import BASE_KEY, INFO_KEY, OWNER_KEY, dataset_name, datasets_lock, ensure_dataset, info
from fercurate.annotate.identity import annotator_slug
from fercurate.annotate.vocabulary import TAG_TO_TYPE, is_occlusion_tag, type_tag
from fercurate.annotations import BLIND_ORIGIN, make_event, make_withdrawal, normalise_types
from fercurate.errors import InputError
from fercurate.schema import OCCLUDED_TYPES, OCCLUSION_TYPES
from fercurate.workspace import Workspace, manifest_name

if TYPE_CHECKING:
    import fiftyone as fo

MODES: tuple[str, ...] = ("label", "second-pass", "adjudicate")
QUEUE_VIEW = "occlusion-queue"
MODE_KEY = "mode"
WORKSPACE_KEY = "workspace"
# Faces this annotator had done (in the dataset's mode, within its split) before the latest launch.
DONE_BEFORE_KEY = "done_before_launch"
# Keys of the single-face flow: number keys 1-5 toggle the occluded types in schema order, 0 / n mean no occlusion.
KEY_TYPES: dict[str, str] = {**{str(i): t for i, t in enumerate(OCCLUDED_TYPES, 1)}, "0": "none", "n": "none"}


def session_dataset_name(base_name: str, annotator: str, mode: str = "label") -> str:
    """``fercurate-ferplus`` + ``alice`` -> ``fercurate-ferplus--alice`` (``--alice--adjudicate`` to
    adjudicate: the decisions are kept apart from that person's own labels)."""
    suffix = "--adjudicate" if mode == "adjudicate" else ""
    return f"{base_name}--{annotator_slug(annotator)}{suffix}"


def owner(ds: "fo.Dataset") -> str | None:
    """Whose own dataset this is (None for the shared dataset)."""
    return info(ds).get(OWNER_KEY)


def mode_of(ds: "fo.Dataset") -> str:
    return info(ds).get(MODE_KEY) or "label"


def workspace_of(ds: "fo.Dataset", workspace: Workspace | None = None) -> Workspace:
    """The workspace an annotator's dataset labels for: the one recorded at its launch.

    ``workspace`` (the one an App server was started for) must be that same workspace. Never the
    current folder: the App server runs in FiftyOne's folder, and a label must not land elsewhere.
    """
    recorded = info(ds).get(WORKSPACE_KEY)
    if recorded is None:
        if workspace is None:
            raise InputError(f"App dataset {ds.name!r} does not say which workspace it labels for; "
                             "open it with 'fercurate annotate launch MANIFEST' (from the workspace, or with -w)")
        return workspace
    if workspace is not None and Path(recorded) != workspace.root:
        raise InputError(f"App dataset {ds.name!r} labels for workspace {recorded}, but this App serves "
                         f"{workspace.root}; launch it from its own workspace")
    return Workspace(Path(recorded))


def annotation_path(ds: "fo.Dataset", workspace: Workspace | None = None) -> Path:
    """The annotation file labels made in ``ds`` go to (in :func:`workspace_of`)."""
    return workspace_of(ds, workspace).annotation_path(info(ds).get("manifest") or ds.name)


@dataclass
class Session:
    """An annotator's dataset, the mode it was opened in and the faces of its queue, in order."""

    dataset: Any
    annotator: str
    mode: str
    queue: list[str]
    split: str | None = None
    notes: list[str] = field(default_factory=list)


def open_session(
    base: "fo.Dataset | None",
    manifest_path: str | Path,
    *,
    annotator: str,
    mode: str = "label",
    split: str | None = None,
    sample: int | None = None,
    seed: int = 0,
    workspace: Workspace | None = None,
    root: str | Path | None = None,
) -> Session:
    """Create or refresh ``annotator``'s own App dataset of the manifest and save the queue for ``mode`` in it.

    The dataset is built from the manifest and its layers in the database this process uses (the
    launcher chooses the annotator's own); ``base``, the shared dataset, only gives it its name
    (None: the manifest's default name). It records ``workspace``. ``sample`` (second pass only)
    takes that many faces of the eligible ones, chosen by ``seed``. Safe to run in several
    processes at once (:func:`fercurate.annotate.dataset.datasets_lock`).
    """
    if mode not in MODES:
        raise InputError(f"unknown labelling mode {mode!r} (known: {', '.join(MODES)})")
    who = annotator.strip()
    ws = workspace or Workspace.current()
    mpath = ws.resolve_manifest(manifest_path)
    base_name = base.name if base is not None else dataset_name(manifest_name(mpath))
    name = session_dataset_name(base_name, who, mode)
    fo = connect(ws)
    with datasets_lock(ws):
        if fo.dataset_exists(name):
            found = owner(fo.load_dataset(name))
            if found != who:
                raise InputError(f"App dataset {name!r} belongs to {found!r}, not {who!r}; choose another name")
        meta = {OWNER_KEY: who, BASE_KEY: base_name, MODE_KEY: mode, "annotator": who, WORKSPACE_KEY: str(ws.root)}
        ds = ensure_dataset(mpath, split=split, workspace=ws, root=root, name=name, meta=meta)
        events = live.writer_for(annotation_path(ds, ws)).history()  # the file and what waits to be written
        _sync_own_labels(ds, events, who)
        ids = ds.values("sample_id") if split is None else _split_ids(ds, split)
        queue = build_queue(events, ids, who, mode, scores=_scores(ds), sample=sample, seed=seed)
        meta = info(ds)
        meta[DONE_BEFORE_KEY] = len(done_before(events, ids, who, mode))
        ds.info[INFO_KEY] = meta
        ds.save()
        ds.save_view(QUEUE_VIEW, ds.select_by("sample_id", queue, ordered=True) if queue else ds.limit(0),
                     description=f"{who}'s {mode} queue ({len(queue)} faces)", overwrite=True)
    return Session(ds, who, mode, queue, split)


def done_before(events: pa.Table, sample_ids: list[str], annotator: str, mode: str) -> set[str]:
    """Faces among ``sample_ids`` the annotator has already done in ``mode`` (so not in a new queue).

    ``label``: faces they labelled; ``second-pass``: faces they and someone else both labelled;
    ``adjudicate``: faces they decided. The progress counter starts from these after a relaunch.
    """
    wanted = set(sample_ids)
    if mode == "adjudicate":
        decided = history.latest_labels(events, source="adjudication", per_annotator=True)
        return set(decided.loc[decided["annotator"] == annotator, "sample_id"]) & wanted
    labels = history.latest_labels(events, source="human", per_annotator=True)
    mine = set(labels.loc[labels["annotator"] == annotator, "sample_id"]) & wanted
    if mode == "second-pass":
        return mine & set(labels.loc[labels["annotator"] != annotator, "sample_id"])
    return mine


def _split_ids(ds: "fo.Dataset", split: str) -> list[str]:
    from fiftyone import ViewField as F

    return ds.match(F("split") == split).values("sample_id")


def _scores(ds: "fo.Dataset") -> dict[str, float]:
    ids, scores = ds.values(["sample_id", "occ_score"])
    return {i: s for i, s in zip(ids, scores) if s is not None}


def build_queue(
    events: pa.Table,
    sample_ids: list[str],
    annotator: str,
    mode: str,
    *,
    scores: dict[str, float] | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> list[str]:
    """The faces of ``annotator``'s queue for ``mode``, in the order they are shown."""
    labels = history.latest_labels(events, source="human", per_annotator=True)
    mine = set(labels.loc[labels["annotator"] == annotator, "sample_id"])
    anyone = set(labels["sample_id"])
    if mode == "label":
        todo = [s for s in sample_ids if s not in anyone]
        scores = scores or {}
        return sorted(todo, key=lambda s: (-scores.get(s, float("-inf")), s))
    if mode == "second-pass":
        others = set(labels.loc[labels["annotator"] != annotator, "sample_id"])
        adjudication = events.filter(pc.equal(events.column("source"), "adjudication"))
        adjudicated = set(adjudication.column("sample_id").to_pylist())
        todo = [s for s in sample_ids if s in others and s not in mine and s not in adjudicated]
        todo.sort(key=lambda s: hashlib.sha1(f"{seed}:{s}".encode()).hexdigest())
        return todo[:sample] if sample is not None else todo
    wanted = set(sample_ids)
    return [s for s in adjudicate.disagreements(events)["sample_id"] if s in wanted]


def _own_labels(ds: "fo.Dataset", events: pa.Table, who: str) -> dict[str, list[str]]:
    """This annotator's current label of each face in the file (decisions, in an adjudication dataset)."""
    source = "adjudication" if mode_of(ds) == "adjudicate" else "human"
    labels = history.latest_labels(events, source=source, per_annotator=True)
    labels = labels[labels["annotator"] == who]
    return {s: list(t) for s, t in zip(labels["sample_id"], labels["types"])}


def _occ_tags(tags: list[str] | None) -> list[str]:
    return sorted(x for x in (tags or []) if is_occlusion_tag(x))


def _sync_own_labels(ds: "fo.Dataset", events: pa.Table, who: str) -> None:
    """Tag each face with this annotator's current label from the file (and nothing else).

    Faces whose tags were changed by hand and not pulled yet (tags differ from ``occ_synced``) are
    left as they are: ``pull`` takes them as labels, a relaunch must not erase them.
    """
    own = _own_labels(ds, events, who)
    ids, tags, synced = ds.values(["sample_id", "tags", "occ_synced"])
    changed = {sid: own.get(sid, []) for sid, t, done in zip(ids, tags, synced)
               if _occ_tags(t) == sorted(done or []) and _occ_tags(t) != sorted(type_tag(x) for x in own.get(sid, []))}
    if changed:
        _set_tags(ds, changed, when=datetime.now(timezone.utc))


def unaccounted(ds: "fo.Dataset", since: datetime, workspace: Workspace | None = None) -> dict[str, list[str]]:
    """Labels saved in ``ds`` since ``since`` that its workspace's annotation file does not hold.

    Every label the plugin saves sets the face's tags and marks them saved (``occ_synced``,
    ``occ_synced_at``); the same label must then be the annotator's latest in the file. A face
    where it is not (its event went to another file, or was never written) is returned with the
    label the App shows: sample_id -> types (``[]``: a withdrawn label).
    """
    from fiftyone import ViewField as F

    who = owner(ds)
    if who is None:
        return {}
    events = history.read_events(annotation_path(ds, workspace))
    own = _own_labels(ds, events, who)
    view = ds.match(F("occ_synced_at") >= since)
    ids, tags, synced = view.values(["sample_id", "tags", "occ_synced"])
    out = {}
    for sid, t, done in zip(ids, tags, synced):
        shown = _occ_tags(t)
        if shown == sorted(done or []) and shown != sorted(type_tag(x) for x in own.get(sid, [])):
            out[sid] = [TAG_TO_TYPE.get(x, x) for x in shown]
    return out


def _set_tags(ds: "fo.Dataset", labels: dict[str, list[str]], when: datetime | None, by: str | None = None) -> None:
    """Show the given faces' labels in the annotator's copy: ``occ:*`` tags (other tags kept), marked
    as saved (nothing to pull), and the ``occlusion`` field the grid's tiles display."""
    if not labels:
        return
    view = ds.select_by("sample_id", list(labels), ordered=True)
    keys, ids, tags, shown, source = view.values(["id", "sample_id", "tags", "occlusion", "occlusion_source"])
    new_tags, synced, occlusion, origin = {}, {}, {}, {}
    for key, sid, old, was, src in zip(keys, ids, tags, shown, source):
        occ = [type_tag(t) for t in labels[sid]]
        new_tags[key] = [t for t in (old or []) if not is_occlusion_tag(t)] + occ
        synced[key] = sorted(occ)
        if labels[sid]:
            occlusion[key], origin[key] = list(labels[sid]), "human"
        elif src == "human":  # withdrawn: the official label, if any, shows again at the next launch
            occlusion[key], origin[key] = None, None
        else:
            occlusion[key], origin[key] = was, src
    ds.set_values("tags", new_tags, key_field="id")
    ds.set_values("occ_synced", synced, key_field="id")
    ds.set_values("occ_synced_at", {k: when for k in keys}, key_field="id")
    ds.set_values("occ_by", {k: (by if labels[s] else None) for k, s in zip(keys, ids)}, key_field="id")
    ds.set_values("occ_at", {k: (when if labels[s] else None) for k, s in zip(keys, ids)}, key_field="id")
    ds.set_values("occlusion", occlusion, key_field="id")
    ds.set_values("occlusion_source", origin, key_field="id")


# --- saving, undo and the next face (what the App's keys and buttons call) -----------------------


@dataclass
class Saved:
    """One saved label, remembered for undo: the face, the label it replaced, the event written."""

    sample_id: str
    previous: list[str]
    event_id: str


_undo: dict[str, list[Saved]] = {}
_undo_lock = threading.Lock()


def current_types(ds: "fo.Dataset", sample_id: str) -> list[str]:
    """The annotator's own saved label of a face (its ``occ:*`` tags in their dataset)."""
    tags = ds.select_by("sample_id", [sample_id]).values("tags")
    if not tags:
        raise InputError(f"face {sample_id!r} is not in App dataset {ds.name!r}")
    return sorted(TAG_TO_TYPE[t] for t in (tags[0] or []) if t in TAG_TO_TYPE)


def toggle(draft: list[str], key: str) -> list[str]:
    """A key press on the draft label: a number toggles its type, 0 / n sets 'no occlusion'."""
    t = KEY_TYPES.get(key)
    if t is None:
        raise InputError(f"key {key!r} is not a labelling key ({', '.join(KEY_TYPES)})")
    if t == "none":
        return [] if draft == ["none"] else ["none"]
    kept = [x for x in draft if x != "none"]
    out = [x for x in kept if x != t] if t in kept else kept + [t]
    return [x for x in OCCLUSION_TYPES if x in out]


def save(
    ds: "fo.Dataset",
    sample_id: str,
    types: list[str],
    *,
    annotator: str,
    workspace: Workspace | None = None,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """Save ``annotator``'s label of a face in their own dataset: replaces their earlier label.

    An empty ``types`` withdraws their label. Returns the event queued for the annotation file, or
    None when nothing changed. Refuses a dataset that belongs to someone else.
    """
    _check_owner(ds, annotator)
    chosen = normalise_types(types, where=f"{sample_id}: ") if types else []
    bad = [t for t in chosen if t not in OCCLUSION_TYPES]
    if bad:
        raise InputError(f"{sample_id}: {bad[0]!r} is for official lists; choose among {', '.join(OCCLUSION_TYPES)}")
    previous = current_types(ds, sample_id)
    if previous == chosen:
        return None
    when = now or datetime.now(timezone.utc)
    event = _event(ds, sample_id, chosen, annotator, when)
    live.writer_for(annotation_path(ds, workspace)).add(event)
    _set_tags(ds, {sample_id: chosen}, when=when, by=annotator)
    with _undo_lock:
        _undo.setdefault(ds.name, []).append(Saved(sample_id, previous, event["event_id"]))
    return event


def _event(ds: "fo.Dataset", sample_id: str, types: list[str], annotator: str, when: datetime,
           note: str | None = None) -> dict[str, Any]:
    """A label (or, with no types, a withdrawal) made in ``ds``: blind unless adjudicating."""
    adjudicating = mode_of(ds) == "adjudicate"
    kw = {
        "annotator": annotator,
        "source": "adjudication" if adjudicating else "human",
        "labelled_at": when,
        "origin": f"app-adjudication:{ds.name}" if adjudicating else f"{BLIND_ORIGIN}{ds.name}",
        "note": note,
    }
    return make_event(sample_id, types, **kw) if types else make_withdrawal(sample_id, **kw)


def undo(
    ds: "fo.Dataset", *, annotator: str, workspace: Workspace | None = None, now: datetime | None = None
) -> Saved | None:
    """Take back the last label saved in this dataset by this process; None when there is none.

    A label still queued is dropped before it reaches the file; one already written is followed by
    an event restoring the earlier label (or withdrawing the label when there was none): the
    history stays append-only.
    """
    _check_owner(ds, annotator)
    with _undo_lock:
        stack = _undo.get(ds.name) or []
        if not stack:
            return None
        last = stack.pop()
    writer = live.writer_for(annotation_path(ds, workspace))
    when = now or datetime.now(timezone.utc)
    if not writer.discard(last.event_id):
        writer.add(_event(ds, last.sample_id, last.previous, annotator, when, note=f"undo of {last.event_id}"))
    _set_tags(ds, {last.sample_id: last.previous}, when=when, by=annotator)
    return last


def next_face(ds: "fo.Dataset", current: str | None, *, workspace: Workspace | None = None) -> str | None:
    """The face after ``current`` in the queue that is still to do (wrapping round); None when done.

    Re-checked against the annotation file, so a face another annotator labelled meanwhile is
    skipped in the first pass and a disagreement someone settled is skipped when adjudicating.
    """
    who = owner(ds)
    queue = ds.load_saved_view(QUEUE_VIEW).values("sample_id") if ds.has_saved_view(QUEUE_VIEW) else []
    if not queue:
        return None
    events = live.writer_for(annotation_path(ds, workspace)).history()
    open_now = set(build_queue(events, queue, who, mode_of(ds)))
    start = queue.index(current) + 1 if current in queue else 0
    for sid in queue[start:] + queue[:start]:
        if sid in open_now and sid != current:
            return sid
    return None


def others_labels(ds: "fo.Dataset", sample_id: str, workspace: Workspace | None = None) -> dict[str, str]:
    """Every person's latest label of a face, ``{annotator: "a|b"}`` (shown when adjudicating)."""
    events = live.writer_for(annotation_path(ds, workspace)).history()
    return adjudicate.people_labels(events, [sample_id]).get(sample_id, {})


def progress(ds: "fo.Dataset") -> str:
    """``done: 7 of 30``: faces this annotator has done in this mode, before this launch and in its queue.

    A relaunch's queue leaves out the faces already done, so the count goes on from where it was.
    """
    from fercurate.annotate.vocabulary import TAGS

    if not ds.has_saved_view(QUEUE_VIEW):
        return "no queue"
    queue = ds.load_saved_view(QUEUE_VIEW)
    before = int(info(ds).get(DONE_BEFORE_KEY) or 0)
    return f"done: {before + queue.match_tags(list(TAGS)).count()} of {before + queue.count()}"


def latest_labels(events: pa.Table, source: str = "human") -> pd.DataFrame:
    """Deprecated (issue 30): ``fercurate.annotations.latest_labels(events, source=..., per_annotator=True)``."""
    warnings.warn("fercurate.annotate.session.latest_labels(events, source) is "
                  "fercurate.annotations.latest_labels(events, source=source, per_annotator=True) now; call that",
                  DeprecationWarning, stacklevel=2)
    return history.latest_labels(events, source=source, per_annotator=True)[["sample_id", "annotator", "types"]]


def _check_owner(ds: "fo.Dataset", annotator: str | None) -> None:
    who = owner(ds)
    if who is None:
        raise InputError(
            f"App dataset {ds.name!r} is the shared one: label in your own session "
            "('fercurate annotate launch MANIFEST --annotator NAME')"
        )
    if not annotator or annotator != who:
        raise InputError(f"App dataset {ds.name!r} belongs to {who!r}; this App session is {annotator!r}'s")


__all__ = [
    "KEY_TYPES",
    "MODES",
    "QUEUE_VIEW",
    "Saved",
    "Session",
    "annotator_slug",
    "build_queue",
    "current_types",
    "done_before",
    "next_face",
    "open_session",
    "others_labels",
    "owner",
    "progress",
    "save",
    "session_dataset_name",
    "toggle",
    "unaccounted",
    "undo",
    "workspace_of",
]
