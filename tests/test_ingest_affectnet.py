"""AffectNet ingest on generated native-layout fixtures: rows, determinism, --verify, CLI, bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fixtures_layouts import AFFECTNET_HEADER, affectnet_line, make_affectnet
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.errors import InputError, RejectsError
from fercurate.ingest import affectnet
from fercurate.manifest import failed_rejects_path, read_manifest, rejects_path


@pytest.fixture
def spec(tmp_path: Path) -> dict:
    return make_affectnet(tmp_path / "AffectNet", n_train=14, n_val=7, seed=3)


def _ingest(spec: dict, tmp_path: Path, **kwargs):
    out = tmp_path / "out" / "affectnet.parquet"
    result = affectnet.ingest(spec["root"], out, **kwargs)
    return result, read_manifest(out), pd.read_parquet(rejects_path(out))


def _lines(spec: dict, name: str) -> list[str]:
    return (spec["lists"] / name).read_text(encoding="utf-8").splitlines()


def _write_lines(spec: dict, name: str, lines: list[str], end: str = "\n") -> None:
    (spec["lists"] / name).write_text("\n".join(lines) + end, encoding="utf-8")


def test_manifest_matches_the_fixture_row_by_row(spec: dict, tmp_path: Path) -> None:
    result, manifest, rejects = _ingest(spec, tmp_path)
    assert result.rows == 21 and result.rejected == 0 and len(rejects) == 0
    assert result.split_counts == {"train": 14, "test": 7}
    assert manifest.dataset == "affectnet" and manifest.root == spec["root"].resolve()
    df = manifest.to_pandas().set_index("sample_id")
    assert list(df.index) == sorted(df.index)
    for row in spec["rows"]:
        got = df.loc[row["sample_id"]]
        assert row["sample_id"] == "affectnet/" + row["image_path"]
        assert got["image_path"] == row["image_path"]
        assert got["dataset"] == "affectnet"
        assert (got["split"], got["source_split"]) == (row["split"], row["source_split"])
        assert got["label_id"] == row["label_id"]
        assert got["source_label"] == row["source_label"]
        if row["label"] is None:
            assert pd.isna(got["label"]) and got["label_id"] == -1
        else:
            assert got["label"] == row["label"]
        for key in ("valence", "arousal"):
            if row[key] is None:
                assert pd.isna(got[key]), (row["sample_id"], key)
            else:
                assert got[key] == pytest.approx(row[key], abs=1e-6)
        assert got["bbox"] == row["bbox"]
        assert got["landmarks"].dtype == np.float32 and len(got["landmarks"]) == 136
        np.testing.assert_allclose(got["landmarks"], row["landmarks"], atol=1e-3)
        assert pd.isna(got["width"]) and pd.isna(got["sha256"])
        assert got["label_votes"] is None


def test_classes_8_to_10_are_kept_without_a_canonical_label(spec: dict, tmp_path: Path) -> None:
    result, manifest, _ = _ingest(spec, tmp_path)
    df = manifest.to_pandas()
    unlabelled = df[df["label_id"] == -1]
    assert sorted(set(unlabelled["source_label"])) == ["No-Face", "None", "Uncertain"]
    assert unlabelled["label"].isna().all()
    assert unlabelled["valence"].isna().all() and unlabelled["arousal"].isna().all()
    expected = sum(1 for r in spec["rows"] if r["expression"] >= 8)
    assert len(unlabelled) == expected
    assert any(f"{expected:,} rows of classes 8-10" in n for n in result.notes)


def test_reingest_is_byte_identical(spec: dict, tmp_path: Path) -> None:
    out = tmp_path / "a.parquet"
    affectnet.ingest(spec["root"], out)
    first = out.read_bytes()
    first_rejects = rejects_path(out).read_bytes()
    affectnet.ingest(spec["root"], out)
    assert out.read_bytes() == first
    assert rejects_path(out).read_bytes() == first_rejects


def test_verify_records_size_and_sha256(spec: dict, tmp_path: Path) -> None:
    _, manifest, _ = _ingest(spec, tmp_path, verify=True, workers=1)
    df = manifest.to_pandas()
    assert (df["width"] == 96).all() and (df["height"] == 96).all()
    for _, got in df.iterrows():
        data = (spec["root"] / got["image_path"]).read_bytes()
        assert got["sha256"] == hashlib.sha256(data).hexdigest()


def test_cli_prints_the_summary(spec: dict, tmp_path: Path) -> None:
    out = tmp_path / "cli.parquet"
    res = CliRunner().invoke(app, ["ingest", "affectnet", str(spec["root"]), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert f"affectnet: 21 rows (test 7, train 14) -> {out}" in res.output
    assert read_manifest(out).table.num_rows == 21


def test_headerless_csv_is_read_in_the_standard_order(tmp_path: Path) -> None:
    spec = make_affectnet(tmp_path / "A", n_train=11, n_val=4, seed=1, header=False)
    result, manifest, _ = _ingest(spec, tmp_path)
    assert result.rows == 15
    assert any("training.csv: no header row" in n for n in result.notes)
    df = manifest.to_pandas().set_index("sample_id")
    first = spec["rows"][0]
    assert df.loc[first["sample_id"], "label_id"] == first["label_id"]


def test_missing_column_is_a_fatal_error_naming_file_and_column(spec: dict, tmp_path: Path) -> None:
    lines = _lines(spec, "training.csv")
    lines[0] = AFFECTNET_HEADER.replace(",expression", ",emotion")
    _write_lines(spec, "training.csv", lines)
    with pytest.raises(InputError, match=r"training\.csv: missing column 'expression'"):
        affectnet.ingest(spec["root"], tmp_path / "x.parquet")
    res = CliRunner().invoke(app, ["ingest", "affectnet", str(spec["root"]), "-o", str(tmp_path / "x.parquet")])
    assert res.exit_code == 1
    assert "error:" in res.output and "missing column 'expression'" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "x.parquet").exists()


def test_bad_rows_are_rejected_with_file_line_and_reason(spec: dict, tmp_path: Path) -> None:
    rows = [r for r in spec["rows"] if r["split"] == "train"]
    lines = _lines(spec, "training.csv")
    base = dict(rows[0])

    def variant(**changes) -> str:
        return affectnet_line({**base, **changes})

    bad = {
        "unknown label 11": variant(subDirectory_filePath="900/a.jpg", expression=11),
        "unknown label x": variant(subDirectory_filePath="900/b.jpg", expression="x"),
        "dotdot": variant(subDirectory_filePath="../outside.jpg"),
        "absolute": variant(subDirectory_filePath="/etc/passwd.jpg"),
        "duplicate": lines[3],
        "landmarks short": variant(subDirectory_filePath="900/c.jpg", landmarks=base["landmarks"][:134]),
        "bad valence": variant(subDirectory_filePath="900/d.jpg", valence_text="1.5"),
    }
    # a non-numeric face_x
    parts = variant(subDirectory_filePath="900/e.jpg").split(",")
    parts[1] = "abc"
    bad["bad box"] = ",".join(parts)
    added = list(bad.values())
    new_lines = lines + added
    first_bad_line = len(lines) + 1
    _write_lines(spec, "training.csv", new_lines)
    # non-UTF-8 bytes in a row and a blank line, then a row cut mid-landmarks (no final newline)
    raw = (spec["lists"] / "training.csv").read_bytes()
    latin = variant(subDirectory_filePath="900/caf\xe9.jpg").encode("latin-1")
    truncated = variant(subDirectory_filePath="900/t.jpg")[:60].encode()
    (spec["lists"] / "training.csv").write_bytes(raw + latin + b"\n\n" + truncated)
    total_lines = len(new_lines) + 3

    result, manifest, rejects = _ingest(spec, tmp_path)
    data_rows = 14 + len(added) + 2  # + the non-UTF-8 row + the truncated row (the blank line is not a row)
    assert result.rows + result.rejected == data_rows + 7
    assert manifest.table.num_rows == 21 and result.rejected == len(rejects) == 10

    by_line = {int(r.row): r for r in rejects.itertuples()}
    assert set(by_line) == set(range(first_bad_line, first_bad_line + len(added))) | {
        total_lines - 2,
        total_lines,
    }
    assert all(Path(f).name == "training.csv" for f in rejects["source_file"])

    def reason(k: int) -> str:
        return by_line[first_bad_line + k].reason

    assert reason(0) == "unknown label: expression '11' (AffectNet uses 0-10)"
    assert reason(1) == "unknown label: expression 'x' (AffectNet uses 0-10)"
    assert "leaves the dataset root" in reason(2)
    assert reason(3) == "absolute image path '/etc/passwd.jpg' (paths must be relative to the dataset root)"
    assert reason(4) == f"duplicate path: {rows[2]['image_path']} already listed at row 4"
    assert reason(5) == "bad landmarks: 134 values (expected 136 = 68 x;y pairs)"
    assert reason(6).startswith("bad value: valence '1.5' outside [-1, 1]")
    assert reason(7) == "bad number: face_x 'abc'"
    assert by_line[total_lines - 2].reason == "non-UTF-8 bytes: in column 'subDirectory_filePath'"
    assert "caf\\xe9" in by_line[total_lines - 2].raw
    assert by_line[total_lines].reason == "truncated row: 6 of 9 fields (the file ends mid-row)"
    assert any("1 empty line(s) ignored" in n for n in result.notes)

    summary = result.summary()
    assert "rejected 10 rows" in summary and "unknown label 2" in summary
    assert f"first: {spec['lists'] / 'training.csv'}:{first_bad_line}: unknown label" in summary


def test_line_numbers_stay_exact_after_a_malformed_row(spec: dict, tmp_path: Path) -> None:
    lines = _lines(spec, "training.csv")
    lines.insert(2, "just,three,fields")
    lines.insert(6, "")
    _write_lines(spec, "training.csv", lines)
    gone = spec["rows"][9]
    (spec["root"] / gone["image_path"]).unlink()
    moved = gone["line"] + 2  # both inserted lines come before it
    _, _, rejects = _ingest(spec, tmp_path)
    got = dict(zip(rejects["row"], rejects["reason"]))
    assert set(got) == {3, moved}
    assert got[3] == "malformed row: 3 of 9 fields"
    assert got[moved].startswith("image file missing:")
    assert rejects.loc[rejects["row"] == moved, "image_path"].item() == gone["image_path"]
    assert rejects.loc[rejects["row"] == 3, "image_path"].item() == "Manually_Annotated_Images/just"


def test_duplicate_across_files_names_the_first_file(spec: dict, tmp_path: Path) -> None:
    val = _lines(spec, "validation.csv")
    train_row = spec["rows"][5]
    _write_lines(spec, "validation.csv", val + [affectnet_line(train_row)])
    _, _, rejects = _ingest(spec, tmp_path)
    assert rejects["reason"].tolist() == [
        f"duplicate path: {train_row['image_path']} already listed at training.csv:{train_row['line']}"
    ]
    assert Path(rejects["source_file"][0]).name == "validation.csv" and rejects["row"][0] == len(val) + 1


def test_missing_image_and_no_check_files(spec: dict, tmp_path: Path) -> None:
    gone = spec["rows"][4]
    (spec["root"] / gone["image_path"]).unlink()
    result, manifest, rejects = _ingest(spec, tmp_path)
    assert result.rows == 20
    assert rejects["reason"][0] == f"image file missing: {spec['root'].resolve() / gone['image_path']}"
    assert rejects["row"][0] == gone["line"]
    result, manifest, rejects = _ingest(spec, tmp_path, check_files=False)
    assert result.rows == 21 and len(rejects) == 0
    assert "image files not checked (check_files off)" in result.notes


def test_corrupt_image_is_found_only_with_verify(spec: dict, tmp_path: Path) -> None:
    bad = spec["rows"][7]
    (spec["root"] / bad["image_path"]).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result, _, _ = _ingest(spec, tmp_path)
    assert result.rejected == 0
    result, manifest, rejects = _ingest(spec, tmp_path, verify=True, workers=1)
    assert result.rows == 20 and bad["sample_id"] not in set(manifest.table.column("sample_id").to_pylist())
    assert rejects["reason"][0].startswith("corrupt image:")
    assert rejects["row"][0] == bad["line"]


def test_strict_fails_with_exit_code_3(spec: dict, tmp_path: Path) -> None:
    (spec["root"] / spec["rows"][1]["image_path"]).unlink()
    out = tmp_path / "strict.parquet"
    with pytest.raises(RejectsError):
        affectnet.ingest(spec["root"], out, strict=True)
    # the failed run's rejects go beside, never over, the (absent) previous manifest's rejects
    assert not out.exists() and not rejects_path(out).exists()
    assert len(pq.read_table(failed_rejects_path(out))) == 1
    res = CliRunner().invoke(app, ["ingest", "affectnet", str(spec["root"]), "-o", str(out), "--strict"])
    assert res.exit_code == 3
    assert "1 rows rejected (--strict)" in res.output and "image file missing" in res.output


def test_bad_landmark_values_across_chunks(spec: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small chunks + threads: rows still line up and each bad landmark row is found."""
    monkeypatch.setattr(affectnet, "_CHUNK_ROWS", 4)
    lines = _lines(spec, "training.csv")
    row = spec["rows"][6]
    parts = affectnet_line(dict(row, subDirectory_filePath="901/bad.jpg")).split(",")
    values = parts[5].split(";")
    values[10] = "1.2.3"
    parts[5] = ";".join(values)
    text = ",".join(parts)
    empty = affectnet_line(dict(row, subDirectory_filePath="901/empty.jpg")).split(",")
    empty[5] = ""
    _write_lines(spec, "training.csv", lines + [text, ",".join(empty)])
    (spec["root"] / "Manually_Annotated_Images/901").mkdir()
    (spec["root"] / "Manually_Annotated_Images/901/empty.jpg").write_bytes(
        (spec["root"] / row["image_path"]).read_bytes()
    )
    result, manifest, rejects = _ingest(spec, tmp_path, workers=2)
    assert rejects["reason"].tolist() == ["bad landmarks: '1.2.3' is not a number"]
    assert rejects["row"].tolist() == [len(lines) + 1]
    df = manifest.to_pandas().set_index("sample_id")
    assert df.loc["affectnet/Manually_Annotated_Images/901/empty.jpg", "landmarks"] is None
    for r in spec["rows"]:
        np.testing.assert_allclose(df.loc[r["sample_id"], "landmarks"], r["landmarks"], atol=1e-3)


