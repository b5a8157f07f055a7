"""Paper-compatible pose scores: map a pose layer's angles to "what OpenFace would have said".

The official Pose-FERPlus / Pose-AffectNet lists of the RAN paper were made by OpenFace on dlib-aligned
48-px crops, whose angles differ a lot from true head pose (visibly frontal faces with strong
expressions or hands over the face are in the >45 degree list, clearly turned faces are outside it).
A calibration does not touch the pose layer; it turns each row's features into a score in
"OpenFace degrees" that ``fercurate subsets build --pose 30 --pose 45 --calibration openface``
compares with the thresholds instead of ``max(|yaw|, |pitch|)``.

Model (per pose method, fitted by ``benchmarks/pose_agreement.py --fit``): an ordinal logistic model
with one shared linear score ``z = w · standardise(features)`` and the features

    |yaw|, |pitch|, pitch, |roll|, yaw²/30, pitch²/30, max(|yaw|,|pitch|), |yaw|·|pitch|/30,
    pitch·|yaw|/30, confidence

(angles in degrees from the pose layer). ``z`` is mapped linearly to degrees so that the two
thresholds that maximise F1 on the fitting half of the official FERPlus lists land on 30 and 45:
``score = 30 + 15 · (z − z30) / (z45 − z30)``. Rows whose pose failed score NaN (never members).
The fitted parameters are a small JSON file inside the package (``data/calibration_<name>.json``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fercurate.errors import InputError

DATA = Path(__file__).with_name("data")
FEATURES: tuple[str, ...] = (
    "abs_yaw", "abs_pitch", "pitch", "abs_roll", "yaw2", "pitch2", "max_abs", "abs_yaw_x_abs_pitch",
    "pitch_x_abs_yaw", "confidence",
)


def calibration_path(name: str) -> Path:
    return DATA / f"calibration_{name}.json"


def available() -> list[str]:
    """Names of the calibrations shipped in the package."""
    return sorted(p.stem[len("calibration_"):] for p in DATA.glob("calibration_*.json"))


@lru_cache(maxsize=None)
def load_calibration(name: str) -> dict[str, Any]:
    path = calibration_path(name)
    if not path.exists():
        known = ", ".join(available()) or "none"
        raise InputError(f"no pose calibration named {name!r} (available: {known})")
    return json.loads(path.read_text())


def features(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """(N, 10) feature matrix in the order of :data:`FEATURES`."""
    y, p, r = (np.asarray(v, dtype=np.float64) for v in (yaw, pitch, roll))
    ay, ap = np.abs(y), np.abs(p)
    c = np.asarray(confidence, dtype=np.float64)
    return np.stack(
        [ay, ap, p, np.abs(r), ay**2 / 30, ap**2 / 30, np.maximum(ay, ap), ay * ap / 30, p * ay / 30, c], axis=1
    )


def table_features(pose_table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Features of a pose layer table and the mask of rows whose pose succeeded."""
    col = lambda n: pose_table.column(n).to_numpy(zero_copy_only=False).astype(np.float64)  # noqa: E731
    ok = pc.is_null(pose_table.column("failure")).to_numpy(zero_copy_only=False)
    x = features(col("yaw"), col("pitch"), col("roll"), col("confidence"))
    ok = ok & np.isfinite(x).all(axis=1)
    return np.nan_to_num(x), ok


def latent(params: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The shared linear score z of the ordinal model."""
    mean, scale, coef = (np.asarray(params[k], dtype=np.float64) for k in ("mean", "scale", "coef"))
    return ((x - mean) / scale) @ coef


def to_degrees(params: dict[str, Any], z: np.ndarray) -> np.ndarray:
    z30, z45 = float(params["z30"]), float(params["z45"])
    return 30.0 + 15.0 * (z - z30) / (z45 - z30)


def calibrated_score(pose_table: pa.Table, name: str) -> np.ndarray:
    """Paper-compatible score (degrees-like, NaN for failed rows) of every row of a pose layer."""
    cal = load_calibration(name)
    methods = sorted({m for m in pose_table.column("method").to_pylist() if m is not None})
    if len(methods) > 1:
        raise InputError(f"pose layer mixes methods {methods}; a calibration applies to one method")
    method = methods[0] if methods else None
    per_method = cal["methods"]
    if method not in per_method:
        raise InputError(
            f"calibration {name!r} was fitted for pose methods {sorted(per_method)}, not {method!r}; "
            f"re-run 'fercurate pose MANIFEST --method {sorted(per_method)[0]}'"
        )
    params = per_method[method]
    x, ok = table_features(pose_table)
    score = to_degrees(params, latent(params, x))
    return np.where(ok, score, np.nan)


def fit(
    x: np.ndarray, y30: np.ndarray, y45: np.ndarray, *, c: float = 1.0
) -> dict[str, Any]:
    """Fit the ordinal model on feature rows ``x`` with official memberships; returns the parameters."""
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z_in = (x - mean) / scale
    stacked = np.r_[np.c_[z_in, np.zeros(len(z_in))], np.c_[z_in, np.ones(len(z_in))]]
    target = np.r_[y30, y45].astype(int)
    model = LogisticRegression(C=c, max_iter=5000).fit(stacked, target)
    coef = model.coef_[0][:-1]
    z = z_in @ coef

    def best(y: np.ndarray) -> float:
        """The threshold on z that maximises F1 (members: z > threshold), midway between two scores."""
        order = np.argsort(-z, kind="stable")
        zs, ys = z[order], np.asarray(y, bool)[order]
        tp = np.cumsum(ys)  # predicting the top k+1 scores as members
        k = np.arange(1, len(zs) + 1)
        f1 = 2 * tp / (k + ys.sum())
        distinct = np.r_[zs[1:] < zs[:-1], True]  # only cut between different scores
        i = int(np.argmax(np.where(distinct, f1, -1)))
        return float((zs[i] + zs[i + 1]) / 2) if i + 1 < len(zs) else float(zs[i] - 1e-9)

    z30, z45 = best(y30), best(y45)
    if z45 <= z30:  # keep Pose-45 inside Pose-30
        z45 = z30 + 1e-6
    return {
        "features": list(FEATURES),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": coef.tolist(),
        "z30": z30,
        "z45": z45,
        "c": c,
    }
