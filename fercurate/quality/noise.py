"""Label noise: FERPlus vote entropy and agreement, and confident-learning flags from model probabilities.

**Votes** (rows with ``label_votes``, i.e. FERPlus): ``agreement`` = share of the 10 votes that the
winning category got, ``entropy_bits`` = Shannon entropy of the 10-way vote distribution (0 when all
annotators agree, log2(10) = 3.32 at most). A row is ``contested`` when its label has no absolute
majority (agreement < :data:`CONTESTED_AGREEMENT`).

**Model probabilities** (any model's *out-of-sample* class probabilities: a RAN trained on another
split, cross-validated predictions, ...; column ``prob_k`` = canonical class k): confident learning
(Northcutt, Jiang & Chuang, JAIR 2021), implemented here in numpy with cleanlab's default choices:

1. per-class threshold t_k = mean predicted probability of class k over rows labelled k;
2. confident joint C[i, j]: rows labelled i whose probability reaches t_j for some j, counted under
   j = the most probable such class (the overall argmax when several reach their thresholds);
   each diagonal entry at least 1; then calibrated so row i sums to the number of rows labelled i;
3. prune by noise rate: among rows labelled i, the C[i, j] rows with the largest p_j - p_i are
   flagged, for every j != i; rows whose prediction equals their label are never flagged.

Flagged rows are ranked by self-confidence (probability of the given label, lowest first) and
``suggested_label`` is the model's prediction. With probabilities from the model's own training
rows the flags are over-optimistic (the model memorised those labels): use held-out predictions.
Results are the ``noise`` layer (``manifests/<name>.noise.parquet``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fercurate.errors import InputError
from fercurate.layers import write_layer
from fercurate.manifest import Manifest
from fercurate.schema import CANONICAL_LABELS, FERPLUS_LABELS, FERPLUS_VOTE_COLUMNS
from fercurate.workspace import layer_path

CONTESTED_AGREEMENT = 0.5
PROB_SUM_TOLERANCE = 0.02

NOISE_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("split", pa.string()),
        pa.field("label", pa.string()),
        pa.field("votes_total", pa.int16()),
        pa.field("agreement", pa.float32()),
        pa.field("entropy_bits", pa.float32()),
        pa.field("vote_winner", pa.string()),  # FER+ category with most votes (may be unknown / NF)
        pa.field("vote_runner_up", pa.string()),
        pa.field("contested", pa.bool_()),
        pa.field("prob_given", pa.float32()),  # self-confidence: model probability of the given label
        pa.field("pred_label", pa.string()),
        pa.field("pred_prob", pa.float32()),
        pa.field("likely_mislabel", pa.bool_()),
        pa.field("suggested_label", pa.string()),
        pa.field("issue_rank", pa.int32()),  # 1 = most likely mislabelled
        pa.field("flagged", pa.bool_(), nullable=False),
    ]
)


# --- votes ------------------------------------------------------------------------------------------


def vote_matrix(manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
    """(votes (n, 10) float64 in FER+ order, has_votes mask) from ``label_votes``."""
    raw = manifest.table.column("label_votes").to_pylist()
    k = len(FERPLUS_VOTE_COLUMNS)
    votes = np.zeros((len(raw), k), dtype=np.float64)
    has = np.zeros(len(raw), dtype=bool)
    for i, v in enumerate(raw):
        if v is not None and len(v) == k and sum(v) > 0:
            votes[i] = v
            has[i] = True
    return votes, has


def vote_stats(votes: np.ndarray) -> dict[str, np.ndarray]:
    """Agreement, entropy (bits), winner and runner-up index for rows of vote counts."""
    total = votes.sum(axis=1)
    safe = np.where(total > 0, total, 1.0)
    p = votes / safe[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -(np.where(p > 0, p * np.log2(p), 0.0)).sum(axis=1)
    order = np.argsort(-votes, axis=1, kind="stable")
    return {
        "total": total,
        "agreement": votes[np.arange(len(votes)), order[:, 0]] / safe,
        "entropy": ent,
        "winner": order[:, 0],
        "runner_up": np.where(votes[np.arange(len(votes)), order[:, 1]] > 0, order[:, 1], -1),
    }


# --- confident learning -----------------------------------------------------------------------------


def confident_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-class mean self-confidence; 2.0 (never reached) for classes with no labelled rows."""
    k = probs.shape[1]
    out = np.full(k, 2.0)
    for c in range(k):
        sel = labels == c
        if sel.any():
            out[c] = probs[sel, c].mean()
    return out


