"""fercurate: curate facial-expression datasets for the conditions that break recognisers.

The Python API mirrors the CLI: ``fercurate.ingest.ingest("ferplus", ...)`` is ``fercurate ingest
ferplus``, ``fercurate.info.manifest_info(...)`` is ``fercurate info``, and so on. The names below are
imported lazily so that ``fercurate --help`` does not pay for pandas/pyarrow.
"""

from __future__ import annotations

import importlib
from typing import Any

# The __future__ import binds the name ``annotations`` here, which would shadow the submodule
# ``fercurate.annotations`` in ``from fercurate import annotations`` until that submodule is imported.
del annotations

__version__ = "0.1.0"

_LAZY = {
    "Manifest": "fercurate.manifest",
    "read_manifest": "fercurate.manifest",
    "write_manifest": "fercurate.manifest",
    "CANONICAL_LABELS": "fercurate.schema",
    "SCHEMA_VERSION": "fercurate.schema",
}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fercurate' has no attribute {name!r}")
