"""Subsets: named sets of a manifest's samples (Pose-30, Occlusion, official lists, ...) with provenance.

A subset is a layer file ``manifests/subsets/<manifest>-<subset>.parquet``: one row per member with
the rule that admitted it (``rule``, ``threshold``, ``source``, ``built_at`` and the value compared,
e.g. the pose angle), and the manifest it belongs to in its metadata, so ``fercurate eval --subset
pose45`` can find both.

Naming follows the papers: ``pose30`` / ``pose45`` / ``occlusion`` (and ``occlusion-upper`` ...) are
the RAN authors' official lists where imported (``official-*``); subsets fercurate computes carry a
suffix, ``pose45-estimated`` (the pose layer) and ``occlusion-labelled`` (labels from the App), so a
paper figure is only ever shown beside the list it was measured on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fercurate.annotations import LABEL_SOURCES, latest_labels, read_events
from fercurate.errors import InputError
from fercurate.layers import read_layer, write_layer
from fercurate.manifest import Manifest, read_manifest
from fercurate.workspace import Workspace, layer_path

SUBSET_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("threshold", pa.float64()),
        pa.field("value", pa.float64()),  # what was compared with the threshold (e.g. max |angle|)
        pa.field("source", pa.string()),
        pa.field("built_at", pa.timestamp("us", tz="UTC")),
    ]
)
# The official RAN lists, as imported by ``fercurate import-ran-lists`` (see fercurate.ingest.ran_lists).
OFFICIAL_LAYER = "official"
OFFICIAL_PREFIX = "official-"
OFFICIAL_RULE = "official RAN list: "
# Names a reader of the papers types: where the official list is imported they resolve to it
# (``pose45`` -> ``official-pose45``); fercurate's own subsets carry a suffix (``pose45-estimated``,
# ``occlusion-labelled``) so a paper figure is only ever shown beside the list it was measured on.
PAPER_NAMES: tuple[str, ...] = ("pose30", "pose45", "occlusion", "occlusion-upper", "occlusion-bottom",
                                "occlusion-left_right", "occlusion-glasses-or-mask")
ESTIMATED_SUFFIX = "-estimated"
LABELLED_NAME = "occlusion-labelled"


@dataclass(frozen=True)
class SubsetInfo:
    name: str
    manifest: str
    dataset: str
    rule: str
    size: int
    path: Path
    manifest_path: Path | None
    built_at: str | None = None

    def line(self) -> str:
        return f"{self.name:<28} {self.rule:<48} {self.size:>7,}  {self.dataset} ({self.manifest})"


_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


def subset_file_name(subset: str) -> str:
    """A safe subset name: lower case, ``|`` and spaces become ``-or-`` / ``_``."""
    name = subset.strip().lower().replace("|", "-or-").replace(" ", "_")
    if not _NAME_RE.match(name):
        raise InputError(f"invalid subset name {subset!r} (use letters, digits, '-', '_', '.')")
    return name


def subset_path(manifest_name: str, subset: str, workspace: Workspace | None = None) -> Path:
    ws = workspace or Workspace.current()
    return ws.subsets / f"{manifest_name}-{subset_file_name(subset)}.parquet"


def write_subset(
    manifest: Manifest,
    subset: str,
    sample_ids: Sequence[str],
    *,
    rule: str,
    threshold: float | None = None,
    values: Sequence[float] | None = None,
    source: str | None = None,
    workspace: Workspace | None = None,
) -> SubsetInfo:
    """Write the subset file; every id must belong to ``manifest`` (else InputError)."""
    name = subset_file_name(subset)
    ids = pa.array(list(sample_ids), type=pa.string())
    known = manifest.table.column("sample_id")
    outside = pc.invert(pc.is_in(ids, value_set=known))
    if pc.any(outside).as_py():
        example = ids.filter(outside)[0].as_py()
        raise InputError(f"subset {name}: {pc.sum(outside).as_py()} ids not in {manifest.path}, e.g. {example}")
    n = len(ids)
    now = datetime.now(timezone.utc)
    table = pa.Table.from_arrays(
        [
            ids,
            pa.array([rule] * n, type=pa.string()),
            pa.array([threshold] * n, type=pa.float64()),
            pa.array(values if values is not None else [None] * n, type=pa.float64()),
            pa.array([source] * n, type=pa.string()),
            pa.array([now] * n, type=pa.timestamp("us", tz="UTC")),
        ],
        schema=SUBSET_SCHEMA,
    )
    path = subset_path(manifest.name, name, workspace)
    write_layer(
        table,
        path,
        layer="subset",
        manifest=manifest.name,
        provenance={
            "subset": name,
            "manifest_path": str(manifest.path.resolve()) if manifest.path else None,
            "dataset": manifest.dataset,
            "rule": rule,
            "threshold": threshold,
            "source": source,
            "size": n,
            "built_at": now.isoformat(),
        },
    )
    return SubsetInfo(name, manifest.name, manifest.dataset, rule, n, path, manifest.path, now.isoformat())


def read_subset(path: str | os.PathLike) -> tuple[pa.Table, dict]:
    """The subset's rows and provenance."""
    table, meta = read_layer(path, "subset")
    return table, meta.get("provenance", {}) | {"manifest": meta.get("manifest")}


