"""How much do occlusion suggestions cut labelling? Measured on the real FERPlus test set.

Ground truth: the official Occlusion-FERPlus list (``ran_lists/FERplus_dir/jianfei_occlusion_list.txt``,
605 of the 3,573 test faces), imported through ``fercurate import-ran-lists`` like a user would.
The pipeline is the real one: FERPlus ingest -> official events -> ``suggest`` on the test split.

Two protocols (both print ROC-AUC and the fraction of faces a person reviews, in suggestion order,
to find 90 % of the officially occluded ones; random order needs 90 %):

* **cold start**: no occlusion label is used; the scorer pre-trains on synthetic occlusions drawn
  on FERPlus faces (the test faces + a seeded sample of train/val, up to ``--pool``) and on their
  expression labels: measured on all 3,573 test faces.
* **held-out**: the test faces are split 50/50 (``--seed``, stratified by listed/not listed); after
  the same pre-training the scorer is fine-tuned on the first half's official labels (listed ->
  occluded with its type, not listed -> none) and measured on the second half only.

Both are also reported on the 3,137 faces of RAN's dlib test list (the faces the list's authors
could consider at all; all 605 listed faces are among them). Timings are wall-clock on this machine.

    python benchmarks/occlusion_suggest.py                 # both protocols (minutes on 2 cores)
    python benchmarks/occlusion_suggest.py --protocol held-out --steps 400 --epochs 6
    python benchmarks/occlusion_suggest.py --backbone RUN/baseline.pt   # scorer from a trained expression model

``--backbone`` takes a checkpoint from ``fercurate train`` on FERPlus's train split (it never sees the
test faces' occlusion labels; the figures quoted in the README came from
``benchmarks/train_ferplus_cpu.py``'s stage-A baseline, 64 px).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("FERCURATE_PROGRESS", "0")
REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FERCURATE_SHARED_DATA", REPO.parent / "shared" / "data"))


def review_fraction(score: np.ndarray, positive: np.ndarray, recall: float = 0.9) -> float:
    """Fraction of items reviewed, highest score first, until ``recall`` of the positives are found."""
    order = np.argsort(-score, kind="stable")
    found = np.cumsum(positive[order])
    need = int(np.ceil(recall * positive.sum()))
    return float((np.searchsorted(found, need) + 1) / len(score))


def metrics(score: np.ndarray, positive: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    return {
        "n": int(len(score)),
        "positives": int(positive.sum()),
        "roc_auc": round(float(roc_auc_score(positive, score)), 4),
        "review_at_90": round(review_fraction(score, positive), 4),
        "review_at_80": round(review_fraction(score, positive, 0.8), 4),
    }


def prefill_quality(frame: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """How good the pre-filled suggestions were: occluded share among 'none' pre-fills, and type hits."""
    merged = frame.merge(truth, on="sample_id")
    none = merged[merged["suggested"].map(lambda s: s == ["none"])]
    typed = merged[merged["suggested"].map(lambda s: isinstance(s, list) and s != ["none"])]
    resolved = typed[typed["official"].map(lambda t: isinstance(t, list) and len(t) > 0 and "|" not in t[0])]
    hits = [bool(set(s) & set(t)) for s, t in zip(resolved["suggested"], resolved["official"])]
    gm = typed[typed["official"].map(lambda t: isinstance(t, list) and t == ["glasses|mask"])]
    gm_hits = [bool(set(s) & {"glasses", "mask"}) for s in gm["suggested"]]
    return {
        "prefilled_none": int(len(none)),
        "occluded_among_none": round(float(none["listed"].mean()), 4) if len(none) else float("nan"),
        "prefilled_typed": int(len(typed)),
        "listed_among_typed": round(float(typed["listed"].mean()), 4) if len(typed) else float("nan"),
        "type_hit_rate_resolved": round(float(np.mean(hits)), 4) if hits else float("nan"),
        "type_hit_rate_glasses_or_mask": round(float(np.mean(gm_hits)), 4) if gm_hits else float("nan"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="shared data folder (ferplus/, ran_lists/)")
    ap.add_argument("--workspace", type=Path, help="reuse this workspace (default: a temporary one)")
    ap.add_argument("--protocol", choices=["both", "cold", "held-out"], default="both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=800, help="pre-training batches")
    ap.add_argument("--pool", type=int, default=30_000, help="faces to pre-train on")
    ap.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs (held-out protocol)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backbone", type=Path, help="a fercurate checkpoint whose ResNet-18 starts the scorer")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args()

    ferplus, lists = args.data / "ferplus", args.data / "ran_lists"
    if not (ferplus / "FER2013Test" / "label.csv").exists() or not lists.exists():
        print(f"real data not found under {args.data} (need ferplus/ and ran_lists/)", file=sys.stderr)
        return 2
    from fercurate.annotate.suggest import suggest
    from fercurate.annotations import latest_labels, read_events
    from fercurate.scorer.config import ScorerConfig
    from fercurate.scorer.targets import label_targets
    from fercurate.ingest import ferplus as ferplus_ingest
    from fercurate.subsets.official import import_ran_lists
    from fercurate.manifest import read_manifest
    from fercurate.workspace import Workspace

    ws_root = args.workspace or Path(tempfile.mkdtemp(prefix="occ-suggest-bench-"))
    os.environ["FERCURATE_WORKSPACE"] = str(ws_root)
    ws = Workspace.current(ws_root)
    out: dict[str, object] = {"workspace": str(ws_root), "seed": args.seed, "steps": args.steps, "pool": args.pool,
                              "epochs": args.epochs, "threads": args.threads, "cpus": os.cpu_count()}
    t0 = time.perf_counter()
    manifest_path = ws.manifest_path("ferplus")
    if not manifest_path.exists():
        ferplus_ingest.ingest(ferplus, manifest_path)
        import_ran_lists(lists, manifest_path, workspace=ws)
    out["setup_s"] = round(time.perf_counter() - t0, 1)

    test = read_manifest(manifest_path).where_split("test")
    ids = np.asarray(test.table.column("sample_id").to_pylist(), dtype=object)
    official = latest_labels(read_events(ws.annotation_path("ferplus")))
    official = official[official["source"] == "official"].set_index("sample_id")["types"]
    listed = np.array([s in official.index for s in ids])
    dlib_list = lists / "FERplus_dir" / "dlib_ferplus_val_center_crop_range_list.txt"
    stems = {line.split()[0].split("/")[-1] for line in dlib_list.read_text().splitlines() if line.strip()}
    eligible = np.array([Path(s).stem in stems for s in ids])
    truth = pd.DataFrame({"sample_id": ids, "listed": listed,
                          "official": [list(official[s]) if s in official.index else [] for s in ids]})
    out["test_faces"], out["listed"], out["eligible"] = int(len(ids)), int(listed.sum()), int(eligible.sum())
    print(f"FERPlus test: {len(ids):,} faces, {listed.sum()} officially occluded, {eligible.sum():,} in RAN's dlib list")
    config = ScorerConfig(seed=args.seed, steps=args.steps, pool=args.pool, finetune_epochs=args.epochs,
                          threads=args.threads, backbone=str(args.backbone) if args.backbone else None)

    def report(name: str, score: np.ndarray, mask: np.ndarray) -> None:
        all_m = metrics(score[mask], listed[mask])
        elig_m = metrics(score[mask & eligible], listed[mask & eligible])
        out[name] = {"all": all_m, "dlib_list": elig_m}
        print(f"{name:<10} all:       AUC {all_m['roc_auc']:.3f}  review to find 90%: {100 * all_m['review_at_90']:.1f}% "
              f"(80%: {100 * all_m['review_at_80']:.1f}%)  n={all_m['n']:,} occluded={all_m['positives']}")
        print(f"{'':<10} dlib list: AUC {elig_m['roc_auc']:.3f}  review to find 90%: {100 * elig_m['review_at_90']:.1f}% "
              f"(80%: {100 * elig_m['review_at_80']:.1f}%)  n={elig_m['n']:,}")

    if args.protocol in ("both", "cold"):
        t = time.perf_counter()
        res = suggest(manifest_path, split="test", workspace=ws, config=config, use_table_labels=False)
        out["cold_s"] = round(time.perf_counter() - t, 1)
        score = res.scores.set_index("sample_id").loc[ids, "score"].to_numpy(np.float64)
        report("cold", score, np.ones(len(ids), bool))
        out["cold_prefill"] = prefill_quality(res.scores, truth)
        print(f"{'':<10} time {out['cold_s']} s; pre-fill: {out['cold_prefill']}")

    if args.protocol in ("both", "held-out"):
        rng = np.random.default_rng(args.seed)
        train = np.zeros(len(ids), bool)
        for cls in (True, False):
            members = np.flatnonzero(listed == cls)
            train[rng.permutation(members)[: len(members) // 2]] = True
        labels = label_targets(pd.DataFrame({
            "sample_id": ids[train],
            "types": [list(official[s]) if s in official.index else ["none"] for s in ids[train]],
        }))
        t = time.perf_counter()
        res = suggest(manifest_path, split="test", workspace=ws, config=config, train_labels=labels)
        out["held_out_s"] = round(time.perf_counter() - t, 1)
        out["held_out_training"] = {k: v for k, v in res.training.items() if k in ("label_pos", "label_neg", "finetuned")}
        score = res.scores.set_index("sample_id").loc[ids, "score"].to_numpy(np.float64)
        report("held-out", score, ~train)
        unlisted = np.flatnonzero(~train & ~listed)
        top = unlisted[np.argsort(-score[unlisted], kind="stable")[:48]]
        out["held_out_top48_unlisted_outside_dlib"] = int((~eligible[top]).sum())
        print(f"{'':<10} of the 48 highest-scored unlisted faces, {out['held_out_top48_unlisted_outside_dlib']} are outside "
              f"RAN's dlib list (of all unlisted held-out faces: {100 * (~eligible[unlisted]).mean():.1f} %)")
        held = res.scores[res.scores["sample_id"].isin(set(ids[~train]))]
        out["held_out_prefill"] = prefill_quality(held, truth)
        print(f"{'':<10} trained on {train.sum():,} labelled faces ({listed[train].sum()} occluded); "
              f"time {out['held_out_s']} s; pre-fill (held-out half): {out['held_out_prefill']}")
    print("random order: review 90% to find 90% (by definition)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
