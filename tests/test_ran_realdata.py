"""RAN on real FERPlus faces: ingest, official subsets, a short training and an evaluation with no --manifest."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.manifest import read_manifest
from fercurate.ran.checkpoint import load_checkpoint
from fercurate.ran.train import TrainConfig, train
from fercurate.subsets import find_subset, subset_ids, write_subset
from fercurate.workspace import Workspace

pytestmark = pytest.mark.realdata


def test_train_and_eval_on_real_ferplus(ferplus_root, ran_lists_root, workspace):
    from fercurate.ingest.ferplus import ingest
    from fercurate.subsets.official import import_ran_lists

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = workspace / "manifests" / "ferplus.parquet"
        ingest(ferplus_root, path)
        ws = Workspace(workspace)
        import_ran_lists(ran_lists_root, path, workspace=ws)
        m = read_manifest(path)
        for name in ("pose45", "occlusion"):
            ids = sorted(subset_ids(find_subset(f"official-{name}", manifest="ferplus", workspace=ws)))
            write_subset(m, f"{name}-sample", ids[:: max(1, len(ids) // 20)][:20], rule=f"every k-th of official-{name}",
                         workspace=ws)
        res = train(TrainConfig(manifest="ferplus", out=str(workspace / "runs" / "ran"), epochs=1, limit=64,
                                batch_size=16, input_size=48, targets="votes", decode_workers=1, save_every_min=0),
                    echo=lambda s: None)
        state = load_checkpoint(res.checkpoint)
        assert state["train_samples"] == 64 and state["manifest"]["name"] == "ferplus"
        assert state["config"]["input_size"] == 48
        r = CliRunner().invoke(app, ["eval", "--model", str(res.checkpoint), "--subset", "pose45-sample",
                                     "--subset", "occlusion-sample", "--bootstrap", "100", "-j", "1"])
        assert r.exit_code == 0, r.output
        assert "80.40" not in r.output  # a sample of a list is not the list the paper scored
        metrics = json.loads((res.checkpoint.parent / "eval" / "ran-pose45-sample+occlusion-sample" / "metrics.json").read_text())
        groups = {g["group"]: g for g in metrics["groups"]}
        assert groups["pose45-sample"]["n"] == 20 and groups["occlusion-sample"]["n"] == 20
        # 'pose45' is the official list: all its faces scored, beside the published rows with their tables
        r = CliRunner().invoke(app, ["eval", "--model", str(res.checkpoint), "--subset", "pose45", "--bootstrap", "0",
                                     "-j", "1"])
        assert r.exit_code == 0, r.output
        assert "official-pose45: official RAN list: pose45" in r.output
        assert "80.40" in r.output and "RAN Table II" in r.output and "SCAN-CCI Table 3" in r.output
        metrics = json.loads((res.checkpoint.parent / "eval" / "ran-pose45" / "metrics.json").read_text())
        assert metrics["groups"][0]["n"] + metrics["groups"][0]["excluded"] == len(
            subset_ids(find_subset("official-pose45", manifest="ferplus", workspace=ws)))
        assert metrics["dataset"] == "ferplus"
    finally:
        torch.set_num_threads(threads)
