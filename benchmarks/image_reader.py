"""What the one image reader's checks cost: fercurate.images.decode beside OpenCV's imdecode alone.

decode reads the header (format, size, EXIF orientation), checks the pixel limit, bounds the decode
work (a PNG's zlib stream inflated once more, in 1 MiB steps, unless its compressed size cannot
reach the bound; a JPEG's scans counted) and then calls cv2.imdecode. Timed on real images where
../shared/data has them (FERPlus 48x48 PNGs stored uncompressed, the faces/ JPEGs) and on
generated ones (a 1000x1000 colour PNG at zlib level 6, a 256x256 PNG whose stream inflates 64 MiB
past its pixels). Also the header read alone (what ingest does per file without --verify).

Prints microseconds per image and the ratio to imdecode alone. Target: at most 1.3x on images of
100 KB and more; on 48x48 PNGs the checks are a fixed ~20 us (header parse and PNG stream walk in
Python), so the ratio there is higher. The bomb is refused, so its ratio is far below 1.

Example: python benchmarks/image_reader.py --repeat 20
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

from fercurate import images

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("FERCURATE_SHARED_DATA", REPO.parent / "shared" / "data"))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _bomb() -> bytes:
    raw = bytes(257 * 256)
    z = zlib.compressobj(9)
    stream = z.compress(raw) + b"".join(z.compress(bytes(1 << 24)) for _ in range(4)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", 256, 256, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


def _samples(data: Path) -> dict[str, list[bytes]]:
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.integers(0, 255, (1000, 1000, 3), dtype=np.uint8), (9, 9), 3)
    out = {"png 1000x1000 colour (level 6)": [cv2.imencode(".png", big, [cv2.IMWRITE_PNG_COMPRESSION, 6])[1].tobytes()],
           "png 256x256 inflating +64 MiB": [_bomb()]}
    fer = sorted((data / "ferplus" / "FER2013Test").glob("*.png"))[:200]
    if fer:
        out["ferplus 48x48 png (stored)"] = [p.read_bytes() for p in fer]
    faces = sorted((data / "faces").glob("*.jpg"))
    if faces:
        out["faces/ jpeg (227..2560 px)"] = [p.read_bytes() for p in faces]
    return out


def _per_image(fn, blobs: list[bytes], repeat: int) -> float:  # noqa: ANN001
    """Microseconds per image, the best of ``repeat`` passes (a shared machine only ever slows a pass down)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for b in blobs:
            fn(b)
        best = min(best, time.perf_counter() - start)
    return best / len(blobs) * 1e6


def _fercurate(blob: bytes) -> None:
    try:
        images.decode(blob)
    except images.ImageReadError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="passes over each set (the best one counts)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    print(f"{'images':<34} {'imdecode us':>12} {'decode us':>10} {'ratio':>6} {'header us':>10}")
    for name, blobs in _samples(args.data).items():
        repeat = max(3, args.repeat // (4 if "inflating" in name or "1000" in name else 1))
        raw = _per_image(lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR), blobs, repeat)
        ours = _per_image(_fercurate, blobs, repeat)
        head = _per_image(lambda b: images.header(b[:16384]) if b[:3] != b"\xff\xd8\xff" else images.header(b),
                          blobs, repeat * 10)
        print(f"{name:<34} {raw:>12,.1f} {ours:>10,.1f} {ours / raw:>6.2f} {head:>10,.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
