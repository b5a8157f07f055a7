"""Shared set-up for the examples: a workspace folder and small native-layout datasets.

The examples need no dataset of your own: ``fercurate.demo.layouts`` writes small FERPlus, RAF-DB,
AffectNet and SFEW folders exactly as their publishers ship them, from face photos that come inside
installed packages (see ``fercurate demo``). Point the examples at your own data by replacing
``native_dataset(...)`` with the path of the real dataset.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workdir", type=Path, default=None, help="workspace folder (default: a new temp folder)")
    parser.add_argument("--faces", type=int, default=24, help="identities in the generated datasets")
    args = parser.parse_args()
    args.workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="fercurate-example-"))).resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    # A workspace is a folder: manifests/, annotations/, runs/ ... live under it. Library calls use the
    # current directory unless given a Workspace, exactly like the CLI.
    os.chdir(args.workdir)
    print(f"workspace: {args.workdir}")
    return args


def native_dataset(dataset: str, workdir: Path, faces: int, seed: int = 0) -> Path:
    """Write ``dataset`` in its native layout under ``workdir/raw/`` (once) and return its root."""
    from fercurate.demo import layouts
    from fercurate.demo.faces import base_faces

    root = workdir / "raw" / dataset
    if not root.exists():
        writer = getattr(layouts, f"write_{dataset}")
        writer(root, base_faces()[:faces], seed=seed)
    return root
