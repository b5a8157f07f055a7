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
    assert "pose45" in r.output and "scored list" in r.output
    assert "80.40" not in r.output  # a toy subset is not the official list: no paper figure beside it
    assert "per-class accuracy" in r.output and "contempt" in r.output
    rep = ws / "rep1"
    metrics = json.loads((rep / "metrics.json").read_text())
    (group,) = metrics["groups"]
    assert group["group"] == "pose45" and group["n"] == 6 and group["condition"] is None and group["published"] == []
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
                   bootstrap=100, echo=lambda s: None)
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
    state["labels"] = ["anger", "disgust", "fear", "happy", "sad", "surprise", "neutral", "grumpy"]
    bad = save_checkpoint({k: v for k, v in state.items() if k not in ("format", "format_version")}, tmp_path / "bad.pt")
    with pytest.raises(InputError, match="unknown class name 'grumpy'"):
        evaluate(bad, manifest="toy", splits=["test"], echo=lambda s: None)
    with pytest.raises(InputError, match="differ from the checkpoint's label map"):
        evaluate(ckpt, manifest="toy", splits=["test"], labels="rafdb", echo=lambda s: None)
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
    with pytest.raises(InputError, match="must name the 8 expression classes"):
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


def test_onnx_model_scores_like_the_checkpoint(in_ws):
    pytest.importorskip("onnxruntime", reason="ONNX scoring needs onnxruntime (pip install 'fercurate[test]')")
    pytest.importorskip("onnx", reason="exporting the test model needs onnx (pip install 'fercurate[test]')")
    from fercurate.ran.model import LogitsOnly
    from fercurate.ran.train import model_from_checkpoint

    ws, path, ckpt = in_ws
    model = LogitsOnly(model_from_checkpoint(load_checkpoint(ckpt))).eval()
    onnx_path = ws / "ran.onnx"
    torch.onnx.export(model, (torch.rand(2, 3, 24, 24),), str(onnx_path), dynamo=False, input_names=["faces"],
                      output_names=["logits"], dynamic_axes={"faces": {0: "batch"}})
    a = predict_proba(ckpt, path, split="test")
    with pytest.raises(InputError, match="does not say in which order"):
        predict_proba(onnx_path, path, split="test")
    b = predict_proba(onnx_path, path, split="test", labels="canonical", channels="rgb", input_norm="unit",
                      outputs="logits")
    assert np.allclose(a.filter(like="prob_").to_numpy(), b.filter(like="prob_").to_numpy(), atol=1e-4)


# --- issue 17: trustworthy scores ------------------------------------------------------------------------


# written out here (not imported) so the tests state the published orders themselves
CANONICAL = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"]
RAFDB_ORDER = ["surprise", "fear", "disgust", "happy", "sad", "anger", "neutral"]


def _variant(ckpt, tmp_path, name, **config):
    """A copy of the checkpoint with some config fields changed (crop mode: the weights do not depend on it)."""
    state = load_checkpoint(ckpt)
    state["config"] = {**state["config"], **config}
    return save_checkpoint({k: v for k, v in state.items() if k not in ("format", "format_version")}, tmp_path / name)


def _export_permuted(ckpt, out, order):
    """A TorchScript model whose outputs are the checkpoint's logits for the classes of ``order``, in that order."""
    from fercurate.ran.model import LogitsOnly
    from fercurate.ran.train import model_from_checkpoint

    class Permuted(torch.nn.Module):
        def __init__(self, inner, idx):
            super().__init__()
            self.inner = inner
            self.register_buffer("idx", torch.as_tensor(idx))

        def forward(self, x):
            return self.inner(x).index_select(1, self.idx)

    net = model_from_checkpoint(load_checkpoint(ckpt))
    net.cpu_chunk_pixels = 1 << 62
    model = Permuted(LogitsOnly(net), [CANONICAL.index(c) for c in order]).eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.rand(2, 3, 24, 24))
    # the whole contract but the label order, which must come from --labels (or a sidecar)
    contract = {"input_size": 24, "channels": "rgb", "input_norm": "unit", "outputs": "logits"}
    torch.jit.save(traced, str(out), _extra_files={"contract.json": json.dumps(contract)})
    return out


