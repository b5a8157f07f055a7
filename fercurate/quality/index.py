"""Fast Hamming-radius search over 64-bit hashes: multi-index hashing (MIH), never all pairs.

Multi-index hashing (Norouzi, Punjani & Fleet, CVPR 2012) splits every 64-bit code into ``m``
contiguous chunks. By the pigeonhole principle two codes within Hamming distance ``R`` agree within
``R // m`` bits on at least one chunk, so each chunk is a sorted array probed with every key within
that small radius (``searchsorted``), and only those candidates get their full distance checked.
Everything is vectorised numpy over blocks of queries; a candidate found through several chunks is
kept only from the first chunk that can produce it, so no de-duplication sort is needed.

:func:`brute_force_pairs` is the obvious all-pairs reference, for tests and the benchmark only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

from fercurate.parallel import map_chunks

_POP16 = np.array([bin(i).count("1") for i in range(1 << 16)], dtype=np.int8)


def popcount64(x: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64 (16-bit lookup table; numpy 1.x has no bitwise_count), as int8."""
    x = np.ascontiguousarray(x, dtype=np.uint64)
    t = _POP16[x.view(np.uint16).reshape(*x.shape, 4)]
    return t[..., 0] + t[..., 1] + t[..., 2] + t[..., 3]


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise (broadcast) Hamming distance between uint64 codes, as int8."""
    return popcount64(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))


def _flip_masks(bits: int, radius: int) -> np.ndarray:
    """All ``bits``-wide masks with at most ``radius`` bits set (the probes of one chunk)."""
    masks = [0]
    for r in range(1, min(radius, bits) + 1):
        masks.extend(sum(1 << b for b in combo) for combo in combinations(range(bits), r))
    return np.asarray(masks, dtype=np.uint64)


def chunk_widths(chunks: int) -> list[int]:
    """Bit widths of ``chunks`` contiguous chunks covering 64 bits (the first ones one bit wider)."""
    return [64 // chunks + (1 if i < 64 % chunks else 0) for i in range(chunks)]


def _n_masks(bits: int, radius: int) -> int:
    return int(sum(comb(bits, r) for r in range(min(radius, bits) + 1)))


def default_chunks(n_codes: int, radius: int) -> int:
    """The chunk count with the least estimated work per query for ``n_codes`` codes and ``radius``.

    Work per query ~ chunks x probes x (1 + expected bucket size), where probes is the number of keys
    within ``radius // chunks`` of a chunk value and the bucket size is ``n_codes / 2**bits``
    (uniform codes; real hashes are lumpier, which favours fewer, wider chunks a little more).
    """
    best, best_cost = 1, float("inf")
    for m in range(1, min(radius + 1, 16) + 1):
        bits = min(chunk_widths(m))
        cost = m * _n_masks(max(chunk_widths(m)), radius // m) * (1.0 + n_codes / 2.0**bits)
        if cost < best_cost:
            best, best_cost = m, cost
    return best


# Chunks up to this many bits get a dense bucket table (2**bits + 1 offsets) instead of a binary search.
DENSE_BITS = 24


@dataclass(frozen=True)
class _Chunk:
    lo: int
    bits: int
    order: np.ndarray  # code indices sorted by this chunk's value
    values: np.ndarray  # the sorted chunk values
    starts: np.ndarray | None  # dense table: bucket v holds order[starts[v]:starts[v + 1]]

    def bounds(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First and one-past-last position in ``order`` of each key's bucket."""
        if self.starts is not None:
            k = keys.astype(np.int64)
            return self.starts[k], self.starts[k + 1]
        return np.searchsorted(self.values, keys, side="left"), np.searchsorted(self.values, keys, side="right")

    def extract(self, codes: np.ndarray) -> np.ndarray:
        return (codes >> np.uint64(self.lo)) & np.uint64((1 << self.bits) - 1)


