"""Annotators' own sessions: who labelled, blind copies, replace-not-add, undo, queues, labels saved as made.

Real FiftyOne datasets on the test's private MongoDB, real Parquet annotation files read back.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from test_annotate import make_toy_manifest

from fercurate.annotate import live, session
from fercurate.annotations import (
    BLIND_ORIGIN,
    append_events,
    latest_labels,
    make_event,
    read_events,
)
from fercurate.errors import InputError
from fercurate.workspace import Workspace

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def toy(workspace: Path) -> Path:
    return make_toy_manifest(workspace, n=12)


def _open(toy: Path, who: str, mode: str = "label", **kw) -> session.Session:
    from fercurate.annotate.dataset import ensure_dataset

    base = ensure_dataset(toy)
    return session.open_session(base, toy, annotator=who, mode=mode, **kw)


def _file(toy: Path) -> Path:
    return Workspace.current().annotation_path(toy.stem)


def _flush(toy: Path) -> None:
    live.writer_for(_file(toy)).flush()


def _people(toy: Path) -> dict[tuple[str, str], list[str]]:
    latest = latest_labels(read_events(_file(toy)), per_annotator=True)
    return {(s, a): list(t) for s, a, t in zip(latest["sample_id"], latest["annotator"], latest["types"])}


def test_each_annotator_labels_in_their_own_blind_copy_under_their_own_name(toy: Path) -> None:
    alice = _open(toy, "alice")
    bob = _open(toy, "bob")
    assert alice.dataset.name != bob.dataset.name
    assert (session.owner(alice.dataset), session.owner(bob.dataset)) == ("alice", "bob")
    face = alice.queue[0]
    session.save(alice.dataset, face, ["mask", "left_right"], annotator="alice")
    _flush(toy)
    events = read_events(_file(toy))
    assert events.column("annotator").to_pylist() == ["alice"]
    assert events.column("origin").to_pylist() == [f"{BLIND_ORIGIN}{alice.dataset.name}"]
    # bob relaunches after alice labelled: his copy shows nothing of hers (tags, fields), and he is still bob
    bob = _open(toy, "bob")
    doc = bob.dataset.select_by("sample_id", [face]).first()
    assert not [t for t in doc.tags if t.startswith("occ:")]
    assert doc["occlusion"] is None and doc["occlusion_source"] is None
    with pytest.raises(InputError, match="belongs to 'bob'"):
        session.save(bob.dataset, face, ["none"], annotator="alice")
    from fercurate.annotate.dataset import load_dataset

    with pytest.raises(InputError, match="shared one"):
        session.save(load_dataset(toy.stem), face, ["none"], annotator="alice")


def test_a_saved_label_replaces_the_annotators_own_label_and_no_one_elses(toy: Path) -> None:
    alice, bob = _open(toy, "alice"), _open(toy, "bob")
    face = alice.queue[0]
    session.save(alice.dataset, face, ["bottom", "left_right"], annotator="alice")
    session.save(bob.dataset, face, ["left_right"], annotator="bob")  # bob presses only Left/right
    session.save(alice.dataset, face, ["bottom"], annotator="alice")  # alice changes her mind
    assert session.save(alice.dataset, face, ["bottom"], annotator="alice") is None  # unchanged: no event
    _flush(toy)
    people = _people(toy)
    assert people[(face, "alice")] == ["bottom"]
    assert people[(face, "bob")] == ["left_right"]
    assert read_events(_file(toy)).num_rows == 3
    assert session.current_types(bob.dataset, face) == ["left_right"]


def test_undo_drops_a_queued_label_and_restores_or_withdraws_a_written_one(toy: Path) -> None:
    alice = _open(toy, "alice")
    a, b = alice.queue[:2]
    session.save(alice.dataset, a, ["mask"], annotator="alice")
    undone = session.undo(alice.dataset, annotator="alice")  # still queued: never reaches the file
    assert undone.sample_id == a and undone.previous == []
    _flush(toy)
    assert read_events(_file(toy)).num_rows == 0
    assert session.current_types(alice.dataset, a) == []

    session.save(alice.dataset, b, ["glasses"], annotator="alice")
    _flush(toy)
    session.save(alice.dataset, b, ["glasses", "upper"], annotator="alice")
    _flush(toy)
    session.undo(alice.dataset, annotator="alice")  # written: glasses comes back as a new event
    _flush(toy)
    assert _people(toy)[(b, "alice")] == ["glasses"]
    session.undo(alice.dataset, annotator="alice")  # and the first label is withdrawn
    _flush(toy)
    assert (b, "alice") not in _people(toy)
    assert read_events(_file(toy)).num_rows == 4  # append-only: nothing rewritten
    assert b not in set(latest_labels(read_events(_file(toy)))["sample_id"])
    assert session.undo(alice.dataset, annotator="alice") is None


def test_first_pass_queue_skips_faces_labelled_meanwhile_and_second_pass_is_a_seeded_blind_sample(toy: Path) -> None:
    alice, bob = _open(toy, "alice"), _open(toy, "bob")
    assert alice.queue == bob.queue and len(alice.queue) == 12
    q = alice.queue
    session.save(bob.dataset, q[1], ["none"], annotator="bob")
    assert session.next_face(alice.dataset, q[0]) == q[2]  # bob took q[1] meanwhile
    for face in q[:6]:
        session.save(alice.dataset, face, ["none"], annotator="alice")
    _flush(toy)
    other_seed = _open(toy, "carol", mode="second-pass", sample=4, seed=4).queue
    carol = _open(toy, "carol", mode="second-pass", sample=4, seed=3)
    assert len(carol.queue) == 4 and set(carol.queue) <= set(q[:6])
    assert carol.queue != other_seed
    assert carol.queue == _open(toy, "carol", mode="second-pass", sample=4, seed=3).queue  # deterministic
    again = _open(toy, "alice")
    assert set(again.queue) == set(q[6:])  # first pass: only faces nobody labelled
    assert session.next_face(carol.dataset, None) == carol.queue[0]


def test_adjudication_queue_is_the_disagreements_and_records_the_decision(toy: Path) -> None:
    alice, bob = _open(toy, "alice"), _open(toy, "bob")
    q = alice.queue
    for who, ds in (("alice", alice.dataset), ("bob", bob.dataset)):
        session.save(ds, q[0], ["mask"], annotator=who)
        session.save(ds, q[1], ["glasses"] if who == "alice" else ["none"], annotator=who)
        session.save(ds, q[2], ["upper"] if who == "alice" else ["bottom"], annotator=who)
    _flush(toy)
    judge = _open(toy, "carol", mode="adjudicate")
    assert judge.queue == sorted([q[1], q[2]])
    assert session.others_labels(judge.dataset, q[1]) == {"alice": "glasses", "bob": "none"}
    session.save(judge.dataset, q[1], ["glasses"], annotator="carol")
    _flush(toy)
    current = latest_labels(read_events(_file(toy))).set_index("sample_id")
    assert current.loc[q[1], "source"] == "adjudication" and current.loc[q[1], "annotator"] == "carol"
    assert session.next_face(judge.dataset, q[2]) is None  # q[1] settled, q[2] is the current face
    assert session.next_face(judge.dataset, q[1]) == q[2]


def test_labels_reach_the_file_within_seconds_without_a_pull(toy: Path) -> None:
    alice = _open(toy, "alice")
    writer = live.writer_for(_file(toy), interval=live.FLUSH_S)
    session.save(alice.dataset, alice.queue[0], ["mask"], annotator="alice")
    deadline = time.monotonic() + 4 * live.FLUSH_S
    while time.monotonic() < deadline and not _file(toy).exists():
        time.sleep(0.1)
    assert writer.pending == 0
    assert read_events(_file(toy)).column("sample_id").to_pylist() == [alice.queue[0]]


def test_pull_collects_hand_tags_in_an_annotators_copy_as_a_blind_label_of_that_annotator(toy: Path) -> None:
    from fercurate.annotate.pull import pull

    alice = _open(toy, "alice")
    face = alice.queue[3]
    doc = alice.dataset.select_by("sample_id", [face]).first()
    doc.tags = [*doc.tags, "occ:glasses"]
    doc.save()
    result = pull(toy.stem)
    assert result.added == 1 and result.by_annotator == {"alice": 1}
    events = read_events(_file(toy))
    assert events.column("origin").to_pylist() == [f"{BLIND_ORIGIN}{alice.dataset.name}"]
    assert pull(toy.stem).added == 0  # idempotent


def test_keys_toggle_the_draft() -> None:
    d = session.toggle([], "1")
    assert d == ["mask"]
    d = session.toggle(d, "3")
    assert d == ["mask", "left_right"]
    assert session.toggle(d, "1") == ["left_right"]
    assert session.toggle(d, "0") == ["none"] and session.toggle(["none"], "2") == ["glasses"]
    assert session.toggle(["none"], "n") == []
    with pytest.raises(InputError, match="not a labelling key"):
        session.toggle([], "7")


def test_existing_labels_older_than_a_session_are_shown_as_that_annotators_own(toy: Path) -> None:
    ids = _open(toy, "alice").queue
    append_events(_file(toy), [
        make_event(ids[0], ["mask"], annotator="alice", source="human", labelled_at=T0),
        make_event(ids[0], ["none"], annotator="bob", source="human", labelled_at=T0 + timedelta(seconds=1)),
    ])
    alice = _open(toy, "alice")
    assert session.current_types(alice.dataset, ids[0]) == ["mask"]
    assert ids[0] not in alice.queue


def test_the_writer_keeps_events_it_could_not_write_and_retries(tmp_path: Path) -> None:
    blocked = tmp_path / "annotations"
    blocked.write_text("a file where the folder should be")
    writer = live.EventWriter(blocked / "toy.occlusion.parquet", interval=60)
    event = make_event("s1", ["mask"], annotator="alice", source="human", labelled_at=T0)
    writer.add(event)
    assert writer.flush() == 0 and writer.pending == 1 and "labels not saved yet" in writer.last_error
    assert writer.history().num_rows == 1  # what the queue logic sees: the file plus the waiting event
    blocked.unlink()
    assert writer.flush() == 1 and writer.pending == 0 and writer.last_error is None
    assert read_events(blocked / "toy.occlusion.parquet").column("event_id").to_pylist() == [event["event_id"]]
    assert not writer.discard(event["event_id"])  # written: only a new event can take it back


def test_an_event_being_written_cannot_be_discarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An undo that lands while the writer is writing must not think the label never reached the file."""
    import threading

    path = tmp_path / "toy.occlusion.parquet"
    writer = live.EventWriter(path, interval=60)
    event = make_event("s1", ["none"], annotator="alice", source="human", labelled_at=T0)
    writer.add(event)
    started, release = threading.Event(), threading.Event()
    real = live.append_events

    def slow_append(*args, **kwargs):
        started.set()
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(live, "append_events", slow_append)
    flushing = threading.Thread(target=writer.flush)
    flushing.start()
    assert started.wait(10)
    assert not writer.discard(event["event_id"])  # mid-write: the caller must append a withdrawal instead
    assert writer.history().num_rows == 1
    release.set()
    flushing.join(10)
    assert read_events(path).num_rows == 1 and writer.pending == 0


