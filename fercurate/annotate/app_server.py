"""The FiftyOne App server, run with a watchdog that stops it when its launcher dies.

``fercurate annotate launch`` starts the server as a child process (:func:`fercurate.annotate.app.start_server`)
with ``python -m fercurate.annotate.app_server --parent PID --annotator NAME --workspace DIR -- <server
args>``; the annotator and workspace are recorded in :mod:`fercurate.annotate.served` for the plugin
before FiftyOne's server starts (in FiftyOne's server folder, which says nothing about where labels
go). If the launcher
goes away by any means, kill -9 included, the child is re-parented and :func:`watch_parent` sees
``os.getppid()`` change within a fraction of a second and stops the server, so no App keeps
accepting labels that nobody will pull; the labels already made are written to the annotation file
first (:func:`fercurate.annotate.live.flush_all`). Portable (no ``prctl``) and independent of which of the
launcher's threads started it.
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import sys
import threading
import time
from pathlib import Path

POLL_S = 0.25
GRACE_S = 2.0


def watch_parent(parent: int, poll_s: float = POLL_S, grace_s: float = GRACE_S) -> threading.Thread:
    """Start a daemon thread that ends this process once ``parent`` is no longer its parent."""

    def run() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        code = _flush_labels()
        os.kill(os.getpid(), signal.SIGTERM)  # the server's own shutdown, if it handles SIGTERM
        time.sleep(grace_s)
        os._exit(code)

    thread = threading.Thread(target=run, name="fercurate-launcher-watchdog", daemon=True)
    thread.start()
    return thread


def _flush_labels() -> int:
    """Write (or spill) the labels the plugin has queued (:mod:`fercurate.annotate.live`) before the server
    stops; the exit code says whether any were lost."""
    live = sys.modules.get("fercurate.annotate.live")
    if live is None:
        return 0
    live.flush_all()
    return live.exit_code()


def main(argv: list[str] | None = None) -> None:
    """Watch the launcher, then run FiftyOne's ``server/main.py`` with the remaining arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parent", type=int, required=True, help="pid of the launcher to outlive never")
    parser.add_argument("--annotator", help="the one annotator this App labels for")
    parser.add_argument("--workspace", type=Path, help="the workspace whose annotations/ its labels go to")
    parser.add_argument("server_args", nargs=argparse.REMAINDER, help="arguments for FiftyOne's server/main.py")
    args = parser.parse_args(argv)
    if os.getppid() != args.parent:  # the launcher died before we got here
        sys.exit(0)
    watch_parent(args.parent)
    if args.annotator and args.workspace:
        from fercurate.annotate import served
        from fercurate.workspace import Workspace

        served.serve(args.annotator, Workspace(args.workspace.resolve()))
    import fiftyone.constants as foc

    main_py = os.path.join(foc.SERVER_DIR, "main.py")
    server_args = args.server_args[1:] if args.server_args[:1] == ["--"] else args.server_args
    sys.argv = [main_py, *server_args]
    sys.path.insert(0, foc.SERVER_DIR)
    runpy.run_path(main_py, run_name="__main__")


if __name__ == "__main__":
    main()
