"""``import-ran-lists``: the official RAN lists matched to manifests (real lists + small bad ones)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fixtures_ferplus import default_entries, write_folders
from typer.testing import CliRunner

from fercurate.annotations import latest_labels, read_events
from fercurate.cli import app
from fercurate.errors import InputError, RejectsError
from fercurate.ingest import ferplus
from fercurate.subsets.official import import_ran_lists, read_official
from fercurate.layers import read_layer
from fercurate.manifest import build_table, write_manifest
from fercurate.schema import LABEL_TO_ID, RAFDB_LABELS
from fercurate.subsets import find_subset, list_subsets, subset_ids
from fercurate.workspace import Workspace


def _unmatched(manifest: Path) -> list[dict]:
    return pq.read_table(manifest.with_name(manifest.stem + ".official.unmatched.parquet")).to_pylist()


# --- the real lists against the real FERPlus manifest ------------------------------------------


@pytest.fixture(scope="module")
def real_ferplus_import(ferplus_root: Path, ran_lists_root: Path, tmp_path_factory: pytest.TempPathFactory):
    ws_root = tmp_path_factory.mktemp("ws")
    manifest = ws_root / "manifests" / "ferplus.parquet"
    ferplus.ingest(ferplus_root, manifest)
    ws = Workspace(ws_root)
    return ws, manifest, import_ran_lists(ran_lists_root, manifest, workspace=ws)


def test_real_ferplus_lists(real_ferplus_import) -> None:
    ws, manifest, result = real_ferplus_import
    stats = {s.name: s for s in result.lists}
    assert {n: (s.lines, s.matched, s.unmatched, s.duplicates) for n, s in stats.items()} == {
        "occlusion": (605, 605, 0, 0),
        "pose30": (1_170, 1_170, 0, 0),
        "pose45": (633, 633, 0, 0),
        "aligned-test": (3_137, 3_137, 0, 0),
        "aligned-train": (28_236, 28_236, 0, 0),
        "pose30-mn": (1_171, 1_170, 0, 1),  # 0_fer0033395 twice: the paper's 1,171
    }
    assert all(s.label_disagreements == 0 and s.label_file_disagreements == 0 for s in result.lists)
    assert dict(stats["occlusion"].occlusion_types) == {"upper": 70, "bottom": 138, "left_right": 213, "glasses|mask": 184}
    # The layer, read back with pyarrow.
    table = read_official(manifest)
    assert table.num_rows == 605 + 1_170 + 633 + 3_137 + 28_236 + 1_170
    rows = {(r["sample_id"], r["list"]): r for r in table.to_pylist()}
    occ = rows[("ferplus/FER2013Test/fer0034656.png", "occlusion")]  # line 1: 1_fer0034656.png 8 0
    assert occ == {"sample_id": "ferplus/FER2013Test/fer0034656.png", "list": "occlusion",
                   "label_id": LABEL_TO_ID["happy"], "source_code": "0",
                   "source_file": "FERplus_dir/jianfei_occlusion_list.txt", "line": 1}
    assert all(r["sample_id"].startswith("ferplus/FER2013Test/") for (s, lst), r in rows.items() if lst != "aligned-train")
    assert _unmatched(manifest) == [{"list": "pose30-mn", "file": "val_ferplus_mn.txt", "line": 409,
                                     "entry": "0_fer0033395.txt 0_fer0033395_label.txt 4",
                                     "reason": "duplicate: same image as line 408"}]
    # Occlusion events: official, by the RAN authors, codes kept, decoded types.
    events = read_events(ws.annotation_path("ferplus"))
    assert events.num_rows == 605
    ev = [e for e in events.to_pylist() if e["sample_id"] == "ferplus/FER2013Test/fer0034656.png"][0]
    assert (ev["types"], ev["source"], ev["annotator"], ev["source_code"], ev["origin"]) == (
        ["upper"], "official", "ran-authors", "0", "FERplus_dir/jianfei_occlusion_list.txt:1")
    labels = latest_labels(events)
    assert labels["types"].map(tuple).value_counts().to_dict() == {
        ("left_right",): 213, ("glasses|mask",): 184, ("bottom",): 138, ("upper",): 70}
    # Subsets.
    sizes = {s.name: s.size for s in list_subsets(ws, "ferplus")}
    assert sizes == {"official-aligned-test": 3_137, "official-aligned-train": 28_236, "official-occlusion": 605,
                     "official-pose30": 1_170, "official-pose30-mn": 1_170, "official-pose45": 633,
                     # one per occlusion type, the rows of RAN Table I
                     "official-occlusion-upper": 70, "official-occlusion-bottom": 138,
                     "official-occlusion-left_right": 213, "official-occlusion-glasses-or-mask": 184}
    assert find_subset("pose45", workspace=ws).name == "official-pose45"  # the paper's name is the paper's list
    assert subset_ids(find_subset("official-pose45", workspace=ws)) <= subset_ids(find_subset("official-pose30", workspace=ws))


def test_real_ferplus_reimport_is_idempotent(real_ferplus_import, ran_lists_root: Path) -> None:
    ws, manifest, _ = real_ferplus_import
    before = ws.annotation_path("ferplus").read_bytes()
    layer = read_official(manifest)
    again = import_ran_lists(ran_lists_root, manifest, workspace=ws)
    assert (again.events_added, again.events_present) == (0, 605)
    assert ws.annotation_path("ferplus").read_bytes() == before
    assert read_official(manifest).equals(layer)


# --- the real AffectNet and RAF-DB lists, against manifests made from their keys -------------------


def _manifest(path: Path, dataset: str, image_paths: list[str], labels: list[str | None]) -> Path:
    table = build_table({
        "sample_id": [f"{dataset}/{p}" for p in image_paths],
        "dataset": [dataset] * len(image_paths),
        "split": ["test"] * len(image_paths),
        "image_path": image_paths,
        "label": labels,
        "label_id": [LABEL_TO_ID[x] if x else -1 for x in labels],
    })
    write_manifest(table, path, dataset=dataset, root=path.parent)
    return path


def test_real_affectnet_lists(ran_lists_root: Path, tmp_path: Path) -> None:
    names = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"]
    val = (ran_lists_root / "AffectNet_dir/simple_sample/val_affectnet8part_list.txt").read_text().split("\n")
    paths, labels = [], []
    for line in filter(None, val):
        label, stem = line.split()[0].split("/")
        paths.append(f"Manually_Annotated_Images/{len(paths) % 50}/{stem}.jpg")
        labels.append(names[int(label)])
    manifest = _manifest(tmp_path / "manifests" / "affectnet.parquet", "affectnet", paths, labels)
    ws = Workspace(tmp_path)
    result = import_ran_lists(ran_lists_root, manifest, workspace=ws)
    stats = {s.name: (s.lines, s.matched, s.duplicates, s.unmatched, s.label_disagreements) for s in result.lists}
    assert stats == {
        "occlusion": (683, 683, 0, 0, 0),
        "pose30": (1_949, 1_944, 5, 0, 0),
        "pose45": (985, 983, 2, 0, 0),
        "aligned-test": (4_000, 4_000, 0, 0, 0),
    }
    events = read_events(ws.annotation_path("affectnet")).to_pylist()
    assert len(events) == 683 and {tuple(e["types"]) for e in events} == {("occluded",)}
    assert {e["source_code"] for e in events} == {None}
    assert any("train_affectnet8part_label.txt" in n and "never published" in n for n in result.notes)


def test_real_rafdb_lists(ran_lists_root: Path, tmp_path: Path) -> None:
    keys: dict[str, int] = {}
    for name in ("val_raf_db_list.txt", "val_raf_db_list_45.txt"):
        for line in filter(None, (ran_lists_root / "RAF_DB_dir" / name).read_text().split("\n")):
            label, stem = line.split("/")
            keys[stem.split("_aligned")[0]] = int(label)
    for line in filter(None, (ran_lists_root / "RAF_DB_dir/rafdb_occlusion_list.txt").read_text().split("\n")):
        stem, label, _ = line.split()
        keys[stem.split("_aligned")[0]] = int(label)
    paths = [f"Image/aligned/{k}_aligned.jpg" for k in sorted(keys)]
    labels = [RAFDB_LABELS[keys[k] + 1] for k in sorted(keys)]  # list label = RAF-DB basic label - 1
    manifest = _manifest(tmp_path / "manifests" / "rafdb.parquet", "rafdb", paths, labels)
    ws = Workspace(tmp_path)
    result = import_ran_lists(ran_lists_root, manifest, workspace=ws)
    stats = {s.name: (s.lines, s.matched, s.duplicates, s.unmatched, s.label_disagreements) for s in result.lists}
    assert stats == {"occlusion": (735, 734, 1, 0, 0), "pose30": (1_247, 1_247, 0, 0, 0), "pose45": (558, 558, 0, 0, 0)}
    assert not [n for s in result.lists for n in s.notes]  # label files (with their "N 7" header) agree
    events = read_events(ws.annotation_path("rafdb")).to_pylist()
    assert {tuple(e["types"]) for e in events} == {("occluded",)}
    assert sorted({e["source_code"] for e in events}) == ["1", "2", "3", "4"]  # undocumented codes kept, not guessed
    dup = _unmatched(manifest)
    assert [(d["file"], d["line"]) for d in dup] == [("RAF_DB_dir/rafdb_occlusion_list.txt", 317)]
    layer, _ = read_layer(manifest.with_name("rafdb.official.parquet"), "official")
    row = [r for r in layer.to_pylist() if r["sample_id"] == "rafdb/Image/aligned/test_0003_aligned.jpg"][0]
    assert row["label_id"] == LABEL_TO_ID["happy"]  # list label 3 = RAF-DB 4 (Happiness)


# --- small synthetic lists with bad lines --------------------------------------------------------


@pytest.fixture
def small(tmp_path: Path, workspace: Path) -> tuple[Path, Path]:
    """A 12-image FERPlus manifest (default_entries) and an empty lists folder."""
    manifest = workspace / "manifests" / "ferplus.parquet"
    ferplus.ingest(write_folders(tmp_path / "ferplus", default_entries()), manifest)
    lists = tmp_path / "lists"
    (lists / "FERplus_dir").mkdir(parents=True)
    return manifest, lists


def test_bad_lines_are_reported_with_file_and_line(small, workspace: Path) -> None:
    manifest, lists = small
    occ = lists / "FERplus_dir" / "jianfei_occlusion_list.txt"
    occ.write_bytes(b"\n".join([
        b"4_fer0000009.png 8 0",  # 1: anger (FER+ 4), matches the manifest
        b"0_fer0000011.png 8 3",  # 2: list says neutral, manifest fear -> label disagreement
        b"1_fer0099999.png 8 1",  # 3: no such image
        b"../../etc/passwd 8 1",  # 4: '..'
        b"/abs/1_fer0000001.png 8 1",  # 5: absolute
        b"3_fer0000003.png 8 7",  # 6: unknown occlusion code
        b"garbage",  # 7: malformed
        b"4_fer0000009.png 8 2",  # 8: duplicate of line 1, another code
        b"1_fer\xff0000001.png 8 1",  # 9: not UTF-8
        b"5_fer0000005.png 8 1",  # 10: disgust (FER+ 5), bottom
    ]) + b"\n")
    (lists / "FERplus_dir" / "pose_30_ferplus_list.txt").write_text("0/fer0000000.jpg\n9/fer0000001.jpg\n1/fer0000001.jpg\n")
    (lists / "FERplus_dir" / "dlib_ferplus_val_center_crop_range_list.txt").write_text("4/fer0000009 6\n7/fer0000011 6\n")
    (lists / "FERplus_dir" / "dlib_ferplus_val_center_crop_range_label.txt").write_text("4\n6\n")
    (lists / "FERplus_dir" / "mystery.txt").write_text("x\n")

    result = import_ran_lists(lists, manifest)
    bad = {(u["file"], u["line"]): u["reason"] for u in _unmatched(manifest)}
    occ_file = "FERplus_dir/jianfei_occlusion_list.txt"
    assert bad == {
        (occ_file, 3): "unmatched: no manifest row for fer0099999",
        (occ_file, 4): "unsafe path: entry '../../etc/passwd' leaves the dataset root ('..')",
        (occ_file, 5): "unsafe path: absolute entry '/abs/1_fer0000001.png' (paths must be relative to the dataset root)",
        (occ_file, 6): "malformed: occlusion code '7' is not one of 0, 1, 2, 3",
        (occ_file, 7): "malformed: expected '<label>_<ferNNNNNNN>.png 8 <occlusion code 0-3>'",
        (occ_file, 8): "duplicate: same image as line 1 (code 0 there, 2 here)",
        (occ_file, 9): "malformed: not valid UTF-8",
        ("FERplus_dir/pose_30_ferplus_list.txt", 2): "malformed: label '9' is not in the list's label order "
        "(FER+ order 0..7 (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt))",
    }
    stats = {s.name: s for s in result.lists}
    assert (stats["occlusion"].matched, stats["occlusion"].unmatched, stats["occlusion"].duplicates) == (3, 6, 1)
    assert stats["occlusion"].label_disagreements == 1
    assert dict(stats["occlusion"].occlusion_types) == {"upper": 1, "bottom": 1, "glasses|mask": 1}
    assert stats["aligned-test"].label_file_disagreements == 1
    assert stats["aligned-test"].label_disagreements == 1  # 7 (contempt) vs fear
    text = result.summary()
    assert f"{occ_file}:3: unmatched: no manifest row for fer0099999" in text
    assert "1 lines disagree with FERplus_dir/dlib_ferplus_val_center_crop_range_label.txt" in text
    assert "not imported: FERplus_dir/mystery.txt (not a known RAN list)" in text
    assert "not found, skipped: FERplus_dir/pose_45_ferplus_list.txt" in text
    # Events: the three matched occlusion lines, with fixed date and raw code.
    events = read_events(Workspace.current().annotation_path("ferplus")).to_pylist()
    assert sorted((e["sample_id"].rsplit("/", 1)[1], tuple(e["types"]), e["source_code"]) for e in events) == [
        ("fer0000005.png", ("bottom",), "1"), ("fer0000009.png", ("upper",), "0"),
        ("fer0000011.png", ("glasses|mask",), "3")]
    assert {e["labelled_at"] for e in events} == {datetime(2019, 5, 10, tzinfo=timezone.utc)}
    names = sorted(s.name for s in list_subsets())
    assert [n for n in names if not n.startswith("official-occlusion-")] == [
        "official-aligned-test", "official-occlusion", "official-pose30"]
    occluded = subset_ids(find_subset("official-occlusion"))
    assert all(subset_ids(find_subset(n)) <= occluded for n in names if n.startswith("official-occlusion-"))


def test_strict_and_cli(small, workspace: Path) -> None:
    manifest, lists = small
    (lists / "FERplus_dir" / "pose_30_ferplus_list.txt").write_text("0/fer0000000.jpg\n3/fer0123456.jpg\n")
    with pytest.raises(RejectsError, match=re.escape("1 list lines unmatched or malformed (--strict); first: "
                                                     "FERplus_dir/pose_30_ferplus_list.txt:2")):
        import_ran_lists(lists, manifest, strict=True)
    runner = CliRunner()
    res = runner.invoke(app, ["import-ran-lists", str(lists), "--manifest", "ferplus", "--strict"])
    assert res.exit_code == 3 and "error: 1 list lines unmatched" in res.output
    res = runner.invoke(app, ["import-ran-lists", str(lists), "--manifest", "ferplus"])
    assert res.exit_code == 0, res.output
    assert "FERplus_dir/pose_30_ferplus_list.txt:2: unmatched: no manifest row for fer0123456" in res.output
    assert "subsets: official-pose30 1" in res.output
    res = runner.invoke(app, ["import-ran-lists", "--help"])
    assert "Example: fercurate import-ran-lists" in res.output


def test_missing_lists_and_wrong_dataset(small, tmp_path: Path, workspace: Path) -> None:
    manifest, lists = small
    with pytest.raises(InputError, match="no official RAN lists for ferplus"):
        import_ran_lists(lists, manifest)
    with pytest.raises(InputError, match="RAN lists folder not found"):
        import_ran_lists(tmp_path / "nope", manifest)
    (lists / "FERplus_dir" / "pose_30_ferplus_list.txt").write_text("0/fer0999999.jpg\n")
    with pytest.raises(InputError, match="no list line matched a row of"):
        import_ran_lists(lists, manifest)
    sfew = _manifest(workspace / "manifests" / "sfew.parquet", "sfew", ["Test/a.png"], [None])
    with pytest.raises(InputError, match="dataset 'sfew' has no official RAN lists"):
        import_ran_lists(lists, sfew)