def list_subsets(workspace: Workspace | None = None, manifest: str | None = None) -> list[SubsetInfo]:
    """All subsets in the workspace (optionally of one manifest), sorted by manifest and name."""
    ws = workspace or Workspace.current()
    out = []
    for path in sorted(ws.subsets.glob("*.parquet")) if ws.subsets.exists() else []:
        try:
            _, prov = read_subset(path)
        except InputError:
            continue
        if manifest and prov.get("manifest") != manifest:
            continue
        mp = prov.get("manifest_path")
        out.append(
            SubsetInfo(
                name=prov.get("subset", path.stem),
                manifest=prov.get("manifest", "?"),
                dataset=prov.get("dataset", "?"),
                rule=prov.get("rule", "?"),
                size=int(prov.get("size", 0)),
                path=path,
                manifest_path=Path(mp) if mp else None,
                built_at=prov.get("built_at"),
            )
        )
    return sorted(out, key=lambda s: (s.manifest, s.name))


def find_subset(
    subset: str, *, manifest: str | None = None, workspace: Workspace | None = None
) -> SubsetInfo:
    """Resolve a subset by file path or by name (and manifest name, when several manifests have it).

    The papers' names (``pose30``, ``pose45``, ``occlusion``, ``occlusion-<type>``) resolve to the
    official list (``official-pose45``) where it is imported; a subset literally named so is used only
    for a manifest without that official list; otherwise the error says how to import the list and
    names fercurate's own subset (``pose45-estimated``, ``occlusion-labelled``).
    """
    if subset.endswith(".parquet"):
        path = Path(subset)
        if not path.exists():
            raise InputError(f"{path}: subset file not found")
        _, prov = read_subset(path)
        mp = prov.get("manifest_path")
        return SubsetInfo(prov.get("subset", path.stem), prov.get("manifest", "?"), prov.get("dataset", "?"),
                          prov.get("rule", "?"), int(prov.get("size", 0)), path, Path(mp) if mp else None,
                          prov.get("built_at"))
    name = subset_file_name(subset)
    every = list_subsets(workspace, manifest)
    matches = [s for s in every if s.name == name]
    if name in PAPER_NAMES:
        official = [s for s in every if s.name == OFFICIAL_PREFIX + name]
        # the official list wins; a subset literally named so (older fercurate, a user's own) is used
        # only for manifests that have no official list
        have = {s.manifest for s in official}
        matches = official + [s for s in matches if s.manifest not in have]
    if len(matches) == 1:
        return matches[0]
    where = f" for manifest {manifest!r}" if manifest else ""
    if not matches:
        known = sorted({s.name for s in every})
        hint = f" (known: {', '.join(known)})" if known else " (none built yet: run 'fercurate subsets build')"
        if name in PAPER_NAMES:
            ours = name.replace("occlusion", LABELLED_NAME, 1) if name.startswith("occlusion") else name + ESTIMATED_SUFFIX
            raise InputError(
                f"no official list {name!r}{where}: {name!r} names the RAN authors' published list; import it with "
                f"'fercurate import-ran-lists DIR --manifest M', or score fercurate's own subset {ours!r}{hint}")
        raise InputError(f"no subset named {name!r}{where}{hint}")
    names = ", ".join(sorted(s.manifest for s in matches))
    raise InputError(f"subset {name!r} exists for several manifests ({names}): pass --manifest")


def subset_ids(info: SubsetInfo) -> set[str]:
    table, _ = read_subset(info.path)
    return set(table.column("sample_id").to_pylist())


def paper_condition(info: SubsetInfo) -> str | None:
    """The paper condition an official list was measured on (``pose45``, ``occlusion-upper`` ...), else None.

    Only a subset built from an official RAN list has one; fercurate's estimated or labelled subsets,
    samples and ``-clean`` variants of a list do not, so no paper figure is shown beside them.
    """
    if not info.rule.startswith(OFFICIAL_RULE):
        return None
    cond = info.rule[len(OFFICIAL_RULE):].strip()
    return cond if cond in ("pose30", "pose45", "occlusion") or cond.startswith("occlusion-") else None


