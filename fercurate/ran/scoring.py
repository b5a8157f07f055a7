"""What an evaluation scored: the faces and the model's outputs (:class:`Scored`), and the groups over them.

A :class:`Group` is one line of ``fercurate eval``'s table: a split asked for, or a subset (within the
splits, when splits are given). It is built once per evaluation (:func:`build_groups`) and holds which
scored faces are its own, what it leaves out (rows that could not be scored, unlabelled rows, subset
members outside the splits scored), its paper condition with the published rows on it
(:mod:`fercurate.published`) and the notes a reader needs; :func:`score_groups` adds its scores. The
console table, the leaderboards and the report files all read the same groups.

On a vote-labelled manifest (FERPlus) a :class:`LabelRule` decides which faces have a label
(:mod:`fercurate.votes`); the faces it leaves out are excluded like the faces of a class outside the
model's label space, and a paper's figure is shown only where the rule is the paper's protocol or left
none of the group's faces out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fercurate import published
from fercurate.errors import InputError
from fercurate.labels import CANONICAL_LABELS
from fercurate.manifest import Manifest
from fercurate.published import PublishedResult
from fercurate.faces.store import FaceStore
from fercurate.ran.data import Samples
from fercurate.ran.metrics import accuracy_summary
from fercurate.ran.predictor import Predictor
from fercurate.subsets import SubsetInfo, paper_condition, paper_name
from fercurate.votes import DEFAULT_LABEL_RULE, DEFAULT_RULE_SOURCE, LABEL_RULE_TEXT, N_VOTES, label_rule_mask

RULE_KIND = "label rule"  # the ``kind`` of rows a label rule leaves out


@dataclass(frozen=True)
class LabelRule:
    """Which faces of the manifest have a label: a vote rule (``plurality`` / ``majority``) and where it came
    from, or ``name`` None for a manifest with one label per face."""

    name: str | None
    source: str

    def describe(self) -> str:
        if self.name is None:
            return f"label rule: none needed ({self.source})"
        return f"label rule: {self.name}, {LABEL_RULE_TEXT[self.name]} ({self.source})"

    def short(self) -> str:
        """What the table prints beside an accuracy."""
        return self.name or "single labels"

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.name, "source": self.source, "text": LABEL_RULE_TEXT.get(self.name or "", "one label per face")}


def has_votes(m: Manifest) -> bool:
    """Whether the manifest's labels come from votes (a ``label_votes`` column with counts, as FERPlus's)."""
    return "label_votes" in m.table.column_names and m.table.column("label_votes").null_count < m.table.num_rows


def choose_label_rule(m: Manifest, asked: str | None) -> LabelRule:
    """``--label-rule`` for a vote-labelled manifest (default: FER+'s majority rule); refused for one without votes."""
    if not has_votes(m):
        if asked:
            raise InputError(f"--label-rule {asked}: {m.path} ({m.dataset}) has one label per face and no votes; the "
                             "rule applies to vote-labelled manifests such as FERPlus")
        return LabelRule(None, f"{m.dataset}: one label per face")
    if asked:
        return LabelRule(asked, "--label-rule")
    return LabelRule(DEFAULT_LABEL_RULE, DEFAULT_RULE_SOURCE)


def apply_label_rule(samples: Samples, rule: LabelRule) -> Samples:
    """The rows that keep their label under ``rule``; labelled rows it leaves out move to ``excluded`` (kind
    ``label rule``, the votes in the reason). Rows without votes, or without a label anyway, stay."""
    if rule.name is None or not len(samples):
        return samples
    table = samples.manifest.table
    rows = pc.index_in(pa.array(samples.sample_ids.tolist(), pa.string()), table.column("sample_id").cast(pa.string()))
    col = table.column("label_votes").take(rows).combine_chunks()
    lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
    have = lengths == N_VOTES
    votes = np.zeros((len(samples), N_VOTES), dtype=np.int64)
    if have.any():
        votes[have] = pc.list_flatten(col.filter(pa.array(have))).to_numpy(zero_copy_only=False).reshape(-1, N_VOTES)
    kept, reasons = label_rule_mask(votes, rule.name)
    drop = have & ~kept & (samples.labels >= 0)
    if not drop.any():
        return samples
    out = samples.subset(~drop)
    out.excluded.extend({"sample_id": samples.sample_ids[i], "kind": RULE_KIND,
                         "reason": reasons[i] or f"{rule.name} rule: no label"} for i in np.flatnonzero(drop))
    return out


def reason_key(excluded: dict[str, str]) -> str:
    """What an excluded row is counted under: the reason without its row's own details (path, votes)."""
    if excluded["kind"] == "unreadable":
        return excluded["reason"].rsplit(": ", 1)[-1]
    if excluded["kind"] == RULE_KIND:
        return excluded["reason"].split(" (", 1)[0]
    return excluded["reason"]


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
    rule_left_out: int = 0  # its labelled rows the label rule left out (counted in ``excluded``)
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
            "label_rule_left_out": self.rule_left_out,
            "published": [r.as_dict() for r in self.published],
            "published_size": None if self.published_size is None else
            {"size": self.published_size[0], "source": self.published_size[1]},
        }


