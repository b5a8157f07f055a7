"""Head-pose throughput on 224x224 face images with N workers, beside decoding the same images alone.

Builds a folder of distinct 224x224 JPEG face crops from real photos (JAFFE and the faces/ test
images, jittered so every file differs) and a manifest whose rows carry the face box (as AffectNet's
do), then times:

* decode only: every image read and decoded by OpenCV on the same number of workers;
* ``fercurate pose`` (the runner: decode + face mesh + 3D fit + part files + merge), end to end,
  including worker start-up and model loading.

It also prints the CPU seconds the workers used per image and the load average, because on a shared
machine wall-clock rates depend on what else runs: ``cores / cpu-per-image`` is what the same work
would reach with the cores to itself.

Example: python benchmarks/pose_speed.py --images 2000 --workers 2
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from fercurate.faces import detect
from fercurate.manifest import build_table, write_manifest
from fercurate.parallel import map_chunks
from fercurate.pose.runner import run_pose

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("FERCURATE_SHARED_DATA", REPO.parent / "shared" / "data"))
SIZE = 224


def make_dataset(data: Path, out: Path, n: int, seed: int = 0, *, size: int = SIZE, boxes: bool = True) -> Path:
    """``n`` distinct ``size`` x ``size`` JPEG face crops + a manifest (with their face boxes if ``boxes``)."""
    rng = np.random.default_rng(seed)
    sources = sorted((data / "jaffe").glob("*.tiff")) + sorted(
        p for p in (data / "faces").iterdir() if p.suffix in (".jpg", ".png")
    )
    faces = []
    for src in sources:
        img = cv2.imread(str(src))
        lm = detect(img, method="dlib")
        if lm.ok:
            faces.append((img, lm.bbox))
    (out / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        img, (x, y, w, h) = faces[i % len(faces)]
        side = max(w, h) * rng.uniform(1.3, 1.6)  # a loose face crop, like a dataset's
        cx, cy = x + w / 2 + rng.uniform(-0.05, 0.05) * w, y + h / 2 + rng.uniform(-0.05, 0.05) * h
        s = size / side
        m = np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]])
        crop = cv2.warpAffine(img, m, (size, size), borderMode=cv2.BORDER_REPLICATE)
        name = f"img/face{i:06d}.jpg"
        cv2.imwrite(str(out / name), crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
        rows.append((name, (s * (x - cx) + size / 2, s * (y - cy) + size / 2, s * w, s * h)))
    columns = {
        "sample_id": [f"speed/{r[0]}" for r in rows],
        "dataset": ["affectnet"] * n,
        "split": ["test"] * n,
        "image_path": [r[0] for r in rows],
        "label_id": [-1] * n,
        "width": [size] * n,
        "height": [size] * n,
    }
    if boxes:
        columns["bbox"] = [{"x": b[0], "y": b[1], "w": b[2], "h": b[3]} for _, b in rows]
    table = build_table(columns)
    path = out / "manifests" / "speed.parquet"
    write_manifest(table, path, dataset="affectnet", root=out)
    return path


def manifest_head(path: Path, n: int) -> Path:
    """A copy of the manifest with its first ``n`` rows (same dataset root)."""
    from fercurate.manifest import read_manifest

    m = read_manifest(path)
    out = path.with_name(f"{path.stem}-head.parquet")
    write_manifest(m.table.slice(0, n), out, dataset=m.dataset, root=m.root)
    return out


def decode_chunk(paths: list[str]) -> int:
    for p in paths:
        data = Path(p).read_bytes()
        if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is None:
            raise RuntimeError(p)
    return len(paths)


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--method", default="mediapipe")
    args = parser.parse_args(argv)
    if not (args.data / "jaffe").exists():
        print(f"real data not found at {args.data}", file=sys.stderr)
        return 1
    os.environ.setdefault("FERCURATE_PROGRESS", "0")
    with tempfile.TemporaryDirectory(prefix="fercurate-pose-speed-") as tmp:
        manifest = make_dataset(args.data, Path(tmp), args.images)
        paths = sorted(str(p) for p in (Path(tmp) / "img").glob("*.jpg"))
        print(f"{len(paths):,} images {SIZE}x{SIZE} JPEG, {args.workers} workers, method {args.method}; "
              f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        cpu0 = children_cpu()
        t = time.perf_counter()
        total = sum(map_chunks(decode_chunk, paths, workers=args.workers, chunk_size=256))
        dt = time.perf_counter() - t
        cpu_decode = children_cpu() - cpu0
        print(f"decode only : {total / dt:7.0f} images/s  ({dt:.1f} s wall incl. worker start-up, "
              f"{cpu_decode / total * 1e3:.2f} ms CPU per image)")
        c = time.process_time()
        decode_chunk(paths[:500])
        print(f"decode loop : {(time.process_time() - c) / 500 * 1e3:.2f} ms CPU per image in one process (no start-up)")
        # Start-up alone: the same run on a tiny manifest, one image per worker (spawn, imports, models).
        small = manifest_head(manifest, args.workers)
        cpu0 = children_cpu()
        t = time.perf_counter()
        run_pose(small, method=args.method, workers=args.workers, chunk_size=1)
        start_wall, start_cpu = time.perf_counter() - t, children_cpu() - cpu0
        print(f"start-up    : {start_wall:.1f} s wall, {start_cpu:.1f} s CPU (workers spawned, models loaded)")
        cpu0 = children_cpu()
        t = time.perf_counter()
        summary = run_pose(manifest, method=args.method, workers=args.workers)
        dt = time.perf_counter() - t
        cpu_pose = children_cpu() - cpu0
        print(f"pose        : {summary.total / dt:7.0f} images/s  ({dt:.1f} s wall incl. worker start-up and model "
              f"loading, {cpu_pose / summary.total * 1e3:.2f} ms CPU per image; {summary.ok:,} ok, "
              f"{summary.total - summary.ok:,} failed)")
        steady_cpu = max(cpu_pose - start_cpu, 1e-9) / summary.total
        print(f"steady state: {summary.total / max(dt - start_wall, 1e-9):7.0f} images/s wall without start-up, "
              f"{steady_cpu * 1e3:.2f} ms CPU per image")
        print(f"capacity    : {args.workers / steady_cpu:7.0f} images/s if the {args.workers} cores were idle "
              f"(= workers / steady CPU per image)")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
