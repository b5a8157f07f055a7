"""Columns written by a newer version survive a rewrite (issue 29, case 2).

A teammate's newer fercurate added ``confidence`` to the annotation file; an adjudication, a pull,
an App save or a synth run of this version rewrote the file without it, for every existing event.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_annotate import make_toy_manifest
from typer.testing import CliRunner

from fercurate.annotations import append_events, make_event
from fercurate.cli import app
from fercurate.errors import InputError
from fercurate.workspace import Workspace

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def _disagreement(ws: Path) -> tuple[Path, Path, list[str]]:
    manifest = make_toy_manifest(ws, name="toy")
    ids = pq.read_table(manifest, columns=["sample_id"]).column("sample_id").to_pylist()
    path = Workspace(ws).annotation_path("toy")
    append_events(path, [make_event(ids[1], ["mask"], annotator="alice", source="human", labelled_at=T0),
                         make_event(ids[1], ["glasses"], annotator="bob", source="human", labelled_at=T0)])
    return manifest, path, ids


def _as_newer_version(path: Path, *, nullable: bool = True, version: int = 2) -> pa.Table:
    """Rewrite the file as a newer fercurate would: a ``confidence`` per event, its schema version."""
    table = pq.read_table(path)
    field = pa.field("confidence", pa.float32(), nullable=nullable)
    table = table.append_column(field, pa.array([0.9, 0.4], pa.float32()))
    meta = dict(table.schema.metadata or {})
    meta[b"fercurate.annotations"] = json.dumps({"schema_version": version}).encode()
    meta[b"team.notes"] = b"kept by every version"
    table = table.replace_schema_metadata(meta)
    pq.write_table(table, path)
    return table


def test_adjudication_keeps_a_newer_versions_column(workspace: Path) -> None:
    """Before: the rewritten file had no 'confidence' column at all."""
    _, path, ids = _disagreement(workspace)
    before = _as_newer_version(path)
    res = CliRunner().invoke(app, ["annotate", "adjudicate", "toy", "--decide", f"{ids[1]}=mask", "--by", "carol"])
    assert res.exit_code == 0, res.output
    assert (f"note: {path} has columns this fercurate does not know (confidence): kept as they are; the events "
            "added now leave them empty") in res.output
    after = pq.read_table(path)
    assert after.column_names == before.column_names and after.num_rows == 3
    assert after.slice(0, 2).equals(before)  # every earlier event exactly as it was
    assert after.column("confidence").to_pylist()[:2] == pytest.approx([0.9, 0.4])
    assert after.column("confidence")[2].as_py() is None and after.column("annotator")[2].as_py() == "carol"
    meta = after.schema.metadata
    assert meta[b"team.notes"] == b"kept by every version"
    assert json.loads(meta[b"fercurate.annotations"]) == {"schema_version": 2}  # still the newer file it was


def test_a_newer_file_that_cannot_be_kept_whole_is_refused_before_writing(workspace: Path) -> None:
    _, path, ids = _disagreement(workspace)
    _as_newer_version(path, nullable=False)  # the newer version requires a confidence on every event
    before = path.read_bytes()
    res = CliRunner().invoke(app, ["annotate", "adjudicate", "toy", "--decide", f"{ids[1]}=mask", "--by", "carol"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip() == (
        f"error: {path}: cannot add events without losing data: the file (schema version 2) has columns this "
        "fercurate (version 1) does not know and may not leave empty (confidence); nothing was written: "
        "upgrade fercurate to add events to it")
    assert path.read_bytes() == before
    # a known column with a type this version does not have: refused as well, naming the column
    table = pq.read_table(path)
    table = table.set_column(table.schema.get_field_index("types"), "types",
                             pa.array([[{"type": "mask", "p": 0.9}]] * 2))
    pq.write_table(table, path)
    with pytest.raises(InputError, match=r"column 'types' is list<.*struct.*, not list<item: string> \(the file is "
                                         r"schema version 2, this fercurate reads version 1: upgrade fercurate\)"):
        append_events(path, [make_event(ids[2], ["mask"], annotator="dan", source="human", labelled_at=T0)])


def test_every_writer_keeps_it(workspace: Path) -> None:
    """append_events is the one writer (pull, App saves, adjudication, synth, official lists)."""
    _, path, ids = _disagreement(workspace)
    _as_newer_version(path)
    for i, who in enumerate(["erin", "frank"]):
        append_events(path, [make_event(ids[2], ["bottom"], annotator=who, source="human", labelled_at=T0)])
        assert pq.read_table(path).column("confidence").to_pylist() == pytest.approx([0.9, 0.4] + [None] * (i + 1))
