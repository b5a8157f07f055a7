"""Inter-annotator agreement on multi-label occlusion labels (Cohen's kappa), and conflicts.

Occlusion labels are *sets* of types, so one number can't say everything. For every pair of
annotators (people, and the official list's ``ran-authors`` as a rater too) we use each one's
latest label per sample and, on the samples both labelled, report:

* ``exact_kappa``: Cohen's kappa with each distinct type set (``{glasses, mask}``, ``{none}`` ...)
  as one category: agreement means the same set;
* ``occluded_kappa``: kappa on the binary question "occluded at all?" (any type except ``none``);
* ``type_kappa[t]``: kappa on "has type t?" for each of the five types, over the shared samples
  where both labels say something definite about t: an unresolved official value (``glasses|mask``
  says nothing definite about glasses or mask alone; ``occluded`` about any type) leaves the sample
  out of those types' kappas.

Kappa is ``nan`` when chance agreement is 1 (both raters used one category only), because then it
is undefined; ``agreement`` (the raw fraction of identical sets) is always given.

A withdrawn label (:func:`fercurate.annotations.make_withdrawal`) is no label. With
``independent_only`` only labels made blind (origin :data:`fercurate.annotations.BLIND_ORIGIN`...)
count: a second annotator who saw the first's label is not an independent rater, and kappa over
such labels is inflated. Every kappa comes with a bootstrap confidence interval: the shared samples
are resampled with replacement ``n_boot`` times (seeded) and the interval is the central ``ci``
fraction of the resampled kappas (resamples where kappa is undefined are left out).
"""

from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fercurate.annotations import is_blind, latest_per_annotator
from fercurate.schema import OCCLUSION_TYPES

RESOLVED_TYPES: tuple[str, ...] = tuple(t for t in OCCLUSION_TYPES if t != "none")
# Which types an unresolved official value leaves undetermined.
_UNDETERMINED = {"glasses|mask": {"glasses", "mask"}, "occluded": set(RESOLVED_TYPES)}


def cohen_kappa(a: np.ndarray | list, b: np.ndarray | list) -> float:
    """Cohen's kappa of two raters' categorical labels on the same items (``nan`` if undefined)."""
    a = np.asarray(a, dtype=object)
    b = np.asarray(b, dtype=object)
    if a.shape != b.shape:
        raise ValueError("both raters must label the same items")
    n = len(a)
    if n == 0:
        return float("nan")
    cats = sorted(set(a.tolist()) | set(b.tolist()), key=str)
    index = {c: i for i, c in enumerate(cats)}
    ia = np.fromiter((index[x] for x in a), dtype=np.int64, count=n)
    ib = np.fromiter((index[x] for x in b), dtype=np.int64, count=n)
    po = float(np.mean(ia == ib))
    pa_ = np.bincount(ia, minlength=len(cats)) / n
    pb_ = np.bincount(ib, minlength=len(cats)) / n
    pe = float(np.dot(pa_, pb_))
    if np.isclose(pe, 1.0):
        return float("nan")
    return (po - pe) / (1.0 - pe)


NAN_CI: tuple[float, float] = (math.nan, math.nan)


@dataclass
class PairAgreement:
    """Agreement between two annotators on the samples both labelled.

    ``*_ci`` are bootstrap confidence intervals (lower, upper), ``(nan, nan)`` where undefined;
    ``independent`` says whether only blind (independent) labels were used.
    """

    a: str
    b: str
    shared: int
    agreement: float
    exact_kappa: float
    occluded_kappa: float
    type_kappa: dict[str, float] = field(default_factory=dict)
    type_n: dict[str, int] = field(default_factory=dict)
    exact_ci: tuple[float, float] = NAN_CI
    occluded_ci: tuple[float, float] = NAN_CI
    type_ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    independent: bool = False


_LATEST_COLUMNS = ["sample_id", "annotator", "source", "types_key", "labelled_at"]


