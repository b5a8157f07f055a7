"""The options every dataset's ingest shares, as one value: ``IngestOptions``.

``fercurate ingest <dataset>`` declares them once (``fercurate.cli.options.ingest_options``) and each
dataset's ``ingest(root, out, *, <its own options>, options=..., **fields)`` passes them on to
:func:`fercurate.ingest.result.finish` unchanged; a dataset's own options (RAF-DB ``images``, FERPlus
``layout`` ...) stay parameters of its ``ingest``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fercurate.workspace import Workspace


@dataclass(frozen=True)
class IngestOptions:
    """How an ingest checks and where it writes; the defaults are those of ``fercurate ingest``."""

    name: str | None = None  # manifest name (default: the dataset's; FERPlus: the out file's)
    verify: bool = False  # decode every image: width, height and sha256, corrupt files rejected
    workers: int | None = None  # processes/threads for per-image work (default: all cores)
    strict: bool = False  # fail (RejectsError) if any row is rejected, leaving the old manifest
    check_files: bool = True  # check that each image is a file inside the root, under the pixel limit
    follow_links: bool = False  # accept symlinks resolving outside the dataset root
    max_pixels: int | None = None  # pixel limit (default: fercurate.images.max_pixels())
    workspace: Workspace | None = None  # where default outputs go (default: Workspace.current())

    @classmethod
    def of(cls, options: IngestOptions | None = None, **fields: Any) -> IngestOptions:
        """``options`` (default: all defaults) with the given fields replaced: how ``ingest(...,
        verify=True)`` and ``ingest(..., options=IngestOptions(verify=True))`` become the same value."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise TypeError(f"ingest() got an unexpected keyword argument {unknown[0]!r} "
                            f"(the options every dataset shares: {', '.join(known)})")
        base = options if options is not None else cls()
        return dataclasses.replace(base, **fields) if fields else base

    def current_workspace(self) -> Workspace:
        """The workspace default outputs go to."""
        return self.workspace or Workspace.current()

    def manifest_path(self, out: str | os.PathLike | None, dataset: str) -> Path:
        """Where the manifest goes: ``out``, else ``manifests/<name or dataset>.parquet`` in the workspace."""
        return Path(out) if out else self.current_workspace().manifest_path(self.name or dataset)
