"""The per-image work of a synth run, done in worker processes: decode, locate, draw, encode, write.

Kept apart from :mod:`fercurate.synth.runner` (manifests, layers, events) so that a worker process
imports only OpenCV, numpy and the drawing code, not pandas/pyarrow: start-up is paid once per core.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fercurate import images
from fercurate.atomic import temp_prefix
from fercurate.synth import masks as M
from fercurate.synth import occluders as O
from fercurate.synth import outline as G
from fercurate.synth import placement as P
from fercurate.synth.seeds import rng
from fercurate.synth.templates import TemplateSet, read_template_config

KINDS: tuple[str, ...] = ("mask", "occlude")
FACE_CHOICES: tuple[str, ...] = ("all", "largest")
LOSSLESS = (".png", ".bmp", ".tif", ".tiff", ".webp")
# Write errors that are about one file's name or path (not the disk): that variant fails, the run goes on.
_PER_FILE_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL, errno.ENOTDIR, errno.EISDIR})


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
    faces: str = "all"  # pictures without a face box: mask "all" detected faces or the "largest" only

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
    reuse: tuple[dict[str, Any], ...] | None = None  # the rows of an image made earlier (one per face)
    crop: bool = False  # the manifest says the whole picture is one face crop (aligned-crop dataset)
    shortened_from: str | None = None  # ``rel`` before it was shortened to fit the filesystem

    @property
    def sample_id(self) -> str:
        return f"{self.dataset}/{self.rel}"

    def face_sample_id(self, index: int, count: int) -> str:
        """The id of the variant row for face ``index`` of the ``count`` found in one picture."""
        return self.sample_id if count <= 1 else f"{self.sample_id}#face{index + 1}"


@dataclass(frozen=True)
class FaceTarget:
    """One face to draw on in a parent picture: its box and where the box came from."""

    box: tuple[float, float, float, float]
    source: str  # "manifest" (dataset face box), "crop" (aligned-crop picture) or the detector(s)
    index: int  # position among the faces found in the picture (left to right)
    count: int  # faces found in the picture
    drawn: int  # faces to draw on in the picture (``count``, or 1 with faces="largest")

    @property
    def fallback_allowed(self) -> bool:
        """Only the manifest's own word that this is a face lets the mean shape stand in."""
        return self.source in ("manifest", "crop")


_STATE: dict[str, Any] = {}


def init_worker(config: SynthConfig, out_dir: str) -> None:
    """Per-process set-up: one OpenCV thread per worker, templates loaded once."""
    cv2.setNumThreads(1)
    _STATE["config"] = config
    _STATE["out_dir"] = Path(out_dir)
    _STATE["templates"] = read_template_config(config.templates) if config.templates else None
    _STATE["dirs"] = set()


def decode_parent(path: str) -> tuple[np.ndarray, str]:
    """(BGR uint8 image, colour mode) of a parent image, EXIF orientation applied; raises ValueError with a reason."""
    try:
        raw = images.read_image(path, mode="native")
    except images.ImageReadError as exc:
        raise ValueError(f"{exc.reason}: {path}") from exc
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
    tmp = folder / f"{temp_prefix(path)}{os.getpid()}.tmp"
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
        images.read_image(path, mode="native")
    except images.ImageReadError:
        return False
    return True


def _base_row(task: Task, config: SynthConfig, face: FaceTarget | None = None) -> dict[str, Any]:
    spec = task.spec
    occ = "mask" if config.kind == "mask" else O.EVENT_TYPE[spec.type]
    row = {
        "sample_id": task.sample_id if face is None or face.drawn == 1 else task.face_sample_id(face.index, face.count),
        "derived_from": task.parent_id,
        "image_path": task.rel,
        "variant": spec.variant,
        "kind": config.kind,
        "occlusion_type": occ,
        "seed": task.seed,
        "parent_row": task.parent_row + 1,
        "shortened_from": task.shortened_from,
    }
    if face is not None:
        x, y, w, h = face.box
        row.update(
            face_index=face.index + 1, faces_found=face.count, face_source=face.source,
            face_box={"x": x, "y": y, "w": w, "h": h},
        )
    return row


def _draw(
    image: np.ndarray, points: np.ndarray, task: Task, config: SynthConfig, face_index: int = 0
) -> tuple[M.Placed, dict[str, Any]]:
    # face 0 keeps stream 2 (single-face pictures draw exactly as before); further faces get their own
    r = rng(task.seed, 2 + 1000 * face_index)
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


