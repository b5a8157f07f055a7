"""Time to cut one face for RAN (decode included, one process): the square box crop vs dlib 5-point alignment.

Reads real FERPlus test PNGs (48x48 grey, face box = the whole image) from the shared data and cuts
each at ``--size`` px with ``fercurate.ran.data.decode_face`` in both modes (``--align bbox`` and
``--align dlib5``); the dlib model is loaded before timing.

Example: python benchmarks/face_align_speed.py --images 200 --size 224
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from fercurate.ran.data import decode_face


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ferplus" / "FER2013Test")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    paths = sorted(args.data.glob("*.png"))[: args.images]
    if not paths:
        print(f"no PNGs under {args.data}", file=sys.stderr)
        return 2
    box = np.array([0, 0, 48, 48], np.float32)
    for align in ("bbox", "dlib5"):
        decode_face(str(paths[0]), box, args.size, align)
        t = time.perf_counter()
        for p in paths:
            decode_face(str(p), box, args.size, align)
        dt = time.perf_counter() - t
        print(f"--align {align}: {len(paths)} faces in {dt:.2f} s = {1000 * dt / len(paths):.2f} ms a face")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
