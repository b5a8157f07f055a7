"""Small AffectNet, RAF-DB and SFEW datasets in their native layouts, with real image files.

Each ``make_*`` function writes one dataset under ``root`` exactly as its publisher lays it out and
returns a dict describing what it wrote: ``root`` and ``rows``, one dict per image holding the values
a correct ingest must put in the manifest (sample_id, image_path, split, source_split, label,
label_id, source_label and, where the dataset has them, bbox, landmarks, valence, arousal), plus the
list line each row came from. Tests, benchmarks and the demo import them::

    from fixtures_layouts import make_affectnet, make_rafdb, make_sfew
    spec = make_affectnet(tmp_path / "AffectNet", n_train=14, n_val=7, seed=0)

Faces are crops of ``../shared/data/ckplus48`` (real CK+ faces) when that folder exists, otherwise
drawn cartoon faces, so the fixtures work on a machine without the shared data. Same arguments ->
byte-identical files.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fercurate.schema import AFFECTNET_LABELS, AFFECTNET_SOURCE_NAMES, RAFDB_LABELS, SFEW_LABELS, label_id

SHARED_DATA = Path(os.environ.get("FERCURATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CKPLUS48 = SHARED_DATA / "ckplus48"

AFFECTNET_HEADER = (
    "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"
)
SFEW_EMOTIONS: tuple[str, ...] = tuple(SFEW_LABELS)  # Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise
RAFDB_LIST = "EmoLabel/list_patition_label.txt"


# --- faces ------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _ck_files() -> tuple[Path, ...]:
    if not CKPLUS48.is_dir():
        return ()
    return tuple(sorted(CKPLUS48.glob("*/*.png")))


def drawn_face(size: int, seed: int) -> np.ndarray:
    """A deterministic cartoon face (uint8 BGR, ``size`` x ``size``), different for each seed."""
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[:] = rng.integers(20, 90, size=3)
    c = size / 2
    skin = tuple(int(v) for v in rng.integers(120, 230, size=3))
    cv2.ellipse(img, (int(c), int(c * 1.05)), (int(size * 0.32), int(size * 0.42)), 0, 0, 360, skin, -1)
    dark = tuple(int(v) for v in rng.integers(0, 60, size=3))
    for dx in (-0.14, 0.14):
        cv2.circle(img, (int(c + dx * size), int(c * 0.85)), max(1, size // 24), dark, -1)
    smile = int(rng.integers(-3, 4)) * size // 48
    cv2.ellipse(img, (int(c), int(c * 1.35)), (size // 8, max(1, abs(smile))), 0,
                0 if smile >= 0 else 180, 180 if smile >= 0 else 360, dark, max(1, size // 48))
    noise = rng.integers(-5, 6, size=img.shape)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def face(size: int, seed: int) -> np.ndarray:
    """A face image (uint8 BGR, ``size`` x ``size``): a real CK+ face if available, else drawn."""
    files = _ck_files()
    if not files:
        return drawn_face(size, seed)
    path = files[(seed * 7919) % len(files)]
    gray = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        return drawn_face(size, seed)
    img = cv2.resize(gray, (size, size), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix, img, params)
    assert ok, path
    path.write_bytes(buf.tobytes())


def _placed(canvas: tuple[int, int], box: tuple[int, int, int, int], seed: int) -> np.ndarray:
    """A canvas (h, w) with a face resized into ``box`` = (x, y, w, h)."""
    h, w = canvas
    rng = np.random.default_rng(seed + 1)
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = rng.integers(30, 200, size=3)
    x, y, bw, bh = box
    img[y : y + bh, x : x + bw] = cv2.resize(face(max(bw, bh), seed), (bw, bh))
    return img


# --- AffectNet --------------------------------------------------------------------------------


def affectnet_line(row: dict[str, Any]) -> str:
    """One CSV line (no newline) for a row dict as returned by :func:`make_affectnet`."""
    b = row["bbox"]
    lm = ";".join(f"{v:.2f}" for v in row["landmarks"])
    return (
        f"{row['subDirectory_filePath']},{int(b['x'])},{int(b['y'])},{int(b['w'])},{int(b['h'])},"
        f"{lm},{row['expression']},{row['valence_text']},{row['arousal_text']}"
    )


def make_affectnet(
    root: str | os.PathLike,
    n_train: int = 14,
    n_val: int = 7,
    seed: int = 0,
    *,
    header: bool = True,
    image_size: int = 96,
) -> dict[str, Any]:
    """Write ``Manually_Annotated_file_lists/{training,validation}.csv`` + JPEGs under ``root``.

    Expressions cycle through 0-10 (so 14 training rows cover every class, 8-10 included);
    classes 8-10 and every fifth labelled row have valence/arousal -2 ("not given").
    ``header=False`` writes both CSVs without a header row.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    k = 0
    for fname, split, source_split, count in (
        ("training.csv", "train", "training", n_train),
        ("validation.csv", "test", "validation", n_val),
    ):
        lines = [AFFECTNET_HEADER] if header else []
        for i in range(count):
            expression = k % 11
            sub = f"{100 + k % 3}/{rng.bytes(28).hex()}.jpg"
            side = int(rng.integers(image_size // 2, image_size - 8))
            x, y = int(rng.integers(0, image_size - side)), int(rng.integers(0, image_size - side))
            pts = np.round(
                np.column_stack([x + rng.uniform(0, side, 68), y + rng.uniform(0, side, 68)]).ravel(), 2
            )
            no_va = expression >= 8 or i % 5 == 4
            valence = None if no_va else round(float(rng.uniform(-1, 1)), 6)
            arousal = None if no_va else round(float(rng.uniform(-1, 1)), 6)
            name = AFFECTNET_LABELS[expression]
            row = {
                "subDirectory_filePath": sub,
                "image_path": f"Manually_Annotated_Images/{sub}",
                "sample_id": f"affectnet/Manually_Annotated_Images/{sub}",
                "split": split,
                "source_split": source_split,
                "expression": expression,
                "label": name,
                "label_id": label_id(name),
                "source_label": AFFECTNET_SOURCE_NAMES[expression],
                "valence": valence,
                "arousal": arousal,
                "valence_text": "-2" if valence is None else f"{valence:.6f}",
                "arousal_text": "-2" if arousal is None else f"{arousal:.6f}",
                "bbox": {"x": float(x), "y": float(y), "w": float(side), "h": float(side)},
                "landmarks": [float(v) for v in pts],
                "csv": str(lists / fname),
                "line": len(lines) + 1,
            }
            lines.append(affectnet_line(row))
            _write(root / row["image_path"], _placed((image_size, image_size), (x, y, side, side), seed * 1000 + k))
            rows.append(row)
            k += 1
        (lists / fname).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"root": root, "rows": rows, "lists": lists, "header": header}


# --- RAF-DB -----------------------------------------------------------------------------------


def make_rafdb(
    root: str | os.PathLike,
    n_train: int = 10,
    n_test: int = 6,
    seed: int = 0,
    *,
    aligned: bool = True,
    original: bool = True,
    annotations: bool = True,
) -> dict[str, Any]:
    """Write RAF-DB basic: ``EmoLabel/list_patition_label.txt``, ``Image/{aligned,original}/`` and
    (``annotations``) ``Annotation/manual`` 5-point landmarks and ``Annotation/boundingbox`` boxes.

    Labels cycle through 1-7. Original images are 120x110 with the face at the box; aligned ones
    are 100x100 crops, as in the release.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    lines: list[str] = []
    k = 0
    for prefix, split, count in (("train", "train", n_train), ("test", "test", n_test)):
        for i in range(1, count + 1):
            value = k % 7 + 1
            stem = f"{prefix}_{i:05d}" if prefix == "train" else f"{prefix}_{i:04d}"
            name = f"{stem}.jpg"
            x1, y1 = float(rng.integers(5, 30)), float(rng.integers(5, 25))
            w, h = float(rng.integers(60, 85)), float(rng.integers(60, 80))
            box = (int(x1), int(y1), int(w), int(h))
            pts = [
                (x1 + w * fx + float(rng.uniform(-2, 2)), y1 + h * fy + float(rng.uniform(-2, 2)))
                for fx, fy in ((0.3, 0.35), (0.7, 0.35), (0.5, 0.55), (0.35, 0.75), (0.65, 0.75))
            ]
            pts = [(round(px, 2), round(py, 2)) for px, py in pts]
            canonical = RAFDB_LABELS[value]
            row = {
                "name": name,
                "stem": stem,
                "split": split,
                "source_split": split,
                "value": value,
                "label": canonical,
                "label_id": label_id(canonical),
                "source_label": str(value),
                "aligned_path": f"Image/aligned/{stem}_aligned.jpg",
                "original_path": f"Image/original/{name}",
                "bbox": {"x": x1, "y": y1, "w": w, "h": h},
                "landmarks": [v for p in pts for v in p],
                "line": len(lines) + 1,
            }
            lines.append(f"{name} {value}")
            if original:
                _write(root / row["original_path"], _placed((110, 120), box, seed * 1000 + k))
            if aligned:
                _write(root / row["aligned_path"], face(100, seed * 1000 + k))
            if annotations:
                manual = root / "Annotation" / "manual" / f"{stem}_manu_attri.txt"
                manual.parent.mkdir(parents=True, exist_ok=True)
                manual.write_text(
                    "".join(f"{px:.2f}\t{py:.2f}\n" for px, py in pts) + f"{k % 3}\n{k % 3}\n{k % 5}\n",
                    encoding="utf-8",
                )
                bbox = root / "Annotation" / "boundingbox" / f"{stem}_boundingbox.txt"
                bbox.parent.mkdir(parents=True, exist_ok=True)
                bbox.write_text(f"{x1:.1f} {y1:.1f} {x1 + w:.1f} {y1 + h:.1f}\n", encoding="utf-8")
            rows.append(row)
            k += 1
    list_path = root / RAFDB_LIST
    list_path.parent.mkdir(parents=True, exist_ok=True)
    list_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"root": root, "rows": rows, "list": list_path}


# --- SFEW -------------------------------------------------------------------------------------


def make_sfew(
    root: str | os.PathLike,
    per_class: int = 2,
    seed: int = 0,
    *,
    n_test: int = 3,
    aligned: str | None = "inside",
    originals: bool = True,
    extras: bool = True,
) -> dict[str, Any]:
    """Write SFEW 2.0: ``Train/`` and ``Val/`` emotion folders, ``Test/`` unlabelled.

    ``aligned``: "inside" writes ``<Split>/<Split>_Aligned_Faces/...`` next to the original frames,
    "root" writes ``<Split>_Aligned_Faces/...`` at the root, None writes no aligned faces.
    ``extras`` adds non-image files (a ``Thumbs.db`` per emotion folder used and a ``readme.txt``
    per split) that an ingest must ignore and count.

    Returns ``rows_original`` and ``rows_aligned`` (the expected manifest rows of each variant) and
    ``non_images`` (how many non-image files each variant's folders hold).
    """
    root = Path(root)
    out: dict[str, Any] = {"root": root, "rows_original": [], "rows_aligned": [], "non_images": {}}
    non_images = {"original": 0, "aligned": 0}
    k = 0
    for source_split, split in (("Train", "train"), ("Val", "val"), ("Test", "test")):
        variants = []
        if originals:
            variants.append(("original", root / source_split, (200, 160)))
        if aligned == "inside":
            variants.append(("aligned", root / source_split / f"{source_split}_Aligned_Faces", (143, 181)))
        elif aligned == "root":
            variants.append(("aligned", root / f"{source_split}_Aligned_Faces", (143, 181)))
        for variant, base, (w, h) in variants:
            folders = [(e, base / e) for e in SFEW_EMOTIONS] if split != "test" else [(None, base)]
            count = per_class if split != "test" else n_test
            for emotion, folder in folders:
                for i in range(count):
                    movie = f"Movie{k % 4}_{i:09d}"
                    fname = f"{movie}_{i + 1:08d}.png" if variant == "aligned" else f"{movie}.png"
                    path = folder / fname
                    img = face(max(w, h), seed * 1000 + k)
                    _write(path, cv2.resize(img, (w, h)))
                    rel = path.relative_to(root).as_posix()
                    label = SFEW_LABELS[emotion] if emotion else None
                    out[f"rows_{variant}"].append(
                        {
                            "image_path": rel,
                            "sample_id": f"sfew/{rel}",
                            "split": split,
                            "source_split": source_split,
                            "source_label": emotion,
                            "label": label,
                            "label_id": label_id(label),
                        }
                    )
                    k += 1
                if extras and emotion is not None:
                    (folder / "Thumbs.db").write_bytes(b"\x00" * 16)
                    non_images[variant] += 1
            if extras:
                (base / "readme.txt").write_text(f"SFEW 2.0 {source_split} ({variant})\n", encoding="utf-8")
                non_images[variant] += 1
    out["non_images"] = non_images
    return out