def paper_name(name: str) -> str:
    """The paper's subset a subset name stands for: ``official-pose45``, ``pose45-estimated``,
    ``pose45-openface``, ``pose45-estimated-clean`` -> ``pose45``; ``occlusion-labelled-upper`` ->
    ``occlusion-upper`` (one of :data:`PAPER_NAMES` when it is one of the papers' subsets)."""
    base = re.sub(r"-(estimated|openface|clean|sample)(-.*)?$", "", name.removeprefix(OFFICIAL_PREFIX))
    return base.replace(LABELLED_NAME, "occlusion", 1)


def compare_with_official(info: SubsetInfo, workspace: Workspace | None = None) -> str | None:
    """For an estimated/labelled subset, one line: the official list's size, ours, and their overlap."""
    if not (info.name.endswith(ESTIMATED_SUFFIX) or info.name.startswith(LABELLED_NAME)):
        return None
    base = paper_name(info.name)
    if base not in PAPER_NAMES:
        return None
    official = [s for s in list_subsets(workspace, info.manifest) if s.name == OFFICIAL_PREFIX + base]
    if not official:
        return None
    ours, theirs = subset_ids(info), subset_ids(official[0])
    return (f"{info.name}: official list {base} has {len(theirs):,}, ours {len(ours):,}, overlap {len(ours & theirs):,} "
            f"({official[0].name})")


# --- rules -------------------------------------------------------------------------------------


def pose_subsets(
    manifest: Manifest,
    thresholds: Iterable[float],
    *,
    calibration: str | None = None,
    workspace: Workspace | None = None,
) -> list[SubsetInfo]:
    """Pose-T subsets: ``max(|yaw|, |pitch|) > T`` from the pose layer (roll ignored, as in the paper).

    Rows whose pose failed are not members. With ``calibration`` (e.g. ``openface``) the compared
    value is the calibrated score from :mod:`fercurate.pose.calibration`; the pose layer's angles
    are left as they are.
    """
    lp = layer_path(manifest.path, "pose")
    if not lp.exists():
        raise InputError(f"{lp}: no pose layer; run 'fercurate pose {manifest.path}' first")
    table, meta = read_layer(lp, "pose")
    ok = pc.is_null(table.column("failure")).to_numpy(zero_copy_only=False)
    yaw = table.column("yaw").to_numpy(zero_copy_only=False).astype(np.float64)
    pitch = table.column("pitch").to_numpy(zero_copy_only=False).astype(np.float64)
    if calibration:
        from fercurate.pose.calibration import calibrated_score

        score = np.asarray(calibrated_score(table, calibration), dtype=np.float64)
        rule_value = f"{calibration}-calibrated pose score"
    else:
        score = np.maximum(np.abs(yaw), np.abs(pitch))
        rule_value = "max(|yaw|,|pitch|)"
    ids = np.asarray(table.column("sample_id").to_pylist(), dtype=object)
    method = meta.get("provenance", {}).get("method", "pose")
    out = []
    for t in thresholds:
        member = ok & (np.nan_to_num(score, nan=-np.inf) > t)
        name = f"pose{t:g}" + (f"-{calibration}" if calibration else ESTIMATED_SUFFIX)
        out.append(
            write_subset(manifest, name, ids[member].tolist(), rule=f"{rule_value} > {t:g}", threshold=float(t),
                         values=score[member].tolist(), source=f"{lp.name} ({method})", workspace=workspace)
        )
    return out


def occlusion_subsets(manifest: Manifest, *, workspace: Workspace | None = None) -> list[SubsetInfo]:
    """Occlusion subset (samples with >= 1 occlusion type) plus one subset per type present."""
    ws = workspace or Workspace.current()
    ann = ws.annotation_path(manifest.name)
    if not ann.exists():
        raise InputError(
            f"{ann}: no occlusion labels yet; label in the App ('fercurate annotate launch') "
            "or import the official lists ('fercurate import-ran-lists')"
        )
    labels = latest_labels(read_events(ann), source=LABEL_SOURCES)  # suggestions are not labels
    in_manifest = set(manifest.table.column("sample_id").to_pylist())
    labels = labels[labels["sample_id"].isin(in_manifest)]
    src = f"{ann.name} (current labels)"
    occluded = labels[labels["occluded"]]
    out = [write_subset(manifest, LABELLED_NAME, occluded["sample_id"].tolist(), rule="occlusion types ∌ none",
                        source=src, workspace=ws)]
    from fercurate.annotations import occlusion_types_present

    for t in occlusion_types_present(labels):
        members = labels[labels["types"].map(lambda ts, t=t: t in ts)]["sample_id"].tolist()
        out.append(write_subset(manifest, f"{LABELLED_NAME}-{t}", members, rule=f"occlusion type = {t}",
                                source=src, workspace=ws))
    return out


