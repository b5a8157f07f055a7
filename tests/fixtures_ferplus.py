"""Small FERPlus datasets in both native layouts, generated with real PNGs (for tests and the demo).

One list of :class:`FerEntry` describes a dataset; :func:`write_folders` writes it as
``generate_training_data.py`` output (``FER2013{Train,Valid,Test}/`` with PNGs and ``label.csv``)
and :func:`write_raw_csv` as the raw ``fer2013.csv`` + ``fer2013new.csv`` pair, so the two layouts
of one entry list describe the same images::

    from fixtures_ferplus import default_entries, write_folders, write_raw_csv
    entries = default_entries()
    write_folders(tmp_path / "folders", entries)
    write_raw_csv(tmp_path / "raw", entries)
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fercurate.schema import FERPLUS_VOTE_COLUMNS

FOLDER_OF_USAGE = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}
SPLIT_OF_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SIDE = 48


@dataclass(frozen=True)
class FerEntry:
    """One FER2013 row: its FER+ name ('' = dropped by FER+), Usage, 10 votes and 48x48 pixels."""

    name: str
    usage: str
    votes: tuple[int, ...]
    pixels: np.ndarray
    emotion: int = 6  # FER2013 emotion code (0..6); not used by FER+

    @property
    def folder(self) -> str:
        return FOLDER_OF_USAGE[self.usage]

    @property
    def split(self) -> str:
        return SPLIT_OF_USAGE[self.usage]

    @property
    def image_path(self) -> str:
        return f"{self.folder}/{self.name}"

    @property
    def sample_id(self) -> str:
        return f"ferplus/{self.image_path}"

    @property
    def votes_text(self) -> str:
        return ",".join(str(v) for v in self.votes)


def face_pixels(seed: int) -> np.ndarray:
    """A deterministic 48x48 grayscale cartoon face (uint8), different for each seed."""
    rng = np.random.default_rng(seed)
    img = np.full((SIDE, SIDE), int(rng.integers(20, 80)), dtype=np.uint8)
    skin = int(rng.integers(120, 220))
    cx, cy = 24 + int(rng.integers(-2, 3)), 25 + int(rng.integers(-2, 3))
    cv2.ellipse(img, (cx, cy), (15, 19), 0, 0, 360, skin, -1)
    eye = int(rng.integers(0, 60))
    for dx in (-6, 6):
        cv2.circle(img, (cx + dx, cy - 5), 2, eye, -1)
    smile = int(rng.integers(-4, 5))
    cv2.ellipse(img, (cx, cy + 8), (6, max(1, abs(smile))), 0, 0 if smile >= 0 else 180,
                180 if smile >= 0 else 360, eye, 1)
    noise = rng.integers(-6, 7, size=img.shape)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def votes_of(**counts: int) -> tuple[int, ...]:
    """10 FER+ vote counts from keyword counts, e.g. ``votes_of(neutral=6, happiness=4)``."""
    unknown = set(counts) - set(FERPLUS_VOTE_COLUMNS)
    if unknown:
        raise ValueError(f"not FER+ vote columns: {sorted(unknown)}")
    return tuple(int(counts.get(c, 0)) for c in FERPLUS_VOTE_COLUMNS)


def default_entries(seed: int = 0) -> list[FerEntry]:
    """12 named images (train 6 / val 3 / test 3) plus one row FER+ dropped, covering every label case.

    Train: plain majorities, a tie (neutral 4 = happiness 4 -> neutral, flagged), a row with 9
    votes, an unknown majority; a dropped (all-NF, unnamed) row sits between train rows as in
    fer2013new.csv. Val: surprise, sadness, contempt. Test: anger, an NF majority, fear.
    """
    specs = [
        ("Training", votes_of(neutral=6, happiness=2, unknown=2), 6),
        ("Training", votes_of(happiness=9, surprise=1), 3),
        ("Training", votes_of(neutral=4, happiness=4, sadness=2), 6),
        ("Training", None, 2),  # dropped by FER+: no name, all NF
        ("Training", votes_of(sadness=5, anger=3, disgust=1), 4),
        ("Training", votes_of(unknown=6, neutral=2, fear=2), 2),
        ("Training", votes_of(disgust=7, anger=3), 1),
        ("PublicTest", votes_of(surprise=8, fear=2), 5),
        ("PublicTest", votes_of(sadness=7, neutral=3), 4),
        ("PublicTest", votes_of(contempt=6, neutral=4), 6),
        ("PrivateTest", votes_of(anger=5, disgust=3, unknown=2), 0),
        ("PrivateTest", votes_of(NF=10), 6),
        ("PrivateTest", votes_of(fear=6, surprise=4), 2),
    ]
    entries, counter = [], 0
    for i, (usage, votes, emotion) in enumerate(specs):
        pixels = face_pixels(seed * 1000 + i)
        if votes is None:
            entries.append(FerEntry("", usage, votes_of(NF=10), pixels, emotion))
            continue
        entries.append(FerEntry(f"fer{counter:07d}.png", usage, votes, pixels, emotion))
        counter += 1
    return entries


def with_duplicate(entries: Sequence[FerEntry], name: str, seed: int = 99) -> list[FerEntry]:
    """``entries`` plus a later row re-using ``name`` (new pixels, NF votes) like fer0033120 in the real file."""
    first = next(e for e in entries if e.name == name)
    later = replace(first, votes=(0,) * 9 + (10,), pixels=face_pixels(seed))
    return list(entries) + [later]


def png_bytes(pixels: np.ndarray) -> bytes:
    """The PNG bytes ``generate_training_data.py`` writes for these pixels (PIL, compress_level=0)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buf, format="PNG", compress_level=0)
    return buf.getvalue()


