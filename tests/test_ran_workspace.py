"""Training takes its workspace as an argument: it never reads or sets ``$FERCURATE_WORKSPACE`` and works from any folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fixtures_ran import make_toy_manifest
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.ran.checkpoint import load_checkpoint
from fercurate.ran.config import TrainConfig
from fercurate.ran.train import train

KEY = "FERCURATE_WORKSPACE"


class _WatchedEnviron(dict):
    """``os.environ`` stand-in that records every read or write of the workspace variable."""

    def __init__(self, *args, **kw) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kw)
        self.touched: list[str] = []

    def _note(self, key: object, how: str) -> None:
        if key == KEY:
            self.touched.append(how)

    def __getitem__(self, key):  # noqa: ANN001, ANN204
        self._note(key, "read")
        return super().__getitem__(key)

    def get(self, key, default=None):  # noqa: ANN001, ANN201
        self._note(key, "read")
        return super().get(key, default)

    def __contains__(self, key) -> bool:  # noqa: ANN001
        self._note(key, "read")
        return super().__contains__(key)

    def __setitem__(self, key, value) -> None:  # noqa: ANN001
        self._note(key, "write")
        super().__setitem__(key, value)

    def pop(self, key, *default):  # noqa: ANN001, ANN002, ANN201
        self._note(key, "write")
        return super().pop(key, *default)


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, _WatchedEnviron]]:
    """A workspace with a toy manifest; the current folder and $FERCURATE_WORKSPACE both point elsewhere."""
    ws = tmp_path / "ws"
    make_toy_manifest(ws, size=24, per_class={"train": 2, "val": 1, "test": 1})
    decoy = tmp_path / "decoy"
    (decoy / "manifests").mkdir(parents=True)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    watched = _WatchedEnviron(os.environ, **{KEY: str(decoy)})
    monkeypatch.setattr(os, "environ", watched)
    torch.set_num_threads(1)
    yield ws, watched
    assert not (decoy / "cache").exists() and not (decoy / "runs").exists(), "wrote into the env's workspace"
    assert not any(cwd.iterdir()), "wrote into the current folder"


def test_train_with_an_explicit_workspace_never_touches_the_env(elsewhere) -> None:  # noqa: ANN001
    ws, watched = elsewhere
    cfg = TrainConfig(manifest="toy", out=str(ws / "runs" / "r"), subset=None, epochs=1, batch_size=4, input_size=24,
                      face_size=24, decode_workers=1, save_every_min=0, val_splits=["val"])
    res = train(cfg, workspace=ws, echo=lambda s: None)
    assert watched.touched == [], f"FERCURATE_WORKSPACE was {watched.touched}"
    assert watched[KEY].endswith("decoy")
    state = load_checkpoint(res.checkpoint)
    assert Path(state["manifest"]["path"]) == (ws / "manifests" / "toy.parquet").resolve()
    assert list((ws / "cache" / "faces").glob("*.npy")), "the face cache belongs in the given workspace"


def test_train_cli_passes_workspace_down_without_setting_the_env(elsewhere) -> None:  # noqa: ANN001
    ws, watched = elsewhere
    res = CliRunner().invoke(app, ["train", "--workspace", str(ws), "--manifest", "toy", "--epochs", "1",
                                   "--batch-size", "4", "--input-size", "24", "--workers", "1",
                                   "--save-every-min", "0"])
    assert res.exit_code == 0, res.output
    assert "write" not in watched.touched and watched[KEY].endswith("decoy")
    assert (ws / "runs" / "ran-toy" / "ran.pt").exists(), "default --out is runs/<arch>-<manifest> in the workspace"
