"""FER+ vote counts: what the 10 annotators' votes per image mean, for ingest, training and quality.

Each FERPlus image has 10 counts in FER+ column order (8 emotions, ``unknown``, ``NF``; see
``schema.FERPLUS_VOTE_COLUMNS``), kept in the manifest's ``label_votes``. The label is the majority
vote (argmax, ties to the first column in FER+ order, flagged ``tie``); an ``unknown`` or ``NF``
majority gives no canonical label (flags ``unknown_majority`` / ``nf_majority``), as the FER+ paper
excludes those images. :func:`vote_targets` turns the counts into training targets.

Scoring a model on vote-labelled faces needs a **label rule**, which decides the faces that have a
label at all (:data:`LABEL_RULES`, :func:`label_rule_mask`): ``plurality`` (the most-voted class; ties
left out) or ``majority`` (FER+'s own rule, ``FERPlusReader._process_data`` in Microsoft/FERPlus
``src/ferplus.py``: single votes are dropped as outliers, then a class must hold more than half of the
remaining votes; FER+'s ``train.py`` scores validation and test this way). RAN's FERPlus test list
(``dlib_ferplus_val_center_crop_range_list.txt``, 3,137 faces) is exactly the FER2013Test faces the
majority rule keeps from ``label.csv``, and the Occlusion / Pose lists are subsets of it with no ties,
so both rules keep every face of those lists.

One home for these rules, so the ingest (``fercurate.ingest.ferplus``), the trainer and the quality
checks read votes the same way without depending on one another.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fercurate.errors import InputError
from fercurate.schema import CANONICAL_LABELS, FERPLUS_LABELS, FERPLUS_VOTE_COLUMNS, LABEL_TO_ID, NO_LABEL_ID

N_VOTES = len(FERPLUS_VOTE_COLUMNS)  # 10: 8 emotions, unknown, NF
UNKNOWN_INDEX, NF_INDEX = 8, 9
# FER+ vote column (0..7) -> canonical label id.
FERPLUS_TO_CANONICAL = np.array(
    [LABEL_TO_ID[FERPLUS_LABELS[c]] for c in FERPLUS_VOTE_COLUMNS[:8]], dtype=np.int8
)
_MAX_VOTE = np.iinfo(np.int16).max
_NUMBER_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

FLAG_UNKNOWN = "unknown_majority"
FLAG_NF = "nf_majority"
FLAG_TIE = "tie"

LABEL_RULES = ("plurality", "majority")
DEFAULT_LABEL_RULE = "majority"
LABEL_RULE_TEXT = {
    "plurality": "the most-voted class; faces with tied top votes are left out",
    "majority": "FER+'s rule: a class holding more than half of the votes once single votes are dropped",
}
DEFAULT_RULE_SOURCE = ("default: FER+'s test protocol (Microsoft/FERPlus src/train.py scores in 'majority' mode); "
                       "RAN's FERPlus test list holds exactly the faces it keeps")


def majority_labels(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Majority vote per row of (N, 10) FER+ counts: (canonical label_id, FER+ argmax index, tie).

    The argmax takes the first maximum in FER+ column order, so ties are broken deterministically;
    label_id is -1 where the majority is ``unknown`` or ``NF``.
    """
    votes = np.asarray(votes)
    if votes.ndim != 2 or votes.shape[1] != N_VOTES:
        raise ValueError(f"votes must have shape (N, {N_VOTES}), got {votes.shape}")
    top_index = votes.argmax(axis=1)
    top = votes.max(axis=1)
    tie = (votes == top[:, None]).sum(axis=1) > 1
    label_id = np.where(
        top_index < UNKNOWN_INDEX, FERPLUS_TO_CANONICAL[np.minimum(top_index, 7)], NO_LABEL_ID
    ).astype(np.int8)
    return label_id, top_index, tie