def label_csv_row(entry: FerEntry, *, with_box: bool = True) -> list[str]:
    box = [f"(0, 0, {SIDE}, {SIDE})"] if with_box else []
    return [entry.name, *box, *(str(v) for v in entry.votes)]


def write_folders(root: str | Path, entries: Sequence[FerEntry] | None = None, *, with_box: bool = True) -> Path:
    """Layout (a): FER2013{Train,Valid,Test}/ with one PNG per named entry and a headerless label.csv.

    Like the generator, a later entry with the same name overwrites the PNG, and every named entry
    gets a label.csv row. ``with_box=False`` writes the 11-column label.csv of newer FER+ versions.
    """
    root = Path(root)
    entries = default_entries() if entries is None else list(entries)
    rows: dict[str, list[list[str]]] = {f: [] for f in FOLDER_OF_USAGE.values()}
    for e in entries:
        if not e.name:
            continue
        folder = root / e.folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / e.name).write_bytes(png_bytes(e.pixels))
        rows[e.folder].append(label_csv_row(e, with_box=with_box))
    for folder, folder_rows in rows.items():
        if not folder_rows:
            continue
        with open(root / folder / "label.csv", "w", newline="") as fh:
            csv.writer(fh).writerows(folder_rows)
    return root


def pixels_text(pixels: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in np.asarray(pixels).reshape(-1))


def write_raw_csv(
    root: str | Path,
    entries: Sequence[FerEntry] | None = None,
    *,
    fer_name: str = "fer2013.csv",
    ferplus_name: str = "fer2013new.csv",
) -> tuple[Path, Path]:
    """Layout (b): ``fer2013.csv`` (emotion,pixels,Usage) and ``fer2013new.csv``, one row per entry, same order."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    entries = default_entries() if entries is None else list(entries)
    fer, plus = root / fer_name, root / ferplus_name
    with open(fer, "w", newline="") as fh:
        fh.write("emotion,pixels,Usage\n")
        for e in entries:
            fh.write(f"{e.emotion},{pixels_text(e.pixels)},{e.usage}\n")
    with open(plus, "w", newline="") as fh:
        fh.write("Usage,Image name," + ",".join(FERPLUS_VOTE_COLUMNS) + "\n")
        for e in entries:
            fh.write(f"{e.usage},{e.name},{e.votes_text}\n")
    return fer, plus


def read_png(path: str | Path) -> np.ndarray:
    """A written PNG's pixels as a (48, 48) uint8 array (decoded with OpenCV)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(path)
    return img


def rebuild_fer2013_csv(ferplus_root: str | Path, out: str | Path, *, limit: int | None = None) -> Path:
    """A full-size ``fer2013.csv`` rebuilt from a folder layout and its ``fer2013new.csv`` (for benchmarks).

    Rows follow fer2013new.csv; named rows get their PNG's pixels, rows FER+ dropped get a flat grey
    image (their pixels are not in the folder layout). ``limit`` keeps the first N rows.
    """
    root = Path(ferplus_root)
    out = Path(out)
    grey = " ".join(["128"] * (SIDE * SIDE))
    with open(root / "fer2013new.csv", newline="") as src, open(out, "w", newline="") as dst:
        reader = csv.reader(src)
        next(reader)
        dst.write("emotion,pixels,Usage\n")
        for i, row in enumerate(reader):
            if limit is not None and i >= limit:
                break
            usage, name = row[0].strip(), row[1].strip()
            text = pixels_text(read_png(root / FOLDER_OF_USAGE[usage] / name)) if name else grey
            dst.write(f"6,{text},{usage}\n")
    return out
