"""Benchmark and calibration of duplicate search (``fercurate.quality``) on the real data.

Default run (speed):

1. hashing throughput: every FERPlus image (35,710) hashed from scratch with all cores, images/s;
2. the near-duplicate search on those hashes (multi-index hashing, radius 8, 11 codes per image),
   the verification of its candidates (pairs/s), and ``find_duplicates`` end to end with cached hashes;
3. a generated set of 450,000 items (11 codes each) drawn from the real FERPlus hash distribution
   (each item = a real image's codes XOR a random 6-16-bit mask, 5 % of them planted near copies of
   another item), and a uniform random set: search time, pairs found, and exact agreement with a
   brute-force scan for a sample of query items.

``--calibrate`` (thresholds): distances and similarities of synthetic copies of real images (JPEG,
resize, crops, grayscale, combinations), of hard negatives (CK+ consecutive frames / same subject /
different subjects, JAFFE same poser / different posers), of random FERPlus pairs, and of every
FERPlus candidate pair within 10 bits; ``--out DIR`` also writes a histogram PNG.

    python benchmarks/dups.py                  # speed (a few minutes on 2 cores)
    python benchmarks/dups.py --calibrate --out /tmp/dups-calibration
    python benchmarks/dups.py --synthetic 100000 --sample 300
"""

from __future__ import annotations

import argparse
import glob
import itertools
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("FERCURATE_PROGRESS", "0")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fercurate.quality import dups, hashing  # noqa: E402
from fercurate.quality.index import hamming, self_pairs  # noqa: E402
from fercurate.quality.verify import load_squares, pair_similarities, square, verify_pairs  # noqa: E402

DATA = Path(os.environ.get("FERCURATE_SHARED_DATA", REPO.parent / "shared" / "data"))


def ferplus_manifest(tmp: Path) -> Path:
    from fercurate.ingest.ferplus import ingest

    out = tmp / "manifests" / "ferplus.parquet"
    ingest(DATA / "ferplus", out)
    return out


def multi_distance(codes_a: np.ndarray, codes_b: np.ndarray) -> int:
    """The duplicate-search distance of two images: full hash of each vs every code of the other."""
    return int(min(hamming(codes_a[0], codes_b).min(), hamming(codes_b[0], codes_a).min()))


# --- speed -----------------------------------------------------------------------------------------


