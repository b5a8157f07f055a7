"""Launching the FiftyOne App on a manifest's dataset, with the packaged labelling plugin installed.

FiftyOne loads plugins from ``FIFTYONE_PLUGINS_DIR`` (``fo.config.plugins_dir``) when its server
starts, so :func:`install_plugin` links the plugin shipped inside this package there first.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fercurate.annotate import identity, network
from fercurate.annotate.database import connect
from fercurate.annotate.dataset import ensure_dataset
from fercurate.annotate.session import QUEUE_VIEW, open_session
from fercurate.compat import moved_module
from fercurate.errors import FercurateError, InputError
from fercurate.workspace import Workspace

if TYPE_CHECKING:
    import fiftyone as fo

PLUGIN_SOURCE = Path(__file__).resolve().parent / "plugin"
PLUGIN_DIR_NAME = "fercurate-occlusion"
PLUGIN_NAME = "@fercurate/occlusion"
# Names that moved below the launcher (annotator identity, the free-port finder, the standard views).
__getattr__ = moved_module(__name__, "fercurate.annotate.identity", {
    "free_port": "fercurate.annotate.network:free_port",
    "STANDARD_VIEWS": "fercurate.annotate.views:STANDARD_VIEWS",
})


def plugins_dir() -> Path:
    """Where FiftyOne looks for plugins (``FIFTYONE_PLUGINS_DIR`` or its configured default)."""
    import fiftyone as fo

    configured = fo.config.plugins_dir or os.environ.get("FIFTYONE_PLUGINS_DIR")
    return Path(configured or Path.home() / "fiftyone" / "__plugins__").expanduser()


def install_plugin(target_dir: str | os.PathLike | None = None) -> Path:
    """Link (or, where links are impossible, copy) the packaged plugin into the plugins folder.

    Idempotent; an older copy or a link to another checkout is replaced. Returns the installed path.
    """
    base = Path(target_dir) if target_dir else plugins_dir()
    base.mkdir(parents=True, exist_ok=True)
    dest = base / PLUGIN_DIR_NAME
    if dest.is_symlink() and dest.resolve() == PLUGIN_SOURCE:
        return dest
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.exists():
        shutil.rmtree(dest)
    try:
        dest.symlink_to(PLUGIN_SOURCE, target_is_directory=True)
    except OSError:
        shutil.copytree(PLUGIN_SOURCE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@dataclass
class Launched:
    """A running App session and what it shows."""

    session: Any
    dataset: Any
    url: str
    view_name: str | None
    annotator: str
    server: subprocess.Popen | None = None
    mode: str = "label"
    queue: int = 0

    def close(self) -> None:
        """Close the session and stop the App server this launch started."""
        try:
            self.session.close()
        finally:
            if self.server is not None:
                stop_server(self.server)


def launch(
    manifest: str | os.PathLike,
    *,
    split: str | None = None,
    annotator: str | None = None,
    port: int | None = None,
    address: str = "localhost",
    root: str | os.PathLike | None = None,
    workspace: Workspace | None = None,
    server_timeout: float = 240.0,
    mode: str = "label",
    sample: int | None = None,
    seed: int = 0,
) -> Launched:
    """Sync the manifest's App dataset, open the annotator's own session and start their App.

    The annotator (default: ``$USER``) labels in their own copy of the dataset
    (:mod:`fercurate.annotate.session`), on an App server of their own that knows only them, so
    two annotators' launches never mix up who labelled what. The App opens on the queue of
    ``mode`` (``label``, ``second-pass`` with ``sample`` faces chosen by ``seed``, or
    ``adjudicate``), or the whole split when that queue is empty.
    """
    who = (annotator or identity.default_annotator()).strip()
    if not who:
        raise InputError("no annotator name: pass --annotator NAME")
    ws = workspace or Workspace.current()
    manifest_path = ws.resolve_manifest(manifest)
    base = ensure_dataset(manifest_path, split=split, workspace=ws, root=root)
    opened = open_session(base, manifest_path, annotator=who, mode=mode, split=split, sample=sample, seed=seed,
                          workspace=ws, root=root)
    ds = opened.dataset
    install_plugin()
    fo = connect()
    view, view_name = _start_view(ds, split, bool(opened.queue))
    port = port or network.free_port()
    server = start_server(port, address, timeout=server_timeout, annotator=who)
    try:
        session = fo.launch_app(ds, view=view, remote=True, port=port, address=address, auto=False)
    except Exception as exc:  # noqa: BLE001 - report any session failure as one line
        stop_server(server)
        raise FercurateError(f"the FiftyOne App could not start on {address}:{port} ({exc})") from exc
    _quiet_attached_service(port)
    return Launched(session, ds, f"http://{address}:{port}/", view_name, who, server, mode, len(opened.queue))


def _quiet_attached_service(port: int) -> None:
    """Mark FiftyOne's ServerService for ``port`` as having nothing to stop.

    ``launch_app`` found our server running, so its service attached without a child process; at
    exit its ``__del__`` would call ``stop()`` on that missing child and print an "Exception ignored
    in Service.__del__" traceback. Our own :func:`stop_server` stops the server.
    """
    import fiftyone.core.session.session as fos_session

    service = getattr(fos_session, "_server_services", {}).get(port)
    if service is not None and getattr(service, "child", None) is None:
        service._disabled = True


def _start_view(ds: "fo.Dataset", split: str | None, has_queue: bool) -> tuple["fo.DatasetView", str | None]:
    """The session's queue when it has faces, else everything (within ``split``)."""
    from fiftyone import ViewField as F

    if has_queue:
        return ds.load_saved_view(QUEUE_VIEW), QUEUE_VIEW
    return (ds.match(F("split") == split) if split else ds.view()), None


