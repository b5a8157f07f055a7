"""Options several commands share, so they read and behave the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

Workers = typer.Option(
    None, "--workers", "-j", help="Worker processes for per-image work (default: all cores).", min=1
)
Verify = typer.Option(
    False, "--verify", help="Decode every image (all cores) and record width, height and sha256."
)
Strict = typer.Option(False, "--strict", help="Fail (exit 3) if any row is rejected.")
Workspace = typer.Option(
    None,
    "--workspace",
    "-w",
    envvar="FERCURATE_WORKSPACE",
    help="Workspace folder holding manifests/, annotations/, runs/ (default: current folder).",
)
OutManifest = typer.Option(
    None, "--out", "-o", help="Manifest to write (default: manifests/<dataset>.parquet in the workspace)."
)

OptionalPath = Optional[Path]
