"""Layers: Parquet tables keyed by ``sample_id`` that sit beside a manifest (pose, duplicates, ...).

A layer never rewrites the manifest; its provenance (what made it, with which settings) is stored
in the Parquet metadata under the key ``fercurate.layer``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fercurate.atomic import atomic_path
from fercurate.errors import InputError
from fercurate.locks import locked

LAYER_META_KEY = b"fercurate.layer"


def write_layer(
    table: pa.Table,
    path: str | os.PathLike,
    *,
    layer: str,
    manifest: str,
    provenance: Mapping[str, Any] | None = None,
    sort: bool = True,
    before_replace: Callable[[], Any] | None = None,
) -> Path:
    """Atomically write a layer table (rows sorted by sample_id unless ``sort`` is false).

    The write holds the layer's lock (:mod:`fercurate.locks`), so it never interleaves with another
    process's read-merge-replace of the same file (subsets are layers and go through here).
    ``before_replace`` runs once the new layer is complete on disk and before it replaces the old one:
    what must be written with the layer (its label events) goes there, and if it fails the old layer
    stays, so the two never disagree.
    """
    if "sample_id" not in table.column_names:
        raise ValueError("a layer needs a sample_id column")
    if sort and table.num_rows:
        table = table.take(pc.sort_indices(table, sort_keys=[("sample_id", "ascending")]))
    meta = {"layer": layer, "manifest": manifest, "provenance": dict(provenance or {})}
    table = table.replace_schema_metadata(
        {LAYER_META_KEY: json.dumps(meta, sort_keys=True, default=str).encode()}
    )
    path = Path(path)
    with locked(path), atomic_path(path, suffix=".parquet.tmp") as tmp:
        pq.write_table(table, tmp, compression="zstd")
        if before_replace is not None:
            before_replace()
    return path


def read_layer(
    path: str | os.PathLike,
    layer: str | None = None,
    *,
    columns: Iterable[str] = (),
    schema: pa.Schema | None = None,
) -> tuple[pa.Table, dict[str, Any]]:
    """Read a layer and its metadata; checks it is the expected kind of layer when ``layer`` is given.

    ``columns`` must be there (those ``schema`` names are cast to its types), so a damaged layer or one
    from another tool is one InputError naming the file and what is wrong, never a KeyError later.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: layer not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
    raw = (table.schema.metadata or {}).get(LAYER_META_KEY)
    try:
        meta = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise InputError(f"{path}: damaged layer metadata ({LAYER_META_KEY.decode()} is not JSON: {exc})"
                         f"{_remake(layer)}") from exc
    if not isinstance(meta, dict):
        raise InputError(f"{path}: damaged layer metadata ({LAYER_META_KEY.decode()} is not a JSON object)"
                         f"{_remake(layer)}")
    if layer is not None and meta.get("layer") != layer:
        raise InputError(f"{path}: expected a {layer!r} layer, found {meta.get('layer')!r}")
    table = table.replace_schema_metadata(None)
    for name in columns:
        if name not in table.column_names:
            raise InputError(f"{path}: the {layer or 'layer'} lacks column {name!r}{_remake(layer)}")
        if schema is None or name not in schema.names:
            continue
        want = schema.field(name).type
        got = table.schema.field(name).type
        if got == want:
            continue
        try:
            cast = table.column(name).cast(want)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputError(f"{path}: column {name!r} of the {layer or 'layer'} is {got}, not {want}"
                             f"{_remake(layer)}") from exc
        table = table.set_column(table.schema.get_field_index(name), name, cast)
    return table, meta


# The command that makes each layer, for the hint on a damaged one.
_MADE_BY = {"pose": "fercurate pose", "official": "fercurate import-ran-lists", "subset": "fercurate subsets build",
            "synth": "fercurate synth", "dups": "fercurate quality dups", "noise": "fercurate quality noise",
            "nonface": "fercurate quality nonface", "hashes": "fercurate quality dups"}


def _remake(layer: str | None) -> str:
    command = _MADE_BY.get(layer or "")
    return f" (damaged or not written by fercurate; make it again with '{command}')" if command else " (damaged)"
