"""A real full disk (a small tmpfs) during a checkpoint write, at App exit and during import-ran-lists
(issue 29, cases 8, 10 and 11). Skipped where a tmpfs cannot be mounted (not root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from fixtures_faults import REPO, fill, tmpfs
from fixtures_ran import make_toy_manifest
from test_ran_lists import small  # noqa: F401 - the 12-image FERPlus manifest and a lists folder
from typer.testing import CliRunner

from fercurate.annotations import append_events, make_event, read_events
from fercurate.cli import app
from fercurate.ran.checkpoint import load_checkpoint
from fercurate.workspace import Workspace, layer_path

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="tmpfs mounts as on Linux")


def test_a_full_disk_during_a_checkpoint_write_is_one_line(workspace: Path, tmp_path: Path) -> None:
    """Before: 'RuntimeError: [enforce fail at inline_container.cc:672] . unexpected pos ...' (a traceback)."""
    torch.set_num_threads(1)
    make_toy_manifest(workspace, size=24, per_class={"train": 4, "val": 2, "test": 3})
    with tmpfs(tmp_path / "small", "140m") as disk:  # one 90 MB checkpoint fits, its atomic rewrite does not
        out = disk / "run"
        res = CliRunner().invoke(app, ["train", "--manifest", "toy", "--out", str(out), "--epochs", "2", "--batch-size",
                                       "8", "--input-size", "24", "--arch", "baseline", "-j", "1", "-w", str(workspace)])
        assert res.exit_code == 1 and "Traceback" not in res.output, res.output
        lines = res.output.strip().splitlines()
        assert lines[-1] == f"error: {out}/baseline.pt: cannot write (no space left on the device)"
        assert "epoch 1:" in res.output and "epoch 2:" in res.output
        assert load_checkpoint(out / "baseline.pt")["epoch"] == 1  # the previous checkpoint, whole
        assert sorted(p.name for p in out.iterdir()) == [".baseline.pt.lock", "baseline.pt", "excluded.parquet",
                                                         "metrics.jsonl"]  # no temp file left


_APP_SERVER = """
import sys
from datetime import datetime, timezone
from fercurate.annotate import live
from fercurate.annotations import make_event
writer = live.writer_for(sys.argv[1], interval=3600)  # as the plugin in the App server does
for i in range(3):
    writer.add(make_event(f"toy/{i}.png", ["mask"], annotator="alice", source="human",
                          labelled_at=datetime(2026, 3, 1, 9, i, tzinfo=timezone.utc), origin="app:toy"))
# the server exits (Ctrl-C in 'annotate launch', its launcher gone) before the next flush
"""


def _app_server_exits(path: Path, state: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_STATE_HOME": str(state)}
    return subprocess.run([sys.executable, "-c", _APP_SERVER, str(path)], env=env, capture_output=True, text=True,
                          timeout=120)


def test_labels_waiting_when_the_app_exits_on_a_full_disk_are_kept(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Before: the log said 'retrying', the server exited 0 and the labels never reached the file."""
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))  # where the launcher looks, as the server did
    with tmpfs(tmp_path / "ann", "2m") as disk:
        path = disk / "toy.occlusion.parquet"
        append_events(path, [make_event("toy/9.png", ["none"], annotator="bob", source="human")])
        fill(disk)
        done = _app_server_exits(path, state)
        assert done.returncode == 0, done.stderr
        spill = state / "fercurate" / "spill" / f"toy.occlusion.parquet.spill-{_pid(done.stderr)}.jsonl"
        assert (f"{path}: 3 labels could not be written ({path}: cannot write (no space left on the device)); kept in "
                f"{spill}, merged into the file at the next 'fercurate annotate launch'") in done.stderr
        assert read_events(path).num_rows == 1 and spill.exists()
        (disk / "filler.bin").unlink()  # room again: the next launch (here its writer) merges the spill file
        from fercurate.annotate import live

        merged = live.merge_spilled(path)
        assert merged == [(spill, 3)] and not spill.exists()
        assert sorted(read_events(path).column("sample_id").to_pylist()) == ["toy/0.png", "toy/1.png", "toy/2.png",
                                                                              "toy/9.png"]


def test_labels_that_cannot_be_spilled_either_are_in_the_log_and_the_exit_code(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ann", "2m") as disk:
        path = disk / "toy.occlusion.parquet"
        append_events(path, [make_event("toy/9.png", ["none"], annotator="bob", source="human")])
        fill(disk)
        done = _app_server_exits(path, disk / "state")  # the spill folder is on the full disk too
    assert done.returncode == 75
    events = [json.loads(x) for x in done.stderr.splitlines() if x.startswith("{")]
    assert sorted(e["sample_id"] for e in events) == ["toy/0.png", "toy/1.png", "toy/2.png"]
    assert "3 labels could not be written" in done.stderr and "LOST, except for the JSON lines above" in done.stderr


def _pid(stderr: str) -> str:
    return stderr.split(".spill-", 1)[1].split(".jsonl", 1)[0]


def test_import_ran_lists_on_a_full_disk_keeps_the_layer_and_the_events_together(small, workspace: Path) -> None:  # noqa: F811
    """Before: the official layer was written with the new list, its label events were not."""
    manifest, lists = small
    occ = lists / "FERplus_dir" / "jianfei_occlusion_list.txt"
    occ.write_text("4_fer0000009.png 8 0\n")
    ws = Workspace(workspace)
    with tmpfs(ws.annotations, "2m") as disk:
        assert CliRunner().invoke(app, ["import-ran-lists", str(lists), "--manifest", str(manifest)]).exit_code == 0
        layer = layer_path(manifest, "official")
        before = layer.read_bytes(), ws.annotation_path("ferplus").read_bytes()
        occ.write_text("4_fer0000009.png 8 0\n5_fer0000005.png 8 1\n")  # one more occluded face
        fill(disk)
        res = CliRunner().invoke(app, ["import-ran-lists", str(lists), "--manifest", str(manifest)])
        assert res.exit_code == 1 and "Traceback" not in res.output
        assert res.output.strip().splitlines()[-1] == (
            f"error: {ws.annotation_path('ferplus')}: cannot write (no space left on the device)")
        assert (layer.read_bytes(), ws.annotation_path("ferplus").read_bytes()) == before
        occluded = {r["sample_id"] for r in pq.read_table(layer).to_pylist() if r["list"] == "occlusion"}
        assert occluded == set(read_events(ws.annotation_path("ferplus")).column("sample_id").to_pylist())
        (disk / "filler.bin").unlink()
        assert CliRunner().invoke(app, ["import-ran-lists", str(lists), "--manifest", str(manifest)]).exit_code == 0
        occluded = {r["sample_id"] for r in pq.read_table(layer).to_pylist() if r["list"] == "occlusion"}
        assert len(occluded) == 2
        assert occluded == set(read_events(ws.annotation_path("ferplus")).column("sample_id").to_pylist())
