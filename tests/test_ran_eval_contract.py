"""Issue 28: third-party models are scored by a complete, checked contract, or refused; never on a guess.

The models are :mod:`fixtures_models`' fixed classifier of the toy faces, exported with torch.onnx /
torch.jit the ways other projects ship models (channels last, one gray channel, inputs in [-1, 1],
FER2013 order, sigmoid outputs); scored with the right contract they must give exactly the reference
model's probabilities.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fixtures_models import CANONICAL, FER2013, Shipped, export_onnx, export_torchscript
from fixtures_ran import make_toy_manifest
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.errors import InputError
from fercurate.ran.evaluate import evaluate
from fercurate.workspace import Workspace

pytest.importorskip("onnxruntime", reason="ONNX scoring needs onnxruntime (pip install 'fercurate[test]')")
pytest.importorskip("onnx", reason="exporting the test models needs onnx (pip install 'fercurate[test]')")

SIZE = 24
FULL = {"channels": "rgb", "layout": "nchw", "input_norm": "unit", "outputs": "logits"}


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace holding one manifest (toy faces, 3 per class in test), and the reference model's probabilities."""
    root = tmp_path_factory.mktemp("contractws")
    make_toy_manifest(root, size=SIZE, per_class={"val": 1, "test": 3})
    models = root.parent / f"{root.name}-models"  # model files live outside the workspace
    models.mkdir()
    ref = export_torchscript(Shipped(order=CANONICAL[:7]), models / "ref.pt", SIZE,
                             {"labels": "canonical7", "input_size": SIZE, **FULL})
    res = evaluate(ref, manifest="toy", splits=["test"], bootstrap=0, save_probs=models / "ref.parquet",
                   workspace=Workspace(root), echo=quiet)
    assert res.groups[0]["accuracy"] == 1.0 and res.groups[0]["n"] == 12
    return root, models, pd.read_parquet(models / "ref.parquet").set_index("sample_id").sort_index(), res.groups[0]


@pytest.fixture
def cli_in(ws, monkeypatch):
    """Commands run from inside the workspace, as a user would, with no $FERCURATE_WORKSPACE."""
    monkeypatch.delenv("FERCURATE_WORKSPACE", raising=False)
    monkeypatch.chdir(ws[0])
    return ws


def _probs(path) -> pd.DataFrame:
    return pd.read_parquet(path).set_index("sample_id").sort_index()


def _contract_of(root, model) -> dict:
    """The contract values and sources of a model, as metrics.json records them."""
    from fercurate.ran.predictor import load_predictor

    return load_predictor(model, labels="fer2013", input_norm="signed", outputs="logits").contract.as_dict()


def _keras_like(models, name: str = "keras.onnx", **kw):
    """tf2onnx's shape of a Keras FER model: (N, 24, 24, 1), inputs in [-1, 1], FER2013 order."""
    return export_onnx(Shipped(layout="nhwc", channels="gray", norm="signed", order=FER2013), models / name, SIZE, **kw)


def test_readme_tour_command_works_in_a_workspace_holding_one_manifest(cli_in):
    """Item 1: 'fercurate eval --model m.onnx --labels fer2013 --split test' (before: 'nothing to evaluate on')."""
    root, models, ref, _ = cli_in
    model = export_onnx(Shipped(order=FER2013), root / "m.onnx", SIZE, metadata={"outputs": "logits"})
    (root / "m.onnx.json").write_text(json.dumps({"channels": "rgb", "input_norm": "unit"}))
    r = CliRunner().invoke(app, ["eval", "--model", "m.onnx", "--labels", "fer2013", "--split", "test",
                                 "--bootstrap", "0"])
    assert r.exit_code == 0, r.output
    metrics = json.loads((root / "eval" / "m-test" / "metrics.json").read_text())
    assert metrics["manifest"].endswith("toy.parquet") and metrics["groups"][0]["accuracy"] == 1.0
    assert "manifest toy: the only manifest in the workspace" in r.output
    contract = metrics["contract"]
    assert contract["labels"]["source"] == "command line"
    assert contract["layout"] == {"value": "nchw", "source": "inferred from the ONNX input shape [batch, 3, 24, 24]"}
    assert contract["input_size"] == {"value": 24, "source": "ONNX input shape [batch, 3, 24, 24]"}
    assert contract["channels"] == {"value": "rgb", "source": "sidecar m.onnx.json"}
    assert contract["outputs"] == {"value": "logits", "source": "ONNX metadata_props"}
    assert "layout nchw (inferred from the ONNX input shape" in r.output
    model.unlink()


