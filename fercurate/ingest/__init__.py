"""Ingestors: one module per dataset, each with ``ingest(root, out, ..., options=IngestOptions(...)) -> IngestResult``."""

from __future__ import annotations

import importlib
from typing import Any

from fercurate.errors import InputError
from fercurate.ingest.options import IngestOptions
from fercurate.ingest.rejects import Rejects
from fercurate.ingest.result import IngestResult

DATASET_MODULES = {"affectnet": "affectnet", "ferplus": "ferplus", "rafdb": "rafdb", "sfew": "sfew"}


def ingest(dataset: str, root: Any, out: Any = None, **kwargs: Any) -> IngestResult:
    """Ingest ``dataset`` from ``root``; same as ``fercurate ingest <dataset> ROOT``.

    ``kwargs`` are the dataset's own options (``images="original"`` for RAF-DB ...), and the shared
    ones either as fields (``verify=True, workers=2``) or as ``options=IngestOptions(...)``.
    """
    if dataset not in DATASET_MODULES:
        raise InputError(f"unknown dataset {dataset!r} (known: {', '.join(DATASET_MODULES)})")
    module = importlib.import_module(f"fercurate.ingest.{DATASET_MODULES[dataset]}")
    return module.ingest(root, out, **kwargs)


__all__ = ["IngestOptions", "IngestResult", "Rejects", "ingest"]