def label_rule_mask(votes: np.ndarray, rule: str) -> tuple[np.ndarray, list[str | None]]:
    """Which rows of (N, 10) FER+ counts have an emotion label under ``rule``, and why the others do not.

    Returns ``(kept (N,) bool, reasons)``: ``reasons[i]`` is None for kept rows and for rows whose top
    vote is ``unknown`` / ``NF`` (those have no label under any rule: the manifest's label_id is -1),
    else a sentence naming the votes. The kept rows' class is the top vote, as in the manifest.
    """
    if rule not in LABEL_RULES:
        raise InputError(f"--label-rule must be plurality or majority, not {rule!r}")
    v = np.asarray(votes, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != N_VOTES:
        raise ValueError(f"votes must have shape (N, {N_VOTES}), got {v.shape}")
    names = list(FERPLUS_VOTE_COLUMNS)
    if rule == "plurality":
        top = v.max(axis=1)
        tied = (v == top[:, None]).sum(axis=1) > 1
        no_emotion = ~tied & (v.argmax(axis=1) >= UNKNOWN_INDEX)
        kept = ~tied & ~no_emotion
        reasons = [None if not t else "plurality rule: tied top votes (" + ", ".join(
            f"{names[j]} {int(v[i, j])}" for j in np.flatnonzero(v[i] == top[i])) + f" of {int(v[i].sum())})"
            for i, t in enumerate(tied)]
        return kept, reasons
    counted = np.where(v <= 1, 0.0, v)  # FER+: a single vote is an outlier
    total, top, winner = counted.sum(axis=1), counted.max(axis=1), counted.argmax(axis=1)
    clear = top > 0.5 * total
    kept = clear & (winner < UNKNOWN_INDEX)
    reasons = [None if c else f"majority rule: no class holds more than half of the votes (top {names[winner[i]]} "
               f"{int(top[i])} of {int(total[i])} counted, single votes dropped)" for i, c in enumerate(clear)]
    return kept, reasons


def vote_flags(votes: np.ndarray, top_index: np.ndarray, tie: np.ndarray) -> list[list[str]]:
    """The manifest flags of each row: an unknown/NF majority, a tie, and counts not summing to 10."""
    sums = votes.sum(axis=1)
    flags: list[list[str]] = [[] for _ in range(len(votes))]
    for i in np.flatnonzero(top_index == UNKNOWN_INDEX):
        flags[i].append(FLAG_UNKNOWN)
    for i in np.flatnonzero(top_index == NF_INDEX):
        flags[i].append(FLAG_NF)
    for i in np.flatnonzero(tie):
        flags[i].append(FLAG_TIE)
    for i in np.flatnonzero(sums != 10):
        flags[i].append(f"votes_sum:{int(sums[i])}")
    return flags


def vote_targets(votes: Any, mode: str = "majority") -> tuple[np.ndarray, np.ndarray]:
    """Training targets from FER+ vote counts: ``(targets (N, 8) float32, valid (N,) bool)``.

    Columns are the 8 canonical labels in canonical order (column k = ``label_id`` k); rows that
    are not ``valid`` (FER+ would exclude them) are all zeros. ``votes`` is (N, 10) counts in FER+
    order, e.g. ``votes_array(manifest.table)``.

    * ``majority`` (the RAN paper's default): one-hot at the manifest label (argmax over the 10
      votes); invalid where the majority is unknown or NF.
    * ``probability``: the vote distribution of the FER+ paper/code ("PLD" and cross-entropy
      targets, ``FERPlusReader._process_data``): single votes are dropped as outliers, then the
      top-voted emotions are kept (at most 3, until they hold 75% of the votes); the image is
      excluded if they hold no more than half the votes, or if unknown/NF wins; the 8 emotions are
      normalised to sum to 1.
    """
    v = np.asarray(votes, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != N_VOTES:
        raise ValueError(f"votes must have shape (N, {N_VOTES}), got {v.shape}")
    n = v.shape[0]
    targets = np.zeros((n, len(CANONICAL_LABELS)), dtype=np.float32)
    if mode == "majority":
        label_id, _, _ = majority_labels(v)
        valid = label_id >= 0
        targets[np.flatnonzero(valid), label_id[valid]] = 1.0
        return targets, valid
    if mode != "probability":
        raise ValueError(f"unknown vote target mode {mode!r} (majority, probability)")
    # Many images share a vote vector: compute each distinct one once.
    uniq, inverse = np.unique(v, axis=0, return_inverse=True)
    dist = np.zeros((len(uniq), N_VOTES), dtype=np.float64)
    for i, row in enumerate(uniq):
        dist[i] = _fer_probability(row)
    keep = dist.argmax(axis=1) < UNKNOWN_INDEX
    emo = dist[:, :UNKNOWN_INDEX]
    sums = emo.sum(axis=1, keepdims=True)
    emo = np.divide(emo, sums, out=np.zeros_like(emo), where=sums > 0)
    uniq_targets = np.zeros((len(uniq), len(CANONICAL_LABELS)), dtype=np.float32)
    uniq_targets[:, FERPLUS_TO_CANONICAL] = emo
    uniq_targets[~keep] = 0.0
    inverse = np.asarray(inverse).reshape(-1)
    return uniq_targets[inverse], keep[inverse]


def votes_array(table: pa.Table) -> np.ndarray:
    """The ``label_votes`` column of a FERPlus manifest table as an (N, 10) int16 array, row order kept."""
    col = table.column("label_votes").combine_chunks()
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if col.null_count or (len(lengths) and (lengths != N_VOTES).any()):
        raise InputError(f"label_votes: every row needs {N_VOTES} FER+ vote counts (is this a FERPlus manifest?)")
    return pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.int16).reshape(-1, N_VOTES)


def _fer_probability(raw: np.ndarray) -> np.ndarray:
    """FER+'s probability/cross-entropy processing of one vote vector (10 counts -> 10 weights)."""
    raw = np.where(raw <= 1.0, 0.0, raw)  # a single vote is treated as an outlier
    total = raw.sum()
    unknown = np.zeros(N_VOTES)
    unknown[UNKNOWN_INDEX] = 1.0
    if total <= 0:
        return unknown
    emotion = np.zeros(N_VOTES)
    kept_sum, count, valid = 0.0, 0, True
    while kept_sum < 0.75 * total and count < 3 and valid:
        top = raw.max()
        for i in range(N_VOTES):
            if raw[i] == top:
                emotion[i] = top
                raw[i] = 0.0
                kept_sum += top
                count += 1
                if i >= UNKNOWN_INDEX:  # unknown / non-face reached: stop here
                    valid = False
                    if emotion.sum() > top:  # emotions came first: drop the unknown/NF share
                        emotion[i] = 0.0
                        count -= 1
                    break
    if emotion.sum() <= 0.5 * total or count > 3:
        return unknown
    return emotion / emotion.sum()


def parse_votes(fields: Sequence[str]) -> tuple[list[int] | None, str | None]:
    """The 10 vote counts of a row, or the reason they are unusable (naming the column)."""
    if len(fields) != N_VOTES:
        return None, f"expected {N_VOTES} vote counts, found {len(fields)}"
    joined = "".join(fields)
    if joined.isascii() and joined.isdigit() and all(fields):  # the common case, fast
        out = [int(f) for f in fields]
        if max(out) <= _MAX_VOTE and sum(out) > 0:
            return out, None
    out = []
    for col, raw in zip(FERPLUS_VOTE_COLUMNS, fields):
        s = raw.strip()
        if s.isascii() and s.isdigit():
            value = int(s)
            if value > _MAX_VOTE:
                return None, f"vote count {s!r} for {col} is too large"
            out.append(value)
            continue
        if not s:
            return None, f"empty vote count for {col}"
        if s.startswith("-") and _NUMBER_RE.match(s):
            return None, f"negative vote count {s!r} for {col}"
        if _NUMBER_RE.match(s):
            return None, f"vote count {s!r} for {col} is not a whole number"
        return None, f"vote count {s!r} for {col} is not a number"
    if sum(out) == 0:
        return None, "no votes (all 10 counts are 0)"
    return out, None
