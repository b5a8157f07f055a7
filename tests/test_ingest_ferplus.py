"""FERPlus ingest: both native layouts on generated fixtures (row by row), bad input, the real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fixtures_ferplus import (
    default_entries,
    png_bytes,
    read_png,
    votes_of,
    with_duplicate,
    write_folders,
    write_raw_csv,
)
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.errors import InputError, RejectsError
from fercurate.ingest import ferplus
from fercurate.manifest import read_manifest, rejects_path
from fercurate.schema import CANONICAL_LABELS, LABEL_TO_ID
from fercurate.votes import majority_labels, vote_targets, votes_array


def _rows(manifest_path: Path) -> pd.DataFrame:
    return read_manifest(manifest_path).to_pandas().set_index("sample_id")


def _rejects(manifest_path: Path) -> pd.DataFrame:
    return pq.read_table(rejects_path(manifest_path)).to_pandas()


# --- expected labels of default_entries(), written out by hand ---------------------------------
EXPECTED = {
    # sample_id: (label, flags)
    "ferplus/FER2013Train/fer0000000.png": ("neutral", []),
    "ferplus/FER2013Train/fer0000001.png": ("happy", []),
    "ferplus/FER2013Train/fer0000002.png": ("neutral", ["tie"]),
    "ferplus/FER2013Train/fer0000003.png": ("sad", ["votes_sum:9"]),
    "ferplus/FER2013Train/fer0000004.png": (None, ["unknown_majority"]),
    "ferplus/FER2013Train/fer0000005.png": ("disgust", []),
    "ferplus/FER2013Valid/fer0000006.png": ("surprise", []),
    "ferplus/FER2013Valid/fer0000007.png": ("sad", []),
    "ferplus/FER2013Valid/fer0000008.png": ("contempt", []),
    "ferplus/FER2013Test/fer0000009.png": ("anger", []),
    "ferplus/FER2013Test/fer0000010.png": (None, ["nf_majority"]),
    "ferplus/FER2013Test/fer0000011.png": ("fear", []),
}


def _check_rows(df: pd.DataFrame, entries) -> None:
    named = {e.sample_id: e for e in entries if e.name}
    assert sorted(df.index) == sorted(EXPECTED) == sorted(named)
    for sid, (label, flags) in EXPECTED.items():
        row, e = df.loc[sid], named[sid]
        assert (row["label"] if isinstance(row["label"], str) else None) == label, sid
        assert row["label_id"] == (LABEL_TO_ID[label] if label else -1), sid
        assert list(row["label_votes"]) == list(e.votes), sid
        assert row["source_label"] == e.votes_text, sid
        assert row["split"] == e.split and row["image_path"] == e.image_path, sid
        assert row["dataset"] == "ferplus"
        got_flags = [] if row["flags"] is None else list(row["flags"])
        assert got_flags == flags, sid


# --- layout (a) ----------------------------------------------------------------------------------


def test_folders_layout_row_by_row(tmp_path: Path, workspace: Path) -> None:
    entries = default_entries()
    root = write_folders(tmp_path / "ferplus", entries)
    out = workspace / "manifests" / "ferplus.parquet"
    result = ferplus.ingest(root, out)
    assert result.rows == 12 and result.rejected == 0
    assert result.split_counts == {"train": 6, "val": 3, "test": 3}
    df = _rows(out)
    _check_rows(df, entries)
    row = df.loc["ferplus/FER2013Test/fer0000009.png"]
    assert row["source_split"] == "FER2013Test"
    assert row["bbox"] == {"x": 0.0, "y": 0.0, "w": 48.0, "h": 48.0}
    m = read_manifest(out)
    # votes_array + vote_targets("majority") reproduce the manifest's labels, row for row.
    votes = votes_array(m.table)
    assert votes.shape == (12, 10) and votes.tolist() == [list(v) for v in df["label_votes"]]
    targets, valid = vote_targets(votes, "majority")
    label_id = m.table.column("label_id").to_numpy()
    assert (valid == (label_id >= 0)).all() and (targets[valid].argmax(axis=1) == label_id[valid]).all()
    assert m.root == root.resolve() and m.meta.source["layout"] == "folders"
    assert all(p.exists() for p in m.image_paths())


def test_folders_layout_is_deterministic_and_verifies(tmp_path: Path, workspace: Path) -> None:
    root = write_folders(tmp_path / "ferplus")
    a, b = tmp_path / "1" / "ferplus.parquet", tmp_path / "2" / "ferplus.parquet"
    ferplus.ingest(root, a, workers=1)
    ferplus.ingest(root, b, workers=1)
    assert a.read_bytes() == b.read_bytes()
    v = tmp_path / "v.parquet"
    ferplus.ingest(root, v, verify=True, workers=1)
    df = _rows(v)
    assert (df["width"] == 48).all() and (df["height"] == 48).all()
    import hashlib

    sid = "ferplus/FER2013Valid/fer0000007.png"
    assert df.loc[sid, "sha256"] == hashlib.sha256((root / df.loc[sid, "image_path"]).read_bytes()).hexdigest()


def test_label_csv_without_face_box(tmp_path: Path, workspace: Path) -> None:
    """Newer generate_training_data.py writes 11 columns (no box): accepted, bbox left null."""
    entries = default_entries()
    root = write_folders(tmp_path / "ferplus", entries, with_box=False)
    out = tmp_path / "m.parquet"
    ferplus.ingest(root, out)
    df = _rows(out)
    _check_rows(df, entries)
    assert df["bbox"].isna().all()


def test_label_csv_with_wrong_column_count_is_a_clear_error(tmp_path: Path, workspace: Path) -> None:
    root = write_folders(tmp_path / "ferplus")
    label = root / "FER2013Valid" / "label.csv"
    label.write_text("fer0000006.png,1,2,3,4,5,6,7\n")
    with pytest.raises(InputError, match=r"FER2013Valid/label\.csv:1: expected 12 columns .* found 8"):
        ferplus.ingest(root, tmp_path / "m.parquet")


def test_bad_rows_become_rejects_naming_file_and_line(tmp_path: Path, workspace: Path) -> None:
    root = write_folders(tmp_path / "ferplus")
    train = root / "FER2013Train" / "label.csv"
    lines = train.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b",9,1,", b",-1,1,")  # negative vote (happiness=9 -> -1)
    lines[2] = lines[2].replace(b",4,4,", b",4,2.5,")  # non-integer vote
    lines[3] = b"fer0000003.png,\"(0, 0, 48, 48)\",0,0,0,5,3,\xff\xfe,0,0,0,0"  # non-UTF-8
    train.write_bytes(b"\n".join(lines))
    test = root / "FER2013Test" / "label.csv"
    text = test.read_text()
    test.write_text(text.rstrip("\n")[:-9])  # truncated last line: cut mid-row
    (root / "FER2013Valid" / "fer0000007.png").unlink()  # listed image missing
    out = tmp_path / "m.parquet"
    result = ferplus.ingest(root, out)
    rej = _rejects(out)
    by_line = {(r.source_file, r.row): r.reason for r in rej.itertuples()}
    assert by_line[("FER2013Train/label.csv", 2)] == "negative vote count '-1' for happiness"
    assert by_line[("FER2013Train/label.csv", 3)] == "vote count '2.5' for happiness is not a whole number"
    assert by_line[("FER2013Train/label.csv", 4)].startswith("not valid UTF-8")
    assert "truncated or malformed row" in by_line[("FER2013Test/label.csv", 3)]
    assert by_line[("FER2013Valid/label.csv", 2)].startswith("image file missing")
    assert result.rejected == len(rej) == 5
    assert result.rows == 12 - 5
    assert "ferplus/FER2013Valid/fer0000007.png" not in _rows(out).index
    # --strict: the same input fails (exit 3 in the CLI), naming the first bad file and line.
    with pytest.raises(RejectsError, match=r"5 rows rejected \(--strict\); first: FER2013Train/label.csv:2"):
        ferplus.ingest(root, tmp_path / "s.parquet", strict=True)
    res = CliRunner().invoke(app, ["ingest", "ferplus", str(root), "-o", str(tmp_path / "c.parquet"), "--strict"])
    assert res.exit_code == 3
    assert "error: 5 rows rejected (--strict)" in res.output


def test_duplicate_name_in_label_csv_and_unlisted_png(tmp_path: Path, workspace: Path) -> None:
    root = write_folders(tmp_path / "ferplus")
    label = root / "FER2013Valid" / "label.csv"
    label.write_text(label.read_text() + 'fer0000006.png,"(0, 0, 48, 48)",0,0,10,0,0,0,0,0,0,0\n')
    (root / "FER2013Test" / "fer0099999.png").write_bytes(png_bytes(np.zeros((48, 48), np.uint8)))
    out = tmp_path / "m.parquet"
    result = ferplus.ingest(root, out)
    rej = _rejects(out)
    assert list(rej["row"]) == [4]
    assert rej["reason"][0] == "duplicate path: FER2013Valid/fer0000006.png already listed at row 1"
    assert any("1 PNGs have no label.csv row" in n and "FER2013Test/fer0099999.png" in n for n in result.notes)


def test_corrupt_image_is_rejected_with_verify(tmp_path: Path, workspace: Path) -> None:
    root = write_folders(tmp_path / "ferplus")
    png = root / "FER2013Test" / "fer0000011.png"
    png.write_bytes(png.read_bytes()[:1000])  # truncated PNG
    out = tmp_path / "m.parquet"
    ferplus.ingest(root, out, workers=1)  # without --verify the file is only checked to exist
    assert len(_rows(out)) == 12
    result = ferplus.ingest(root, out, verify=True, workers=1)
    rej = _rejects(out)
    assert result.rows == 11 and list(rej["image_path"]) == ["FER2013Test/fer0000011.png"]
    assert rej["reason"][0].startswith("corrupt image") and rej["row"][0] == 3


def test_not_a_ferplus_folder(tmp_path: Path, workspace: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a FERPlus folder"):
        ferplus.ingest(tmp_path / "empty", tmp_path / "m.parquet")
    with pytest.raises(InputError, match="not found"):
        ferplus.ingest(tmp_path / "nope", tmp_path / "m.parquet")


# --- layout (b): fer2013.csv + fer2013new.csv -------------------------------------------------------


def test_csv_layout_matches_folder_layout(tmp_path: Path, workspace: Path) -> None:
    entries = default_entries()
    folders = write_folders(tmp_path / "folders", entries)
    write_raw_csv(tmp_path / "raw", entries)
    images = tmp_path / "images"
    out_b = tmp_path / "b" / "ferplus.parquet"
    result = ferplus.ingest(tmp_path / "raw", out_b, layout="auto", images_out=images, workers=2)
    assert result.rows == 12 and result.split_counts == {"train": 6, "val": 3, "test": 3}
    df_b = _rows(out_b)
    _check_rows(df_b, entries)
    # The PNGs are the generator's: same names and folders, byte-identical files.
    for e in entries:
        if e.name:
            written = images / e.image_path
            assert written.read_bytes() == (folders / e.image_path).read_bytes() == png_bytes(e.pixels)
            np.testing.assert_array_equal(read_png(written), e.pixels)
    m = read_manifest(out_b)
    assert m.root == images.resolve() and m.meta.source["layout"] == "csv"
    assert df_b.loc["ferplus/FER2013Train/fer0000000.png", "source_split"] == "Training"
    assert (df_b["width"] == 48).all() and df_b["sha256"].notna().all()
    # The same sample_ids and labels as layout (a).
    out_a = tmp_path / "a" / "ferplus.parquet"
    ferplus.ingest(folders, out_a)
    df_a = _rows(out_a)
    assert list(df_a.index) == list(df_b.index)
    for col in ("split", "image_path", "label", "label_id", "source_label"):
        assert df_a[col].astype(object).equals(df_b[col].astype(object)), col
    # The row FER+ dropped (no image name) is excluded and reported.
    rej = _rejects(out_b)
    assert rej[["source_file", "row", "reason"]].values.tolist() == [
        ["fer2013new.csv", 5, "dropped by FER+ (no image name)"]]
    assert any("1 rows dropped by FER+" in n for n in result.notes)
    # Re-running gives the same manifest, byte for byte.
    before = out_b.read_bytes()
    ferplus.ingest(tmp_path / "raw", out_b, layout="csv", images_out=images, workers=1)
    assert out_b.read_bytes() == before


def test_csv_layout_duplicate_name_later_row_wins(tmp_path: Path, workspace: Path) -> None:
    entries = with_duplicate(default_entries(), "fer0000009.png")
    write_raw_csv(tmp_path / "raw", entries)
    images = tmp_path / "images"
    out = tmp_path / "m.parquet"
    result = ferplus.ingest(tmp_path / "raw", out, layout="csv", images_out=images, workers=1)
    later = entries[-1]
    np.testing.assert_array_equal(read_png(images / "FER2013Test" / "fer0000009.png"), later.pixels)
    row = _rows(out).loc["ferplus/FER2013Test/fer0000009.png"]
    assert list(row["label_votes"]) == list(later.votes) and row["label_id"] == -1
    assert list(row["flags"]) == ["nf_majority", "duplicate_name:fer2013new"]
    rej = _rejects(out)
    dup = rej[rej["reason"].str.startswith("duplicate image name")]
    assert dup[["source_file", "row"]].values.tolist() == [["fer2013new.csv", 12]]
    assert dup["reason"].iloc[0] == ("duplicate image name: fer2013new.csv lines 12 and 15 both name fer0000009.png; "
                                     "the later row (line 15) wins, as in generate_training_data.py")
    assert result.rows == 12


def test_csv_layout_bad_rows(tmp_path: Path, workspace: Path) -> None:
    entries = default_entries()
    fer, plus = write_raw_csv(tmp_path / "raw", entries)
    lines = fer.read_bytes().split(b"\n")
    # line numbers: header is line 1, entry i is line i + 2
    lines[2] = lines[2].replace(b",", b",300 ", 1)  # out-of-range value (and one value too many)
    lines[3] = lines[3].replace(b" ", b" 12.5 ", 1)
    lines[5] = lines[5].replace(b" ", b" \xff ", 1)  # non-UTF-8 bytes in the pixels field
    lines[6] = lines[6].replace(b",Training", b",Train")  # unknown Usage
    lines[7] = b"9" + lines[7][1:]  # unknown emotion code
    lines[9] = lines[9].replace(b",PublicTest", b",PrivateTest")  # Usage disagrees with fer2013new.csv
    lines[13] = lines[13][: len(lines[13]) // 2]  # truncated file: the last row is cut mid-pixels
    fer.write_bytes(b"\n".join(lines[:14]))
    out = tmp_path / "m.parquet"
    result = ferplus.ingest(tmp_path / "raw", out, layout="csv", images_out=tmp_path / "img", workers=1)
    rej = _rejects(out)
    reasons = {(r.source_file, r.row): r.reason for r in rej.itertuples()}
    assert reasons[("fer2013.csv", 3)] == "pixels field has 2,305 values, expected 2,304 (48x48)"
    assert reasons[("fer2013.csv", 4)] == "pixel value '12.5' is not an integer"
    assert reasons[("fer2013new.csv", 5)] == "dropped by FER+ (no image name)"
    assert reasons[("fer2013.csv", 6)].startswith("pixels field is not valid UTF-8")
    assert reasons[("fer2013.csv", 7)] == "unknown Usage 'Train' (expected Training, PublicTest, PrivateTest)"
    assert reasons[("fer2013.csv", 8)] == "unknown FER2013 emotion code '9' (expected 0..6)"
    assert "the files do not line up" in reasons[("fer2013.csv", 10)]
    assert reasons[("fer2013.csv", 14)].endswith("found 2 (truncated or malformed row)")
    assert len(rej) == 8 and result.rows == 12 - 7
    assert not (tmp_path / "img" / "FER2013Train" / "fer0000001.png").exists()  # nothing written for a bad row
    assert (tmp_path / "img" / "FER2013Train" / "fer0000000.png").exists()


def test_csv_layout_file_lengths_differ(tmp_path: Path, workspace: Path) -> None:
    entries = default_entries()
    fer, plus = write_raw_csv(tmp_path / "raw", entries)
    # fer2013.csv shorter than fer2013new.csv: a note, not rejects.
    fer_lines = fer.read_text().splitlines(keepends=True)
    fer.write_text("".join(fer_lines[:6]))  # header + 5 rows (one of them the dropped row)
    out = tmp_path / "m.parquet"
    result = ferplus.ingest(tmp_path / "raw", out, layout="csv", images_out=tmp_path / "img", workers=1)
    assert result.rows == 4 and result.rejected == 1  # only the dropped row
    note = next(n for n in result.notes if "have no pixels here" in n)
    assert "fer2013.csv has 5 data rows, fer2013new.csv 13: fer2013new.csv lines 7-14 (8 named images)" in note
    assert read_manifest(out).meta.source["ferplus_rows_without_pixels"] == {"rows": 8, "named": 8, "lines": [7, 14]}
    # fer2013.csv longer than fer2013new.csv: its extra rows cannot be labelled -> rejects.
    fer.write_text("".join(fer_lines))
    plus_lines = plus.read_text().splitlines(keepends=True)
    plus.write_text("".join(plus_lines[:-2]))
    ferplus.ingest(tmp_path / "raw", out, layout="csv", images_out=tmp_path / "img", workers=1)
    rej = _rejects(out)
    extra = rej[rej["reason"].str.startswith("no fer2013new.csv row")]
    assert extra[["source_file", "row"]].values.tolist() == [["fer2013.csv", 13], ["fer2013.csv", 14]]


def test_csv_layout_header_errors(tmp_path: Path, workspace: Path) -> None:
    fer, plus = write_raw_csv(tmp_path / "raw")
    plus.write_text("Usage,Image name,neutral,happiness\nTraining,fer0000000.png,5,5\n")
    with pytest.raises(InputError, match=r"fer2013new\.csv:1: missing column\(s\) \['surprise'"):
        ferplus.ingest(tmp_path / "raw", tmp_path / "m.parquet", layout="csv", images_out=tmp_path / "img")
    write_raw_csv(tmp_path / "raw")
    fer.write_text("emotion,Usage\n0,Training\n")
    with pytest.raises(InputError, match=r"fer2013\.csv:1: missing column\(s\) \['pixels'\]"):
        ferplus.ingest(tmp_path / "raw", tmp_path / "m.parquet", layout="csv", images_out=tmp_path / "img")


def test_cli_csv_layout(tmp_path: Path, workspace: Path) -> None:
    write_raw_csv(tmp_path / "raw")
    res = CliRunner().invoke(app, ["ingest", "ferplus", str(tmp_path / "raw"), "--layout", "csv", "-j", "1"])
    assert res.exit_code == 0, res.output
    assert "ferplus: 12 rows (test 3, train 6, val 3)" in res.output
    assert (workspace / "data" / "ferplus" / "FER2013Valid" / "fer0000006.png").exists()
    assert read_manifest(workspace / "manifests" / "ferplus.parquet").root == (workspace / "data" / "ferplus")


# --- label.csv and fer2013new.csv side by side -------------------------------------------------


def test_folders_with_fer2013new_reports_conflicts_and_duplicates(tmp_path: Path, workspace: Path) -> None:
    entries = default_entries()
    root = write_folders(tmp_path / "ferplus", entries)
    # fer2013new.csv: one vote changed (a conflict), and fer0000009 named again later with NF votes.
    changed = [e if e.name != "fer0000001.png" else e.__class__(e.name, e.usage, votes_of(happiness=10), e.pixels)
               for e in entries]
    write_raw_csv(tmp_path / "raw", with_duplicate(changed, "fer0000009.png"))
    (root / "fer2013new.csv").write_bytes((tmp_path / "raw" / "fer2013new.csv").read_bytes())
    out = tmp_path / "m.parquet"
    result = ferplus.ingest(root, out)
    df = _rows(out)
    assert list(df.loc["ferplus/FER2013Train/fer0000001.png", "flags"]) == ["votes_conflict:fer2013new"]
    assert list(df.loc["ferplus/FER2013Test/fer0000009.png", "flags"]) == [
        "duplicate_name:fer2013new", "votes_from_earlier_row:fer2013new"]
    assert df.loc["ferplus/FER2013Train/fer0000001.png", "label"] == "happy"  # label.csv wins
    assert list(df.loc["ferplus/FER2013Train/fer0000001.png", "label_votes"]) == list(votes_of(happiness=9, surprise=1))
    assert any("disagrees on the votes of 1 images" in n for n in result.notes)
    assert any("fer0000009.png (lines 12, 15)" in n for n in result.notes)
    src = read_manifest(out).meta.source["fer2013new"]
    assert src["votes_conflicts"] == 1 and src["duplicate_names"] == {"fer0000009.png": [12, 15]}


# --- vote targets -------------------------------------------------------------------------------


def test_vote_targets_majority_matches_manifest_labels() -> None:
    votes = np.array([
        votes_of(neutral=6, happiness=2, unknown=2),
        votes_of(neutral=4, happiness=4, sadness=2),  # tie -> first in FER+ order (neutral)
        votes_of(unknown=6, neutral=4),
        votes_of(NF=10),
        votes_of(sadness=5, anger=5),  # tie -> sadness
    ])
    targets, valid = vote_targets(votes, "majority")
    assert valid.tolist() == [True, True, False, False, True]
    assert targets.shape == (5, 8) and targets.dtype == np.float32
    assert targets[0].argmax() == LABEL_TO_ID["neutral"] and targets[0].sum() == 1
    assert targets[1].argmax() == LABEL_TO_ID["neutral"]
    assert targets[4].argmax() == LABEL_TO_ID["sad"]
    assert not targets[2].any() and not targets[3].any()
    label_id, _, tie = majority_labels(votes)
    assert label_id.tolist() == [0, 0, -1, -1, 2] and tie.tolist() == [False, True, False, False, True]


def test_vote_targets_probability_follows_fer_plus() -> None:
    votes = np.array([
        [4, 0, 0, 1, 3, 2, 0, 0, 0, 0],  # the 1 is an outlier; 4+3 reach 75% of 9 -> neutral 4/7, anger 3/7
        votes_of(happiness=5, surprise=3, neutral=2),  # 5+3 = 8 >= 7.5 -> happy 5/8, surprise 3/8
        votes_of(unknown=6, neutral=4),  # unknown wins -> excluded
        votes_of(neutral=3, happiness=3, sadness=2, unknown=2),  # 3 emotions, unknown dropped -> 3/8, 3/8, 2/8
        votes_of(neutral=3, happiness=3, sadness=2, anger=2),  # 4 emotions share the votes -> excluded
        votes_of(neutral=2, happiness=2, sadness=2, anger=2, fear=2),  # too spread: > 3 emotions -> excluded
        votes_of(neutral=4, unknown=4, happiness=2),  # neutral then unknown (dropped): 4/10 <= 50% -> excluded
    ])
    t, valid = vote_targets(votes, "probability")
    assert valid.tolist() == [True, True, False, True, False, False, False]
    np.testing.assert_allclose(t[0, [LABEL_TO_ID["neutral"], LABEL_TO_ID["anger"]]], [4 / 7, 3 / 7], rtol=1e-6)
    np.testing.assert_allclose(t[1, [LABEL_TO_ID["happy"], LABEL_TO_ID["surprise"]]], [5 / 8, 3 / 8], rtol=1e-6)
    np.testing.assert_allclose(
        t[3, [LABEL_TO_ID["neutral"], LABEL_TO_ID["happy"], LABEL_TO_ID["sad"]]], [3 / 8, 3 / 8, 2 / 8], rtol=1e-6)
    np.testing.assert_allclose(t[valid].sum(axis=1), 1.0, rtol=1e-6)
    assert not t[~valid].any()
    with pytest.raises(ValueError, match="unknown vote target mode"):
        vote_targets(votes, "soft")


# --- the real data (../shared/data/ferplus) --------------------------------------------------------


@pytest.fixture(scope="module")
def real_folders_manifest(ferplus_root: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("real") / "ferplus.parquet"
    return out, ferplus.ingest(ferplus_root, out)


def test_real_ferplus_folders(real_folders_manifest) -> None:
    out, result = real_folders_manifest
    assert result.rows == 35_710 and result.rejected == 0
    assert result.split_counts == {"train": 28_558, "val": 3_579, "test": 3_573}
    m = read_manifest(out)
    src = m.meta.source["fer2013new"]
    assert src["votes_conflicts"] == 1_601
    assert sorted(src["duplicate_names"]) == ["fer0006953.png", "fer0008403.png", "fer0011785.png", "fer0033120.png"]
    df = m.to_pandas().set_index("sample_id")
    flags = df["flags"].dropna().map(list)
    assert sum("votes_conflict:fer2013new" in f for f in flags) == 1_601
    icon = df.loc["ferplus/FER2013Test/fer0033120.png"]
    assert list(icon["flags"]) == ["duplicate_name:fer2013new", "votes_from_earlier_row:fer2013new"]
    assert icon["label"] == "neutral" and list(icon["label_votes"]) == [5, 0, 0, 1, 1, 0, 0, 0, 3, 0]
    assert sum("votes_sum:9" in f for f in flags) == 1
    assert (df["label_id"] == -1).sum() == 225  # 222 unknown + 3 NF majorities
    assert set(df["label"].dropna().unique()) == set(CANONICAL_LABELS)
    assert any("disagrees on the votes of 1,601 images" in n for n in result.notes)


def test_real_ferplus_csv_pair_matches_folders(
    ferplus_root: Path, real_folders_manifest, tmp_path: Path, workspace: Path
) -> None:
    """fer2013_sample.csv (300 rows) + fer2013new.csv -> PNGs identical to the shipped folder layout."""
    images = tmp_path / "images"
    out = tmp_path / "b" / "ferplus.parquet"
    result = ferplus.ingest(ferplus_root, out, layout="csv", images_out=images, workers=2)
    assert result.rows == 296 and result.rejected == 4
    assert set(_rejects(out)["reason"]) == {"dropped by FER+ (no image name)"}
    assert any("35,418 named images) have no pixels here" in n for n in result.notes)
    df = _rows(out)
    for sid, path in zip(df.index, df["image_path"]):
        mine, shipped = images / path, ferplus_root / path
        np.testing.assert_array_equal(read_png(mine), read_png(shipped), err_msg=sid)
        assert mine.read_bytes() == shipped.read_bytes(), sid
    # Same sample_ids as layout (a); same labels unless fer2013new.csv disagrees with label.csv.
    df_a = _rows(real_folders_manifest[0]).loc[df.index]
    same_votes = df_a["label_votes"].map(list) == df["label_votes"].map(list)
    conflict = df_a["flags"].map(lambda f: f is not None and "votes_conflict:fer2013new" in f)
    assert (same_votes | conflict).all() and (~same_votes).sum() == conflict.sum()
