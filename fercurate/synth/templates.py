"""Mask templates: an RGBA image plus anchor points, procedural or read from a user's config file.

User templates use the MaskTheFace layout: an INI file (e.g. ``masks.cfg``) with one section per
template, a ``template`` path to an RGBA PNG and six anchors ``mask_a`` .. ``mask_f`` as ``x, y``
pixels in that PNG (a/c top corners on the cheeks, b the nose bridge, d/f the lower corners on the
jaw, e the chin; anchors may lie outside the image). Sections without a template (``[empty]``) are
skipped. Sections named ``<name>_left`` / ``<name>_right`` are views of ``<name>`` for turned faces;
the view whose anchor layout best matches the face is picked per image.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from fercurate.errors import InputError
from fercurate.images import ImageReadError, read_image
from fercurate.synth.outline import TEMPLATE_ANCHORS

VIEW_SUFFIXES = ("_left", "_right")


@dataclass(frozen=True)
class Template:
    """An RGBA template and its anchors (template pixels), in the order the placement expects."""

    name: str
    rgba: np.ndarray
    anchors: np.ndarray
    outline: np.ndarray  # closed polygon around the template's opaque part (template pixels)
    shading: bool = False  # channels are (light, pattern, -, alpha), tinted when placed
    premultiplied: np.ndarray | None = None  # float32 0..1, colour x alpha: what the warp samples

    def scaled(self, factor: float) -> "Template":
        """The template resized by ``factor`` (area-averaged when shrinking) with anchors scaled."""
        if abs(factor - 1.0) < 1e-3:
            return self
        h, w = self.rgba.shape[:2]
        size = (max(2, round(w * factor)), max(2, round(h * factor)))
        interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        rgba = cv2.resize(self.rgba, size, interpolation=interp)
        sx, sy = size[0] / w, size[1] / h
        k = np.array([sx, sy])
        return Template(self.name, rgba, self.anchors * k, self.outline * k, self.shading)

    def top_ratio(self) -> float:
        """Where the nose-bridge anchor sits between the two top corners (0..1): the view's turn."""
        a, b, c = self.anchors[0], self.anchors[1], self.anchors[2]
        span = c[0] - a[0]
        return float((b[0] - a[0]) / span) if abs(span) > 1e-9 else 0.5


@dataclass
class TemplateSet:
    """Templates read from one config file, grouped into styles (a base name and its views)."""

    path: Path
    groups: dict[str, list[str]] = field(default_factory=dict)  # style -> section names
    sections: dict[str, tuple[Path, np.ndarray]] = field(default_factory=dict)  # name -> (png, anchors)
    skipped: list[str] = field(default_factory=list)

    @property
    def styles(self) -> list[str]:
        return sorted(self.groups)

    def load(self, section: str) -> Template:
        png, anchors = self.sections[section]
        return _load_png(str(png), section, tuple(map(tuple, anchors)))

    def views(self, style: str) -> list[Template]:
        return [self.load(s) for s in self.groups[style]]


def _parse_point(text: str, where: str) -> tuple[float, float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise InputError(f"{where}: expected 'x, y', got {text!r}")
    try:
        return float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise InputError(f"{where}: expected numbers 'x, y', got {text!r}") from exc


def _resolve_png(cfg_dir: Path, value: str) -> Path | None:
    raw = Path(value)
    for candidate in (raw if raw.is_absolute() else cfg_dir / raw, cfg_dir / raw.name):
        if candidate.is_file():
            return candidate
    return None


def read_template_config(path: str | os.PathLike) -> TemplateSet:
    """Parse a MaskTheFace-style INI file; errors name the file, section and key."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: template config not found")
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    try:
        parser.read_string(path.read_text(), source=str(path))
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable INI file ({exc})") from exc
    out = TemplateSet(path=path)
    for section in parser.sections():
        sec = parser[section]
        if "template" not in sec:
            out.skipped.append(f"{section}: no template (skipped)")
            continue
        where = f"{path} [{section}]"
        png = _resolve_png(path.parent, sec["template"].strip())
        if png is None:
            raise InputError(f"{where}: template image {sec['template'].strip()!r} not found next to {path.name}")
        missing = [f"mask_{k}" for k in TEMPLATE_ANCHORS if f"mask_{k}" not in sec]
        if missing:
            raise InputError(f"{where}: missing anchors {', '.join(missing)}")
        anchors = np.array([_parse_point(sec[f"mask_{k}"], f"{where} mask_{k}") for k in TEMPLATE_ANCHORS])
        out.sections[section] = (png, anchors)
        base = section
        for suffix in VIEW_SUFFIXES:
            if section.endswith(suffix):
                base = section[: -len(suffix)]
        out.groups.setdefault(base, []).append(section)
    if not out.sections:
        raise InputError(f"{path}: no template sections (need 'template' and mask_a..mask_f)")
    for base, names in out.groups.items():
        names.sort(key=lambda n: (n != base, n))
    return out


@lru_cache(maxsize=64)
def _load_png(png: str, name: str, anchors: tuple[tuple[float, float], ...]) -> Template:
    try:
        img = read_image(png, mode="bgra")
    except ImageReadError as exc:
        raise InputError(f"{png}: template [{name}]: {exc.reason}") from exc
    if img.dtype != np.uint8:
        img = (img / 257).astype(np.uint8) if img.dtype == np.uint16 else img.astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGRA)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
    if int(img[..., 3].max()) == 0:
        raise InputError(f"{png}: template [{name}] is fully transparent")
    return Template(name, img, np.array(anchors, dtype=np.float64), _alpha_outline(img[..., 3]))


def _alpha_outline(alpha: np.ndarray) -> np.ndarray:
    """The largest outer contour of the opaque part, lightly simplified."""
    contours, _ = cv2.findContours((alpha > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        h, w = alpha.shape
        return np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    big = max(contours, key=cv2.contourArea)
    eps = 0.004 * cv2.arcLength(big, True)
    return cv2.approxPolyDP(big, eps, True).reshape(-1, 2).astype(np.float64)


def pick_view(views: list[Template], face_ratio: float) -> Template:
    """The view whose nose-bridge position between the top corners best matches the face's."""
    return min(views, key=lambda t: (abs(t.top_ratio() - face_ratio), t.name))
