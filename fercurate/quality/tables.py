"""Writing the quality tables users open directly: CSV (atomic) beside the Parquet layers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fercurate.atomic import write_text


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as CSV atomically (floats rounded to 4 decimals for readability)."""
    write_text(path, frame.to_csv(index=False, float_format="%.4g"))
    return path
