"""CPU forward speed of the PyTorch port of dlib's face-recognition ResNet at 64, 112 and 150 px.

Loads the real weights (:func:`fercurate.faces.dlib_resnet.descriptor_model`, timing the load) and
times inference-mode forward passes on batches of random RGB images; prints images/s per size
(median over rounds, after one warm-up pass). On a shared machine the load average is printed too:
rates scale with the cores this process actually gets.

    python benchmarks/dlib_resnet_speed.py                     # batch 32, 3 rounds, torch's threads
    python benchmarks/dlib_resnet_speed.py --threads 1 --rounds 5 --sizes 150
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared CPUs: do not spin-wait

import torch  # noqa: E402

from fercurate.faces.dlib_resnet import descriptor_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 112, 150])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--cache-dir", default=None, help="weights cache (default: a fresh temporary folder, "
                    "so the first load is a conversion)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache_dir or tmp
        for what in ("first load (parse .dat, check, convert, write cache)", "cached load"):
            t = time.perf_counter()
            model = descriptor_model(cache_dir=cache)
            print(f"{what}: {time.perf_counter() - t:.3f} s (from cache: {model.weights_source['from_cache']})")
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for size in args.sizes:
        x = torch.rand(args.batch, 3, size, size) * 255
        times = []
        with torch.inference_mode():
            model(x)  # warm-up
            for _ in range(args.rounds):
                t = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t)
        med = statistics.median(times)
        print(f"{size:4d} px: {args.batch / med:7.1f} images/s  ({1000 * med / args.batch:.2f} ms/image)")


if __name__ == "__main__":
    main()