def test_missing_lists_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "A").mkdir()
    with pytest.raises(InputError, match="Manually_Annotated_file_lists"):
        affectnet.ingest(tmp_path / "A", tmp_path / "x.parquet")
    (tmp_path / "A" / "Manually_Annotated_file_lists").mkdir()
    with pytest.raises(InputError, match="neither training.csv nor validation.csv"):
        affectnet.ingest(tmp_path / "A", tmp_path / "x.parquet")


def test_bom_and_crlf_line_endings_read_the_same(tmp_path: Path) -> None:
    spec = make_affectnet(tmp_path / "A", n_train=11, n_val=3, seed=4)
    _, plain, _ = _ingest(spec, tmp_path)
    for name in ("training.csv", "validation.csv"):
        p = spec["lists"] / name
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes().replace(b"\n", b"\r\n"))
    result, windows, rejects = _ingest(spec, tmp_path)
    assert len(rejects) == 0 and result.rows == 14
    assert windows.table.equals(plain.table)


def test_first_duplicates_same_answer_for_sorted_and_unsorted_ids() -> None:
    from fercurate.ingest.paths import first_duplicates

    ids = ["a", "b", "b", "c", "c", "c", "d"]
    keep = np.array([True, True, True, False, True, True, True])
    rows, firsts = first_duplicates(ids, keep)  # sorted: adjacent-run path
    assert rows.tolist() == [2, 5] and firsts.tolist() == [1, 4]
    shuffled = ["c", "b", "a", "b", "c", "d", "c"]
    rows, firsts = first_duplicates(shuffled, np.ones(7, dtype=bool))  # hash path
    assert rows.tolist() == [3, 4, 6] and firsts.tolist() == [1, 0, 0]


def test_zero_size_box_is_kept_null_and_flagged_empty_value_rejected(spec: dict, tmp_path: Path) -> None:
    lines = _lines(spec, "training.csv")
    row = spec["rows"][2]
    zero = affectnet_line({**row, "bbox": {**row["bbox"], "w": 0.0}}).split(",")
    lines[row["line"] - 1] = ",".join(zero)
    empty = affectnet_line({**spec["rows"][3], "expression": ""})
    lines[spec["rows"][3]["line"] - 1] = empty
    _write_lines(spec, "training.csv", lines)
    result, manifest, rejects = _ingest(spec, tmp_path)
    df = manifest.to_pandas().set_index("sample_id")
    got = df.loc[row["sample_id"]]
    assert got["bbox"] is None and list(got["flags"]) == ["bad_bbox"]
    assert df["flags"].isna().sum() == len(df) - 1
    assert rejects["reason"].tolist() == ["missing value: column 'expression' is empty"]
    assert rejects["row"].tolist() == [spec["rows"][3]["line"]]
