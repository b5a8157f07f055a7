"""RAF-DB (basic) ingest on generated native-layout fixtures."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_layouts import make_rafdb
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.errors import InputError, RejectsError
from fercurate.ingest import rafdb
from fercurate.manifest import read_manifest, rejects_path


@pytest.fixture
def spec(tmp_path: Path) -> dict:
    return make_rafdb(tmp_path / "basic", n_train=10, n_test=6, seed=2)


def _ingest(spec: dict, tmp_path: Path, **kwargs):
    out = tmp_path / "out" / "rafdb.parquet"
    result = rafdb.ingest(spec["root"], out, **kwargs)
    return result, read_manifest(out).to_pandas().set_index("sample_id"), pd.read_parquet(rejects_path(out))


def test_aligned_rows_match_the_fixture(spec: dict, tmp_path: Path) -> None:
    result, df, rejects = _ingest(spec, tmp_path)
    assert result.rows == 16 and len(rejects) == 0
    assert result.split_counts == {"train": 10, "test": 6}
    for row in spec["rows"]:
        got = df.loc[f"rafdb/{row['aligned_path']}"]
        assert got["image_path"] == row["aligned_path"]
        assert (got["split"], got["source_split"]) == (row["split"], row["split"])
        assert (got["label"], got["label_id"], got["source_label"]) == (
            row["label"], row["label_id"], row["source_label"]
        )
        assert got["landmarks"] is None and got["bbox"] is None and pd.isna(got["valence"])
    # 1-7 = Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral
    mapping = dict(zip(df["source_label"], df["label"]))
    assert mapping == {"1": "surprise", "2": "fear", "3": "disgust", "4": "happy", "5": "sad", "6": "anger", "7": "neutral"}
    assert any("not attached to aligned images" in n for n in result.notes)


def test_original_images_get_landmarks_and_boxes(spec: dict, tmp_path: Path) -> None:
    result, df, _ = _ingest(spec, tmp_path, images="original")
    assert result.rows == 16
    for row in spec["rows"]:
        got = df.loc[f"rafdb/{row['original_path']}"]
        assert got["bbox"] == pytest.approx(row["bbox"])
        assert got["landmarks"].dtype == np.float32 and len(got["landmarks"]) == 10
        np.testing.assert_allclose(got["landmarks"], row["landmarks"], atol=1e-3)
        assert got["flags"] is None
    assert "Annotation/manual: landmarks for 16 of 16 rows" in result.notes


def test_missing_and_broken_annotation_files_are_flagged_not_dropped(spec: dict, tmp_path: Path) -> None:
    a, b = spec["rows"][0], spec["rows"][1]
    (spec["root"] / "Annotation/manual" / f"{a['stem']}_manu_attri.txt").unlink()
    (spec["root"] / "Annotation/boundingbox" / f"{b['stem']}_boundingbox.txt").write_text("10 20 5\n")
    result, df, rejects = _ingest(spec, tmp_path, images="original")
    assert result.rows == 16 and len(rejects) == 0
    got_a = df.loc[f"rafdb/{a['original_path']}"]
    assert got_a["landmarks"] is None and list(got_a["flags"]) == ["no_landmarks_file"]
    assert got_a["bbox"] == pytest.approx(a["bbox"])
    got_b = df.loc[f"rafdb/{b['original_path']}"]
    assert got_b["bbox"] is None and list(got_b["flags"]) == ["bad_bbox_file"]
    assert "Annotation/manual: landmarks for 15 of 16 rows; 1 without a file" in result.notes
    assert any(n.startswith("Annotation/boundingbox: bbox for 15 of 16 rows; 1 unreadable (first: ") for n in result.notes)


def test_bad_list_lines_are_rejected_with_line_and_reason(spec: dict, tmp_path: Path) -> None:
    text = spec["list"].read_text(encoding="utf-8")
    n = len(spec["rows"])
    good_extra = spec["rows"][0]
    added = [
        b"train_09001.jpg 8",
        b"train_09002.jpg x",
        b"train_09003.jpg 3 extra",
        b"../train_09004.jpg 3",
        b"/etc/train_09005.jpg 3",
        b"val_09006.jpg 2",
        f"{good_extra['name']} {good_extra['value']}".encode(),
        "train_0900\u00e9.jpg 4".encode("latin-1"),
        b"",
        b"test_9999.jpg",
    ]
    spec["list"].write_bytes(text.encode() + b"\n".join(added))
    result, df, rejects = _ingest(spec, tmp_path)
    assert result.rows == 16
    got = dict(zip(rejects["row"], rejects["reason"]))
    assert got == {
        n + 1: "unknown label: '8' (RAF-DB basic uses 1-7)",
        n + 2: "unknown label: 'x' (RAF-DB basic uses 1-7)",
        n + 3: "malformed line: expected '<image> <label>', got 3 field(s)",
        n + 4: "image path '../train_09004.jpg' leaves the dataset root ('..')",
        n + 5: "absolute image path '/etc/train_09005.jpg' (paths must be relative to the dataset root)",
        n + 6: "unknown split: 'val_09006.jpg' does not start with train_ or test_",
        n + 7: f"duplicate path: Image/aligned/{good_extra['stem']}_aligned.jpg already listed at row {good_extra['line']}",
        n + 8: "non-UTF-8 bytes: byte 10 of the line",
        n + 10: "truncated line: expected '<image> <label>', got 1 field(s)",
    }
    assert set(rejects["source_file"]) == {str(spec["list"])}
    assert rejects.loc[rejects["row"] == n + 8, "raw"].item() == "train_0900\\xe9.jpg 4"
    # every non-blank line is either a manifest row or a reject
    assert result.rows + result.rejected == n + len(added) - 1
    assert "list_patition_label.txt: 1 blank line(s) ignored" in result.notes


def test_missing_and_corrupt_images(spec: dict, tmp_path: Path) -> None:
    gone, broken = spec["rows"][3], spec["rows"][12]
    (spec["root"] / gone["aligned_path"]).unlink()
    (spec["root"] / broken["aligned_path"]).write_bytes(b"")
    result, df, rejects = _ingest(spec, tmp_path)
    assert result.rows == 15
    assert rejects["reason"].tolist() == [f"image file missing: {spec['root'].resolve() / gone['aligned_path']}"]
    assert rejects["row"].tolist() == [gone["line"]]
    result, df, rejects = _ingest(spec, tmp_path, verify=True, workers=1)
    assert result.rows == 14
    corrupt = rejects[rejects["reason"].str.startswith("corrupt image")]
    assert corrupt["row"].tolist() == [broken["line"]] and corrupt["reason"].item() == "corrupt image: empty file"
    assert (df["width"] == 100).all() and (df["height"] == 100).all()
    row = spec["rows"][0]
    data = (spec["root"] / row["aligned_path"]).read_bytes()
    assert df.loc[f"rafdb/{row['aligned_path']}", "sha256"] == hashlib.sha256(data).hexdigest()


def test_unlisted_images_are_counted(spec: dict, tmp_path: Path) -> None:
    src = spec["root"] / spec["rows"][0]["aligned_path"]
    (src.parent / "train_77777_aligned.jpg").write_bytes(src.read_bytes())
    result, _, _ = _ingest(spec, tmp_path)
    assert "Image/aligned: 1 image file(s) not in list_patition_label.txt (ignored)" in result.notes


def test_reingest_is_byte_identical(spec: dict, tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    rafdb.ingest(spec["root"], out, images="original")
    first = out.read_bytes()
    rafdb.ingest(spec["root"], out, images="original")
    assert out.read_bytes() == first


def test_cli_summary_strict_and_option_errors(spec: dict, tmp_path: Path) -> None:
    out = tmp_path / "cli.parquet"
    runner = CliRunner()
    res = runner.invoke(app, ["ingest", "rafdb", str(spec["root"]), "-o", str(out), "--images", "original"])
    assert res.exit_code == 0, res.output
    assert f"rafdb: 16 rows (test 6, train 10) -> {out}" in res.output
    assert read_manifest(out).table.column("image_path")[0].as_py().startswith("Image/original/")

    res = runner.invoke(app, ["ingest", "rafdb", str(spec["root"]), "-o", str(out), "--images", "big"])
    assert res.exit_code == 1 and "images must be 'aligned' or 'original'" in res.output

    (spec["root"] / spec["rows"][0]["aligned_path"]).unlink()
    res = runner.invoke(app, ["ingest", "rafdb", str(spec["root"]), "-o", str(out), "--strict"])
    assert res.exit_code == 3 and "1 rows rejected (--strict)" in res.output
    with pytest.raises(RejectsError):
        rafdb.ingest(spec["root"], out, strict=True)


def test_layout_errors_name_what_is_missing(tmp_path: Path) -> None:
    spec = make_rafdb(tmp_path / "basic", n_train=2, n_test=1, aligned=False, annotations=False)
    with pytest.raises(InputError, match=r"Image/aligned: image folder not found; try images='original'"):
        rafdb.ingest(spec["root"], tmp_path / "x.parquet")
    spec["list"].unlink()
    with pytest.raises(InputError, match=r"list_patition_label\.txt: RAF-DB label list not found"):
        rafdb.ingest(spec["root"], tmp_path / "x.parquet", images="original")


# --- issue 28: RAF-DB compound is recognised, and "not in list" counts only images no line names ---------------


def _make_compound(root: Path, n_train: int = 8, n_test: int = 4) -> Path:
    """RAF-DB compound as released: the same file names as basic, labels 1-11, train_0001 / test_001 images."""
    from fixtures_layouts import _write, face

    lines = []
    for prefix, digits, count in (("train", 4, n_train), ("test", 3, n_test)):
        for i in range(1, count + 1):
            stem = f"{prefix}_{i:0{digits}d}"
            lines.append(f"{stem}.jpg {len(lines) % 11 + 1}")
            _write(root / "Image" / "aligned" / f"{stem}_aligned.jpg", face(100, len(lines)))
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


def test_rafdb_compound_is_refused_naming_it(tmp_path: Path) -> None:
    root = _make_compound(tmp_path / "compound")
    out = tmp_path / "out" / "rafdb.parquet"
    with pytest.raises(InputError, match=r"this is the RAF-DB compound-expression list, not RAF-DB basic: 4 of its 12 "
                                         r"lines carry labels 8-11 .* 12 name their image like compound's "
                                         r"\(train_0001\.jpg\)"):
        rafdb.ingest(root, out)
    assert not out.exists()
    res = CliRunner().invoke(app, ["ingest", "rafdb", str(root), "-o", str(out)])
    assert res.exit_code == 1 and "error:" in res.output and "RAF-DB compound" in res.output
    assert "Traceback" not in res.output and not out.exists()


def test_a_few_stray_high_labels_in_a_basic_list_stay_rejects(spec: dict, tmp_path: Path) -> None:
    spec["list"].write_text(spec["list"].read_text() + "\ntrain_09001.jpg 9\n")
    result, _, rejects = _ingest(spec, tmp_path)
    assert result.rows == 16 and rejects["reason"].tolist() == ["unknown label: '9' (RAF-DB basic uses 1-7)"]


def test_not_in_list_counts_only_images_no_list_line_names(spec: dict, tmp_path: Path) -> None:
    src = spec["root"] / spec["rows"][0]["aligned_path"]
    (src.parent / "train_00099_aligned.jpg").write_bytes(src.read_bytes())  # listed, on a line rejected below
    (src.parent / "train_77777_aligned.jpg").write_bytes(src.read_bytes())  # on no line at all
    spec["list"].write_text(spec["list"].read_text() + "\ntrain_00099.jpg 0\n")
    result, _, rejects = _ingest(spec, tmp_path)
    assert len(rejects) == 1
    assert "Image/aligned: 1 image file(s) not in list_patition_label.txt (ignored)" in result.notes