def latest_by_annotator(
    events: pa.Table, sources: tuple[str, ...] = ("human", "official"), *, independent_only: bool = False
) -> pd.DataFrame:
    """Each annotator's latest label per sample: columns sample_id, annotator, source, types_key, labelled_at.

    An annotator whose latest event (among ``sources``) is a withdrawal has no row for that sample.
    With ``independent_only``, only human labels made blind count (withdrawals of any origin still
    remove them).
    """
    if events.num_rows == 0:
        return pd.DataFrame(columns=_LATEST_COLUMNS)
    if independent_only:
        sources = ("human",)
    keep = events.filter(pc.is_in(events.column("source"), value_set=pa.array(list(sources), pa.string())))
    if independent_only and keep.num_rows:
        origin = keep.column("origin").to_pylist()
        empty = pc.equal(pc.list_value_length(keep.column("types")), 0).to_pylist()
        keep = keep.filter(pa.array([is_blind(o) or e for o, e in zip(origin, empty)], pa.bool_()))
    df = latest_per_annotator(keep)
    if df.empty:
        return pd.DataFrame(columns=_LATEST_COLUMNS)
    df["types_key"] = df["types"].map(lambda t: "|".join(sorted(t)))
    return df[_LATEST_COLUMNS].reset_index(drop=True)


def _has_type(key: str, t: str) -> bool | None:
    """True/False: does the label contain type t; None when the label leaves t undetermined."""
    parts = set(key.split("|"))
    if key in _UNDETERMINED and t in _UNDETERMINED[key]:
        return None
    return t in parts


def _occluded(key: str) -> bool:
    return key != "none"


# Resamples are drawn in blocks of at most this many (resample, sample) cells, bounding memory.
_BLOCK_CELLS = 4_000_000


