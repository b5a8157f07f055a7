"""The report's first screen: the findings that matter, each a sentence with its number and a link.

Every number is computed here from the files other commands wrote (the ``dups``, ``nonface`` and
``noise`` layers, the subset files, the evals' metrics.json) and rendered with ``data-key`` /
``data-value`` attributes, so a test can check each one against those files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from fercurate.errors import InputError
from fercurate.layers import read_layer
from fercurate.manifest import Manifest
from fercurate.report import sources
from fercurate.report.html import esc, fmt, link, missing, pct
from fercurate.workspace import layer_path

EVAL_SPLITS_LEAK_INTO = "train"


@dataclass
class Finding:
    """One sentence of the first screen: ``html`` holds its numbers; ``values`` the same numbers by key."""

    topic: str
    html: str
    values: dict[str, float] = field(default_factory=dict)
    severity: str = "info"  # "bad" puts it first and in red


def _v(key: str, value: float | int, text: str | None = None) -> str:
    return f'<b data-key="{esc(key)}" data-value="{value}">{esc(text if text is not None else fmt(value))}</b>'


@dataclass
class QualityLayers:
    """The quality layers of the ingested (non-synthetic) manifests, as read from disk."""

    pairs: pd.DataFrame | None  # pair frame from the dups layers (each pair once)
    totals: pd.DataFrame | None  # rows per manifest, dataset, split
    nonface: dict[str, pd.DataFrame]  # manifest -> nonface layer
    noise: dict[str, pd.DataFrame]  # manifest -> noise layer


def read_quality_layers(manifests: Sequence[Manifest], unreadable: list[str] | None = None) -> QualityLayers:
    """Read every dups / nonface / noise layer of ``manifests`` that exists (nothing is computed); a layer
    that cannot be read is left out, and why goes to ``unreadable``."""
    from fercurate.quality.dups import manifest_totals, pairs_from_layers, read_dups_layer

    said = unreadable if unreadable is not None else []
    scanned = []
    for m in manifests:
        try:
            if read_dups_layer(m) is not None:
                scanned.append(m)
        except InputError as exc:
            said.append(str(exc))
    pairs = pairs_from_layers(scanned) if scanned else None
    nonface, noise = {}, {}
    for m in manifests:
        for layer, into in (("nonface", nonface), ("noise", noise)):
            lp = layer_path(m.path, layer)
            try:
                if lp.exists():
                    into[m.name] = read_layer(lp, layer)[0].to_pandas()
            except InputError as exc:
                said.append(str(exc))
    return QualityLayers(pairs, manifest_totals(scanned) if scanned else None, nonface, noise)


def leakage(pairs: pd.DataFrame, totals: pd.DataFrame) -> pd.DataFrame:
    """Per (manifest, split) that is not train: samples with >= 1 duplicate in any scanned train split.

    Columns: manifest, split, samples, total, fraction, into (where the duplicates are, with counts).
    """
    sides = []
    for me, other in (("a", "b"), ("b", "a")):
        sides.append(pd.DataFrame({
            "manifest": pairs[f"{me}_manifest"].to_numpy(), "split": pairs[f"{me}_split"].to_numpy(),
            "sample_id": pairs[f"{me}_sample_id"].to_numpy(), "dup_manifest": pairs[f"{other}_manifest"].to_numpy(),
            "dup_split": pairs[f"{other}_split"].to_numpy(),
        }))
    both = pd.concat(sides, ignore_index=True)
    both = both[(both["split"] != EVAL_SPLITS_LEAK_INTO) & (both["dup_split"] == EVAL_SPLITS_LEAK_INTO)]
    cols = ["manifest", "split", "samples", "total", "fraction", "into"]
    if not len(both):
        return pd.DataFrame(columns=cols)
    samples = both.groupby(["manifest", "split"])["sample_id"].nunique().rename("samples")
    into = (both.drop_duplicates(["manifest", "split", "sample_id", "dup_manifest"])
            .groupby(["manifest", "split", "dup_manifest"]).size().rename("n").reset_index())
    where = into.groupby(["manifest", "split"]).apply(
        lambda g: ", ".join(f"{d} {EVAL_SPLITS_LEAK_INTO} {n:,}" for d, n in zip(g["dup_manifest"], g["n"])),
        include_groups=False).rename("into")
    tot = totals.groupby(["manifest", "split"])["total"].sum()
    out = pd.concat([samples, where], axis=1).join(tot).reset_index()
    out["fraction"] = out["samples"] / out["total"]
    return out[cols].sort_values("fraction", ascending=False, kind="stable").reset_index(drop=True)


def quality_findings(q: QualityLayers, quality_href: str) -> list[Finding]:
    """Leakage between splits, non-faces and contested labels, each linking to the quality pages."""
    out = []
    if q.pairs is not None and q.totals is not None:
        leak = leakage(q.pairs, q.totals)
        for r in leak.itertuples(index=False):
            key = f"leak:{r.manifest}:{r.split}"
            out.append(Finding("leakage", (
                f"{_v(key + ':fraction', float(r.fraction), pct(r.fraction))} of {esc(r.manifest)} {esc(r.split)} faces "
                f"({_v(key + ':samples', int(r.samples))} of {_v(key + ':total', int(r.total))}) have an exact or near "
                f"duplicate in a train split ({esc(r.into)}): scores on {esc(r.split)} are inflated by memorised faces. "
                + link(f"{quality_href}#duplicates", "duplicate pairs")),
                {key + ":samples": int(r.samples), key + ":total": int(r.total), key + ":fraction": float(r.fraction)},
                "bad"))
        if not len(leak):
            key = "leak:pairs"
            out.append(Finding("leakage", (
                f"No evaluation face has a duplicate in a train split ({_v(key, len(q.pairs))} duplicate pairs in all, "
                f"within splits). " + link(f"{quality_href}#duplicates", "duplicate pairs")), {key: len(q.pairs)}))
    for name, df in q.nonface.items():
        key = f"nonface:{name}"
        flagged = int(df["flagged"].sum())
        values = {key + ":flagged": flagged, key + ":total": len(df)}
        why = []
        for col, what in (("nf_majority", "by a majority of NF votes"), ("blank", "blank"), ("unreadable", "unreadable"),
                          ("no_face", "with no face found by the face models")):
            if df[col].notna().any():
                values[f"{key}:{col}"] = int(df[col].fillna(False).astype(bool).sum())
                why.append(f"{_v(f'{key}:{col}', values[f'{key}:{col}'])} {what}")
        if df["no_face"].isna().all():
            why.append("the face models were not run: <code>fercurate quality nonface</code> without "
                       "<code>--no-detect</code> also finds images with no face")
        out.append(Finding("non-faces", (
            f"{_v(key + ':flagged', flagged)} of {_v(key + ':total', len(df))} {esc(name)} images "
            f"({pct(flagged / len(df) if len(df) else None)}) are flagged as non-faces ({'; '.join(why)}). "
            + link(f"{quality_href}#nonfaces", "contact sheet and list")), values, "bad" if flagged else "info"))
    for name, df in q.noise.items():
        key = f"noise:{name}"
        voted = df[df["votes_total"].fillna(0) > 0]
        contested = int(df["contested"].fillna(False).astype(bool).sum())
        mislabel = int(df["likely_mislabel"].fillna(False).astype(bool).sum())
        text = (f"{_v(key + ':contested', contested)} of {_v(key + ':voted', len(voted))} {esc(name)} labels with "
                f"annotator votes ({pct(contested / len(voted) if len(voted) else None)}) are contested: no absolute "
                "majority of the votes")
        values = {key + ":contested": contested, key + ":voted": len(voted)}
        if df["prob_given"].notna().any():
            text += f"; {_v(key + ':likely_mislabel', mislabel)} are likely mislabelled (confident learning)"
            values[key + ":likely_mislabel"] = mislabel
        out.append(Finding("contested labels", text + ". " + link(f"{quality_href}#noise", "contact sheet"), values,
                           "bad" if contested else "info"))
    return out


def _diff(d: int) -> str:
    return "the same" if d == 0 else f"{'+' if d > 0 else '−'}{abs(d):,}"


def subset_findings(found: Sequence) -> list[Finding]:
    """Subset sizes in the evaluation split beside the paper's Table I, only for subsets made the paper's way."""
    sizes = sources.subset_split_sizes(found)
    out = []
    for s in found:
        kind = sources.subset_kind(s.name)
        published = sources.published_size(s.dataset, s.name)
        paper = None if published is None else published[0]
        if paper is None or (s.manifest, s.name) not in sizes:
            continue
        key = f"subset:{s.manifest}:{s.name}"
        n = sizes[(s.manifest, s.name)].get(sources.PAPER_SPLIT, 0)
        where = f"{_v(key, n)} {sources.PAPER_SPLIT} faces"
        if s.size != n:
            where += f" ({s.size:,} in all splits)"
        if kind in (sources.COMPARABLE, sources.CALIBRATED):
            out.append(Finding("subsets", (
                f"{esc(s.name)} on {esc(s.manifest)} ({esc(kind)}): {where} against "
                f"{_v(key + ':paper', paper)} in {esc(published[1])} ({_diff(n - paper)}). "
                + link("#subsets", "subsets")), {key: n, key + ":paper": paper}))
        else:
            if kind == sources.ESTIMATOR:
                why = ("fercurate's head-pose estimator measures other angles than the paper's OpenFace; import the "
                       "official lists or build <code>--calibration openface</code> pose subsets to compare")
            else:
                why = "its labels are this workspace's, not the paper's list; import the official lists to compare"
            out.append(Finding("subsets", (
                f"{esc(s.name)} on {esc(s.manifest)} is a {esc(kind)} subset of {where}: not comparable "
                f"with the paper's {paper:,}, as {why}. " + link("#subsets", "subsets")),
                {key: n}))
    return out


def leaderboard_sentence(published: Sequence[dict], acc: float) -> str:
    """Where an accuracy stands among the published results on the same subset and class count ('' if none)."""
    if not published:
        return ""
    ranked = sorted(published, key=lambda r: -r["accuracy"])
    rank = 1 + sum(r["accuracy"] > 100 * acc for r in ranked)

    def cite(r: dict) -> str:
        return f"{r['method']} {r['accuracy']:.2f} % ({r['paper'].split(' (')[0]} {r['table']})"

    ran = [r for r in ranked if r["method"].startswith("RAN") and r is not ranked[0]]
    also = f", {cite(ran[0])}" if ran else ""
    return (f"Published on the same faces and classes: best {cite(ranked[0])}{also}; this model ranks {rank} of "
            f"{len(ranked) + 1}. ")


def accuracy_findings(evals: Sequence[tuple[str, sources.EvalRun]]) -> list[Finding]:
    """The best accuracy per (manifest, group, label rule) over every evaluation, with the eval it came from."""
    best: dict[tuple[str, str], tuple[float, int, str, sources.EvalRun, dict]] = {}
    for anchor, ev in evals:
        manifest = sources.eval_manifest_name(ev)
        for g in ev.groups:
            acc, n = g.get("accuracy"), int(g.get("n") or 0)
            if n == 0 or missing(acc):
                continue
            k = (manifest, str(g["group"]), sources.eval_label_rule(ev))  # accuracies under two rules do not compare
            if k not in best or acc > best[k][0]:
                best[k] = (float(acc), n, anchor, ev, g)
    out = []
    rules_of = {}
    for manifest, group, rule in best:
        rules_of.setdefault((manifest, group), set()).add(rule)
    for (manifest, group, rule), (acc, n, anchor, ev, g) in sorted(best.items()):
        key = f"best:{manifest}:{group}" + (f":{rule}" if len(rules_of[manifest, group]) > 1 else "")
        model = f"{ev.model.parent.name}/{ev.model.name}" if ev.model else "?"
        ref = leaderboard_sentence(g.get("published") or [], acc)
        out.append(Finding("accuracy", (
            f"Best accuracy on {esc(manifest)} {esc(group)}: {_v(key + ':accuracy', acc, pct(acc))} "
            f"(label rule {esc(rule)}) over {_v(key + ':n', n)} faces ({esc(model)}). {esc(ref)}"
            + link(f"#{anchor}", "evaluation")),
            {key + ":accuracy": acc, key + ":n": n}))
    return out


def render(findings: Sequence[Finding]) -> str:
    """The findings as a list, the bad news first (stable order otherwise)."""
    order = sorted(findings, key=lambda f: f.severity != "bad")
    items = "".join(f'<li data-topic="{esc(f.topic)}" class="{esc(f.severity)}">{f.html}</li>' for f in order)
    return f'<ul class="findings">{items}</ul>'
