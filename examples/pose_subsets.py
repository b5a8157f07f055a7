"""Estimate head pose for every face, then build Pose-30 / Pose-45 (and a looser Pose-15) subsets.

    python examples/pose_subsets.py [--workdir DIR]
"""

from __future__ import annotations

import pandas as pd

from _workdir import native_dataset, parse_args
from fercurate import subsets
from fercurate.ingest import ingest
from fercurate.layers import read_layer
from fercurate.pose.runner import run_pose


def main() -> None:
    args = parse_args(__doc__)
    pd.set_option("display.width", 140)
    ingest("ferplus", native_dataset("ferplus", args.workdir, args.faces), "manifests/ferplus.parquet")

    # Same as: fercurate pose manifests/ferplus.parquet  (all cores; --resume continues a killed run)
    summary = run_pose("manifests/ferplus.parquet")
    print("\n".join(summary.lines()))

    # The pose layer is keyed by sample_id. Angles in degrees, AFLW2000-3D convention: yaw > 0 = face
    # turned toward the image's left edge, pitch > 0 = chin up, roll > 0 = clockwise in the image.
    layer, meta = read_layer("manifests/ferplus.pose.parquet", "pose")
    pose = layer.to_pandas()
    print(f"method {meta['provenance']['method']}; failures: {pose['failure'].notna().sum()} of {len(pose)}")
    print(pose[["sample_id", "yaw", "pitch", "roll", "confidence"]].describe().round(1))

    # Pose-T keeps faces with max(|yaw|, |pitch|) > T, as the RAN paper defines it. fercurate's own
    # estimate is named poseT-estimated; pose30 / pose45 name the RAN authors' lists (import-ran-lists).
    for info in subsets.build("manifests/ferplus.parquet", pose=[15, 30, 45]):
        print(info.line())

    # Subset members are Parquet too: join them back onto the manifest to get paths and labels.
    members, meta = subsets.read_subset("manifests/subsets/ferplus-pose15-estimated.parquet")
    manifest = pd.read_parquet("manifests/ferplus.parquet")
    print(manifest[manifest.sample_id.isin(members.column("sample_id").to_pylist())][["sample_id", "split", "label"]])


if __name__ == "__main__":  # worker processes re-import this file
    main()