def test_rafdb_order_with_labels_rafdb_scores_exactly_like_the_canonical_model(in_ws, tmp_path):
    ws, path, ckpt = in_ws
    canon = _export_permuted(ckpt, tmp_path / "canon7.pt", CANONICAL[:7])
    raf = _export_permuted(ckpt, tmp_path / "raf.pt", RAFDB_ORDER)
    a = evaluate(canon, manifest="toy", splits=["test"], labels="canonical7", bootstrap=50, echo=lambda s: None)
    b = evaluate(raf, manifest="toy", splits=["test"], labels="rafdb", bootstrap=50, echo=lambda s: None)
    (ga,), (gb,) = a.groups, b.groups
    for key in ("n", "correct", "accuracy", "mean_class_accuracy", "per_class", "confusion", "ci95"):
        assert ga[key] == gb[key], key
    # the same outputs read in the canonical order would score differently: the permutation matters
    wrong = evaluate(raf, manifest="toy", splits=["test"], labels="canonical7", bootstrap=0, echo=lambda s: None)
    assert wrong.groups[0]["confusion"] != ga["confusion"]
    # aliases and a names file with a BOM and CRLF line ends give the same order
    names = tmp_path / "raf.txt"
    names.write_bytes("\ufeffsurprised\r\nfearful\r\ndisgusted\r\nhappiness\r\nsadness\r\nangry\r\nneutral\r\n".encode())
    c = evaluate(raf, manifest="toy", splits=["test"], labels=str(names), bootstrap=50, echo=lambda s: None)
    assert c.groups[0]["confusion"] == ga["confusion"]


def test_model_without_a_label_order_is_refused_with_how_to_give_one(in_ws, tmp_path):
    ws, path, ckpt = in_ws
    raf = _export_permuted(ckpt, tmp_path / "bare.pt", RAFDB_ORDER)
    with pytest.raises(InputError, match=r"does not say in which order.*--labels ORDER.*bare\.pt\.json"):
        evaluate(raf, manifest="toy", splits=["test"], echo=lambda s: None)
    # a sidecar <model>.json gives the contract
    (tmp_path / "bare.pt.json").write_text(json.dumps({"labels": "rafdb", "input_size": 24}))
    res = evaluate(raf, manifest="toy", splits=["test"], bootstrap=0, echo=lambda s: None)
    assert res.groups[0]["n"] == 12
    (tmp_path / "bare.pt.json").write_text(json.dumps({"label": "rafdb"}))
    with pytest.raises(InputError, match=r"bare\.pt\.json: unknown key\(s\) label"):
        evaluate(raf, manifest="toy", splits=["test"], echo=lambda s: None)
    (tmp_path / "bare.pt.json").write_text(json.dumps({"labels": "affectnet9"}))
    with pytest.raises(InputError, match=r"bare\.pt\.json 'affectnet9': not a known order"):
        evaluate(raf, manifest="toy", splits=["test"], echo=lambda s: None)
    (tmp_path / "bare.pt.json").write_text("{not json")
    with pytest.raises(InputError, match=r"bare\.pt\.json: not valid JSON"):
        evaluate(raf, manifest="toy", splits=["test"], echo=lambda s: None)


def test_seven_class_model_scores_only_its_classes_and_reports_the_excluded(in_ws, tmp_path):
    import pyarrow as pa

    from fercurate.manifest import write_manifest

    ws, path, ckpt = in_ws
    m = read_manifest(path)
    t = m.table
    lid = t.column("label_id").to_numpy().copy()
    split = np.asarray(t.column("split").cast(pa.string()).to_pylist())
    lid[(lid == 6) & (split == "test")] = 7  # the test split's anger faces become contempt
    t = t.set_column(t.schema.get_field_index("label_id"), "label_id", pa.array(lid, type=pa.int8()))
    label = np.asarray(t.column("label").cast(pa.string()).to_pylist(), dtype=object)
    label[lid == 7] = "contempt"
    t = t.set_column(t.schema.get_field_index("label"), "label", pa.array(label.tolist()).dictionary_encode()
                     .cast(t.schema.field("label").type))
    write_manifest(t, ws / "manifests" / "toyc.parquet", dataset="ferplus", root=m.root)
    raf = _export_permuted(ckpt, tmp_path / "raf7.pt", RAFDB_ORDER)
    res = evaluate(raf, manifest="toyc", splits=["test"], labels="rafdb", bootstrap=0, echo=lambda s: None)
    (g,) = res.groups
    assert g["n"] == 9 and g["excluded"] == 3 + 2  # 3 contempt faces, 2 missing images
    assert len(g["per_class"]) == 7 and np.asarray(g["confusion"]).shape == (7, 7)
    reasons = [e["reason"] for e in res.excluded if e["kind"] == "label"]
    assert len(reasons) == 3 and all("contempt is not in the 7-class label space" in r for r in reasons)


