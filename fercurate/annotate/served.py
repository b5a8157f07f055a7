"""What one App server serves, fixed by the launcher that started it: its annotator and its workspace.

``fercurate annotate launch`` decides the workspace once (``-w``, the current folder or
``$FERCURATE_WORKSPACE``) and starts the App server with ``--annotator NAME --workspace DIR``
(:mod:`fercurate.annotate.app_server`), which records them here before FiftyOne's server starts.
The plugin, running inside that server, reads them from here: it never derives the workspace from
the server's own current folder (FiftyOne's server folder) or from its environment, so a label can
only ever be written to that workspace's ``annotations/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fercurate.workspace import Workspace


@dataclass(frozen=True)
class Served:
    """The one annotator an App server labels for, and the workspace its labels go to."""

    annotator: str
    workspace: Workspace


_current: Served | None = None


def serve(annotator: str, workspace: Workspace) -> Served:
    """Record what this process's App server serves (called once, by the server's entry point)."""
    global _current
    _current = Served(annotator, workspace)
    return _current


def current() -> Served | None:
    """What this App server serves; None in a server that fercurate did not start."""
    return _current


__all__ = ["Served", "current", "serve"]
