"""Every command of the CLI documents itself: ``--help`` works and shows a runnable example."""

from __future__ import annotations

import pytest
from typer.main import get_command
import os

from typer.testing import CliRunner

from fercurate.cli import app


def _leaf_commands() -> list[list[str]]:
    out: list[list[str]] = []

    def walk(cmd, path: list[str]) -> None:  # noqa: ANN001 - a click command or group
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            out.append(path)

    walk(get_command(app), [])
    return out


COMMANDS = _leaf_commands()


def test_the_cli_has_every_documented_command() -> None:
    names = {" ".join(c) for c in COMMANDS}
    for expected in ("demo", "report", "ingest ferplus", "pose", "subsets build", "annotate launch",
                     "synth mask", "train", "eval", "leaderboard", "quality dups", "import-ran-lists", "info"):
        assert expected in names


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_help_shows_an_example(path: list[str]) -> None:
    res = CliRunner().invoke(app, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert f"Example: fercurate {' '.join(path)}" in " ".join(res.output.split())


def test_max_pixels_holds_for_one_command_only(tmp_path, monkeypatch) -> None:
    """``fercurate --max-pixels N cmd`` run in-process (the demo, a notebook) leaves the limit as it was."""
    from fercurate.images import MAX_PIXELS_ENV, max_pixels

    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    res = CliRunner().invoke(app, ["--max-pixels", "1000", "info", "-w", str(tmp_path)])
    assert res.exit_code != 0 or res.output  # the command ran (an empty workspace is an error line)
    assert MAX_PIXELS_ENV not in os.environ and max_pixels() == 50_000_000
    monkeypatch.setenv(MAX_PIXELS_ENV, "2000")
    CliRunner().invoke(app, ["--max-pixels", "1000", "info", "-w", str(tmp_path)])
    assert os.environ[MAX_PIXELS_ENV] == "2000"
