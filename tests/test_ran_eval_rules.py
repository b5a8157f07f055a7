"""Issue 28 item 9: the label rule of vote-labelled faces is stated, applied, listed and shown beside every accuracy."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fixtures_models import CANONICAL, Shipped, export_torchscript
from fixtures_ran import make_toy_manifest
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.errors import InputError
from fercurate.manifest import read_manifest, write_manifest
from fercurate.ran.evaluate import evaluate
from fercurate.subsets import write_subset
from fercurate.votes import label_rule_mask, majority_labels
from fercurate.workspace import Workspace

SIZE = 24
FERPLUS_COLUMN = {0: 0, 1: 1, 2: 3, 6: 4}  # toy class -> its FER+ vote column
KINDS = ("clear", "tie", "plurality", "singles")  # the i-th test face of each class gets these votes


def _votes(column: int, kind: str) -> list[int]:
    v = [0] * 10
    if kind == "clear":
        v[column], v[9 if column else 8] = 7, 3
    elif kind == "tie":  # tied with contempt (column 7, after every toy class): its label is still the toy class
        v[column], v[7], v[8] = 4, 4, 2
    elif kind == "plurality":  # the most votes, but not more than half
        v[column], v[5], v[6] = 4, 3, 3
    else:  # five votes and five single ones: FER+ drops the singles, so 5 of 5 is a majority
        v[column] = 5
        for j in (2, 5, 6, 7, 8):
            v[j] = 1
    return v


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Toy FERPlus faces (4 per class in test) with the votes of KINDS, 2 unknown-majority faces, and a model."""
    root = tmp_path_factory.mktemp("rulews")
    path = make_toy_manifest(root, size=SIZE, per_class={"test": 4}, unlabelled=0)
    m = read_manifest(path)
    t = m.table
    votes = []
    for sid in t.column("sample_id").to_pylist():
        cls, i = (int(x) for x in sid.rsplit("/", 1)[1].removesuffix(".png").split("_"))
        votes.append(_votes(FERPLUS_COLUMN[cls], KINDS[i]))
    label_id = majority_labels(np.asarray(votes))[0]
    assert (label_id == t.column("label_id").to_numpy()).all()  # the manifest's top-vote labels, ties to the first
    t = t.set_column(t.schema.get_field_index("label_votes"), "label_votes",
                     pa.array(votes, type=t.schema.field("label_votes").type))
    write_manifest(t, path, dataset="ferplus", root=m.root)
    ids = sorted(t.column("sample_id").to_pylist())
    clear = [s for s in ids if s.endswith(("_000.png", "_003.png"))]
    write_subset(read_manifest(path), "official-pose30", clear, rule="official RAN list: pose30", workspace=Workspace(root))
    model = export_torchscript(Shipped(), root / "model.pt", SIZE, {"labels": "canonical", "input_size": SIZE,
                               "channels": "rgb", "layout": "nchw", "input_norm": "unit", "outputs": "logits"})
    return root, model


def test_majority_is_the_default_and_leaves_out_ties_and_faces_without_half_the_votes(ws):
    root, model = ws
    lines = []
    res = evaluate(model, manifest="toy", splits=["test"], bootstrap=0, report_dir=root / "rep-majority",
                   workspace=Workspace(root), echo=lines.append)
    (g,) = res.groups
    assert g["n"] == 8 and g["label_rule_left_out"] == 8 and g["excluded"] == 8  # 4 ties + 4 without a majority
    metrics = json.loads((root / "rep-majority" / "metrics.json").read_text())
    assert metrics["label_rule"]["rule"] == "majority"
    assert metrics["label_rule"]["source"].startswith("default: FER+'s test protocol")
    excluded = pd.read_parquet(root / "rep-majority" / "excluded.parquet")
    assert (excluded["kind"] == "label rule").sum() == 8
    assert "majority rule: no class holds more than half of the votes (top neutral 4 of 10 counted" in \
        " ".join(excluded["reason"])
    assert not excluded["sample_id"].str.endswith("_003.png").any()  # 5 votes and 5 singles: a majority for FER+
    text = "\n".join(lines)
    assert "label rule majority (default)" in text and "not scored: 8 rows: majority rule" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("test "))
    assert row.split()[5] == "majority"
    # FER+'s majority keeps RAN's faces: the papers' full-test figures stand beside it
    assert any(r["method"] == "RAN-ResNet18" for r in g["published"])


