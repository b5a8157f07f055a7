"""Output names derived from input names fit the filesystem (issue 29, case 5).

A legal 229- or 250-byte file name once aborted a whole synth run (``OSError: [Errno 36] File name
too long`` for its ``...__mask-surgical-black.jpg.<pid>.tmp``), and every rerun died at the same file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_faults_images import _manifest, phone  # noqa: F401 - the phone photos fixture
from test_faults_storage import _dead_pid

from fercurate import atomic
from fercurate.manifest import read_manifest
from fercurate.workspace import layer_path


def test_a_temp_file_of_a_long_legal_name_fits(tmp_path: Path) -> None:
    target = tmp_path / ("n" * 240 + ".parquet")  # 248 bytes: legal, its temp name was not
    atomic.write_bytes(target, b"x")
    assert target.read_bytes() == b"x" and [p.name for p in tmp_path.iterdir()] == [target.name]
    # a temp file a killed writer left under the shortened prefix is still swept
    stale = tmp_path / f"{atomic.temp_prefix(target)}{_dead_pid()}.abcdefgh.parquet.tmp"
    stale.write_bytes(b"half")
    assert len(os.fsencode(stale.name)) <= 255
    atomic.write_bytes(target, b"y")
    assert not stale.exists()


def test_fitting_name_is_stable_and_keeps_the_suffix() -> None:
    long = "é" * 120 + "__mask-surgical-black.jpg"  # 265 bytes of UTF-8
    short = atomic.fitting_name(long, 255)
    assert len(os.fsencode(short)) <= 255 and short.endswith(".jpg") and short == atomic.fitting_name(long, 255)
    assert short != atomic.fitting_name("é" * 121 + "__mask-surgical-black.jpg", 255)
    assert short.encode("utf-8").decode("utf-8") == short  # not cut inside a character
    assert atomic.fitting_name("short.jpg", 255) == "short.jpg"


@pytest.mark.parametrize("length", [229, 250])
def test_synth_run_with_a_long_parent_name_finishes(phone: Path, workspace: Path, length: int) -> None:  # noqa: F811
    from fercurate.synth.runner import SynthConfig, run
    from fercurate.workspace import Workspace

    root = workspace / "src"
    root.mkdir()
    long = "p" * (length - 4) + ".jpg"
    shutil.copy(phone / "upright.jpg", root / long)
    shutil.copy(phone / "upright.jpg", root / "short.jpg")
    path = _manifest(workspace, root, [long, "short.jpg"], name="longnames")
    config = SynthConfig(kind="mask", styles=("surgical",), colours=("black",), seed=1)
    result = run(path, config, out_dir=workspace / "masked", workers=1, workspace=Workspace(workspace))
    assert result.failed == 0 and result.rows == 2
    layer = pq.read_table(layer_path(result.manifest_path, "synth")).to_pylist()
    by_parent = {r["derived_from"].split("/", 1)[1]: r for r in layer}
    derived = long[:-4] + "__mask-surgical-black.jpg"
    assert by_parent["short.jpg"]["shortened_from"] is None
    if len(os.fsencode(derived)) > 255:
        assert by_parent[long]["shortened_from"] == derived
        assert by_parent[long]["image_path"] == atomic.fitting_name(derived, 255)
        assert result.shortened == 1 and "shortened" in result.summary()
        assert read_manifest(result.manifest_path).meta.source["names_shortened"] == 1
    else:
        assert by_parent[long]["image_path"] == derived and by_parent[long]["shortened_from"] is None
    for r in layer:
        assert (workspace / "masked" / r["image_path"]).is_file()
    # a rerun finds every image under the same (shortened) name
    again = run(path, config, out_dir=workspace / "masked", workers=1, workspace=Workspace(workspace), resume=True)
    assert again.reused == 2 and again.failed == 0