def confident_joint(labels: np.ndarray, probs: np.ndarray, *, calibrate: bool = True) -> np.ndarray:
    """The (given label x true label) confident joint count matrix (calibrated by default)."""
    k = probs.shape[1]
    above = probs >= confident_thresholds(labels, probs) - 1e-6
    n_above = above.sum(axis=1)
    guess = np.where(n_above > 1, probs.argmax(axis=1), above.argmax(axis=1))
    sel = n_above > 0
    cj = np.zeros((k, k), dtype=np.int64)
    np.add.at(cj, (labels[sel], guess[sel]), 1)
    np.fill_diagonal(cj, np.maximum(cj.diagonal(), 1))
    if not calibrate:
        return cj
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    cal = cj / np.clip(cj.sum(axis=1, keepdims=True), 1e-12, None) * counts[:, None]
    cal = cal / max(cal.sum(), 1e-12) * counts.sum()
    return np.vstack([round_preserving_sum(row) for row in cal])


def round_preserving_sum(values: np.ndarray) -> np.ndarray:
    """Round to integers keeping the (rounded) total: the largest remainders get the extra units."""
    values = np.asarray(values, dtype=np.float64)
    ints = np.round(values)
    diff = int(round(values.sum()) - ints.sum())
    if diff:
        order = np.argsort(values - ints)
        order = (order[::-1] if diff > 0 else order)[: abs(diff)]
        ints[order] += np.sign(diff)
    return ints.astype(np.int64)


def find_label_issues(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Boolean mask of likely mislabelled rows (confident learning, prune by noise rate)."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(labels) != len(probs):
        raise ValueError("probs must be (n, K) and labels (n,)")
    k = probs.shape[1]
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must be in 0..{k - 1}")
    cj = confident_joint(labels, probs)
    issues = np.zeros(len(labels), dtype=bool)
    for i in range(k):
        rows = np.flatnonzero(labels == i)
        if len(rows) <= 1:
            continue
        for j in range(k):
            n_prune = int(cj[i, j])
            if j == i or n_prune <= 0:
                continue
            margin = probs[rows, j] - probs[rows, i]
            issues[rows[np.argsort(-margin, kind="stable")[:n_prune]]] = True
    given = probs.copy()
    given[np.arange(len(labels)), labels] += 1e-6
    issues[given.argmax(axis=1) == labels] = False
    return issues


# --- probabilities in --------------------------------------------------------------------------------


def read_probs(path: str | os.PathLike) -> pd.DataFrame:
    """A probabilities file: Parquet (or CSV) with ``sample_id`` and ``prob_0 .. prob_{K-1}``."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: probabilities file not found")
    try:
        df = pd.read_csv(path) if path.suffix.lower() == ".csv" else pq.read_table(path).to_pandas()
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: not a readable Parquet/CSV file ({exc})") from exc
    return check_probs(df, str(path))


def check_probs(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Validate a probabilities table; returns it with columns sample_id, prob_0..prob_{K-1}."""
    if "sample_id" not in df.columns:
        raise InputError(f"{where}: no 'sample_id' column (columns: {', '.join(map(str, df.columns[:12]))})")
    cols = [c for c in df.columns if str(c).startswith("prob_")]
    k = len(cols)
    expected = [f"prob_{j}" for j in range(k)]
    if k < 2 or sorted(cols, key=lambda c: int(c[5:]) if c[5:].isdigit() else -1) != expected:
        raise InputError(f"{where}: need columns prob_0 .. prob_K-1 (canonical classes), found {cols[:10]}")
    if k > len(CANONICAL_LABELS):
        raise InputError(f"{where}: {k} probability columns, the canonical label space has {len(CANONICAL_LABELS)}")
    probs = df[expected].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(probs).all(axis=1) | (probs < -1e-6).any(axis=1) | (np.abs(probs.sum(axis=1) - 1) > PROB_SUM_TOLERANCE)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{where}: row {i + 1} ({df['sample_id'].iloc[i]}) is not a probability vector "
            f"(sum {probs[i].sum():.3f}); pass softmax outputs, not logits"
        )
    dup = df["sample_id"].duplicated()
    if dup.any():
        raise InputError(f"{where}: sample_id {df['sample_id'][dup].iloc[0]!r} appears more than once")
    return df[["sample_id", *expected]].reset_index(drop=True)


