"""Progress bars for long work (images/s shown), switched off by ``FERCURATE_PROGRESS=0``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def enabled() -> bool:
    return os.environ.get("FERCURATE_PROGRESS", "1") not in ("0", "false", "no")


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "img",
    **kwargs: Any,
) -> "tqdm[T]":
    """A tqdm bar on stderr with a rate in ``unit``/s; hidden when progress is disabled."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        dynamic_ncols=True,
        smoothing=0.1,
        disable=not enabled(),
        **kwargs,
    )
