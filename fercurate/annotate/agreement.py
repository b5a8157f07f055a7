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

An interval from a handful of faces, or of positive faces, says little however narrow it looks: with
1 glasses face among 6 that both raters marked, every resample holding that face gives kappa 1 and
every other resample is undefined (left out), so the interval is [1.00, 1.00]. :func:`too_few`
names such kappas: fewer than :data:`MIN_FACES` shared faces, or fewer than :data:`MIN_POSITIVES`
faces that either rater marked positive (for the type; occluded at all, for the exact and occluded
kappas). The thresholds are fercurate's rule of thumb for a warning, not a test: they change no figure.
"""

from __future__ import annotations

import itertools
import math
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fercurate.annotations import is_blind, latest_labels, types_key
from fercurate.compat import moved_module
from fercurate.schema import OCCLUDED_TYPES

# Raters: people, and the official lists' authors (``ran-authors``).
RATER_SOURCES: tuple[str, ...] = ("human", "official")
# Below these, a kappa and its interval are printed with a warning (:func:`too_few`).
MIN_FACES = 30
MIN_POSITIVES = 10
# Which types an unresolved official value leaves undetermined.
_UNDETERMINED = {"glasses|mask": {"glasses", "mask"}, "occluded": set(OCCLUDED_TYPES)}
__getattr__ = moved_module(__name__, "fercurate.schema", {"RESOLVED_TYPES": "fercurate.schema:OCCLUDED_TYPES"})


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
    occluded_positives: int = 0
    type_positives: dict[str, int] = field(default_factory=dict)

    def warnings(self) -> dict[str, str]:
        """Kappas too thin to read (``exact``, ``occluded``, a type) -> why (:func:`too_few`)."""
        found = {"exact": too_few(self.shared, self.occluded_positives),
                 "occluded": too_few(self.shared, self.occluded_positives)}
        found.update({t: too_few(self.type_n.get(t, 0), self.type_positives.get(t, 0)) for t in self.type_kappa})
        return {k: v for k, v in found.items() if v}


def too_few(faces: int, positives: int) -> str | None:
    """Why a kappa over ``faces`` shared faces, ``positives`` of them marked by either rater, says
    little (None when it has enough; see the module docstring)."""
    short = []
    if faces < MIN_FACES:
        short.append(f"{faces} face(s) < {MIN_FACES}")
    if positives < MIN_POSITIVES:
        short.append(f"{positives} positive(s) < {MIN_POSITIVES}")
    return "too few to judge: " + ", ".join(short) if short else None


def independent_events(events: pa.Table) -> pa.Table:
    """The human events that count as independent: labels made blind, and withdrawals of any origin
    (a withdrawn label is no label, whoever saw what)."""
    keep = events.filter(pc.equal(events.column("source"), "human"))
    if keep.num_rows == 0:
        return keep
    origin = keep.column("origin").to_pylist()
    empty = pc.equal(pc.list_value_length(keep.column("types")), 0).to_pylist()
    return keep.filter(pa.array([is_blind(o) or e for o, e in zip(origin, empty)], pa.bool_()))


def rater_labels(events: pa.Table, *, independent_only: bool = False) -> pd.DataFrame:
    """Each rater's latest label per sample (:data:`RATER_SOURCES`), as :func:`fercurate.annotations.latest_labels`
    with ``per_annotator`` gives it; with ``independent_only`` only blind human labels count."""
    if independent_only:
        return latest_labels(independent_events(events), source="human", per_annotator=True)
    return latest_labels(events, source=RATER_SOURCES, per_annotator=True)


def labels_by_sample(people: pd.DataFrame) -> dict[str, dict[str, str]]:
    """sample_id -> {annotator: ``a|b``} of per-annotator labels (annotators sorted): what a person reads."""
    people = people.sort_values(["sample_id", "annotator"])
    return {sid: dict(zip(g["annotator"], g["types"].map(types_key))) for sid, g in people.groupby("sample_id", sort=True)}


def latest_by_annotator(
    events: pa.Table, sources: tuple[str, ...] = RATER_SOURCES, *, independent_only: bool = False
) -> pd.DataFrame:
    """Deprecated (issue 30): :func:`rater_labels`, or ``latest_labels(events, source=..., per_annotator=True)``."""
    warnings.warn("fercurate.annotate.agreement.latest_by_annotator is rater_labels (or "
                  "fercurate.annotations.latest_labels(events, source=..., per_annotator=True)) now; call that",
                  DeprecationWarning, stacklevel=2)
    columns = ["sample_id", "annotator", "source", "types_key", "labelled_at"]
    if independent_only:
        df = rater_labels(events, independent_only=True)
    else:
        df = latest_labels(events, source=sources, per_annotator=True)
    if df.empty:
        return pd.DataFrame(columns=columns)
    return df.assign(types_key=df["types"].map(types_key))[columns].reset_index(drop=True)


def _has_type(types: tuple[str, ...], t: str) -> bool | None:
    """True/False: does the label contain type t; None when the label leaves t undetermined (an
    unresolved official value)."""
    if len(types) == 1 and t in _UNDETERMINED.get(types[0], ()):
        return None
    return t in types


def _occluded(types: tuple[str, ...]) -> bool:
    return types != ("none",)


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

    ``independent_only``: only blind human labels (see :func:`rater_labels`). Each kappa
    gets a ``ci`` bootstrap interval from ``n_boot`` resamples of the pair's shared samples, drawn
    from :func:`pair_rng` (``seed`` and the pair's names; the same resamples serve the exact,
    occluded and per-type kappas of a pair); ``n_boot=0`` skips the intervals (all ``(nan, nan)``).
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must be between 0 and 1, got {ci}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    latest = rater_labels(events, independent_only=independent_only)
    if latest.empty:
        return []
    # a label's types as one hashable category (a tuple of names) for the kappas
    wide = latest.assign(types=latest["types"].map(tuple)).pivot(index="sample_id", columns="annotator", values="types")
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
            occluded_positives=sum(_occluded(x) or _occluded(y) for x, y in zip(ka, kb)),
        )
        n = len(both)
        everyone = np.ones(n, dtype=bool)
        codes = _codes(list(ka) + list(kb))
        stats = [
            (codes[:n], codes[n:], everyone),
            (np.array([_occluded(x) for x in ka], np.int64), np.array([_occluded(x) for x in kb], np.int64), everyone),
        ]
        for t in OCCLUDED_TYPES:
            ha = [_has_type(x, t) for x in ka]
            hb = [_has_type(x, t) for x in kb]
            keep = np.array([x is not None and y is not None for x, y in zip(ha, hb)], dtype=bool)
            pair.type_n[t] = int(keep.sum())
            pair.type_positives[t] = sum(bool(x or y) for x, y, k in zip(ha, hb, keep) if k)
            pair.type_kappa[t] = cohen_kappa([x for x, k in zip(ha, keep) if k], [y for y, k in zip(hb, keep) if k])
            stats.append((np.array([bool(x) for x in ha], np.int64), np.array([bool(y) for y in hb], np.int64), keep))
        points = [pair.exact_kappa, pair.occluded_kappa, *pair.type_kappa.values()]
        intervals = [NAN_CI] * len(points)
        if n_boot:
            boots = _bootstrap_kappas(stats, n, n_boot, pair_rng(seed, a, b))
            intervals = [NAN_CI if math.isnan(p) else _interval(k, ci) for p, k in zip(points, boots)]
        pair.exact_ci, pair.occluded_ci = intervals[0], intervals[1]
        pair.type_ci = dict(zip(OCCLUDED_TYPES, intervals[2:]))
        out.append(pair)
    return out


def conflicts(events: pa.Table) -> pd.DataFrame:
    """Samples where people's latest labels differ (withdrawn labels left out): sample_id and ``labels``
    (annotator -> ``a|b``)."""
    people = latest_labels(events, source="human", per_annotator=True)
    if people.empty:
        return pd.DataFrame(columns=["sample_id", "labels"])
    distinct = people["types"].map(tuple).groupby(people["sample_id"]).nunique()
    differ = labels_by_sample(people[people["sample_id"].isin(distinct[distinct > 1].index)])
    rows = [{"sample_id": sid, "labels": labels} for sid, labels in differ.items()]
    return pd.DataFrame(rows, columns=["sample_id", "labels"])
