"""Where fercurate keeps its outputs: a workspace folder with ``manifests/``, ``annotations/`` and ``runs/``.

The workspace is the current directory unless ``FERCURATE_WORKSPACE`` or an explicit path says
otherwise, so that ``fercurate annotate pull ferplus`` can find ``manifests/ferplus.parquet``.
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


def layer_path(manifest_path: str | os.PathLike, layer: str) -> Path:
    """Path of a layer beside its manifest: ``manifests/ferplus.parquet`` -> ``manifests/ferplus.<layer>.parquet``."""
    manifest_path = Path(manifest_path)
    return manifest_path.with_name(f"{manifest_name(manifest_path)}.{layer}.parquet")


def manifest_name(manifest_path: str | os.PathLike) -> str:
    """The manifest's name: its file name without ``.parquet``."""
    name = Path(manifest_path).name
    return name[: -len(".parquet")] if name.endswith(".parquet") else name
