"""Exact and near duplicates within and across manifests, as layers plus a leakage summary.

Rules:

* **exact_file**: same SHA-256 of the file bytes.
* **exact_pixels**: same SHA-256 of the decoded pixels (a re-saved PNG, a TIFF copy, a gray image
  stored as RGB with equal channels).
* **near**: perceptual-hash distance <= :data:`RADIUS` bits (the full-image pHash of one image against
  the full-image and ten crop hashes of the other, both ways round; :mod:`fercurate.quality.hashing`)
  **and** aligned similarity >= :data:`MIN_SIMILARITY` (:mod:`fercurate.quality.verify`). The hash
  index finds candidates fast; the similarity decides.

How the thresholds were chosen (``python benchmarks/dups.py --calibrate``; real images):

* the hash alone cannot decide for 48 px faces: among the 3,016 FERPlus pairs at hash distance 4,
  129 have a similarity below 0.85 and the ones inspected are different people, while pairs at
  distance 10 with similarity >= 0.92 are re-cropped copies of one photo. Similarities of candidate
  pairs are bimodal with a thin valley at 0.8-0.9 (at distance 8: 12,865 pairs below 0.7, 179 in
  0.8-0.9, 1,726 at 0.9 or more); 0.90 is where copies of every kind below start;
* copies of 500 FERPlus images, per transform, found at (d <= 8, s >= 0.90): JPEG q50/q90, resize
  x0.5/x2, brightness/contrast, 4 % cut off each side 99.8-100 %; 2 % / 6 % each side, 6 % off one
  side, 3 % crop + resize + JPEG 98-99.4 %; 8 % off two sides 96 %; 10 % each side 86 % (the limit
  of "small" crops). Colour -> grayscale: distance 0, similarity 1.0 (hashes are of the gray image);
* different people: CK+ different subjects 0 of 2,973 pairs matched, JAFFE different posers (one
  studio, same framing) 0 of 20,412, random FERPlus pairs 0 of 3,000; a mirrored image is not a
  copy (0 %);
* the radius: 8 bits keeps the index fast at 450,000 images x 11 codes (``benchmarks/dups.py``).
  On FERPlus it finds 8,712 verified near pairs; at distance 10 another 1,227 pairs reach
  similarity 0.9 (mostly true copies, re-cropped more), so ``--radius 10`` finds ~14 % more at a
  much higher search cost.

Same person, same session: consecutive frames of one CK+ sequence are near duplicates (99.7 % of
654 pairs) and should be: a model trained on one frame has seen the other. Other photos of one
JAFFE poser with the same expression match 94 %, with another expression 42 % (those differ only
slightly); different sequences of one CK+ subject 2.4 %. Split such data by subject anyway.

Outputs, for ``find_duplicates([m1, m2, ...])``:

* ``manifests/<name>.dups.parquet`` (layer ``dups``) per manifest: one row per (sample, duplicate)
  with the duplicate's manifest/dataset/split, kind, distance, similarity and the cluster (connected
  component of the duplicate graph) the sample belongs to. Keyed by sample_id; a pair appears in the
  layer of each manifest it touches, once per direction.
* ``<workspace>/quality/duplicates.parquet``: every pair once (the cross-dataset table), and
  ``quality/leakage.csv``: per (manifest, split) -> (manifest, split), how many samples of the first
  have a duplicate in the second (e.g. FERPlus test images that also appear in train).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from fercurate.errors import InputError
from fercurate.layers import read_layer, write_layer
from fercurate.manifest import Manifest, read_manifest
from fercurate.quality import hashing
from fercurate.quality.index import self_pairs
from fercurate.quality.tables import write_frame
from fercurate.quality.verify import load_squares, verify_pairs
from fercurate.workspace import Workspace, layer_path

RADIUS = 8
MIN_SIMILARITY = 0.90
KINDS = ("exact_file", "exact_pixels", "near")

PAIR_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("manifest", pa.string(), nullable=False),
        pa.field("dataset", pa.string()),
        pa.field("split", pa.string()),
        pa.field("dup_id", pa.string(), nullable=False),
        pa.field("dup_manifest", pa.string(), nullable=False),
        pa.field("dup_dataset", pa.string()),
        pa.field("dup_split", pa.string()),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("distance", pa.int8()),
        pa.field("similarity", pa.float32()),
        pa.field("cluster", pa.string()),
        pa.field("cluster_size", pa.int32()),
    ]
)


@dataclass
class Pool:
    """The rows of several manifests side by side (global row index = position in these arrays)."""

    manifests: list[Manifest]
    sample_id: np.ndarray
    manifest: np.ndarray
    dataset: np.ndarray
    split: np.ndarray
    file_sha: np.ndarray
    pixel_sha: np.ndarray
    codes: np.ndarray
    ok: np.ndarray
    paths: np.ndarray  # absolute image paths

    def __len__(self) -> int:
        return len(self.sample_id)


@dataclass
class DupResult:
    pairs: pd.DataFrame  # every pair once: a_* and b_* columns, kind, distance, similarity
    pool: Pool
    leakage: pd.DataFrame
    by_dataset: pd.DataFrame
    layer_paths: list[Path] = field(default_factory=list)
    table_path: Path | None = None
    candidates: int = 0
    params: dict = field(default_factory=dict)

    def summary(self) -> str:
        counts = self.pairs["kind"].value_counts()
        lines = [
            f"{len(self.pool):,} images in {len(self.pool.manifests)} manifest(s); "
            f"{len(self.pairs):,} duplicate pairs ("
            + ", ".join(f"{k} {int(counts.get(k, 0)):,}" for k in KINDS)
            + f"); {self.candidates:,} near-duplicate candidates verified"
        ]
        failed = int((~self.pool.ok).sum())
        if failed:
            lines.append(f"{failed:,} images could not be read (see the 'error' column of the hashes layers)")
        if len(self.leakage):
            lines.append("leakage (samples of the first split with a duplicate in the second):")
            for r in self.leakage.itertuples():
                lines.append(
                    f"  {r.manifest}/{r.split} -> {r.dup_manifest}/{r.dup_split}: "
                    f"{r.samples:,} of {r.total:,} ({r.fraction:.2%})"
                )
        if len(self.by_dataset) and self.by_dataset["dataset"].nunique() > 1:
            lines.append("per dataset pair:")
            for r in self.by_dataset.itertuples():
                lines.append(f"  {r.dataset} -> {r.dup_dataset}: {r.samples:,} of {r.total:,} ({r.fraction:.2%})")
        for p in self.layer_paths:
            lines.append(f"layer -> {p}")
        if self.table_path:
            lines.append(f"pairs -> {self.table_path}")
        return "\n".join(lines)


def load_pool(
    manifest_paths: Sequence[str | os.PathLike], *, workers: int | None = None, refresh: bool = False
) -> Pool:
    """Read the manifests and their (cached) hashes into one :class:`Pool`."""
    manifests = [read_manifest(p) for p in manifest_paths]
    names = [m.name for m in manifests]
    if len(set(names)) != len(names):
        raise InputError(f"the same manifest name appears twice: {names}")
    cols: dict[str, list] = {k: [] for k in ("sid", "man", "ds", "split", "fsha", "psha", "codes", "ok", "path")}
    total = 0
    for m in manifests:
        ht = hashing.hash_manifest(m, workers=workers, refresh=refresh)
        codes, ok = hashing.codes_of(ht)
        n = m.table.num_rows
        cols["sid"].append(np.asarray(m.table.column("sample_id").to_pylist(), dtype=object))
        cols["man"].append(np.full(n, m.name, dtype=object))
        cols["ds"].append(np.asarray(m.table.column("dataset").cast(pa.string()).to_pylist(), dtype=object))
        cols["split"].append(np.asarray(m.table.column("split").cast(pa.string()).to_pylist(), dtype=object))
        cols["fsha"].append(np.asarray(ht.column("file_sha256").to_pylist(), dtype=object))
        cols["psha"].append(np.asarray(ht.column("pixel_sha256").to_pylist(), dtype=object))
        cols["codes"].append(codes)
        cols["ok"].append(ok)
        cols["path"].append(np.asarray([str(p) for p in m.image_paths()], dtype=object))
        total += n
    cat = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in cols.items()}
    return Pool(manifests, cat["sid"], cat["man"], cat["ds"], cat["split"], cat["fsha"], cat["psha"],
                cat["codes"].reshape(-1, hashing.N_CODES) if total else np.zeros((0, hashing.N_CODES), np.uint64),
                cat["ok"].astype(bool), cat["path"].astype(object))


def duplicate_pairs(
    pool: Pool, *, radius: int = RADIUS, min_similarity: float = MIN_SIMILARITY, workers: int | None = None
) -> tuple[pd.DataFrame, int]:
    """All duplicate pairs of a pool (global rows a < b) and the number of near candidates verified."""
    ok_rows = np.flatnonzero(pool.ok)
    # exact groups by decoded pixels; one representative per group goes into the near search
    psha = pool.pixel_sha[ok_rows]
    _, group, counts = np.unique(psha.astype(str), return_inverse=True, return_counts=True)
    order = np.argsort(group, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    members = [ok_rows[order[starts[g] : starts[g + 1]]] for g in range(len(counts))]
    reps = np.array([m[0] for m in members], dtype=np.int64)

    frames = []
    for g in np.flatnonzero(counts > 1):
        mem = members[g]
        ia, ib = np.triu_indices(len(mem), k=1)
        a, b = mem[ia], mem[ib]
        same_file = pool.file_sha[a] == pool.file_sha[b]
        frames.append(pd.DataFrame({
            "a": a, "b": b, "kind": np.where(same_file, "exact_file", "exact_pixels"),
            "distance": np.zeros(len(a), np.int8), "similarity": np.ones(len(a), np.float32),
        }))

    candidates = 0
    if len(reps) > 1:
        codes = pool.codes[reps]
        k = hashing.N_CODES
        gi, gj, dist = self_pairs(
            codes.ravel(), radius, owners=np.repeat(np.arange(len(reps)), k),
            queries=codes[:, 0], query_owners=np.arange(len(reps)), workers=workers,
        )
        candidates = len(gi)
        if candidates:
            ra, rb = reps[gi], reps[gj]
            rows, inverse = np.unique(np.concatenate([ra, rb]), return_inverse=True)
            squares, sq_ok = load_squares(pool.paths[rows], workers=workers)
            ia, ib = inverse[: len(ra)], inverse[len(ra) :]
            sim = verify_pairs(squares, sq_ok, ia, ib, workers=workers)
            keep = np.nan_to_num(sim, nan=-2.0) >= min_similarity
            gi, gj, dist, sim = gi[keep], gj[keep], dist[keep], sim[keep]
            # expand representative pairs to every member of both pixel groups
            # (self_pairs owners are pixel-group indices, since reps[g] represents group g)
            a_parts, b_parts, d_parts, s_parts = [], [], [], []
            for x, y, d, s in zip(gi, gj, dist, sim):
                ma, mb = members[x], members[y]
                aa = np.repeat(ma, len(mb))
                bb = np.tile(mb, len(ma))
                a_parts.append(aa)
                b_parts.append(bb)
                d_parts.append(np.full(len(aa), d, np.int8))
                s_parts.append(np.full(len(aa), s, np.float32))
            if a_parts:
                aa, bb = np.concatenate(a_parts), np.concatenate(b_parts)
                frames.append(pd.DataFrame({
                    "a": np.minimum(aa, bb), "b": np.maximum(aa, bb), "kind": "near",
                    "distance": np.concatenate(d_parts), "similarity": np.concatenate(s_parts),
                }))
    if not frames:
        pairs = pd.DataFrame({"a": np.zeros(0, np.int64), "b": np.zeros(0, np.int64), "kind": [],
                              "distance": np.zeros(0, np.int8), "similarity": np.zeros(0, np.float32)})
    else:
        pairs = pd.concat(frames, ignore_index=True)
    pairs = pairs.sort_values(["a", "b"], kind="stable").reset_index(drop=True)
    return pairs, candidates


def clusters(n: int, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of the duplicate graph: (component label, component size) per row."""
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    return labels, sizes[labels]


