"""Fault injection on the writing side (issue 18, case 8, and case 4 outside ingest).

--strict failures never break the manifest/rejects pair, killed runs' temp files are swept, a
full disk is one line naming the file (no traceback, no orphan PNGs), files respect the umask,
and every image decoder (pose, synth, training, quality) refuses a decompression bomb.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_ferplus import write_raw_csv
from fixtures_layouts import make_rafdb
from test_faults_ingest import bomb_png
from typer.testing import CliRunner

from fercurate import atomic, images
from fercurate.annotations import append_events, make_event
from fercurate.cli import app
from fercurate.errors import RejectsError
from fercurate.ingest import ferplus, rafdb
from fercurate.ingest.ferplus import csv_layout
from fercurate.manifest import read_manifest, rejects_path

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="file modes and pids as on Linux")


@pytest.fixture
def raf(tmp_path: Path) -> dict:
    return make_rafdb(tmp_path / "raf", n_train=3, n_test=2, original=False, annotations=False)


# --- --strict keeps the manifest and its rejects a matching pair ---------------------------------


def test_strict_failure_leaves_the_previous_pair_untouched(raf: dict, tmp_path: Path) -> None:
    out = tmp_path / "m" / "rafdb.parquet"
    rafdb.ingest(raf["root"], out)
    before = out.read_bytes(), rejects_path(out).read_bytes()
    assert len(pd.read_parquet(rejects_path(out))) == 0
    (raf["root"] / raf["rows"][0]["aligned_path"]).unlink()
    with pytest.raises(RejectsError, match="rejects.failed.parquet"):
        rafdb.ingest(raf["root"], out, strict=True)
    assert (out.read_bytes(), rejects_path(out).read_bytes()) == before
    failed = pd.read_parquet(out.with_name("rafdb.rejects.failed.parquet"))
    assert failed.iloc[0]["reason"].startswith("image file missing")
    # a later successful run writes the pair and clears the failed rejects
    rafdb.ingest(raf["root"], out)
    assert len(read_manifest(out)) == 4 and len(pd.read_parquet(rejects_path(out))) == 1
    assert not out.with_name("rafdb.rejects.failed.parquet").exists()


# --- stale temp files --------------------------------------------------------------------------


def _dead_pid() -> int:
    pid = 2**22 - 7
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_stale_temp_files_of_killed_runs_are_swept(raf: dict, tmp_path: Path) -> None:
    out = tmp_path / "m" / "rafdb.parquet"
    out.parent.mkdir()
    dead = out.parent / f".rafdb.parquet.{_dead_pid()}.k3x_9a.parquet.tmp"
    legacy = out.parent / ".rafdb.parquet.q1w2e3r4.parquet.tmp"  # before pids were in the name
    live = out.parent / f".rafdb.parquet.{os.getppid()}.zzzz.parquet.tmp"  # a live writer's
    fresh_legacy = out.parent / ".rafdb.parquet.a1b2c3d4.parquet.tmp"
    other = out.parent / ".notes.txt.tmp"  # not ours
    for p in (dead, legacy, live, fresh_legacy, other):
        p.write_bytes(b"half a parquet file")
    old = time.time() - 2 * 3600
    os.utime(legacy, (old, old))
    rafdb.ingest(raf["root"], out)
    assert not dead.exists() and not legacy.exists()
    assert live.exists() and fresh_legacy.exists() and other.exists()


# --- full disk, permissions --------------------------------------------------------------------


def _enospc(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - stands in for any write call
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_is_one_line_naming_the_file(raf: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "m" / "rafdb.parquet"
    monkeypatch.setattr("fercurate.manifest.pq.write_table", _enospc)
    res = CliRunner().invoke(app, ["ingest", "rafdb", str(raf["root"]), "-o", str(out)])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    assert re.fullmatch(rf"error: {re.escape(str(out.parent))}/rafdb(\.rejects)?\.parquet: cannot write "
                        r"\(no space left on the device\)", lines[0]), lines[0]
    assert not out.exists() and [p.name for p in out.parent.iterdir()] == []  # no temp files either


def test_permission_denied_is_one_line(raf: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "m" / "rafdb.parquet"

    def denied(src, dst):  # noqa: ANN001, ANN202 - os.replace's signature
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dst))

    monkeypatch.setattr("fercurate.atomic.os.replace", denied)
    res = CliRunner().invoke(app, ["ingest", "rafdb", str(raf["root"]), "-o", str(out)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip().endswith("cannot write (permission denied)") and str(out.parent) in res.output
    assert [p.name for p in out.parent.iterdir()] == []


def test_full_disk_while_writing_ferplus_pngs_leaves_no_orphans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = tmp_path / "raw"
    write_raw_csv(raw)
    images_out = tmp_path / "img"
    real = csv_layout._write_file_atomic
    calls = {"n": 0}

    def fills_up(path: str, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] > 3:
            _enospc()
        real(path, data)

    monkeypatch.setattr(csv_layout, "_write_file_atomic", fills_up)
    out = tmp_path / "ferplus.parquet"
    res = CliRunner().invoke(app, ["ingest", "ferplus", str(raw), "-o", str(out), "--layout", "csv",
                                   "--images-out", str(images_out), "-j", "1"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "cannot write (no space left on the device)" in res.output and str(images_out) in res.output
    assert calls["n"] > 3
    assert sorted(str(p.relative_to(images_out)) for p in images_out.rglob("*") if p.is_file()) == []
    assert not out.exists()


def test_strict_failure_in_the_csv_layout_removes_the_pngs_it_wrote(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    fer, _ = write_raw_csv(raw)
    lines = fer.read_text().splitlines()
    lines[2] = lines[2].replace(",Training", ",Nonsense").replace(",PublicTest", ",Nonsense").replace(",PrivateTest", ",Nonsense")
    fer.write_text("\n".join(lines) + "\n")
    images_out = tmp_path / "img"
    kept = images_out / "FER2013Train" / "already_there.png"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"from an earlier run")
    with pytest.raises(RejectsError):
        ferplus.ingest(raw, tmp_path / "f.parquet", layout="csv", images_out=images_out, workers=1, strict=True)
    assert [p for p in images_out.rglob("*") if p.is_file()] == [kept]


# --- permissions follow the umask ----------------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_respect_the_umask(raf: dict, tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        out = tmp_path / "m" / "rafdb.parquet"
        rafdb.ingest(raf["root"], out)
        ann = tmp_path / "a" / "rafdb.occlusion.parquet"
        append_events(ann, [make_event("rafdb/x", ["mask"], annotator="ann", source="human")])
        report = tmp_path / "r" / "report.html"
        atomic.write_text(report, "<html></html>")
    finally:
        os.umask(old)
    for p in (out, rejects_path(out), ann, report):
        assert stat.S_IMODE(p.stat().st_mode) == mode, p


def test_rewriting_a_file_keeps_its_mode(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("x")
    p.chmod(0o640)
    atomic.write_text(p, "y")
    assert stat.S_IMODE(p.stat().st_mode) == 0o640 and p.read_text() == "y"


# --- the pixel limit holds wherever images are decoded -------------------------------------------


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("bomb") / "bomb.png"
    p.write_bytes(bomb_png())
    return p


def test_every_decoder_refuses_a_bomb_quickly(bomb: Path) -> None:
    from fercurate.pose.runner import _read
    from fercurate.ran.data import decode_face
    from fercurate.synth.pipeline import _valid_image, decode_parent

    t0 = time.perf_counter()
    with pytest.raises(images.ImageReadError, match="image too large: 20000x20000 is over the limit"):
        images.read_image(bomb)  # quality (verify, hashing, nonface, sheets), suggest, previews
    img, reason = _read(str(bomb))  # pose
    assert img is None and reason.startswith("image too large")
    with pytest.raises(ValueError, match="image too large"):
        decode_parent(str(bomb))  # synth
    assert not _valid_image(bomb)
    with pytest.raises(images.ImageReadError, match="image too large"):
        decode_face(str(bomb), None, 64)  # training / evaluation
    assert time.perf_counter() - t0 < 3.0


def test_pixel_limit_setting_reaches_worker_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((40, 30), np.uint8))
    assert images.read_image(small).shape[:2] == (40, 30)
    monkeypatch.delenv(images.MAX_PIXELS_ENV, raising=False)
    images.set_max_pixels(1000)
    try:
        assert os.environ[images.MAX_PIXELS_ENV] == "1000"  # inherited by spawned workers
        with pytest.raises(images.ImageReadError, match="30x40 is over the limit of 1,000 pixels"):
            images.read_image(small)
    finally:
        images.set_max_pixels(None)
    assert images.max_pixels() == images.DEFAULT_MAX_PIXELS


def test_os_errors_from_any_command_are_one_line(raf: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside fercurate's own writers (a library opening a file itself), ENOSPC is still one line."""

    def full(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "somewhere.bin"))

    monkeypatch.setattr("fercurate.ingest.rafdb._parse_list", full)
    res = CliRunner().invoke(app, ["ingest", "rafdb", str(raf["root"]), "-o", str(tmp_path / "r.parquet")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip() == f"error: {tmp_path / 'somewhere.bin'}: No space left on device"
