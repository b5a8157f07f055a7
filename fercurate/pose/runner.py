"""The batch runner: head pose for every row of a manifest -> ``manifests/<name>.pose.parquet``.

Work is split into fixed chunks of rows (in manifest order) and spread over worker processes, each
building its models once. Every finished chunk is written atomically as a part file under
``manifests/<name>.pose.parts/``, so a killed run loses at most the chunks in flight: ``resume=True``
keeps the parts of an identical earlier run (same manifest rows, method and chunk size, recorded in
``parts.json``) and computes only the missing ones. At the end the parts are merged into the layer
(atomic write, rows sorted by sample_id, no timestamps: the same inputs give the same file) and the
parts folder is removed. A row that cannot be processed (image missing or unreadable, no face) is a
row with a ``failure`` reason; nothing aborts the run.

Layer columns: sample_id, yaw, pitch, roll (float32 degrees; see :mod:`fercurate.pose.geometry` for
the convention), method, confidence (float32 in [0, 1]), failure (null on success).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fercurate.atomic import atomic_path, write_text
from fercurate.errors import InputError
from fercurate.images import ImageReadError, read_image
from fercurate.interrupts import keeping
from fercurate.layers import write_layer
from fercurate.locks import run_lock
from fercurate.manifest import Manifest, read_manifest
from fercurate.parallel import map_chunks, resolve_workers
from fercurate.schema import POSE_LAYER_SCHEMA
from fercurate.workspace import layer_path

POSE_SCHEMA = POSE_LAYER_SCHEMA
RUNNER_VERSION = 1
DEFAULT_CHUNK = 256


@dataclass
class PoseSummary:
    """What a run did: where the layer is, how many rows, how many failed and why, how fast."""

    path: Path
    total: int
    computed: int
    resumed: int
    failures: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    method: str = "mediapipe"

    @property
    def ok(self) -> int:
        return self.total - sum(self.failures.values())

    @property
    def rate(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """Human-readable summary, one item per line."""
        out = [
            f"pose ({self.method}): {self.ok:,} of {self.total:,} faces ok"
            + (f", {self.total - self.ok:,} failed" if self.total != self.ok else ""),
        ]
        for reason, n in self.failures.most_common():
            out.append(f"  {n:>8,}  {reason}")
        timing = f"{self.computed:,} computed in {self.seconds:.1f} s ({self.rate:.0f} images/s)"
        if self.resumed:
            timing += f", {self.resumed:,} reused from an interrupted run"
        out.append(timing)
        out.append(f"wrote {self.path}")
        return out


# --- worker side -----------------------------------------------------------------------------------

_ESTIMATOR = None


def _init_worker(method: str) -> None:
    """Per-process set-up: build the estimator (loads the models once)."""
    global _ESTIMATOR
    os.environ.setdefault("GLOG_minloglevel", "2")
    from fercurate.pose.estimators import get_estimator

    _ESTIMATOR = get_estimator(method)


# The pose layer's short failure reasons for what the image reader says (others are passed on as they are).
_READ_FAILURES = {"image file missing": "image missing", "empty file": "image unreadable",
                  "not a decodable image": "image unreadable"}


def _read(path: str) -> tuple[np.ndarray | None, str | None]:
    """The image as stored (EXIF orientation applied, alpha dropped) in uint8, or why there is none."""
    import cv2

    try:
        img = read_image(path, mode="native")
    except ImageReadError as exc:
        reason = exc.reason
        return None, _READ_FAILURES.get(reason, "image unreadable" if reason.startswith("cannot read") else reason)
    if img.dtype != np.uint8:  # 16-bit PNG/TIFF
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(float(img.max()), 1.0))
    return img, None


def pose_chunk(rows: Sequence[tuple[int, str, str, tuple | None]]) -> tuple[int, dict]:
    """Estimate one chunk of ``(chunk, sample_id, image path, bbox)`` rows -> (chunk, columns)."""
    assert _ESTIMATOR is not None, "worker not initialised"
    chunk = rows[0][0]
    images, boxes, read_fail = [], [], []
    for _, _, path, box in rows:
        img, why = _read(path)
        if img is not None and box is not None:
            h, w = img.shape[:2]
            x, y, bw, bh = box
            if bw <= 0 or bh <= 0 or x >= w or y >= h or x + bw <= 0 or y + bh <= 0:
                img, why = None, "face box outside the image"
        images.append(img)
        boxes.append(box)
        read_fail.append(why)
    try:
        batch = _ESTIMATOR.estimate(images, boxes)
    except Exception:  # noqa: BLE001 - one odd image must not sink the chunk: redo it image by image
        batch = _one_by_one(images, boxes)
    failure = [rf if rf is not None else f for rf, f in zip(read_fail, batch.failure)]
    return chunk, {
        "sample_id": [r[1] for r in rows],
        "yaw": batch.yaw,
        "pitch": batch.pitch,
        "roll": batch.roll,
        "method": [batch.method] * len(rows),
        "confidence": batch.confidence,
        "failure": failure,
    }


def _one_by_one(images: list, boxes: list):  # noqa: ANN202 - PoseBatch
    """Estimate images separately; an exception becomes that row's failure reason."""
    from fercurate.pose.estimators import PoseBatch

    out = PoseBatch.empty(len(images), _ESTIMATOR.name)
    for i, (img, box) in enumerate(zip(images, boxes)):
        try:
            one = _ESTIMATOR.estimate([img], [box])
        except Exception as exc:  # noqa: BLE001
            out.fail(i, f"pose error: {type(exc).__name__}")
            continue
        if one.failure[0] is not None:
            out.fail(i, one.failure[0])
        else:
            out.set(i, (one.yaw[0], one.pitch[0], one.roll[0]), float(one.confidence[0]))
    return out


