"""Fault injection: concurrent writers of the shared annotation table (issue 18, case 1).

Four real processes (spawned, as the CLI's workers are) each append 200 distinct events one at a
time to the same file; every one of the 800 must be there afterwards, and each writer must have
been told exactly its own 200 were added.
"""

from __future__ import annotations

import multiprocessing as mp
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa

from fercurate.annotations import append_events, make_event, read_events

N_WRITERS = 4
N_EVENTS = 200
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _writer(path: str, writer: int, start, added_out) -> None:  # noqa: ANN001 - mp primitives
    start.wait()
    total = 0
    for i in range(N_EVENTS):
        event = make_event(
            f"ds/w{writer}/img{i:04d}.png", ["mask"], annotator=f"annotator{writer}", source="human",
            labelled_at=T0 + timedelta(seconds=i), origin=f"writer {writer}",
        )
        added, already = append_events(path, [event])
        assert (added, already) == (1, 0)
        total += added
    added_out.put((writer, total))


def test_four_processes_appending_200_events_each_keep_all_800(tmp_path: Path) -> None:
    path = tmp_path / "annotations" / "ds.occlusion.parquet"
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    added = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(path), w, start, added)) for w in range(N_WRITERS)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    told = dict(added.get(timeout=5) for _ in range(N_WRITERS))
    assert told == {w: N_EVENTS for w in range(N_WRITERS)}

    events = read_events(path)
    assert events.num_rows == N_WRITERS * N_EVENTS
    assert len(set(events.column("event_id").to_pylist())) == N_WRITERS * N_EVENTS
    per_writer = pa.table({"a": events.column("annotator")}).group_by("a").aggregate([("a", "count")])
    assert sorted(per_writer.column("a_count").to_pylist()) == [N_EVENTS] * N_WRITERS
    # no temp files left behind
    assert sorted(p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")) == []
