"""``fercurate info``: counts, rejects, flags, ingest notes and official lists of a real manifest file."""

from __future__ import annotations

import json
from pathlib import Path

from fixtures_ferplus import default_entries, votes_of, with_duplicate, write_folders, write_raw_csv
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.info import manifest_info
from fercurate.ingest import ferplus
from fercurate.subsets.official import import_ran_lists


def _ferplus_with_notes(tmp_path: Path, workspace: Path) -> Path:
    """The 12-image fixture with one label.csv row broken and a fer2013new.csv that disagrees twice."""
    entries = default_entries()
    root = write_folders(tmp_path / "ferplus", entries)
    label = root / "FER2013Valid" / "label.csv"
    label.write_text(label.read_text().replace(",6,0,0\n", ",-6,0,0\n"))  # contempt -6
    changed = [e if e.name not in ("fer0000001.png", "fer0000002.png") else
               e.__class__(e.name, e.usage, votes_of(happiness=10), e.pixels) for e in entries]
    write_raw_csv(tmp_path / "raw", with_duplicate(changed, "fer0000009.png"))
    (root / "fer2013new.csv").write_bytes((tmp_path / "raw" / "fer2013new.csv").read_bytes())
    manifest = workspace / "manifests" / "ferplus.parquet"
    ferplus.ingest(root, manifest)
    return manifest


def test_info_text(tmp_path: Path, workspace: Path) -> None:
    manifest = _ferplus_with_notes(tmp_path, workspace)
    info = manifest_info(manifest)
    assert info.rows == 11 and info.dataset == "ferplus" and info.schema_version == "1"
    assert info.counts.loc["total", "total"] == 11
    assert info.counts.loc["neutral", "train"] == 2 and info.counts.loc["(none)", "test"] == 1
    assert info.rejects == {"negative vote count '-6' for contempt": 1}
    assert info.flags == {"votes_conflict:fer2013new": 2, "duplicate_name:fer2013new": 1,
                          "votes_from_earlier_row:fer2013new": 1, "tie": 1, "votes_sum:9": 1,
                          "unknown_majority": 1, "nf_majority": 1}
    text = info.render()
    assert "rejects: 1 (negative vote count '-6' for contempt 1)" in text
    assert "flags: votes_conflict:fer2013new 2, duplicate_name:fer2013new 1," in text
    assert "source: label_mode=majority: argmax over the 10 FER+ votes" in text and "layout=folders" in text
    assert "ingest notes:\n  - label.csv votes are used (the RAN lists follow them); fer2013new.csv disagrees " \
           "on the votes of 2 images" in text
    assert "fer0000009.png (lines 12, 15)" in text
    assert "layers: none" in text and "official RAN lists" not in text


def test_info_after_import_and_as_json(tmp_path: Path, workspace: Path) -> None:
    manifest = _ferplus_with_notes(tmp_path, workspace)
    lists = tmp_path / "lists" / "FERplus_dir"
    lists.mkdir(parents=True)
    (lists / "jianfei_occlusion_list.txt").write_text("4_fer0000009.png 8 0\n1_fer0099999.png 8 1\n")
    (lists / "pose_30_ferplus_list.txt").write_text("0/fer0000000.jpg\n4/fer0000009.jpg\n")
    import_ran_lists(tmp_path / "lists", manifest)
    runner = CliRunner()
    res = runner.invoke(app, ["info", "ferplus"])  # by name, in the current workspace
    assert res.exit_code == 0, res.output
    assert "layers: official\n" in res.output
    assert "official RAN lists: occlusion 1, pose30 2; 1 lines not imported" in res.output
    res = runner.invoke(app, ["info", str(manifest), "--json"])
    data = json.loads(res.output)
    assert data["rows"] == 11 and data["counts"]["train"]["total"] == 6 and data["counts"]["val"]["total"] == 2
    assert data["official"] == {"occlusion": 1, "pose30": 2} and data["official_unmatched"] == 1
    assert data["source"]["fer2013new"]["votes_conflicts"] == 2
    assert data["flags"]["votes_conflict:fer2013new"] == 2
    res = runner.invoke(app, ["info", "nosuch"])
    assert res.exit_code == 1 and "error: no manifest named 'nosuch' (known: ferplus)" in res.output


def test_info_on_real_ferplus(ferplus_root: Path, workspace: Path) -> None:
    manifest = workspace / "manifests" / "ferplus.parquet"
    ferplus.ingest(ferplus_root, manifest)
    text = manifest_info(manifest).render()
    assert "rows: 35,710" in text
    assert "votes_conflict:fer2013new 1,601" in text
    assert "fer2013new.csv disagrees on the votes of 1,601 images" in text
    assert "FER2013Test/fer0033120.png: label.csv has the votes of fer2013new.csv line 33202" in text
