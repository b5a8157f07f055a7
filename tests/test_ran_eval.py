"""Evaluation: the report, subsets without --manifest, bad inputs, probabilities, TorchScript models."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from fixtures_ran import make_toy_manifest
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.errors import InputError
from fercurate.manifest import read_manifest
from fercurate.ran.checkpoint import export_torchscript, load_checkpoint, save_checkpoint
from fercurate.ran.evaluate import accuracy_summary, bootstrap_ci, evaluate, predict_proba
from fercurate.ran.paper import condition, paper_figures
from fercurate.ran.train import TrainConfig, train
from fercurate.subsets import write_subset
from fercurate.workspace import Workspace


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workspace with a toy manifest (2 test images missing on disk), two subsets and a 1-epoch RAN."""
    ws = tmp_path_factory.mktemp("evalws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERCURATE_WORKSPACE", str(ws))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        path = make_toy_manifest(ws, size=24, per_class={"train": 4, "val": 1, "test": 3}, missing=2)
        m = read_manifest(path)
        test_ids = sorted(s for s, sp in zip(m.table.column("sample_id").to_pylist(),
                                             m.table.column("split").cast("string").to_pylist()) if sp == "test")
        write_subset(m, "pose45", test_ids[:6], rule="toy", workspace=Workspace(ws))
        write_subset(m, "occlusion", [i for i in test_ids if "missing" in i] + test_ids[6:9], rule="toy",
                     workspace=Workspace(ws))
        cfg = TrainConfig(manifest=str(path), out=str(ws / "runs" / "ran"), epochs=1, batch_size=8, input_size=24,
                          face_size=24, decode_workers=1, save_every_min=0)
        ckpt = train(cfg, echo=lambda s: None).checkpoint
        torch.set_num_threads(threads)
        yield ws, path, ckpt


@pytest.fixture
def in_ws(trained, monkeypatch):
    monkeypatch.setenv("FERCURATE_WORKSPACE", str(trained[0]))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield trained
    torch.set_num_threads(before)


