"""The official RAN subset lists (Wang et al., TIP 2020), imported onto a manifest.

The authors published, per dataset, the images of their Occlusion- and Pose- test sets and their
dlib-aligned train/test lists (``Challenge-condition-FER-dataset``: ``FERplus_dir/``,
``AffectNet_dir/``, ``RAF_DB_dir/``, ``val_ferplus_mn.txt``). :func:`import_ran_lists` matches
every line to a manifest row and writes:

* the ``official`` layer ``manifests/<name>.official.parquet``: sample_id, list, label_id (the
  list's label converted to the canonical space), source_code, source_file, line;
* ``manifests/<name>.official.unmatched.parquet``: every line that was not imported (no matching
  row, malformed, unsafe path, duplicate), with file, line, entry and reason;
* occlusion events in ``annotations/<name>.occlusion.parquet`` (source ``official``, annotator
  ``ran-authors``, a fixed date so a re-import adds nothing);
* the ``official-<list>`` subsets.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fercurate.annotations import append_events, make_event
from fercurate.atomic import atomic_path
from fercurate.errors import InputError, RejectsError
from fercurate.ingest.common import unsafe_path_reason
from fercurate.layers import write_layer
from fercurate.manifest import Manifest, read_manifest
from fercurate.schema import FERPLUS_LABELS, FERPLUS_VOTE_COLUMNS, LABEL_TO_ID, RAFDB_LABELS
from fercurate.subsets import OFFICIAL_LAYER, SubsetInfo, official_subsets
from fercurate.workspace import Workspace, layer_path

ANNOTATOR = "ran-authors"
# The lists carry no dates; events get the day the paper (and the lists) went public, arXiv
# 1905.04075 v1, so re-importing the same list yields the same event ids and adds nothing.
LABELLED_AT = datetime(2019, 5, 10, tzinfo=timezone.utc)
LIST_NAMES = ("pose30", "pose45", "occlusion", "aligned-test", "aligned-train", "pose30-mn")

OFFICIAL_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("list", pa.string(), nullable=False),
        pa.field("label_id", pa.int8()),
        pa.field("source_code", pa.string()),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("line", pa.int32(), nullable=False),
    ]
)
UNMATCHED_SCHEMA = pa.schema(
    [
        pa.field("list", pa.string()),
        pa.field("file", pa.string(), nullable=False),
        pa.field("line", pa.int32()),
        pa.field("entry", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
    ]
)

# List label orders, converted to canonical ids.
_FERPLUS_TO_CANONICAL = {i: LABEL_TO_ID[FERPLUS_LABELS[c]] for i, c in enumerate(FERPLUS_VOTE_COLUMNS[:8])}
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


# --------------------------------------------------------------------------------------------
# matching keys to manifest rows


def _manifest_keys(manifest: Manifest) -> tuple[dict[str, str], dict[str, list[str]], dict[str, int]]:
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


# --------------------------------------------------------------------------------------------
# results


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


@dataclass
class ImportResult:
    """What ``import-ran-lists`` did, for the CLI and tests."""

    manifest_path: Path
    dataset: str
    layer_path: Path
    unmatched_path: Path
    annotations_path: Path | None
    lists: list[ListStats]
    unmatched_examples: list[str]
    events_added: int = 0
    events_present: int = 0
    subsets: list[SubsetInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unmatched(self) -> int:
        return sum(s.unmatched for s in self.lists)

    @property
    def duplicates(self) -> int:
        return sum(s.duplicates for s in self.lists)

    def summary(self) -> str:
        head = (f"{'list':<14} {'file':<58} {'lines':>6} {'matched':>7} {'dup':>4} {'unmatched':>9} "
                f"{'label≠manifest':>14}")
        lines = [f"{self.dataset}: {len(self.lists)} official RAN lists -> {self.layer_path}", head]
        for s in self.lists:
            lines.append(f"{s.name:<14} {s.file:<58} {s.lines:>6,} {s.matched:>7,} {s.duplicates:>4,} "
                         f"{s.unmatched:>9,} {s.label_disagreements:>14,}")
        for s in self.lists:
            if s.occlusion_types:
                types = ", ".join(f"{t} {n:,}" for t, n in s.occlusion_types.items())
                lines.append(f"{s.name} types: {types}")
        if self.annotations_path is not None:
            lines.append(f"occlusion events: {self.events_added:,} added, {self.events_present:,} already present "
                         f"-> {self.annotations_path}")
        not_imported = self.unmatched + self.duplicates
        lines.append(f"lines not imported: {self.unmatched:,} unmatched/malformed, {self.duplicates:,} duplicates "
                     f"-> {self.unmatched_path}")
        lines += [f"  {e}" for e in self.unmatched_examples]
        if not_imported and len(self.unmatched_examples) < not_imported:
            lines.append(f"  ... ({not_imported - len(self.unmatched_examples):,} more in the table)")
        for s in self.lists:
            lines += [f"{s.name}: {n}" for n in s.notes]
        lines += self.notes
        if self.subsets:
            lines.append("subsets: " + ", ".join(f"{s.name} {s.size:,}" for s in self.subsets))
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# parsing one list


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


def _parse_list(
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


# --------------------------------------------------------------------------------------------
# entry point


def import_ran_lists(
    lists_dir: str | os.PathLike,
    manifest: str | os.PathLike,
    *,
    workspace: Workspace | None = None,
    strict: bool = False,
) -> ImportResult:
    """Import the official RAN lists of the manifest's dataset (see the module docstring)."""
    root = Path(lists_dir).expanduser()
    if not root.is_dir():
        raise InputError(f"{root}: RAN lists folder not found")
    ws = workspace or Workspace.current()
    m = read_manifest(manifest)
    if m.dataset not in LIST_SPECS:
        raise InputError(
            f"{m.path}: dataset {m.dataset!r} has no official RAN lists (they exist for {', '.join(LIST_SPECS)})"
        )
    specs = [s for s in LIST_SPECS[m.dataset] if (root / s.path).exists()]
    if not specs:
        expected = ", ".join(s.path for s in LIST_SPECS[m.dataset])
        raise InputError(f"{root}: no official RAN lists for {m.dataset} (expected {expected})")
    notes = [f"not found, skipped: {s.path}" for s in LIST_SPECS[m.dataset] if not (root / s.path).exists()]
    notes += _other_files(root, m.dataset)

    keys, ambiguous, labels = _manifest_keys(m)
    all_stats, layer_rows, bad_rows = [], [], []
    for spec in specs:
        stats, rows, bad = _parse_list(root, spec, m.dataset, keys, ambiguous, labels)
        all_stats.append(stats)
        layer_rows += rows
        bad_rows += bad

    out_layer = layer_path(m.path, OFFICIAL_LAYER)
    out_unmatched = layer_path(m.path, f"{OFFICIAL_LAYER}.unmatched")
    _write_unmatched(bad_rows, out_unmatched)
    examples = [f"{b['file']}:{b['line']}: {b['reason']} ({b['entry']})" for b in bad_rows[:5]]
    result = ImportResult(m.path, m.dataset, out_layer, out_unmatched, None, all_stats, examples, notes=notes)
    unmatched = sum(s.unmatched for s in all_stats)
    if strict and unmatched:
        raise RejectsError(
            f"{unmatched:,} list lines unmatched or malformed (--strict); first: {examples[0]}; "
            f"all in {out_unmatched}"
        )
    if not layer_rows:
        raise InputError(
            f"{root}: no list line matched a row of {m.path}"
            + (f"; first: {examples[0]} (all in {out_unmatched})" if examples else "")
        )
    layer_rows.sort(key=lambda r: (r["sample_id"], LIST_NAMES.index(r["list"]), r["line"]))
    table = pa.Table.from_pylist(layer_rows, schema=OFFICIAL_SCHEMA)
    write_layer(table, out_layer, layer=OFFICIAL_LAYER, manifest=m.name, sort=False, provenance={
        "lists_dir": str(root.resolve()),
        "files": [s.path for s in specs],
        "counts": {s.name: s.matched for s in all_stats},
        "unmatched": unmatched,
        "duplicates": sum(s.duplicates for s in all_stats),
    })

    occlusion = [r for r in layer_rows if r["list"] == "occlusion"]
    if occlusion:
        events = [
            make_event(r["sample_id"], occlusion_types(m.dataset, r["source_code"]), annotator=ANNOTATOR,
                       source="official", labelled_at=LABELLED_AT, source_code=r["source_code"],
                       origin=f"{r['source_file']}:{r['line']}")
            for r in sorted(occlusion, key=lambda r: r["line"])
        ]
        result.annotations_path = ws.annotation_path(m.name)
        result.events_added, result.events_present = append_events(result.annotations_path, events)
    result.subsets = official_subsets(m, workspace=ws)
    return result


