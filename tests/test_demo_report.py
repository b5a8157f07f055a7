"""The built-in demo end to end (a small configuration), and its report opened in headless chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from fixtures_report import ARGS, CHROMIUM, check_report, need_chromium
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.cli.demo import run_command
from fercurate.demo import run_demo
from fercurate.manifest import read_manifest
from fercurate.report import build_report
from fercurate.workspace import Workspace



@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("demo") / "work"
    decoy = tmp_path_factory.mktemp("decoy")  # the demo passes --workspace to every step: the env is not its channel
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:  # restores the variable whatever a step does with it
        mp.setenv("FERCURATE_WORKSPACE", str(decoy))
        result = run_demo(work, run_command=run_command, faces=12, epochs=1, input_size=32, echo=lines.append)
    assert not any(decoy.iterdir()), "a demo step wrote into $FERCURATE_WORKSPACE instead of the demo folder"
    return result, lines


def test_demo_runs_every_step_and_says_where_outputs_went(demo) -> None:
    result, lines = demo
    commands = [c for c, _ in result.steps]
    for expected in ("ingest ferplus", "ingest affectnet", "ingest rafdb", "ingest sfew", "pose", "subsets build",
                     "synth mask", "train", "eval", "quality dups", "report"):
        assert any(f"fercurate {expected}" in c for c in commands), expected
    text = "\n".join(lines)
    for where in result.outputs.values():
        assert str(where) in text
        assert where.exists(), where
    assert "public domain" in text  # the faces' licences are stated


def test_demo_outputs_are_real(demo) -> None:
    result, _ = demo
    ws = Workspace(result.workdir)
    for name, splits in (("ferplus", {"train", "val", "test"}), ("affectnet", {"train", "test"}),
                         ("rafdb", {"train", "test"}), ("sfew", {"train", "val", "test"})):
        m = read_manifest(ws.manifest_path(name))
        assert set(m.table.column("split").to_pylist()) == splits
        assert all(p.exists() for p in m.image_paths())
    masked = pd.read_parquet(ws.manifest_path("ferplus-masked"))
    assert masked["derived_from"].notna().all() and masked["variant"].str.startswith("mask:").all()
    pose = pd.read_parquet(ws.manifests / "ferplus.pose.parquet")
    assert len(pose) == len(read_manifest(ws.manifest_path("ferplus")))
    metrics = json.loads((result.workdir / "runs" / "ran-demo" / "eval" / "metrics.json").read_text())
    assert {g["group"] for g in metrics["groups"]} >= {"test", "pose30-estimated", "pose45-estimated"}
    assert (result.workdir / "runs" / "ran-demo" / "ran.pt").exists()
    assert (result.workdir / "quality" / "duplicates.parquet").exists()


def test_report_renders_in_chromium(demo, tmp_path: Path) -> None:
    sync_api = need_chromium()
    result, _ = demo
    values = check_report(result.report, result.workdir)  # console, images, links, no nan/None, first-screen numbers
    assert any(k.startswith("leak:") for k in values) and "best:ferplus:test:accuracy" in values
    assert "best:ferplus-masked:occlusion-labelled:accuracy" in values
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(result.report.as_uri(), wait_until="load")
        for heading in ("Findings", "Datasets", "Head pose", "Subsets vs Table I", "Occlusion labelling",
                        "Synthetic variants", "Training runs", "Evaluation vs published results", "Data quality"):
            assert page.locator("h2", has_text=heading).count() == 1, heading
        assert page.locator("img").count() >= 10  # label bars x5, pose, synth sheet, curves, confusion matrices
        body = page.inner_text("body")
        # published results beside the whole test split, each with its table; the demo has no official
        # lists, so no paper figure appears beside its estimated Pose subsets
        assert "89.16" in body and "RAN Table VI" in body and "Pose-FERPlus 1,171 / 634" in body
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 50_000


def test_official_only_does_not_count_synthetic_labels(demo) -> None:
    result, _ = demo
    html = result.report.read_text()
    occlusion = html[html.index('<section id="occlusion">'):]
    row = occlusion[occlusion.index("<h3>ferplus-masked</h3>"):]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row[: row.index("</table>")])
    # manifest, rows, by people, official lists, synthetic, unlabelled, suggested, occluded, conflicts
    assert cells[0] == "ferplus-masked" and cells[3] == "0" and cells[4] == cells[1] == "12"


def test_report_on_an_empty_workspace_says_what_to_run(workspace: Path) -> None:
    res = CliRunner().invoke(app, ["report", "--out", "rep"])
    assert res.exit_code == 0, res.output
    html = (workspace / "rep" / "index.html").read_text()
    assert "fercurate ingest ferplus PATH" in html and "fercurate pose" in html
    summary = build_report(workspace / "rep2", workspace=Workspace(workspace)).sections
    assert summary["datasets"] == "no manifests" and summary["evaluation"] == "no evaluations"


def test_every_demo_step_is_a_command_for_the_runner_it_is_given(tmp_path: Path) -> None:
    work = tmp_path / "work"
    seen: list[list[str]] = []
    result = run_demo(work, run_command=seen.append, faces=4, echo=lambda _: None)
    assert [" ".join(a[:2]) for a in seen[:4]] == ["ingest ferplus", "ingest affectnet", "ingest rafdb", "ingest sfew"]
    assert seen[-1][0] == "report" and len(seen) == len(result.steps) - 1  # the layouts are built, not run
    assert all(a[-2:] == ["--workspace", str(work.resolve())] for a in seen)