def faces_of(task: Task, image: np.ndarray, config: SynthConfig) -> list[FaceTarget]:
    """The faces to draw on: the manifest's face box, the whole aligned crop, or every detected face."""
    from fercurate.faces.multi import find_faces, largest

    h, w = image.shape[:2]
    if task.bbox is not None:
        return [FaceTarget(tuple(float(v) for v in task.bbox), "manifest", 0, 1, 1)]  # type: ignore[arg-type]
    if task.crop:
        return [FaceTarget((0.0, 0.0, float(w), float(h)), "crop", 0, 1, 1)]
    found = find_faces(image)
    keep = largest(found) if config.faces == "largest" else found
    return [FaceTarget(f.box, f.method, found.index(f), len(found), len(keep)) for f in keep]


NO_FACE = (
    "no face found: neither MediaPipe BlazeFace nor dlib HOG found a face in the picture (on a large picture "
    "BlazeFace also searched tiles, each hit checked by the face mesh)"
)


def _process(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    config: SynthConfig = _STATE["config"]
    out_dir: Path = _STATE["out_dir"]
    rows: list[list[dict[str, Any]]] = [[] for _ in tasks]
    todo: list[int] = []
    for j, task in enumerate(tasks):
        if task.reuse is not None and _valid_image(out_dir / task.rel):
            rows[j] = [dict(r, reused=True) for r in task.reuse]
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
    # find the faces of each parent once, then locate each face once (batched over the chunk)
    targets: dict[tuple[str, Any, bool], list[FaceTarget]] = {}
    for j in todo:
        task = tasks[j]
        key = (task.src, task.bbox, task.crop)
        got = decoded[task.src]
        if key not in targets and not isinstance(got, str):
            targets[key] = faces_of(task, got[0], config)
    faces = [(key[0], t) for key, ts in targets.items() for t in ts]
    located = dict(
        zip(
            [(src, t.box) for src, t in faces],
            P.locate_batch(
                [decoded[src][0] for src, _ in faces],  # type: ignore[index]
                [t.box for _, t in faces],
                methods=config.methods,
                fallback=[config.fallback and t.fallback_allowed for _, t in faces],
                mode=config.landmark_mode,
                detected=[not t.fallback_allowed for _, t in faces],
            ),
        )
    )
    for j in todo:
        rows[j] = _make(tasks[j], decoded[tasks[j].src], targets.get((tasks[j].src, tasks[j].bbox, tasks[j].crop)),
                        located, config, out_dir)
    return [r for rs in rows for r in rs]


def _make(
    task: Task,
    got: tuple[np.ndarray, str] | str,
    targets: list[FaceTarget] | None,
    located: dict[tuple[str, tuple[float, ...]], P.Located],
    config: SynthConfig,
    out_dir: Path,
) -> list[dict[str, Any]]:
    """One variant image with every face of the picture drawn on; one row per face (failures too)."""
    if isinstance(got, str):
        return [dict(_base_row(task, config), failure=got)]
    if not targets:
        return [dict(_base_row(task, config), failure=NO_FACE)]
    image, mode = got
    canvas = image
    out: list[dict[str, Any]] = []
    drawn: list[dict[str, Any]] = []
    for face in targets:
        loc = located[(task.src, face.box)]
        row = _base_row(task, config, face)
        row.update(
            landmark_method=loc.method or None,
            landmark_confidence=loc.confidence,
            landmark_notes="; ".join(loc.notes) or None,
            placement=None if not loc.ok else ("fallback" if loc.method == P.PRIOR else "landmarks"),
            color_mode=mode,
        )
        if not loc.ok:
            out.append(dict(row, failure=f"no landmarks: {loc.failure}"))
            continue
        try:
            placed, stats = _draw(canvas, loc.points, task, config, face.index)
        except (ValueError, cv2.error, np.linalg.LinAlgError) as exc:
            out.append(dict(row, failure=f"drawing failed: {exc}"))
            continue
        canvas = placed.image
        row.update(stats)
        drawn.append(row)
    if drawn:
        try:
            data = encode_variant(canvas, mode, task.rel)
            _write(out_dir / task.rel, data)
        except ValueError as exc:
            return out + [dict(r, failure=f"encoding failed: {exc}") for r in drawn]
        except OSError as exc:  # this one file's name or path; a full disk or no permission stops the run
            if exc.errno not in _PER_FILE_ERRNOS:
                raise
            return out + [dict(r, failure=f"cannot write {task.rel}: {exc.strerror}") for r in drawn]
        h, w = image.shape[:2]
        digest = hashlib.sha256(data).hexdigest()
        out += [dict(r, width=w, height=h, sha256=digest, failure=None) for r in drawn]
    return sorted(out, key=lambda r: r.get("face_index") or 0)
