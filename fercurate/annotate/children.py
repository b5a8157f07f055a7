"""The environment of fercurate's own child processes (App server, database keeper, a pull in an annotator's database).

Each runs ``python -m fercurate...`` in a folder of its own choosing (the App server in FiftyOne's
server folder), so this copy of fercurate is put first on its ``PYTHONPATH``: the child runs the same
code as its parent, whichever checkout that is.
"""

from __future__ import annotations

import os
from pathlib import Path

_HERE = str(Path(__file__).resolve().parents[2])  # the folder holding this copy of the fercurate package


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment, with this fercurate importable first, plus ``extra`` variables."""
    path = os.pathsep.join(p for p in (_HERE, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


__all__ = ["child_env"]
