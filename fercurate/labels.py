"""Expression label spaces: fercurate's canonical order, the datasets' own orders, aliases, ``--labels``.

fercurate scores in one canonical space, AffectNet's order (the RAN paper's 8 classes):
``0 neutral, 1 happy, 2 sad, 3 surprise, 4 fear, 5 disgust, 6 anger, 7 contempt``. Models trained
elsewhere emit their classes in their dataset's order; :data:`ORDERS` holds the published ones so a
model's outputs can be permuted into the canonical order before scoring:

* ``affectnet`` / ``canonical``: AffectNet's expression codes 0-7 (Mollahosseini et al. 2017);
  ``affectnet7`` / ``canonical7``: its first 7 (no contempt);
* ``fer2013``: the Kaggle FER2013 ``emotion`` codes 0-6 (angry, disgust, fear, happy, sad, surprise,
  neutral);
* ``ferplus``: the FER+ vote columns 0-7 as Microsoft publishes them in ``fer2013new.csv`` (neutral,
  happiness, surprise, sadness, anger, disgust, fear, contempt); the RAN authors' FERPlus lists use
  this order for their folder numbers;
* ``rafdb``: RAF-DB basic labels 1-7 (surprise, fear, disgust, happiness, sadness, anger, neutral);
* ``sfew``: SFEW 2.0's class folders sorted by name (Angry Disgust Fear Happy Neutral Sad Surprise),
  the order a folder-per-class loader (e.g. torchvision ``ImageFolder``) gives.

``--labels`` accepts one of those names, a text file with one class name per line, or a comma list;
names may be any alias in :data:`ALIASES` (``happiness``, ``angry``, ``surprised``, ...).
"""

from __future__ import annotations

import os
from pathlib import Path

from fercurate.errors import InputError

# Canonical label space: AffectNet order, the RAN paper's 8 classes.
CANONICAL_LABELS: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "surprise",
    "fear",
    "disgust",
    "anger",
    "contempt",
)
LABEL_TO_ID: dict[str, int] = {name: i for i, name in enumerate(CANONICAL_LABELS)}

# Each alias (lower case) -> canonical name.
ALIASES: dict[str, str] = {
    **{name: name for name in CANONICAL_LABELS},
    "neutrality": "neutral", "neutral face": "neutral", "calm": "neutral",
    "happiness": "happy", "joy": "happy", "happily": "happy", "smile": "happy",
    "sadness": "sad", "unhappy": "sad", "sorrow": "sad",
    "surprised": "surprise", "surprising": "surprise",
    "fearful": "fear", "afraid": "fear", "scared": "fear",
    "disgusted": "disgust", "disgusting": "disgust",
    "angry": "anger", "mad": "anger",
    "contemptuous": "contempt",
}

ORDERS: dict[str, tuple[str, ...]] = {
    "canonical": CANONICAL_LABELS,
    "affectnet": CANONICAL_LABELS,
    "canonical7": CANONICAL_LABELS[:7],
    "affectnet7": CANONICAL_LABELS[:7],
    "fer2013": ("anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
    "ferplus": ("neutral", "happy", "surprise", "sad", "anger", "disgust", "fear", "contempt"),
    "rafdb": ("surprise", "fear", "disgust", "happy", "sad", "anger", "neutral"),
    "sfew": ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise"),
}
# Where each order comes from, for --help and error messages.
ORDER_SOURCES: dict[str, str] = {
    "canonical": "fercurate's canonical order = AffectNet codes 0-7",
    "affectnet": "AffectNet expression codes 0-7",
    "canonical7": "the canonical order without contempt",
    "affectnet7": "AffectNet codes 0-6 (no contempt)",
    "fer2013": "Kaggle fer2013.csv emotion codes 0-6",
    "ferplus": "FER+ fer2013new.csv vote columns 0-7",
    "rafdb": "RAF-DB basic labels 1-7",
    "sfew": "SFEW 2.0 class folders sorted by name",
}


def canonical_name(name: str, *, where: str = "--labels") -> str:
    """The canonical class name for ``name`` or any alias of it (case-insensitive)."""
    key = " ".join(name.strip().lower().replace("_", " ").split())
    if key in ALIASES:
        return ALIASES[key]
    raise InputError(f"{where}: unknown class name {name!r}; known names: {', '.join(CANONICAL_LABELS)} "
                     f"(aliases such as happiness, angry, surprised, sadness, fearful, disgusted are accepted)")


def _order_key(text: str) -> str:
    return text.strip().lower().replace("-", "").replace("_", "").replace(" ", "")


def check_order(names: list[str] | tuple[str, ...], where: str) -> list[str]:
    """Canonical names of a model's outputs, in the model's order; refuses duplicates and unsupported sets.

    fercurate scores 8-class models and 7-class models without contempt, in any order.
    """
    if not isinstance(names, (list, tuple)) or not all(isinstance(x, str) for x in names):
        raise InputError(f"{where}: a label order must be a list of class names")
    out = [canonical_name(n, where=where) for n in names]
    dupes = sorted({n for n in out if out.count(n) > 1})
    if dupes:
        raise InputError(f"{where}: class {', '.join(dupes)} appears more than once in the label order {list(names)}")
    if set(out) not in (set(CANONICAL_LABELS), set(CANONICAL_LABELS[:7])):
        missing = sorted(set(CANONICAL_LABELS[:7]) - set(out))
        raise InputError(f"{where}: label order {list(names)} must name the 8 expression classes, or the 7 without "
                         f"contempt" + (f" (missing: {', '.join(missing)})" if missing else ""))
    return out


def parse_labels(spec: str | os.PathLike | list[str] | tuple[str, ...], *, where: str = "--labels") -> list[str]:
    """``--labels``: a named order (``rafdb``), a file with one name per line, or ``a,b,c`` -> canonical names.

    The file may start with a UTF-8 byte-order mark and use CRLF line ends; blank lines and lines
    starting with ``#`` are skipped.
    """
    if isinstance(spec, (list, tuple)):
        return check_order(list(spec), where)
    text = str(spec)
    path = Path(text)
    if "," not in text and (path.suffix.lower() in (".txt", ".csv", ".labels") or path.exists()) \
            and _order_key(text) not in ORDERS:
        if not path.is_file():
            raise InputError(f"{where} {text}: file not found")
        lines = path.read_text(encoding="utf-8-sig").splitlines()
        names = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
        if not names:
            raise InputError(f"{path}: no class names in the file (one name per line expected)")
        return check_order(names, str(path))
    if "," in text:
        return check_order([n for n in text.split(",") if n.strip()], where)
    key = _order_key(text)
    if key in ORDERS:
        return list(ORDERS[key])
    raise InputError(f"{where} {text!r}: not a known order ({', '.join(ORDERS)}), a file, or a comma-separated "
                     f"list of class names")


def order_name(names: list[str] | tuple[str, ...]) -> str | None:
    """The name of a known order equal to ``names`` (canonical names), else None."""
    for key, order in ORDERS.items():
        if list(order) == list(names):
            return key
    return None


def to_canonical(names: list[str] | tuple[str, ...]) -> list[int]:
    """For each canonical class the model knows (canonical order), the column of the model's output holding it.

    ``probs[:, to_canonical(names)]`` puts a model's outputs into canonical order (8 columns, or 7 without
    contempt).
    """
    names = list(names)
    return [names.index(c) for c in CANONICAL_LABELS if c in names]