# --- parent side -----------------------------------------------------------------------------------


def parts_dir(manifest_path: Path) -> Path:
    """Where an interrupted run of this manifest keeps its finished chunks."""
    return _parts_for(layer_path(manifest_path, "pose"))


def _parts_for(layer: Path) -> Path:
    stem = layer.name[: -len(".parquet")] if layer.name.endswith(".parquet") else layer.name
    return layer.with_name(stem + ".parts")


def _fingerprint(manifest: Manifest, method: str, chunk_size: int) -> dict:
    ids = manifest.table.column("sample_id").to_pylist()
    paths = manifest.table.column("image_path").to_pylist()
    h = hashlib.sha256()
    for sid, p in zip(ids, paths):
        h.update(sid.encode())
        h.update(b"\0")
        h.update(p.encode())
        h.update(b"\n")
    return {"rows": len(ids), "rows_sha256": h.hexdigest(), "method": method, "chunk_size": chunk_size,
            "runner_version": RUNNER_VERSION}


def _rows(manifest: Manifest, chunk_size: int) -> list[tuple[int, str, str, tuple | None]]:
    root = manifest.root
    ids = manifest.table.column("sample_id").to_pylist()
    paths = manifest.table.column("image_path").to_pylist()
    bbox = manifest.table.column("bbox").to_pylist()
    out = []
    for i, (sid, p, b) in enumerate(zip(ids, paths, bbox)):
        box = None
        if b is not None and None not in (b["x"], b["y"], b["w"], b["h"]) and b["w"] > 0 and b["h"] > 0:
            box = (float(b["x"]), float(b["y"]), float(b["w"]), float(b["h"]))
        out.append((i // chunk_size, sid, str(root / p), box))
    return out


def _part_path(parts: Path, chunk: int) -> Path:
    return parts / f"part-{chunk:06d}.parquet"


def _done_chunks(parts: Path, expected: dict[int, int]) -> set[int]:
    done = set()
    for chunk, n in expected.items():
        path = _part_path(parts, chunk)
        if not path.exists():
            continue
        try:
            if pq.read_metadata(path).num_rows == n:
                done.add(chunk)
        except (pa.ArrowInvalid, OSError):
            continue
    return done


def run_pose(
    manifest_path: str | os.PathLike,
    *,
    method: str = "mediapipe",
    workers: int | None = None,
    resume: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
    root: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    splits: Sequence[str] = (),
) -> PoseSummary:
    """Compute the pose layer of a manifest (see the module docstring); returns a summary.

    ``splits`` limits the layer to rows of those splits (e.g. only ``test``).
    """
    from fercurate.pose.estimators import METHODS

    if method not in METHODS:
        raise InputError(f"unknown pose method {method!r} (use one of {', '.join(METHODS)})")
    if chunk_size < 1:
        raise InputError("chunk size must be at least 1")
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path, root=root).where_split(*splits)
    out_path = Path(out) if out else layer_path(manifest_path, "pose")
    # one run per layer: a second (an overlapping --resume) would remove or rewrite the first's parts
    with run_lock(out_path, "pose run"):
        return _run(manifest, out_path, method, workers, resume, chunk_size, splits)


def _run(manifest: Manifest, out_path: Path, method: str, workers: int | None, resume: bool, chunk_size: int,
         splits: Sequence[str]) -> PoseSummary:
    parts = _parts_for(out_path)
    fingerprint = _fingerprint(manifest, method, chunk_size) | {"splits": sorted(splits)}
    rows = _rows(manifest, chunk_size)
    expected = Counter(r[0] for r in rows)

    done: set[int] = set()
    meta_file = parts / "parts.json"
    if resume and meta_file.exists():
        try:
            previous = json.loads(meta_file.read_text())
        except ValueError:
            previous = None
        if previous == fingerprint:
            done = _done_chunks(parts, expected)
    if not done and parts.exists():
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    write_text(meta_file, json.dumps(fingerprint, sort_keys=True))

    todo = [r for r in rows if r[0] not in done]
    start = time.perf_counter()
    def kept() -> str:
        n = sum(1 for c in expected if _part_path(parts, c).exists())
        return (f"{n:,} of {len(expected):,} chunks are done and kept in {parts}; "
                "run the same command with --resume to compute only the rest")

    if todo:
        n_workers = min(resolve_workers(workers), max(1, len(expected) - len(done)))
        with keeping(kept):
            for chunk, cols in map_chunks(
                pose_chunk, todo, workers=n_workers, chunk_size=chunk_size, desc=f"pose {manifest.name}",
                unit="img", initializer=_init_worker, initargs=(method,),
            ):
                table = pa.Table.from_pydict(cols, schema=POSE_SCHEMA)
                with atomic_path(_part_path(parts, chunk), suffix=".parquet.tmp") as tmp:
                    pq.write_table(table, tmp)
    seconds = time.perf_counter() - start

    tables = [pq.read_table(_part_path(parts, c)) for c in sorted(expected)]
    table = pa.concat_tables(tables).cast(POSE_SCHEMA) if tables else POSE_SCHEMA.empty_table()
    provenance = {
        "method": method,
        "convention": "AFLW2000-3D/300W-LP: yaw>0 face turned toward the image's left edge, pitch>0 chin up, "
        "roll>0 clockwise in the image; degrees",
        "rows": len(rows),
        "splits": sorted(splits) or "all",
        "chunk_size": chunk_size,
        "runner_version": RUNNER_VERSION,
        "model_sha256": _model_sha256(),
    }
    write_layer(table, out_path, layer="pose", manifest=manifest.name, provenance=provenance)
    shutil.rmtree(parts, ignore_errors=True)
    failures = Counter(f for f in table.column("failure").to_pylist() if f is not None)
    return PoseSummary(out_path, len(rows), len(todo), len(rows) - len(todo), failures, seconds, method)


def _model_sha256() -> str:
    from fercurate.pose.model3d import MODEL_FILE

    return hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest()[:16]
