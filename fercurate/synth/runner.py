"""Generating synthetic variants of a manifest: parallel, deterministic, resumable, with provenance.

``run`` plans every (parent, variant) pair in the main process (style, colour, seed and output path
all follow from the run's seed and the parent's sample_id), then workers on all cores decode the
parents, find the faces, find landmarks (batched per chunk), draw, and write each image atomically
(temp file + rename).

Which faces: a row's dataset face box, else the whole picture when the manifest is a dataset of
aligned face crops (:func:`face_crop_manifest`), else every face a detector finds in the picture
(``faces="largest"``: only the largest), all drawn on one variant image with one row per face
(``<id>#face2`` ... when there are several). A picture where no detector finds a face is a failure
row, never a mask; the mean-face fallback is only used where the manifest says the face is there
(box or aligned crop), and its rows say ``placement=fallback``. The result is:

* ``manifests/<name>.parquet``: schema-v1 rows pointing back at their parent (``derived_from``,
  ``variant``, ``seed``, the parent's labels/split/bbox, the new image's own path/size/sha256);
* ``manifests/<name>.synth.parquet``: a layer with how each variant was made (landmark method and
  confidence, why earlier methods failed, template view, coverage figures);
* ``manifests/<name>.rejects.parquet``: parents that produced no image, each with a reason;
* ``annotations/<name>.occlusion.parquet``: one ``synthetic`` occlusion event per variant, so
  ``fercurate subsets build <name> --occlusion`` and evaluation see the occlusion.

Finished chunks are journalled under ``<out>/.fercurate-synth/<name>/``; ``resume=True`` reuses
every image already written that still decodes and whose provenance is known.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fercurate.annotations import append_events, make_event, read_events
from fercurate.atomic import DEFAULT_NAME_MAX, atomic_path, fitting_name, fsync_dir, name_max
from fercurate.errors import InputError
from fercurate.interrupts import keeping
from fercurate.layers import write_layer
from fercurate.manifest import Manifest, build_table, read_manifest, rejects_path, write_manifest, write_rejects
from fercurate.parallel import map_chunks, resolve_workers
from fercurate.schema import BBOX_TYPE, REJECTS_SCHEMA
from fercurate.synth import masks as M
from fercurate.synth import occluders as O
from fercurate.synth import placement as P
from fercurate.synth.pipeline import FACE_CHOICES, KINDS, LOSSLESS, SynthConfig, Task, init_worker, process_chunk
from fercurate.synth.seeds import rng, sample_seed
from fercurate.synth.templates import TemplateSet, read_template_config
from fercurate.workspace import Workspace, layer_path

ANNOTATOR = "fercurate-synth"
SUFFIX = {"mask": "masked", "occlude": "occluded"}
JOURNAL_DIR = ".fercurate-synth"

SYNTH_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("derived_from", pa.string(), nullable=False),
        pa.field("image_path", pa.string()),
        pa.field("variant", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("occlusion_type", pa.string()),
        pa.field("seed", pa.int64()),
        pa.field("view", pa.string()),  # template view, or the procedural variant
        pa.field("face_index", pa.int32()),  # which face of the picture (1-based, left to right)
        pa.field("faces_found", pa.int32()),  # faces the detectors found in the picture (1 for a given box)
        pa.field("face_box", BBOX_TYPE),  # the face box this row's mask was placed in
        pa.field("face_source", pa.string()),  # manifest / crop / mediapipe / dlib / mediapipe+dlib / mediapipe-tiles
        pa.field("placement", pa.string()),  # landmarks, or fallback (mean face shape in the box)
        pa.field("landmark_method", pa.string()),  # mediapipe / dlib / prior
        pa.field("landmark_confidence", pa.float32()),
        pa.field("landmark_notes", pa.string()),  # why earlier methods were not used
        pa.field("lower_face_covered", pa.bool_()),  # mask: nose tip, mouth, chin under the mask
        pa.field("eyes_free", pa.bool_()),  # mask: no eye landmark under the mask
        pa.field("cover_fraction", pa.float32()),  # mask: share of those landmarks covered
        pa.field("face_covered", pa.float32()),  # share of the face region hidden
        pa.field("color_mode", pa.string()),  # single (1 channel) / replicated (gray in 3) / colour
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("sha256", pa.string()),
        pa.field("failure", pa.string()),
        pa.field("parent_row", pa.int64()),  # 1-based row of the parent in its manifest
        pa.field("shortened_from", pa.string()),  # the output path before it was shortened to fit (null: as derived)
    ]
)
_LATER_COLUMNS = ("shortened_from",)  # what a layer of an earlier fercurate may lack (still reused on --resume)


@dataclass
class SynthResult:
    """What a run produced, for the CLI summary and tests."""

    manifest_path: Path
    layer_path: Path
    rejects_path: Path
    events_path: Path
    out_dir: Path
    rows: int
    failed: int
    reused: int
    methods: dict[str, int]
    events_added: int
    seconds: float
    reasons: dict[str, int] = field(default_factory=dict)
    shortened: int = 0  # output names shortened to fit the filesystem (the full ones: the layer's shortened_from)

    def summary(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        methods = ", ".join(f"{k} {v:,}" for k, v in sorted(self.methods.items()))
        lines = [
            f"{self.rows:,} images -> {self.out_dir}  ({rate:.1f} images/s; landmarks: {methods or 'none'})",
            f"manifest {self.manifest_path}",
            f"provenance {self.layer_path}",
            f"occlusion events {self.events_path} (+{self.events_added:,})",
        ]
        if self.reused:
            lines.append(f"resumed: {self.reused:,} images already written were kept")
        if self.shortened:
            lines.append(f"note: {self.shortened:,} names too long for the filesystem were shortened with a hash "
                         f"(the full names: {self.layer_path.name}, column shortened_from)")
        if self.failed:
            why = "; ".join(f"{k} {v:,}" for k, v in sorted(self.reasons.items()))
            lines.append(f"failed: {self.failed:,} ({why}) -> {self.rejects_path}")
        return "\n".join(lines)


# --- planning ------------------------------------------------------------------------------------


def face_crop_manifest(manifest: Manifest) -> str | None:
    """Why every picture of ``manifest`` is one face crop (None when the manifest does not say so).

    Read from what the ingester recorded: FERPlus (48x48 FER2013 crops), RAF-DB ``images="aligned"``,
    SFEW where every split used its ``*_Aligned_Faces`` folder.
    """
    source = manifest.meta.source or {}
    dataset = manifest.dataset
    if dataset == "ferplus" and "label_mode" in source:  # written by fercurate.ingest.ferplus
        return "FERPlus: 48x48 FER2013 face crops"
    if dataset == "rafdb" and source.get("images") == "aligned":
        return "RAF-DB aligned faces"
    folders = source.get("folders") or {}
    if dataset == "sfew" and folders and all("aligned" in str(f).lower() for f in folders.values()):
        return "SFEW aligned faces"
    return None


def _split_list(values: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for v in values:
        out.extend(x.strip() for x in str(v).split(",") if x.strip())
    return tuple(dict.fromkeys(out))


def validate(config: SynthConfig) -> tuple[SynthConfig, TemplateSet | None]:
    """Check names against what exists; returns the config with lists normalised and the templates."""
    if config.kind not in KINDS:
        raise InputError(f"unknown synth kind {config.kind!r} (use {', '.join(KINDS)})")
    styles = _split_list(config.styles)
    tset = read_template_config(config.templates) if config.templates else None
    if config.kind == "mask":
        known = list(M.STYLES) + (tset.styles if tset else [])
        styles = styles or ((tuple(tset.styles) if tset else ()) or M.STYLES)
        bad = [s for s in styles if s not in known]
        if bad:
            hint = "" if tset else " (user templates need --templates masks.cfg)"
            raise InputError(f"unknown mask style {bad[0]!r}; known: {', '.join(known)}{hint}")
        colours = _split_list(config.colours)
        all_colours = {c for p in M.PALETTES.values() for c in p}
        bad = [c for c in colours if c not in all_colours]
        if bad:
            raise InputError(f"unknown mask colour {bad[0]!r}; known: {', '.join(sorted(all_colours))}")
        textures = _split_list(config.textures)
        all_tex = {t for ts in M.TEXTURES.values() for t in ts}
        bad = [t for t in textures if t not in all_tex]
        if bad:
            raise InputError(f"unknown mask texture {bad[0]!r}; known: {', '.join(sorted(all_tex))}")
        # a template style named like a built-in one (e.g. "cloth") means the template
        template_styles = tuple(s for s in styles if tset and s in tset.groups)
        config = replace(config, styles=styles, colours=colours, textures=textures, template_styles=template_styles)
    else:
        styles = styles or O.OCCLUDER_TYPES
        bad = [s for s in styles if s not in O.OCCLUDER_TYPES]
        if bad:
            raise InputError(f"unknown occluder type {bad[0]!r}; known: {', '.join(O.OCCLUDER_TYPES)}")
        shapes = _split_list(config.shapes)
        all_shapes = {s for ss in O.SHAPES.values() for s in ss}
        bad = [s for s in shapes if s not in all_shapes]
        if bad:
            raise InputError(f"unknown occluder shape {bad[0]!r}; known: {', '.join(sorted(all_shapes))}")
        colours = _split_list(config.colours)
        bad = [c for c in colours if c not in O.COLOURS]
        if bad:
            raise InputError(f"unknown occluder colour {bad[0]!r}; known: {', '.join(O.COLOURS)}")
        if config.size is not None and not 0.05 <= config.size <= 1.0:
            raise InputError(f"--size {config.size}: the covered fraction of the face must be in [0.05, 1]")
        config = replace(config, styles=styles, shapes=shapes, colours=colours)
    if config.faces not in FACE_CHOICES:
        raise InputError(f"--faces {config.faces!r}: use {' or '.join(FACE_CHOICES)}")
    if config.per_image < 1:
        raise InputError(f"--per-image {config.per_image}: must be at least 1")
    for m in config.methods:
        if m not in P.DEFAULT_METHODS:
            raise InputError(f"unknown landmark method {m!r} (use {', '.join(P.DEFAULT_METHODS)})")
    if config.landmark_mode not in P.LANDMARK_MODES:
        raise InputError(f"unknown landmark mode {config.landmark_mode!r} (use {', '.join(P.LANDMARK_MODES)})")
    return config, tset


def _choose(config: SynthConfig, style: str, seed: int) -> Any:
    r = rng(seed, 0)
    if config.kind == "mask":
        if style in config.template_styles:
            return M.MaskSpec(style=style, colour=M.TEMPLATE_COLOUR)
        return M.choose_spec(style, r, list(config.colours) or None, list(config.textures) or None)
    return O.choose_spec(
        style, r, size=config.size, shapes=list(config.shapes) or None, colours=list(config.colours) or None
    )


def _out_rel(parent_rel: str, variant: str, k: int | None, lossless: bool, max_bytes: int = DEFAULT_NAME_MAX) -> str:
    """The variant's path: the parent's with the variant in the file name, each part fitted to ``max_bytes``."""
    p = PurePosixPath(parent_rel)
    slug = variant.replace(":", "-").replace("/", "-")
    tag = f"__{k}" if k is not None else ""
    suffix = ".png" if lossless else ".jpg"
    parts = [*p.parent.parts, f"{p.stem}__{slug}{tag}{suffix}"]
    return str(PurePosixPath(*(fitting_name(part, max_bytes) for part in parts)))


def plan(manifest: Manifest, rows: np.ndarray, config: SynthConfig, *, max_name_bytes: int = DEFAULT_NAME_MAX,
         ) -> list[Task]:
    """Every image to make, in a fixed order (parent row, then variant index); names over ``max_name_bytes``
    are shortened (the path as derived is the task's ``shortened_from``)."""
    t = manifest.table
    ids = t.column("sample_id").to_pylist()
    rels = t.column("image_path").to_pylist()
    boxes = t.column("bbox").to_pylist()
    root = manifest.root
    crop = face_crop_manifest(manifest) is not None
    tasks: list[Task] = []
    for i in rows.tolist():
        sid, rel = ids[i], rels[i]
        box = boxes[i]
        bbox = None if box is None or box.get("w") is None else (box["x"], box["y"], box["w"], box["h"])
        lossless = PurePosixPath(rel).suffix.lower() in LOSSLESS
        if config.each:
            picks = [(k, s) for k, s in enumerate(config.styles)]
        else:
            order = rng(sample_seed(config.seed, sid, config.kind, -1), 1).permutation(len(config.styles))
            picks = [(k, config.styles[order[k % len(order)]]) for k in range(config.per_image)]
        for k, style in picks:
            seed = sample_seed(config.seed, sid, config.kind, k)
            spec = _choose(config, style, seed)
            tag = k if (config.per_image > 1 and not config.each) else None
            out_rel = _out_rel(rel, spec.variant, tag, lossless, max_name_bytes)
            full = _out_rel(rel, spec.variant, tag, lossless, 1 << 30)
            tasks.append(Task(i, manifest.dataset, sid, str(root / rel), out_rel, bbox, seed, spec, crop=crop,
                              shortened_from=full if full != out_rel else None))
    return tasks


# --- the main process ----------------------------------------------------------------------------


def _rows_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    cols = {name: [r.get(name) for r in rows] for name in SYNTH_SCHEMA.names}
    return pa.Table.from_pydict(cols, schema=SYNTH_SCHEMA)


def _journal(out_dir: Path, name: str) -> Path:
    return out_dir / JOURNAL_DIR / name


def _previous_rows(out_dir: Path, name: str, manifest_path: Path) -> dict[str, list[dict[str, Any]]]:
    """Provenance rows of images made earlier, by image path (one per face drawn on the image): the
    journal of an interrupted run, else the layer."""
    found: dict[str, dict[str, Any]] = {}
    sources = []
    lp = layer_path(manifest_path, "synth")
    if lp.exists():
        sources.append(lp)
    jdir = _journal(out_dir, name)
    if jdir.exists():
        sources.extend(sorted(jdir.glob("*.parquet")))
    for src in sources:
        try:
            table = pq.read_table(src)
        except (pa.ArrowInvalid, OSError):
            continue
        if not set(SYNTH_SCHEMA.names) - set(_LATER_COLUMNS) <= set(table.column_names):
            continue
        for r in table.select([n for n in SYNTH_SCHEMA.names if n in table.column_names]).to_pylist():
            if r["failure"] is None:
                found[r["sample_id"]] = r
    by_image: dict[str, list[dict[str, Any]]] = {}
    for r in found.values():
        by_image.setdefault(r["image_path"], []).append(r)
    return by_image


def _select_rows(manifest: Manifest, splits: Sequence[str], limit: int | None) -> np.ndarray:
    n = manifest.table.num_rows
    keep = np.ones(n, dtype=bool)
    if splits:
        manifest.where_split(*splits)  # raises a clear error for unknown splits
        col = manifest.table.column("split").cast(pa.string()).to_numpy(zero_copy_only=False)
        keep &= np.isin(col, list(splits))
    rows = np.flatnonzero(keep)
    if limit is not None:
        rows = rows[: max(0, int(limit))]
    return rows


def _assemble(manifest: Manifest, ok: list[dict[str, Any]]) -> pa.Table:
    t = manifest.table
    idx = pa.array([r["parent_row"] - 1 for r in ok], type=pa.int64())
    cols: dict[str, Any] = {
        c: t.column(c).take(idx)
        for c in ("dataset", "split", "source_split", "label", "label_id", "source_label", "label_votes",
                  "valence", "arousal", "bbox", "landmarks")
    }
    parent_flags = t.column("flags").take(idx).to_pylist()
    flags = []
    for pf, r in zip(parent_flags, ok):
        extra = ["synthetic"] + (["synth_prior_landmarks"] if r["landmark_method"] == P.PRIOR else [])
        flags.append(list(dict.fromkeys(list(pf or []) + extra)))
    # a detected face: the row's box is that face's; the parent's landmarks (if any) are not its own
    detected = [r.get("face_source") not in (None, "manifest", "crop") for r in ok]
    if any(detected):
        boxes = cols["bbox"].to_pylist()
        marks = cols["landmarks"].to_pylist()
        for k, (det, r) in enumerate(zip(detected, ok)):
            if det:
                boxes[k], marks[k] = r["face_box"], None
        cols["bbox"], cols["landmarks"] = boxes, marks
    cols.update(
        sample_id=[r["sample_id"] for r in ok],
        image_path=[r["image_path"] for r in ok],
        width=[r["width"] for r in ok],
        height=[r["height"] for r in ok],
        sha256=[r["sha256"] for r in ok],
        flags=flags,
        derived_from=[r["derived_from"] for r in ok],
        variant=[r["variant"] for r in ok],
        seed=[r["seed"] for r in ok],
    )
    return build_table(cols, num_rows=len(ok))


def _events(ok: list[dict[str, Any]], path: Path, name: str) -> int:
    """Append one synthetic occlusion event per new variant (variants already labelled are skipped)."""
    existing = read_events(path)
    have = set()
    if existing.num_rows:
        for sid, types, src, ann in zip(
            existing.column("sample_id").to_pylist(),
            existing.column("types").to_pylist(),
            existing.column("source").to_pylist(),
            existing.column("annotator").to_pylist(),
        ):
            if src == "synthetic" and ann == ANNOTATOR:
                have.add((sid, tuple(types)))
    now = datetime.now(timezone.utc)
    events = [
        make_event(
            r["sample_id"], [r["occlusion_type"]], annotator=ANNOTATOR, source="synthetic",
            labelled_at=now, origin=f"synth:{name}", note=r["variant"],
        )
        for r in ok
        if (r["sample_id"], (r["occlusion_type"],)) not in have
    ]
    if not events:
        return 0
    added, _ = append_events(path, events)
    return added


def run(
    manifest_path: str | os.PathLike,
    config: SynthConfig,
    *,
    out_dir: str | os.PathLike | None = None,
    name: str | None = None,
    splits: Sequence[str] = (),
    limit: int | None = None,
    resume: bool = False,
    workers: int | None = None,
    workspace: Workspace | None = None,
) -> SynthResult:
    """Generate the variants of ``manifest_path`` described by ``config``; see the module docstring."""
    start = time.perf_counter()
    ws = workspace or Workspace.choose(manifest=manifest_path)
    config, _ = validate(config)
    parent = read_manifest(manifest_path)
    name = name or f"{parent.name}-{SUFFIX[config.kind]}"
    if name == parent.name:
        raise InputError(f"--name {name!r} is the parent manifest's own name: pick another")
    out_manifest = ws.manifest_path(name)
    out = Path(out_dir).expanduser().resolve() if out_dir else (ws.root / "data" / name).resolve()
    if out == parent.root.resolve():
        raise InputError(f"{out}: is the parent dataset's root; write variants to their own folder (--out)")
    rows = _select_rows(parent, splits, limit)
    if not len(rows):
        raise InputError(f"{manifest_path}: no rows to make variants of")
    tasks = plan(parent, rows, config, max_name_bytes=name_max(out))
    if resume:
        previous = _previous_rows(out, name, out_manifest)
        fresh = []
        for t in tasks:
            prev = previous.get(t.rel, [])
            same = bool(prev) and all(
                (p["seed"], p["variant"], p["derived_from"]) == (t.seed, t.spec.variant, t.parent_id) for p in prev
            )
            if same:
                reuse = tuple(dict(p, parent_row=t.parent_row + 1) for p in prev)
                fresh.append(replace(t, reuse=reuse))
            else:
                fresh.append(t)
        tasks = fresh
    n_workers = resolve_workers(workers)
    chunk = int(np.clip(len(tasks) // (n_workers * 8) or 1, 4, 128))
    jdir = _journal(out, name)
    jdir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    chunks = map_chunks(process_chunk, tasks, workers=n_workers, chunk_size=chunk, desc=f"synth {config.kind}",
                        initializer=init_worker, initargs=(config, str(out)))
    with keeping(lambda: f"the {sum(r.get('failure') is None for r in results):,} images made so far are kept in "
                         f"{out}; run the same command with --resume to keep them and make the rest"):
        for k, chunk_rows in enumerate(chunks):
            results.extend(chunk_rows)
            made = [r for r in chunk_rows if not r.get("reused") and r.get("failure") is None]
            if made:
                tag = hashlib.sha1(chunk_rows[0]["sample_id"].encode()).hexdigest()[:12]
                with atomic_path(jdir / f"{k:06d}-{tag}.parquet", suffix=".parquet.tmp") as tmp:
                    pq.write_table(_rows_table(made), tmp)

    ok = [r for r in results if r.get("failure") is None]
    bad = [r for r in results if r.get("failure") is not None]
    reused = sum(1 for r in results if r.get("reused"))
    src_name = str(Path(manifest_path))
    rejects = [
        {
            "dataset": parent.dataset, "source_file": src_name, "row": r["parent_row"],
            "image_path": parent.table.column("image_path")[r["parent_row"] - 1].as_py(),
            "reason": r["failure"],
            "raw": f"{r['derived_from']} -> {r['variant']}"
            + (f" (face {r['face_index']} of {r['faces_found']})" if r.get("face_index") else ""),
        }
        for r in bad
    ]
    rej_path = rejects_path(out_manifest)
    write_rejects(pa.Table.from_pylist(rejects, schema=REJECTS_SCHEMA), rej_path)
    if not ok:
        first = rejects[0]["reason"] if rejects else "nothing planned"
        raise InputError(f"{manifest_path}: no variant could be made; first failure: {first} (all in {rej_path})")
    for folder in {(out / r["image_path"]).parent for r in ok}:
        fsync_dir(folder)
    table = _assemble(parent, ok)
    source = {
        "synth": config.describe(),
        "parent": {"name": parent.name, "path": str(Path(manifest_path).resolve()), "root": str(parent.root)},
        "splits": list(splits),
        "limit": limit,
        "rows": len(ok),
        "failed": len(bad),
    }
    if shortened := sum(1 for r in ok if r.get("shortened_from")):
        source["names_shortened"] = shortened  # the full names: the synth layer's shortened_from
    write_manifest(table, out_manifest, name=name, dataset=parent.dataset, root=out, source=source)
    layer = _rows_table(sorted(results, key=lambda r: r["sample_id"]))
    lpath = write_layer(layer, layer_path(out_manifest, "synth"), layer="synth", manifest=name, provenance=source)
    events_path = ws.annotation_path(name)
    added = _events(ok, events_path, name)
    shutil.rmtree(jdir, ignore_errors=True)
    try:
        jdir.parent.rmdir()
    except OSError:
        pass
    methods: dict[str, int] = {}
    for r in ok:
        methods[r["landmark_method"]] = methods.get(r["landmark_method"], 0) + 1
    reasons: dict[str, int] = {}
    for r in bad:
        key = r["failure"].split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    return SynthResult(
        manifest_path=out_manifest, layer_path=lpath, rejects_path=rej_path, events_path=events_path,
        out_dir=out, rows=len(ok), failed=len(bad), reused=reused, methods=methods, events_added=added,
        seconds=time.perf_counter() - start, reasons=reasons, shortened=shortened,
    )
