"""The workspace report on a fixture with a tiny trained RAN, checked in headless chromium.

The fixture has every kind of finding: a test image that is a byte copy of a train image (leakage),
a blank image and an NF-vote majority (non-faces), contested votes, an estimator subset and an
"official" one (only the latter beside Table I), a subset reaching into train and into missing files
(so its n leaves faces out, each with its reason) and an empty subset (n = 0).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from html import unescape
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fixtures_ran import make_toy_manifest
from fixtures_report import check_report

from fercurate.manifest import read_manifest, write_manifest
from fercurate.quality.dups import find_duplicates
from fercurate.quality.noise import label_noise
from fercurate.quality.nonface import find_nonfaces
from fercurate.ran.evaluate import evaluate
from fercurate.ran.train import TrainConfig, train
from fercurate.report import build_report
from fercurate.subsets import write_subset
from fercurate.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CONTESTED = [4, 3, 3, 0, 0, 0, 0, 0, 0, 0]  # 40 % neutral: no absolute majority
NF_MAJORITY = [1, 0, 0, 0, 0, 0, 0, 0, 0, 9]


def _set_votes(path: Path, votes: dict[str, list[int]]) -> None:
    m = read_manifest(path)
    ids = m.table.column("sample_id").to_pylist()
    col = [votes.get(s, v) for s, v in zip(ids, m.table.column("label_votes").to_pylist())]
    table = m.table.set_column(m.table.schema.get_field_index("label_votes"), "label_votes",
                               pa.array(col, m.table.schema.field("label_votes").type))
    write_manifest(table, path, dataset=m.dataset, root=m.root)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    ws_root = tmp_path_factory.mktemp("tiny") / "ws"
    ws_root.mkdir()
    mp = pytest.MonkeyPatch()
    mp.setenv("FERCURATE_WORKSPACE", str(ws_root))
    mp.chdir(ws_root)
    path = make_toy_manifest(ws_root, name="toy", per_class={"train": 6, "val": 2, "test": 3}, size=32, missing=2)
    data = ws_root / "data" / "toy"
    shutil.copyfile(data / "train/0_000.png", data / "test/0_000.png")  # leakage: a byte copy in test
    cv2.imwrite(str(data / "test/1_002.png"), np.full((32, 32, 3), 128, np.uint8))  # a blank image
    _set_votes(path, {"toy/test/2_000.png": CONTESTED, "toy/test/6_001.png": CONTESTED,
                      "toy/val/1_000.png": NF_MAJORITY})
    m = read_manifest(path)
    ws = Workspace(ws_root)
    test_ids = [s for s in m.table.column("sample_id").to_pylist() if "/test/" in s]
    write_subset(m, "pose30-estimated", test_ids[:5] + ["toy/train/0_001.png", "toy/train/1_001.png"] +
                 [s for s in test_ids if "missing" in s], rule="fixture: test faces, two train faces, two missing files",
                 workspace=ws)
    write_subset(m, "official-pose45", test_ids[5:9], rule="official RAN list: pose45", workspace=ws)
    write_subset(m, "pose45-estimated", [], rule="fixture: empty", workspace=ws)
    find_duplicates([path], workers=1, workspace=ws)
    find_nonfaces(m, detect=False, workers=1)
    label_noise(m)
    cfg = TrainConfig(manifest=str(path), out="runs/tiny", splits=["train"], val_splits=["val"], input_size=32,
                      epochs=2, milestones=[1], lr=0.05, batch_size=8, seed=0, log_every=2, workers=0)
    trained = train(cfg, echo=lambda *_: None)
    evaluate(trained.checkpoint, manifest=str(path), splits=["test"], subsets=["pose30-estimated", "pose45", "pose45-estimated"],
             report_dir="runs/tiny/eval", bootstrap=50, decode_workers=1, echo=lambda *_: None)
    result = build_report(ws_root / "report", workspace=ws)
    yield ws_root, result
    mp.undo()


def test_report_on_a_tiny_model_passes_the_browser_checks(tiny, tmp_path: Path) -> None:
    ws, result = tiny
    values = check_report(result.index, ws, screenshot=tmp_path / "first_screen.png")
    assert values["leak:toy:test:total"] == 14 and values["leak:toy:test:samples"] >= 1
    dups = pd.read_parquet(ws / "manifests/toy.dups.parquet")
    assert ((dups["sample_id"] == "toy/test/0_000.png") & (dups["kind"] == "exact_file")).any()
    assert values["noise:toy:contested"] == 2
    assert values["nonface:toy:nf_majority"] == 1 and values["nonface:toy:blank"] == 1
    assert values["nonface:toy:unreadable"] == 2 and "nonface:toy:no_face" not in values  # face models not run
    assert values["subset:toy:official-pose45:paper"] == 634 and "subset:toy:pose30-estimated:paper" not in values
    assert (tmp_path / "first_screen.png").stat().st_size > 20_000


def test_every_n_says_what_it_left_out(tiny) -> None:
    ws, result = tiny
    html = result.index.read_text()
    metrics = json.loads((ws / "runs/tiny/eval/metrics.json").read_text())
    pose30 = next(g for g in metrics["groups"] if g["group"] == "pose30-estimated")
    assert pose30["n"] == 5
    text = unescape(re.sub(r"<[^>]+>", "", html))
    assert ("pose30-estimated: n = 5 of the subset's 9 faces (scored, with a label); left out: 2 not scored (image file missing), "
            "2 not in the evaluated split(s).") in text
    # the two contested faces (40 % of the votes) have no label under FER+'s majority rule, the default
    assert ("test: n = 10 faces of the split (scored, with a label); left out: 2 not scored (majority rule: no class "
            "holds more than half of the votes), 2 not scored (image file missing).") in text
    assert "pose45-estimated: the subset has no faces, so there is no accuracy and no confusion matrix." in text
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)


def test_published_results_stand_only_beside_the_official_list(tiny) -> None:
    ws, result = tiny
    text = unescape(re.sub(r"<[^>]+>", " ", result.index.read_text()))
    metrics = json.loads((ws / "runs/tiny/eval/metrics.json").read_text())
    groups = {g["group"]: g for g in metrics["groups"]}
    assert groups["pose45"]["published"] and not groups["pose30-estimated"]["published"]
    assert re.search(r"\bpose45:\s+published results on the same faces and class count", text)
    assert "pose30-estimated: published results" not in text
    # the RAN row of Table II, cited, and this eval placed among the published rows
    assert re.search(r"80\.40\s+RAN \(w RB-Loss\).*RAN Table II", text, re.S)
    assert "this eval" in text and "this model ranks" in text


def test_confusion_matrices_are_full_size_and_clickable(tiny) -> None:
    _, result = tiny
    html = result.index.read_text()
    links = re.findall(r'<a href="(eval-\d+_confusion_[^"]+\.png)"><img src="\1"', html)
    assert {re.sub(r"eval-\d+_confusion_", "", x) for x in links} == {"test.png", "pose30-estimated.png", "pose45.png"}
    img = cv2.imread(str(result.index.parent / links[0]))
    assert img.shape[1] >= 1000  # two labelled panels, readable at full size


def test_training_curves_and_settings_come_from_the_run(tiny) -> None:
    ws, result = tiny
    html = result.index.read_text()
    records = [json.loads(x) for x in (ws / "runs/tiny/metrics.jsonl").read_text().splitlines()]
    assert any(r["event"] == "train" for r in records) and sum(r["event"] == "epoch" for r in records) == 2
    assert 'src="run-0_curves.png"' in html
    sha = hashlib.sha256((ws / "manifests/toy.parquet").read_bytes()).hexdigest()
    assert f"{sha} (unchanged since training)" in html
    assert "epochs done</td><td class=\"l\">2 of 2" in html
    assert "not recorded by fercurate train" not in html and "last epoch finished" in html
    assert 'href="#run-0">its training run</a>' in html


def test_quality_pages_are_styled_and_formatted(tiny) -> None:
    ws, result = tiny
    page = (result.index.parent / "quality" / "index.html").read_text()
    assert 'href="../index.html"' in page and "<style>" in page and "header" in page
    assert not re.search(r"\d\.\d{4,}", re.sub(r"<[^>]+>", " ", page))  # no raw fractions or 6-decimal scores
    leak = pd.read_csv(result.index.parent / "quality" / "leakage.csv")
    assert len(leak)


def test_runs_and_evals_record_what_they_ran_on(tiny) -> None:
    ws, result = tiny
    records = [json.loads(x) for x in (ws / "runs/tiny/metrics.jsonl").read_text().splitlines()]
    start = records[0]
    assert start["event"] == "start" and start["environment"]["device"] == "cpu"
    assert start["environment"]["packages"]["torch"] and start["environment"]["cpu_count"] >= 1
    epochs = [r for r in records if r["event"] == "epoch"]
    assert len(epochs) == 2 and all(r["finished_at"] >= start["started_at"] for r in epochs)
    # RAN logs its self-attention per crop on the validation faces: one weight per region, the face first
    assert all(len(r["val_mu_mean"]) == len(r["val_mu_sd"]) == 6 for r in epochs)
    assert all(0.0 <= v <= 1.0 for r in epochs for v in r["val_mu_mean"])
    metrics = json.loads((ws / "runs/tiny/eval/metrics.json").read_text())
    from fercurate.ran.checkpoint import file_sha256

    assert metrics["manifest_sha256"] == file_sha256(ws / "manifests/toy.parquet")
    assert metrics["seconds"] > 0 and metrics["environment"]["packages"]["numpy"]
    text = unescape(re.sub(r"<[^>]+>", " ", result.index.read_text()))
    assert "not recorded by fercurate" not in text
    assert "package versions" in text and "manifest SHA-256 when scored" in text and "unchanged since scoring" in text
    curves = cv2.imread(str(result.index.parent / "run-0_curves.png"))
    assert curves is not None and curves.shape[1] > 1500  # four panels: loss, accuracy, LR, attention
