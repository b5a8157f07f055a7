"""Forward speed of RAN vs the plain ResNet-18 baseline on the same batch, in the same run.

RAN sends the whole face plus 5 crops through the backbone, so it costs about 6 backbone passes; the
target is RAN <= 6.3x the baseline's time per image. Baseline and RAN passes are interleaved round by
round so that load from other processes hits both alike; medians are reported.

    python benchmarks/ran_speed.py                      # 224 px (paper), batch 16, CPU
    python benchmarks/ran_speed.py --size 48 --batch 64 --rounds 10
    python benchmarks/ran_speed.py --device cuda --amp  # on a GPU: fp16 autocast + channels_last
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared CPUs: do not spin-wait (see the RAN notes)

import torch  # noqa: E402

from fercurate.ran.model import BaselineResNet, RegionAttentionNetwork  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=224, help="input size of the face and of every crop")
    ap.add_argument("--batch", type=int, default=16, help="faces per forward pass")
    ap.add_argument("--rounds", type=int, default=8, help="timed rounds (each: one baseline + one RAN pass)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true", help="CUDA only: fp16 autocast and channels_last")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    ran = RegionAttentionNetwork(8, input_size=args.size).to(dev).eval()
    base = BaselineResNet(8, input_size=args.size).to(dev).eval()
    faces = torch.rand(args.batch, 3, args.size, args.size, device=dev)
    if args.amp and dev.type == "cuda":
        ran = ran.to(memory_format=torch.channels_last)
        base = base.to(memory_format=torch.channels_last)
        ran.channels_last = base.channels_last = True
        faces = faces.contiguous(memory_format=torch.channels_last)

    def timed(model: torch.nn.Module) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.float16, enabled=args.amp and dev.type == "cuda"):
            model(faces)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    for _ in range(2):  # warm-up: allocator, oneDNN/cuDNN kernel selection
        timed(base)
        timed(ran)
    tb, tr = [], []
    for _ in range(args.rounds):
        tb.append(timed(base))
        tr.append(timed(ran))
    b, r = statistics.median(tb), statistics.median(tr)
    ratio = r / b
    print(f"device {dev} ({torch.get_num_threads()} threads), input {args.size}px, batch {args.batch}, "
          f"{args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    print(f"baseline ResNet-18: {args.batch / b:8.1f} img/s  ({1000 * b / args.batch:.2f} ms/img, median)")
    print(f"RAN (6 crops):      {args.batch / r:8.1f} img/s  ({1000 * r / args.batch:.2f} ms/img, median)")
    print(f"RAN / baseline time per image: {ratio:.2f}x (target <= 6.3x) -> {'PASS' if ratio <= 6.3 else 'FAIL'}")


if __name__ == "__main__":
    main()
