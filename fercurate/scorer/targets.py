"""The scorer's training targets from occlusion labels: occluded?, then which of the five types."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from fercurate.annotations import LABEL_SOURCES, latest_labels
from fercurate.schema import OCCLUDED_TYPES


def label_targets(labels: pd.DataFrame) -> pd.DataFrame:
    """Training targets from current labels (columns sample_id, types): occluded + one-hot type.

    ``none`` -> not occluded; a resolved type -> occluded with that type; ``glasses|mask`` /
    ``occluded`` -> occluded with the type unknown (NaN), so only the "occluded?" head learns from it.
    """
    rows = []
    for sid, types in zip(labels["sample_id"], labels["types"]):
        types = list(types)
        occluded = any(t != "none" for t in types)
        onehot = [np.nan] * len(OCCLUDED_TYPES)
        resolved = [t for t in types if t in OCCLUDED_TYPES]
        if occluded and resolved and len(resolved) == len([t for t in types if t != "none"]):
            onehot = [1.0 if k in resolved else 0.0 for k in OCCLUDED_TYPES]
        elif not occluded:
            onehot = [0.0] * len(OCCLUDED_TYPES)
        rows.append([sid, float(occluded), *onehot])
    return pd.DataFrame(rows, columns=["sample_id", "occluded", *OCCLUDED_TYPES])


def table_labels(events: pa.Table) -> pd.DataFrame:
    """Current human/official labels as training targets (suggestions excluded)."""
    labels = latest_labels(events, source=LABEL_SOURCES)
    return label_targets(labels[["sample_id", "types"]]) if len(labels) else label_targets(
        pd.DataFrame(columns=["sample_id", "types"])
    )


__all__ = ["label_targets", "table_labels"]
