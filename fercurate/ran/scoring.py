"""What an evaluation scored: the faces and the model's outputs (:class:`Scored`), and the groups over them.

A :class:`Group` is one line of ``fercurate eval``'s table: a split asked for, or a subset (within the
splits, when splits are given). It is built once per evaluation (:func:`build_groups`) and holds which
scored faces are its own, what it leaves out (rows that could not be scored, unlabelled rows, subset
members outside the splits scored), its paper condition with the published rows on it
(:mod:`fercurate.published`) and the notes a reader needs; :func:`score_groups` adds its scores. The
console table, the leaderboards and the report files all read the same groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from fercurate import published
from fercurate.labels import CANONICAL_LABELS
from fercurate.manifest import Manifest
from fercurate.published import PublishedResult
from fercurate.faces.store import FaceStore
from fercurate.ran.data import Samples
from fercurate.ran.metrics import accuracy_summary
from fercurate.ran.predictor import Predictor
from fercurate.subsets import SubsetInfo, paper_condition, paper_name


@dataclass
class Scored:
    """The faces an evaluation scored and the model's outputs on them, in sample order."""

    predictor: Predictor
    manifest: Manifest
    samples: Samples  # the scored rows; ``samples.excluded`` are the rows that could not be scored
    store: FaceStore | None  # their decoded faces (None without the face cache)
    landmarks: np.ndarray | None  # (N, 2L) landmark fractions, for landmark crops
    probs: np.ndarray  # (N, K) probabilities in canonical order of the model's classes
    mu: np.ndarray | None  # (N, crops) RAN's self-attention weights
    nu: np.ndarray | None  # (N, crops) RAN's relation-attention weights

    @cached_property
    def class_ids(self) -> np.ndarray:
        """The canonical ids of the model's classes, in the order of ``probs``' columns."""
        return np.asarray([CANONICAL_LABELS.index(c) for c in self.predictor.labels])

    @cached_property
    def preds(self) -> np.ndarray:
        """(N,) the predicted canonical class ids."""
        return self.class_ids[self.probs.argmax(1)]


@dataclass
class Group:
    """One scored group: a split, or a subset as asked for (``pose45``)."""

    name: str
    kind: str  # "split" or "subset"
    scored_list: str  # what was scored, as the table names it ("split test (all rows)", "<subset>: <rule> [n rows]")
    mask: np.ndarray  # (N,) bool: which of the scored faces are this group's
    excluded: int  # its rows that could not be scored (unreadable image, label outside the model's classes)
    unlabelled: int  # its scored rows without a label (not counted in accuracy)
    outside: int = 0  # subset members outside the splits scored (not scored)
    condition: str | None = None  # the paper's test condition it is (test, pose45, ...); None: not a paper's
    published: tuple[PublishedResult, ...] = ()  # published rows on the condition with the model's class count
    published_other: int = 0  # published rows on the condition with another class count (not comparable)
    published_size: tuple[int, str] | None = None  # the paper subset's published size and its source
    notes: tuple[str, ...] = ()
    scores: dict[str, Any] = field(default_factory=dict)  # accuracy, CIs, per-class table, confusion (score_groups)

    def as_dict(self) -> dict[str, Any]:
        """The group as ``metrics.json`` and :class:`fercurate.ran.evaluate.EvalResult` give it."""
        return {
            **self.scores,
            "group": self.name,
            "list": self.scored_list,
            "condition": self.condition,
            "unlabelled": self.unlabelled,
            "excluded": self.excluded,
            "published": [r.as_dict() for r in self.published],
            "published_size": None if self.published_size is None else
            {"size": self.published_size[0], "source": self.published_size[1]},
        }


def _on_condition(dataset: str, condition: str | None, num_classes: int) -> dict[str, Any]:
    """The published rows on a paper condition: those with ``num_classes`` classes, and how many others."""
    if condition is None:
        return {}
    rows = published.leaderboard(dataset, condition)
    same = tuple(r for r in rows if r.num_classes == num_classes)
    return {"condition": condition, "published": same, "published_other": len(rows) - len(same)}


def build_groups(samples: Samples, splits: list[str], subsets: list[tuple[str, SubsetInfo, set[str]]],
                 dataset: str, num_classes: int) -> list[Group]:
    """Each split, then each subset (name asked for, what it resolved to, its sample ids), over ``samples``."""
    ids = samples.sample_ids
    excluded_ids = np.asarray(sorted({e["sample_id"] for e in samples.excluded}), dtype=object)
    unlabelled = samples.labels < 0
    groups = []
    if splits:
        row_split = np.asarray([samples.split_of[i] for i in ids.tolist()], dtype=object)
        excluded_split = np.asarray([samples.split_of.get(i) for i in excluded_ids.tolist()], dtype=object)
    for split in splits:
        mask = row_split == split
        groups.append(Group(split, "split", f"split {split} (all rows)", mask, int((excluded_split == split).sum()),
                            int((unlabelled & mask).sum()), **_on_condition(dataset, split, num_classes)))
    scored = set(ids.tolist()) | set(excluded_ids.tolist())
    for name, info, members in subsets:
        member_ids = np.asarray(sorted(members), dtype=object)
        mask = np.isin(ids, member_ids)
        cond = paper_condition(info)
        notes = []
        if cond is None and published.leaderboard(dataset, paper_name(info.name).replace("-or-", "|")):
            notes.append(f"{name}: fercurate's own subset ({info.rule}); the papers' figures are for the official "
                         f"list, not shown beside it")
        outside = len(members - scored) if splits else 0
        if outside:
            notes.append(f"{name}: {outside} of its {len(members)} samples are not in split {', '.join(splits)} and "
                         f"were not scored")
        groups.append(Group(name, "subset", f"{info.name}: {info.rule} [{info.size} rows]", mask,
                            int(np.isin(excluded_ids, member_ids).sum()), int((unlabelled & mask).sum()), outside,
                            **_on_condition(dataset, cond, num_classes),
                            published_size=published.subset_size(dataset, cond) if cond else None, notes=tuple(notes)))
    return groups


def score_groups(groups: list[Group], scored: Scored, *, n_boot: int, seed: int) -> None:
    """Fill each group's scores: accuracy with bootstrap CIs, mean per-class accuracy, per-class table and
    confusion matrix, over the model's classes only."""
    labels, class_ids = scored.samples.labels, scored.class_ids
    for g in groups:
        summ = accuracy_summary(labels[g.mask], scored.preds[g.mask], len(CANONICAL_LABELS), n_boot=n_boot, seed=seed)
        summ["per_class"] = [c for c in summ["per_class"] if c["class"] in scored.predictor.labels]
        summ["confusion"] = np.asarray(summ["confusion"])[np.ix_(class_ids, class_ids)].tolist()
        g.scores = summ
