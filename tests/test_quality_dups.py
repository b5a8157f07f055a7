"""Duplicates on real images: copies are found with the right kind, different faces are not matched,
leakage tables and layers are right, and ``subsets build --exclude-leaked`` drops leaked samples."""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fixtures_quality import COPY_KINDS, Row, make_copy, write_manifest_over
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.layers import read_layer
from fercurate.manifest import read_manifest
from fercurate.quality import hashing
from fercurate.quality.dups import MIN_SIMILARITY, RADIUS, find_duplicates
from fercurate.quality.leakage import leaked_sample_ids
from fercurate.quality.verify import similarity
from fercurate.workspace import Workspace, layer_path

N_COPIED = 22  # originals with a copy (two of each copy kind)
N_ALONE = 8  # originals without a copy


@pytest.fixture(scope="module")
def ws_dups(tmp_path_factory, shared_data):
    """Workspace with 3 manifests: FERPlus originals (test), their copies (train), other faces (val)."""
    ws = tmp_path_factory.mktemp("dupsws")
    fer = sorted((shared_data / "ferplus" / "FER2013Test").glob("*.png"))
    if len(fer) < 1000:
        pytest.skip("FERPlus test images not available")
    # every 97th test image: a fixed, spread-out choice with no known duplicates among them
    originals = fer[5::97][: N_COPIED + N_ALONE]
    orig_root = ws / "data" / "orig"
    orig_root.mkdir(parents=True)
    for p in originals:
        shutil.copyfile(p, orig_root / p.name)
    kinds = list(COPY_KINDS)
    copy_root = ws / "data" / "copies"
    copy_of: dict[str, tuple[str, str]] = {}
    for k, p in enumerate(originals[:N_COPIED]):
        kind = kinds[k % len(kinds)]
        out = make_copy(kind, p, copy_root, f"copy{k:02d}")
        copy_of[f"copies/{out.name}"] = (f"orig/{p.name}", kind)
    # a colour photo and its grayscale version (near: the hash and similarity work on gray)
    face = cv2.imread(str(shared_data / "faces" / "prnet_0.jpg"))
    cv2.imwrite(str(copy_root / "prnet_gray.png"), cv2.cvtColor(face, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(orig_root / "prnet_colour.png"), face)
    (copy_root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")

    other_root = ws / "data" / "other"
    other_root.mkdir()
    ck = sorted((shared_data / "ckplus48").glob("*/*.png"))
    seqs = defaultdict(list)
    for p in ck:
        seqs[re.match(r"(S\d+)_(\d+)", p.name).groups()].append(p)
    subjects_done: set[str] = set()
    ck_rows = []
    for (subject, _), frames in sorted(seqs.items()):
        if subject in subjects_done or len(subjects_done) >= 12:
            continue
        subjects_done.add(subject)
        frames = sorted(frames)
        take = frames[-2:] if len(subjects_done) <= 3 else frames[-1:]  # 3 subjects with two consecutive frames
        for f in take:
            shutil.copyfile(f, other_root / f.name)
            ck_rows.append(Row(f.name, "val"))
    jaffe = sorted((shared_data / "jaffe").glob("*.tiff"))
    posers = {}
    for p in jaffe:
        posers.setdefault(p.name.split(".")[0], p)
    for p in posers.values():
        shutil.copyfile(p, other_root / p.name)
    other_rows = ck_rows + [Row(p.name, "val") for p in posers.values()]

    orig = write_manifest_over(ws, "orig", orig_root, [Row(p.name, "test") for p in originals] + [Row("prnet_colour.png", "test")])
    copies = write_manifest_over(
        ws, "copies", copy_root, [Row(Path(k).name, "train") for k in copy_of] + [Row("prnet_gray.png", "train"), Row("corrupt.png", "train")]
    )
    other = write_manifest_over(ws, "other", other_root, other_rows, dataset="rafdb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERCURATE_WORKSPACE", str(ws))
        result = find_duplicates([orig, copies, other], workers=1, workspace=Workspace(ws))
    return ws, result, copy_of, (orig, copies, other), posers, ck_rows


def _pairs(result) -> dict[frozenset, pd.Series]:
    out = {}
    for _, r in result.pairs.iterrows():
        out[frozenset((r.a_sample_id, r.b_sample_id))] = r
    return out


def test_every_copy_is_found_with_its_kind(ws_dups):
    _, result, copy_of, *_ = ws_dups
    pairs = _pairs(result)
    for copy_id, (orig_id, kind) in copy_of.items():
        key = frozenset((copy_id, orig_id))
        assert key in pairs, f"{kind} copy {copy_id} of {orig_id} not found"
        assert pairs[key].kind == COPY_KINDS[kind], (kind, pairs[key].kind)
        if pairs[key].kind == "near":
            assert pairs[key].distance <= RADIUS and pairs[key].similarity >= MIN_SIMILARITY
    gray = frozenset(("copies/prnet_gray.png", "orig/prnet_colour.png"))
    assert gray in pairs and pairs[gray].kind == "near" and pairs[gray].distance == 0


def test_different_faces_are_not_matched(ws_dups):
    _, result, copy_of, _, posers, ck_rows = ws_dups
    allowed = {frozenset(pair) for pair in ((c, o) for c, (o, _) in copy_of.items())}
    allowed.add(frozenset(("copies/prnet_gray.png", "orig/prnet_colour.png")))
    # the only other allowed pairs: consecutive CK+ frames of one sequence (near duplicates by design)
    seq = defaultdict(list)
    for r in ck_rows:
        seq[r.rel.rsplit("_", 1)[0]].append(f"other/{r.rel}")
    consecutive = {frozenset(v) for v in seq.values() if len(v) == 2}
    assert len(consecutive) == 3
    found = set(_pairs(result))
    assert consecutive <= found, "consecutive CK+ frames should be near duplicates"
    unexpected = found - allowed - consecutive
    # copies of one original may pair with each other; nothing else may match
    orig_of = {c: o for c, (o, _) in copy_of.items()}
    unexpected = {p for p in unexpected if len({orig_of.get(x, x) for x in p}) > 1}
    assert not unexpected, sorted(map(sorted, unexpected))[:5]
    assert not any("corrupt" in x for p in found for x in p)


def test_unreadable_image_is_reported_not_dropped(ws_dups):
    ws, result, *_ = ws_dups
    table, _ = read_layer(ws / "manifests" / "copies.hashes.parquet", "hashes")
    df = table.to_pandas().set_index("sample_id")
    assert df.loc["copies/corrupt.png", "error"] == "not a decodable image"
    assert pd.isna(df.loc["copies/corrupt.png", "phash"])
    assert "1 images could not be read" in result.summary()


def test_layers_and_leakage_tables(ws_dups):
    ws, result, copy_of, paths, *_ = ws_dups
    layer, meta = read_layer(layer_path(paths[0], "dups"), "dups")
    df = layer.to_pandas()
    assert meta["provenance"]["radius"] == RADIUS and set(meta["provenance"]["inputs"]) == {"orig", "copies", "other"}
    assert (df["manifest"] == "orig").all() and df["sample_id"].is_monotonic_increasing
    assert set(df["dup_manifest"]) == {"copies"}
    # both directions: the copies layer lists the same pairs seen from the other side
    other_side = read_layer(layer_path(paths[1], "dups"), "dups")[0].to_pandas()
    assert set(zip(df.sample_id, df.dup_id)) == set(zip(other_side.dup_id, other_side.sample_id))
    leak = result.leakage.set_index(["manifest", "split", "dup_manifest", "dup_split"])
    row = leak.loc[("orig", "test", "copies", "train")]
    assert row.samples == N_COPIED + 1 and row.total == N_COPIED + N_ALONE + 1
    assert row.fraction == pytest.approx((N_COPIED + 1) / (N_COPIED + N_ALONE + 1))
    by_ds = result.by_dataset.set_index(["dataset", "dup_dataset"])
    assert ("ferplus", "ferplus") in by_ds.index and ("rafdb", "rafdb") in by_ds.index
    assert ("ferplus", "rafdb") not in by_ds.index
    table = pq.read_table(ws / "quality" / "duplicates.parquet").to_pandas()
    assert len(table) == len(result.pairs)
    csv = pd.read_csv(ws / "quality" / "leakage.csv")
    assert {"manifest", "split", "dup_manifest", "dup_split", "samples", "total", "fraction"} <= set(csv.columns)
    clusters = df.groupby("cluster")["cluster_size"].first()
    assert (clusters >= 2).all()


def test_leaked_ids_rule_and_subsets_build_exclude_leaked(ws_dups):
    ws, _, copy_of, paths, *_ = ws_dups
    w = Workspace(ws)
    orig = read_manifest(paths[0])
    leaked = leaked_sample_ids(orig, workspace=w)
    expected = {o for o, _ in copy_of.values()} | {"orig/prnet_colour.png"}
    assert leaked == expected
    # the training side of those pairs is leaked too (for a train-clean subset)
    assert leaked_sample_ids(read_manifest(paths[1]), workspace=w) == set(copy_of) | {"copies/prnet_gray.png"}
    # val-only manifest: CK+ consecutive frames are duplicates but within val: not leaks
    assert leaked_sample_ids(read_manifest(paths[2]), workspace=w) == set()
    res = CliRunner().invoke(app, ["subsets", "build", str(paths[0]), "--exclude-leaked", "-w", str(ws)])
    assert res.exit_code == 0, res.output
    clean = pq.read_table(ws / "manifests" / "subsets" / "orig-test-clean.parquet").column("sample_id").to_pylist()
    assert len(clean) == N_ALONE and not set(clean) & leaked


def test_leaked_ids_recomputed_when_layers_are_stale(ws_dups, tmp_path):
    """A workspace with a new manifest: the layer no longer covers it, so pairs are computed afresh."""
    ws, _, copy_of, paths, *_ = ws_dups
    ws2 = tmp_path / "ws2"
    (ws2 / "manifests").mkdir(parents=True)
    for p in paths[:2]:
        shutil.copyfile(p, ws2 / "manifests" / p.name)
    m = read_manifest(ws2 / "manifests" / "orig.parquet")
    assert not layer_path(m.path, "dups").exists()
    assert leaked_sample_ids(m, workspace=Workspace(ws2), workers=1) == {o for o, _ in copy_of.values()} | {"orig/prnet_colour.png"}
    assert not layer_path(m.path, "dups").exists()  # computing leaks does not write dups layers


def test_hash_cache_reuses_unchanged_files(ws_dups, tmp_path):
    ws, _, _, paths, *_ = ws_dups
    root = tmp_path / "imgs"
    shutil.copytree(ws / "data" / "orig", root)
    names = sorted(p.name for p in root.glob("fer*.png"))[:4]
    mpath = write_manifest_over(tmp_path, "small", root, [Row(n) for n in names])
    m = read_manifest(mpath)
    first = hashing.hash_manifest(m, workers=1)
    # tamper with the cached hash of an unchanged file: a cache hit keeps the cached value
    df = first.to_pandas()
    df.loc[0, "phash"] = 12345
    import pyarrow as pa

    from fercurate.layers import write_layer

    write_layer(pa.Table.from_pandas(df, schema=hashing.HASH_SCHEMA, preserve_index=False), hashing.hashes_path(m),
                layer="hashes", manifest="small", provenance={"hash_version": hashing.HASH_VERSION}, sort=False)
    # change one image on disk: only its row is re-hashed
    img = cv2.imread(str(root / names[1]), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(root / names[1]), 255 - img)
    second = hashing.hash_manifest(m, workers=1).to_pandas()
    assert second.loc[0, "phash"] == 12345
    assert second.loc[1, "pixel_sha256"] != df.loc[1, "pixel_sha256"]
    assert (second.loc[2:, "phash"].to_numpy() == df.loc[2:, "phash"].to_numpy()).all()
    assert hashing.hash_manifest(m, workers=1, refresh=True).to_pandas().loc[0, "phash"] != 12345
    # hashing a selection (e.g. one split) keeps the other rows in the cache
    part = hashing.hash_manifest(m.select(np.array([True, False, False, False])), workers=1)
    assert part.num_rows == 1
    assert read_layer(hashing.hashes_path(m), "hashes")[0].num_rows == 4


def test_similarity_separates_copy_from_other_face(shared_data):
    a = cv2.imread(str(shared_data / "jaffe" / "KA.AN1.39.tiff"), cv2.IMREAD_GRAYSCALE)
    b = cv2.imread(str(sorted((shared_data / "jaffe").glob("KM.AN1*.tiff"))[0]), cv2.IMREAD_GRAYSCALE)
    assert similarity(a, a[6:-4, 10:]) >= MIN_SIMILARITY
    assert similarity(a, b) < MIN_SIMILARITY
    blank = np.full((48, 48), 128, np.uint8)
    assert similarity(blank, blank + 3) == 1.0 and similarity(blank, a) == 0.0


def test_cli_dups_summary_and_errors(ws_dups):
    ws, _, _, paths, *_ = ws_dups
    runner = CliRunner()
    res = runner.invoke(app, ["quality", "dups", "orig", "copies", "-w", str(ws), "-j", "1"])
    assert res.exit_code == 0, res.output
    assert "orig/test -> copies/train" in res.output and "layer ->" in res.output
    res = runner.invoke(app, ["quality", "dups", "nosuch", "-w", str(ws)])
    assert res.exit_code == 1 and "error: no manifest named 'nosuch'" in res.output
    res = runner.invoke(app, ["quality", "dups", "orig", "orig", "-w", str(ws)])
    assert res.exit_code == 1 and "same manifest name appears twice" in res.output


def test_cli_defaults_are_the_documented_thresholds():
    import inspect

    from fercurate.cli import quality as cli_quality

    params = inspect.signature(cli_quality.dups).parameters
    assert params["radius"].default.default == RADIUS
    assert params["min_similarity"].default.default == MIN_SIMILARITY