def _bootstrap_kappas(
    stats: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n: int, n_boot: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Kappa of each statistic (codes_a, codes_b, counted mask) over ``n_boot`` resamples of ``n`` items.

    Every statistic sees the same resamples (drawn as one index matrix per block); an item outside a
    statistic's mask weighs nothing in it.
    """
    out: list[list[np.ndarray]] = [[] for _ in stats]
    block = max(1, _BLOCK_CELLS // max(n, 1))
    for start in range(0, n_boot, block):
        rows = min(block, n_boot - start)
        idx = rng.integers(0, n, size=(rows, n))
        flat = idx + (np.arange(rows)[:, None] * n)
        weights = np.bincount(flat.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)
        for k, (code_a, code_b, mask) in enumerate(stats):
            out[k].append(_weighted_kappas(code_a, code_b, weights * mask))
    return [np.concatenate(parts) for parts in out]


def _weighted_kappas(codes_a: np.ndarray, codes_b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Cohen's kappa per row of ``weights`` (each row: how often each item is counted), nan if undefined."""
    n_cat = int(max(codes_a.max(), codes_b.max())) + 1
    total = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        po = (weights @ (codes_a == codes_b).astype(np.float64)) / total
        pe = np.sum((weights @ np.eye(n_cat)[codes_a]) * (weights @ np.eye(n_cat)[codes_b]), axis=1) / total**2
        kappa = (po - pe) / (1.0 - pe)
    kappa[(total == 0) | np.isclose(pe, 1.0)] = np.nan
    return kappa


def _interval(kappas: np.ndarray, ci: float) -> tuple[float, float]:
    """Central ``ci`` percentile interval of the defined kappas; (nan, nan) if none is."""
    finite = kappas[~np.isnan(kappas)]
    if finite.size == 0:
        return NAN_CI
    lo, hi = np.percentile(finite, [50 * (1 - ci), 50 * (1 + ci)])
    return float(lo), float(hi)


def _codes(values: list) -> np.ndarray:
    cats = {c: i for i, c in enumerate(sorted(set(values), key=str))}
    return np.fromiter((cats[v] for v in values), dtype=np.int64, count=len(values))


def pair_rng(seed: int, a: str, b: str) -> np.random.Generator:
    """The bootstrap's generator for the pair (a, b), seeded by ``seed`` and both names.

    Seeding by the names (not the pair's position) keeps a pair's interval when other annotators join.
    """
    return np.random.default_rng([seed, zlib.crc32(f"{a}\x1f{b}".encode())])


def pairwise_agreement(
    events: pa.Table,
    *,
    independent_only: bool = False,
    ci: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[PairAgreement]:
    """Agreement for every pair of annotators with at least one shared sample, sorted by pair.

    ``independent_only``: only blind human labels (see :func:`latest_by_annotator`). Each kappa
    gets a ``ci`` bootstrap interval from ``n_boot`` resamples of the pair's shared samples, drawn
    from :func:`pair_rng` (``seed`` and the pair's names; the same resamples serve the exact,
    occluded and per-type kappas of a pair); ``n_boot=0`` skips the intervals (all ``(nan, nan)``).
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must be between 0 and 1, got {ci}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    latest = latest_by_annotator(events, independent_only=independent_only)
    if latest.empty:
        return []
    wide = latest.pivot(index="sample_id", columns="annotator", values="types_key")
    out = []
    for a, b in itertools.combinations(sorted(wide.columns), 2):
        both = wide[[a, b]].dropna()
        if both.empty:
            continue
        ka, kb = both[a].to_numpy(dtype=object), both[b].to_numpy(dtype=object)
        pair = PairAgreement(
            a=a,
            b=b,
            shared=len(both),
            agreement=float(np.mean(ka == kb)),
            exact_kappa=cohen_kappa(ka, kb),
            occluded_kappa=cohen_kappa([_occluded(x) for x in ka], [_occluded(x) for x in kb]),
            independent=independent_only,
        )
        n = len(both)
        everyone = np.ones(n, dtype=bool)
        codes = _codes(list(ka) + list(kb))
        stats = [
            (codes[:n], codes[n:], everyone),
            (np.array([_occluded(x) for x in ka], np.int64), np.array([_occluded(x) for x in kb], np.int64), everyone),
        ]
        for t in RESOLVED_TYPES:
            ha = [_has_type(x, t) for x in ka]
            hb = [_has_type(x, t) for x in kb]
            keep = np.array([x is not None and y is not None for x, y in zip(ha, hb)], dtype=bool)
            pair.type_n[t] = int(keep.sum())
            pair.type_kappa[t] = cohen_kappa([x for x, k in zip(ha, keep) if k], [y for y, k in zip(hb, keep) if k])
            stats.append((np.array([bool(x) for x in ha], np.int64), np.array([bool(y) for y in hb], np.int64), keep))
        points = [pair.exact_kappa, pair.occluded_kappa, *pair.type_kappa.values()]
        intervals = [NAN_CI] * len(points)
        if n_boot:
            boots = _bootstrap_kappas(stats, n, n_boot, pair_rng(seed, a, b))
            intervals = [NAN_CI if math.isnan(p) else _interval(k, ci) for p, k in zip(points, boots)]
        pair.exact_ci, pair.occluded_ci = intervals[0], intervals[1]
        pair.type_ci = dict(zip(RESOLVED_TYPES, intervals[2:]))
        out.append(pair)
    return out


def conflicts(events: pa.Table) -> pd.DataFrame:
    """Samples where people's latest labels differ (withdrawn labels left out): sample_id and ``labels``."""
    latest = latest_by_annotator(events, sources=("human",))
    if latest.empty:
        return pd.DataFrame(columns=["sample_id", "labels"])
    grouped = latest.groupby("sample_id")
    distinct = grouped["types_key"].nunique()
    sub = latest[latest["sample_id"].isin(distinct[distinct > 1].index)]
    rows = [
        {"sample_id": sid, "labels": dict(zip(part["annotator"], part["types_key"]))}
        for sid, part in sub.groupby("sample_id", sort=True)
    ]
    return pd.DataFrame(rows, columns=["sample_id", "labels"])
