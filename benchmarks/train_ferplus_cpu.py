"""Train RAN and the ResNet-18 baseline on the real FERPlus train split on a 2-core CPU, then score both
on FERPlus test and on the official Occlusion / Pose-30 / Pose-45 FERPlus subsets.

No face-pretrained weights exist here, so everything starts from scratch. The CPU recipe (documented
here and printed with the results):

* Faces: the native 48 x 48 FERPlus images (cached at 48 px), fed to the network at ``--size`` 64 px
  (ResNet-18's 7x7/2 stem + max-pool leave 16 x 16 maps at layer1; at 48 px only 12 x 12, which learned
  markedly slower: a 48 px baseline reached 68.5% val accuracy after 3 epochs). Every RAN crop is
  resized to the same 64 px (the paper: 224), so a RAN image costs 6 backbone passes of 64 px.
* Stage A (warm start, shared): the plain ResNet-18 trained on whole faces for ``--warm-epochs`` with
  FER+ vote-distribution targets, SGD + Nesterov (lr 0.05, weight decay 5e-4), a short linear warm-up
  then cosine decay, flip / rotation / zoom / shift augmentation. This mirrors the paper's recipe: RAN's
  backbone is pre-trained, then RAN is trained on top (the paper pre-trains on MS-Celeb-1M; we cannot).
* Stage B: RAN (paper variant: sigmoid attention, RB-loss margin 0.02 added 1:1, the paper's fixed
  crops) starts from the stage-A backbone (``--pretrained``) and trains on ``--ran-limit`` training faces
  (a seeded sample) with the stem, layer1 and layer2 frozen (no backward pass through them: RAN then costs
  about 3.8x a baseline step instead of 6x). Both classifiers start from stage A's (``--head warm``,
  i.e. ``--pretrained-head``: RAN's FC gets the baseline's weights split over [F_i : F_m], so it starts
  as the baseline's classifier on the mean crop feature; a fresh head needs epochs to catch up). The
  baseline is trained "the same way": from the same stage-A model, with the same faces, schedule and
  freezing, on whole faces. ``--reuse-warm`` skips a finished stage A already in ``--out`` (same
  settings), counting its recorded time in the total, to try stage-B settings.
* torch uses 2 threads with OMP_WAIT_POLICY=PASSIVE: on a CPU shared with other processes, OpenMP
  spin-waiting made 2 threads several times slower than 1. The trainer keeps tensors channels_last,
  which oneDNN's CPU convolutions run about 20% faster.

    python benchmarks/train_ferplus_cpu.py --out /tmp/ferplus-cpu --warm-epochs 32 --ran-limit 28000 \
        --ran-epochs 5 --freeze stem,layer1                                                # recorded
    python benchmarks/train_ferplus_cpu.py --out /tmp/ferplus-cpu          # shorter (3 warm epochs)
    python benchmarks/train_ferplus_cpu.py --out /tmp/smoke --limit 512 --ran-limit 256 --warm-epochs 1

Prints and writes ``<out>/results.json``: the command, per-stage wall time, process CPU time and
images/s, the load average seen, accuracy (with bootstrap 95% CI) of both models on each group
beside the paper's, RAN minus baseline on the same faces (paired bootstrap CI, McNemar's p), and the
stage-B baseline's accuracy on each of RAN's crops alone (how much each region tells). CPU time / 2
estimates the wall time on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SUBSETS = ("official-occlusion", "official-pose30", "official-pose45")


class LoadSampler:
    """Samples the 1-minute load average every 30 s, to show how shared the CPU was."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(30)

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def summary(self) -> dict[str, float]:
        s = sorted(self.samples) or [float("nan")]
        return {"min": s[0], "median": s[len(s) // 2], "max": s[-1], "samples": len(self.samples)}


def prepare(ws: Path, ferplus: Path, ran_lists: Path) -> Path:
    """Ingest FERPlus and import the official RAN lists (official-* subsets) unless already done."""
    from fercurate.ingest.ferplus import ingest
    from fercurate.subsets.official import import_ran_lists
    from fercurate.subsets import list_subsets
    from fercurate.workspace import Workspace

    manifest = ws / "manifests" / "ferplus.parquet"
    if not manifest.exists():
        print(ingest(ferplus, manifest).summary(), flush=True)
    have = {s.name for s in list_subsets(Workspace(ws), "ferplus")}
    if not set(SUBSETS) <= have:
        print(import_ran_lists(ran_lists, manifest, workspace=Workspace(ws)).summary(), flush=True)
    return manifest


def stage(name: str, cfg, results: dict, **kw) -> Path:  # noqa: ANN001
    from fercurate.ran.train import train

    print(f"\n== {name}: {cfg.arch}, {cfg.epochs} epochs ==", flush=True)
    t, cpu = time.perf_counter(), time.process_time()
    res = train(cfg, echo=lambda s: print(s, flush=True), **kw)
    epochs = [m for m in res.metrics if m.get("event") == "epoch"]
    results["stages"][name] = {
        "arch": cfg.arch, "epochs": res.epochs_done, "train_faces": res.train_samples,
        "wall_s": round(time.perf_counter() - t, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
        "train_img_per_s": [e["img_per_s"] for e in epochs],
        "val_acc": [round(e["val_acc"], 4) for e in epochs if "val_acc" in e],
        "checkpoint": str(res.checkpoint),
    }
    return res.checkpoint


def paired_difference(ws: Path, group: str, n_boot: int = 2000, seed: int = 0) -> dict:
    """RAN minus baseline accuracy on the same faces: paired bootstrap 95% CI and McNemar's exact p."""
    import numpy as np
    import pandas as pd
    from scipy.stats import binomtest

    from fercurate.subsets import find_subset, subset_ids
    from fercurate.workspace import Workspace

    ran, base = (pd.read_parquet(ws / "eval" / name / "predictions.parquet", columns=["sample_id", "label", "pred"])
                 for name in ("ran", "baseline"))
    both = ran.merge(base, on=["sample_id", "label"], suffixes=("_ran", "_base"))
    both = both[both["label"] >= 0]
    if group != "test":
        both = both[both["sample_id"].isin(subset_ids(find_subset(group, manifest="ferplus", workspace=Workspace(ws))))]
    r = (both["pred_ran"] == both["label"]).to_numpy()
    b = (both["pred_base"] == both["label"]).to_numpy()
    idx = np.random.default_rng(seed).integers(0, len(r), size=(n_boot, len(r)))
    diffs = 100 * (r[idx].mean(1) - b[idx].mean(1))
    only_ran, only_base = int((r & ~b).sum()), int((b & ~r).sum())
    p = binomtest(only_ran, only_ran + only_base).pvalue if only_ran + only_base else 1.0
    return {"n": len(r), "diff": round(100 * (r.mean() - b.mean()), 2),
            "ci95": [round(float(v), 2) for v in np.percentile(diffs, [2.5, 97.5])],
            "only_ran_right": only_ran, "only_baseline_right": only_base, "mcnemar_p": round(float(p), 4)}


def crop_accuracy(ws: Path, checkpoint: Path) -> dict[str, float]:
    """Accuracy (%) of a baseline checkpoint on FERPlus test given only one of RAN's paper crops.

    Every crop, the whole face too, is resampled by RAN's crop sampler, so 'face' can differ from the
    evaluator's figure by a few faces (the evaluator resizes the whole face directly).
    """
    import numpy as np
    import torch

    from fercurate.manifest import read_manifest
    from fercurate.ran import data as rdata
    from fercurate.ran.checkpoint import load_checkpoint
    from fercurate.ran.crops import CROP_NAMES, box_thetas, crop_regions, fixed_boxes
    from fercurate.ran.model import build_model

    state = load_checkpoint(checkpoint)
    cfg = state["config"]
    model = build_model("baseline", len(state["labels"]), input_size=cfg["input_size"]).eval()
    model.load_state_dict(state["model"])
    samples = rdata.select_samples(read_manifest(cfg["manifest"]), splits=["test"], num_classes=len(state["labels"]))
    store = rdata.load_faces(samples, cfg["face_size"], desc="decode faces")
    samples, store = rdata.drop_failures(samples, store)
    thetas = box_thetas(fixed_boxes("paper"))  # (6, 2, 3), whole face first
    out = {}
    with torch.no_grad():
        for i, name in enumerate(CROP_NAMES["paper"]):
            preds = [model(crop_regions(torch.tensor(b).float() / 255, thetas[i:i + 1], cfg["input_size"])[:, 0])
                     .logits.argmax(1) for b in np.array_split(store.faces, max(1, len(store.faces) // 256))]
            out[name] = round(100 * float((torch.cat(preds).numpy() == samples.labels).mean()), 2)
    return out


def reuse_warm(ws: Path, cfg) -> dict | None:  # noqa: ANN001
    """Stage A's record from an earlier run in ``ws``, if its finished checkpoint matches ``cfg``."""
    import dataclasses

    from fercurate.ran.checkpoint import load_checkpoint

    ckpt, prev = Path(cfg.out) / "baseline.pt", ws / "results.json"
    if not ckpt.exists() or not prev.exists():
        print(f"--reuse-warm: no finished stage A in {ws}; training it", flush=True)
        return None
    state = load_checkpoint(ckpt)
    known = {f.name for f in dataclasses.fields(cfg)}
    stored = dataclasses.asdict(type(cfg)(**{k: v for k, v in state["config"].items() if k in known}).resolved())
    want = {k: v for k, v in dataclasses.asdict(cfg.resolved()).items() if k not in ("threads", "log_every")}
    have = {k: stored[k] for k in want}
    record = json.loads(prev.read_text())["stages"].get("A: baseline warm start")
    if have != want or state["epoch"] != cfg.epochs or not record:
        diff = sorted(k for k in want if have[k] != want[k])
        print(f"--reuse-warm: {ckpt} was trained with other settings ({', '.join(diff) or 'unfinished'}); training stage A",
              flush=True)
        return None
    return {**record, "reused": True}


def main() -> None:  # noqa: PLR0915 - a linear script
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("--out", type=Path, required=True, help="workspace for the manifest, caches, runs and results")
    ap.add_argument("--data", type=Path, default=here.parent / "shared" / "data", help="shared data folder")
    ap.add_argument("--size", type=int, default=64, help="network input size of faces and of every crop")
    ap.add_argument("--face-size", type=int, default=48, help="size faces are decoded and cached at")
    ap.add_argument("--warm-epochs", type=int, default=3, help="stage A epochs (baseline warm start)")
    ap.add_argument("--ran-epochs", type=int, default=1, help="stage B epochs (RAN, and the baseline alike)")
    ap.add_argument("--ran-limit", type=int, default=14000, help="stage B trains on this many training faces")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--warm-lr", type=float, default=0.05)
    ap.add_argument("--ran-lr", type=float, default=0.01)
    ap.add_argument("--freeze", default="stem,layer1,layer2", help="stages frozen in stage B")
    ap.add_argument("--head", choices=("warm", "fresh"), default="warm",
                    help="stage B classifiers start from the stage-A classifier (warm) or from scratch (fresh)")
    ap.add_argument("--reuse-warm", action="store_true",
                    help="skip stage A when <out> already holds its finished checkpoint with these settings; "
                         "its recorded time is carried over from <out>/results.json and counted in the total")
    ap.add_argument("--limit", type=int, default=None, help="train on N faces only (smoke runs)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--crop-check", action="store_true",
                    help="only print the finished stage-B baseline's accuracy on each RAN crop alone (no training)")
    args = ap.parse_args()

    import torch

    from fercurate.ran.evaluate import evaluate
    from fercurate.ran.train import TrainConfig

    ws = args.out.resolve()
    ws.mkdir(parents=True, exist_ok=True)
    os.environ["FERCURATE_WORKSPACE"] = str(ws)
    torch.set_num_threads(args.threads)
    if args.crop_check:
        ckpt = ws / "runs" / "B-baseline" / "baseline.pt"
        print(f"{ckpt} on FERPlus test, one RAN crop only: "
              + ", ".join(f"{k} {v:.2f}%" for k, v in crop_accuracy(ws, ckpt).items()))
        return
    results: dict = {"command": " ".join([sys.executable, *sys.argv]), "stages": {}, "eval": {},
                     "threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    t_all = time.perf_counter()
    with LoadSampler() as load:
        t = time.perf_counter()
        manifest = prepare(ws, args.data / "ferplus", args.data / "ran_lists")
        results["prepare_s"] = round(time.perf_counter() - t, 1)
        common = dict(manifest=str(manifest), splits=["train"], input_size=args.size, face_size=args.face_size,
                      batch_size=args.batch, targets="votes", nesterov=True, schedule="cosine", seed=args.seed,
                      threads=args.threads, weight_decay=5e-4, log_every=50)
        runs = ws / "runs"
        warm_cfg = TrainConfig(
            out=str(runs / "A-baseline"), arch="baseline", epochs=args.warm_epochs, lr=args.warm_lr,
            warmup_epochs=min(0.3, args.warm_epochs / 4), val_splits=["val"], limit=args.limit, **common)
        reused = reuse_warm(ws, warm_cfg) if args.reuse_warm else None
        if reused:
            results["stages"]["A: baseline warm start"] = reused
            warm = Path(reused["checkpoint"])
            print(f"== A: reusing {warm} ({reused['epochs']} epochs, recorded {reused['wall_s'] / 60:.1f} min) ==", flush=True)
        else:
            warm = stage("A: baseline warm start", warm_cfg, results)
        freeze = [f for f in args.freeze.split(",") if f]
        fine = dict(epochs=args.ran_epochs, lr=args.ran_lr, warmup_epochs=0.05, pretrained=str(warm), freeze=freeze,
                    limit=args.ran_limit, pretrained_head=args.head == "warm")
        ran = stage("B: RAN", TrainConfig(out=str(runs / "B-ran"), arch="ran", **fine, **common), results)
        base = stage("B: baseline", TrainConfig(out=str(runs / "B-baseline"), arch="baseline", **fine, **common), results)
        for name, ckpt in (("ran", ran), ("baseline", base)):
            t = time.perf_counter()
            res = evaluate(ckpt, workspace=ws, manifest=str(manifest), splits=["test"], subsets=list(SUBSETS),
                           report_dir=ws / "eval" / name, overwrite=True, echo=lambda s: print(s, flush=True))
            results["eval"][name] = {
                g["group"]: {"n": g["n"], "accuracy": round(100 * g["accuracy"], 2),
                             "ci95": [round(100 * v, 2) for v in g["ci95"]["accuracy"]],
                             "mean_class_accuracy": round(100 * g["mean_class_accuracy"], 2),
                             "published": [(p["method"], p["accuracy"], f"{p['paper']} {p['table']}")
                                           for p in g["published"]]}
                for g in res.groups
            }
            results["eval"][name]["wall_s"] = round(time.perf_counter() - t, 1)
        results["paired"] = {g: paired_difference(ws, g) for g in ("test", *SUBSETS)}
        results["baseline_on_one_crop"] = crop_accuracy(ws, base)
    results["total_wall_s"] = round(time.perf_counter() - t_all, 1)
    results["train_wall_s"] = round(sum(s["wall_s"] for s in results["stages"].values()), 1)
    results["train_cpu_s"] = round(sum(s["cpu_s"] for s in results["stages"].values()), 1)
    results["load_average"] = load.summary()
    (ws / "results.json").write_text(json.dumps(results, indent=2))

    print("\n== FERPlus on CPU: results ==")
    print(f"stage B: {args.ran_epochs} epoch(s) at lr {args.ran_lr}, frozen {args.freeze or 'nothing'}, "
          f"classifiers start {'from stage A' if args.head == 'warm' else 'fresh'}")
    print(f"command: {results['command']}")
    for name, s in results["stages"].items():
        ips = ", ".join(f"{v:.1f}" for v in s["train_img_per_s"]) + (" (reused from an earlier run)" if s.get("reused") else "")
        print(f"{name:<26} {s['epochs']} ep on {s['train_faces']:,} faces: {s['wall_s'] / 60:.1f} min "
              f"(CPU {s['cpu_s'] / 60:.1f} min), "
              f"train img/s per epoch {ips}; val acc {s['val_acc']}")
    print(f"training wall time {results['train_wall_s'] / 60:.1f} min (target <= 120 min), process CPU time "
          f"{results['train_cpu_s'] / 60:.1f} min (quiet 2-core estimate ~{results['train_cpu_s'] / 120:.0f} min); total incl. eval "
          f"{results['total_wall_s'] / 60:.1f} min; load average min/median/max "
          f"{results['load_average']['min']:.1f}/{results['load_average']['median']:.1f}/{results['load_average']['max']:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"{'group':<22} {'n':>5} {'RAN %':>7} {'baseline %':>10} {'RAN-base [paired 95% CI]':>25} "
          f"{'McNemar p':>9} {'paper RAN':>9} {'paper base':>10}")
    r, b = results["eval"]["ran"], results["eval"]["baseline"]
    for g in ["test", *SUBSETS]:
        paper = {m: a for m, a, src in r[g]["published"] if src.startswith("RAN ")}
        pr = paper.get("RAN (w RB-Loss)", paper.get("RAN-ResNet18"))
        pb = paper.get("ResNet-18 baseline")
        d = results["paired"][g]
        diff = f"{d['diff']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"
        print(f"{g:<22} {r[g]['n']:>5} {r[g]['accuracy']:>7.2f} {b[g]['accuracy']:>10.2f} {diff:>25} "
              f"{d['mcnemar_p']:>9.3f} {pr if pr is not None else '-':>9} {pb if pb is not None else '-':>10}")
    print("stage-B baseline on FERPlus test given one RAN crop only: "
          + ", ".join(f"{k} {v:.1f}%" for k, v in results["baseline_on_one_crop"].items()))
    print("RAN-base: the accuracy difference on the same faces (paired bootstrap); McNemar p: exact test on the "
          "faces only one model gets right")
    test_ok = r["test"]["accuracy"] >= 80
    ahead = all(r[g]["accuracy"] > b[g]["accuracy"] for g in SUBSETS)
    print(f"target >= 80% on FERPlus test: {'PASS' if test_ok else 'FAIL'} ({r['test']['accuracy']:.2f}%); "
          f"RAN ahead of the baseline on all subsets: {'PASS' if ahead else 'FAIL'}; "
          f"training within 2 h: {'PASS' if results['train_wall_s'] <= 7200 else 'FAIL'}")
    print(f"results: {ws / 'results.json'}")


if __name__ == "__main__":
    main()
