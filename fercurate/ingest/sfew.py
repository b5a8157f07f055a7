"""SFEW 2.0 ingest: emotion folders -> a manifest.

Supported layouts (the EmotiW release and the usual ways it is unpacked), per split folder
``Train`` -> train, ``Val`` -> val, ``Test`` -> test (names matched case-insensitively)::

    <root>/Train/<Emotion>/*.png                          original frames
    <root>/Train/Train_Aligned_Faces/<Emotion>/*.png      aligned faces inside the split folder
    <root>/Train_Aligned_Faces/<Emotion>/*.png            ... or beside it (Train_Aligned_Faces.zip
                                                          unpacked at the root; a suffix such as
                                                          Val_Aligned_Faces_new is accepted)
    <root>/Test/*.png, <root>/Test/Test_Aligned_Faces/*.png   unlabelled test images

Emotion folders: Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise (case-insensitive;
``source_label`` keeps the folder name). Images directly in a split folder are unlabelled (label
null): the official Test set has no public labels. Any other sub-folder is an unknown emotion: each
image in it is rejected with that reason. Non-image files are ignored and counted in a note; a
folder named like an image (``x.png/``) and a name that is not valid UTF-8 are reject rows.

``aligned``: "auto" uses a split's aligned faces where present, else its original frames; "yes" /
"no" insist on one variant and fail naming the split that lacks it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fercurate.errors import InputError
from fercurate.images import IMAGE_SUFFIXES
from fercurate.ingest.options import IngestOptions
from fercurate.ingest.paths import require_dir
from fercurate.ingest.rejects import Rejects, is_utf8_name, non_utf8_reason
from fercurate.ingest.result import IngestResult, Parsed, finish
from fercurate.schema import SFEW_LABELS, label_id

DATASET = "sfew"
SPLIT_DIRS: dict[str, str] = {"train": "train", "val": "val", "validation": "val", "test": "test"}
SPLIT_ORDER = ("train", "val", "test")
ALIGNED_MODES = ("auto", "yes", "no")
_EMOTIONS = {name.lower(): name for name in SFEW_LABELS}


@dataclass
class _SplitSource:
    """Where one split's images are: its original-frame folder and/or its aligned-face folder."""

    split: str
    name: str  # the dataset's own split name (source_split), e.g. "Train"
    original: Path | None = None
    aligned: Path | None = None


@dataclass
class _Rows:
    image_path: list[str] = field(default_factory=list)
    split: list[str] = field(default_factory=list)
    source_split: list[str] = field(default_factory=list)
    source_label: list[str | None] = field(default_factory=list)


def ingest(
    root: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    aligned: str = "auto",
    options: IngestOptions | None = None,
    **shared: Any,
) -> IngestResult:
    """Ingest SFEW 2.0 under ``root``; ``aligned`` = auto | yes | no picks the image variant.

    ``options`` (or its fields as keywords: ``verify=True`` ...) are the options every ingest shares.
    """
    options = IngestOptions.of(options, **shared)
    if aligned not in ALIGNED_MODES:
        raise InputError(f"aligned must be one of {', '.join(ALIGNED_MODES)}, not {aligned!r}")
    root = require_dir(root, "SFEW root")
    t0 = time.perf_counter()
    sources = _discover(root)
    if not sources:
        raise InputError(f"{root}: no Train/, Val/ or Test/ folder (nor *_Aligned_Faces/) found")

    rejects = Rejects(DATASET)
    rows = _Rows()
    notes: list[str] = []
    used: dict[str, str] = {}
    skipped_files = 0
    for split in SPLIT_ORDER:
        src = sources.get(split)
        if src is None:
            continue
        folder = _choose(src, aligned, root)
        used[split] = folder.relative_to(root).as_posix()
        skip = {src.aligned} if folder == src.original and src.aligned is not None else set()
        before = len(rows.image_path) + len(rejects)
        skipped_files += _collect(root, folder, split, src.name, skip, rows, rejects, notes)
        if len(rows.image_path) + len(rejects) == before:
            notes.append(f"{split}: no images in {used[split]}/")
        if src.original is not None and src.aligned is not None:
            other = src.original if folder == src.aligned else src.aligned
            notes.append(f"{split}: using {used[split]}/ (not {other.relative_to(root).as_posix()}/)")
    if skipped_files:
        notes.append(f"{skipped_files:,} non-image file(s) ignored")
    parse_s = time.perf_counter() - t0

    n = len(rows.image_path)
    labels = [SFEW_LABELS[_EMOTIONS[s.lower()]] if s is not None else None for s in rows.source_label]
    columns: dict[str, Any] = {
        "sample_id": [f"{DATASET}/{p}" for p in rows.image_path],
        "dataset": [DATASET] * n,
        "split": rows.split,
        "source_split": rows.source_split,
        "image_path": rows.image_path,
        "label": labels,
        "label_id": np.array([label_id(v) for v in labels], dtype=np.int8),
        "source_label": rows.source_label,
    }
    parsed = Parsed(DATASET, columns, rejects, source={"layout": "SFEW 2.0 emotion folders", "aligned": aligned,
                                                       "folders": used}, notes=notes, timings={"parse": parse_s})
    return finish(parsed, root=root, out=out, options=options)


