"""``fercurate report``: one static HTML page (+ PNGs) for everything a workspace holds.

The first screen lists the findings that matter (leakage between splits, non-faces, contested labels,
subset sizes beside the paper's Table I, the best accuracy per subset), each a sentence with its number
and a link. Then: datasets (sizes per split x label), head pose, subsets, occlusion labelling, synthetic
variants, training runs (curves and settings), evaluations (full-size confusion matrices, what each n
leaves out and why) and data quality (the quality pages are written into ``quality/`` beside the page
and link back to it). A section whose inputs do not exist yet says which command makes them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from fercurate import __version__
from fercurate.atomic import write_text
from fercurate.errors import InputError
from fercurate.manifest import Manifest, read_manifest
from fercurate.report import figures, findings, runs, sources
from fercurate.report.html import Raw, esc, figure, link, page, pct, table, unreadable_list
from fercurate.workspace import Workspace, layer_path

QUALITY_DIR = "quality"  # the quality pages, inside the report folder
# The page's sections, in order: anchor -> title.
_SECTIONS = {"findings": "Findings", "datasets": "Datasets", "pose": "Head pose", "subsets": "Subsets vs Table I",
             "occlusion": "Occlusion labelling", "synthetic": "Synthetic variants", "training": "Training runs",
             "evaluation": "Evaluation vs published results", "quality": "Data quality"}


@dataclass
class ReportResult:
    index: Path
    sections: dict[str, str]  # anchor -> one-line summary
    figures: list[Path] = field(default_factory=list)
    findings: list[findings.Finding] = field(default_factory=list)
    unreadable: dict[str, list[str]] = field(default_factory=dict)  # anchor -> files it could not read, and why


def _manifests(ws: Workspace, unreadable: list[str]) -> list[Manifest]:
    out = []
    for name in ws.manifest_names():
        try:
            out.append(read_manifest(ws.manifest_path(name)))
        except InputError as exc:
            unreadable.append(str(exc))
    return out


def _each(items: Sequence[Any], unreadable: list[str], read: Callable[[Any], Any]) -> list[tuple[Any, Any]]:
    """(item, read(item)) for every item whose inputs can be read; why each other one could not goes
    to ``unreadable`` (one broken file leaves out that file, not the section)."""
    out = []
    for item in items:
        try:
            out.append((item, read(item)))
        except InputError as exc:
            unreadable.append(str(exc))
    return out


def _synthetic_mask(m: Manifest) -> np.ndarray:
    """Rows made by fercurate (``derived_from`` set), e.g. synthetic masks."""
    return pc.is_valid(m.table.column("derived_from")).to_numpy(zero_copy_only=False)


def _is_synthetic(m: Manifest) -> bool:
    return bool(_synthetic_mask(m).any())


def _hint(text: str, command: str) -> str:
    return f'<p class="muted">{esc(text)} <code>{esc(command)}</code></p>'


# --- sections ---------------------------------------------------------------------------------------


def datasets_section(ws: Workspace, manifests: Sequence[Manifest], out: Path, figs: list[Path],
                     unreadable: list[str]) -> tuple[str, str]:
    from fercurate.info import NO_LABEL, manifest_info

    read = _each(manifests, unreadable, lambda m: manifest_info(m.path))
    if not read:
        if unreadable:
            return "no readable manifests", ""
        return "no manifests", _hint("No manifests yet: ingest a dataset first, e.g.", "fercurate ingest ferplus PATH")
    rows, blocks = [], []
    for m, info in read:
        splits = {s: int(info.counts.loc["total", s]) for s in info.counts.columns if s != "total"}
        rows.append([m.name, m.dataset, "synthetic" if _is_synthetic(m) else "ingested", info.rows,
                     ", ".join(f"{k} {v:,}" for k, v in splits.items()), sum(info.rejects.values())])
        counts = info.counts.drop(index="total").drop(columns="total")
        caption = f"{m.name}: images per label and split"
        if NO_LABEL in counts.index:
            unlabelled = {s: int(v) for s, v in counts.loc[NO_LABEL].items() if v}
            counts = counts.drop(index=NO_LABEL)
            caption += " (not drawn: images without a label, " + ", ".join(f"{s} {v:,}" for s, v in unlabelled.items()) + ")"
        counts = counts.loc[:, counts.sum(axis=0) > 0]
        block = table(["label", *info.counts.columns], ([lab, *map(int, r)] for lab, r in info.counts.iterrows()))
        if len(counts.columns):
            png = figures.label_bars(counts, f"{m.name}: labelled images per label and split", out / f"labels_{m.name}.png")
            figs.append(png)
            block += figure(png.name, caption, 560)
        blocks.append(f"<h3>{esc(m.name)}</h3><div class=\"figs\">{block}</div>")
    body = table(["manifest", "dataset", "kind", "rows", "splits", "rejects"], rows, left=3) + "".join(blocks)
    total = sum(r[3] for r in rows)
    return f"{len(read)} manifests, {total:,} rows", body


def pose_section(ws: Workspace, manifests: Sequence[Manifest], out: Path, figs: list[Path],
                 unreadable: list[str]) -> tuple[str, str]:
    from fercurate.layers import read_layer
    from fercurate.schema import POSE_LAYER_SCHEMA

    blocks, rows = [], []
    found = [m for m in manifests if layer_path(m.path, "pose").exists()]
    read = _each(found, unreadable, lambda m: read_layer(layer_path(m.path, "pose"), "pose",
                                                         columns=("yaw", "pitch", "failure"), schema=POSE_LAYER_SCHEMA))
    for m, (t, meta) in read:
        ok = pc.is_null(t.column("failure")).to_numpy(zero_copy_only=False)
        yaw = t.column("yaw").to_numpy(zero_copy_only=False).astype(float)[ok]
        pitch = t.column("pitch").to_numpy(zero_copy_only=False).astype(float)[ok]
        score = np.maximum(np.abs(yaw), np.abs(pitch))
        failures = [f for f in t.column("failure").to_pylist() if f]
        top = ", ".join(f"{r} ({failures.count(r):,})" for r in sorted(set(failures), key=failures.count, reverse=True)[:3])
        rows.append([m.name, meta.get("provenance", {}).get("method", "?"), t.num_rows, int(ok.sum()),
                     int((score > 30).sum()), int((score > 45).sum()), top or "—"])
        png = figures.pose_histogram(yaw, pitch, f"{m.name}: head pose ({ok.sum():,} faces)", out / f"pose_{m.name}.png")
        figs.append(png)
        blocks.append(figure(png.name, f"{m.name}: yaw x pitch; Pose-30/45 members lie outside the boxes", 420))
    if not rows:
        if unreadable:
            return "no readable pose layers", ""
        return "no pose layers", _hint("No pose layer yet:", "fercurate pose manifests/NAME.parquet")
    body = (
        '<p class="muted">Angles follow AFLW2000-3D / 300W-LP: yaw &gt; 0 turns toward the image\'s left edge, '
        "pitch &gt; 0 is chin up; Pose-T = max(|yaw|, |pitch|) &gt; T (roll ignored, as in the paper). These are "
        "fercurate's estimator angles, not the OpenFace angles the paper's lists were built with.</p>"
        + table(["manifest", "method", "rows", "pose found", "> 30°", "> 45°", "top failure reasons"], rows, left=2)
        + f'<div class="figs">{"".join(blocks)}</div>'
    )
    return f"{len(rows)} pose layers", body


def subsets_section(found: Sequence, unreadable: Sequence[str]) -> tuple[str, str]:
    if not found:
        if unreadable:
            return "no readable subsets", ""
        return "no subsets", _hint("No subsets yet:", "fercurate subsets build manifests/NAME.parquet --pose 30 --pose 45")
    rows = []
    sizes = sources.subset_split_sizes(found)
    for s in found:
        kind = sources.subset_kind(s.name)
        published = sources.published_size(s.dataset, s.name)
        if published is None:
            beside = "—"
        elif kind in (sources.COMPARABLE, sources.CALIBRATED):
            beside = f"{published[0]:,} ({published[1]})"
        else:
            beside = f"not comparable (paper {published[0]:,}, {published[1]})"
        per_split = sizes.get((s.manifest, s.name), {})
        rows.append([s.manifest, s.name, kind, s.rule, s.size, per_split.get(sources.PAPER_SPLIT, 0), Raw(esc(beside))])
    body = (
        '<p class="muted">The paper\'s Table I sizes (Pose-FERPlus 1,171 / 634, Occlusion-FERPlus 605, Pose-AffectNet '
        "1,949 / 985, Occlusion-AffectNet 682) are put beside the official lists and the OpenFace-calibrated pose "
        "subsets only: those are measured the way the paper measured. fercurate's estimator subsets use other head-pose "
        "angles, so their sizes are not comparable. Table I counts faces of the evaluation set (FERPlus test, AffectNet "
        f"validation), so the paper's size stands beside the subset's faces in the {sources.PAPER_SPLIT} split.</p>"
        + table(["manifest", "subset", "made by", "rule", "size", f"in {sources.PAPER_SPLIT}", "published size"], rows,
                left=4)
    )
    return f"{len(found)} subsets", body


def occlusion_section(ws: Workspace, manifests: Sequence[Manifest], unreadable: list[str]) -> tuple[str, str]:
    """Labelling progress; labels from people, from the official lists and synthetic ones counted apart."""
    from fercurate.annotate.status import status
    from fercurate.annotations import LABEL_SOURCES, latest_labels, read_events

    blocks = []
    labelled = [m for m in manifests if ws.annotation_path(m.name).exists()]
    read = _each(labelled, unreadable, lambda m: (status(m.name, workspace=ws, app=False),
                                                  read_events(ws.annotation_path(m.name))))
    for m, (st, events) in read:
        labels = latest_labels(events, source=LABEL_SOURCES)
        labels = labels[labels["sample_id"].isin(set(m.table.column("sample_id").to_pylist()))]
        by_source = labels["source"].value_counts()
        progress = table(
            ["manifest", "rows", "labelled by people", "official lists", "synthetic", "unlabelled", "suggested",
             "occluded", "conflicts"],
            [[m.name, st.total, int(by_source.get("human", 0) + by_source.get("adjudication", 0)),
              int(by_source.get("official", 0)),
              int(by_source.get("synthetic", 0)), st.unlabelled, st.suggested, st.occluded, st.n_conflicts]],
        )
        types = table(["type", "samples"], sorted(st.per_type.items(), key=lambda kv: -kv[1]))
        people = table(["annotator", "source", "samples", "events", "last"],
                       [[a.annotator, a.source, a.samples, a.events, a.last] for a in st.annotators], left=2)
        agree = ""
        pairs = st.agreement_independent or st.agreement
        if pairs:
            over = "independent (blind) labels" if st.agreement_independent else "all labels (not independent)"
            agree = f"<p class=\"muted\">Cohen's kappa over {over}, with a bootstrap 95% interval.</p>" + table(
                ["pair", "shared samples", "kappa (occluded?)", "kappa (exact set)"],
                [[f"{p.a} / {p.b}", p.shared, _kappa(p.occluded_kappa, p.occluded_ci),
                  _kappa(p.exact_kappa, p.exact_ci)] for p in pairs])
        note = ('<p class="muted">Synthetic labels come with generated images (e.g. <code>fercurate synth mask</code>): '
                "they are neither people's labels nor official ones.</p>") if by_source.get("synthetic", 0) else ""
        blocks.append(f"<h3>{esc(m.name)}</h3>{progress}{note}<div class=\"figs\">{types}{people}</div>{agree}")
    if not blocks:
        if unreadable:
            return "no readable labels", ""
        return "no labels", _hint("No occlusion labels yet: label in the App or import the official lists:",
                                  "fercurate annotate launch manifests/NAME.parquet")
    return f"{len(blocks)} labelled manifests", "".join(blocks)


def _kappa(value: float, ci: tuple[float, float]) -> str:
    """``0.71 [0.55, 0.84]``; ``n/a`` where kappa is undefined."""
    if value is None or math.isnan(value):
        return "n/a"
    lo, hi = ci
    return f"{value:.2f}" + ("" if math.isnan(lo) else f" [{lo:.2f}, {hi:.2f}]")


def synthetic_section(manifests: Sequence[Manifest], out: Path, figs: list[Path]) -> tuple[str, str]:
    from fercurate.synth.preview import contact_sheet

    blocks = []
    for m in manifests:
        if not _is_synthetic(m):
            continue
        png = out / f"synth_{m.name}.png"
        contact_sheet(m.path, png, n=16, columns=4, tile=96)
        figs.append(png)
        variants = m.table.column("variant").to_pylist()
        kinds = sorted({v.split(":")[0] + ":" + v.split(":")[1] if v and v.count(":") else str(v) for v in variants})
        blocks.append(f"<h3>{esc(m.name)}</h3><p>{len(m):,} images; variants: {esc(', '.join(kinds[:12]))}</p>"
                      + figure(png.name, f"{m.name}: parent | variant", 760))
    if not blocks:
        return "no synthetic variants", _hint("No synthetic variants yet:", "fercurate synth mask manifests/NAME.parquet --split test --out data/NAME-masked")
    return f"{len(blocks)} synthetic manifests", "".join(blocks)


def quality_section(q: findings.QualityLayers, quality_index: Path | None, out: Path) -> tuple[str, str]:
    """Leakage per split pair, non-faces and contested labels in short, with the contact sheets."""
    from fercurate.quality.dups import leakage_table
    from fercurate.report.quality_page import pair_kind

    if q.pairs is None and not q.nonface and not q.noise:
        return "no quality checks", _hint("No quality checks yet:", "fercurate quality report manifests/NAME.parquet")
    parts, summary = [], []
    href = quality_index.relative_to(out).as_posix() if quality_index else None
    if href:
        parts.append(f"<p>All tables (CSV/Parquet) and contact sheets: {link(href, 'the data quality pages')}.</p>")
    sheet = (lambda name, caption: figure(f"{QUALITY_DIR}/{name}", caption)
             if quality_index and (quality_index.parent / name).exists() else "")
    if q.pairs is not None and q.totals is not None:
        leak = leakage_table(q.pairs, q.totals)
        rows = [[r.manifest, r.split, r.dup_manifest, r.dup_split,
                 pair_kind(r.manifest, r.split, r.dup_manifest, r.dup_split),
                 int(r.samples), int(r.total), Raw(pct(r.fraction)), int(r.pairs)] for r in leak.itertuples(index=False)]
        parts.append(
            '<h3 id="leakage">Duplicates and leakage</h3><p class="muted">Each row: samples of the first manifest/split '
            "with at least one exact or near duplicate in the second manifest/split. The second may be the same split "
            "(e.g. train → train: duplicates within train, which only weight those faces twice); rows marked "
            "<b>leak</b> pair an evaluation split with train, where a duplicate inflates test scores.</p>"
            + table(["manifest", "split", "duplicate in", "its split", "kind", "samples", "of", "share", "pairs"], rows, left=5)
            + sheet("dup_pairs.png", "duplicate pairs, leaks across train / evaluation splits first: kind, hash distance, "
                    "similarity"))
        summary.append(f"{len(q.pairs):,} duplicate pairs")
    if q.nonface:
        flagged = sum(int(df["flagged"].sum()) for df in q.nonface.values())
        parts.append(f"<h3>Non-faces</h3><p>{flagged:,} images flagged (reasons under each image).</p>"
                     + sheet("nonfaces.png", "non-faces: strongest evidence first (NF votes, blank, unreadable, no face)"))
        summary.append(f"{flagged:,} non-faces")
    if q.noise:
        contested = sum(int(df["contested"].fillna(False).astype(bool).sum()) for df in q.noise.values())
        parts.append(f"<h3>Label noise</h3><p>{contested:,} contested labels (reasons under each image).</p>"
                     + sheet("mislabels.png", "likely mislabels or contested labels, with the votes"))
        summary.append(f"{contested:,} contested labels")
    return ", ".join(summary), "".join(parts)


def findings_section(items: Sequence[findings.Finding]) -> tuple[str, str]:
    if not items:
        return "nothing yet", ('<p class="muted">No findings yet: they come from the quality checks '
                               "(<code>fercurate quality report</code>), subsets and evaluations below.</p>")
    return f"{len(items)} findings", findings.render(items)


def _quality_pages(ws: Workspace, manifests: Sequence[Manifest], q: findings.QualityLayers, out: Path) -> Path | None:
    """Write the quality pages into ``out/quality`` from the existing layers (computing nothing)."""
    from fercurate.report.quality_page import build_quality_page

    names = {*q.nonface, *q.noise}
    if q.pairs is not None:
        names |= set(q.pairs["a_manifest"]) | set(q.pairs["b_manifest"])
    scanned = [m for m in manifests if m.name in names or layer_path(m.path, "dups").exists()]
    if not scanned:
        return None
    res = build_quality_page(out / QUALITY_DIR, [m.path for m in scanned], workspace=ws, compute=False,
                             report_link="../index.html")
    return res.out / "index.html"


# --- the page ----------------------------------------------------------------------------------------


def build_report(
    out: str | os.PathLike,
    *,
    workspace: Workspace | None = None,
    eval_dirs: Sequence[str | os.PathLike] = (),
    echo: Callable[[str], Any] | None = None,
) -> ReportResult:
    """Write ``out/index.html`` (+ PNGs, + ``out/quality/``); same as ``fercurate report --out OUT``.

    A file the report cannot read is named in its section (and echoed as ``cannot read: ...``), never
    left out silently: an unreadable manifest is not "no manifests".
    """
    from fercurate.subsets import scan_subsets

    ws = workspace or Workspace.current()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bad: dict[str, list[str]] = {anchor: [] for anchor in _SECTIONS}
    manifests = _manifests(ws, bad["datasets"])
    originals = [m for m in manifests if not _is_synthetic(m)]
    figs: list[Path] = []
    q = findings.read_quality_layers(originals, bad["quality"])
    try:
        quality_index = _quality_pages(ws, originals, q, out)
    except InputError as exc:
        quality_index = None
        bad["quality"].append(str(exc))
    found_subsets, unreadable_subsets = scan_subsets(ws)
    bad["subsets"] += map(str, unreadable_subsets)
    evals = runs.load_evals(ws, eval_dirs, bad["evaluation"])
    trains = runs.load_trains(ws, eval_dirs)
    items = (findings.quality_findings(q, quality_index.relative_to(out).as_posix() if quality_index else "#quality")
             + findings.subset_findings(found_subsets) + findings.accuracy_findings(evals))
    parts: dict[str, Callable[[], tuple[str, str]]] = {
        "findings": lambda: findings_section(items),
        "datasets": lambda: datasets_section(ws, manifests, out, figs, bad["datasets"]),
        "pose": lambda: pose_section(ws, originals, out, figs, bad["pose"]),
        "subsets": lambda: subsets_section(found_subsets, bad["subsets"]),
        "occlusion": lambda: occlusion_section(ws, manifests, bad["occlusion"]),
        "synthetic": lambda: synthetic_section(manifests, out, figs),
        "training": lambda: runs.training_section(trains, ws, out, figs),
        "evaluation": lambda: runs.evaluation_section(evals, trains, ws, out, figs),
        "quality": lambda: quality_section(q, quality_index, out),
    }
    sections, summaries = [], {}
    for anchor, title in _SECTIONS.items():
        try:
            summary, body = parts[anchor]()
        except InputError as exc:  # one broken input must not sink the whole report
            summary, body = "error", ""
            bad[anchor].append(str(exc))
        if bad[anchor]:
            n = len(bad[anchor])
            summary += f"; {n:,} file{'s' if n > 1 else ''} could not be read"
            body = unreadable_list(bad[anchor]) + body
        summaries[anchor] = summary
        sections.append((anchor, title, Raw(body)))
        if echo:
            echo(f"{title}: {summary}")
            for message in bad[anchor]:
                echo(f"  cannot read: {message}")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    links = [(quality_index.relative_to(out).as_posix(), "Quality pages")] if quality_index else []
    html_text = page("fercurate report", f"workspace {ws.root} · {now} · fercurate {__version__}", sections, links)
    index = out / "index.html"
    write_text(index, html_text)
    return ReportResult(index, summaries, figs, items, {k: v for k, v in bad.items() if v})