Predict = Callable[[str | os.PathLike, Path, str | None], pd.DataFrame]
"""(checkpoint, manifest path, split or None) -> DataFrame(sample_id, prob_0 .. prob_{K-1}), e.g.
:func:`fercurate.ran.evaluate.predict_proba`."""


def model_probs(
    model_path: str | os.PathLike, manifest: Manifest, split: str | None = None, *, predict: Predict
) -> pd.DataFrame:
    """Probabilities of a trained model for ``manifest`` (one split or all), checked like a ``--probs`` file.

    ``predict`` computes them from the checkpoint: the caller passes the model's code in (``quality
    noise --model`` passes the RAN's), so the quality checks depend on no model.
    """
    if not Path(model_path).exists():
        raise InputError(f"{model_path}: model checkpoint not found")
    return check_probs(predict(model_path, manifest.path, split), str(model_path))


# --- the layer ----------------------------------------------------------------------------------------


@dataclass
class NoiseResult:
    table: pa.Table
    path: Path | None
    scored: int = 0
    unscored: int = 0
    joint: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def flagged_ids(self) -> list[str]:
        """Flagged sample ids, likely mislabels first (by rank), then contested ones (least agreement first)."""
        df = self.table.to_pandas()
        mis = df[df["likely_mislabel"].fillna(False).astype(bool)].sort_values("issue_rank")
        con = df[df["contested"].fillna(False).astype(bool) & ~df["sample_id"].isin(mis["sample_id"])]
        con = con.sort_values(["agreement", "sample_id"])
        return mis["sample_id"].tolist() + con["sample_id"].tolist()

    def summary(self) -> str:
        df = self.table.to_pandas()
        lines = []
        voted = df["votes_total"].notna()
        if voted.any():
            lines.append(
                f"votes: {int(voted.sum()):,} rows; contested (agreement < {CONTESTED_AGREEMENT:g}) "
                f"{int(df['contested'].fillna(False).sum()):,}; mean agreement {df.loc[voted, 'agreement'].mean():.3f}, "
                f"mean entropy {df.loc[voted, 'entropy_bits'].mean():.3f} bits"
            )
        if self.scored:
            n_mis = int(df["likely_mislabel"].fillna(False).sum())
            lines.append(f"model probabilities: {self.scored:,} rows scored, {n_mis:,} likely mislabels "
                         f"({n_mis / self.scored:.2%})" + (f"; {self.unscored:,} rows without probabilities" if self.unscored else ""))
        lines.extend(self.notes)
        if self.path:
            lines.append(f"layer -> {self.path}")
        return "\n".join(lines)