def test_two_splits_give_disjoint_groups_with_their_own_counts(in_ws):
    ws, path, ckpt = in_ws
    res = evaluate(ckpt, manifest="toy", splits=["val", "test"], bootstrap=0, echo=lambda s: None)
    groups = {g["group"]: g for g in res.groups}
    assert groups["val"]["n"] == 4 and groups["test"]["n"] == 12  # 4 classes x 1 and x 3
    assert groups["val"]["excluded"] == 0 and groups["test"]["excluded"] == 2  # the missing images are test rows
    assert int(np.asarray(groups["val"]["confusion"]).sum()) == 4


def test_imagenet_normalisation_follows_the_faces_device_and_dtype():
    from pathlib import Path

    from fercurate.ran.evaluate import Predictor
    from fercurate.ran.predictor import ModelContract

    class Count(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0], 8)  # made on the CPU whatever the input's device

    scripted = torch.jit.script(Count())
    for dtype in (torch.float32, torch.float64):
        p = Predictor("torchscript", Path("m.pt"), list(CANONICAL), 8, scripted, device=torch.device("meta"),
                      contract=ModelContract(input_norm="imagenet", channels="rgb", layout="nchw", outputs="logits"))
        faces = torch.rand(3, 3, 8, 8, dtype=dtype, device="meta")  # stands for CUDA: no data, strict device checks
        probs, _, _ = p(faces)  # the full call path, normalisation included, on the faces' device
        assert probs.shape == (3, 8)
        x = p.model_input(faces)
        assert x.device.type == "meta" and x.dtype == dtype and x.shape == faces.shape


@pytest.mark.parametrize("crops", ["fixed", "random", "landmark"])
def test_torchscript_export_keeps_the_crop_mode(in_ws, tmp_path, crops):
    ws, path, ckpt = in_ws
    if not (ws / "manifests" / "toylm.parquet").exists():
        make_toy_manifest(ws, name="toylm", size=24, per_class={"test": 2}, landmarks=True)
    variant = _variant(ckpt, tmp_path, f"{crops}.pt", crops=crops)
    ts = export_torchscript(variant, tmp_path / f"{crops}_ts.pt")
    a = predict_proba(variant, "toylm", split="test")
    b = predict_proba(ts, "toylm", split="test")
    assert np.allclose(a.filter(like="prob_").to_numpy(), b.filter(like="prob_").to_numpy(), atol=1e-4)
    if crops != "fixed":  # the crop mode changes the scores, so the agreement above is not trivial
        fixed = predict_proba(_variant(ckpt, tmp_path, "fixed-ref.pt", crops="fixed"), "toylm", split="test")
        assert not np.allclose(a.filter(like="prob_").to_numpy(), fixed.filter(like="prob_").to_numpy(), atol=1e-4)


