"""The per-image work of a synth run, done in worker processes: decode, locate, draw, encode, write.

Kept apart from :mod:`fercurate.synth.runner` (manifests, layers, events) so that a worker process
imports only OpenCV, numpy and the drawing code, not pandas/pyarrow: start-up is paid once per core.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fercurate.images import pixel_limit_reason
from fercurate.synth import geometry as G
from fercurate.synth import masks as M
from fercurate.synth import occluders as O
from fercurate.synth import placement as P
from fercurate.synth.seeds import rng
from fercurate.synth.templates import TemplateSet, read_template_config

KINDS: tuple[str, ...] = ("mask", "occlude")
LOSSLESS = (".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. ``styles``: mask styles (built-in or template names) or occluder types."""

    kind: str
    styles: tuple[str, ...]
    colours: tuple[str, ...] = ()
    textures: tuple[str, ...] = ()
    shapes: tuple[str, ...] = ()
    size: float | None = None
    per_image: int = 1
    each: bool = False
    seed: int = 0
    templates: str | None = None
    template_styles: tuple[str, ...] = ()  # filled by validate(): names read from ``templates``
    methods: tuple[str, ...] = P.DEFAULT_METHODS
    fallback: bool = True
    landmark_mode: str = "fast"

    def describe(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Task:
    """One image to make: small and picklable (workers resolve templates themselves)."""

    parent_row: int  # 0-based in the parent manifest
    dataset: str
    parent_id: str
    src: str
    rel: str
    bbox: tuple[float, float, float, float] | None
    seed: int
    spec: Any  # MaskSpec (without template images) or OccluderSpec
    reuse: dict[str, Any] | None = None

    @property
    def sample_id(self) -> str:
        return f"{self.dataset}/{self.rel}"


_STATE: dict[str, Any] = {}


def init_worker(config: SynthConfig, out_dir: str) -> None:
    """Per-process set-up: one OpenCV thread per worker, templates loaded once."""
    cv2.setNumThreads(1)
    _STATE["config"] = config
    _STATE["out_dir"] = Path(out_dir)
    _STATE["templates"] = read_template_config(config.templates) if config.templates else None
    _STATE["dirs"] = set()


def decode_parent(path: str) -> tuple[np.ndarray, str]:
    """(BGR uint8 image, colour mode) of a parent image; raises ValueError with a reason."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError as exc:
        raise ValueError(f"image file missing: {path}") from exc
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from exc
    if data.size == 0:
        raise ValueError(f"empty image file: {path}")
    if (too_big := pixel_limit_reason(data.tobytes())) is not None:
        raise ValueError(f"{too_big}: {path}")
    raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError(f"not a decodable image: {path}")
    if raw.dtype == np.uint16:
        raw = (raw >> 8).astype(np.uint8)
    elif raw.dtype != np.uint8:
        raw = np.clip(raw, 0, 255).astype(np.uint8)
    if raw.ndim == 2:
        return cv2.cvtColor(raw, cv2.COLOR_GRAY2BGR), "single"
    bgr = raw[..., :3] if raw.shape[2] >= 3 else cv2.cvtColor(raw[..., 0], cv2.COLOR_GRAY2BGR)
    bgr = np.ascontiguousarray(bgr)
    same = np.array_equal(bgr[..., 0], bgr[..., 1]) and np.array_equal(bgr[..., 1], bgr[..., 2])
    return bgr, ("replicated" if same else "colour")


def encode_variant(img: np.ndarray, mode: str, rel: str) -> bytes:
    if mode == "single":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    elif mode == "replicated":
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if rel.endswith(".png"):
        ok, enc = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise ValueError(f"OpenCV could not encode {rel}")
    return enc.tobytes()


def _write(path: Path, data: bytes) -> None:
    """Atomic replace (temp file in the same folder + rename). No per-file fsync: it costs ~10 ms a
    file here; a torn file after a power cut fails the decode check and ``resume`` remakes it."""
    folder = path.parent
    if folder not in _STATE["dirs"]:
        folder.mkdir(parents=True, exist_ok=True)
        _STATE["dirs"].add(folder)
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    try:
        # os.open/os.write: the buffered file object of open() costs 0.3 ms more per file here
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _valid_image(path: Path) -> bool:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return False
    return data.size > 0 and pixel_limit_reason(data.tobytes()) is None and cv2.imdecode(data, cv2.IMREAD_UNCHANGED) is not None


def _base_row(task: Task, config: SynthConfig) -> dict[str, Any]:
    spec = task.spec
    occ = "mask" if config.kind == "mask" else O.EVENT_TYPE[spec.type]
    return {
        "sample_id": task.sample_id,
        "derived_from": task.parent_id,
        "image_path": task.rel,
        "variant": spec.variant,
        "kind": config.kind,
        "occlusion_type": occ,
        "seed": task.seed,
        "parent_row": task.parent_row + 1,
    }


def _draw(image: np.ndarray, points: np.ndarray, task: Task, config: SynthConfig) -> tuple[M.Placed, dict[str, Any]]:
    r = rng(task.seed, 2)
    if config.kind == "mask":
        spec = task.spec
        if spec.is_template:
            tset: TemplateSet = _STATE["templates"]
            spec = replace(spec, template_views=tuple(tset.views(spec.style)))
        placed = M.apply_mask(image, points, spec, r)
        covered, eyes_free, frac = G.coverage(placed.polygon, points)
        stats = {"lower_face_covered": covered, "eyes_free": eyes_free, "cover_fraction": frac}
    else:
        placed = O.apply_occluder(image, points, task.spec, r)
        stats = {"lower_face_covered": None, "eyes_free": None, "cover_fraction": None}
    stats["face_covered"] = O.covered_fraction(placed.alpha, points)
    stats["view"] = placed.view
    return placed, stats


def process_chunk(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    """Make the images of one chunk; one row per task (with ``failure`` set when none was made)."""
    from threadpoolctl import threadpool_limits

    # small linear solves per image: BLAS threads only fight the other workers for the cores
    with threadpool_limits(limits=1):
        return _process(tasks)


def _process(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    config: SynthConfig = _STATE["config"]
    out_dir: Path = _STATE["out_dir"]
    rows: list[dict[str, Any] | None] = [None] * len(tasks)
    todo: list[int] = []
    for j, task in enumerate(tasks):
        if task.reuse is not None and _valid_image(out_dir / task.rel):
            rows[j] = dict(task.reuse, reused=True)
        else:
            todo.append(j)
    # decode each parent once (variants of one parent are adjacent)
    decoded: dict[str, tuple[np.ndarray, str] | str] = {}
    for j in todo:
        src = tasks[j].src
        if src not in decoded:
            try:
                decoded[src] = decode_parent(src)
            except ValueError as exc:
                decoded[src] = str(exc)
    # locate each face once: a parent is an image and its face box (one picture may hold several)
    readable = [j for j in todo if not isinstance(decoded[tasks[j].src], str)]
    faces = list(dict.fromkeys((tasks[j].src, tasks[j].bbox) for j in readable))
    located = dict(
        zip(
            faces,
            P.locate_batch(
                [decoded[src][0] for src, _ in faces],  # type: ignore[index]
                [bbox for _, bbox in faces],
                methods=config.methods,
                fallback=config.fallback,
                mode=config.landmark_mode,
            ),
        )
    )
    for j in todo:
        task = tasks[j]
        row = _base_row(task, config)
        got = decoded[task.src]
        if isinstance(got, str):
            rows[j] = dict(row, failure=got)
            continue
        image, mode = got
        loc = located[(task.src, task.bbox)]
        row.update(
            landmark_method=loc.method or None,
            landmark_confidence=loc.confidence,
            landmark_notes="; ".join(loc.notes) or None,
            color_mode=mode,
        )
        if not loc.ok:
            rows[j] = dict(row, failure=f"no landmarks: {loc.failure}")
            continue
        try:
            placed, stats = _draw(image, loc.points, task, config)
            data = encode_variant(placed.image, mode, task.rel)
            _write(out_dir / task.rel, data)
        except (ValueError, cv2.error, np.linalg.LinAlgError) as exc:
            rows[j] = dict(row, failure=f"drawing failed: {exc}")
            continue
        h, w = image.shape[:2]
        row.update(stats, width=w, height=h, sha256=hashlib.sha256(data).hexdigest(), failure=None)
        rows[j] = row
    return [r for r in rows if r is not None]