def _discover(root: Path) -> dict[str, _SplitSource]:
    """Find each split's original folder and aligned-face folder (inside the split or at the root)."""
    sources: dict[str, _SplitSource] = {}
    entries = sorted((e for e in os.scandir(root) if e.is_dir()), key=lambda e: e.name)
    for e in entries:
        split = SPLIT_DIRS.get(e.name.lower())
        if split is not None:
            src = sources.setdefault(split, _SplitSource(split, e.name))
            src.original = Path(e.path)
            inner = _aligned_child(Path(e.path), e.name)
            if inner is not None:
                src.aligned = inner
    for e in entries:
        low = e.name.lower()
        if "_aligned_faces" in low:
            prefix = e.name[: low.index("_aligned_faces")]
            split = SPLIT_DIRS.get(prefix.lower())
            if split is not None:
                src = sources.setdefault(split, _SplitSource(split, prefix))
                src.aligned = src.aligned or Path(e.path)
    return sources


def _aligned_child(split_dir: Path, split_name: str) -> Path | None:
    prefix = f"{split_name.lower()}_aligned_faces"
    for e in sorted(os.scandir(split_dir), key=lambda e: e.name):
        if e.is_dir() and e.name.lower().startswith(prefix):
            return Path(e.path)
    return None


def _choose(src: _SplitSource, aligned: str, root: Path) -> Path:
    if aligned == "yes" or (aligned == "auto" and src.aligned is not None):
        if src.aligned is None:
            name = src.name
            raise InputError(
                f"{root}: {name}/ has no aligned faces (looked for {name}/{name}_Aligned_Faces/ and "
                f"{name}_Aligned_Faces/); use aligned='auto' or 'no'"
            )
        return src.aligned
    if src.original is None:
        raise InputError(
            f"{root}: {src.split} has only aligned faces ({src.aligned.name}/); use aligned='auto' or 'yes'"
        )
    return src.original


def _collect(
    root: Path,
    folder: Path,
    split: str,
    source_split: str,
    skip: set[Path],
    rows: _Rows,
    rejects: Rejects,
    notes: list[str],
) -> int:
    """Add the images of one split folder; returns how many non-image files were ignored."""
    ignored = 0
    for e in sorted(os.scandir(folder), key=lambda e: e.name):
        path = Path(e.path)
        if not is_utf8_name(e.name):
            rejects.add(non_utf8_reason(folder, e.name), source_file=str(folder), raw=repr(os.fsencode(e.name)))
            continue
        if e.is_dir():
            if path in skip:
                continue
            emotion = _EMOTIONS.get(e.name.lower())
            if e.name.lower().endswith(IMAGE_SUFFIXES):
                rejects.add(f"not an image file: {path} is a folder", source_file=str(folder),
                            image_path=path.relative_to(root).as_posix())
            images, other = _images_in(path)
            ignored += other
            for img in images:
                rel = img.relative_to(root).as_posix()
                if not is_utf8_name(rel):
                    bad_name = not is_utf8_name(img.name)
                    where = img.parent if bad_name else root
                    rejects.add(non_utf8_reason(where, img.name if bad_name else rel), source_file=str(where),
                                raw=repr(os.fsencode(img.name if bad_name else rel)))
                    continue
                if emotion is None:
                    rejects.add(
                        f"unknown emotion folder: {e.name!r} (expected {', '.join(SFEW_LABELS)})",
                        source_file=str(path),
                        image_path=rel,
                    )
                    continue
                _add(rows, rel, split, source_split, e.name)
            if emotion is None and not images:
                notes.append(f"{path.relative_to(root).as_posix()}/: unknown emotion folder with no images")
        elif e.name.lower().endswith(IMAGE_SUFFIXES):
            _add(rows, path.relative_to(root).as_posix(), split, source_split, None)
        else:
            ignored += 1
    return ignored


def _images_in(folder: Path) -> tuple[list[Path], int]:
    """Image files anywhere under ``folder`` (sorted) and the count of other files."""
    images: list[Path] = []
    other = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for f in sorted(filenames):
            if f.lower().endswith(IMAGE_SUFFIXES):
                images.append(Path(dirpath) / f)
            else:
                other += 1
    return images, other


def _add(rows: _Rows, rel: str, split: str, source_split: str, source_label: str | None) -> None:
    rows.image_path.append(rel)
    rows.split.append(split)
    rows.source_split.append(source_split)
    rows.source_label.append(source_label)