def start_server(
    port: int, address: str = "localhost", timeout: float = 240.0, annotator: str | None = None
) -> subprocess.Popen:
    """Start the FiftyOne App server ourselves and wait until it answers (up to ``timeout`` s).

    ``fo.launch_app`` gives its own server only 60 s to bind, which a busy machine can exceed;
    started here, the server gets as long as it needs and ``launch_app`` attaches to it. It uses
    the MongoDB this process started (``connect()`` must have run). Its output goes to a log file
    whose tail is shown if it dies. A watchdog in the server (:mod:`fercurate.annotate.app_server`)
    stops it when this process dies, by any signal. ``annotator`` is the only person this server
    labels for (``$FERCURATE_APP_ANNOTATOR`` in the server, read by the plugin).
    """
    import fiftyone.constants as foc

    log = tempfile.NamedTemporaryFile(prefix="fercurate-app-", suffix=".log", delete=False)
    # Through the watchdog wrapper: the server exits when this process dies, even by kill -9.
    cmd = [sys.executable, "-m", "fercurate.annotate.app_server", "--parent", str(os.getpid()), "--",
           "--port", str(port), "--address", address]
    here = str(Path(__file__).resolve().parents[2])  # this copy of fercurate, whatever the server's cwd
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    env.pop(identity.APP_ANNOTATOR_ENV, None)
    if annotator:
        env[identity.APP_ANNOTATOR_ENV] = annotator
    proc = subprocess.Popen(cmd, cwd=foc.SERVER_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    atexit.register(stop_server, proc)  # never leave a server behind when the caller exits
    url = f"http://{address}:{port}/fiftyone"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = Path(log.name).read_text(errors="replace").strip().splitlines()[-3:]
            raise FercurateError(f"the FiftyOne App server exited (code {proc.returncode}): {' | '.join(tail)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.5)
    stop_server(proc)
    raise FercurateError(f"the FiftyOne App server did not answer on {url} within {timeout:.0f} s (log: {log.name})")


def stop_server(proc: subprocess.Popen) -> None:
    """Terminate a server started by :func:`start_server` (and wait for it)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


__all__ = [
    "PLUGIN_NAME",
    "PLUGIN_SOURCE",
    "Launched",
    "install_plugin",
    "launch",
    "plugins_dir",
    "start_server",
    "stop_server",
]
