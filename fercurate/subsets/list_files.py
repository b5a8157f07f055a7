"""The RAN authors' published list files: where each list is, its line format, label order and codes.

The authors published, per dataset, the images of their Occlusion- and Pose- test sets and their
dlib-aligned train/test lists (``Challenge-condition-FER-dataset``: ``FERplus_dir/``,
``AffectNet_dir/``, ``RAF_DB_dir/``, ``val_ferplus_mn.txt``). :func:`parse_list` reads one list and
matches every line to a manifest row; :mod:`fercurate.subsets.official` writes what it matched.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fercurate.errors import InputError
from fercurate.ingest.paths import unsafe_path_reason
from fercurate.manifest import Manifest
from fercurate.schema import LABEL_TO_ID, RAFDB_LABELS
from fercurate.votes import FERPLUS_TO_CANONICAL

LIST_NAMES = ("pose30", "pose45", "occlusion", "aligned-test", "aligned-train", "pose30-mn")

# List label orders, converted to canonical ids (FERPlus lists use the FER+ vote columns 0..7).
_FERPLUS_TO_CANONICAL = {i: int(c) for i, c in enumerate(FERPLUS_TO_CANONICAL)}
_AFFECTNET_TO_CANONICAL = {i: i for i in range(8)}
_RAFDB_TO_CANONICAL = {code - 1: LABEL_TO_ID[name] for code, name in RAFDB_LABELS.items()}
LABEL_ORDERS: dict[str, tuple[dict[int, int], str]] = {
    "ferplus": (
        _FERPLUS_TO_CANONICAL,
        "FER+ order 0..7 (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt)",
    ),
    "affectnet": (_AFFECTNET_TO_CANONICAL, "AffectNet order 0..7"),
    "rafdb": (_RAFDB_TO_CANONICAL, "RAF-DB basic label - 1, 0..6"),
}
# FERPlus occlusion codes (README of the lists); RAF-DB's codes are undocumented and AffectNet's
# list has none, so those become the explicit unresolved value ``occluded`` (code kept).
FERPLUS_OCCLUSION_CODES = {"0": ["upper"], "1": ["bottom"], "2": ["left_right"], "3": ["glasses|mask"]}


@dataclass(frozen=True)
class ListSpec:
    """How one published list file is laid out."""

    name: str  # official list name (one of LIST_NAMES)
    path: str  # relative to the lists folder
    pattern: str  # regex for the first token, with groups ``label`` and ``key``
    tokens: int  # whitespace-separated tokens per line
    fmt: str  # the line format, for error messages
    label_token: int | None = None  # token holding the label, when it is not in the path
    code_token: int | None = None  # token holding the occlusion code
    codes: tuple[str, ...] | None = None  # allowed occlusion codes
    label_file: str | None = None  # companion file with one label per line
    label_header: bool = False  # the label file starts with "<count> <classes>"
    occlusion: bool = False

    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern)


_FER = r"(?P<key>fer\d+)"
_HEX = r"(?P<key>[0-9a-fA-F]{56})"
_RAF = r"(?P<key>(?:test|train)_\d+)"
LIST_SPECS: dict[str, tuple[ListSpec, ...]] = {
    "ferplus": (
        ListSpec("occlusion", "FERplus_dir/jianfei_occlusion_list.txt", rf"^(?P<label>\d+)_{_FER}\.png$", 3,
                 "<label>_<ferNNNNNNN>.png 8 <occlusion code 0-3>", code_token=2, codes=("0", "1", "2", "3"),
                 occlusion=True),
        ListSpec("pose30", "FERplus_dir/pose_30_ferplus_list.txt", rf"^(?P<label>\d+)/{_FER}\.jpg$", 1,
                 "<label>/<ferNNNNNNN>.jpg"),
        ListSpec("pose45", "FERplus_dir/pose_45_ferplus_list.txt", rf"^(?P<label>\d+)/{_FER}\.jpg$", 1,
                 "<label>/<ferNNNNNNN>.jpg"),
        ListSpec("aligned-test", "FERplus_dir/dlib_ferplus_val_center_crop_range_list.txt",
                 rf"^(?P<label>\d+)/{_FER}$", 2, "<label>/<ferNNNNNNN> <crops>",
                 label_file="FERplus_dir/dlib_ferplus_val_center_crop_range_label.txt"),
        ListSpec("aligned-train", "FERplus_dir/dlib_ferplus_train_center_crop_range_list.txt",
                 rf"^(?P<label>\d+)/{_FER}$", 2, "<label>/<ferNNNNNNN> <crops>",
                 label_file="FERplus_dir/dlib_ferplus_train_center_crop_range_label.txt"),
        ListSpec("pose30-mn", "val_ferplus_mn.txt", rf"^(?P<label>\d+)_{_FER}\.txt$", 3,
                 "<label>_<ferNNNNNNN>.txt <label>_<ferNNNNNNN>_label.txt <frames>"),
    ),
    "affectnet": (
        ListSpec("occlusion", "AffectNet_dir/occlusion_affectnet_list.txt", rf"^val/(?P<label>\d+)/{_HEX}/?$", 1,
                 "val/<label>/<56-hex image stem>/", occlusion=True),
        ListSpec("pose30", "AffectNet_dir/pose_30_affectnet_list.txt", rf"^(?P<label>\d+)/{_HEX}\.jpg$", 1,
                 "<label>/<56-hex image stem>.jpg"),
        ListSpec("pose45", "AffectNet_dir/pose_45_affectnet_list.txt", rf"^(?P<label>\d+)/{_HEX}/\d+\.jpg$", 1,
                 "<label>/<56-hex image stem>/<n>.jpg"),
        ListSpec("aligned-test", "AffectNet_dir/simple_sample/val_affectnet8part_list.txt",
                 rf"^(?P<label>\d+)/{_HEX}$", 2, "<label>/<56-hex image stem> <crops>",
                 label_file="AffectNet_dir/simple_sample/val_affectnet8part_label.txt"),
    ),
    "rafdb": (
        ListSpec("occlusion", "RAF_DB_dir/rafdb_occlusion_list.txt", rf"^{_RAF}_aligned$", 3,
                 "test_NNNN_aligned <label> <occlusion code>", label_token=1, code_token=2, occlusion=True),
        ListSpec("pose30", "RAF_DB_dir/val_raf_db_list.txt", rf"^(?P<label>\d+)/{_RAF}_aligned\.jpg$", 1,
                 "<label>/test_NNNN_aligned.jpg", label_file="RAF_DB_dir/val_raf_db_label.txt", label_header=True),
        ListSpec("pose45", "RAF_DB_dir/val_raf_db_list_45.txt", rf"^(?P<label>\d+)/{_RAF}_aligned\.jpg$", 1,
                 "<label>/test_NNNN_aligned.jpg", label_file="RAF_DB_dir/val_raf_db_label_45.txt", label_header=True),
    ),
}
# Files in the published folders that are known and deliberately not imported.
KNOWN_OTHER_FILES = {
    "AffectNet_dir/simple_sample/train_affectnet8part_label.txt":
        "labels of the AffectNet training list, whose list file was never published: nothing to match",
}
DATASET_FOLDERS = {"ferplus": ("FERplus_dir",), "affectnet": ("AffectNet_dir",), "rafdb": ("RAF_DB_dir",)}


def manifest_keys(manifest: Manifest) -> tuple[dict[str, str], dict[str, list[str]], dict[str, int]]:
    """(key -> sample_id, ambiguous key -> sample_ids, sample_id -> label_id) for the manifest's dataset."""
    paths = manifest.table.column("image_path").to_pylist()
    ids = manifest.table.column("sample_id").to_pylist()
    labels = dict(zip(ids, manifest.table.column("label_id").to_pylist()))
    pattern = {
        "ferplus": re.compile(r"(fer\d+)\.[^/.]+$"),
        "affectnet": re.compile(r"([0-9a-f]{56})"),
        "rafdb": re.compile(r"((?:test|train)_\d+)(?:_aligned)?\.[^/.]+$"),
    }[manifest.dataset]
    found: dict[str, list[str]] = defaultdict(list)
    for path, sid in zip(paths, ids):
        m = pattern.search(path.lower() if manifest.dataset == "affectnet" else path)
        if m:
            found[m.group(1)].append(sid)
    unique = {k: v[0] for k, v in found.items() if len(v) == 1}
    ambiguous = {k: v for k, v in found.items() if len(v) > 1}
    return unique, ambiguous, labels