def test_plurality_leaves_out_only_ties_and_the_papers_figures_need_the_same_faces(ws):
    root, model = ws
    r = CliRunner().invoke(app, ["eval", "--model", str(model), "-w", str(root), "--manifest", "toy", "--split", "test",
                                 "--subset", "pose30", "--label-rule", "plurality", "--bootstrap", "0",
                                 "--report", str(root / "rep-plurality")])
    assert r.exit_code == 0, r.output
    metrics = json.loads((root / "rep-plurality" / "metrics.json").read_text())
    assert metrics["label_rule"] == {"rule": "plurality", "source": "--label-rule",
                                     "text": "the most-voted class; faces with tied top votes are left out"}
    test, pose = metrics["groups"]
    assert (test["n"], test["label_rule_left_out"]) == (12, 4)
    assert test["published"] == [] and "the plurality rule left out 4 of its labelled faces" in r.output
    assert "are for the faces the majority rule keeps" in r.output
    assert pose["label_rule_left_out"] == 0 and pose["published"]  # the list lost no face: its figures stand
    reasons = pd.read_parquet(root / "rep-plurality" / "excluded.parquet")["reason"]
    assert len(reasons) == 4 and all(x.startswith("plurality rule: tied top votes (") and "contempt 4 of 10" in x
                                     for x in reasons)


def test_the_report_shows_the_rule_beside_every_accuracy(ws, tmp_path):
    from fercurate.report import runs

    root, model = ws
    for rule in ("majority", "plurality"):
        folder = root / f"rep-{rule}"
        if not folder.exists():
            evaluate(model, manifest="toy", splits=["test"], label_rule=rule, bootstrap=0, report_dir=folder,
                     workspace=Workspace(root), echo=lambda s: None)
    evals = runs.load_evals(Workspace(root), [root])
    _, html = runs.evaluation_section(evals, [], Workspace(root), tmp_path, [])
    assert re.search(r'<th class="[^"]*">label rule</th>', html)
    cells = re.findall(r'<td class="[^"]*">(\d+\.\d+ %)</td><td class="[^"]*">(majority|plurality)</td>', html)
    assert {rule for _, rule in cells} == {"majority", "plurality"}  # each accuracy with its rule beside it


def test_a_rule_for_a_manifest_without_votes_is_refused(ws):
    root, model = ws
    make_toy_manifest(root, name="single", size=SIZE, per_class={"test": 1}, dataset="rafdb")
    m = read_manifest(root / "manifests" / "single.parquet")
    t = m.table.set_column(m.table.schema.get_field_index("label_votes"), "label_votes",
                           pa.nulls(m.table.num_rows, m.table.schema.field("label_votes").type))
    write_manifest(t, m.path, dataset="rafdb", root=m.root)
    with pytest.raises(InputError, match=r"--label-rule plurality: .*single\.parquet \(rafdb\) has one label per face"):
        evaluate(model, manifest="single", label_rule="plurality", workspace=Workspace(root), echo=lambda s: None)
    res = evaluate(model, manifest="single", splits=["test"], bootstrap=0, workspace=Workspace(root), echo=lambda s: None)
    assert res.groups[0]["n"] == 4 and res.groups[0]["label_rule_left_out"] == 0


def test_fer_majority_rule_keeps_exactly_rans_ferplus_test_list(ferplus_root, ran_lists_root):
    """The rule the official lists correspond to: RAN's FERPlus test list is the faces FER+'s majority keeps."""
    table = pd.read_csv(ferplus_root / "FER2013Test" / "label.csv", header=None)
    names = table[0].str.removesuffix(".png").to_numpy()
    votes = table.iloc[:, 2:12].to_numpy()
    majority, _ = label_rule_mask(votes, "majority")
    plurality, _ = label_rule_mask(votes, "plurality")
    listed = {line.split()[0].split("/")[1] for line in
              (ran_lists_root / "FERplus_dir" / "dlib_ferplus_val_center_crop_range_list.txt").read_text().splitlines()
              if line.strip()}
    assert set(names[majority]) == listed and len(listed) == 3137
    assert listed <= set(names[plurality]) and plurality.sum() == 3371  # plurality keeps 234 faces more
    for name in ("pose_30_ferplus_list.txt", "pose_45_ferplus_list.txt"):
        stems = {ln.split("/")[1].split(".")[0] for ln in (ran_lists_root / "FERplus_dir" / name).read_text().split()}
        assert stems <= listed
