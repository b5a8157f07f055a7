"""Every script in examples/ runs as a user would run it and produces what it says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, workdir: Path) -> str:
    env = dict(os.environ, FERCURATE_PROGRESS="0")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--workdir", str(workdir), "--faces", "8"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_every_example_is_tested() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == {"ingest_and_inspect.py", "pose_subsets.py", "masks_and_quality.py", "train_eval_report.py"}


def test_ingest_and_inspect(tmp_path: Path) -> None:
    out = run_example("ingest_and_inspect.py", tmp_path)
    assert "ferplus: 32 rows" in out and "rafdb: 16 rows" in out
    df = pd.read_parquet(tmp_path / "manifests" / "ferplus.parquet")
    assert sorted(df.split.unique()) == ["test", "train", "val"]


def test_pose_subsets(tmp_path: Path) -> None:
    out = run_example("pose_subsets.py", tmp_path)
    pose = pd.read_parquet(tmp_path / "manifests" / "ferplus.pose.parquet")
    assert len(pose) == 32 and pose["yaw"].notna().any()
    for t in (15, 30, 45):
        members = pd.read_parquet(tmp_path / "manifests" / "subsets" / f"ferplus-pose{t}-estimated.parquet")
        flagged = pose[pose[["yaw", "pitch"]].abs().max(axis=1) > t]
        assert set(members.sample_id) == set(flagged.sample_id)
        assert f"pose{t}-estimated" in out


def test_masks_and_quality(tmp_path: Path) -> None:
    out = run_example("masks_and_quality.py", tmp_path)
    masked = pd.read_parquet(tmp_path / "manifests" / "ferplus-masked.parquet")
    assert len(masked) == 8 and masked["derived_from"].notna().all()
    assert (tmp_path / "quality" / "duplicates.parquet").exists()
    assert "leakage" in out


@pytest.mark.filterwarnings("ignore")
def test_train_eval_report(tmp_path: Path) -> None:
    out = run_example("train_eval_report.py", tmp_path)
    assert (tmp_path / "runs" / "ran-example" / "ran.pt").exists()
    assert (tmp_path / "runs" / "ran-example" / "eval" / "metrics.json").exists()
    assert (tmp_path / "report" / "index.html").exists()
    assert "test         n=8" in out