def official_subsets(manifest: Manifest, *, workspace: Workspace | None = None) -> list[SubsetInfo]:
    """One subset per official RAN list imported for this manifest (``official-<list>``).

    The FERPlus occlusion list also gives one subset per occlusion type it codes
    (``official-occlusion-upper`` ..., the rows of RAN Table I).
    """
    from fercurate.ingest.ran_lists import FERPLUS_OCCLUSION_CODES

    lp = layer_path(manifest.path, OFFICIAL_LAYER)
    if not lp.exists():
        raise InputError(f"{lp}: no official lists imported; run 'fercurate import-ran-lists DIR --manifest {manifest.path}'")
    table, _ = read_layer(lp, OFFICIAL_LAYER)
    out = []
    lists = table.column("list").to_pylist()
    ids = table.column("sample_id").to_pylist()
    files = table.column("source_file").to_pylist()
    for name in sorted(set(lists)):
        members = sorted({i for i, lst in zip(ids, lists) if lst == name})
        source = sorted({f for f, lst in zip(files, lists) if lst == name})
        out.append(write_subset(manifest, f"{OFFICIAL_PREFIX}{name}", members, rule=f"{OFFICIAL_RULE}{name}",
                                source=", ".join(source), workspace=workspace))
    codes = table.column("source_code").to_pylist()
    if manifest.dataset == "ferplus" and "occlusion" in lists:
        for code, types in sorted(FERPLUS_OCCLUSION_CODES.items()):
            members = sorted({i for i, lst, c in zip(ids, lists, codes) if lst == "occlusion" and c == code})
            if members:
                sub = f"occlusion-{types[0]}"
                source = sorted({f for f, lst in zip(files, lists) if lst == "occlusion"})
                out.append(write_subset(manifest, f"{OFFICIAL_PREFIX}{sub}", members, rule=f"{OFFICIAL_RULE}{sub}",
                                        source=f"{', '.join(source)} (code {code})", workspace=workspace))
    return out


def build(
    manifest_path: str | os.PathLike,
    *,
    pose: Sequence[float] = (),
    calibration: str | None = None,
    occlusion: bool = False,
    official: bool = False,
    exclude_leaked: bool = False,
    workspace: Workspace | None = None,
) -> list[SubsetInfo]:
    """Build the requested subsets of one manifest; same as ``fercurate subsets build``."""
    ws = workspace or Workspace.current()
    manifest = read_manifest(manifest_path)
    if not (pose or occlusion or official or exclude_leaked):
        raise InputError("nothing to build: pass --pose T, --occlusion, --official and/or --exclude-leaked")
    built: list[SubsetInfo] = []
    if pose:
        built += pose_subsets(manifest, pose, calibration=calibration, workspace=ws)
    if occlusion:
        built += occlusion_subsets(manifest, workspace=ws)
    if official:
        built += official_subsets(manifest, workspace=ws)
    if exclude_leaked:
        built += _clean_subsets(manifest, built, ws)
    return built


def _clean_subsets(manifest: Manifest, built: list[SubsetInfo], ws: Workspace) -> list[SubsetInfo]:
    """``<subset>-clean`` for each subset just built, and ``<split>-clean`` per split: leaked samples removed."""
    from fercurate.quality.leakage import leaked_sample_ids

    leaked = leaked_sample_ids(manifest, workspace=ws)
    out = []
    splits = manifest.table.column("split").cast(pa.string()).to_numpy(zero_copy_only=False)
    ids = np.asarray(manifest.table.column("sample_id").to_pylist(), dtype=object)
    for split in sorted(set(splits)):
        members = [i for i in ids[splits == split] if i not in leaked]
        out.append(write_subset(manifest, f"{split}-clean", members, rule=f"split = {split}, leaked samples excluded",
                                source="quality duplicates layer", workspace=ws))
    for info in built:
        members = [i for i in sorted(subset_ids(info)) if i not in leaked]
        out.append(write_subset(manifest, f"{info.name}-clean", members, rule=f"{info.rule}, leaked samples excluded",
                                source="quality duplicates layer", workspace=ws))
    return out
