"""Launching the FiftyOne App on an annotator's own dataset, with the packaged labelling plugin installed.

FiftyOne loads plugins from ``FIFTYONE_PLUGINS_DIR`` (``fo.config.plugins_dir``) when its server
starts, so :func:`install_plugin` links the plugin shipped inside this package there first. The
launcher decides the workspace once and hands it, with the annotator, to the App server it starts
(:mod:`fercurate.annotate.served`); the server uses the annotator's own database, so its App lists
only that person's datasets, and a port fixed per workspace and annotator, so the browser keeps the
App's layout from one launch to the next.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fercurate.annotate import identity, network
from fercurate.annotate.children import child_env
from fercurate.annotate.database import annotator_database, connect
from fercurate.annotate.session import QUEUE_VIEW, Session, open_session
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
    workspace: Workspace | None = None
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

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
    """Open the annotator's own session on the manifest and start their App.

    The annotator (default: ``$USER``) labels in their own dataset, in their own database
    (:mod:`fercurate.annotate.session`), on an App server of their own that knows only them and
    ``workspace`` (decided here, once; by default the current folder), so two annotators' launches
    never mix up who labelled what and labels always land in that workspace. The App opens on the
    queue of ``mode`` (``label``, ``second-pass`` with ``sample`` faces chosen by ``seed``, or
    ``adjudicate``), or the whole split when that queue is empty. ``port`` defaults to one fixed
    for this workspace and annotator (:func:`fercurate.annotate.network.stable_ports`). Call it
    in a process of its own: a process uses one FiftyOne database.
    """
    who = (annotator or identity.default_annotator()).strip()
    if not who:
        raise InputError("no annotator name: pass --annotator NAME")
    ws = workspace or Workspace.current()
    manifest_path = ws.resolve_manifest(manifest)
    started = datetime.now(timezone.utc)
    fo = connect(ws, database=annotator_database(who))
    _quiet_config_echo()
    install_plugin()  # before the server starts: it loads the plugins then

    def prepare() -> Session:  # while the App server starts (it takes longer)
        return open_session(None, manifest_path, annotator=who, mode=mode, split=split, sample=sample, seed=seed,
                            workspace=ws, root=root)

    server, port, opened = _serve(port, address, ws, who, server_timeout, prepare)
    ds = opened.dataset
    view, view_name = _start_view(ds, split, bool(opened.queue))
    try:
        with _quiet_session_log():
            session = fo.launch_app(ds, view=view, remote=True, port=port, address=address, auto=False)
    except Exception as exc:  # noqa: BLE001 - report any session failure as one line
        stop_server(server)
        raise FercurateError(f"the FiftyOne App could not start on {address}:{port} ({exc})") from exc
    _quiet_attached_service(port)
    return Launched(session, ds, f"http://{address}:{port}/", view_name, who, server, mode, len(opened.queue),
                    ws, started)


def _serve(
    port: int | None, address: str, ws: Workspace, who: str, timeout: float, prepare: Callable[[], Session]
) -> tuple[subprocess.Popen, int, Session]:
    """Start the App server on ``port``, else on this workspace and annotator's stable port (the next
    ones when taken, then any free one), and run ``prepare`` while it starts."""
    host = "127.0.0.1" if address == "localhost" else address
    if port:
        candidates = [port]
    else:
        candidates = [p for p in network.stable_ports(f"{ws.root}\0{who}") if network.port_is_free(p, host)]
        candidates.append(network.free_port(host))
    prepared = None
    for candidate in candidates:
        starting = _spawn_server(candidate, address, who, ws)
        if prepared is None:
            try:
                prepared = prepare()
            except BaseException:
                stop_server(starting.proc)
                raise
        try:
            return _wait_for_server(starting, timeout), candidate, prepared
        except FercurateError:
            if port or network.port_is_free(candidate, host):
                raise  # the server failed for another reason than a port taken meanwhile
    raise FercurateError(f"no free port for the App on {address}")


class _RemovedOptionEcho(logging.Filter):
    """Drops FiftyOne's "The `show_index` App config option has been removed ..." warnings that its own
    session causes: it serialises those removed options and warns when it reads them back, at every
    browser connection. A user who did set one still sees FiftyOne's warning once, at import."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "App config option has been removed" not in record.getMessage()