def test_onnx_model_with_a_fixed_batch_of_8_scores_21_faces(in_ws, tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX scoring needs onnxruntime (pip install 'fercurate[test]')")
    onnx = pytest.importorskip("onnx", reason="exporting the test model needs onnx (pip install 'fercurate[test]')")
    from fercurate.ran.model import LogitsOnly
    from fercurate.ran.train import model_from_checkpoint

    ws, path, ckpt = in_ws
    if not (ws / "manifests" / "toy24.parquet").exists():
        make_toy_manifest(ws, name="toy24", size=24, per_class={"test": 6})
    m = read_manifest(ws / "manifests" / "toy24.parquet")
    write_subset(m, "twentyone", sorted(m.table.column("sample_id").to_pylist())[:21], rule="toy", workspace=Workspace(ws))
    net = model_from_checkpoint(load_checkpoint(ckpt))
    net.cpu_chunk_pixels = 1 << 62
    onnx_path = tmp_path / "fixed8.onnx"
    torch.onnx.export(LogitsOnly(net).eval(), (torch.rand(8, 3, 24, 24),), str(onnx_path), dynamo=False,
                      input_names=["faces"], output_names=["logits"])
    proto = onnx.load(str(onnx_path))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 8
    for key, value in (("labels", "canonical"), ("channels", "rgb"), ("input_norm", "unit"), ("outputs", "logits")):
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"fercurate.{key}", value
    onnx.save(proto, str(onnx_path))
    a = evaluate(onnx_path, manifest="toy24", subsets=["twentyone"], bootstrap=0, batch_size=16,
                 save_probs=tmp_path / "onnx.parquet", echo=lambda s: None)
    b = evaluate(ckpt, manifest="toy24", subsets=["twentyone"], bootstrap=0, save_probs=tmp_path / "ckpt.parquet",
                 echo=lambda s: None)
    assert a.groups[0]["n"] == 21
    pa_, pb = pd.read_parquet(tmp_path / "onnx.parquet"), pd.read_parquet(tmp_path / "ckpt.parquet")
    assert len(pa_) == 21 and np.allclose(pa_.filter(like="prob_").to_numpy(), pb.filter(like="prob_").to_numpy(), atol=1e-4)


def test_official_list_gets_the_published_leaderboard_and_estimated_subsets_do_not(in_ws):
    ws, path, ckpt = in_ws
    m = read_manifest(path)
    test_ids = sorted(s for s, sp in zip(m.table.column("sample_id").to_pylist(),
                                         m.table.column("split").cast("string").to_pylist()) if sp == "test")
    write_subset(m, "official-pose30", test_ids[:8], rule="official RAN list: pose30", workspace=Workspace(ws))
    write_subset(m, "pose30-estimated", test_ids[4:10], rule="max(|yaw|,|pitch|) > 30", workspace=Workspace(ws))
    r = CliRunner().invoke(app, ["eval", "--model", str(ckpt), "-m", "toy", "--subset", "pose30", "--subset", "pose30-estimated",
                                 "--bootstrap", "0"])
    assert r.exit_code == 0, r.output
    assert "RAN Table II" in r.output and "82.23" in r.output and "SCAN-CCI Table 3" in r.output
    assert "official-pose30: official RAN list: pose30" in r.output
    assert "published size 1171 (RAN Table I)" in r.output
    assert "pose30-estimated: fercurate's own subset" in r.output
    rep = ckpt.parent / "eval" / "ran-pose30+pose30-estimated"
    metrics = json.loads((rep / "metrics.json").read_text())
    groups = {g["group"]: g for g in metrics["groups"]}
    assert groups["pose30"]["n"] == 8 and groups["pose30"]["condition"] == "pose30"
    assert [p["accuracy"] for p in groups["pose30"]["published"]] == [88.89, 88.52, 82.23, 78.11]
    assert groups["pose30-estimated"]["published"] == []
    assert "82.23" in (rep / "leaderboard.txt").read_text()
    # the same report folder again: refused, then replaced with --overwrite
    again = CliRunner().invoke(app, ["eval", "--model", str(ckpt), "-m", "toy", "--subset", "pose30", "--subset", "pose30-estimated",
                                     "--bootstrap", "0"])
    assert again.exit_code == 1 and "--overwrite" in again.output
    forced = CliRunner().invoke(app, ["eval", "--model", str(ckpt), "-m", "toy", "--subset", "pose30", "--subset",
                                      "pose30-estimated", "--bootstrap", "0", "--overwrite"])
    assert forced.exit_code == 0, forced.output


def test_contract_channels_and_normalisation_shape_the_input():
    from pathlib import Path

    from fercurate.ran.predictor import IMAGENET_MEAN, IMAGENET_STD, ModelContract, Predictor

    faces = torch.rand(2, 3, 8, 8)
    bgr = Predictor("torchscript", Path("m.pt"), list(CANONICAL), 8, None, contract=ModelContract(channels="bgr"))
    assert torch.equal(bgr.model_input(faces), faces.flip(1))
    gray = Predictor("torchscript", Path("m.pt"), list(CANONICAL), 8, None, contract=ModelContract(channels="gray"))
    g = gray.model_input(faces)
    assert g.shape == (2, 1, 8, 8)
    assert torch.allclose(g[:, 0], 0.299 * faces[:, 0] + 0.587 * faces[:, 1] + 0.114 * faces[:, 2])
    norm = Predictor("torchscript", Path("m.pt"), list(CANONICAL), 8, None, contract=ModelContract(input_norm="imagenet"))
    x = norm.model_input(faces)
    assert torch.allclose(x[:, 1], (faces[:, 1] - IMAGENET_MEAN[1]) / IMAGENET_STD[1])
    c = ModelContract()
    with pytest.raises(InputError, match="s.json: channels must be one of rgb, bgr, gray"):
        c.merge({"channels": "rgba"}, "sidecar", "s.json")
    c.merge({"labels": "sadness,happiness,neutral,surprise,fear,disgust,anger", "input_size": "48"}, "sidecar", "s.json")
    assert c.labels[:3] == ["sad", "happy", "neutral"] and c.input_size == 48 and c.sources["labels"] == "sidecar"


# --- issue 30: one EvalConfig, one Group per scored group -------------------------------------------------


def test_eval_config_and_keywords_are_one_set_of_settings(in_ws):
    from fercurate.ran.config import EvalConfig

    ws, path, ckpt = in_ws
    config = EvalConfig(manifest="toy", splits=["test"], subsets=["pose45"], bootstrap=50)
    a = evaluate(ckpt, config, echo=lambda s: None)
    b = evaluate(ckpt, manifest="toy", splits=["test"], subsets=["pose45"], bootstrap=50, echo=lambda s: None)
    c = evaluate(ckpt, EvalConfig(manifest="toy", splits=["val"]), splits=["test"], subsets=["pose45"], bootstrap=50,
                 echo=lambda s: None)  # keywords replace the config's fields
    assert a.groups == b.groups == c.groups and a.table == b.table
    with pytest.warns(DeprecationWarning, match=r"n_boot=.*EvalConfig\.bootstrap"):
        old = evaluate(ckpt, manifest="toy", splits=["test"], subsets=["pose45"], n_boot=50, workers=1,
                       echo=lambda s: None)
    assert old.groups == a.groups
    with pytest.raises(TypeError, match="unknown settings n_bootstrap"):
        evaluate(ckpt, manifest="toy", n_bootstrap=5, echo=lambda s: None)


def test_groups_hold_their_faces_and_what_they_leave_out(in_ws):
    from fercurate.ran import data as rdata
    from fercurate.ran.scoring import build_groups
    from fercurate.subsets import find_subset, subset_ids

    ws, path, ckpt = in_ws
    m = read_manifest(path)
    samples = rdata.drop_missing_files(rdata.select_samples(m, splits=["val", "test"], require_labels=False))
    info = find_subset("occlusion", manifest="toy", workspace=Workspace(ws))
    val, test, occ = build_groups(samples, ["val", "test"], [("occlusion", info, subset_ids(info))], "ferplus", 8)
    assert (val.kind, val.condition, occ.kind, occ.condition) == ("split", "val", "subset", None)
    assert (int(val.mask.sum()), val.excluded, int(test.mask.sum()), test.excluded) == (4, 0, 12, 2)
    assert (int(occ.mask.sum()), occ.excluded, occ.outside) == (3, 2, 0)
    assert not (val.mask & test.mask).any() and (occ.mask <= test.mask).all()
    assert [r.num_classes for r in test.published] and all(r.num_classes == 8 for r in test.published)
    assert not val.published and not val.published_other  # no paper reports FERPlus's validation split
    assert occ.notes and "fercurate's own subset" in occ.notes[0]


def test_report_helpers_moved_to_eval_report_and_cli_eval():
    from fercurate.ran import eval_report

    for name in ("format_table", "format_leaderboards", "format_per_class", "plot_confusion", "draw_attention",
                 "report_folder", "REPORT_FILES"):
        with pytest.warns(DeprecationWarning, match=f"fercurate.ran.evaluate.{name} moved to fercurate.ran.eval_report"):
            moved = getattr(__import__("fercurate.ran.evaluate", fromlist=[name]), name)
        assert moved is getattr(eval_report, name)
    import fercurate.cli.eval as cli_eval
    import fercurate.ran.config as config

    with pytest.warns(DeprecationWarning, match="fercurate.cli.train.evaluate moved to fercurate.cli.eval"):
        from fercurate.cli.train import evaluate as old_eval
    with pytest.warns(DeprecationWarning, match="fercurate.cli.train.leaderboard moved to fercurate.cli.eval"):
        from fercurate.cli.train import leaderboard as old_board
    with pytest.warns(DeprecationWarning, match="fercurate.cli.train.LABELS_HELP moved to fercurate.ran.config"):
        from fercurate.cli.train import LABELS_HELP
    assert (old_eval, old_board, LABELS_HELP) == (cli_eval.evaluate, cli_eval.leaderboard, config.LABELS_HELP)
