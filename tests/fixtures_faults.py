"""Helpers for the fault tests: a real full disk (a small tmpfs), real fercurate processes to interrupt."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A real filesystem of ``size`` (``mount -t tmpfs -o size=2m``) at ``folder``; skips where it can't be
    mounted (not root, no mount permission in the container)."""
    folder.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a real full disk needs root to mount a small tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the filesystem of ``folder`` up to ``leave`` free bytes."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize - leave
    if free > 0:
        with open(folder / "filler.bin", "wb") as fh:
            fh.write(b"\0" * free)


def fercurate(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``fercurate ARGS`` in its own process group (as a terminal runs it), output captured."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "FERCURATE_PROGRESS": "0", **(env or {})}
    code = "from fercurate.cli import main; main()"
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(check: Callable[[], bool], proc: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
    """Poll ``check`` until true (fails when ``proc`` ends first or the time runs out)."""
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"process ended first (code {proc.returncode}): {out[-800:]} {err[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)
