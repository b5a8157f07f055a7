"""Every command of the CLI documents itself: ``--help`` works and shows a runnable example."""

from __future__ import annotations

import pytest
from typer.main import get_command
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
