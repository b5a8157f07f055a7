"""``fercurate report``: one static HTML page (+ PNGs) for everything a workspace holds.

Sections: datasets (sizes per split x label), head pose (yaw x pitch histograms), subsets beside the
paper's Table I, occlusion labelling progress and agreement, synthetic variants (contact sheets),
evaluations beside Table II (with confusion matrices), and data quality (leakage between splits).
A section whose inputs do not exist yet says which command makes them.
"""

from __future__ import annotations

import json
import os
import shutil
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
from fercurate.report import figures
from fercurate.report.html import Raw, esc, figure, page, table
from fercurate.workspace import Workspace, layer_path


@dataclass
class ReportResult:
    index: Path
    sections: dict[str, str]  # anchor -> one-line summary
    figures: list[Path] = field(default_factory=list)


def _manifests(ws: Workspace) -> list[Manifest]:
    out = []
    for name in ws.manifest_names():
        try:
            out.append(read_manifest(ws.manifest_path(name)))
        except InputError:
            continue
    return out


def _is_synthetic(m: Manifest) -> bool:
    return m.table.column("derived_from").null_count < m.table.num_rows


def _hint(text: str, command: str) -> str:
    return f'<p class="muted">{esc(text)} <code>{esc(command)}</code></p>'


# --- sections ---------------------------------------------------------------------------------------


def datasets_section(ws: Workspace, manifests: Sequence[Manifest], out: Path, figs: list[Path]) -> tuple[str, str]:
    from fercurate.info import manifest_info

    if not manifests:
        return "no manifests", _hint("No manifests yet: ingest a dataset first, e.g.", "fercurate ingest ferplus PATH")
    rows, blocks = [], []
    for m in manifests:
        info = manifest_info(m.path)
        splits = {s: int(info.counts.loc["total", s]) for s in info.counts.columns if s != "total"}
        rows.append([m.name, m.dataset, "synthetic" if _is_synthetic(m) else "ingested", info.rows,
                     ", ".join(f"{k} {v:,}" for k, v in splits.items()), sum(info.rejects.values())])
        counts = info.counts.drop(index="total").drop(columns="total")
        png = figures.label_bars(counts, f"{m.name}: images per label and split", out / f"labels_{m.name}.png")
        figs.append(png)
        blocks.append(
            f"<h3>{esc(m.name)}</h3><div class=\"figs\">"
            + table(["label", *info.counts.columns], ([lab, *map(int, r)] for lab, r in info.counts.iterrows()))
            + figure(png.name, f"{m.name}: labels per split", 520)
            + "</div>"
        )
    body = table(["manifest", "dataset", "kind", "rows", "splits", "rejects"], rows, left=3) + "".join(blocks)
    total = sum(r[3] for r in rows)
    return f"{len(manifests)} manifests, {total:,} rows", body


def pose_section(ws: Workspace, manifests: Sequence[Manifest], out: Path, figs: list[Path]) -> tuple[str, str]:
    from fercurate.layers import read_layer

    blocks, rows = [], []
    for m in manifests:
        lp = layer_path(m.path, "pose")
        if not lp.exists():
            continue
        t, meta = read_layer(lp, "pose")
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
        return "no pose layers", _hint("No pose layer yet:", "fercurate pose manifests/NAME.parquet")
    body = (
        '<p class="muted">Angles follow AFLW2000-3D / 300W-LP: yaw &gt; 0 turns toward the image\'s left edge, '
        "pitch &gt; 0 is chin up; Pose-T = max(|yaw|, |pitch|) &gt; T (roll ignored, as in the paper).</p>"
        + table(["manifest", "method", "rows", "pose found", "> 30°", "> 45°", "top failure reasons"], rows, left=2)
        + f'<div class="figs">{"".join(blocks)}</div>'
    )
    return f"{len(rows)} pose layers", body


def _paper_size(info: Any) -> str | None:
    """The published size of an official list (with its source); None for fercurate's own subsets."""
    from fercurate.published import subset_size
    from fercurate.subsets import paper_condition

    cond = paper_condition(info)
    found = subset_size(info.dataset, cond) if cond else None
    return None if found is None else f"{found[0]} ({found[1]})"


