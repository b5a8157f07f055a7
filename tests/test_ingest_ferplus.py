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
    targets, valid = ferplus.vote_targets(votes, "majority")
    assert valid.tolist() == [True, True, False, False, True]
    assert targets.shape == (5, 8) and targets.dtype == np.float32
    assert targets[0].argmax() == LABEL_TO_ID["neutral"] and targets[0].sum() == 1
    assert targets[1].argmax() == LABEL_TO_ID["neutral"]
    assert targets[4].argmax() == LABEL_TO_ID["sad"]
    assert not targets[2].any() and not targets[3].any()
    label_id, _, tie = ferplus.majority_labels(votes)
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
    t, valid = ferplus.vote_targets(votes, "probability")
    assert valid.tolist() == [True, True, False, True, False, False, False]
    np.testing.assert_allclose(t[0, [LABEL_TO_ID["neutral"], LABEL_TO_ID["anger"]]], [4 / 7, 3 / 7], rtol=1e-6)
    np.testing.assert_allclose(t[1, [LABEL_TO_ID["happy"], LABEL_TO_ID["surprise"]]], [5 / 8, 3 / 8], rtol=1e-6)
    np.testing.assert_allclose(
        t[3, [LABEL_TO_ID["neutral"], LABEL_TO_ID["happy"], LABEL_TO_ID["sad"]]], [3 / 8, 3 / 8, 2 / 8], rtol=1e-6)
    np.testing.assert_allclose(t[valid].sum(axis=1), 1.0, rtol=1e-6)
    assert not t[~valid].any()
    with pytest.raises(ValueError, match="unknown vote target mode"):
        ferplus.vote_targets(votes, "soft")


# --- the real data (../shared/data/ferplus) --------------------------------------------------------


def test_real_ferplus_folders(ferplus_root: Path, workspace: Path) -> None:
    out = workspace / "manifests" / "ferplus.parquet"
    result = ferplus.ingest(ferplus_root, out)
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