def split_totals(pool: Pool) -> pd.DataFrame:
    """Rows per (manifest, dataset, split) of a pool."""
    frame = pd.DataFrame({"manifest": pool.manifest, "dataset": pool.dataset, "split": pool.split})
    return frame.value_counts().rename("total").reset_index()


def leakage_table(frame: pd.DataFrame, totals: pd.DataFrame) -> pd.DataFrame:
    """Per (manifest, split) -> (manifest, split): samples of the first with >= 1 duplicate in the second.

    ``frame`` is a pair frame (:func:`pair_frame`), ``totals`` rows per (manifest, dataset, split).
    """
    cols = ["manifest", "split", "dup_manifest", "dup_split", "samples", "total", "fraction", "pairs"]
    return _directed_counts(frame, totals, ["manifest", "split"], cols)


def dataset_table(frame: pd.DataFrame, totals: pd.DataFrame) -> pd.DataFrame:
    """Per dataset -> dataset: samples of the first with >= 1 duplicate in the second (any split)."""
    cols = ["dataset", "dup_dataset", "samples", "total", "fraction", "pairs"]
    return _directed_counts(frame, totals, ["dataset"], cols)


def _directed_counts(frame: pd.DataFrame, totals: pd.DataFrame, keys: list[str], cols: list[str]) -> pd.DataFrame:
    if not len(frame):
        return pd.DataFrame(columns=cols)
    sides = []
    for me, other in (("a", "b"), ("b", "a")):
        side = pd.DataFrame({"row": frame[f"{me}_manifest"] + ":" + frame[f"{me}_sample_id"]})
        for k in keys:
            side[k] = frame[f"{me}_{k}"].to_numpy()
            side[f"dup_{k}"] = frame[f"{other}_{k}"].to_numpy()
        sides.append(side)
    both = pd.concat(sides, ignore_index=True)
    group = keys + [f"dup_{k}" for k in keys]
    out = both.groupby(group, sort=True).agg(samples=("row", "nunique"), pairs=("row", "size")).reset_index()
    tot = totals.groupby(keys)["total"].sum()
    out = out.join(tot, on=keys)
    out["fraction"] = out["samples"] / out["total"]
    return out[cols]