def test_channels_last_signed_export_declared_on_the_command_line_scores_like_the_reference(ws, tmp_path):
    """Items 5, 6: NHWC, gray, [-1, 1], FER2013 order, all from the command line (before: refused or unit-scaled)."""
    root, models, ref, ref_group = ws
    model = _keras_like(models)
    res = evaluate(model, manifest="toy", splits=["test"], labels="fer2013", input_norm="signed", outputs="logits",
                   bootstrap=0, save_probs=tmp_path / "p.parquet", workspace=Workspace(root), echo=quiet)
    (g,) = res.groups
    assert (g["n"], g["accuracy"], g["confusion"], g["per_class"]) == \
        (ref_group["n"], ref_group["accuracy"], ref_group["confusion"], ref_group["per_class"])
    got = _probs(tmp_path / "p.parquet")
    assert np.allclose(got.to_numpy(), ref.to_numpy(), atol=1e-5)
    contract = _contract_of(root, model)
    assert contract["layout"] == {"value": "nhwc", "source": "inferred from the ONNX input shape [batch, 24, 24, 1]"}
    assert contract["channels"] == {"value": "gray", "source": "ONNX input shape [batch, 24, 24, 1]"}
    # forgetting the normalisation cannot pass silently: it is refused, and a wrong one scores other numbers
    with pytest.raises(InputError, match=r"how its input values are scaled \(input_norm\).*--input-norm unit\|signed"):
        evaluate(model, manifest="toy", splits=["test"], labels="fer2013", outputs="logits", workspace=Workspace(root),
                 echo=quiet)
    evaluate(model, manifest="toy", splits=["test"], labels="fer2013", input_norm="unit", outputs="logits", bootstrap=0,
             save_probs=tmp_path / "unit.parquet", workspace=Workspace(root), echo=quiet)
    assert not np.allclose(_probs(tmp_path / "unit.parquet").to_numpy(), ref.to_numpy(), atol=1e-3)
    # a layout against the shape is refused before any face
    with pytest.raises(InputError, match=r"--layout nchw \(command line\) puts the channels at dim 1, which is 24.*"
                                         r"the shape says nhwc"):
        evaluate(model, manifest="toy", labels="fer2013", layout="nchw", input_norm="signed", outputs="logits",
                 workspace=Workspace(root), echo=quiet)


def _pytorch_like(models, name: str, *, sidecar: bool = True, **kw):
    """A PyTorch export: (N, 3, 24, 24) RGB in [0, 1], FER2013 order; its sidecar gives channels and input_norm, its
    metadata the output kind (keys an older fercurate reads or skips, so the same file runs there too)."""
    model = export_onnx(Shipped(order=FER2013, resize=kw.pop("resize", None)), models / name, SIZE,
                        metadata={"outputs": "logits", **kw.pop("metadata", {})}, **kw)
    if sidecar:
        (models / f"{name}.json").write_text(json.dumps({"channels": "rgb", "input_norm": "unit"}))
    return model


def test_input_size_against_a_fixed_size_model_is_refused_naming_both(ws):
    """Item 2: --input-size 48 on a 24 px model (before: an onnxruntime InvalidArgument traceback)."""
    root, models, _, _ = ws
    model = _pytorch_like(models, "fixed.onnx")
    r = CliRunner().invoke(app, ["eval", "--model", str(model), "-w", str(root), "-m", "toy", "--labels", "fer2013",
                                 "--input-size", "48"])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)  # an error line, not an onnxruntime exception
    assert "error:" in r.output and "input size 48 (command line) but the model takes 24x24 inputs (ONNX input " \
        "shape [batch, 3, 24, 24])" in r.output
    keras = _keras_like(models, "fixed-nhwc.onnx")
    with pytest.raises(InputError, match=r"input size 48 \(command line\) but the model takes 24x24 inputs "
                                         r"\(ONNX input shape \[batch, 24, 24, 1\]\)"):
        evaluate(keras, manifest="toy", labels="fer2013", input_size=48, input_norm="signed", outputs="logits",
                 workspace=Workspace(root), echo=quiet)


def test_a_model_of_any_input_size_needs_its_size_given(ws, tmp_path):
    """Item 3: no size in the contract of a model taking any size is an error listing where to give it (before:
    scored at a guessed 224 px)."""
    root, models, ref, _ = ws
    model = _pytorch_like(models, "any.onnx", resize=SIZE, any_size=True)
    flags = ["eval", "--model", str(model), "-w", str(root), "-m", "toy", "--labels", "fer2013", "--split", "test",
             "--bootstrap", "0"]
    r = CliRunner().invoke(app, flags)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "its input size (input_size: the model accepts any size, ONNX input shape [batch, 3, height, width])" in r.output
    assert "--input-size N" in r.output and "'any.onnx.json'" in r.output and "fercurate.input_size" in r.output
    r = CliRunner().invoke(app, [*flags, "--input-size", str(SIZE), "--save-probs", str(tmp_path / "p.parquet")])
    assert r.exit_code == 0, r.output
    assert np.allclose(_probs(tmp_path / "p.parquet").to_numpy(), ref.to_numpy(), atol=1e-5)