def _other_files(root: Path, dataset: str) -> list[str]:
    """Notes for files in the dataset's folders that are not imported (never silently ignored)."""
    known = {s.path for s in LIST_SPECS[dataset]} | {s.label_file for s in LIST_SPECS[dataset] if s.label_file}
    notes = []
    for folder in DATASET_FOLDERS[dataset]:
        base = root / folder
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*.txt")):
            rel = p.relative_to(root).as_posix()
            if rel in known or p.name.lower() == "readme.txt":
                continue
            why = KNOWN_OTHER_FILES.get(rel, "not a known RAN list")
            notes.append(f"not imported: {rel} ({why})")
    return notes


def _write_unmatched(rows: list[dict[str, Any]], path: Path) -> None:
    table = pa.Table.from_pylist(rows, schema=UNMATCHED_SCHEMA)
    with atomic_path(path, suffix=".parquet.tmp") as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_official(manifest: str | os.PathLike) -> pa.Table:
    """The official layer of a manifest (InputError if the lists were never imported)."""
    from fercurate.layers import read_layer

    table, _ = read_layer(layer_path(manifest, OFFICIAL_LAYER), OFFICIAL_LAYER)
    return table


__all__ = ["ImportResult", "LIST_SPECS", "ListStats", "import_ran_lists", "occlusion_types", "read_official"]