def _quiet_config_echo() -> None:
    log = logging.getLogger("fiftyone.core.config")
    if not any(isinstance(f, _RemovedOptionEcho) for f in log.filters):
        log.addFilter(_RemovedOptionEcho())


@contextlib.contextmanager
def _quiet_session_log() -> Iterator[None]:
    """Hide what ``fo.launch_app`` logs: the port-forwarding advice for a remote session (it names
    localhost:5151, not this App's address), "Connected to FiftyOne on port ..." and the first-run
    welcome; the launcher prints the App's URL itself. Warnings still show."""
    logs = [logging.getLogger(name) for name in ("fiftyone.core.session.session", "fiftyone.core.service")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)


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
    port: int,
    address: str = "localhost",
    timeout: float = 240.0,
    annotator: str | None = None,
    workspace: Workspace | None = None,
) -> subprocess.Popen:
    """Start the FiftyOne App server ourselves and wait until it answers (up to ``timeout`` s).

    ``fo.launch_app`` gives its own server only 60 s to bind, which a busy machine can exceed;
    started here, the server gets as long as it needs and ``launch_app`` attaches to it. It uses
    the MongoDB this process started (``connect()`` must have run). Its output goes to a log file
    whose tail is shown if it dies. A watchdog in the server (:mod:`fercurate.annotate.app_server`)
    stops it when this process dies, by any signal. ``annotator`` is the only person this server
    labels for and ``workspace`` where its labels go (:mod:`fercurate.annotate.served`, read by the
    plugin). The server uses this process's FiftyOne database (``$FIFTYONE_DATABASE_NAME``) and runs
    with FiftyOne's ``do_not_track`` on unless ``$FIFTYONE_DO_NOT_TRACK`` says otherwise (no
    analytics, and no cookie banner over the labelling page).
    """
    return _wait_for_server(_spawn_server(port, address, annotator, workspace), timeout)


@dataclass
class _Starting:
    """An App server process that may not answer yet."""

    proc: subprocess.Popen
    url: str
    log: Path


def _spawn_server(port: int, address: str, annotator: str | None, workspace: Workspace | None) -> _Starting:
    import fiftyone.constants as foc

    with tempfile.NamedTemporaryFile(prefix="fercurate-app-", suffix=".log", delete=False) as log:
        # Through the watchdog wrapper: the server exits when this process dies, even by kill -9.
        cmd = [sys.executable, "-m", "fercurate.annotate.app_server", "--parent", str(os.getpid())]
        if annotator and workspace is not None:
            cmd += ["--annotator", annotator, "--workspace", str(workspace.root)]
        cmd += ["--", "--port", str(port), "--address", address]
        env = child_env()
        env.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
        proc = subprocess.Popen(cmd, cwd=foc.SERVER_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    atexit.register(stop_server, proc)  # never leave a server behind when the caller exits
    return _Starting(proc, f"http://{address}:{port}/fiftyone", Path(log.name))


def _wait_for_server(starting: _Starting, timeout: float) -> subprocess.Popen:
    """Wait until a spawned server answers; a clear error (with its log's tail) when it dies or never does."""
    proc, url = starting.proc, starting.url
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = starting.log.read_text(errors="replace").strip().splitlines()[-3:]
            raise FercurateError(f"the FiftyOne App server exited (code {proc.returncode}): {' | '.join(tail)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.5)
    stop_server(proc)
    raise FercurateError(f"the FiftyOne App server did not answer on {url} within {timeout:.0f} s (log: {starting.log})")


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