def subsets_section(ws: Workspace) -> tuple[str, str]:
    from fercurate.subsets import list_subsets

    found = list_subsets(ws)
    if not found:
        return "no subsets", _hint("No subsets yet:", "fercurate subsets build manifests/NAME.parquet --pose 30 --pose 45")
    rows = [[s.manifest, s.name, s.rule, s.size, _paper_size(s)] for s in found]
    body = (
        '<p class="muted">Published sizes are shown beside the official RAN lists only (RAN Table I: Pose-FERPlus '
        "1171 / 634, Occlusion-FERPlus 605, Pose-AffectNet 1949 / 985, Occlusion-AffectNet 682); fercurate's own "
        "estimated (<code>-estimated</code>) and labelled (<code>occlusion-labelled</code>) subsets are not the "
        "papers' lists.</p>"
        + table(["manifest", "subset", "rule", "size", "published size"], rows, left=4)
    )
    return f"{len(found)} subsets", body


def occlusion_section(ws: Workspace, manifests: Sequence[Manifest]) -> tuple[str, str]:
    from fercurate.annotate.status import status

    blocks = []
    for m in manifests:
        if not ws.annotation_path(m.name).exists():
            continue
        st = status(m.name, workspace=ws, app=False)
        progress = table(
            ["manifest", "rows", "labelled by people", "official only", "unlabelled", "suggested", "occluded", "conflicts"],
            [[m.name, st.total, st.human, st.official_only, st.unlabelled, st.suggested, st.occluded, st.n_conflicts]],
        )
        types = table(["type", "samples"], sorted(st.per_type.items(), key=lambda kv: -kv[1]))
        people = table(["annotator", "source", "samples", "events", "last"],
                       [[a.annotator, a.source, a.samples, a.events, a.last] for a in st.annotators], left=2)
        agree = ""
        if st.agreement:
            agree = table(["pair", "shared samples", "kappa (occluded?)", "kappa (exact set)"],
                          [[f"{p.a} / {p.b}", p.shared, p.occluded_kappa, p.exact_kappa] for p in st.agreement])
        blocks.append(f"<h3>{esc(m.name)}</h3>{progress}<div class=\"figs\">{types}{people}</div>{agree}")
    if not blocks:
        return "no labels", _hint("No occlusion labels yet: label in the App or import the official lists:",
                                  "fercurate annotate launch manifests/NAME.parquet")
    return f"{len(blocks)} labelled manifests", "".join(blocks)


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


