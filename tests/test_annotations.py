"""The occlusion event table: append-only, idempotent, validated; current labels derived from history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from fercurate.annotations import append_events, latest_labels, make_event, read_events
from fercurate.errors import InputError

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_append_is_idempotent_and_never_loses_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.occlusion.parquet"
    e1 = make_event("s1", ["mask"], annotator="ann", source="human", labelled_at=T0)
    e2 = make_event("s2", ["none"], annotator="ann", source="human", labelled_at=T0)
    assert append_events(path, [e1, e2]) == (2, 0)
    assert append_events(path, [e1, e2]) == (0, 2)
    e3 = make_event("s1", ["glasses"], annotator="bob", source="human", labelled_at=T0 + timedelta(hours=1))
    assert append_events(path, [e3]) == (1, 0)
    table = read_events(path)
    assert table.num_rows == 3
    assert sorted(table.column("annotator").to_pylist()) == ["ann", "ann", "bob"]


def test_vocabulary_is_enforced() -> None:
    with pytest.raises(InputError, match="not in the vocabulary"):
        make_event("s1", ["hat"], annotator="ann", source="human")
    with pytest.raises(InputError, match="cannot be combined"):
        make_event("s1", ["none", "mask"], annotator="ann", source="human")
    with pytest.raises(InputError, match="unknown annotation source"):
        make_event("s1", ["mask"], annotator="ann", source="robot")


def test_current_labels_precedence_and_conflicts(tmp_path: Path) -> None:
    path = tmp_path / "a.occlusion.parquet"
    append_events(path, [
        make_event("s1", ["glasses|mask"], annotator="ran-authors", source="official", labelled_at=T0),
        make_event("s1", ["mask"], annotator="ann", source="human", labelled_at=T0 + timedelta(days=1)),
        make_event("s2", ["upper"], annotator="ann", source="human", labelled_at=T0),
        make_event("s2", ["bottom"], annotator="bob", source="human", labelled_at=T0 + timedelta(hours=2)),
        make_event("s3", ["none"], annotator="ann", source="human", labelled_at=T0),
        make_event("s3", ["bottom"], annotator="ann", source="human", labelled_at=T0 + timedelta(hours=1)),
        make_event("s4", ["mask"], annotator="fercurate-synth", source="synthetic", labelled_at=T0),
    ])
    cur = latest_labels(read_events(path)).set_index("sample_id")
    assert cur.loc["s1", "types"] == ["mask"] and cur.loc["s1", "source"] == "human"  # person beats list
    assert bool(cur.loc["s2", "conflict"]) and cur.loc["s2", "n_annotators"] == 2
    assert cur.loc["s2", "types"] == ["bottom"]  # most recent of the conflicting labels
    assert cur.loc["s3", "types"] == ["bottom"] and not cur.loc["s3", "conflict"]  # own relabel
    assert bool(cur.loc["s4", "occluded"])