@dataclass
class ListStats:
    """What happened to one list file."""

    name: str
    file: str
    lines: int = 0
    matched: int = 0
    duplicates: int = 0
    unmatched: int = 0  # no row, malformed or unsafe
    label_disagreements: int = 0  # list label != manifest label
    label_file_disagreements: int = 0  # companion label file != label in the list line
    occlusion_types: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


def _text_lines(path: Path) -> list[tuple[int, str | None, str]]:
    """(1-based line, text or None if not UTF-8, shown text) for each non-blank line."""
    try:
        data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM is not part of the first line
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    out = []
    for no, raw in enumerate(data.split(b"\n"), 1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            out.append((no, raw.decode("utf-8"), ""))
        except UnicodeDecodeError:
            out.append((no, None, raw.decode("utf-8", errors="replace")))
    return out


def _read_label_file(path: Path, header: bool, stats: ListStats, rel: str) -> list[tuple[int, str]]:
    """(line, label text) per label line; a header ``<count> <classes>`` is checked and skipped."""
    lines = [(no, text.strip()) for no, text, _ in _text_lines(path) if text is not None]
    if header and lines:
        first = lines[0][1].split()
        if len(first) != 2 or not all(t.isdigit() for t in first):
            stats.notes.append(f"{rel}:{lines[0][0]}: expected a header '<count> <classes>', found {lines[0][1]!r}")
        else:
            lines = lines[1:]
            if int(first[0]) != len(lines):
                stats.notes.append(f"{rel}: header says {first[0]} labels, the file has {len(lines):,}")
    return lines


def parse_list(
    root: Path,
    spec: ListSpec,
    dataset: str,
    keys: dict[str, str],
    ambiguous: dict[str, list[str]],
    manifest_labels: dict[str, int],
) -> tuple[ListStats, list[dict[str, Any]], list[dict[str, Any]]]:
    """Parse one list: (stats, layer rows, not-imported rows)."""
    path = root / spec.path
    stats = ListStats(spec.name, spec.path)
    rows: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    order, order_text = LABEL_ORDERS[dataset]
    regex = spec.regex()
    labels_from_file: list[tuple[int, str]] | None = None
    if spec.label_file:
        lp = root / spec.label_file
        if lp.exists():
            labels_from_file = _read_label_file(lp, spec.label_header, stats, spec.label_file)
        else:
            stats.notes.append(f"label file {spec.label_file} not found: labels taken from the list only")
    lines = _text_lines(path)
    stats.lines = len(lines)
    if labels_from_file is not None and len(labels_from_file) != len(lines):
        stats.notes.append(f"{spec.label_file} has {len(labels_from_file):,} labels for {len(lines):,} list lines")
    seen: dict[str, tuple[int, str | None]] = {}
    file_disagree: list[str] = []
    disagree_examples: list[str] = []

    def reject(no: int, entry: str, reason: str, duplicate: bool = False) -> None:
        bad.append({"list": spec.name, "file": spec.path, "line": no, "entry": entry, "reason": reason})
        if duplicate:
            stats.duplicates += 1
        else:
            stats.unmatched += 1

    for i, (no, text, shown) in enumerate(lines):
        if text is None:
            reject(no, shown, "malformed: not valid UTF-8")
            continue
        entry = text.strip()
        tokens = entry.split()
        unsafe = unsafe_path_reason(tokens[0])
        if unsafe:
            reject(no, entry, f"unsafe path: {unsafe.replace('image path', 'entry')}")
            continue
        m = regex.match(tokens[0])
        if len(tokens) != spec.tokens or not m:
            reject(no, entry, f"malformed: expected '{spec.fmt}'")
            continue
        label_text = tokens[spec.label_token] if spec.label_token is not None else m.group("label")
        if not label_text.isdigit() or int(label_text) not in order:
            reject(no, entry, f"malformed: label {label_text!r} is not in the list's label order ({order_text})")
            continue
        code = tokens[spec.code_token] if spec.code_token is not None else None
        if code is not None and spec.codes is not None and code not in spec.codes:
            reject(no, entry, f"malformed: occlusion code {code!r} is not one of {', '.join(spec.codes)}")
            continue
        key = m.group("key").lower() if dataset == "affectnet" else m.group("key")
        if key in ambiguous:
            reject(no, entry, f"unmatched: {len(ambiguous[key])} manifest rows match {key} "
                              f"({', '.join(ambiguous[key][:3])})")
            continue
        sid = keys.get(key)
        if sid is None:
            reject(no, entry, f"unmatched: no manifest row for {key}")
            continue
        if labels_from_file is not None and i < len(labels_from_file) and labels_from_file[i][1] != label_text:
            file_disagree.append(f"{spec.path}:{no} says {label_text}, {spec.label_file}:{labels_from_file[i][0]} "
                                 f"says {labels_from_file[i][1]}")
        if sid in seen:
            first_line, first_code = seen[sid]
            codes = f" (code {first_code} there, {code} here)" if code is not None and code != first_code else ""
            reject(no, entry, f"duplicate: same image as line {first_line}{codes}", duplicate=True)
            continue
        seen[sid] = (no, code)
        label_id = order[int(label_text)]
        if manifest_labels.get(sid) != label_id:
            stats.label_disagreements += 1
            if len(disagree_examples) < 3:
                disagree_examples.append(
                    f"{spec.path}:{no} ({sid}: list {label_id}, manifest {manifest_labels.get(sid)})"
                )
        rows.append({"sample_id": sid, "list": spec.name, "label_id": label_id, "source_code": code,
                     "source_file": spec.path, "line": no})
        if spec.occlusion:
            stats.occlusion_types["|".join(occlusion_types(dataset, code))] += 1
    stats.matched = len(rows)
    stats.label_file_disagreements = len(file_disagree)
    if file_disagree:
        stats.notes.append(f"{len(file_disagree):,} lines disagree with {spec.label_file}, e.g. {file_disagree[0]}")
    if stats.label_disagreements:
        stats.notes.append(f"{stats.label_disagreements:,} labels differ from the manifest's (canonical ids), "
                           f"e.g. {'; '.join(disagree_examples)}")
    if spec.occlusion:
        ordered = sorted(stats.occlusion_types.items(), key=lambda kv: _type_order(kv[0]))
        stats.occlusion_types = Counter(dict(ordered))
    return stats, rows, bad


def _type_order(types: str) -> tuple[int, str]:
    rank = {"upper": 0, "bottom": 1, "left_right": 2, "glasses|mask": 3, "occluded": 4}
    return rank.get(types, 9), types


def occlusion_types(dataset: str, code: str | None) -> list[str]:
    """Occlusion value(s) for an official list's code: FERPlus codes are decoded, others are ``occluded``."""
    if dataset == "ferplus" and code in FERPLUS_OCCLUSION_CODES:
        return FERPLUS_OCCLUSION_CODES[code]
    return ["occluded"]

