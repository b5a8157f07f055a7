"""Per-image work on all cores: ordered map over chunks in worker processes, with a progress bar."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from fercurate.progress import progress

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """Cores this process may use (respects CPU affinity and cgroup-limited containers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """``None`` or 0 -> all available cores; negative -> all but that many."""
    cores = available_cores()
    if not workers:
        return cores
    if workers < 0:
        return max(1, cores + workers)
    return workers


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def map_chunks(
    fn: Callable[[Sequence[T]], R],
    items: Sequence[T],
    *,
    workers: int | None = None,
    chunk_size: int = 256,
    desc: str = "",
    unit: str = "img",
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
    context: str = "spawn",
) -> Iterator[R]:
    """Apply ``fn`` to consecutive chunks of ``items``, yielding results in order.

    With one worker everything runs in this process (no pickling, easy to debug). The progress bar
    counts items, not chunks. ``fn`` must be a module-level function so it can be pickled.
    """
    chunks = chunked(items, chunk_size)
    n = resolve_workers(workers)
    bar = progress(total=len(items), desc=desc, unit=unit)
    try:
        if n == 1 or len(chunks) <= 1:
            if initializer is not None:
                initializer(*initargs)
            for chunk in chunks:
                result = fn(chunk)
                bar.update(len(chunk))
                yield result
            return
        ctx = mp.get_context(context)
        with ProcessPoolExecutor(
            max_workers=min(n, len(chunks)), mp_context=ctx, initializer=initializer, initargs=initargs
        ) as pool:
            window = 2 * n
            futures = [pool.submit(fn, c) for c in chunks[:window]]
            next_i = len(futures)
            for i in range(len(chunks)):
                result = futures[i].result()
                futures[i] = None  # free memory as we go
                if next_i < len(chunks):
                    futures.append(pool.submit(fn, chunks[next_i]))
                    next_i += 1
                bar.update(len(chunks[i]))
                yield result
    finally:
        bar.close()
