"""Refitting the data files synth ships: ``face_shapes.json`` and ``mesh_offsets.json``.

Offline tools, run by hand when the landmark models or the reference faces change. They place faces
with the same chain ``fercurate synth`` uses (decode, landmarks, plausibility checks), which itself
reads the shipped files, so the fitting lives here, apart: nothing in fercurate imports this module,
and the modules that read the files (:mod:`fercurate.synth.shapes`, :mod:`fercurate.synth.mesh_correction`)
import none of the placement chain. The shipped files were made with::

    python -m fercurate.synth.refit shapes --frontal ../shared/data/jaffe/*.tiff \
        --crops $(ls ../shared/data/ferplus/FER2013Train/*.png | awk 'NR%20==1')
    python -m fercurate.synth.refit mesh-offsets ../shared/data/ferplus/FER2013Valid/*.png
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fercurate.atomic import write_text
from fercurate.synth import shapes as S
from fercurate.synth.mesh_correction import OFFSETS_FILE
from fercurate.synth.outline import FaceFrame
from fercurate.synth.pipeline import decode_parent
from fercurate.synth.placement import LANDMARK_MODES, implausible, to68


def procrustes_mean(shapes: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Generalised Procrustes mean of (n, 68, 2) shapes, returned eye-normalised and symmetric."""
    normed = np.stack([S.normalise(s) for s in shapes])
    mean = S.symmetrise(normed.mean(axis=0))
    for _ in range(iterations):
        aligned = np.stack([S.apply_affine(S.similarity(s, mean), s) for s in normed])
        mean = S.symmetrise(S.normalise(aligned.mean(axis=0)))
    return mean


def fit_shapes(frontal: np.ndarray, crops: np.ndarray, crop_size: float) -> dict[str, list[list[float]]]:
    """The JSON content of ``face_shapes.json`` from real landmark sets.

    ``frontal``: (n, 68, 2) shapes of any size (Procrustes-averaged into ``mean``); ``crops``: (m, 68, 2)
    landmarks of ``crop_size``-pixel face crops (averaged in crop units into ``crop_prior``).
    """
    mean = procrustes_mean(np.concatenate([frontal, crops]))
    prior = crops.mean(axis=0) / crop_size
    # Symmetrise the prior about the crop's vertical centre line, like the mean.
    mirrored = prior[S.MIRROR] * np.array([-1.0, 1.0]) + np.array([1.0, 0.0])
    prior = (prior + mirrored) / 2
    return {
        "mean": np.round(mean, 5).tolist(),
        "crop_prior": np.round(prior, 5).tolist(),
    }


def fit_offsets(mesh: np.ndarray, dlib: np.ndarray) -> np.ndarray:
    """Median (dlib - mesh) per point in the mesh face's frame, in face lengths: (N, 68, 2) each -> (68, 2)."""
    out = []
    for m, d in zip(mesh, dlib):
        frame = FaceFrame.from_points(m)
        out.append((frame.to_frame(d) - frame.to_frame(m)) / frame.length)
    return np.median(np.stack(out), axis=0)


def offsets_json(offsets: np.ndarray, fitted_on: dict) -> str:
    """The file's text: one (sideways, downward) pair per line, in iBUG point order."""
    rows = ",\n".join(f"  {json.dumps(np.round(row, 4).tolist())}" for row in offsets)
    return f'{{\n "fitted_on": {json.dumps(fitted_on)},\n "offsets": [\n{rows}\n ]\n}}\n'


def refit_shapes(frontal_paths: Sequence[Path], crop_paths: Sequence[Path], out: Path) -> None:
    """Refit ``face_shapes.json`` from real data with fercurate's landmark detector (dlib)."""
    from fercurate import images
    from fercurate.faces import landmarks as lm

    def detect_all(paths: Sequence[Path]) -> tuple[np.ndarray, float]:
        found, size = [], 0.0
        for p in paths:
            img = images.read_image(p)
            res = lm.detect(img, method="dlib")
            if res.failure is None:
                found.append(to68(res))
                size = float(img.shape[1])
        return np.stack(found), size

    frontal, _ = detect_all(frontal_paths)
    crops, crop_size = detect_all(crop_paths)
    content = fit_shapes(frontal, crops, crop_size)
    content["fitted_on"] = {"frontal": len(frontal), "crops": len(crops), "crop_size": crop_size}
    write_text(out, json.dumps(content, indent=1))
    print(f"{out}: mean from {len(frontal) + len(crops)} faces, crop prior from {len(crops)} crops")


def refit_mesh_offsets(crop_paths: Sequence[Path], out: Path) -> None:
    """Measure ``mesh_offsets.json`` on square face crops (the whole image is the face box)."""
    from fercurate.faces import landmarks as lm

    images = [decode_parent(str(p))[0] for p in crop_paths]
    boxes = [(0.0, 0.0, float(im.shape[1]), float(im.shape[0])) for im in images]
    mesh = lm.detect_batch(images, boxes, "mediapipe", **LANDMARK_MODES["fast"])  # type: ignore[arg-type]
    pairs_m, pairs_d, lengths = [], [], []
    for im, box, m in zip(images, boxes, mesh):
        d = lm.detect(im, box, "dlib")
        if m.failure is not None or d.failure is not None:
            continue
        pm, pd_ = to68(m), to68(d)
        h, w = im.shape[:2]
        if implausible(pm, w, h) or implausible(pd_, w, h):
            continue
        pairs_m.append(pm)
        pairs_d.append(pd_)
        lengths.append(FaceFrame.from_points(pm).length)
    offsets = fit_offsets(np.stack(pairs_m), np.stack(pairs_d))
    fitted_on = {"faces": len(pairs_m), "images": len(images), "median_face_length_px": round(float(np.median(lengths)), 2)}
    write_text(out, offsets_json(offsets, fitted_on))
    print(f"{out}: offsets from {len(pairs_m)} of {len(images)} crops (both models found the face)")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m fercurate.synth.refit shapes|mesh-offsets``: refit one of synth's shipped data files."""
    here = Path(__file__).parent
    ap = argparse.ArgumentParser(prog="python -m fercurate.synth.refit", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    shapes = sub.add_parser("shapes", description=refit_shapes.__doc__, help="face_shapes.json")
    shapes.add_argument("--frontal", nargs="+", type=Path, required=True, help="images of frontal faces (e.g. JAFFE)")
    shapes.add_argument("--crops", nargs="+", type=Path, required=True, help="FER2013-style square crops")
    shapes.add_argument("--out", type=Path, default=here / S.SHAPES_FILE)
    offsets = sub.add_parser("mesh-offsets", description=refit_mesh_offsets.__doc__, help="mesh_offsets.json")
    offsets.add_argument("crops", nargs="+", type=Path,
                         help="face crops, e.g. ../shared/data/ferplus/FER2013Valid/*.png")
    offsets.add_argument("--out", type=Path, default=here / OFFSETS_FILE)
    args = ap.parse_args(argv)
    if args.what == "shapes":
        refit_shapes(args.frontal, args.crops, args.out)
    else:
        refit_mesh_offsets(args.crops, args.out)


if __name__ == "__main__":
    main()
