"""Fault injection against the four ingestors (issue 18, cases 2-8): hostile names, links, bombs, BOMs.

Each test builds a small native layout with the shared fixtures, breaks it the way a scraped or
hand-edited dataset breaks, and checks the ingest finishes with the bad rows in the rejects table
(file, reason) and every good row in the manifest, read back with pandas.
"""

from __future__ import annotations

import os
import struct
import sys
import time
import zlib
from pathlib import Path

import pandas as pd
import pytest
from fixtures_ferplus import default_entries, write_folders, write_raw_csv
from fixtures_layouts import make_affectnet, make_rafdb, make_sfew
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.ingest import affectnet, ferplus, rafdb, sfew
from fercurate.manifest import read_manifest, rejects_path

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="bytes file names and symlinks as on Linux")

BAD_NAME = b"bad\xff.png"


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """An 8-bit grayscale PNG of ``width`` x ``height`` zeros, compressed row by row (a few hundred KB
    on disk, 400 MB once decoded): the decompression bomb of the issue, made without the 400 MB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte 0 + one zero byte per pixel
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _read(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return read_manifest(out).to_pandas(), pd.read_parquet(rejects_path(out))


# --- 2. non-UTF-8 file names --------------------------------------------------------------------


def _bad_name_in(folder: Path) -> None:
    with open(os.path.join(os.fsencode(folder), BAD_NAME), "wb") as fh:
        fh.write(b"not an image")


def _expect_non_utf8_reject(rej: pd.DataFrame, folder: Path) -> None:
    bad = rej[rej["reason"].str.startswith("file name is not valid UTF-8")]
    assert len(bad) == 1, rej["reason"].tolist()
    assert repr(BAD_NAME) in bad.iloc[0]["reason"] and str(folder) in bad.iloc[0]["reason"]


def test_non_utf8_name_rafdb(tmp_path: Path) -> None:
    spec = make_rafdb(tmp_path / "raf", n_train=3, n_test=2, original=False, annotations=False)
    folder = spec["root"] / "Image" / "aligned"
    _bad_name_in(folder)
    out = tmp_path / "rafdb.parquet"
    rafdb.ingest(spec["root"], out)
    df, rej = _read(out)
    assert len(df) == 5
    _expect_non_utf8_reject(rej, folder)


def test_non_utf8_name_sfew_is_a_reject_not_a_crash(tmp_path: Path) -> None:
    spec = make_sfew(tmp_path / "sfew", per_class=1, aligned=None, extras=False)
    folder = spec["root"] / "Train" / "Angry"
    _bad_name_in(folder)
    out = tmp_path / "sfew.parquet"
    result = sfew.ingest(spec["root"], out)
    df, rej = _read(out)
    assert len(df) == len(spec["rows_original"])
    _expect_non_utf8_reject(rej, folder)
    assert "\\xff" in result.summary()


def test_non_utf8_name_ferplus_folders(tmp_path: Path) -> None:
    root = write_folders(tmp_path / "fp")
    _bad_name_in(root / "FER2013Train")
    out = tmp_path / "ferplus.parquet"
    result = ferplus.ingest(root, out, workers=1)
    df, rej = _read(out)
    assert len(df) == result.rows > 0
    _expect_non_utf8_reject(rej, root / "FER2013Train")


def test_non_utf8_name_affectnet(tmp_path: Path) -> None:
    spec = make_affectnet(tmp_path / "an", n_train=4, n_val=2)
    folder = spec["root"] / "Manually_Annotated_Images" / "100"
    _bad_name_in(folder)
    out = tmp_path / "affectnet.parquet"
    affectnet.ingest(spec["root"], out)
    df, rej = _read(out)
    assert len(df) == 6
    _expect_non_utf8_reject(rej, folder)


# --- 3. symlinks leaving the dataset root ------------------------------------------------------


@pytest.mark.parametrize("verify", [False, True])
def test_symlink_outside_the_root_is_rejected(tmp_path: Path, verify: bool) -> None:
    spec = make_rafdb(tmp_path / "raf", n_train=3, n_test=2, original=False, annotations=False)
    outside = tmp_path / "elsewhere.jpg"
    target = spec["root"] / spec["rows"][0]["aligned_path"]
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)
    inside_link = spec["root"] / spec["rows"][1]["aligned_path"]
    kept = spec["root"] / "Image" / "kept.jpg"
    inside_link.rename(kept)
    inside_link.symlink_to(kept)  # a link that stays inside the root is fine
    out = tmp_path / "rafdb.parquet"
    rafdb.ingest(spec["root"], out, verify=verify)
    df, rej = _read(out)
    assert len(df) == 4 and f"rafdb/{spec['rows'][1]['aligned_path']}" in set(df["sample_id"])
    assert rej["reason"].str.startswith("links outside the dataset root").sum() == 1
    assert rej.iloc[0]["image_path"] == spec["rows"][0]["aligned_path"]
    assert rej.iloc[0]["row"] == spec["rows"][0]["line"]

    rafdb.ingest(spec["root"], out, verify=verify, follow_links=True)
    df, rej = _read(out)
    assert len(df) == 5 and len(rej) == 0


def test_symlinked_folder_outside_the_root_is_rejected(tmp_path: Path) -> None:
    spec = make_sfew(tmp_path / "sfew", per_class=1, aligned=None, extras=False)
    real = tmp_path / "other_disk" / "Happy"
    real.parent.mkdir()
    (spec["root"] / "Train" / "Happy").rename(real)
    (spec["root"] / "Train" / "Happy").symlink_to(real, target_is_directory=True)
    out = tmp_path / "sfew.parquet"
    res = CliRunner().invoke(app, ["ingest", "sfew", str(spec["root"]), "-o", str(out)])
    assert res.exit_code == 0, res.output
    df, rej = _read(out)
    assert len(rej) == 1 and rej.iloc[0]["reason"].startswith("links outside the dataset root")
    assert len(df) == len(spec["rows_original"]) - 1


# --- 4. decompression bombs ---------------------------------------------------------------------


@pytest.mark.parametrize("verify", [False, True])
def test_decompression_bomb_is_rejected_from_its_header(tmp_path: Path, verify: bool) -> None:
    spec = make_sfew(tmp_path / "sfew", per_class=1, aligned=None, extras=False)
    bomb = bomb_png()
    assert len(bomb) < 1_000_000
    (spec["root"] / "Train" / "Angry" / "bomb.png").write_bytes(bomb)
    out = tmp_path / "sfew.parquet"
    t0 = time.perf_counter()
    sfew.ingest(spec["root"], out, verify=verify, workers=1)
    elapsed = time.perf_counter() - t0
    df, rej = _read(out)
    assert len(df) == len(spec["rows_original"])
    assert len(rej) == 1 and rej.iloc[0]["image_path"] == "Train/Angry/bomb.png"
    assert rej.iloc[0]["reason"].startswith("image too large")
    assert elapsed < 3.0  # decoding it would allocate 400 MB and take seconds

    # the limit is a setting: raised above 400 MP the bomb's header passes (not decoded without --verify)
    if not verify:
        sfew.ingest(spec["root"], out, workers=1, max_pixels=500_000_000)
        assert len(_read(out)[1]) == 0


def test_max_pixels_option_on_the_cli(tmp_path: Path) -> None:
    spec = make_sfew(tmp_path / "sfew", per_class=1, aligned=None, extras=False)
    out = tmp_path / "sfew.parquet"
    res = CliRunner().invoke(app, ["ingest", "sfew", str(spec["root"]), "-o", str(out), "--max-pixels", "1000"])
    assert res.exit_code == 1 and "no usable rows" in res.output and "image too large" in res.output


# --- 5. reserved names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", "."])
def test_ferplus_csv_reserved_image_name_is_a_reject(tmp_path: Path, name: str) -> None:
    entries = default_entries()
    raw = tmp_path / "raw"
    write_raw_csv(raw, entries)
    plus = raw / "fer2013new.csv"
    lines = plus.read_text().splitlines()
    first = lines[1].split(",")
    first[1] = name
    lines[1] = ",".join(first)
    plus.write_text("\n".join(lines) + "\n")
    out = tmp_path / "ferplus.parquet"
    result = ferplus.ingest(raw, out, layout="csv", images_out=tmp_path / "img", workers=1)
    df, rej = _read(out)
    assert result.rows == len(df) > 0
    hit = rej[rej["row"] == 2]
    assert len(hit) == 1 and "reserved name" in hit.iloc[0]["reason"]


# --- 6. byte-order marks and CRLF ---------------------------------------------------------------


def _bom_crlf(path: Path) -> None:
    data = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + data)


def test_bom_rafdb_list(tmp_path: Path) -> None:
    spec = make_rafdb(tmp_path / "raf", n_train=3, n_test=2, original=True, annotations=True)
    _bom_crlf(spec["list"])
    for p in (spec["root"] / "Annotation" / "manual").iterdir():
        _bom_crlf(p)
    out = tmp_path / "rafdb.parquet"
    rafdb.ingest(spec["root"], out, images="original")
    df, rej = _read(out)
    assert len(df) == 5 and len(rej) == 0
    assert df["landmarks"].notna().all()


def test_bom_ferplus_folders_label_csv(tmp_path: Path) -> None:
    root = write_folders(tmp_path / "fp")
    n_rows = ferplus.ingest(root, tmp_path / "plain.parquet", workers=1).rows
    for folder in ("FER2013Train", "FER2013Valid", "FER2013Test"):
        if (root / folder / "label.csv").exists():
            _bom_crlf(root / folder / "label.csv")
    out = tmp_path / "ferplus.parquet"
    result = ferplus.ingest(root, out, workers=1)
    assert result.rows == n_rows
    assert _read(out)[0]["sample_id"].tolist() == read_manifest(tmp_path / "plain.parquet").to_pandas()["sample_id"].tolist()


def test_bom_ferplus_csv_layout(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    fer, plus = write_raw_csv(raw)
    n_rows = ferplus.ingest(raw, tmp_path / "plain.parquet", layout="csv", images_out=tmp_path / "img0", workers=1).rows
    _bom_crlf(fer)
    _bom_crlf(plus)
    out = tmp_path / "ferplus.parquet"
    result = ferplus.ingest(raw, out, layout="csv", images_out=tmp_path / "img", workers=1)
    assert result.rows == n_rows
    plain = read_manifest(tmp_path / "plain.parquet").to_pandas()
    assert _read(out)[0]["sha256"].tolist() == plain["sha256"].tolist()


# --- 7. fer2013.csv is CSV ---------------------------------------------------------------------


def test_fer2013_csv_quoted_fields(tmp_path: Path) -> None:
    """Quoted fields, a comma inside quotes (an extra column), as a CSV writer produces them."""
    import csv

    raw = tmp_path / "raw"
    fer, _ = write_raw_csv(raw)
    n_rows = ferplus.ingest(raw, tmp_path / "plain.parquet", layout="csv", images_out=tmp_path / "img0", workers=1).rows
    rows = list(csv.reader(fer.read_text().splitlines()))
    with open(fer, "w", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL)
        w.writerow(rows[0] + ["comment"])
        for r in rows[1:]:
            w.writerow(r + ["scraped, then checked"])
    out = tmp_path / "ferplus.parquet"
    result = ferplus.ingest(raw, out, layout="csv", images_out=tmp_path / "img", workers=1)
    assert result.rows == n_rows and result.rejected == ferplus.ingest(
        raw, tmp_path / "again.parquet", layout="csv", images_out=tmp_path / "img", workers=1).rejected
    plain = read_manifest(tmp_path / "plain.parquet").to_pandas()
    assert _read(out)[0]["sha256"].tolist() == plain["sha256"].tolist()


# --- 8. folders named like images ----------------------------------------------------------------


def test_sfew_folder_named_like_an_image_is_a_reject(tmp_path: Path) -> None:
    spec = make_sfew(tmp_path / "sfew", per_class=1, aligned=None, extras=False)
    (spec["root"] / "Train" / "x.png").mkdir()
    out = tmp_path / "sfew.parquet"
    sfew.ingest(spec["root"], out)
    df, rej = _read(out)
    assert len(df) == len(spec["rows_original"])
    assert len(rej) == 1 and rej.iloc[0]["reason"].startswith("not an image file") and "x.png" in rej.iloc[0]["reason"]


def test_rafdb_folder_named_like_a_listed_image_is_a_reject(tmp_path: Path) -> None:
    spec = make_rafdb(tmp_path / "raf", n_train=3, n_test=2, original=False, annotations=False)
    target = spec["root"] / spec["rows"][0]["aligned_path"]
    target.unlink()
    target.mkdir()
    out = tmp_path / "rafdb.parquet"
    rafdb.ingest(spec["root"], out)  # without --verify: the folder must not reach the manifest
    df, rej = _read(out)
    assert len(df) == 4 and len(rej) == 1 and "is a folder" in rej.iloc[0]["reason"]


def test_bom_ran_list(tmp_path: Path, workspace: Path) -> None:
    from fercurate.subsets.official import import_ran_lists

    manifest = workspace / "manifests" / "ferplus.parquet"
    ferplus.ingest(write_folders(tmp_path / "ferplus"), manifest, workers=1)
    occ = tmp_path / "lists" / "FERplus_dir" / "jianfei_occlusion_list.txt"
    occ.parent.mkdir(parents=True)
    occ.write_bytes(b"\xef\xbb\xbf4_fer0000009.png 8 0\r\n5_fer0000005.png 8 1\r\n")
    result = import_ran_lists(tmp_path / "lists", manifest)
    stats = {s.name: s for s in result.lists}
    assert (stats["occlusion"].matched, stats["occlusion"].unmatched) == (2, 0)
