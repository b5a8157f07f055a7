"""Runs that overlap, are interrupted or were killed (issue 29, cases 8, 9 and 11's Ctrl-C).

Real ``fercurate`` processes on real FERPlus faces: two ``pose`` runs of one manifest (the second
refuses while the first runs, the first finishes intact), Ctrl-C in a pose run (one line saying
which chunks are kept, then ``--resume`` uses them), a training run's torn ``metrics.jsonl`` line
and a killed checkpoint write's temp file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest
import torch
from fixtures_faults import fercurate, wait_for
from fixtures_ran import make_toy_manifest
from test_faults_storage import _dead_pid
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.layers import read_layer
from fercurate.manifest import build_table, write_manifest
from fercurate.workspace import layer_path

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process groups and signals as on Linux")
N_FACES, CHUNK = 640, 32


@pytest.fixture
def fer_ws(ferplus_root: Path, tmp_path: Path) -> Path:
    """A workspace whose manifest lists 640 real FERPlus test faces (read in place)."""
    ws = tmp_path / "ws"
    names = sorted(p.name for p in (ferplus_root / "FER2013Test").glob("*.png"))[:N_FACES]
    n = len(names)
    table = build_table({"sample_id": [f"fer/{x}" for x in names], "dataset": ["ferplus"] * n, "split": ["test"] * n,
                         "image_path": names, "label_id": [-1] * n,
                         "bbox": [{"x": 0.0, "y": 0.0, "w": 48.0, "h": 48.0}] * n})
    write_manifest(table, ws / "manifests" / "fer.parquet", dataset="ferplus", root=ferplus_root / "FER2013Test")
    return ws


def _pose(ws: Path, *extra: str):  # noqa: ANN202 - Popen
    return fercurate("pose", str(ws / "manifests" / "fer.parquet"), "-j", "1", "--chunk-size", str(CHUNK),
                     "-w", str(ws), *extra, cwd=ws)


def test_a_second_pose_run_refuses_while_the_first_runs(fer_ws: Path) -> None:
    """Before: one of two overlapping 'pose --resume' runs died with FileNotFoundError (pose.parts/part-...)."""
    layer = layer_path(fer_ws / "manifests" / "fer.parquet", "pose")
    parts = layer.with_name("fer.pose.parts")
    first = _pose(fer_ws, "--resume")
    try:
        wait_for(lambda: (parts / "parts.json").exists(), first)
        second = CliRunner().invoke(app, ["pose", str(fer_ws / "manifests" / "fer.parquet"), "--resume",
                                          "-w", str(fer_ws)])
        assert first.poll() is None, "the first run ended before the second started: make it longer"
        lines = [ln for ln in second.output.splitlines() if ln.strip()]
        assert second.exit_code == 1 and len(lines) == 1, second.output
        assert lines[0] == (f"error: {layer}: another fercurate pose run is writing it now (it holds "
                            f"{layer.parent}/.fer.pose.parquet.lock); wait for that one to finish, then run again")
        out, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    table, _ = read_layer(layer, "pose")
    assert table.num_rows == N_FACES and not parts.exists()
    assert f"{N_FACES:,} computed" in out


def test_ctrl_c_says_which_chunks_are_kept_and_resume_uses_them(fer_ws: Path) -> None:
    """Before: Ctrl-C in 'fercurate pose' exited 130 with no message at all."""
    parts = layer_path(fer_ws / "manifests" / "fer.parquet", "pose").with_name("fer.pose.parts")
    run = _pose(fer_ws)
    try:
        wait_for(lambda: len(list(parts.glob("part-*.parquet"))) >= 2, run)
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole process group
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    got = re.fullmatch(rf"interrupted: (\d+) of {N_FACES // CHUNK} chunks are done and kept in {re.escape(str(parts))}; "
                       r"run the same command with --resume to compute only the rest", lines[0])
    assert got, lines[0]
    kept = len(list(parts.glob("part-*.parquet")))
    assert int(got.group(1)) == kept >= 2
    res = CliRunner().invoke(app, ["pose", str(fer_ws / "manifests" / "fer.parquet"), "--resume", "-j", "1",
                                   "--chunk-size", str(CHUNK), "-w", str(fer_ws)])
    assert res.exit_code == 0, res.output
    assert f"{kept * CHUNK:,} reused from an interrupted run" in res.output


# --- training: a torn metrics.jsonl line, a killed checkpoint write, a second run of one folder -----


def _train_args(ws: Path, out: Path, epochs: int) -> list[str]:
    return ["train", "--manifest", "toy", "--out", str(out), "--epochs", str(epochs), "--batch-size", "8",
            "--input-size", "24", "--arch", "baseline", "-j", "1", "--log-every", "1", "-w", str(ws)]


@pytest.fixture
def toy(workspace: Path) -> Path:
    torch.set_num_threads(1)
    make_toy_manifest(workspace, size=24, per_class={"train": 4, "val": 2, "test": 3})
    return workspace


def test_resume_after_a_torn_last_metrics_line(toy: Path) -> None:
    """Before: 'train --resume' died with JSONDecodeError on the half-written last line of a killed run."""
    out = toy / "runs" / "torn"
    assert CliRunner().invoke(app, _train_args(toy, out, 1)).exit_code == 0
    log = out / "metrics.jsonl"
    whole = log.read_text()
    log.write_text(whole + '{"event": "train", "step": 3, "loss": 1.2')  # the kill cut this write
    res = CliRunner().invoke(app, ["train", "--resume", str(out), "--epochs", "2"])
    assert res.exit_code == 0, res.output
    n = len(whole.splitlines()) + 1
    assert f"note: {log}: line {n} was cut short (a write the run did not finish) and is left out" in res.output
    records = [json.loads(x) for x in log.read_text().splitlines()]  # every line is whole again
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2]
    # a damaged line that is not the last is one error naming the file and line
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    res = CliRunner().invoke(app, ["train", "--resume", str(out), "--epochs", "3"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip().splitlines()[-1] == (f"error: {log}: line 2 is not a JSON record ('garbage'); "
                                                   "the log is damaged")


def test_a_killed_checkpoint_writes_temp_file_is_swept(toy: Path) -> None:
    """Before: the 90 MB temp file of a checkpoint write killed midway stayed for ever."""
    out = toy / "runs" / "swept"
    assert CliRunner().invoke(app, _train_args(toy, out, 1)).exit_code == 0
    stale = out / f".baseline.pt.{_dead_pid()}.k1ll3d00.pt.tmp"
    stale.write_bytes(b"\0" * 1_000_000)
    live = out / f".baseline.pt.{os.getppid()}.st1llrun.pt.tmp"  # a live writer's: kept
    live.write_bytes(b"\0")
    res = CliRunner().invoke(app, ["train", "--resume", str(out), "--epochs", "2"])
    assert res.exit_code == 0, res.output
    assert not stale.exists() and live.exists()


def test_a_second_training_run_of_one_folder_refuses(toy: Path) -> None:
    out = toy / "runs" / "busy"
    first = fercurate(*_train_args(toy, out, 400), cwd=toy, env={"OMP_NUM_THREADS": "1"})
    try:
        wait_for(lambda: (out / "metrics.jsonl").exists(), first, timeout=300)
        second = CliRunner().invoke(app, _train_args(toy, out, 1))
        assert first.poll() is None
        assert second.exit_code == 1, second.output
        assert second.output.strip() == (
            f"error: {out}/baseline.pt: another fercurate training run is writing it now (it holds "
            f"{out}/.baseline.pt.lock); wait for that one to finish, then run again")
        os.killpg(first.pid, signal.SIGINT)
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130
    assert err.strip().splitlines()[-1].startswith("interrupted: ")
