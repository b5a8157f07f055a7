"""Manifest I/O: schema, determinism, atomicity, metadata and clear errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fercurate import atomic
from fercurate.errors import InputError
from fercurate.manifest import build_table, read_manifest, write_manifest
from fercurate.schema import MANIFEST_COLUMNS, MANIFEST_SCHEMA, SCHEMA_VERSION


def _table() -> pa.Table:
    return build_table(
        {
            "sample_id": ["ds/b.png", "ds/a.png", "ds/c.png"],
            "dataset": ["ferplus"] * 3,
            "split": ["train", "test", "val"],
            "image_path": ["b.png", "a.png", "c.png"],
            "label": ["happy", None, "sad"],
            "label_id": [1, -1, 2],
            "label_votes": [[0, 9, 1, 0, 0, 0, 0, 0, 0, 0], None, [0, 0, 0, 10, 0, 0, 0, 0, 0, 0]],
            "bbox": [{"x": 0, "y": 0, "w": 48, "h": 48}, None, None],
            "flags": [[], ["unknown_majority"], []],
        }
    )


def test_build_table_sorts_and_fills_schema() -> None:
    t = _table()
    assert t.schema == MANIFEST_SCHEMA
    assert t.column("sample_id").to_pylist() == ["ds/a.png", "ds/b.png", "ds/c.png"]
    assert t.column("valence").null_count == 3
    assert t.column("label").to_pylist() == [None, "happy", "sad"]


def test_write_read_roundtrip_with_plain_pandas(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    path = write_manifest(_table(), tmp_path / "manifests" / "x.parquet", dataset="ferplus", root=root,
                          source={"layout": "folders"})
    m = read_manifest(path)
    assert m.name == "x" and m.dataset == "ferplus" and m.root == root.resolve()
    assert m.meta.schema_version == SCHEMA_VERSION and m.meta.source["layout"] == "folders"
    df = pd.read_parquet(path)  # plain pandas, no fercurate
    assert list(df.columns) == list(MANIFEST_COLUMNS)
    assert df.loc[df.sample_id == "ds/b.png", "label"].item() == "happy"
    assert list(df.loc[df.sample_id == "ds/b.png", "label_votes"].item()) == [0, 9, 1, 0, 0, 0, 0, 0, 0, 0]
    assert m.image_paths()[0] == root.resolve() / "a.png"


def test_write_is_deterministic(tmp_path: Path) -> None:
    a = write_manifest(_table(), tmp_path / "a" / "m.parquet", dataset="ferplus", root=tmp_path)
    b = write_manifest(_table(), tmp_path / "b" / "m.parquet", dataset="ferplus", root=tmp_path)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


def test_root_moves_with_data(tmp_path: Path) -> None:
    base = tmp_path / "orig"
    (base / "data").mkdir(parents=True)
    write_manifest(_table(), base / "manifests" / "m.parquet", dataset="ferplus", root=base / "data")
    moved = tmp_path / "moved"
    os.rename(base, moved)
    m = read_manifest(moved / "manifests" / "m.parquet")
    assert m.root == (moved / "data").resolve()
    override = read_manifest(moved / "manifests" / "m.parquet", root=tmp_path)
    assert override.root == tmp_path.resolve()


def test_duplicate_sample_ids_refused(tmp_path: Path) -> None:
    t = build_table({"sample_id": ["a", "a"], "dataset": ["x", "x"], "split": ["train", "train"],
                     "image_path": ["a", "a"], "label_id": [-1, -1]})
    with pytest.raises(ValueError, match="duplicate sample_id"):
        write_manifest(t, tmp_path / "m.parquet", dataset="x", root=tmp_path)
    assert not (tmp_path / "m.parquet").exists()


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_manifest(tmp_path / "nope.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="junk.parquet: not a readable Parquet"):
        read_manifest(junk)
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"a": [1]}), plain)
    with pytest.raises(InputError, match="not a fercurate manifest"):
        read_manifest(plain)


def test_where_split_unknown_split_is_an_error(tmp_path: Path) -> None:
    path = write_manifest(_table(), tmp_path / "m.parquet", dataset="ferplus", root=tmp_path)
    m = read_manifest(path)
    assert len(m.where_split("train", "val")) == 2
    with pytest.raises(InputError, match="no rows in split"):
        m.where_split("holdout")


def test_atomic_write_keeps_old_file_on_crash(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
