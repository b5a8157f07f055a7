"""FERPlus ingest, from either of the two layouts FER+ users have on disk.

* ``folders`` (:mod:`.folders_layout`): what FER+'s ``generate_training_data.py`` produces:
  ``FER2013Train/``, ``FER2013Valid/``, ``FER2013Test/``, each with PNGs and a headerless
  ``label.csv`` (image name, optional face box ``"(left, top, right, bottom)"``, 10 vote counts).
* ``csv`` (:mod:`.csv_layout`): the raw pair ``fer2013.csv`` (emotion, pixels, Usage) +
  ``fer2013new.csv`` (Usage, Image name, 10 votes), joined by row order. The 48x48 pixels are
  written as PNGs exactly as ``generate_training_data.py`` writes them (same folders, names and
  bytes), so both layouts give the same ``sample_id`` for the same image.

Labels are the majority vote (argmax over the 10 FER+ votes, ties to the first column in FER+
order, flagged ``tie``); an ``unknown`` or ``NF`` majority gives no canonical label (flags
``unknown_majority`` / ``nf_majority``), as the FER+ paper excludes those images. All 10 counts are
kept in ``label_votes``; :func:`fercurate.votes.vote_targets` turns them into training targets.

When both ``label.csv`` and ``fer2013new.csv`` are present, ``label.csv`` is used (the RAN lists
follow it) and every disagreement with ``fer2013new.csv`` is flagged and counted, never hidden.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from fercurate.compat import moved_module
from fercurate.errors import InputError
from fercurate.ingest.ferplus.csv_layout import IMAGE_SIDE, N_PIXELS, decode_pixels, find_fer2013_csv, ingest_csv
from fercurate.ingest.ferplus.folders_layout import (
    FLAG_CONFLICT,
    FLAG_EARLIER_ROW,
    FLAG_SPLIT_CONFLICT,
    LABEL_CSV_COLUMNS,
    ingest_folders,
)
from fercurate.ingest.ferplus.reader import (
    DATASET,
    FER2013_CSV,
    FERPLUS_CSV,
    FLAG_DUPLICATE,
    FOLDER_OF_USAGE,
    LABEL_FILE,
    SPLIT_OF_FOLDER,
    SPLIT_OF_USAGE,
    read_ferplus_csv,
)
from fercurate.ingest.options import IngestOptions
from fercurate.ingest.paths import require_dir
from fercurate.ingest.result import IngestResult, Parsed, finish
from fercurate.workspace import manifest_name

# The vote rules moved to fercurate.votes (the trainer and the quality checks use them too).
__getattr__ = moved_module(__name__, "fercurate.votes", {"FERPLUS_VOTE_COLUMNS": "fercurate.schema:FERPLUS_VOTE_COLUMNS"})


def detect_layout(root: str | os.PathLike) -> str:
    """``folders`` if any FER2013{Train,Valid,Test}/label.csv exists, else ``csv`` if fer2013new.csv does."""
    root = Path(root)
    if any((root / f / LABEL_FILE).exists() for f in FOLDER_OF_USAGE.values()):
        return "folders"
    if (root / FERPLUS_CSV).exists():
        return "csv"
    raise InputError(
        f"{root}: not a FERPlus folder: expected FER2013Train/ FER2013Valid/ FER2013Test/ with label.csv "
        f"(generate_training_data.py output), or {FER2013_CSV} + {FERPLUS_CSV}"
    )


def ingest(
    path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    layout: str = "auto",
    images_out: str | os.PathLike | None = None,
    fer2013_csv: str | os.PathLike | None = None,
    ferplus_csv: str | os.PathLike | None = None,
    options: IngestOptions | None = None,
    **shared: Any,
) -> IngestResult:
    """Ingest FERPlus from ``path`` into a manifest (+ rejects table); see the module docstring.

    ``images_out`` (csv layout) is where the PNGs are written and becomes the manifest's root
    (default: ``data/ferplus`` in the workspace). ``fer2013_csv`` / ``ferplus_csv`` override the
    files looked up in ``path``. ``options`` (or its fields as keywords: ``workers=2`` ...) are the
    options every ingest shares; the manifest is named after its file unless ``name`` says otherwise.
    """
    options = IngestOptions.of(options, **shared)
    root = require_dir(path, "FERPlus root")
    if layout not in ("auto", "folders", "csv"):
        raise InputError(f"unknown FERPlus layout {layout!r} (auto, folders, csv)")
    if layout == "auto":
        layout = detect_layout(root)
    out_path = options.manifest_path(out, DATASET)
    options = dataclasses.replace(options, name=options.name or manifest_name(out_path))
    new_path = Path(ferplus_csv) if ferplus_csv else root / FERPLUS_CSV
    if ferplus_csv and not new_path.exists():
        raise InputError(f"{new_path}: {FERPLUS_CSV} not found")
    extra: dict[str, Any] = {}
    created: list[str] = []
    if layout == "folders":
        rows, rejects, notes, source = ingest_folders(root, new_path if new_path.exists() else None)
        data_root = root
    else:
        if not new_path.exists():
            raise InputError(f"{root}: no {FERPLUS_CSV} (needed for the csv layout)")
        fer_path = Path(fer2013_csv) if fer2013_csv else find_fer2013_csv(root)
        if not fer_path.exists():
            raise InputError(f"{fer_path}: {FER2013_CSV} not found")
        if fer_path.name != FER2013_CSV:
            notes_prefix = [f"using {fer_path.name} as {FER2013_CSV}"]
        else:
            notes_prefix = []
        data_root = Path(images_out) if images_out else options.current_workspace().root / "data" / DATASET
        data_root.mkdir(parents=True, exist_ok=True)
        data_root = data_root.resolve()
        try:
            rows, rejects, notes, source, extra = ingest_csv(fer_path, new_path, data_root, root, options.workers, created)
        except BaseException:
            _remove(created)
            raise
        notes = notes_prefix + notes
        source["input_root"] = str(root)
    source["label_mode"] = "majority: argmax over the 10 FER+ votes, ties to the first in FER+ order"
    source["notes"] = notes
    columns = rows.columns() if len(rows) else {"sample_id": [], "image_path": []}
    if len(rows) and extra.get("sha256") is not None:
        columns["sha256"] = extra["sha256"]
        columns["width"] = np.full(len(rows), IMAGE_SIDE, dtype=np.int32)
        columns["height"] = np.full(len(rows), IMAGE_SIDE, dtype=np.int32)
    parsed = Parsed(DATASET, columns, rejects, source=source, notes=notes, row_numbers=rows.line,
                    source_files=rows.source_file)
    try:
        return finish(parsed, root=data_root, out=out_path, options=options)
    except BaseException:
        _remove(created)  # PNGs this run wrote for a manifest that was not written are orphans
        raise


def _remove(paths: list[str]) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


__all__ = [
    "DATASET", "FER2013_CSV", "FERPLUS_CSV", "FLAG_CONFLICT", "FLAG_DUPLICATE", "FLAG_EARLIER_ROW",
    "FLAG_SPLIT_CONFLICT", "FOLDER_OF_USAGE", "IMAGE_SIDE", "LABEL_CSV_COLUMNS", "LABEL_FILE", "N_PIXELS",
    "SPLIT_OF_FOLDER", "SPLIT_OF_USAGE", "decode_pixels", "detect_layout", "ingest", "read_ferplus_csv",
]
