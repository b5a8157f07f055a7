"""The data-quality pages (``fercurate quality report``): one folder with every quality finding, as
tables and contact sheets. ``fercurate report`` writes them too, into its ``quality/`` folder.

For the given manifests (default: all in the workspace) it uses the ``dups``, ``nonface`` and
``noise`` layers, computing any that are missing or stale (duplicates across all the given
manifests; non-faces with the face models; label noise from votes only; pass ``compute=False`` to
only report what exists). It writes into the output folder:

* ``duplicates.parquet`` / ``.csv`` (every pair once), ``leakage.csv`` (per split pair),
  ``leakage_datasets.csv`` (per dataset pair);
* ``nonfaces.csv`` (flagged rows and why), ``label_noise.csv`` (contested / likely mislabelled rows);
* ``dup_pairs.png``, ``nonfaces.png``, ``mislabels.png``: contact sheets for review;
* ``summary.md`` and ``index.html``: the counts and the leakage tables, linking the rest.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from fercurate.atomic import write_text
from fercurate.errors import InputError
from fercurate.layers import read_layer, write_layer
from fercurate.manifest import Manifest, read_manifest
from fercurate.quality import dups as dups_mod
from fercurate.quality import nonface as nonface_mod
from fercurate.quality import noise as noise_mod
from fercurate.quality.sheets import Tile, contact_sheet
from fercurate.quality.tables import write_frame
from fercurate.report.html import Raw, figure, pct
from fercurate.report.html import page as page_html
from fercurate.report.html import table as html_table
from fercurate.workspace import Workspace, layer_path


@dataclass
class QualityPageResult:
    """What :func:`build_quality_page` wrote, and what it computed or could not find on the way."""

    out: Path
    files: list[Path] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"computed: {c}" for c in self.computed] + self.notes
        lines.append(f"wrote {len(self.files)} files to {self.out} (open {self.out / 'index.html'})")
        return "\n".join(lines)


def _short(sample_id: str) -> str:
    return sample_id.rsplit("/", 1)[-1]


def _paths(manifests: Sequence[Manifest]) -> dict[tuple[str, str], str]:
    out = {}
    for m in manifests:
        for sid, p in zip(m.table.column("sample_id").to_pylist(), m.image_paths()):
            out[(m.name, sid)] = str(p)
    return out


def _spread(frame: pd.DataFrame, n: int, by: str) -> pd.DataFrame:
    """Up to ``n`` rows evenly spread over the range of column ``by`` (deterministic)."""
    if len(frame) <= n:
        return frame.sort_values(by, kind="stable")
    frame = frame.sort_values(by, kind="stable")
    idx = np.unique(np.linspace(0, len(frame) - 1, n).round().astype(int))
    return frame.iloc[idx]


def dup_tiles(frame: pd.DataFrame, paths: dict, n: int) -> list[Tile]:
    """Leaking pairs first (train vs non-train), then other pairs; near pairs spread over similarity."""
    if not len(frame):
        return []
    leak = (frame["a_split"] == "train") != (frame["b_split"] == "train")
    near = frame["kind"] == "near"
    chosen = []
    budget = n
    for mask, share in ((leak & near, 0.5), (leak & ~near, 0.15), (~leak & near, 0.25), (~leak & ~near, 0.10)):
        k = min(int(mask.sum()), max(1, int(round(n * share))), budget)
        if k > 0:
            chosen.append(_spread(frame[mask], k, "similarity"))
            budget -= k
    sel = pd.concat(chosen) if chosen else frame.head(0)
    tiles = []
    for r in sel.itertuples():
        tiles.append(Tile(
            [paths.get((r.a_manifest, r.a_sample_id), ""), paths.get((r.b_manifest, r.b_sample_id), "")],
            [f"{r.a_manifest}/{r.a_split} - {r.b_manifest}/{r.b_split}",
             f"{r.kind} d={int(r.distance)} sim={float(r.similarity):.3f}",
             f"{_short(r.a_sample_id)} | {_short(r.b_sample_id)}"],
        ))
    return tiles


def _nonface_reason(r) -> str:  # noqa: ANN001 - a DataFrame row
    if r.nf_majority:
        return f"NF votes {int(r.nf_votes)}/10" if r.nf_votes == r.nf_votes else "NF majority"
    if r.blank:
        return f"blank (std {r.gray_std:.1f})"
    if r.unreadable:
        return "unreadable"
    return "no face found" if r.mesh_score != r.mesh_score else f"no face (mesh {r.mesh_score:.2f})"


def _label(value: object) -> str:
    return "no label" if value is None or value != value else f"label {value}"


def flagged_nonfaces(frame: pd.DataFrame) -> pd.DataFrame:
    """Flagged rows, strongest evidence first: NF votes, blank, unreadable, then no face by lowest mesh score."""
    flagged = frame[frame["flagged"]].copy()
    order = np.select(
        [flagged["nf_majority"].astype(bool), flagged["blank"].astype(bool), flagged["unreadable"].astype(bool)],
        [0, 1, 2], 3)
    flagged = flagged.assign(_order=order, _score=flagged["mesh_score"].fillna(0.0))
    flagged = flagged.sort_values(["_order", "_score", "manifest", "sample_id"])
    return flagged.drop(columns=["_order", "_score"])


def nonface_tiles(frame: pd.DataFrame, paths: dict, n: int) -> list[Tile]:
    flagged = flagged_nonfaces(frame).head(n)
    return [Tile([paths.get((r.manifest, r.sample_id), "")], [_short(r.sample_id), _label(r.label), _nonface_reason(r)])
            for r in flagged.itertuples()]


def noise_tiles(frame: pd.DataFrame, paths: dict, n: int) -> tuple[list[Tile], str]:
    """Likely mislabels by rank when model probabilities exist, else contested labels by agreement."""
    mis = frame[frame["likely_mislabel"].fillna(False).astype(bool)].sort_values(["issue_rank", "manifest"])
    if len(mis):
        rows = mis.head(n)
        return [Tile([paths.get((r.manifest, r.sample_id), "")],
                     [_short(r.sample_id), f"{r.label} -> {r.suggested_label}",
                      f"p {r.prob_given:.2f} vs {r.pred_prob:.2f}"])
                for r in rows.itertuples()], "likely mislabels (confident learning): given -> model, most likely first"
    con = frame[frame["contested"].fillna(False).astype(bool)].sort_values(["agreement", "entropy_bits", "manifest",
                                                                           "sample_id"], ascending=[True, False, True, True])
    rows = con.head(n)
    return [Tile([paths.get((r.manifest, r.sample_id), "")],
                 [_short(r.sample_id), f"{r.label} {r.agreement:.0%} of votes",
                  f"2nd {r.vote_runner_up}, H {r.entropy_bits:.2f}"])
            for r in rows.itertuples()], "contested labels (no absolute vote majority), least agreement first"


def _cell(column: str, value: object) -> str:
    if isinstance(value, (float, np.floating)):
        if value != value:
            return ""
        return f"{value:.2%}" if column == "fraction" else f"{value:.3g}"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _markdown_table(df: pd.DataFrame, max_rows: int = 50) -> str:
    if not len(df):
        return "_none_\n"
    df = df.head(max_rows)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(c, v) for c, v in zip(df.columns, row)) + " |")
    return "\n".join(lines) + "\n"


def pair_kind(manifest: str, split: str, dup_manifest: str, dup_split: str) -> str:
    """'leak' (an evaluation split meets train), 'within <split>' (same manifest and split), or 'across'."""
    if (split == "train") != (dup_split == "train"):
        return "leak"
    if (manifest, split) == (dup_manifest, dup_split):
        return f"within {split}"
    return "across"


def _duplicates_html(line: str, leak: pd.DataFrame, by_ds: pd.DataFrame, shown: int, n_pairs: int) -> str:
    rows = [[r.manifest, r.split, r.dup_manifest, r.dup_split, pair_kind(r.manifest, r.split, r.dup_manifest, r.dup_split),
             int(r.samples), int(r.total), Raw(pct(r.fraction)), int(r.pairs)] for r in leak.itertuples(index=False)]
    ds_rows = [[r.dataset, r.dup_dataset, int(r.samples), int(r.total), Raw(pct(r.fraction)), int(r.pairs)]
               for r in by_ds.itertuples(index=False)]
    return (f"<p>{html.escape(line)}</p><h3>Per split pair</h3><p class=\"muted\">Samples of the first manifest/split with "
            "at least one duplicate in the second. The second may be the same split (train → train: duplicates within "
            "train); rows marked <b>leak</b> pair an evaluation split with train. All rows: "
            '<a href="leakage.csv">leakage.csv</a>.</p>'
            + html_table(["manifest", "split", "duplicate in", "its split", "kind", "samples", "of", "share", "pairs"],
                         rows, left=5)
            + "<h3>Per dataset pair</h3>"
            + html_table(["dataset", "duplicate in", "samples", "of", "share", "pairs"], ds_rows, left=2)
            + figure("dup_pairs.png", f"{shown:,} of {n_pairs:,} duplicate pairs (all in duplicates.csv): manifest/split "
                     "of each side, kind, hash distance, similarity, file names"))


TABLE_ROWS = 50  # rows shown on the page; the CSV beside it has all


def _nonfaces_html(line: str, flagged: pd.DataFrame) -> str:
    rows = [[r.sample_id, r.manifest, _text(r.label), r.reasons or "—",
             None if pd.isna(r.nf_votes) else int(r.nf_votes), _round(r.gray_std, 1), _round(r.mesh_score, 2),
             _round(r.detector_score, 2)] for r in flagged.head(TABLE_ROWS).itertuples(index=False)]
    return (f"<p>{html.escape(line)}</p>"
            + figure("nonfaces.png", "flagged images, strongest evidence first, each with its label and reason")
            + f"<h3>First {min(TABLE_ROWS, len(flagged)):,} of {len(flagged):,}</h3>"
            + '<p class="muted">All rows: <a href="nonfaces.csv">nonfaces.csv</a>.</p>'
            + html_table(["sample", "manifest", "label", "reasons", "NF votes", "grey std", "mesh score", "detector score"],
                         rows, left=4))


def _noise_html(line: str, what: str, flagged: pd.DataFrame) -> str:
    top = flagged.sort_values(["agreement", "manifest", "sample_id"], kind="stable").head(TABLE_ROWS)
    rows = [[r.sample_id, r.manifest, _text(r.label), Raw(pct(_round(r.agreement, 4))), _round(r.entropy_bits, 2),
             _text(r.vote_winner), _text(r.vote_runner_up)] for r in top.itertuples(index=False)]
    return (f"<p>{html.escape(line)}</p>" + figure("mislabels.png", what)
            + f"<h3>Least agreement first: {min(TABLE_ROWS, len(flagged)):,} of {len(flagged):,}</h3>"
            + '<p class="muted">All rows: <a href="label_noise.csv">label_noise.csv</a>.</p>'
            + html_table(["sample", "manifest", "label", "vote agreement", "entropy (bits)", "most votes", "second"],
                         rows, left=3))


def _text(value: object) -> str:
    return "—" if value is None or pd.isna(value) else str(value)


def _round(value: object, digits: int) -> float | None:
    return None if pd.isna(value) else round(float(value), digits)


def _load_or_compute(
    manifests: list[Manifest], ws: Workspace, *, compute: bool, face_check: bool, workers: int | None,
    res: QualityPageResult,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame | None]:
    frame = None
    current = all(
        (layer := dups_mod.read_dups_layer(m)) is not None
        and dups_mod.is_current(layer[1], manifests, radius=dups_mod.RADIUS, min_similarity=dups_mod.MIN_SIMILARITY)
        for m in manifests
    )
    if current:
        frame = dups_mod.pairs_from_layers(manifests)
    elif compute:
        result = dups_mod.find_duplicates([m.path for m in manifests], workers=workers, workspace=ws)
        frame = result.pairs
        res.computed.append(f"duplicates over {len(manifests)} manifest(s)")
    else:
        res.notes.append("no up-to-date duplicate layers: run 'fercurate quality dups' (or drop --no-compute)")

    nonfaces, noises = [], []
    for m in manifests:
        lp = layer_path(m.path, "nonface")
        if lp.exists():
            table, _ = read_layer(lp, "nonface")
        elif compute:
            table = nonface_mod.find_nonfaces(m, detect=face_check, workers=workers).table
            res.computed.append(f"non-faces of {m.name}" + ("" if face_check else " (votes and blank images only)"))
        else:
            table = None
        if table is not None:
            df = table.to_pandas()
            df.insert(1, "manifest", m.name)
            labels = dict(zip(m.table.column("sample_id").to_pylist(), m.table.column("label").to_pylist()))
            df.insert(2, "label", df["sample_id"].map(labels))
            nonfaces.append(df)
        lp = layer_path(m.path, "noise")
        if lp.exists():
            table, _ = read_layer(lp, "noise")
        elif compute:
            table = noise_mod.label_noise(m).table
            res.computed.append(f"label noise of {m.name} (votes only; add model probabilities with 'quality noise --probs')")
        else:
            table = None
        if table is not None:
            df = table.to_pandas()
            df.insert(1, "manifest", m.name)
            noises.append(df)
    nf = pd.concat(nonfaces, ignore_index=True) if nonfaces else None
    nz = pd.concat(noises, ignore_index=True) if noises else None
    return frame, nf, nz


def build_quality_page(
    out: str | os.PathLike,
    manifest_paths: Sequence[str | os.PathLike] | None = None,
    *,
    workspace: Workspace | None = None,
    compute: bool = True,
    face_check: bool = True,
    workers: int | None = None,
    sheet_size: int = 48,
    report_link: str | None = None,
) -> QualityPageResult:
    """Write the quality report folder (see the module docstring).

    ``report_link`` is the main report's page relative to ``out`` (default: the workspace's
    ``report/index.html`` when it exists), linked from the quality page's header.
    """
    ws = workspace or Workspace.current()
    if not manifest_paths:
        manifest_paths = [ws.manifest_path(n) for n in ws.manifest_names()]
        if not manifest_paths:
            raise InputError(f"no manifests in {ws.manifests}; pass manifest paths or ingest a dataset first")
    manifests = [read_manifest(ws.resolve_manifest(p)) for p in manifest_paths]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res = QualityPageResult(out)
    frame, nf, nz = _load_or_compute(manifests, ws, compute=compute, face_check=face_check, workers=workers, res=res)
    paths = _paths(manifests)
    totals = dups_mod.manifest_totals(manifests)
    md = ["# Data quality report", "", "Manifests: " + ", ".join(f"`{m.name}` ({len(m):,} rows)" for m in manifests), ""]
    sections: list[tuple[str, str, str]] = []

    if frame is not None:
        leak = dups_mod.leakage_table(frame, totals)
        by_ds = dups_mod.dataset_table(frame, totals)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        res.files.append(write_layer(table.append_column("sample_id", table.column("a_sample_id")),
                                     out / "duplicates.parquet", layer="duplicates",
                                     manifest=",".join(m.name for m in manifests), sort=False))
        res.files += [write_frame(frame, out / "duplicates.csv"), write_frame(leak, out / "leakage.csv"),
                      write_frame(by_ds, out / "leakage_datasets.csv")]
        n_sheet = contact_sheet(dup_tiles(frame, paths, sheet_size), out / "dup_pairs.png", columns=4,
                                title=f"duplicate pairs ({len(frame):,} in all): leaks across train/eval first")
        res.files.append(out / "dup_pairs.png")
        kinds = frame["kind"].value_counts()
        line = (f"{len(frame):,} pairs: " + ", ".join(f"{k} {int(kinds.get(k, 0)):,}" for k in dups_mod.KINDS)
                + f" (rule: exact file / pixel hashes; near = pHash distance <= {dups_mod.RADIUS} and aligned "
                f"similarity >= {dups_mod.MIN_SIMILARITY}).")
        md += ["## Duplicates", "", line, "",
               "### Leakage per split pair (samples of the first split with a duplicate in the second)", "",
               _markdown_table(leak), "### Per dataset pair", "", _markdown_table(by_ds),
               f"![duplicate pairs](dup_pairs.png) ({n_sheet} shown; all in `duplicates.csv`)", ""]
        sections.append(("duplicates", "Duplicates and leakage", _duplicates_html(line, leak, by_ds, n_sheet, len(frame))))

    if nf is not None:
        flagged = flagged_nonfaces(nf)
        cols = ["sample_id", "manifest", "label", "nf_votes", "gray_std", "mesh_score", "detector_score", "reasons"]
        out_nf = flagged[cols].copy()
        out_nf["reasons"] = out_nf["reasons"].map(lambda r: "; ".join(r) if r is not None else "")
        res.files.append(write_frame(out_nf, out / "nonfaces.csv"))
        contact_sheet(nonface_tiles(nf, paths, sheet_size), out / "nonfaces.png", columns=8,
                      title=f"non-faces flagged: {len(flagged):,} (NF votes, blank, unreadable, then no face found)")
        res.files.append(out / "nonfaces.png")
        kinds = {"NF-vote majority": flagged["nf_majority"].sum(), "blank": flagged["blank"].sum(),
                 "unreadable": flagged["unreadable"].sum(), "no face found": flagged["no_face"].fillna(False).sum()}
        line = (f"{len(flagged):,} of {len(nf):,} images flagged: "
                + ", ".join(f"{k} {int(v):,}" for k, v in kinds.items())
                + " (a row can have several reasons; 'no face found' = neither the landmark model nor the "
                "detector finds a face: review, many are profiles).")
        md += ["## Non-faces", "", line, "", _markdown_table(out_nf.head(20)), "![non-faces](nonfaces.png)", ""]
        sections.append(("nonfaces", "Non-faces", _nonfaces_html(line, out_nf)))

    if nz is not None:
        flagged = nz[nz["flagged"]]
        res.files.append(write_frame(flagged, out / "label_noise.csv"))
        tiles, what = noise_tiles(nz, paths, sheet_size)
        contact_sheet(tiles, out / "mislabels.png", columns=8, title=what)
        res.files.append(out / "mislabels.png")
        n_con = int(nz["contested"].fillna(False).astype(bool).sum())
        n_mis = int(nz["likely_mislabel"].fillna(False).astype(bool).sum())
        scored = int(nz["prob_given"].notna().sum())
        line = f"{n_con:,} contested labels (agreement < {noise_mod.CONTESTED_AGREEMENT:g})"
        line += f"; {n_mis:,} likely mislabels among {scored:,} rows with model probabilities." if scored else \
            "; no model probabilities yet ('fercurate quality noise M --probs FILE' or '--model ran.pt')."
        md += ["## Label noise", "", line, "", f"![{what}](mislabels.png)", ""]
        sections.append(("noise", "Label noise", _noise_html(line, what, flagged)))

    if res.notes:
        md += ["## Notes", ""] + [f"- {n}" for n in res.notes] + [""]
    write_text(out / "summary.md", "\n".join(md))
    if res.notes:
        sections.append(("notes", "Notes", "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in res.notes) + "</ul>"))
    if report_link is None:
        main = ws.root / "report" / "index.html"
        report_link = Path(os.path.relpath(main, out)).as_posix() if main.exists() else None
    links = [(report_link, "Main report")] if report_link else []
    subtitle = "manifests: " + ", ".join(f"{m.name} ({len(m):,} rows)" for m in manifests)
    write_text(out / "index.html", page_html("fercurate data quality", subtitle, sections, links))
    res.files += [out / "summary.md", out / "index.html"]
    return res