def test_the_queue_works_when_session_is_the_first_module_imported() -> None:
    """The App server imports the plugin, and so session, before anything else of fercurate's."""
    import subprocess
    import sys

    code = ("import fercurate.annotate.session as session\n"
            "from fercurate.annotations import EVENT_SCHEMA, make_event\n"
            "import pyarrow as pa\n"
            "events = pa.Table.from_pylist([make_event('b', ['mask'], annotator='bob', source='human')], schema=EVENT_SCHEMA)\n"
            "print(session.build_queue(events, ['a', 'b', 'c'], 'alice', 'label'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['a', 'c']"


# --- round 2: the workspace travels, launches at once, progress across launches ----------------


def test_labels_go_to_the_workspace_the_dataset_was_opened_for_whatever_the_current_folder(
    toy: Path, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The App server runs in FiftyOne's folder: the plugin must not take the current folder for the workspace."""
    from fiftyone.operators import execute_operator

    from fercurate.annotate.app import PLUGIN_NAME, install_plugin

    install_plugin()
    alice = _open(toy, "alice")
    first, second = (alice.dataset.select_by("sample_id", [f]).values("id")[0] for f in alice.queue[:2])
    elsewhere = tmp_path / "fiftyone-server-folder"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("FERCURATE_WORKSPACE")
    execute_operator(f"{PLUGIN_NAME}/occ_mask", dataset=alice.dataset, selected=[first])  # as the App server does
    live.flush_all()
    events = read_events(Workspace(workspace).annotation_path(toy.stem))
    assert events.column("sample_id").to_pylist() == [alice.queue[0]]
    assert not (elsewhere / "annotations").exists()
    # an App server started for another workspace refuses to label this dataset, and writes nowhere
    from fercurate.annotate import served

    monkeypatch.setattr(served, "_current", served.Served("alice", Workspace(elsewhere)))
    done = execute_operator(f"{PLUGIN_NAME}/occ_glasses", dataset=alice.dataset, selected=[second])
    assert f"labels for workspace {workspace}" in done.result["error"]
    live.flush_all()
    assert not (elsewhere / "annotations").exists()
    assert read_events(Workspace(workspace).annotation_path(toy.stem)).num_rows == 1


def test_labels_saved_in_a_session_but_not_in_the_file_are_found(toy: Path) -> None:
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    alice = _open(toy, "alice")
    face = alice.queue[0]
    session.save(alice.dataset, face, ["mask", "upper"], annotator="alice")  # queued: not in the file yet
    assert session.unaccounted(alice.dataset, since) == {face: ["mask", "upper"]}
    _flush(toy)
    assert session.unaccounted(alice.dataset, since) == {}
    assert session.unaccounted(alice.dataset, datetime.now(timezone.utc) + timedelta(hours=1)) == {}


def test_the_progress_count_goes_on_after_a_relaunch(toy: Path) -> None:
    alice = _open(toy, "alice")
    assert session.progress(alice.dataset) == "done: 0 of 12"
    for face in alice.queue[:2]:
        session.save(alice.dataset, face, ["none"], annotator="alice")
    assert session.progress(alice.dataset) == "done: 2 of 12"
    _flush(toy)
    alice = _open(toy, "alice")  # the relaunch's queue leaves out the two faces done
    assert len(alice.queue) == 10 and session.progress(alice.dataset) == "done: 2 of 12"


_OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
from fercurate.annotate.dataset import ensure_dataset
from fercurate.annotate.session import open_session

manifest, who, barriers, n = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
for round_ in ("fresh", "used"):  # creating the datasets, then refreshing them and their views
    (barriers / f"{round_}-{who}").touch()
    deadline = time.monotonic() + 120
    while len(list(barriers.glob(round_ + "-*"))) < n:  # everyone ready: go at the same moment
        if time.monotonic() > deadline:
            sys.exit(f"{who}: the others never came to round {round_!r}")
        time.sleep(0.01)
    opened = open_session(ensure_dataset(manifest), manifest, annotator=who)
    print(round_, opened.dataset.name, opened.dataset.count(), len(opened.queue), flush=True)
"""


def test_launches_at_the_same_moment_create_and_refresh_the_datasets_safely(toy: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    from fercurate.annotate.dataset import load_dataset

    procs = {who: subprocess.Popen([sys.executable, "-c", _OPEN_AT_ONCE, str(toy), who, str(tmp_path), "2"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for who in ("alice", "bob")}
    try:
        for who, proc in procs.items():
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0 and "Traceback" not in err, err[-3000:]
            assert out.split("\n")[:2] == [f"{r} fercurate-{toy.stem}--{who} 12 12" for r in ("fresh", "used")]
    finally:
        for proc in procs.values():  # a failed one must not leave the other waiting
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    base = load_dataset(toy.stem)
    assert base.count() == len(set(base.values("sample_id"))) == 12
