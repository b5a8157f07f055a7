"""fercurate's own MongoDB per workspace: separate servers, reuse across processes, no stray joins.

Each workspace here gets a real ``mongod`` (FiftyOne's bundled binary) started by fercurate; the
FiftyOne side runs in real subprocesses, as each process can hold only one database connection.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pymongo
import pytest

from fercurate.annotate.database import HOME_ENV, OWNED_ENV, find_mongod, running_database, stop_database
from fercurate.workspace import Workspace

PROBE = """
import json, sys
from fercurate.annotate.database import connect, running_database
fo = connect()
if len(sys.argv) > 1 and sys.argv[1] not in fo.list_datasets():
    fo.Dataset(sys.argv[1], persistent=True)
db = running_database()
print(json.dumps({"uri": fo.config.database_uri, "pid": db.pid if db else None, "datasets": fo.list_datasets()}))
"""


def _user_env(ws: Path) -> dict[str, str]:
    """The environment of a user in workspace ``ws``: no test-run database, no inherited URI."""
    env = {k: v for k, v in os.environ.items()
           if k not in (HOME_ENV, OWNED_ENV, "FIFTYONE_DATABASE_URI", "FIFTYONE_PRIVATE_DATABASE_PORT")}
    return {**env, "FERCURATE_WORKSPACE": str(ws)}


def _probe(ws: Path, create: str | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, *([create] if create else [])], env=_user_env(ws), cwd=ws,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def user_workspaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two workspaces whose own databases are stopped after the test."""
    monkeypatch.delenv(HOME_ENV, raising=False)
    made = [tmp_path / "ws-a", tmp_path / "ws-b"]
    for ws in made:
        ws.mkdir()
    yield made
    for ws in made:
        stop_database(Workspace(ws))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"


