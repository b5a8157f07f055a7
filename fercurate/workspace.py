"""Where fercurate keeps its outputs: a workspace folder with ``manifests/``, ``annotations/`` and ``runs/``.

A command's workspace is decided once, by :meth:`Workspace.choose`: the folder ``-w`` (or
``$FERCURATE_WORKSPACE``) names; else, for a manifest given by path, the workspace that manifest lives
in (the folder above its ``manifests/`` folder, else the manifest's own folder); else the current
folder. So ``fercurate annotate pull ferplus`` finds ``manifests/ferplus.parquet``, and a command on
``../data/ferplus.parquet`` writes its derived manifests, layers, subsets and annotations beside the
data, never into whatever folder it was started from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fercurate.errors import InputError


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def current(cls, root: str | os.PathLike | None = None) -> "Workspace":
        """The workspace at ``root``, else ``$FERCURATE_WORKSPACE``, else the current directory."""
        chosen = root or os.environ.get("FERCURATE_WORKSPACE") or os.getcwd()
        return cls(Path(chosen).resolve())

    @classmethod
    def choose(cls, root: str | os.PathLike | None = None, *, manifest: str | os.PathLike | None = None) -> "Workspace":
        """The one rule every command uses (see the module doc): ``root`` (``-w``) or ``$FERCURATE_WORKSPACE``;
        else the workspace of ``manifest`` when it is given by path; else the current folder."""
        if root or os.environ.get("FERCURATE_WORKSPACE") or manifest is None:
            return cls.current(root)
        path = manifest_file(manifest)
        if path is None:
            return cls.current()
        folder = path.resolve().parent
        return cls(folder.parent if folder.name == "manifests" else folder)

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def annotations(self) -> Path:
        return self.root / "annotations"

    @property
    def subsets(self) -> Path:
        return self.manifests / "subsets"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def manifest_path(self, name: str) -> Path:
        """Default path of the manifest called ``name`` (e.g. ``ferplus``)."""
        return self.manifests / f"{name}.parquet"

    def annotation_path(self, name: str, kind: str = "occlusion") -> Path:
        return self.annotations / f"{name}.{kind}.parquet"

    def resolve_manifest(self, name_or_path: str | os.PathLike) -> Path:
        """Accept a manifest path or a bare name and return an existing manifest path."""
        candidate = Path(name_or_path)
        if not candidate.is_absolute() and not candidate.exists() and (self.root / candidate).exists():
            candidate = self.root / candidate  # a path relative to the workspace, not the current folder
        if candidate.suffix == ".parquet" or candidate.exists():
            if not candidate.exists():
                raise InputError(f"{candidate}: manifest not found")
            return candidate
        path = self.manifest_path(str(name_or_path))
        if not path.exists():
            known = sorted(p.stem for p in self.manifests.glob("*.parquet") if p.stem.count(".") == 0)
            hint = f" (known: {', '.join(known)})" if known else f" (no manifests in {self.manifests})"
            raise InputError(f"no manifest named {name_or_path!r}{hint}")
        return path

    def manifest_names(self) -> list[str]:
        """Names of the manifests in this workspace (layers and rejects excluded)."""
        if not self.manifests.exists():
            return []
        return sorted(p.stem for p in self.manifests.glob("*.parquet") if "." not in p.stem)


def manifest_file(manifest: str | os.PathLike) -> Path | None:
    """``manifest`` as a file when it is given by path (an existing file, or a name ending in ``.parquet`` or
    holding a folder), None for a bare manifest name such as ``ferplus``."""
    text = os.fspath(manifest)
    path = Path(text)
    if path.is_file() or text.endswith(".parquet") or os.sep in text or (os.altsep and os.altsep in text):
        return path
    return None


def layer_path(manifest_path: str | os.PathLike, layer: str) -> Path:
    """Path of a layer beside its manifest: ``manifests/ferplus.parquet`` -> ``manifests/ferplus.<layer>.parquet``."""
    manifest_path = Path(manifest_path)
    return manifest_path.with_name(f"{manifest_name(manifest_path)}.{layer}.parquet")


def manifest_name(manifest_path: str | os.PathLike) -> str:
    """The manifest's name: its file name without ``.parquet``."""
    name = Path(manifest_path).name
    return name[: -len(".parquet")] if name.endswith(".parquet") else name
