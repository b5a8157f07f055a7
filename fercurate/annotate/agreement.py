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
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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


@dataclass
class PairAgreement:
    """Agreement between two annotators on the samples both labelled."""

    a: str
    b: str
    shared: int
    agreement: float
    exact_kappa: float
    occluded_kappa: float
    type_kappa: dict[str, float] = field(default_factory=dict)
    type_n: dict[str, int] = field(default_factory=dict)


def latest_by_annotator(events: pa.Table, sources: tuple[str, ...] = ("human", "official")) -> pd.DataFrame:
    """Each annotator's latest label per sample: columns sample_id, annotator, source, types_key."""
    if events.num_rows == 0:
        return pd.DataFrame(columns=["sample_id", "annotator", "source", "types_key", "labelled_at"])
    keep = events.filter(pc.is_in(events.column("source"), value_set=pa.array(list(sources))))
    df = keep.select(["sample_id", "annotator", "source", "types", "labelled_at"]).to_pandas()
    df["types_key"] = df["types"].map(lambda t: "|".join(sorted(t)))
    df = df.sort_values(["sample_id", "annotator", "labelled_at"]).groupby(["sample_id", "annotator"]).tail(1)
    return df[["sample_id", "annotator", "source", "types_key", "labelled_at"]].reset_index(drop=True)


def _has_type(key: str, t: str) -> bool | None:
    """True/False: does the label contain type t; None when the label leaves t undetermined."""
    parts = set(key.split("|"))
    if key in _UNDETERMINED and t in _UNDETERMINED[key]:
        return None
    return t in parts


def _occluded(key: str) -> bool:
    return key != "none"


def pairwise_agreement(events: pa.Table) -> list[PairAgreement]:
    """Agreement for every pair of annotators with at least one shared sample, sorted by pair."""
    latest = latest_by_annotator(events)
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
        )
        for t in RESOLVED_TYPES:
            ha = [_has_type(x, t) for x in ka]
            hb = [_has_type(x, t) for x in kb]
            keep = [i for i in range(len(ha)) if ha[i] is not None and hb[i] is not None]
            pair.type_n[t] = len(keep)
            pair.type_kappa[t] = cohen_kappa([ha[i] for i in keep], [hb[i] for i in keep])
        out.append(pair)
    return out


def conflicts(events: pa.Table) -> pd.DataFrame:
    """Samples where people's latest labels differ: sample_id and ``labels`` (annotator -> types)."""
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