def test_eval_subset_without_manifest_writes_the_report(in_ws):
    ws, _, ckpt = in_ws
    r = CliRunner().invoke(app, ["eval", "--model", str(ckpt), "--subset", "pose45", "--draw-attention", "4",
                                 "--report", str(ws / "rep1"), "--bootstrap", "200"])
    assert r.exit_code == 0, r.output
    assert "paper RAN" in r.output and "pose45" in r.output and "80.40" in r.output  # Table II beside ours
    assert "per-class accuracy" in r.output and "contempt" in r.output
    rep = ws / "rep1"
    metrics = json.loads((rep / "metrics.json").read_text())
    (group,) = metrics["groups"]
    assert group["group"] == "pose45" and group["n"] == 6 and group["paper_baseline"] == 75.50
    lo, hi = group["ci95"]["accuracy"]
    assert 0 <= lo <= group["accuracy"] <= hi <= 1
    assert np.asarray(group["confusion"]).sum() == 6
    assert (rep / "confusion_pose45.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((rep / "confusion_pose45.json").read_text())["labels"][0] == "neutral"
    preds = pq.read_table(rep / "predictions.parquet").to_pandas()
    assert len(preds) == 6 and {"mu_0", "mu_5", "nu_0", "nu_5"} <= set(preds.columns)
    assert ((preds["mu_0"] > 0) & (preds["mu_0"] < 1)).all()
    assert (preds["label"] == preds["sample_id"].str.extract(r"/(\d)_")[0].astype(int)).all()
    assert (preds["pred"] == preds["label"]).mean() == pytest.approx(group["accuracy"])
    assert (rep / "attention.png").stat().st_size > 1000


def test_eval_split_and_subsets_one_table_with_missing_images(in_ws):
    ws, path, ckpt = in_ws
    res = evaluate(ckpt, manifest="toy", splits=["test"], subsets=["pose45", "occlusion"], report_dir=ws / "rep2",
                   n_boot=100, echo=lambda s: None)
    groups = {g["group"]: g for g in res.groups}
    assert list(groups) == ["test", "pose45", "occlusion"]
    assert groups["test"]["n"] == 12 and groups["test"]["excluded"] == 2
    assert groups["occlusion"]["n"] == 3 and groups["occlusion"]["excluded"] == 2
    assert groups["pose45"]["excluded"] == 0
    excluded = pq.read_table(ws / "rep2" / "excluded.parquet").to_pylist()
    assert len(excluded) == 2 and all("missing" in e["sample_id"] and "image file missing" in e["reason"] for e in excluded)
    assert "test" in res.table and "occlusion" in res.table
    with pytest.raises(InputError, match="could not be read"):
        evaluate(ckpt, manifest="toy", splits=["test"], strict=True, echo=lambda s: None)


def test_eval_rejects_wrong_label_map_and_foreign_subset(in_ws, tmp_path):
    ws, path, ckpt = in_ws
    state = load_checkpoint(ckpt)
    state["labels"] = ["anger", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt"]
    bad = save_checkpoint({k: v for k, v in state.items() if k not in ("format", "format_version")}, tmp_path / "bad.pt")
    with pytest.raises(InputError, match="label map"):
        evaluate(bad, manifest="toy", splits=["test"], echo=lambda s: None)
    other = make_toy_manifest(ws, name="other", size=24, per_class={"test": 1})
    m2 = read_manifest(other)
    write_subset(m2, "pose30", m2.table.column("sample_id").to_pylist()[:2], rule="toy", workspace=Workspace(ws))
    with pytest.raises(InputError, match="not a subset of manifest 'toy'"):
        evaluate(ckpt, manifest="toy", subsets=["pose30"], echo=lambda s: None)
    r = CliRunner().invoke(app, ["eval", "--model", str(ckpt), "--manifest", "toy", "--subset", "nosuch"])
    assert r.exit_code == 1 and "error:" in r.output and "nosuch" in r.output


def test_predict_proba_and_save_probs_agree(in_ws):
    ws, path, ckpt = in_ws
    df = predict_proba(ckpt, path, split="test")
    assert list(df.columns) == ["sample_id"] + [f"prob_{j}" for j in range(8)]
    assert len(df) == 12 and len(df.attrs["excluded"]) == 2
    assert np.allclose(df.filter(like="prob_").sum(1), 1.0, atol=1e-5)
    out = ws / "probs.parquet"
    r = CliRunner().invoke(app, ["eval", "--model", str(ckpt), "--manifest", "toy", "--split", "test",
                                 "--save-probs", str(out), "--report", str(ws / "rep3"), "--bootstrap", "0"])
    assert r.exit_code == 0, r.output
    saved = pd.read_parquet(out)
    merged = df.merge(saved, on="sample_id", suffixes=("", "_cli"))
    assert len(merged) == 12
    assert np.allclose(merged["prob_3"], merged["prob_3_cli"], atol=1e-6)


def test_torchscript_model_scores_like_the_checkpoint(in_ws):
    ws, path, ckpt = in_ws
    ts = export_torchscript(ckpt, ws / "ran_ts.pt")
    a = predict_proba(ckpt, path, split="test")
    b = predict_proba(ts, path, split="test")
    assert np.allclose(a.filter(like="prob_").to_numpy(), b.filter(like="prob_").to_numpy(), atol=1e-4)
    with pytest.raises(InputError, match="label map"):
        evaluate(ts, manifest="toy", splits=["test"], labels=["happy", "neutral"], echo=lambda s: None)


def test_metrics_on_hand_made_predictions():
    labels = np.array([0, 0, 1, 1, 1, 2, -1])
    preds = np.array([0, 1, 1, 1, 0, 2, 5])
    s = accuracy_summary(labels, preds, 3)
    assert s["n"] == 6 and s["accuracy"] == pytest.approx(4 / 6)
    assert s["mean_class_accuracy"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert s["confusion"] == [[1, 1, 0], [1, 2, 0], [0, 0, 1]]
    assert s["per_class"][1]["precision"] == pytest.approx(2 / 3)
    correct = np.array([1.0] * 80 + [0.0] * 20)
    ci = bootstrap_ci(correct, np.zeros(100, dtype=int), 1, n_boot=2000, seed=0)["accuracy"]
    assert 0.70 < ci[0] < 0.8 < ci[1] <= 0.9  # binomial 95% interval of 0.8 with n=100: about 0.72-0.88


def test_paper_conditions_match_subset_names():
    assert condition("official-pose45") == "pose45"
    assert condition("pose30-clean") == "pose30"
    assert condition("official-occlusion") == "occlusion"
    assert condition("occlusion-upper") is None
    assert condition("official-aligned-test") is None
    assert paper_figures("ferplus", "official-occlusion")["paper_ran"] == 83.63
    assert paper_figures("ferplus", "split:test")["paper_ran"] == 89.16


def test_onnx_model_scores_like_the_checkpoint(in_ws):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from fercurate.ran.model import LogitsOnly
    from fercurate.ran.train import model_from_checkpoint

    ws, path, ckpt = in_ws
    model = LogitsOnly(model_from_checkpoint(load_checkpoint(ckpt))).eval()
    onnx_path = ws / "ran.onnx"
    torch.onnx.export(model, (torch.rand(2, 3, 24, 24),), str(onnx_path), dynamo=False, input_names=["faces"],
                      output_names=["logits"], dynamic_axes={"faces": {0: "batch"}})
    a = predict_proba(ckpt, path, split="test")
    b = predict_proba(onnx_path, path, split="test")
    assert np.allclose(a.filter(like="prob_").to_numpy(), b.filter(like="prob_").to_numpy(), atol=1e-4)
