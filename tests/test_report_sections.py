"""Parts of the workspace report that need no browser: number formats, subset comparability, what n
leaves out, leakage counts, figures with empty classes, and the quality page's formats."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from fercurate.report import figures, findings, runs, sources
from fercurate.report.html import fmt, pct


@pytest.mark.parametrize(("value", "text"), [(None, "—"), (math.nan, "—"), (math.inf, "—"), (0.23612, "23.6 %"),
                                             (1.0, "100.0 %"), (4 / 35710, "< 0.1 %"), (0.0, "0.0 %")])
def test_percentages_for_people(value, text) -> None:
    assert pct(value) == text


def test_counts_have_thousands_separators_and_missing_is_a_dash() -> None:
    assert fmt(3893) == "3,893" and fmt(math.nan) == "—" and fmt(None) == "—" and fmt(0.05234) == "0.05"


@pytest.mark.parametrize(("name", "kind"), [
    ("official-pose30", sources.COMPARABLE), ("official-occlusion-clean", sources.COMPARABLE),
    ("pose30-openface", sources.CALIBRATED), ("pose45-estimated", sources.ESTIMATOR), ("pose30-clean", sources.ESTIMATOR),
    ("occlusion", sources.OTHER),
])
def test_only_official_and_calibrated_subsets_are_comparable_with_table_i(name, kind) -> None:
    assert sources.subset_kind(name) == kind


def test_subset_findings_compare_the_test_split_with_table_i_for_comparable_subsets_only(tmp_path: Path) -> None:
    from fercurate.manifest import build_table, read_manifest, write_manifest
    from fercurate.subsets import write_subset
    from fercurate.workspace import Workspace

    ids = [f"f/{i}" for i in range(10)]
    table = build_table({"sample_id": ids, "dataset": ["ferplus"] * 10, "split": ["test"] * 6 + ["train"] * 4,
                         "image_path": [f"{i}.png" for i in range(10)], "label_id": [0] * 10, "label": ["neutral"] * 10})
    path = tmp_path / "manifests" / "ferplus.parquet"
    write_manifest(table, path, dataset="ferplus", root=tmp_path)
    m, ws = read_manifest(path), Workspace(tmp_path)
    found = [write_subset(m, "official-pose30", ids[:5], rule="r", workspace=ws),
             write_subset(m, "pose30-openface", ids[:8], rule="r", workspace=ws),
             write_subset(m, "pose30-estimated", ids[5:], rule="r", workspace=ws)]
    out = findings.subset_findings(found)
    assert out[0].values == {"subset:ferplus:official-pose30": 5, "subset:ferplus:official-pose30:paper": 1171}
    assert out[1].values["subset:ferplus:pose30-openface"] == 6 and "(8 in all splits)" in out[1].html
    assert "−1,165" in out[1].html
    assert out[2].values == {"subset:ferplus:pose30-estimated": 1} and "not comparable" in out[2].html


def _eval(preds: pd.DataFrame, excluded: pd.DataFrame) -> sources.EvalRun:
    return sources.EvalRun(Path("e"), {"groups": []}, None, None, preds, excluded)


def test_n_says_what_it_left_out_and_why() -> None:
    preds = pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "label": [0, 1, -1, 2], "pred": [0, 0, 0, 0]})
    excl = pd.DataFrame({"sample_id": ["e", "f"], "kind": ["unreadable"] * 2,
                         "reason": ["/x/e.png: image file missing", "/x/f.png: image file missing"]})
    ev = _eval(preds, excl)
    text, left = runs.explain_n(ev, {"group": "pose30", "n": 2}, {"a", "b", "c", "e", "z"})
    assert left == [("not scored (image file missing)", 1), ("without a label in the label space (scored, not counted)", 1),
                    ("not in the evaluated split(s)", 1)]
    assert text.startswith("pose30: n = 2 of the subset's 5 faces (scored, with a label); left out: 1 not scored")
    text, _ = runs.explain_n(ev, {"group": "empty", "n": 0}, set())
    assert "the subset has no faces" in text and "nan" not in text
    text, left = runs.explain_n(ev, {"group": "test", "n": 3}, None)
    assert left[0] == ("not scored (image file missing)", 2) and "n = 3 faces of the split" in text


def test_leakage_counts_each_evaluation_face_once_against_any_train_split() -> None:
    pairs = pd.DataFrame({
        "a_manifest": ["f", "f", "f", "f"], "a_split": ["test", "test", "train", "val"],
        "a_sample_id": ["t1", "t1", "r1", "v1"],
        "b_manifest": ["f", "r", "f", "f"], "b_split": ["train", "train", "train", "test"],
        "b_sample_id": ["r1", "x1", "r2", "t2"],
    })
    totals = pd.DataFrame({"manifest": ["f", "f", "f", "r"], "dataset": ["d"] * 4, "split": ["train", "test", "val", "train"],
                           "total": [10, 4, 5, 3]})
    leak = findings.leakage(pairs, totals)
    assert leak[["manifest", "split", "samples", "total"]].values.tolist() == [["f", "test", 1, 4]]
    assert leak["into"][0] == "f train 1, r train 1" and leak["fraction"][0] == 0.25


def test_confusion_figure_labels_empty_classes_instead_of_nan(tmp_path: Path) -> None:
    cm = np.array([[3, 1, 0], [0, 0, 0], [1, 0, 5]])
    png = figures.confusion_pair(cm, ["neutral", "happy", "sad"], "t", tmp_path / "cm.png")
    img = cv2.imread(str(png))
    assert img is not None and img.shape[1] > 900


def test_training_curves_tolerate_epoch_only_records(tmp_path: Path) -> None:
    records = [{"event": "epoch", "epoch": 1, "step": 3, "lr": 0.1, "train_loss": 2.0, "train_acc": 0.2},
               {"event": "epoch", "epoch": 2, "step": 6, "lr": 0.01, "train_loss": 1.5, "train_acc": 0.4, "val_acc": 0.3}]
    assert cv2.imread(str(figures.training_curves(records, "run", tmp_path / "c.png"))) is not None


def test_a_sheet_of_few_tiles_is_wide_enough_for_its_title(tmp_path: Path) -> None:
    from fercurate.quality.sheets import FONT, Tile, contact_sheet

    face = tmp_path / "f.png"
    cv2.imwrite(str(face), np.full((48, 48, 3), 90, np.uint8))
    title = "contested labels (no absolute vote majority), least agreement first"
    contact_sheet([Tile([face], ["f.png", "sad 40% of votes"])], tmp_path / "s.png", columns=8, title=title)
    width = cv2.imread(str(tmp_path / "s.png")).shape[1]
    assert width >= cv2.getTextSize(title, FONT, 0.55, 1)[0][0] + 20


def test_numbers_in_eval_notes_get_thousands_separators() -> None:
    assert runs._thousands("pose30: 16252 of its 17989 samples, 0.5234, 123") == "pose30: 16,252 of its 17,989 samples, 0.5234, 123"