def test_labels_contradicting_the_order_stored_in_the_model_are_refused(ws):
    """Item 4: --labels against ONNX metadata (before: silently used, 7.51 %)."""
    root, models, _, ref_group = ws
    model = _pytorch_like(models, "meta.onnx", sidecar=False, metadata={"labels": "fer2013", "channels": "rgb",
                                                                          "input_norm": "unit"})
    with pytest.raises(InputError, match=r"--labels canonical7 \(neutral, .*\) contradicts labels fer2013 \(anger, "
                                         r".*\) stored with the model \(ONNX metadata_props\).*--override-contract"):
        evaluate(model, manifest="toy", labels="canonical7", workspace=Workspace(root), echo=quiet)
    r = CliRunner().invoke(app, ["eval", "--model", str(model), "-w", str(root), "--labels", "rafdb"])
    assert r.exit_code == 1 and "contradicts labels fer2013" in r.output and "Traceback" not in r.output
    # the same order in other words is no contradiction; the stored contract alone scores it right
    same = evaluate(model, manifest="toy", splits=["test"], labels="angry,disgust,fear,happiness,sadness,surprise,neutral",
                    bootstrap=0, workspace=Workspace(root), echo=quiet)
    assert same.groups[0]["accuracy"] == ref_group["accuracy"]
    forced = evaluate(model, manifest="toy", splits=["test"], labels="canonical7", override_contract=True,
                      bootstrap=0, workspace=Workspace(root), echo=quiet)
    assert forced.groups[0]["accuracy"] < 0.5


def test_sigmoid_outputs_are_normalised_not_put_through_a_softmax(ws, tmp_path):
    """Item 8: tiny sigmoid scores keep their argmax (before: a softmax flattened them to 1/7, every face neutral)."""
    root, models, ref, ref_group = ws
    model = export_torchscript(Shipped(order=CANONICAL[:7], outputs="sigmoid"), models / "sig.pt", SIZE,
                               {"labels": "canonical7", "input_size": SIZE, **{**FULL, "outputs": "sigmoid"}})
    res = evaluate(model, manifest="toy", splits=["test"], bootstrap=0, save_probs=tmp_path / "s.parquet",
                   workspace=Workspace(root), echo=quiet)
    assert res.groups[0]["confusion"] == ref_group["confusion"]
    got = _probs(tmp_path / "s.parquet").to_numpy()
    assert np.allclose(got.sum(1), 1.0) and (got.argmax(1) == ref.to_numpy().argmax(1)).all()
    flat = evaluate(model, manifest="toy", splits=["test"], outputs="logits", override_contract=True, bootstrap=0,
                    workspace=Workspace(root), echo=quiet)
    assert flat.groups[0]["accuracy"] == 0.25  # read as logits the scores flatten: every face is 'neutral'
    probs = export_torchscript(Shipped(order=CANONICAL[:7]), models / "notprobs.pt", SIZE,
                               {"labels": "canonical7", "input_size": SIZE, **{**FULL, "outputs": "probabilities"}})
    with pytest.raises(InputError, match="outputs are declared probabilities, but row 0 of a batch"):
        evaluate(probs, manifest="toy", splits=["test"], workspace=Workspace(root), echo=quiet)


def test_channels_are_declared_on_the_command_line_and_checked_against_the_shape(ws):
    """Item 8: --channels gray without a sidecar (before: no such option); a 3-channel claim on a 1-channel model
    is refused."""
    root, models, _, ref_group = ws
    gray_ts = export_torchscript(Shipped(channels="gray", order=CANONICAL[:7]), models / "gray.pt", SIZE)
    flags = ["eval", "--model", str(gray_ts), "-w", str(root), "--labels", "canonical7", "--input-size", str(SIZE),
             "--input-norm", "unit", "--outputs", "logits", "--split", "test", "--bootstrap", "0"]
    r = CliRunner().invoke(app, flags)  # it runs on one channel and on three: which one is not guessed
    assert r.exit_code == 1 and "which channels it takes (channels: it runs on 1- and 3-channel input)" in r.output
    r = CliRunner().invoke(app, [*flags, "--channels", "gray", "--report", str(models / "gray-rep")])
    assert r.exit_code == 0, r.output
    metrics = json.loads((models / "gray-rep" / "metrics.json").read_text())
    assert metrics["groups"][0]["confusion"] == ref_group["confusion"]
    assert metrics["contract"]["layout"]["source"].startswith("trial runs of the TorchScript model: (1, 1, 24, 24)")
    gray_onnx = export_onnx(Shipped(channels="gray", order=CANONICAL[:7]), models / "gray.onnx", SIZE)
    with pytest.raises(InputError, match=r"takes 1 channel\(s\) \(ONNX input shape \[batch, 1, 24, 24\], layout nchw\) "
                                         r"but channels is rgb \(command line\)"):
        evaluate(gray_onnx, manifest="toy", labels="canonical7", channels="rgb", input_norm="unit", outputs="logits",
                 workspace=Workspace(root), echo=quiet)