def _on_condition(dataset: str, condition: str | None, num_classes: int, rule: LabelRule | None = None,
                  rule_left_out: int = 0, name: str = "") -> dict[str, Any]:
    """The published rows on a paper condition: those with ``num_classes`` classes, and how many others.

    None are shown where the label rule left some of the group's faces out and is not the papers' own
    protocol for the dataset (:data:`fercurate.published.LABEL_RULES`): those are other faces.
    """
    if condition is None:
        return {}
    rows = published.leaderboard(dataset, condition)
    protocol = published.LABEL_RULES.get(dataset)
    if rows and rule is not None and rule.name and protocol and rule.name != protocol[0] and rule_left_out:
        return {"condition": condition, "notes": (
            f"{name}: the {rule.name} rule left out {rule_left_out:,} of its labelled faces; the published figures "
            f"on {dataset} {condition} are for the faces the {protocol[0]} rule keeps ({protocol[1]}), so none is "
            f"shown beside this run (--label-rule {protocol[0]} scores those faces)",)}
    same = tuple(r for r in rows if r.num_classes == num_classes)
    return {"condition": condition, "published": same, "published_other": len(rows) - len(same)}


def build_groups(samples: Samples, splits: list[str], subsets: list[tuple[str, SubsetInfo, set[str]]],
                 dataset: str, num_classes: int, *, rule: LabelRule | None = None) -> list[Group]:
    """Each split, then each subset (name asked for, what it resolved to, its sample ids), over ``samples``."""
    ids = samples.sample_ids
    excluded_ids = np.asarray(sorted({e["sample_id"] for e in samples.excluded}), dtype=object)
    rule_ids = np.asarray(sorted({e["sample_id"] for e in samples.excluded if e["kind"] == RULE_KIND}), dtype=object)
    unlabelled = samples.labels < 0
    groups = []
    if splits:
        row_split = np.asarray([samples.split_of[i] for i in ids.tolist()], dtype=object)
        excluded_split = np.asarray([samples.split_of.get(i) for i in excluded_ids.tolist()], dtype=object)
        rule_split = np.asarray([samples.split_of.get(i) for i in rule_ids.tolist()], dtype=object)
    for split in splits:
        mask = row_split == split
        left_out = int((rule_split == split).sum())
        groups.append(Group(split, "split", f"split {split} (all rows)", mask, int((excluded_split == split).sum()),
                            int((unlabelled & mask).sum()), rule_left_out=left_out,
                            **_on_condition(dataset, split, num_classes, rule, left_out, split)))
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
        left_out = int(np.isin(rule_ids, member_ids).sum())
        board = _on_condition(dataset, cond, num_classes, rule, left_out, name)
        groups.append(Group(name, "subset", f"{info.name}: {info.rule} [{info.size} rows]", mask,
                            int(np.isin(excluded_ids, member_ids).sum()), int((unlabelled & mask).sum()), outside,
                            **{k: v for k, v in board.items() if k != "notes"}, rule_left_out=left_out,
                            published_size=published.subset_size(dataset, cond) if cond else None,
                            notes=tuple(notes) + board.get("notes", ())))
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
