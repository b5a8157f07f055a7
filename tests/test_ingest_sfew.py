"""SFEW 2.0 ingest on generated native-layout fixtures (aligned faces inside / beside the splits)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fixtures_layouts import make_sfew
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.errors import InputError, RejectsError
from fercurate.ingest import sfew
from fercurate.manifest import read_manifest, rejects_path


def _ingest(root: Path, tmp_path: Path, **kwargs):
    out = tmp_path / "out" / "sfew.parquet"
    result = sfew.ingest(root, out, **kwargs)
    return result, read_manifest(out).to_pandas(), pd.read_parquet(rejects_path(out))


def _check_rows(df: pd.DataFrame, expected: list[dict]) -> None:
    assert len(df) == len(expected)
    got = df.set_index("sample_id")
    for row in expected:
        g = got.loc[row["sample_id"]]
        assert g["image_path"] == row["image_path"] and g["dataset"] == "sfew"
        assert (g["split"], g["source_split"]) == (row["split"], row["source_split"])
        assert g["label_id"] == row["label_id"]
        if row["label"] is None:
            assert pd.isna(g["label"]) and pd.isna(g["source_label"])
        else:
            assert (g["label"], g["source_label"]) == (row["label"], row["source_label"])


@pytest.mark.parametrize("where", ["inside", "root"])
def test_auto_uses_aligned_faces_where_present(tmp_path: Path, where: str) -> None:
    spec = make_sfew(tmp_path / "SFEW_2.0", per_class=2, n_test=3, aligned=where)
    result, df, rejects = _ingest(spec["root"], tmp_path)
    _check_rows(df, spec["rows_aligned"])
    assert len(rejects) == 0
    assert result.split_counts == {"train": 14, "val": 14, "test": 3}
    assert df.loc[df["split"] == "test", "label"].isna().all()
    assert (df.loc[df["split"] == "test", "label_id"] == -1).all()
    assert f"{spec['non_images']['aligned']} non-image file(s) ignored" in result.notes
    inner = "Train/Train_Aligned_Faces" if where == "inside" else "Train_Aligned_Faces"
    assert f"train: using {inner}/ (not Train/)" in result.notes


def test_aligned_no_uses_original_frames(tmp_path: Path) -> None:
    spec = make_sfew(tmp_path / "SFEW_2.0", per_class=1, n_test=2)
    result, df, rejects = _ingest(spec["root"], tmp_path, aligned="no")
    _check_rows(df, spec["rows_original"])
    assert len(rejects) == 0  # the Train_Aligned_Faces folder is not an unknown emotion
    assert not df["image_path"].str.contains("Aligned").any()
    # emotion labels map to the canonical names
    assert dict(zip(df["source_label"].dropna(), df["label"].dropna())) == {
        "Angry": "anger", "Disgust": "disgust", "Fear": "fear", "Happy": "happy",
        "Neutral": "neutral", "Sad": "sad", "Surprise": "surprise",
    }


def test_originals_only_and_aligned_yes_error(tmp_path: Path) -> None:
    spec = make_sfew(tmp_path / "SFEW_2.0", per_class=1, n_test=1, aligned=None)
    result, df, _ = _ingest(spec["root"], tmp_path)
    _check_rows(df, spec["rows_original"])
    with pytest.raises(InputError, match=r"Train/ has no aligned faces"):
        sfew.ingest(spec["root"], tmp_path / "x.parquet", aligned="yes")


def test_aligned_only_and_aligned_no_error(tmp_path: Path) -> None:
    spec = make_sfew(tmp_path / "SFEW_2.0", per_class=1, n_test=1, aligned="root", originals=False)
    result, df, _ = _ingest(spec["root"], tmp_path, aligned="yes")
    _check_rows(df, spec["rows_aligned"])
    assert set(df["source_split"]) == {"Train", "Val", "Test"}
    with pytest.raises(InputError, match=r"has only aligned faces \(Train_Aligned_Faces/\)"):
        sfew.ingest(spec["root"], tmp_path / "x.parquet", aligned="no")


def test_unknown_emotion_folders_are_rejected_image_by_image(tmp_path: Path) -> None:
    spec = make_sfew(tmp_path / "SFEW_2.0", per_class=2, n_test=1, aligned=None)
    root = spec["root"]
    shutil.copytree(root / "Train" / "Happy", root / "Train" / "Contempt")
    (root / "Val" / "Sad").rename(root / "Val" / "sad")  # folder names match case-insensitively
    (root / "Val" / "Empty").mkdir()
    result, df, rejects = _ingest(root, tmp_path)
    assert len(df) == len(spec["rows_original"])
    assert sorted(rejects["image_path"]) == sorted(
        f"Train/Contempt/{p.name}" for p in (root / "Train" / "Contempt").glob("*.png")
    )
    assert set(rejects["reason"]) == {
        "unknown emotion folder: 'Contempt' (expected Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise)"
    }
    assert result.reject_reasons == {"unknown emotion folder": 2}
    assert "Val/Empty/: unknown emotion folder with no images" in result.notes
    sad = df[df["source_label"] == "sad"]
    assert len(sad) == 2 and set(sad["label"]) == {"sad"}
    # images on disk = manifest rows + rejects; non-images (Thumbs.db, readme.txt) only counted
    on_disk = [p for p in root.rglob("*") if p.suffix == ".png"]
    assert len(on_disk) == result.rows + result.rejected
    assert f"{spec['non_images']['original'] + 1} non-image file(s) ignored" in result.notes


def test_missing_and_corrupt_images_with_verify(tmp_path: Path) -> None:
    spec = make_sfew(tmp_path / "SFEW_2.0", per_class=1, n_test=2)
    rows = spec["rows_aligned"]
    (spec["root"] / rows[0]["image_path"]).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result, df, _ = _ingest(spec["root"], tmp_path)
    assert result.rows == len(rows)
    result, df, rejects = _ingest(spec["root"], tmp_path, verify=True, workers=1)
    assert result.rows == len(rows) - 1
    assert rejects["image_path"].tolist() == [rows[0]["image_path"]]
    assert rejects["reason"][0].startswith("corrupt image:")
    assert (df["width"] == 143).all() and (df["height"] == 181).all()
    one = df.iloc[0]
    assert one["sha256"] == hashlib.sha256((spec["root"] / one["image_path"]).read_bytes()).hexdigest()


def test_reingest_is_byte_identical_and_cli(tmp_path: Path) -> None:
    spec = make_sfew(tmp_path / "SFEW_2.0", per_class=1, n_test=2)
    out = tmp_path / "s.parquet"
    sfew.ingest(spec["root"], out)
    first = out.read_bytes()
    sfew.ingest(spec["root"], out)
    assert out.read_bytes() == first

    runner = CliRunner()
    res = runner.invoke(app, ["ingest", "sfew", str(spec["root"]), "-o", str(out), "--aligned", "no"])
    assert res.exit_code == 0, res.output
    assert f"sfew: 16 rows (test 2, train 7, val 7) -> {out}" in res.output
    assert "non-image file(s) ignored" in res.output

    shutil.copytree(spec["root"] / "Val" / "Fear", spec["root"] / "Val" / "Bored")
    res = runner.invoke(app, ["ingest", "sfew", str(spec["root"]), "-o", str(out), "--aligned", "no", "--strict"])
    assert res.exit_code == 3 and "unknown emotion folder" in res.output
    with pytest.raises(RejectsError):
        sfew.ingest(spec["root"], out, aligned="no", strict=True)
    res = runner.invoke(app, ["ingest", "sfew", str(spec["root"]), "--aligned", "maybe", "-o", str(out)])
    assert res.exit_code == 1 and "aligned must be one of auto, yes, no" in res.output


def test_root_without_splits_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no Train/, Val/ or Test/ folder"):
        sfew.ingest(tmp_path / "empty", tmp_path / "x.parquet")