def test_eval_output_goes_into_the_workspace_wherever_the_model_lives(ws, monkeypatch):
    """Item 7: a model outside the workspace reports into <workspace>/eval/, where 'fercurate report' finds it
    (before: beside the model; the report said 'no evaluations')."""
    from fercurate.report import runs

    root, models, _, _ = ws
    monkeypatch.delenv("FERCURATE_WORKSPACE", raising=False)
    model = _pytorch_like(models, "outside.onnx")
    r = CliRunner().invoke(app, ["eval", "--model", str(model), "-w", str(root), "-m", "toy", "--labels", "fer2013",
                                 "--split", "test", "--bootstrap", "0"])
    assert r.exit_code == 0, r.output
    assert (root / "eval" / "outside-test" / "metrics.json").exists() and not (models / "eval").exists()
    found = {ev.folder.name for _, ev in runs.load_evals(Workspace(root))}
    assert "outside-test" in found


def test_eval_table_counts_what_it_leaves_out_as_the_notes_do(ws):
    """Item 8: 'not scored' and 'no label' are two columns that agree with the notes (before: 'excl. 56' beside
    a note listing 28)."""
    import pyarrow as pa

    from fercurate.manifest import read_manifest, write_manifest

    root, models, _, _ = ws
    m = read_manifest(root / "manifests" / "toy.parquet")
    t = m.table
    lid = t.column("label_id").to_numpy().copy()
    split = np.asarray(t.column("split").cast(pa.string()).to_pylist())
    test_rows = np.flatnonzero(split == "test")
    lid[test_rows[:2]] = -1  # two faces without a label (as an unknown / NF majority)
    lid[test_rows[2:5]] = 7  # three contempt faces: outside a 7-class model's labels
    t = t.set_column(t.schema.get_field_index("label_id"), "label_id", pa.array(lid, type=pa.int8()))
    write_manifest(t, root / "manifests" / "toyx.parquet", dataset="affectnet", root=m.root)
    lines = []
    ref_model = models / "ref.pt"
    evaluate(ref_model, manifest="toyx", splits=["test"], bootstrap=0, workspace=Workspace(root), echo=lines.append)
    text = "\n".join(lines)
    row = next(ln for ln in text.splitlines() if ln.startswith("test "))
    assert row.split()[6:8] == ["3", "2"]  # not scored, no label
    assert "not scored: 3 rows: label contempt is not in the 7-class label space (3)" in text
    assert "scored without a label (not counted in accuracy): 2 rows" in text
    (root / "manifests" / "toyx.parquet").unlink()


def test_every_command_accepts_w():
    """Item 8: -w on every command (before: 'fercurate demo' had none)."""
    import typer

    command = typer.main.get_command(app)

    def leaves(group, prefix):
        for name, sub in group.commands.items():
            if getattr(sub, "commands", None):
                yield from leaves(sub, [*prefix, name])
            else:
                yield " ".join([*prefix, name]), sub

    without = [name for name, cmd in leaves(command, []) if not any("-w" in p.opts for p in cmd.params
                                                                  if hasattr(p, "opts"))]
    assert without == []


def test_an_imported_list_answers_to_its_own_name(ws):
    """Item 8: --subset aligned-test scores official-aligned-test (before: refused while the official- name worked)."""
    from fercurate.manifest import read_manifest
    from fercurate.subsets import write_subset

    root, models, _, ref_group = ws
    m = read_manifest(root / "manifests" / "toy.parquet")
    test_ids = [s for s in m.table.column("sample_id").to_pylist() if "/test/" in s]
    write_subset(m, "official-aligned-test", test_ids, rule="official RAN list: aligned-test", workspace=Workspace(root))
    res = evaluate(models / "ref.pt", manifest="toy", subsets=["aligned-test"], bootstrap=0, workspace=Workspace(root),
                   echo=quiet)
    (g,) = res.groups
    assert g["group"] == "aligned-test" and g["list"].startswith("official-aligned-test: official RAN list")
    assert g["n"] == ref_group["n"]
    (root / "manifests" / "subsets" / "toy-official-aligned-test.parquet").unlink()