class HammingIndex:
    """An index of uint64 codes answering "every code within Hamming distance R" without a full scan.

    ``owners`` (optional, same length as ``codes``) maps each code to the item it belongs to, so an
    item may contribute several codes (e.g. the hashes of a few crops of one image).
    """

    def __init__(self, codes: np.ndarray, *, chunks: int = 4, owners: np.ndarray | None = None) -> None:
        codes = np.ascontiguousarray(np.asarray(codes, dtype=np.uint64).ravel())
        if not 1 <= chunks <= 64:
            raise ValueError(f"chunks must be in 1..64, got {chunks}")
        self.codes = codes
        self.owners = np.arange(len(codes), dtype=np.int64) if owners is None else np.asarray(owners, dtype=np.int64)
        if len(self.owners) != len(codes):
            raise ValueError("owners must be as long as codes")
        self.m = chunks
        widths = chunk_widths(chunks)
        self._chunks: list[_Chunk] = []
        lo = 0
        for w in widths:
            vals = (codes >> np.uint64(lo)) & np.uint64((1 << w) - 1)
            order = np.argsort(vals, kind="stable")
            starts = None
            if w <= DENSE_BITS:
                counts = np.bincount(vals.astype(np.int64), minlength=1 << w)
                starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            self._chunks.append(_Chunk(lo, w, order.astype(np.int64), vals[order], starts))
            lo += w

    def __len__(self) -> int:
        return len(self.codes)

    def search(
        self, queries: np.ndarray, radius: int, *, block: int = 4096
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (query index, code index, distance) with distance <= ``radius``, sorted by query then code."""
        parts = list(self.iter_search(queries, radius, block=block))
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=np.int8)
        q, c, d = (np.concatenate(x) for x in zip(*parts))
        order = np.lexsort((c, q))
        return q[order], c[order], d[order]

    def iter_search(
        self, queries: np.ndarray, radius: int, *, block: int = 4096
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """:meth:`search` in blocks of queries (bounded memory for millions of queries)."""
        queries = np.ascontiguousarray(np.asarray(queries, dtype=np.uint64).ravel())
        if radius < 0:
            raise ValueError("radius must be >= 0")
        sub_r = radius // self.m
        masks = [_flip_masks(ch.bits, sub_r) for ch in self._chunks]
        for start in range(0, len(queries), block):
            q = queries[start : start + block]
            qi_parts, ci_parts, d_parts = [], [], []
            for k, ch in enumerate(self._chunks):
                qi, ci = self._probe(ch, q, masks[k])
                if not len(qi):
                    continue
                dist = hamming(q[qi], self.codes[ci])
                keep = dist <= radius
                qi, ci, dist = qi[keep], ci[keep], dist[keep]
                if k and len(qi):
                    # keep a pair only in the first chunk that could produce it (no duplicates)
                    seen = np.zeros(len(qi), dtype=bool)
                    for prev in self._chunks[:k]:
                        seen |= popcount64(prev.extract(q[qi]) ^ prev.extract(self.codes[ci])) <= sub_r
                    qi, ci, dist = qi[~seen], ci[~seen], dist[~seen]
                qi_parts.append(qi)
                ci_parts.append(ci)
                d_parts.append(dist)
            if qi_parts:
                yield np.concatenate(qi_parts) + start, np.concatenate(ci_parts), np.concatenate(d_parts)

    @staticmethod
    def _probe(ch: _Chunk, q: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keys = (ch.extract(q)[:, None] ^ masks[None, :]).ravel()
        left, right = ch.bounds(keys)
        counts = right - left
        total = int(counts.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        qi = np.repeat(np.arange(len(keys), dtype=np.int64) // len(masks), counts)
        # positions left[k] .. right[k]-1 for every key, flattened
        offsets = np.repeat(left - np.cumsum(counts) + counts, counts) + np.arange(total, dtype=np.int64)
        return qi, ch.order[offsets]


PARALLEL_MIN_QUERIES = 100_000


def self_pairs(
    codes: np.ndarray, radius: int, *, owners: np.ndarray | None = None, queries: np.ndarray | None = None,
    query_owners: np.ndarray | None = None, chunks: int | None = None, block: int = 4096, workers: int | None = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unordered pair of distinct items within ``radius``: (i, j, distance) with i < j.

    With ``owners`` an item has several codes in the index; ``queries``/``query_owners`` (default: the
    codes themselves) are what each item is searched with. The distance of a pair is the smallest
    over all its code combinations found. ``workers`` > 1 (or None: all cores) splits the queries
    over processes, each building its own copy of the index (only for at least
    :data:`PARALLEL_MIN_QUERIES` queries: below that, starting processes costs more than it saves).
    """
    codes = np.ascontiguousarray(np.asarray(codes, dtype=np.uint64).ravel())
    owners = np.arange(len(codes), dtype=np.int64) if owners is None else np.asarray(owners, dtype=np.int64)
    if queries is None:
        queries, query_owners = codes, owners
    elif query_owners is None:
        raise ValueError("query_owners is needed with queries")
    queries = np.ascontiguousarray(np.asarray(queries, dtype=np.uint64).ravel())
    query_owners = np.asarray(query_owners, dtype=np.int64)
    m = chunks or default_chunks(len(codes), radius)
    if len(queries) < PARALLEL_MIN_QUERIES:
        workers = 1
    parts = map_chunks(
        _search_chunk, list(range(len(queries))), workers=workers, chunk_size=block, desc="near-duplicate search",
        unit="img", initializer=_init_search, initargs=(codes, owners, queries, query_owners, m, radius),
    )
    ii, jj, dd = [], [], []
    for a, b, d in parts:
        ii.append(a)
        jj.append(b)
        dd.append(d)
    return _min_per_pair(ii, jj, dd)


_STATE: dict = {}


def _init_search(codes: np.ndarray, owners: np.ndarray, queries: np.ndarray, query_owners: np.ndarray,
                 chunks: int, radius: int) -> None:
    """Per-process set-up for :func:`self_pairs`: build the index once."""
    _STATE.clear()
    _STATE.update(index=HammingIndex(codes, chunks=chunks, owners=owners), queries=queries,
                  query_owners=query_owners, radius=radius)


def _search_chunk(rows: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Search one contiguous block of queries; returns (smaller owner, larger owner, distance)."""
    start, stop = rows[0], rows[-1] + 1
    index: HammingIndex = _STATE["index"]
    qi, ci, d = index.search(_STATE["queries"][start:stop], _STATE["radius"], block=stop - start)
    a = _STATE["query_owners"][start:stop][qi]
    b = index.owners[ci]
    keep = a != b
    a, b, d = a[keep], b[keep], d[keep]
    return np.minimum(a, b), np.maximum(a, b), d


def _min_per_pair(ii: list, jj: list, dd: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not ii:
        e = np.zeros(0, dtype=np.int64)
        return e, e, np.zeros(0, dtype=np.int8)
    i = np.concatenate(ii)
    j = np.concatenate(jj)
    d = np.concatenate(dd)
    if not len(i):
        return i, j, d
    order = np.lexsort((d, j, i))
    i, j, d = i[order], j[order], d[order]
    first = np.ones(len(i), dtype=bool)
    first[1:] = (i[1:] != i[:-1]) | (j[1:] != j[:-1])
    return i[first], j[first], d[first]


def brute_force_pairs(
    codes: np.ndarray, radius: int, *, owners: np.ndarray | None = None, block: int = 2048
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All-pairs reference for :func:`self_pairs` (quadratic: tests and benchmarks only)."""
    codes = np.asarray(codes, dtype=np.uint64).ravel()
    owners = np.arange(len(codes), dtype=np.int64) if owners is None else np.asarray(owners, dtype=np.int64)
    ii, jj, dd = [], [], []
    for start in range(0, len(codes), block):
        q = codes[start : start + block]
        d = hamming(q[:, None], codes[None, :])
        qi, ci = np.nonzero(d <= radius)
        a, b = owners[qi + start], owners[ci]
        keep = a != b
        ii.append(np.minimum(a, b)[keep])
        jj.append(np.maximum(a, b)[keep])
        dd.append(d[qi, ci][keep])
    return _min_per_pair(ii, jj, dd)