def find_eval_runs(ws: Workspace, extra: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Every ``metrics.json`` written by ``fercurate eval --report`` under runs/ (and ``extra`` folders)."""
    roots = [ws.runs, *map(Path, extra)]
    found = set()
    for root in roots:
        if root.exists():
            found.update(p.resolve() for p in root.rglob("metrics.json"))
    return sorted(found)


def _pct(v: Any) -> float | None:
    return None if v is None else 100.0 * float(v)


def evaluation_section(runs: Sequence[Path], out: Path, figs: list[Path]) -> tuple[str, str]:
    blocks = []
    for i, metrics in enumerate(runs):
        try:
            data = json.loads(metrics.read_text())
            groups = data["groups"]
        except (OSError, ValueError, KeyError):
            continue
        rows, pics, boards = [], [], []
        for g in groups:
            ci = (g.get("ci95") or {}).get("accuracy")
            ci_text = f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}" if ci else "—"
            ours = _pct(g.get("accuracy"))
            rows.append([g["group"], g.get("n"), ours, ci_text, _pct(g.get("mean_class_accuracy")), g.get("list", "")])
            if g.get("published"):
                board = sorted([[p["accuracy"], p["method"], p["backbone"], p["pretraining"], p["num_classes"],
                                 f"{p['paper'].split(' (')[0]} {p['table']}", p["notes"]] for p in g["published"]]
                               + [[ours, "this run", "", "", len(data.get("labels", [])), "", f"n={g.get('n')}"]],
                               key=lambda r: -(r[0] or 0))
                boards.append(f"<h4>{esc(g['group'])}: published results, same subset and class count</h4>"
                              + table(["accuracy %", "method", "backbone", "pre-training", "classes", "source", "notes"],
                                      board, left=7))
            slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in g["group"])
            src = metrics.parent / f"confusion_{slug}.png"
            if src.exists():
                dst = out / f"eval{i}_confusion_{slug}.png"
                shutil.copyfile(src, dst)
                figs.append(dst)
                pics.append(figure(dst.name, f"{g['group']}: confusion matrix", 300))
        title = f"{Path(data.get('model', '?')).name} on {Path(data.get('manifest', '?')).name}"
        blocks.append(
            f"<h3>{esc(title)}</h3><p class=\"muted\">{esc(metrics.parent)}</p>"
            + table(["group", "n", "accuracy %", "95% CI", "mean per-class %", "scored list"], rows, left=6)
            + "".join(boards)
            + f'<div class="figs">{"".join(pics)}</div>'
        )
    if not blocks:
        return "no evaluations", _hint("No evaluations yet:", "fercurate eval --model runs/NAME/ran.pt --subset pose45 --report runs/eval")
    note = ('<p class="muted">Published results (RAN, SCAN-CCI, MA-Net; see fercurate.published) are shown only '
            "beside a group scored on the same subset (the official list, or the whole test split) with the same "
            "class count, each with its table.</p>")
    return f"{len(blocks)} evaluations", note + "".join(blocks)


def quality_section(ws: Workspace, manifests: Sequence[Manifest]) -> tuple[str, str]:
    from fercurate.quality.dups import leakage_table, manifest_totals, pairs_from_layers, read_dups_layer

    scanned = [m for m in manifests if not _is_synthetic(m) and read_dups_layer(m) is not None]
    frame = pairs_from_layers(scanned) if scanned else None
    if frame is None:
        return "no duplicate scan", _hint("No duplicate scan yet:", "fercurate quality dups manifests/NAME.parquet ...")
    leak = leakage_table(frame, manifest_totals(scanned))
    rows = [[r.manifest, r.split, r.dup_manifest, r.dup_split, int(r.samples), int(r.total), 100 * float(r.fraction),
             int(r.pairs)] for r in leak.itertuples(index=False)]
    body = ('<p class="muted">Samples of each manifest/split with at least one exact or near duplicate in another '
            "manifest/split (from <code>fercurate quality dups</code>).</p>"
            + table(["manifest", "split", "duplicate in", "its split", "samples", "of", "%", "pairs"], rows, left=4))
    return f"{len(frame):,} duplicate pairs", body


# --- the page ----------------------------------------------------------------------------------------


def build_report(
    out: str | os.PathLike,
    *,
    workspace: Workspace | None = None,
    eval_dirs: Sequence[str | os.PathLike] = (),
    echo: Callable[[str], Any] | None = None,
) -> ReportResult:
    """Write ``out/index.html`` (+ PNGs) for the workspace; same as ``fercurate report --out OUT``."""
    ws = workspace or Workspace.current()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifests = _manifests(ws)
    originals = [m for m in manifests if not _is_synthetic(m)]
    figs: list[Path] = []
    parts: list[tuple[str, str, Callable[[], tuple[str, str]]]] = [
        ("datasets", "Datasets", lambda: datasets_section(ws, manifests, out, figs)),
        ("pose", "Head pose", lambda: pose_section(ws, originals, out, figs)),
        ("subsets", "Subsets vs Table I", lambda: subsets_section(ws)),
        ("occlusion", "Occlusion labelling", lambda: occlusion_section(ws, manifests)),
        ("synthetic", "Synthetic variants", lambda: synthetic_section(manifests, out, figs)),
        ("evaluation", "Evaluation vs Table II", lambda: evaluation_section(find_eval_runs(ws, eval_dirs), out, figs)),
        ("quality", "Data quality", lambda: quality_section(ws, manifests)),
    ]
    sections, summaries = [], {}
    for anchor, title, make in parts:
        try:
            summary, body = make()
        except InputError as exc:  # one broken input must not sink the whole report
            summary, body = "error", f'<p class="bad">{esc(exc)}</p>'
        summaries[anchor] = summary
        sections.append((anchor, f"{title}", Raw(body)))
        if echo:
            echo(f"{title}: {summary}")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    html_text = page("fercurate report", f"workspace {ws.root} · {now} · fercurate {__version__}", sections)
    index = out / "index.html"
    write_text(index, html_text)
    return ReportResult(index, summaries, figs)
