"""Ingest two datasets from their native layouts, then read the manifests back with pandas.

    python examples/ingest_and_inspect.py [--workdir DIR]
"""

from __future__ import annotations

import pandas as pd

from _workdir import native_dataset, parse_args
from fercurate.info import manifest_info
from fercurate.ingest import ingest
from fercurate.manifest import read_manifest


def main() -> None:
    args = parse_args(__doc__)
    pd.set_option("display.width", 140)

    for dataset in ("ferplus", "rafdb"):
        root = native_dataset(dataset, args.workdir, args.faces)
        result = ingest(dataset, root, f"manifests/{dataset}.parquet")  # same as: fercurate ingest DATASET ROOT
        print(f"{dataset}: {result.rows} rows -> {result.manifest_path}")

    print(manifest_info("manifests/ferplus.parquet").render())  # same as: fercurate info ferplus

    # A manifest is plain Parquet: one row per face, one schema for every dataset.
    df = pd.read_parquet("manifests/ferplus.parquet")
    print(df[["sample_id", "split", "label", "image_path"]].head())
    print(df.groupby(["split", "label"]).size().unstack(fill_value=0))

    # Paths in a manifest are relative to the dataset root it records, so folders can move.
    manifest = read_manifest("manifests/rafdb.parquet")
    print(f"rafdb root: {manifest.root}; first image: {manifest.root / manifest.table['image_path'][0].as_py()}")


if __name__ == "__main__":  # worker processes re-import this file
    main()
