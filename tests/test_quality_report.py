"""``fercurate quality report``: tables, contact sheets, summary.md and index.html on real images."""

from __future__ import annotations

import csv
import importlib
import re
import shutil

import cv2
import pandas as pd
import pytest
from fixtures_quality import Row, make_copy, write_manifest_over
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.schema import FERPLUS_LABELS, FERPLUS_VOTE_COLUMNS, LABEL_TO_ID

SIGN = "fer0033120.png"


@pytest.fixture
def report_ws(ferplus_root, workspace):
    votes = {}
    with open(ferplus_root / "FER2013Test" / "label.csv", newline="") as fh:
        for rec in csv.reader(fh):
            votes[rec[0]] = [int(v) for v in rec[2:12]]
    names = sorted(votes)[:7] + [SIGN]
    root = workspace / "data" / "orig"
    root.mkdir(parents=True)
    rows = []
    for n in names:
        shutil.copyfile(ferplus_root / "FER2013Test" / n, root / n)
        top = FERPLUS_LABELS[FERPLUS_VOTE_COLUMNS[max(range(10), key=lambda k: votes[n][k])]]
        rows.append(Row(n, "test", LABEL_TO_ID[top] if top else -1, votes[n]))
    write_manifest_over(workspace, "orig", root, rows)
    croot = workspace / "data" / "copies"
    for k, kind in enumerate(["jpeg q60", "crop 2px", "byte copy"]):
        make_copy(kind, root / names[k], croot, f"c{k}")
    write_manifest_over(workspace, "copies", croot, [Row(p.name, "train") for p in sorted(croot.iterdir())])
    return workspace, names


def test_report_writes_tables_sheets_and_pages(report_ws):
    ws, names = report_ws
    out = ws / "qr"
    res = CliRunner().invoke(app, ["quality", "report", "-o", str(out), "-j", "1", "-w", str(ws)])
    assert res.exit_code == 0, res.output
    assert "computed: duplicates over 2 manifest(s)" in res.output and "computed: non-faces of orig" in res.output
    dups = pd.read_csv(out / "duplicates.csv")
    assert len(dups) == 3 and set(dups["kind"]) == {"near", "exact_file"}
    leak = pd.read_csv(out / "leakage.csv").set_index(["manifest", "split", "dup_manifest", "dup_split"])
    assert leak.loc[("orig", "test", "copies", "train"), "samples"] == 3
    assert leak.loc[("orig", "test", "copies", "train"), "total"] == 8
    nonfaces = pd.read_csv(out / "nonfaces.csv")
    assert f"orig/{SIGN}" in set(nonfaces["sample_id"])
    noise = pd.read_csv(out / "label_noise.csv")
    assert len(noise) and noise["contested"].all()
    for sheet in ("dup_pairs.png", "nonfaces.png", "mislabels.png"):
        img = cv2.imread(str(out / sheet))
        assert img is not None and img.shape[0] > 100 and img.shape[1] > 100, sheet
    md = (out / "summary.md").read_text()
    assert "## Duplicates" in md and "3 pairs" in md and "| orig | test | copies | train |" in md
    assert "## Non-faces" in md and "## Label noise" in md
    page = (out / "index.html").read_text()
    assert '<img src="dup_pairs.png"' in page and "<table" in page
    text = re.sub(r"<[^>]+>", " ", page[page.index("<body>"):])
    assert "37.5 %" in text  # 3 of 8 test faces leak: a percentage with one decimal, not 0.375
    assert not re.search(r"\d\.\d{4,}", text)  # no raw fractions or 6-decimal scores
    assert 'href="#nonfaces"' in page and 'href="nonfaces.csv"' in page
    assert "Main report" not in page  # no report/index.html in this workspace yet: no dead link
    (ws / "report").mkdir()
    (ws / "report" / "index.html").write_text("<!doctype html>")
    CliRunner().invoke(app, ["quality", "report", "-o", str(out), "-j", "1", "-w", str(ws)])
    assert 'href="../report/index.html">Main report' in (out / "index.html").read_text()
    # a second run reuses the layers: nothing is computed again
    res = CliRunner().invoke(app, ["quality", "report", "-o", str(out), "-j", "1", "-w", str(ws)])
    assert res.exit_code == 0 and "computed:" not in res.output


def test_report_without_compute_says_what_is_missing(report_ws):
    ws, _ = report_ws
    out = ws / "qr2"
    res = CliRunner().invoke(app, ["quality", "report", "orig", "-o", str(out), "--no-compute", "-w", str(ws)])
    assert res.exit_code == 0, res.output
    assert "no up-to-date duplicate layers" in res.output
    assert not (out / "duplicates.csv").exists() and (out / "summary.md").exists()


def test_report_in_an_empty_workspace_is_an_error(workspace):
    res = CliRunner().invoke(app, ["quality", "report", "-o", str(workspace / "q"), "-w", str(workspace)])
    assert res.exit_code == 1 and "no manifests in" in res.output


@pytest.mark.parametrize(("old", "new"), [
    ("build_report", "build_quality_page"), ("ReportResult", "QualityPageResult"), ("dup_tiles", "dup_tiles"),
    ("flagged_nonfaces", "flagged_nonfaces"), ("nonface_tiles", "nonface_tiles"), ("noise_tiles", "noise_tiles"),
    ("pair_kind", "pair_kind"), ("TABLE_ROWS", "TABLE_ROWS"),
])
def test_the_old_quality_report_path_still_gives_each_name_with_a_warning(old, new):
    from fercurate.report import quality_page

    with pytest.warns(DeprecationWarning, match=rf"quality\.report\.{old} moved to fercurate\.report\.quality_page\.{new}"):
        value = getattr(importlib.import_module("fercurate.quality.report"), old)
    assert value is getattr(quality_page, new)
