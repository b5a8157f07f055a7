"""Per-sample seeds: derived from the run's seed and the sample's identity, never from run order.

A variant's pixels depend only on (global seed, parent sample_id, kind, variant index), so running on
more cores, in another order, or resuming half-way gives byte-identical images.
"""

from __future__ import annotations

import hashlib

import numpy as np


def sample_seed(global_seed: int, sample_id: str, kind: str, index: int = 0) -> int:
    """A 63-bit seed for one variant of one sample (stable across processes and platforms)."""
    key = f"{int(global_seed)}\x1f{sample_id}\x1f{kind}\x1f{int(index)}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def rng(seed: int, stream: int = 0) -> np.random.Generator:
    """An independent generator for one use (``stream``) of one variant's seed (PCG64)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(stream)])))
