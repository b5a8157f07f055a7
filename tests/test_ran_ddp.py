"""Multi-process training: ``torchrun`` with 2 CPU processes (gloo backend) and DistributedDataParallel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from fixtures_ran import make_toy_manifest

from fercurate.ran.checkpoint import load_checkpoint


def test_torchrun_two_cpu_processes(workspace):
    make_toy_manifest(workspace, size=24, per_class={"train": 4, "val": 1})
    fercurate = shutil.which("fercurate") or str(Path(sys.executable).parent / "fercurate")
    out = workspace / "runs" / "ddp"
    env = dict(os.environ, FERCURATE_WORKSPACE=str(workspace), FERCURATE_PROGRESS="0", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", fercurate, "train",
           "--manifest", "toy", "--out", str(out), "--epochs", "2", "--batch-size", "8", "--input-size", "24",
           "--device", "cpu", "-j", "1", "--val-split", "val"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 processes on cpu" in proc.stdout
    state = load_checkpoint(out / "ran.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    # each process has its own augmentation stream
    assert not torch.equal(state["rng"][0]["generator"], state["rng"][1]["generator"])
    epochs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"epoch"' in x]
    epochs = [e for e in epochs if e["event"] == "epoch"]
    assert [e["faces_seen"] for e in epochs] == [16, 16]  # the 2 shards cover the 16 training faces
    assert all(e["world_size"] == 2 and 0 <= e["val_acc"] <= 1 for e in epochs)
    # 16 faces, global batch 8 = 4 per process: 2 optimiser steps per epoch
    assert state["scheduler"]["step_count"] == 4