def synthetic_codes(real: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n items x 7 codes from the real hash distribution (see the module docstring)."""
    base = real[rng.integers(0, len(real), n)]
    flips = rng.integers(6, 17, n)
    masks = np.zeros(n, dtype=np.uint64)
    for k in range(int(flips.max())):
        bit = rng.integers(0, 64, n).astype(np.uint64)
        masks ^= np.where(k < flips, np.left_shift(np.uint64(1), bit), np.uint64(0))
    codes = base ^ masks[:, None]
    planted = rng.choice(n, n // 20, replace=False)
    src = rng.integers(0, n, len(planted))
    small = np.zeros(len(planted), dtype=np.uint64)
    for _ in range(3):
        small ^= np.left_shift(np.uint64(1), rng.integers(0, 64, len(planted)).astype(np.uint64))
    codes[planted] = codes[src] ^ small[:, None]
    return codes


def brute_force_check(codes: np.ndarray, radius: int, sample: np.ndarray, found: tuple) -> tuple[int, int]:
    """(pairs expected, pairs missing or extra) for the sampled items, by a full scan."""
    i, j, _ = found
    by_item = defaultdict(set)
    sample_set = set(sample.tolist())
    for a, b in zip(i, j):
        if a in sample_set:
            by_item[a].add(b)
        if b in sample_set:
            by_item[b].add(a)
    expected = wrong = 0
    for q in sample:
        d1 = hamming(codes[q, 0], codes).min(axis=1)  # q's full hash vs every code of every item
        d2 = hamming(codes[:, 0], codes[q][None, :].T).min(axis=0)  # every full hash vs q's codes
        near = set(np.flatnonzero(np.minimum(d1, d2) <= radius).tolist()) - {int(q)}
        expected += len(near)
        wrong += len(near ^ by_item[int(q)])
    return expected, wrong


def search(codes: np.ndarray, radius: int, workers: int | None = None) -> tuple[tuple, float]:
    n = len(codes)
    t = time.perf_counter()
    res = self_pairs(codes.ravel(), radius, owners=np.repeat(np.arange(n), codes.shape[1]),
                     queries=codes[:, 0], query_owners=np.arange(n), workers=workers)
    return res, time.perf_counter() - t


def speed(args: argparse.Namespace) -> None:
    from fercurate.manifest import read_manifest

    with tempfile.TemporaryDirectory(prefix="fercurate-bench-dups-") as tmp:
        mpath = ferplus_manifest(Path(tmp))
        m = read_manifest(mpath)
        t = time.perf_counter()
        table = hashing.hash_manifest(m, workers=args.workers, refresh=True)
        el = time.perf_counter() - t
        print(f"hash FERPlus: {len(m):,} images in {el:.1f} s = {len(m) / el:,.0f} images/s (workers={args.workers or 'all'})")
        codes, ok = hashing.codes_of(table)
        if not args.synthetic_only:
            ferplus_search(args, mpath, codes, ok)
    synthetic_search(args, codes[ok])


def ferplus_search(args: argparse.Namespace, mpath: Path, codes: np.ndarray, ok: np.ndarray) -> None:
    """Search, verification and find_duplicates on the real FERPlus hashes."""
    res, el = search(codes[ok], args.radius, args.workers)
    print(f"search FERPlus: {ok.sum():,} images x {hashing.N_CODES} codes, radius {args.radius}: "
          f"{el:.2f} s, {len(res[0]):,} candidate pairs")
    pool = dups.load_pool([mpath], workers=args.workers)
    rows = np.unique(np.concatenate([res[0], res[1]]))
    pick = rng_pick(len(res[0]), args.verify_pairs)
    t = time.perf_counter()
    sq, sq_ok = load_squares(pool.paths[rows], workers=args.workers)
    t_load = time.perf_counter() - t
    pos = np.searchsorted(rows, np.concatenate([res[0][pick], res[1][pick]]))
    t = time.perf_counter()
    verify_pairs(sq, sq_ok, pos[: len(pick)], pos[len(pick) :], workers=args.workers)
    t_ver = time.perf_counter() - t
    print(f"verify: decoded {len(rows):,} candidate images in {t_load:.1f} s; {len(pick):,} pairs in "
          f"{t_ver:.1f} s = {len(pick) / t_ver:,.0f} pairs/s")
    t = time.perf_counter()
    result = dups.find_duplicates([mpath], workers=args.workers, workspace=None, write=False)
    el = time.perf_counter() - t
    print(f"find_duplicates FERPlus (hashes cached): {el:.1f} s; {len(result.pairs):,} pairs, "
          f"{result.candidates:,} candidates")
    for r in result.leakage.itertuples():
        print(f"  {r.manifest}/{r.split} -> {r.dup_manifest}/{r.dup_split}: {r.samples:,} of {r.total:,} ({r.fraction:.2%})")


def synthetic_search(args: argparse.Namespace, real: np.ndarray) -> None:
    """Search time and brute-force agreement on generated hash sets of ``args.synthetic`` items."""
    rng = np.random.default_rng(0)
    for name, syn in (("realistic", synthetic_codes(real, args.synthetic, rng)),
                      ("uniform", rng.integers(0, 2**64, (args.synthetic, hashing.N_CODES), dtype=np.uint64))):
        res, el = search(syn, args.radius, args.workers)
        sample = rng.choice(len(syn), args.sample, replace=False)
        t = time.perf_counter()
        expected, wrong = brute_force_check(syn, args.radius, sample, res)
        bf = time.perf_counter() - t
        print(f"search {name} {len(syn):,} items x {hashing.N_CODES} codes, radius {args.radius}: {el:.1f} s, "
              f"{len(res[0]):,} pairs; brute force on {args.sample} items ({bf:.0f} s, "
              f"~{bf / args.sample * len(syn) / 60:.0f} min for all): {expected:,} pairs expected, {wrong} differ")


def rng_pick(n: int, k: int) -> np.ndarray:
    return np.sort(np.random.default_rng(1).choice(n, min(n, k), replace=False))


# --- calibration -------------------------------------------------------------------------------------


def jpeg(g: np.ndarray, q: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", g, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_UNCHANGED)


def _resize(g: np.ndarray, f: float) -> np.ndarray:
    h, w = g.shape[:2]
    return cv2.resize(g, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)


def _crop(g: np.ndarray, top: float, bottom: float, left: float, right: float) -> np.ndarray:
    h, w = g.shape[:2]
    return g[round(h * top) : h - round(h * bottom), round(w * left) : w - round(w * right)]


TRANSFORMS = {
    "jpeg q90": lambda g: jpeg(g, 90),
    "jpeg q50": lambda g: jpeg(g, 50),
    "resize x0.5": lambda g: _resize(g, 0.5),
    "resize x2": lambda g: _resize(g, 2.0),
    "crop 2% each side": lambda g: _crop(g, 0.02, 0.02, 0.02, 0.02),
    "crop 4% each side": lambda g: _crop(g, 0.04, 0.04, 0.04, 0.04),
    "crop 6% each side": lambda g: _crop(g, 0.06, 0.06, 0.06, 0.06),
    "crop 8% top+left": lambda g: _crop(g, 0.08, 0, 0.08, 0),
    "crop 6% one side": lambda g: _crop(g, 0, 0, 0.06, 0),
    "crop 10% each side": lambda g: _crop(g, 0.10, 0.10, 0.10, 0.10),
    "brightness +15, contrast x1.1": lambda g: np.clip(g.astype(np.float32) * 1.1 + 15, 0, 255).astype(np.uint8),
    "crop 3% + resize x1.5 + jpeg q70": lambda g: jpeg(_resize(_crop(g, 0.03, 0.03, 0.01, 0.05), 1.5), 70),
    "horizontal flip (not a copy)": lambda g: g[:, ::-1].copy(),
}


def _codes(img: np.ndarray) -> np.ndarray:
    return hashing.gray_phashes(hashing.work_size(hashing.to_gray(img)))


def _measure(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    d = np.array([multi_distance(_codes(a), _codes(b)) for a, b in pairs])
    s = pair_similarities(np.stack([square(hashing.to_gray(a)) for a, _ in pairs]),
                          np.stack([square(hashing.to_gray(b)) for _, b in pairs]))
    return d, s


def _row(name: str, d: np.ndarray, s: np.ndarray, radius: int, tau: float) -> str:
    match = (d <= radius) & (s >= tau)
    return (f"{name:<44} {len(d):>6,} {np.median(d):>5.0f} {np.percentile(d, 95):>5.0f} {d.max():>4} "
            f"{np.percentile(s, 5):>6.3f} {np.median(s):>6.3f} {np.percentile(s, 95):>6.3f} {match.mean():>8.1%}")


def calibrate(args: argparse.Namespace) -> None:
    radius, tau = args.radius, dups.MIN_SIMILARITY
    rng = np.random.default_rng(0)
    header = (f"{'set':<44} {'n':>6} {'d50':>5} {'d95':>5} {'dmax':>4} {'s5':>6} {'s50':>6} {'s95':>6} "
              f"{'matched':>8}   (matched = d<={radius} and s>={tau})")
    fer = sorted(glob.glob(str(DATA / "ferplus" / "FER2013*" / "*.png")))
    picks = [fer[k] for k in rng.choice(len(fer), args.copies, replace=False)]
    imgs = [cv2.imread(p, cv2.IMREAD_GRAYSCALE) for p in picks]
    colour = [cv2.imread(p) for p in sorted(glob.glob(str(DATA / "faces" / "*.jpg")))]
    hist = {}
    print("copies of real FERPlus images (true duplicates)\n" + header)
    for name, fn in TRANSFORMS.items():
        d, s = _measure([(g, fn(g)) for g in imgs])
        hist[name] = (d, s)
        print(_row(name, d, s, radius, tau))
    d, s = _measure([(c, cv2.cvtColor(c, cv2.COLOR_BGR2GRAY)) for c in colour])
    print(_row("faces/ colour -> grayscale", d, s, radius, tau))
    d, s = _measure([(c, jpeg(_resize(cv2.cvtColor(c, cv2.COLOR_BGR2GRAY), 0.5), 80)) for c in colour])
    print(_row("faces/ grayscale + resize x0.5 + jpeg q80", d, s, radius, tau))

    print("\ndifferent images (should not match, except where noted)\n" + header)
    ck = sorted(glob.glob(str(DATA / "ckplus48" / "*" / "*.png")))
    seqs = defaultdict(list)
    for f in ck:
        s_, q_, _ = re.match(r"S(\d+)_(\d+)_(\d+)", Path(f).name).groups()
        seqs[(s_, q_)].append(f)
    load = {f: cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in ck}
    consecutive = [(load[a], load[b]) for fs in seqs.values() for a, b in zip(sorted(fs), sorted(fs)[1:])]
    last = {k: sorted(v)[-1] for k, v in seqs.items()}
    by_subject = defaultdict(list)
    for (s_, _), f in last.items():
        by_subject[s_].append(f)
    same_subject = [(load[a], load[b]) for fs in by_subject.values() for a, b in itertools.combinations(fs, 2)]
    lasts = list(last.items())
    diff_subject = []
    for _ in range(3000):
        a, b = rng.choice(len(lasts), 2, replace=False)
        if lasts[a][0][0] != lasts[b][0][0]:
            diff_subject.append((load[lasts[a][1]], load[lasts[b][1]]))
    jf = sorted(glob.glob(str(DATA / "jaffe" / "*.tiff")))
    jl = {f: cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in jf}
    poser = lambda f: Path(f).name.split(".")[0]  # noqa: E731
    expr = lambda f: Path(f).name.split(".")[1][:2]  # noqa: E731
    sets = {
        "CK+ consecutive frames (near dups by design)": consecutive,
        "CK+ same subject, other sequence": same_subject,
        "CK+ different subjects": diff_subject,
        "JAFFE same poser+expression, other photo": [(jl[a], jl[b]) for a, b in itertools.combinations(jf, 2)
                                                     if poser(a) == poser(b) and expr(a) == expr(b)],
        "JAFFE same poser, other expression (same session)": [(jl[a], jl[b]) for a, b in itertools.combinations(jf, 2)
                                               if poser(a) == poser(b) and expr(a) != expr(b)],
        "JAFFE different posers": [(jl[a], jl[b]) for a, b in itertools.combinations(jf, 2) if poser(a) != poser(b)],
    }
    for name, pairs in sets.items():
        d, s = _measure(pairs)
        hist[name] = (d, s)
        print(_row(name, d, s, radius, tau))
    allf = [cv2.imread(p, cv2.IMREAD_GRAYSCALE) for p in fer]
    a_idx, b_idx = rng.integers(0, len(fer), args.random_pairs), rng.integers(0, len(fer), args.random_pairs)
    keep = a_idx != b_idx
    d, s = _measure([(allf[a], allf[b]) for a, b in zip(a_idx[keep], b_idx[keep])])
    hist["FERPlus random pairs"] = (d, s)
    print(_row("FERPlus random pairs (mostly different)", d, s, radius, tau))

    print(f"\nFERPlus candidate pairs within 10 bits (all 35,710 images; exact-pixel pairs excluded): "
          f"similarity histogram per distance; near duplicates need d<={radius} and s>={tau}")
    codes = np.stack([_codes(g) for g in allf])
    pix = np.array([hashing.pixel_sha256(g) for g in allf])
    (i, j, d), _ = search(codes, 10, args.workers)
    keep = pix[i] != pix[j]
    i, j, d = i[keep], j[keep], d[keep]
    sq = np.stack([square(g) for g in allf])
    s = verify_pairs(sq, np.ones(len(sq), bool), i, j, workers=args.workers)
    edges = [-1, 0.5, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.95, 1.01]
    print("dist " + " ".join(f"{f'<{e:g}':>7}" for e in edges[1:]) + "   total  accepted")
    for dist in range(0, 11, 2):
        m = d == dist
        h = np.histogram(s[m], bins=edges)[0]
        print(f"{dist:>4} " + " ".join(f"{v:>7,}" for v in h) + f" {m.sum():>7,} {((s >= tau) & m & (dist <= radius)).sum():>9,}")
    if args.out:
        copies = set(TRANSFORMS) - {"horizontal flip (not a copy)"} | {"CK+ consecutive frames (near dups by design)",
                                                                        "JAFFE same poser+expression, other photo"}
        plot(hist, copies, Path(args.out) / "dups_calibration.png", radius, tau)


def plot(hist: dict[str, tuple[np.ndarray, np.ndarray]], copies: set[str], path: Path, radius: int, tau: float) -> None:
    """2 x 2 panels: hash distance (left) and similarity (right), copies (top) vs different images (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(15, 9), sharex="col")
    rows = (("copies of one image (should match)", [n for n in hist if n in copies]),
            ("different images (should not match)", [n for n in hist if n not in copies]))
    for r, (title, names) in enumerate(rows):
        for name in names:
            d, s = hist[name]
            axes[r, 0].hist(d, bins=np.arange(-0.5, 41, 2), histtype="step", density=True, label=name, linewidth=1.3)
            axes[r, 1].hist(np.clip(s, 0, 1), bins=np.linspace(0, 1, 101), histtype="step", density=True, label=name,
                            linewidth=1.3)
        axes[r, 0].axvline(radius + 0.5, color="k", linestyle="--", label=f"radius {radius}")
        axes[r, 1].axvline(tau, color="k", linestyle="--", label=f"threshold {tau}")
        for ax in axes[r]:
            ax.set_title(title, fontsize=10)
            ax.set_ylabel("density")
        axes[r, 1].legend(fontsize=7, ncol=2, loc="upper left")
    axes[1, 0].set_xlabel("perceptual-hash distance (bits; full image vs image + 10 crops, both ways)")
    axes[1, 1].set_xlabel("aligned similarity (band-passed 48 px, best correlation over shifts and scales)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"histogram -> {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calibrate", action="store_true", help="Print the threshold distributions instead of timings.")
    p.add_argument("--out", help="Folder for the calibration histogram PNG.")
    p.add_argument("--workers", type=int, default=None, help="Worker processes (default: all cores).")
    p.add_argument("--radius", type=int, default=dups.RADIUS)
    p.add_argument("--synthetic", type=int, default=450_000, help="Items in the generated hash sets.")
    p.add_argument("--sample", type=int, default=1000, help="Query items checked against brute force.")
    p.add_argument("--verify-pairs", type=int, default=5000, help="Candidate pairs timed in verification.")
    p.add_argument("--synthetic-only", action="store_true", help="Hash FERPlus, then only the generated-set searches.")
    p.add_argument("--copies", type=int, default=500, help="Images per transform in --calibrate.")
    p.add_argument("--random-pairs", type=int, default=3000, help="Random FERPlus pairs in --calibrate.")
    args = p.parse_args()
    if not (DATA / "ferplus" / "FER2013Test").exists():
        sys.exit(f"real data not found at {DATA} (set FERCURATE_SHARED_DATA)")
    calibrate(args) if args.calibrate else speed(args)


if __name__ == "__main__":
    main()