def pair_frame(pool: Pool, pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairs with readable columns (a_* / b_* sample, manifest, dataset, split) and clusters."""
    a, b = pairs["a"].to_numpy(), pairs["b"].to_numpy()
    labels, sizes = clusters(len(pool), a, b)
    names = _cluster_names(pool, labels, np.concatenate([a, b]))
    return pd.DataFrame({
        "a_sample_id": pool.sample_id[a], "a_manifest": pool.manifest[a], "a_dataset": pool.dataset[a],
        "a_split": pool.split[a],
        "b_sample_id": pool.sample_id[b], "b_manifest": pool.manifest[b], "b_dataset": pool.dataset[b],
        "b_split": pool.split[b],
        "kind": pairs["kind"].to_numpy(), "distance": pairs["distance"].to_numpy(np.int8),
        "similarity": pairs["similarity"].to_numpy(np.float32),
        "cluster": names[labels[a]] if len(a) else np.zeros(0, object),
        "cluster_size": sizes[a].astype(np.int32) if len(a) else np.zeros(0, np.int32),
    })


def _cluster_names(pool: Pool, labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Stable cluster names: ``<manifest>:<smallest sample_id>`` of each component with pairs."""
    names = np.empty(labels.max() + 1 if len(labels) else 0, dtype=object)
    if not len(rows):
        return names
    rows = np.unique(rows)
    keys = pool.manifest[rows] + ":" + pool.sample_id[rows]
    frame = pd.DataFrame({"label": labels[rows], "key": keys}).groupby("label")["key"].min()
    names[frame.index.to_numpy()] = frame.to_numpy()
    return names


def _layer_table(frame: pd.DataFrame, manifest: str) -> pa.Table:
    """Rows (sample of ``manifest``, duplicate) in both directions for the per-manifest layer."""
    a_side = frame[frame["a_manifest"] == manifest]
    b_side = frame[frame["b_manifest"] == manifest]

    def side(df: pd.DataFrame, me: str, other: str) -> pd.DataFrame:
        return pd.DataFrame({
            "sample_id": df[f"{me}_sample_id"], "manifest": df[f"{me}_manifest"], "dataset": df[f"{me}_dataset"],
            "split": df[f"{me}_split"], "dup_id": df[f"{other}_sample_id"], "dup_manifest": df[f"{other}_manifest"],
            "dup_dataset": df[f"{other}_dataset"], "dup_split": df[f"{other}_split"], "kind": df["kind"],
            "distance": df["distance"], "similarity": df["similarity"], "cluster": df["cluster"],
            "cluster_size": df["cluster_size"],
        })

    rows = pd.concat([side(a_side, "a", "b"), side(b_side, "b", "a")], ignore_index=True)
    rows = rows.sort_values(["sample_id", "dup_manifest", "dup_id"], kind="stable")
    return pa.Table.from_pandas(rows, schema=PAIR_SCHEMA, preserve_index=False)


def input_fingerprints(manifests: Sequence[Manifest]) -> dict[str, dict]:
    """What the results depend on, per manifest: its file's path, size and mtime."""
    out = {}
    for m in manifests:
        st = os.stat(m.path) if m.path else None
        out[m.name] = {"path": str(Path(m.path).resolve()) if m.path else None,
                       "size": st.st_size if st else None, "mtime_ns": st.st_mtime_ns if st else None}
    return out


def find_duplicates(
    manifest_paths: Sequence[str | os.PathLike],
    *,
    radius: int = RADIUS,
    min_similarity: float = MIN_SIMILARITY,
    workers: int | None = None,
    refresh: bool = False,
    write: bool = True,
    workspace: Workspace | None = None,
) -> DupResult:
    """Find exact and near duplicates within and across manifests; write layers and tables."""
    if not manifest_paths:
        raise InputError("no manifests given")
    if not 0 <= radius <= 16:
        raise InputError(f"--radius must be between 0 and 16 bits, got {radius}")
    if not -1.0 <= min_similarity <= 1.0:
        raise InputError(f"--min-similarity must be in [-1, 1], got {min_similarity}")
    pool = load_pool(manifest_paths, workers=workers, refresh=refresh)
    pairs, candidates = duplicate_pairs(pool, radius=radius, min_similarity=min_similarity, workers=workers)
    frame = pair_frame(pool, pairs)
    params = {"radius": radius, "min_similarity": min_similarity, "hash_version": hashing.HASH_VERSION,
              "inputs": input_fingerprints(pool.manifests)}
    totals = split_totals(pool)
    result = DupResult(frame, pool, leakage_table(frame, totals), dataset_table(frame, totals),
                       candidates=candidates, params=params)
    if write:
        for m in pool.manifests:
            path = layer_path(m.path, "dups")
            write_layer(_layer_table(frame, m.name), path, layer="dups", manifest=m.name, provenance=params,
                        sort=False)
            result.layer_paths.append(path)
        ws = workspace or Workspace.current()
        result.table_path = write_tables(result, ws.root / "quality")
    return result


def write_tables(result: DupResult, folder: Path) -> Path:
    """``duplicates.parquet`` (+ .csv), ``leakage.csv`` and ``leakage_datasets.csv`` into ``folder``."""
    table = pa.Table.from_pandas(result.pairs, preserve_index=False)
    path = folder / "duplicates.parquet"
    write_layer(table.append_column("sample_id", table.column("a_sample_id")), path, layer="duplicates",
                manifest=",".join(m.name for m in result.pool.manifests), provenance=result.params, sort=False)
    write_frame(result.pairs, folder / "duplicates.csv")
    write_frame(result.leakage, folder / "leakage.csv")
    write_frame(result.by_dataset, folder / "leakage_datasets.csv")
    return path


def read_dups_layer(manifest: Manifest) -> tuple[pa.Table, dict] | None:
    """The manifest's dups layer and its provenance, or None if there is none."""
    path = layer_path(manifest.path, "dups")
    if not path.exists():
        return None
    table, meta = read_layer(path, "dups")
    return table, meta.get("provenance", {})


def is_current(provenance: dict, manifests: Sequence[Manifest], *, radius: int, min_similarity: float) -> bool:
    """Whether a dups layer was computed over (at least) these manifests, unchanged, with these settings."""
    if provenance.get("radius") != radius or provenance.get("min_similarity") != min_similarity:
        return False
    if provenance.get("hash_version") != hashing.HASH_VERSION:
        return False
    inputs = provenance.get("inputs", {})
    now = input_fingerprints(manifests)
    return all(inputs.get(name) == fp for name, fp in now.items())


def pairs_from_layers(manifests: Sequence[Manifest]) -> pd.DataFrame | None:
    """The pair frame rebuilt from the manifests' dups layers, or None if one is missing.

    Only pairs between the given manifests are kept; each pair once (a = the smaller
    ``manifest:sample_id``).
    """
    names = {m.name for m in manifests}
    parts = []
    for m in manifests:
        layer = read_dups_layer(m)
        if layer is None:
            return None
        parts.append(layer[0].to_pandas())
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PAIR_SCHEMA.names)
    df = df[df["dup_manifest"].isin(names)]
    key_a = df["manifest"] + ":" + df["sample_id"]
    key_b = df["dup_manifest"] + ":" + df["dup_id"]
    df = df[key_a < key_b]
    out = pd.DataFrame({
        "a_sample_id": df["sample_id"], "a_manifest": df["manifest"], "a_dataset": df["dataset"], "a_split": df["split"],
        "b_sample_id": df["dup_id"], "b_manifest": df["dup_manifest"], "b_dataset": df["dup_dataset"],
        "b_split": df["dup_split"], "kind": df["kind"], "distance": df["distance"], "similarity": df["similarity"],
        "cluster": df["cluster"], "cluster_size": df["cluster_size"],
    })
    return out.sort_values(["a_manifest", "a_sample_id", "b_manifest", "b_sample_id"]).reset_index(drop=True)


def manifest_totals(manifests: Sequence[Manifest]) -> pd.DataFrame:
    """Rows per (manifest, dataset, split) of several manifests."""
    frames = []
    for m in manifests:
        frames.append(pd.DataFrame({
            "manifest": m.name,
            "dataset": m.table.column("dataset").cast(pa.string()).to_numpy(zero_copy_only=False),
            "split": m.table.column("split").cast(pa.string()).to_numpy(zero_copy_only=False),
        }))
    return pd.concat(frames, ignore_index=True).value_counts().rename("total").reset_index()
