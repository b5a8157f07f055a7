"""The manifest schema (v1), the canonical label space and each dataset's label maps.

Every manifest fercurate writes has exactly the columns of :data:`MANIFEST_SCHEMA`, in that order,
whatever dataset it came from, so that layers, subsets, training and evaluation never need to know
which ingestor produced a file.
"""

from __future__ import annotations

import pyarrow as pa

from fercurate.labels import CANONICAL_LABELS, LABEL_TO_ID

SCHEMA_VERSION = "1"

# Canonical label space: AffectNet order, the RAN paper's 8 classes (defined in fercurate.labels).
NO_LABEL_ID = -1

DATASETS: tuple[str, ...] = ("affectnet", "ferplus", "rafdb", "sfew")
SPLITS: tuple[str, ...] = ("train", "val", "test")

# --- per-dataset label maps: native value -> canonical name (None = kept, but no canonical label) ---

AFFECTNET_LABELS: dict[int, str | None] = {
    0: "neutral",
    1: "happy",
    2: "sad",
    3: "surprise",
    4: "fear",
    5: "disgust",
    6: "anger",
    7: "contempt",
    8: None,  # None
    9: None,  # Uncertain
    10: None,  # No-Face
}
AFFECTNET_SOURCE_NAMES: dict[int, str] = {
    0: "Neutral", 1: "Happy", 2: "Sad", 3: "Surprise", 4: "Fear", 5: "Disgust", 6: "Anger",
    7: "Contempt", 8: "None", 9: "Uncertain", 10: "No-Face",
}

# FER+ vote columns, in the order of label.csv / fer2013new.csv.
FERPLUS_VOTE_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
    "unknown", "NF",
)
FERPLUS_LABELS: dict[str, str | None] = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "sad",
    "anger": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "contempt": "contempt",
    "unknown": None,
    "NF": None,
}
# Kaggle fer2013.csv "emotion" codes (a different order from FER+).
FER2013_EMOTIONS: dict[int, str] = {
    0: "anger", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral",
}

RAFDB_LABELS: dict[int, str] = {
    1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "anger", 7: "neutral",
}

SFEW_LABELS: dict[str, str] = {
    "Angry": "anger", "Disgust": "disgust", "Fear": "fear", "Happy": "happy",
    "Neutral": "neutral", "Sad": "sad", "Surprise": "surprise",
}

# --- occlusion vocabulary (the RAN paper's six types) ---
# How a face is cut for a network: "bbox" the face box made square; "dlib5" aligned with dlib's 5-point
# model (a similarity transform onto a fixed template, as the RAN paper aligns before cropping).
FACE_ALIGNMENTS: tuple[str, ...] = ("bbox", "dlib5")

OCCLUSION_TYPES: tuple[str, ...] = ("mask", "glasses", "left_right", "upper", "bottom", "none")
# The five types that say a face is occluded (every type but "none"), in the same order.
OCCLUDED_TYPES: tuple[str, ...] = tuple(t for t in OCCLUSION_TYPES if t != "none")
# Values that record what an official list knows without guessing further: the FERPlus list merges
# glasses and mask into one code; RAF-DB's codes are undocumented ("occluded, type unknown").
OCCLUSION_UNRESOLVED: tuple[str, ...] = ("glasses|mask", "occluded")
OCCLUSION_VALUES: tuple[str, ...] = OCCLUSION_TYPES + OCCLUSION_UNRESOLVED
# "adjudication": a person's decision between annotators who disagree (the current label once made).
OCCLUSION_SOURCES: tuple[str, ...] = ("human", "official", "synthetic", "suggestion", "adjudication")

# --- the manifest schema ---
_dict_str = pa.dictionary(pa.int32(), pa.string())
BBOX_TYPE = pa.struct(
    [("x", pa.float32()), ("y", pa.float32()), ("w", pa.float32()), ("h", pa.float32())]
)

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("dataset", _dict_str, nullable=False),
        pa.field("split", _dict_str, nullable=False),
        pa.field("source_split", pa.string()),
        pa.field("image_path", pa.string(), nullable=False),
        pa.field("label", _dict_str),
        pa.field("label_id", pa.int8(), nullable=False),
        pa.field("source_label", pa.string()),
        pa.field("label_votes", pa.list_(pa.int16())),
        pa.field("valence", pa.float32()),
        pa.field("arousal", pa.float32()),
        pa.field("bbox", BBOX_TYPE),
        pa.field("landmarks", pa.list_(pa.float32())),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("sha256", pa.string()),
        # v1 additions beyond the design card: machine-readable notes about a row
        # (e.g. "unknown_majority", "votes_conflict"), and provenance of synthetic variants.
        pa.field("flags", pa.list_(pa.string())),
        pa.field("derived_from", pa.string()),
        pa.field("variant", pa.string()),
        pa.field("seed", pa.int64()),
    ]
)
MANIFEST_COLUMNS: tuple[str, ...] = tuple(MANIFEST_SCHEMA.names)

REJECTS_SCHEMA = pa.schema(
    [
        pa.field("dataset", pa.string()),
        pa.field("source_file", pa.string()),
        pa.field("row", pa.int64()),  # 1-based line/row number in source_file; null if not row-based
        pa.field("image_path", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string()),
    ]
)

# The pose layer (manifests/<name>.pose.parquet, written by fercurate.pose.runner); readers check the
# columns they use against it (fercurate.layers.read_layer).
POSE_LAYER_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("yaw", pa.float32()),
        pa.field("pitch", pa.float32()),
        pa.field("roll", pa.float32()),
        pa.field("method", pa.string()),
        pa.field("confidence", pa.float32()),
        pa.field("failure", pa.string()),
    ]
)


def label_id(name: str | None) -> int:
    """Canonical index of a label name, -1 for no label."""
    return NO_LABEL_ID if name is None else LABEL_TO_ID[name]