def test_two_workspaces_get_their_own_databases_and_a_second_process_reuses_one(user_workspaces: list[Path]) -> None:
    ws_a, ws_b = user_workspaces
    a = _probe(ws_a, create="made-in-a")
    b = _probe(ws_b, create="made-in-b")
    assert a["uri"] != b["uri"] and a["uri"].startswith("mongodb://127.0.0.1:")
    assert "made-in-a" in a["datasets"] and "made-in-a" not in b["datasets"]
    assert "made-in-b" not in a["datasets"]
    assert _alive(a["pid"]) and _alive(b["pid"])  # both servers run at once
    state = json.loads((ws_a / ".fiftyone" / "mongod.json").read_text())
    assert state["uri"] == a["uri"] and state["pid"] == a["pid"]
    assert (ws_a / ".fiftyone" / "db").is_dir()

    again = _probe(ws_a)  # a second fercurate process of workspace A: the same server, its data
    assert again["uri"] == a["uri"] and again["pid"] == a["pid"] and "made-in-a" in again["datasets"]

    stopped = stop_database(Workspace(ws_a))
    assert stopped is not None and stopped.pid == a["pid"] and not _alive(a["pid"])
    assert not (ws_a / ".fiftyone" / "mongod.json").exists()
    restarted = _probe(ws_a)  # a fresh server on the same data folder keeps the dataset
    assert restarted["pid"] != a["pid"] and "made-in-a" in restarted["datasets"]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_an_unrelated_mongod_on_the_default_port_is_never_joined(user_workspaces: list[Path], tmp_path: Path) -> None:
    if not _port_free(27017):
        pytest.skip("port 27017 is taken on this machine")
    ws, _ = user_workspaces
    other = tmp_path / "someone-elses-db"
    other.mkdir()
    stranger = subprocess.Popen([str(find_mongod()), "--dbpath", str(other), "--port", "27017", "--bind_ip", "127.0.0.1",
                                 "--nounixsocket", "--logpath", str(tmp_path / "stranger.log")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = pymongo.MongoClient("mongodb://127.0.0.1:27017/", serverSelectionTimeoutMS=30_000)
    try:
        client.admin.command("ping")
        # A state file left pointing at the stranger (say our server died and it took the port) is not trusted.
        home = ws / ".fiftyone"
        home.mkdir()
        (home / "mongod.json").write_text(json.dumps({"pid": stranger.pid, "port": 27017}))
        assert running_database(Workspace(ws)) is None

        mine = _probe(ws, create="mine")
        assert ":27017/" not in mine["uri"] and mine["pid"] != stranger.pid
        assert "fiftyone" not in client.list_database_names()  # nothing was written to the stranger
    finally:
        client.close()
        stranger.terminate()
        stranger.wait(timeout=30)


def test_cli_database_shows_then_stops_the_workspaces_server(user_workspaces: list[Path]) -> None:
    ws, _ = user_workspaces
    exe = Path(sys.executable).with_name("fercurate")
    shown = subprocess.run([str(exe), "annotate", "database"], env=_user_env(ws), cwd=ws, capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    uri, pid = shown.stdout.split()[0], int(shown.stdout.split()[2])
    assert uri.startswith("mongodb://127.0.0.1:") and _alive(pid) and str(ws / ".fiftyone" / "db") in shown.stdout
    stopped = subprocess.run([str(exe), "annotate", "database", "--stop"], env=_user_env(ws), cwd=ws,
                             capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0 and stopped.stdout.strip() == f"stopped mongod {pid} ({uri})", stopped.stderr
    assert not _alive(pid)


def test_two_processes_starting_at_once_share_one_server(user_workspaces: list[Path]) -> None:
    ws, _ = user_workspaces
    procs = [subprocess.Popen([sys.executable, "-c", PROBE], env=_user_env(ws), cwd=ws, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    seen = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert seen[0]["uri"] == seen[1]["uri"] and seen[0]["pid"] == seen[1]["pid"]  # the lock let one start it


def test_the_workspace_database_stops_after_its_last_user_exits_unless_kept(user_workspaces: list[Path]) -> None:
    """As FiftyOne's own database does: no mongod is left behind by commands that have all exited."""
    import signal
    import time

    ws, _ = user_workspaces
    env = {**_user_env(ws), "FERCURATE_DATABASE_LINGER": "1"}  # (default 15 s)
    exe = Path(sys.executable).with_name("fercurate")

    state = ws / ".fiftyone" / "mongod.json"

    def stopped_within(pid: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while (_alive(pid) or state.exists()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return not _alive(pid) and not state.exists()

    shown = subprocess.run([str(exe), "annotate", "database"], env=env, cwd=ws, capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr
    pid = int(shown.stdout.split()[2])
    assert stopped_within(pid, 20), "mongod still runs after the only command using it exited"
    assert "stops 1 s after the last fercurate command using it" in shown.stdout

    # while another process uses it, it runs on; that process's kill -9 ends its use too
    holder = subprocess.Popen([sys.executable, "-c", "from fercurate.annotate.database import ensure_database\n"
                               "print(ensure_database().pid, flush=True)\nimport sys; sys.stdin.read()"],
                              env=env, cwd=ws, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pid = int(holder.stdout.readline())
    time.sleep(4)
    assert _alive(pid)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert stopped_within(pid, 20)

    kept = subprocess.run([str(exe), "annotate", "database", "--keep"], env=env, cwd=ws, capture_output=True,
                          text=True, timeout=120)
    assert kept.returncode == 0 and "kept until 'fercurate annotate database --stop'" in kept.stdout, kept.stderr
    pid = int(kept.stdout.split()[2])
    time.sleep(4)
    assert _alive(pid)
    stop = subprocess.run([str(exe), "annotate", "database", "--stop"], env=env, cwd=ws, capture_output=True,
                          text=True, timeout=120)
    assert stop.returncode == 0 and not _alive(pid), stop.stderr


ISOLATED = """
import json, sys
from fercurate.annotate.database import annotator_database, connect
fo = connect(database=annotator_database(sys.argv[1]))
fo.Dataset(f"made-by-{sys.argv[1]}", persistent=True)
print(json.dumps({"db": fo.config.database_name, "datasets": fo.list_datasets()}))
"""


def test_each_annotator_has_a_database_of_their_own_on_the_workspace_server(user_workspaces: list[Path]) -> None:
    from fercurate.annotate.database import annotator_database

    ws, _ = user_workspaces
    seen = {}
    for who in ("alice", "bob"):
        proc = subprocess.run([sys.executable, "-c", ISOLATED, who], env=_user_env(ws), cwd=ws, capture_output=True,
                              text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr
        seen[who] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["alice"] == {"db": "fiftyone-annotator-alice", "datasets": ["made-by-alice"]}
    assert seen["bob"] == {"db": "fiftyone-annotator-bob", "datasets": ["made-by-bob"]}  # alice's is not listed
    assert "made-by-alice" not in _probe(ws)["datasets"]  # nor in the workspace's main database
    # names MongoDB cannot take, or would fold together, get a database each
    odd = {annotator_database(n) for n in ("Alice", "alice", "a.b", "a_b", "x" * 80)}
    assert len(odd) == 5 and all(len(n) <= 63 and "." not in n for n in odd)
