"""Multi-index hashing vs brute force on random and clustered 64-bit codes."""

from __future__ import annotations

import numpy as np
import pytest

from fercurate.quality.index import (
    HammingIndex,
    brute_force_pairs,
    default_chunks,
    hamming,
    popcount64,
    self_pairs,
)


def _random_codes(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**64, n, dtype=np.uint64)


def _clustered_codes(n: int, seed: int) -> np.ndarray:
    """Codes in tight clusters (like real perceptual hashes), so every radius has many true pairs."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2**64, n // 10, dtype=np.uint64)
    codes = centres[rng.integers(0, len(centres), n)]
    for _ in range(3):
        flip = rng.random(n) < 0.7
        codes ^= np.where(flip, np.left_shift(np.uint64(1), rng.integers(0, 64, n).astype(np.uint64)), np.uint64(0))
    return codes


def test_popcount_matches_python():
    x = _random_codes(5000, 1)
    x[:3] = [0, 2**64 - 1, 2**63]
    assert popcount64(x).tolist() == [bin(int(v)).count("1") for v in x]
    assert hamming(np.uint64(0b1011), np.uint64(0b0110)) == 3


@pytest.mark.parametrize("radius", [0, 1, 3, 6, 8, 10])
@pytest.mark.parametrize("chunks", [None, 5])
def test_self_pairs_equal_brute_force_on_clustered_codes(radius, chunks):
    codes = _clustered_codes(2000, seed=radius)
    got = self_pairs(codes, radius, chunks=chunks)
    want = brute_force_pairs(codes, radius)
    assert len(want[0]) > 0
    for g, w in zip(got, want):
        assert np.array_equal(g, w)
    assert (got[0] < got[1]).all()


@pytest.mark.parametrize("radius", [4, 12])
def test_search_equals_brute_force_for_queries_outside_the_index(radius):
    base = _random_codes(2000, 3)
    rng = np.random.default_rng(4)
    # half the queries are perturbed copies of indexed codes, half random
    near = base[rng.integers(0, len(base), 300)]
    for _ in range(radius // 2):
        near ^= np.left_shift(np.uint64(1), rng.integers(0, 64, len(near)).astype(np.uint64))
    queries = np.concatenate([near, _random_codes(300, 5)])
    qi, ci, d = HammingIndex(base, chunks=default_chunks(len(base), radius)).search(queries, radius)
    full = hamming(queries[:, None], base[None, :])
    wq, wc = np.nonzero(full <= radius)
    assert np.array_equal(qi, wq) and np.array_equal(ci, wc)
    assert np.array_equal(d, full[wq, wc])
    assert len(qi) >= 300  # every perturbed copy is found


def test_several_codes_per_item_give_the_smallest_distance_once():
    rng = np.random.default_rng(7)
    n, k = 800, 5
    codes = _clustered_codes(n * k, 8).reshape(n, k)
    owners = np.repeat(np.arange(n), k)
    got = self_pairs(codes.ravel(), 7, owners=owners, queries=codes[:, 0], query_owners=np.arange(n))
    # brute force: full code of one item against every code of the other, both ways, minimum
    d1 = hamming(codes[:, 0][:, None, None], codes[None, :, :]).min(axis=2)
    dmin = np.minimum(d1, d1.T)
    np.fill_diagonal(dmin, 99)
    wi, wj = np.nonzero(np.triu(dmin <= 7, k=1))
    assert len(wi) > 0
    assert np.array_equal(got[0], wi) and np.array_equal(got[1], wj)
    assert np.array_equal(got[2], dmin[wi, wj])
    del rng


def test_edge_cases():
    assert all(len(x) == 0 for x in self_pairs(np.zeros(0, np.uint64), 5))
    assert all(len(x) == 0 for x in self_pairs(np.array([7], np.uint64), 5))
    same = np.array([5, 5, 5], dtype=np.uint64)
    i, j, d = self_pairs(same, 0)
    assert list(zip(i, j)) == [(0, 1), (0, 2), (1, 2)] and (d == 0).all()
    with pytest.raises(ValueError):
        HammingIndex(same, chunks=0)
    with pytest.raises(ValueError):
        HammingIndex(same).search(same, -1)


def test_default_chunks_prefers_cheap_probes():
    # large sets: chunks of ~log2(n) bits; small radius: few chunks; never more than radius + 1
    assert default_chunks(3_150_000, 8) == 3
    assert default_chunks(250_000, 10) == 4
    assert default_chunks(1000, 0) == 1
    for n in (10, 10_000, 1_000_000):
        for r in range(0, 12):
            assert 1 <= default_chunks(n, r) <= r + 1


def test_parallel_search_equals_in_process_search(monkeypatch):
    from fercurate.quality import index

    monkeypatch.setattr(index, "PARALLEL_MIN_QUERIES", 1000)
    codes = _clustered_codes(6000, 11)
    one = self_pairs(codes, 8, block=500, workers=1)
    two = self_pairs(codes, 8, block=500, workers=2)
    assert len(one[0]) > 0
    for a, b in zip(one, two):
        assert np.array_equal(a, b)