def label_noise(manifest: Manifest, probs: pd.DataFrame | None = None, *, write: bool = True) -> NoiseResult:
    """Vote statistics and (with ``probs``) confident-learning flags for every row of ``manifest``."""
    n = manifest.table.num_rows
    ids = manifest.table.column("sample_id").to_pylist()
    labels = manifest.table.column("label").cast(pa.string()).to_pylist()
    label_id = manifest.table.column("label_id").to_numpy(zero_copy_only=False).astype(np.int64)
    splits = manifest.table.column("split").cast(pa.string()).to_pylist()

    votes, has_votes = vote_matrix(manifest)
    st = vote_stats(votes)
    names = list(FERPLUS_VOTE_COLUMNS)
    display = [FERPLUS_LABELS[c] or c for c in names]
    contested = has_votes & (st["agreement"] < CONTESTED_AGREEMENT)

    prob_given = np.full(n, np.nan, dtype=np.float32)
    pred_prob = np.full(n, np.nan, dtype=np.float32)
    pred_label: list[str | None] = [None] * n
    mislabel = np.zeros(n, dtype=bool)
    rank = np.zeros(n, dtype=np.int64)
    scored_mask = np.zeros(n, dtype=bool)
    result = NoiseResult(pa.table({}), None)
    if probs is not None:
        probs = check_probs(probs, "probabilities")
        k = probs.shape[1] - 1
        pos = {sid: i for i, sid in enumerate(ids)}
        outside = [s for s in probs["sample_id"] if s not in pos]
        if outside:
            raise InputError(f"probabilities: {len(outside):,} sample ids are not in {manifest.path}, e.g. {outside[0]}")
        rows = np.array([pos[s] for s in probs["sample_id"]], dtype=np.int64)
        p = probs[[f"prob_{j}" for j in range(k)]].to_numpy(dtype=np.float64)
        usable = (label_id[rows] >= 0) & (label_id[rows] < k)
        rows, p = rows[usable], p[usable]
        scored_mask[rows] = True
        y = label_id[rows]
        pred = p.argmax(axis=1)
        prob_given[rows] = p[np.arange(len(rows)), y]
        pred_prob[rows] = p.max(axis=1)
        for r, c in zip(rows, pred):
            pred_label[r] = CANONICAL_LABELS[c]
        if len(rows):
            issues = find_label_issues(y, p)
            mislabel[rows] = issues
            flagged_rows = rows[issues]
            order = np.argsort(prob_given[flagged_rows], kind="stable")
            rank[flagged_rows[order]] = np.arange(1, len(order) + 1)
            result.joint = confident_joint(y, p)
        result.scored = int(len(rows))
        result.unscored = int(((label_id >= 0) & ~scored_mask).sum())
        if int((label_id >= k).sum()):
            result.notes.append(f"{int((label_id >= k).sum()):,} rows have a label outside the model's {k} classes (not scored)")

    def vote_name(idx: np.ndarray) -> list[str | None]:
        return [display[j] if has and j >= 0 else None for j, has in zip(idx, has_votes)]

    table = pa.Table.from_arrays(
        [
            pa.array(ids, pa.string()),
            pa.array(splits, pa.string()),
            pa.array(labels, pa.string()),
            pa.array(st["total"].astype(np.int16), pa.int16(), mask=~has_votes),
            pa.array(st["agreement"].astype(np.float32), pa.float32(), mask=~has_votes),
            pa.array(st["entropy"].astype(np.float32), pa.float32(), mask=~has_votes),
            pa.array(vote_name(st["winner"]), pa.string()),
            pa.array(vote_name(st["runner_up"]), pa.string()),
            pa.array(contested, pa.bool_(), mask=~has_votes),
            pa.array(prob_given, pa.float32(), mask=~scored_mask),
            pa.array(pred_label, pa.string()),
            pa.array(pred_prob, pa.float32(), mask=~scored_mask),
            pa.array(mislabel, pa.bool_(), mask=~scored_mask),
            pa.array([pred_label[i] if mislabel[i] else None for i in range(n)], pa.string()),
            pa.array(rank.astype(np.int32), pa.int32(), mask=rank == 0),
            pa.array(contested | mislabel),
        ],
        schema=NOISE_SCHEMA,
    )
    result.table = table
    if write:
        prov = {"contested_agreement": CONTESTED_AGREEMENT, "probabilities": probs is not None,
                "scored": result.scored}
        if result.joint is not None:
            prov["confident_joint"] = json.dumps(result.joint.tolist())
        result.path = write_layer(table, layer_path(manifest.path, "noise"), layer="noise",
                                  manifest=manifest.name, provenance=prov)
    return result
