"""Make synthetic masked variants of a test split (with provenance), then scan for duplicates and leakage.

    python examples/masks_and_quality.py [--workdir DIR]
"""

from __future__ import annotations

import pandas as pd

from _workdir import native_dataset, parse_args
from fercurate import subsets
from fercurate.ingest import ingest
from fercurate.quality.dups import find_duplicates
from fercurate.synth.pipeline import SynthConfig
from fercurate.synth.runner import run as synthesize


def main() -> None:
    args = parse_args(__doc__)
    pd.set_option("display.width", 140)
    for dataset in ("ferplus", "rafdb"):
        ingest(dataset, native_dataset(dataset, args.workdir, args.faces), f"manifests/{dataset}.parquet")

    # Same as: fercurate synth mask ferplus --split test --style surgical,cloth --seed 7
    config = SynthConfig(kind="mask", styles=("surgical", "cloth"), seed=7)
    result = synthesize("manifests/ferplus.parquet", config, splits=["test"])
    print(result.summary())

    # Every synthetic row says where it came from and how it was made.
    masked = pd.read_parquet("manifests/ferplus-masked.parquet")
    print(masked[["sample_id", "derived_from", "variant", "seed"]].head())

    # Each variant also gets a "synthetic" occlusion event (never mistaken for a human label), so
    # Occlusion subsets build from the masked manifest directly.
    for info in subsets.build("manifests/ferplus-masked.parquet", occlusion=True):
        print(info.line())

    # Same as: fercurate quality dups ferplus rafdb. The demo datasets reuse the same people on purpose.
    dups = find_duplicates(["manifests/ferplus.parquet", "manifests/rafdb.parquet"])
    print(dups.summary())


if __name__ == "__main__":  # worker processes re-import this file
    main()
