"""The persistent FiftyOne dataset behind the occlusion App, built from a manifest and its layers.

One dataset per manifest (``fercurate-<manifest name>``), keyed by ``sample_id`` so that re-running
:func:`ensure_dataset` adds what is new and refreshes what changed (label, split, pose, current
occlusion labels, suggestions) but never duplicates a sample and never touches the ``occ:*`` tags
people set in the App (those are the labels ``pull`` has yet to collect).

Sample fields (all filterable and sortable in the App sidebar):

==================================  =============================================================
``sample_id``                       the manifest's stable id (unique index)
``label``                           expression label (Classification)
``split``, ``source_split``         the manifest's split and the dataset's own split name
``yaw``, ``pitch``, ``roll``        head pose in degrees, when ``manifests/<name>.pose.parquet``
``pose_max``, ``pose_failure``      ``max(|yaw|, |pitch|)`` (the Pose-T rule) and why pose failed
``occlusion``                       current occlusion types (human > official), e.g. ``["glasses|mask"]``
``occlusion_source``                ``human`` / ``official`` / None (unlabelled)
``occlusion_annotator(s)``          who gave the current label / every person who labelled it
``occlusion_conflict``              True when two people's latest labels differ
``occ_score``, ``occ_suggested``    automatic occlusion score and pre-filled types (to confirm)
``occ_by``, ``occ_at``              who pressed a labelling button in the App, and when
==================================  =============================================================

The saved views the labelling workflow opens, and :func:`~fercurate.annotate.views.add_saved_view` for
other engineers' own samples, are in :mod:`fercurate.annotate.views`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fercurate.annotate import views
from fercurate.annotate.database import connect, database_home
from fercurate.annotations import LABEL_SOURCES, latest_labels, read_events
from fercurate.compat import moved_module
from fercurate.errors import InputError
from fercurate.ingest.files import existing_files
from fercurate.layers import read_layer
from fercurate.locks import locked
from fercurate.manifest import Manifest, read_manifest
from fercurate.progress import progress
from fercurate.schema import POSE_LAYER_SCHEMA
from fercurate.workspace import Workspace, layer_path
from fercurate.workspace import manifest_name as name_of_manifest

if TYPE_CHECKING:
    import fiftyone as fo

DATASET_PREFIX = "fercurate-"
INFO_KEY = "fercurate"
# In an annotator's own dataset (fercurate.annotate.session): whose it is, and the shared dataset it copies.
OWNER_KEY = "owner"
BASE_KEY = "base_dataset"
SUGGEST_LAYER = "occlusion_suggest"
# The standard saved views and add_saved_view moved to fercurate.annotate.views; these old names still import.
__getattr__ = moved_module(__name__, "fercurate.annotate.views")
_ADD_BATCH = 2000
# Field name -> FiftyOne field type name (and list subfield), declared up front so empty values work.
FIELDS: dict[str, tuple[str, str | None]] = {
    "sample_id": ("StringField", None),
    "label": ("Classification", None),
    "split": ("StringField", None),
    "source_split": ("StringField", None),
    "occlusion": ("ListField", "StringField"),
    "occlusion_source": ("StringField", None),
    "occlusion_annotator": ("StringField", None),
    "occlusion_annotators": ("ListField", "StringField"),
    "occlusion_conflict": ("BooleanField", None),
    "occ_score": ("FloatField", None),
    "occ_suggested": ("ListField", "StringField"),
    "occ_by": ("StringField", None),
    "occ_at": ("DateTimeField", None),
    "occ_synced": ("ListField", "StringField"),
    "occ_synced_at": ("DateTimeField", None),
}
POSE_FIELDS: dict[str, tuple[str, str | None]] = {
    "yaw": ("FloatField", None),
    "pitch": ("FloatField", None),
    "roll": ("FloatField", None),
    "pose_max": ("FloatField", None),
    "pose_failure": ("StringField", None),
}


def dataset_name(manifest_name: str) -> str:
    """The FiftyOne dataset name for a manifest: ``ferplus`` -> ``fercurate-ferplus``."""
    return f"{DATASET_PREFIX}{manifest_name}"


def suggestion_layer_path(manifest_path: str | os.PathLike) -> Path:
    """``manifests/<name>.occlusion_suggest.parquet``: the automatic occlusion scores."""
    return layer_path(manifest_path, SUGGEST_LAYER)


def _owner(fo: Any, name: str) -> str | None:
    """The manifest path a fercurate App dataset was built from."""
    return (fo.load_dataset(name).info.get(INFO_KEY) or {}).get("manifest_path")


def _is_copy(fo: Any, name: str) -> bool:
    """An annotator's own copy of a manifest's dataset (not the shared one)."""
    return BASE_KEY in (fo.load_dataset(name).info.get(INFO_KEY) or {})


def _resolved(path: str | os.PathLike) -> str:
    return str(Path(path).resolve())


def find_dataset_name(fo: Any, manifest_name: str, manifest_path: str | os.PathLike) -> str | None:
    """The existing App dataset built from ``manifest_path``, if any.

    Usually ``fercurate-<name>``; when another workspace's manifest of the same name already owns
    that, the dataset carries a short hash of the path (``fercurate-<name>-1a2b3c4d``).
    """
    target = _resolved(manifest_path)
    base = dataset_name(manifest_name)
    for cand in sorted(fo.list_datasets(glob_patt=f"{base}*")):
        if (cand == base or cand.startswith(base + "-")) and _owner(fo, cand) == target and not _is_copy(fo, cand):
            return cand
    return None


def _new_dataset_name(fo: Any, manifest_name: str, manifest_path: str | os.PathLike) -> str:
    base = dataset_name(manifest_name)
    if not fo.dataset_exists(base):
        return base
    owner = _owner(fo, base)
    if owner is None or not Path(owner).exists():  # the manifest moved: adopt its old dataset
        return base
    return f"{base}-{hashlib.sha1(_resolved(manifest_path).encode()).hexdigest()[:8]}"


def load_dataset(name: str, workspace: Workspace | None = None) -> "fo.Dataset":
    """The App dataset of manifest ``name`` in ``workspace`` (or an App dataset's own name).

    Raises InputError naming the known fercurate datasets when there is none.
    """
    ws = workspace or Workspace.current()
    fo = connect(ws)
    if name.endswith(".parquet"):
        manifest_path, mname = Path(name), name_of_manifest(name)
    else:
        manifest_path, mname = ws.manifest_path(name), name
    if manifest_path.exists():
        found = find_dataset_name(fo, mname, manifest_path)
        if found:
            return fo.load_dataset(found)
    elif fo.dataset_exists(name) and name.startswith(DATASET_PREFIX):
        return fo.load_dataset(name)
    existing = fo.list_datasets(glob_patt=f"{DATASET_PREFIX}*")
    known = ", ".join(sorted(existing)) if existing else "none yet"
    raise InputError(
        f"no App dataset for {name!r} in workspace {ws.root} (App datasets: {known}); "
        "create it with 'fercurate annotate launch MANIFEST'"
    )


def ensure_dataset(
    manifest_path: str | os.PathLike,
    split: str | Sequence[str] | None = None,
    workspace: Workspace | None = None,
    *,
    root: str | os.PathLike | None = None,
    name: str | None = None,
    meta: dict[str, Any] | None = None,
) -> "fo.Dataset":
    """Create or update the persistent App dataset of a manifest; returns it.

    ``split`` limits which rows are *added* (rows added earlier stay). ``name`` overrides the App
    dataset's name (default ``fercurate-<manifest name>``, see :func:`find_dataset_name`); ``meta``
    is merged into its fercurate info before its fields are filled (an annotator's own dataset says
    whose it is, so that it shows nobody else's labels). Idempotent: samples are keyed
    by ``sample_id``; a re-run adds new rows, refreshes label/split/pose/occlusion/suggestion fields
    and the standard saved views, and leaves App tags (unpulled labels) alone. Several processes may
    call it at once (two annotators launching together): it holds :func:`datasets_lock`. Raises
    InputError when the manifest's images are missing (naming the first one) and DatabaseError when
    MongoDB can't start.
    """
    ws = workspace or Workspace.current()
    manifest = read_manifest(ws.resolve_manifest(manifest_path), root=root)
    splits = [split] if isinstance(split, str) else list(split or [])
    chosen = manifest.where_split(*splits) if splits else manifest
    _check_images(chosen)
    fo = connect(ws)
    with datasets_lock(ws):
        ds = _open_or_create(fo, name, manifest, meta)
        present = set(ds.distinct("sample_id"))
        new = np.array([sid not in present for sid in chosen.table.column("sample_id").to_pylist()], dtype=bool)
        if new.any():
            _add_samples(fo, ds, chosen.select(new))
        refresh_fields(ds, manifest, ws)
        views.ensure_standard_views(ds)
    return ds


def datasets_lock(workspace: Workspace):  # noqa: ANN201 - a context manager (fercurate.locks.locked)
    """The lock held while App datasets of the workspace's database are created or refreshed.

    Creating a dataset, adding its samples and saving its views are many database calls; two
    launches at the same moment would otherwise both create one dataset (duplicate ``sample_id``)
    or save views over each other. Re-entrant within a process.
    """
    return locked(database_home(workspace) / "app-datasets")


def _check_images(manifest: Manifest) -> None:
    rel = manifest.table.column("image_path").to_pylist()
    found = existing_files(manifest.root, rel)
    if found.all():
        return
    missing = np.flatnonzero(~found)
    first = int(missing[0])
    raise InputError(
        f"{manifest.path}: {len(missing):,} of {len(rel):,} images are missing under {manifest.root}, "
        f"e.g. row {first} {manifest.root / rel[first]}; pass --root to point at the dataset's folder"
    )


def _open_or_create(fo: Any, name: str | None, manifest: Manifest, extra: dict[str, Any] | None = None) -> "fo.Dataset":
    mpath = _resolved(manifest.path)
    if name is None:
        name = find_dataset_name(fo, manifest.name, mpath) or _new_dataset_name(fo, manifest.name, mpath)
    if fo.dataset_exists(name):
        ds = fo.load_dataset(name)
        info = dict(ds.info.get(INFO_KEY) or {})
        old = info.get("manifest_path")
        if old and old != mpath and Path(old).exists():
            raise InputError(f"App dataset {name!r} was built from {old}, not {mpath}; choose another name")
    else:
        ds = fo.Dataset(name, persistent=True)
        info = {}
    declare_fields(ds, FIELDS)
    ds.create_index("sample_id", unique=True)
    _app_defaults(fo, ds)
    info.update({"manifest_path": mpath, "manifest": manifest.name, "dataset": manifest.dataset, **(extra or {})})
    ds.info[INFO_KEY] = info
    ds.save()
    return ds


def _app_defaults(fo: Any, ds: "fo.Dataset") -> None:
    """Show tags, label and occlusion on the grid tiles and group the sidebar, unless the user has
    already arranged the App (their arrangement is kept)."""
    if ds.app_config.active_fields is None:
        ds.app_config.active_fields = fo.ActiveFields(paths=["tags", "label", "occlusion", "occ_suggested"])
    if not ds.app_config.sidebar_groups:
        groups = fo.DatasetAppConfig.default_sidebar_groups(ds)
        occ = [f for f in FIELDS if f.startswith("occ")]
        pose = list(POSE_FIELDS)
        for group in groups:
            group.paths = [p for p in group.paths if p not in occ and p not in pose]
        groups.insert(1, fo.SidebarGroupDocument(name="occlusion", paths=occ, expanded=True))
        groups.insert(2, fo.SidebarGroupDocument(name="pose", paths=pose, expanded=False))
        ds.app_config.sidebar_groups = groups
    ds.save()


def _add_samples(fo: Any, ds: "fo.Dataset", rows: Manifest) -> None:
    """Insert the manifest rows as samples, with their label and split (so the refresh has less to do)."""
    root = rows.root
    cols = rows.table.select(["sample_id", "image_path", "split", "source_split", "label"]).to_pydict()
    n = len(cols["sample_id"])
    batches = range(0, n, _ADD_BATCH)
    for start in progress(batches, total=len(batches), desc=f"adding samples to {ds.name}", unit="batch"):
        samples = [
            fo.Sample(
                filepath=str(root / cols["image_path"][i]),
                sample_id=cols["sample_id"][i],
                split=cols["split"][i],
                source_split=cols["source_split"][i],
                label=fo.Classification(label=cols["label"][i]) if cols["label"][i] is not None else None,
                occ_synced=[],
            )
            for i in range(start, min(start + _ADD_BATCH, n))
        ]
        ds.add_samples(samples, progress=False)


def declare_fields(ds: "fo.Dataset", fields: dict[str, tuple[str, str | None]]) -> None:
    """Add the fields ``ds`` lacks, with explicit types (FiftyOne can't infer a type from all-None)."""
    import fiftyone as fo

    schema = ds.get_field_schema()
    for field, (kind, sub) in fields.items():
        if field in schema:
            continue
        if kind == "Classification":
            ds.add_sample_field(field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
        elif sub:
            ds.add_sample_field(field, getattr(fo, kind), subfield=getattr(fo, sub))
        else:
            ds.add_sample_field(field, getattr(fo, kind))


def info(ds: "fo.Dataset") -> dict[str, Any]:
    """fercurate's entry in the dataset's info (manifest path, annotator, ...)."""
    return dict(ds.info.get(INFO_KEY) or {})


# --- fields ------------------------------------------------------------------------------------


REFRESH_PARTS: tuple[str, ...] = ("manifest", "pose", "occlusion", "suggestion")


def refresh_fields(
    ds: "fo.Dataset",
    manifest: Manifest,
    workspace: Workspace,
    parts: Collection[str] = REFRESH_PARTS,
) -> None:
    """Write label/split (``manifest``), ``pose``, ``occlusion`` and ``suggestion`` fields of ``ds``.

    Values come from the manifest and its layers joined on ``sample_id``; samples not in the
    manifest keep their fields (and tags) untouched. ``pull`` refreshes only ``occlusion``.
    """
    import fiftyone as fo

    unknown = set(parts) - set(REFRESH_PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)} (known: {REFRESH_PARTS})")
    ids, keys_db = ds.values(["sample_id", "id"])
    if not ids:
        return
    frame = pd.DataFrame({"sample_id": ids, "_id": keys_db})
    base = manifest.table.select(["sample_id", "split", "source_split", "label"]).to_pandas()
    for col in ("split", "label"):
        base[col] = base[col].astype(object)
    frame = frame.merge(base, on="sample_id", how="left")
    in_manifest = frame["split"].notna().to_numpy()  # samples not in this manifest: leave alone
    frame = frame[in_manifest]
    keys = frame["_id"].tolist()

    def put(field: str, values: list[Any], current_path: str | None = None, make: Any = None) -> None:
        """Write only the values that differ from what the dataset holds (re-launches are cheap)."""
        current = [c for c, keep in zip(ds.values(current_path or field), in_manifest) if keep]
        changed = {k: (make(v) if make and v is not None else v)
                   for k, v, c in zip(keys, values, current) if not _same(v, c)}
        if changed:
            ds.set_values(field, changed, key_field="id")

    if "manifest" in parts:
        put("label", _clean(frame["label"]), "label.label", lambda v: fo.Classification(label=v))
        put("split", _clean(frame["split"]))
        put("source_split", _clean(frame["source_split"]))
    pose = _pose_frame(manifest) if "pose" in parts else None
    if pose is not None:
        got = frame[["sample_id"]].merge(pose, on="sample_id", how="left")
        declare_fields(ds, POSE_FIELDS)
        for col in POSE_FIELDS:
            put(col, _clean(got[col]))
    if "occlusion" in parts:
        owner = info(ds).get(OWNER_KEY)  # an annotator's own dataset shows no one else's labels
        got = frame[["sample_id"]].merge(_occlusion_frame(manifest, workspace, owner), on="sample_id", how="left")
        put("occlusion", _lists(got["occlusion"]))
        put("occlusion_source", _clean(got["occlusion_source"]))
        put("occlusion_annotator", _clean(got["occlusion_annotator"]))
        put("occlusion_annotators", _lists(got["occlusion_annotators"]))
        put("occlusion_conflict", [v is True or v is np.True_ for v in got["occlusion_conflict"]])
        put("occ_suggested", _lists(got["occ_suggested"]))
    if "suggestion" in parts:
        got = frame[["sample_id"]].merge(_suggestion_frame(manifest, workspace), on="sample_id", how="left")
        put("occ_score", _clean(got["occ_score"]))


def _same(new: Any, old: Any) -> bool:
    if isinstance(new, float) and isinstance(old, float):
        return new == old or (np.isnan(new) and np.isnan(old))
    return new == old


def _clean(values: Any) -> list[Any]:
    if values is None:
        return []
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            out.append(None)
        elif isinstance(v, (np.floating,)):
            out.append(None if np.isnan(v) else float(v))
        else:
            out.append(v)
    return out


def _lists(values: pd.Series) -> list[list[str] | None]:
    return [list(v) if isinstance(v, (list, tuple, np.ndarray)) else None for v in values]


def _pose_frame(manifest: Manifest) -> pd.DataFrame | None:
    """The pose layer's angles per sample, or None when the manifest has no pose layer."""
    cols = ["sample_id", "yaw", "pitch", "roll", "pose_max", "pose_failure"]
    lp = layer_path(manifest.path, "pose") if manifest.path else None
    if lp is None or not lp.exists():
        return None
    need = ["sample_id", "yaw", "pitch", "roll", "failure"]
    table, _ = read_layer(lp, "pose", columns=need, schema=POSE_LAYER_SCHEMA)
    df = table.select(need).to_pandas().rename(columns={"failure": "pose_failure"})
    for c in ("yaw", "pitch", "roll"):
        df[c] = df[c].astype("float64")
    df["pose_max"] = np.maximum(df["yaw"].abs(), df["pitch"].abs())
    return df[cols]


def _occlusion_frame(manifest: Manifest, workspace: Workspace, owner: str | None = None) -> pd.DataFrame:
    """Current labels (suggestions excluded) plus every human annotator, per sample.

    With ``owner`` (an annotator's own dataset) people's labels other than the owner's, and
    adjudications, are left out, so that annotator labels blind.
    """
    cols = ["sample_id", "occlusion", "occlusion_source", "occlusion_annotator", "occlusion_annotators",
            "occlusion_conflict", "occ_suggested"]
    path = workspace.annotation_path(manifest.name)
    events = read_events(path)
    if owner is not None:
        people = pc.is_in(events.column("source"), value_set=pa.array(["human", "adjudication"]))
        events = events.filter(pc.or_(pc.invert(people), pc.equal(events.column("annotator"), owner)))
    if events.num_rows == 0:
        return pd.DataFrame(columns=cols)
    labels = latest_labels(events, source=LABEL_SOURCES)
    suggestions = latest_labels(events, source="suggestion")
    humans = latest_labels(events, source="human", per_annotator=True)  # withdrawn labels left out
    by_sample = humans.groupby("sample_id")["annotator"].agg(lambda s: sorted(set(s)))
    out = pd.DataFrame(
        {
            "sample_id": labels["sample_id"],
            "occlusion": labels["types"],
            "occlusion_source": labels["source"],
            "occlusion_annotator": labels["annotator"],
            "occlusion_conflict": labels["conflict"].astype(bool),
        }
    )
    out["occlusion_annotators"] = out["sample_id"].map(by_sample)
    sugg = pd.DataFrame({"sample_id": suggestions["sample_id"], "occ_suggested": suggestions["types"]})
    return out.merge(sugg, on="sample_id", how="outer")[cols]


def _suggestion_frame(manifest: Manifest, workspace: Workspace) -> pd.DataFrame:
    lp = suggestion_layer_path(manifest.path) if manifest.path else None
    if lp is None or not lp.exists():
        return pd.DataFrame(columns=["sample_id", "occ_score"])
    table, _ = read_layer(lp, SUGGEST_LAYER)
    df = table.select(["sample_id", "score"]).to_pandas().rename(columns={"score": "occ_score"})
    df["occ_score"] = df["occ_score"].astype("float64")
    return df


__all__ = [
    "DATASET_PREFIX",
    "dataset_name",
    "ensure_dataset",
    "info",
    "load_dataset",
    "refresh_fields",
    "suggestion_layer_path",
]
