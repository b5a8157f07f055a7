"""Synthetic occluders of the RAN taxonomy, drawn from landmarks: glasses, upper, bottom, left/right.

* ``glasses``: clear glasses or sunglasses (round, rectangular or aviator frames) sized to the eyes,
  with a bridge over the nose and temples running to the face side.
* ``upper`` / ``bottom`` / ``left_right``: a hand-, scarf- or object-shaped patch covering a band of
  the face: the top ``size`` fraction of the face height (forehead down), the bottom fraction (chin
  up) or one side's fraction of the face width. The drawn shape is fitted to that band in the face's
  own frame, so it turns and tilts with the head.

Shapes are polygons drawn on a supersampled canvas (clean edges at 48 px) with flat colours, a
smooth seeded texture and outline strokes; the result reports the covered fraction of the face.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from fercurate.synth import outline as G
from fercurate.synth import shapes as S
from fercurate.synth.masks import STYLES as MASK_STYLES, Placed, apply_mask, choose_spec as choose_mask_spec
from fercurate.synth.warp import bounding_rect, composite, paste_alpha

OCCLUDER_TYPES: tuple[str, ...] = ("glasses", "upper", "bottom", "left_right")
# The occlusion vocabulary value each type is labelled with.
EVENT_TYPE: dict[str, str] = {"glasses": "glasses", "upper": "upper", "bottom": "bottom", "left_right": "left_right"}
SHAPES: dict[str, tuple[str, ...]] = {
    "glasses": ("glasses", "sunglasses"),
    "upper": ("hand", "scarf", "object"),
    "bottom": ("hand", "scarf", "object"),
    "left_right": ("hand", "scarf", "object"),
}
FRAME_FORMS: tuple[str, ...] = ("round", "rect", "aviator")
# Default covered fraction of the face (height for upper/bottom, width for left_right).
DEFAULT_SIZE: dict[str, float] = {"upper": 0.4, "bottom": 0.45, "left_right": 0.4}

COLOURS: dict[str, tuple[int, int, int]] = {  # RGB
    "black": (30, 30, 32),
    "white": (236, 236, 232),
    "grey": (128, 128, 130),
    "red": (178, 36, 40),
    "blue": (40, 76, 160),
    "green": (46, 120, 70),
    "yellow": (226, 190, 60),
    "brown": (110, 70, 42),
    "navy": (30, 40, 82),
    "pink": (226, 150, 176),
}
FRAME_COLOURS: tuple[str, ...] = ("black", "brown", "grey", "navy", "red")
SUN_TINTS: dict[str, tuple[int, int, int]] = {"dark": (22, 24, 26), "brown": (62, 40, 24), "green": (30, 48, 34)}


@dataclass(frozen=True)
class OccluderSpec:
    """One occluder: its RAN ``type``, the ``shape`` drawn, a colour and (left_right) a side."""

    type: str
    shape: str
    colour: str
    size: float
    side: str = ""
    form: str = ""

    @property
    def variant(self) -> str:
        shape = f"{self.shape}-{self.form}" if self.form else self.shape
        parts = ["occlude", self.type, shape, self.colour]
        if self.side:
            parts.append(self.side)
        return ":".join(parts)


def choose_spec(
    type_: str,
    rng: np.random.Generator,
    *,
    size: float | None = None,
    shapes: list[str] | None = None,
    colours: list[str] | None = None,
) -> OccluderSpec:
    """A spec for ``type_`` with shape/colour/side drawn from the allowed lists (all when None)."""
    allowed = [s for s in (shapes or SHAPES[type_]) if s in SHAPES[type_]] or list(SHAPES[type_])
    shape = allowed[int(rng.integers(len(allowed)))]
    if type_ == "glasses":
        form = FRAME_FORMS[int(rng.integers(len(FRAME_FORMS)))]
        if shape == "sunglasses":
            palette = list(SUN_TINTS)
        else:
            palette = [c for c in (colours or FRAME_COLOURS) if c in COLOURS] or list(FRAME_COLOURS)
        colour = palette[int(rng.integers(len(palette)))]
        return OccluderSpec(type_, shape, colour, size=1.0, form=form)
    if shape == "hand":
        colour = "skin"
    else:
        palette = [c for c in (colours or COLOURS) if c in COLOURS] or list(COLOURS)
        colour = palette[int(rng.integers(len(palette)))]
    side = ("left", "right")[int(rng.integers(2))] if type_ == "left_right" else ""
    return OccluderSpec(type_, shape, colour, size=float(size or DEFAULT_SIZE[type_]), side=side)


# --- drawing helpers: polygons in the face frame, rendered on a supersampled canvas ---------------


@dataclass
class _Part:
    polygon: np.ndarray  # face-frame coordinates (pixels along right/down from the nose bridge)
    colour: np.ndarray  # BGR 0..1
    alpha: float = 1.0
    stroke: np.ndarray | None = None  # outline colour (BGR 0..1) or None
    stroke_width: float = 0.0  # in face-frame pixels
    closed: bool = True
    fill: bool = True


@dataclass
class _Drawing:
    parts: list[_Part] = field(default_factory=list)
    texture: float = 0.04  # strength of the smooth grain
    gradient: float = 0.15  # top-to-bottom light falloff along the drawing


def _bgr(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.array(rgb[::-1], dtype=np.float32) / 255.0


def _ellipse(cx: float, cy: float, ax: float, ay: float, angle: float = 0.0, n: int = 40) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = ax * np.cos(t), ay * np.sin(t)
    ca, sa = np.cos(angle), np.sin(angle)
    return np.stack([cx + x * ca - y * sa, cy + x * sa + y * ca], axis=1)


def _rounded_rect(cx: float, cy: float, w: float, h: float, r: float, angle: float = 0.0) -> np.ndarray:
    r = min(r, w / 2, h / 2)
    pts = []
    x, y = w / 2 - r, h / 2 - r
    corners = ((x, -y, -90), (x, y, 0), (-x, y, 90), (-x, -y, 180))
    for qx, qy, a0 in corners:
        a = np.radians(np.linspace(a0, a0 + 90, 7))
        pts.append(np.stack([qx + r * np.cos(a), qy + r * np.sin(a)], axis=1))
    p = np.vstack(pts)
    ca, sa = np.cos(angle), np.sin(angle)
    return np.stack([cx + p[:, 0] * ca - p[:, 1] * sa, cy + p[:, 0] * sa + p[:, 1] * ca], axis=1)


def _capsule(p0: np.ndarray, p1: np.ndarray, width: float, n: int = 10) -> np.ndarray:
    d = p1 - p0
    length = float(np.hypot(*d)) or 1e-6
    ang = np.arctan2(d[1], d[0])
    r = width / 2
    a1 = np.linspace(ang - np.pi / 2, ang + np.pi / 2, n)
    a0 = np.linspace(ang + np.pi / 2, ang + 3 * np.pi / 2, n)
    cap1 = p1 + r * np.stack([np.cos(a1), np.sin(a1)], axis=1)
    cap0 = p0 + r * np.stack([np.cos(a0), np.sin(a0)], axis=1)
    del length
    return np.vstack([cap1, cap0])


def _transform(poly: np.ndarray, scale: float, angle: float, shift: np.ndarray) -> np.ndarray:
    ca, sa = np.cos(angle), np.sin(angle)
    rot = np.array([[ca, -sa], [sa, ca]])
    return poly @ rot.T * scale + shift


def _render(
    image: np.ndarray, frame: G.FaceFrame, drawing: _Drawing, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Composite a drawing onto a BGR image (copy); returns (image, full-size alpha)."""
    out = image.copy()
    alpha_full = np.zeros(image.shape[:2], np.float32)
    img_polys = [frame.from_frame(p.polygon) for p in drawing.parts]
    rect = bounding_rect(np.vstack(img_polys), image.shape, margin=3)
    if rect is None:
        return out, alpha_full
    x0, y0, w, h = rect
    ss = int(np.clip(np.ceil(200.0 / max(frame.length, 1.0)), 1, 4))
    cw, ch = w * ss, h * ss
    col = np.zeros((ch, cw, 3), np.float32)
    alp = np.zeros((ch, cw), np.float32)
    for part, poly in zip(drawing.parts, img_polys):
        pts = np.round((poly - [x0, y0]) * ss * 4).astype(np.int32)
        mask = np.zeros((ch, cw), np.uint8)
        if part.fill:
            cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_8, shift=2)
            m = (mask > 0)[..., None]
            col = np.where(m, part.colour, col)
            alp = np.where(m[..., 0], part.alpha + alp * (1 - part.alpha), alp)
        if part.stroke is not None and part.stroke_width > 0:
            thick = max(1, int(round(part.stroke_width * ss)))
            smask = np.zeros((ch, cw), np.uint8)
            cv2.polylines(smask, [pts], part.closed, 255, thick, lineType=cv2.LINE_8, shift=2)
            s = (smask > 0)[..., None]
            col = np.where(s, part.stroke, col)
            alp = np.where(s[..., 0], 1.0, alp)
    # light: smooth grain plus a gentle falloff along the face's down axis
    grain = rng.standard_normal((max(2, ch // (6 * ss) + 2), max(2, cw // (6 * ss) + 2))).astype(np.float32)
    grain = cv2.resize(grain, (cw, ch), interpolation=cv2.INTER_CUBIC)
    ys, xs = np.mgrid[0:ch, 0:cw].astype(np.float32)
    ox, oy = frame.points[27]
    pos = ((xs / ss + x0 - ox) * frame.down[0] + (ys / ss + y0 - oy) * frame.down[1]) / max(frame.length, 1.0)
    light = (1.0 + drawing.texture * grain) * (1.0 - drawing.gradient * np.clip(pos, -1, 2) / 2)
    col = np.clip(col * light[..., None], 0, 1)
    col = cv2.resize(col * alp[..., None], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    alp = cv2.resize(alp, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    composite(out, col, alp, rect)
    paste_alpha(alpha_full, alp, rect)
    return out, alpha_full


# --- face measurements in the face frame ----------------------------------------------------------


@dataclass(frozen=True)
class _FaceBox:
    left: float
    right: float
    top: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top


def _face_box(frame: G.FaceFrame) -> _FaceBox:
    q = frame.to_frame(G.face_region(frame.points, frame))
    return _FaceBox(q[:, 0].min(), q[:, 0].max(), q[:, 1].min(), q[:, 1].max())


def skin_colour(image: np.ndarray, frame: G.FaceFrame) -> np.ndarray:
    """Median BGR (0..1) of the cheeks just below the eyes: the colour a hand of this person has."""
    pts = frame.points
    h, w = image.shape[:2]
    samples = []
    for eye, corner in ((S.EYE_RIGHT, 2), (S.EYE_LEFT, 14)):
        c = (pts[eye].mean(axis=0) + pts[corner]) / 2 + 0.05 * frame.length * frame.down
        r = max(1, int(0.06 * frame.length))
        x, y = int(round(c[0])), int(round(c[1]))
        if 0 <= x < w and 0 <= y < h:
            patch = image[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1].reshape(-1, image.shape[2])
            samples.append(patch)
    if not samples:
        return np.array([0.55, 0.65, 0.8], np.float32)
    return np.median(np.vstack(samples), axis=0).astype(np.float32) / 255.0


def _hand(rng: np.random.Generator, colour: np.ndarray, line: float) -> list[_Part]:
    """A flat hand, palm at the origin, fingers towards -y; about 1 unit wide, 2 units long."""
    dark = colour * 0.72
    parts = [_Part(_rounded_rect(0, 0.15, 1.0, 1.1, 0.3), colour, stroke=dark, stroke_width=line)]
    lengths = np.array([0.78, 0.9, 0.84, 0.64]) * rng.uniform(0.9, 1.1, 4)
    spread = rng.uniform(0.0, 0.12)
    for i, x in enumerate((-0.36, -0.12, 0.12, 0.36)):
        ang = -np.pi / 2 + (i - 1.5) * spread
        base = np.array([x, -0.3])
        tip = base + lengths[i] * np.array([np.cos(ang), np.sin(ang)])
        parts.append(_Part(_capsule(base, tip, 0.23), colour, stroke=dark, stroke_width=line))
    thumb_base = np.array([0.48, 0.35])
    ang = np.radians(rng.uniform(-60, -25))
    thumb = _capsule(thumb_base, thumb_base + 0.62 * np.array([np.cos(ang), np.sin(ang)]), 0.27)
    parts.append(_Part(thumb, colour, stroke=dark, stroke_width=line))
    return parts


def _fit(
    parts: list[_Part],
    band: tuple[float, float, float, float],
    angle: float,
    fill_axis: str,
    *,
    min_other: float = 0.0,
    max_stretch: float = 1.6,
    centre: np.ndarray | None = None,
) -> list[_Part]:
    """Rotate parts by ``angle``, then scale and shift them so they span ``band`` (x0, x1, y0, y1)
    along ``fill_axis`` ('x' or 'y'). Across it they keep their proportions but are stretched (up
    to ``max_stretch``) to at least ``min_other``, centred on ``centre`` (default: the band's)."""
    rot = [_transform(p.polygon, 1.0, angle, np.zeros(2)) for p in parts]
    allp = np.vstack(rot)
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    x0, x1, y0, y1 = band
    k = 0 if fill_axis == "x" else 1
    target = (x1 - x0) if k == 0 else (y1 - y0)
    scale = np.full(2, target / max(hi[k] - lo[k], 1e-6))
    other = 1 - k
    need = min_other / max(hi[other] - lo[other], 1e-6)
    scale[other] = float(np.clip(need, scale[k], scale[k] * max_stretch))
    centre_src = (lo + hi) / 2
    centre_dst = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    if centre is not None:
        centre_dst[other] = centre[other]
    out = []
    for p, r in zip(parts, rot):
        poly = (r - centre_src) * scale + centre_dst
        out.append(_Part(poly, p.colour, p.alpha, p.stroke, p.stroke_width * float(scale.mean()), p.closed, p.fill))
    return out


def _scarf(
    band: tuple[float, float, float, float], colour: np.ndarray, rng: np.random.Generator, vertical: bool, line: float
) -> list[_Part]:
    """A fabric band filling ``band`` with wavy edges and fold lines."""
    x0, x1, y0, y1 = band
    n = 24
    waves = rng.uniform(1.5, 3.0)
    amp = rng.uniform(0.03, 0.07)
    t = np.linspace(0, 1, n)
    if not vertical:
        span = y1 - y0
        top = np.stack([x0 + t * (x1 - x0), y0 + amp * span * np.sin(t * waves * np.pi + rng.uniform(0, 6))], axis=1)
        bot = np.stack([x0 + t * (x1 - x0), y1 + amp * span * np.sin(t * waves * np.pi + rng.uniform(0, 6))], axis=1)
        bot = bot[::-1]
    else:
        span = x1 - x0
        top = np.stack([x0 + amp * span * np.sin(t * waves * np.pi + rng.uniform(0, 6)), y0 + t * (y1 - y0)], axis=1)
        bot = np.stack([x1 + amp * span * np.sin(t * waves * np.pi + rng.uniform(0, 6)), y0 + t * (y1 - y0)], axis=1)
        bot = bot[::-1]
    parts = [_Part(np.vstack([top, bot]), colour, stroke=colour * 0.7, stroke_width=line)]
    fold_col = colour * 0.78
    for f in rng.uniform(0.2, 0.8, size=int(rng.integers(2, 5))):
        if not vertical:
            y = y0 + f * (y1 - y0)
            xs = np.linspace(x0 + 0.1 * (x1 - x0), x1 - 0.1 * (x1 - x0), 12)
            ys = y + 0.04 * (y1 - y0) * np.sin(np.linspace(0, np.pi * 2, 12) + f * 9)
            fold = np.stack([xs, ys], axis=1)
        else:
            x = x0 + f * (x1 - x0)
            ys = np.linspace(y0 + 0.1 * (y1 - y0), y1 - 0.1 * (y1 - y0), 12)
            xs = x + 0.04 * (x1 - x0) * np.sin(np.linspace(0, np.pi * 2, 12) + f * 9)
            fold = np.stack([xs, ys], axis=1)
        parts.append(_Part(fold, colour, stroke=fold_col, stroke_width=line * 1.3, closed=False, fill=False))
    return parts


def _object(
    band: tuple[float, float, float, float], colour: np.ndarray, rng: np.random.Generator, line: float
) -> list[_Part]:
    """A rigid object (card, book, phone, cup) filling ``band``: a rounded rectangle or an ellipse."""
    x0, x1, y0, y1 = band
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    angle = rng.uniform(-0.12, 0.12)
    if rng.random() < 0.7:
        body = _rounded_rect(cx, cy, w, h, min(w, h) * rng.uniform(0.05, 0.25), angle)
    else:
        body = _ellipse(cx, cy, w / 2, h / 2, angle)
    parts = [_Part(body, colour, stroke=colour * 0.6, stroke_width=line)]
    # a highlight strip along one edge sells it as a solid thing
    hi = np.clip(colour * 1.25 + 0.08, 0, 1)
    strip = _rounded_rect(cx - w * 0.25, cy - h * 0.3, w * 0.35, h * 0.08, h * 0.03, angle)
    parts.append(_Part(strip, hi, alpha=0.6))
    return parts


def _glasses(frame: G.FaceFrame, spec: OccluderSpec, rng: np.random.Generator) -> tuple[list[_Part], list[np.ndarray]]:
    """Lens, frame, bridge and temple parts in the face frame; also the two lens polygons."""
    pts = frame.points
    q = frame.to_frame(pts)
    line = max(0.045 * frame.length, 0.6)
    frame_col = _bgr(COLOURS[spec.colour]) if spec.colour in COLOURS else _bgr((30, 30, 32))
    if spec.shape == "sunglasses":
        tint = _bgr(SUN_TINTS.get(spec.colour, SUN_TINTS["dark"]))
        frame_col = _bgr((28, 28, 30))
        lens_alpha = rng.uniform(0.85, 0.95)
    else:
        tint = np.array([0.85, 0.85, 0.8], np.float32)
        lens_alpha = rng.uniform(0.08, 0.16)
    parts: list[_Part] = []
    lenses = []
    edges = []
    for eye in (S.EYE_RIGHT, S.EYE_LEFT):
        e = q[eye]
        c = e.mean(axis=0) - np.array([0, 0.02 * frame.length])
        ew = float(np.ptp(e[:, 0]))
        ew = max(ew, 0.12 * frame.length)
        a = 0.5 * ew * rng.uniform(1.55, 1.75)
        b = a * {"round": 0.85, "rect": 0.68, "aviator": 0.9}[spec.form]
        if spec.form == "round":
            lens = _ellipse(c[0], c[1], a, b)
        elif spec.form == "rect":
            lens = _rounded_rect(c[0], c[1], 2 * a, 2 * b, 0.35 * b)
        else:  # aviator: a teardrop, fuller at the bottom outer side
            lens = _ellipse(c[0], c[1], a, b)
            outer = np.sign(c[0] - q[27, 0]) or 1.0
            lower = lens[:, 1] > c[1]
            lens[lower, 1] += 0.25 * b * np.clip((lens[lower, 0] - c[0]) * outer / a + 0.5, 0, 1.5)
        lenses.append(lens)
        edges.append((lens[np.argmin(lens[:, 0])], lens[np.argmax(lens[:, 0])]))
        parts.append(_Part(lens, tint, alpha=lens_alpha, stroke=frame_col, stroke_width=line))
        glint = _ellipse(c[0] - 0.35 * a, c[1] - 0.35 * b, 0.22 * a, 0.1 * b, angle=-0.5)
        shine = 0.35 if spec.shape == "sunglasses" else 0.25
        parts.append(_Part(glint, np.array([1.0, 1.0, 1.0], np.float32), alpha=shine))
    inner_l, inner_r = edges[0][1], edges[1][0]
    mid = (inner_l + inner_r) / 2 - np.array([0, 0.04 * frame.length])
    bridge = np.array([inner_l, mid, inner_r])
    parts.append(_Part(bridge, frame_col, stroke=frame_col, stroke_width=line, closed=False, fill=False))
    for outer, jaw in ((edges[0][0], q[0]), (edges[1][1], q[16])):
        if np.hypot(*(jaw - outer)) > line:
            temple = np.array([outer, (outer * 0.4 + jaw * 0.6), jaw])
            parts.append(_Part(temple, frame_col, stroke=frame_col, stroke_width=line, closed=False, fill=False))
    return parts, lenses


def apply_occluder(image: np.ndarray, points: np.ndarray, spec: OccluderSpec, rng: np.random.Generator) -> Placed:
    """Draw one occluder on the face with 68 landmarks ``points`` (BGR uint8 in; copy out)."""
    frame = G.FaceFrame.from_points(points)
    box = _face_box(frame)
    line = max(0.02 * frame.length, 0.5)
    drawing = _Drawing()
    polygon: np.ndarray
    if spec.type == "glasses":
        parts, lenses = _glasses(frame, spec, rng)
        drawing = _Drawing(parts, texture=0.02, gradient=0.1)
        out, alpha = _render(image, frame, drawing, rng)
        polygons = [frame.from_frame(p) for p in lenses]
        return Placed(image=out, alpha=alpha, polygon=np.vstack(polygons), view=spec.variant)
    size = float(np.clip(spec.size, 0.05, 1.0))
    if spec.shape == "hand":
        colour = skin_colour(image, frame) * rng.uniform(0.92, 1.08)
    else:
        colour = _bgr(COLOURS[spec.colour])
    over = 0.08 * box.width  # shapes run a little past the face's sides
    if spec.type == "upper":
        band = (box.left - over, box.right + over, box.top - 0.08 * box.height, box.top + size * box.height)
    elif spec.type == "bottom":
        band = (box.left - over, box.right + over, box.bottom - size * box.height, box.bottom + 0.08 * box.height)
    else:
        cut = size * box.width
        if spec.side == "left":
            band = (box.left - over, box.left + cut, box.top + 0.05 * box.height, box.bottom + 0.05 * box.height)
        else:
            band = (box.right - cut, box.right + over, box.top + 0.05 * box.height, box.bottom + 0.05 * box.height)
    if spec.shape == "hand":
        hand = _hand(rng, colour.astype(np.float32), line=0.03)
        q = frame.to_frame(frame.points)
        if spec.type == "left_right":
            tilt = np.radians(rng.uniform(-12, 12))
            parts = _fit(hand, band, tilt, "x", min_other=0.9 * box.height, centre=q[S.NOSE_TIP])
        else:
            # across the face: over the eyes (upper) or the mouth (bottom), jittered sideways
            sideways = np.radians(rng.choice([-1, 1]) * rng.uniform(75, 100))
            target = q[S.EYES].mean(axis=0) if spec.type == "upper" else q[S.MOUTH_OUTER].mean(axis=0)
            target = target + np.array([rng.uniform(-0.08, 0.08) * box.width, 0.0])
            parts = _fit(hand, band, sideways, "y", min_other=0.85 * box.width, centre=target)
        drawing = _Drawing(parts, texture=0.03, gradient=0.12)
    elif spec.shape == "scarf":
        scarf = _scarf(band, colour, rng, vertical=spec.type == "left_right", line=line)
        drawing = _Drawing(scarf, texture=0.08, gradient=0.2)
    else:
        drawing = _Drawing(_object(band, colour, rng, line=line), texture=0.03, gradient=0.25)
    out, alpha = _render(image, frame, drawing, rng)
    polygon = frame.from_frame(np.vstack([p.polygon for p in drawing.parts if p.fill]))
    return Placed(image=out, alpha=alpha, polygon=polygon, view=spec.variant)


def covered_fraction(alpha: np.ndarray, points: np.ndarray, frame: G.FaceFrame | None = None) -> float:
    """Mean occluder alpha over the visible face region (jaw contour closed over the forehead)."""
    region = G.face_region(S.as_points(points), frame)
    rect = bounding_rect(region, alpha.shape, margin=1)
    if rect is None:
        return 0.0
    x0, y0, w, h = rect
    m = G.polygon_mask(region - [x0, y0], (h, w), supersample=1)
    total = float(m.sum())
    return float((alpha[y0 : y0 + h, x0 : x0 + w] * m).sum() / total) if total > 0 else 0.0


# --- occluders on small face crops (the occlusion scorer's pre-training) ---------------------------


def occlude_crop(face: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One occluder of occlusion type ``kind`` (``mask``, or one of :data:`OCCLUDER_TYPES`) painted on a
    FER-style grey face crop (uint8, square); returns the grey crop.

    A crop comes without landmarks, so the mean landmarks of a FER2013-style crop
    (:func:`shapes.crop_prior`) stand in, moved by a small random similarity (faces sit a little
    differently in every crop); the mask (:func:`fercurate.synth.masks.apply_mask`, a random style) or
    occluder (:func:`apply_occluder`, a random spec) is drawn on them as on a full image.
    """
    if face.ndim != 2 or face.shape[0] != face.shape[1]:
        raise ValueError(f"a face crop is a square grey image, got shape {face.shape}")
    size = face.shape[0]
    centre = np.array([size / 2, size / 2])
    angle, scale = np.radians(rng.uniform(-8, 8)), rng.uniform(0.92, 1.08)
    turn = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (S.crop_prior(size, size) - centre) @ turn.T + centre + rng.uniform(-1.5, 1.5, 2)
    image = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
    if kind == "mask":
        spec = choose_mask_spec(MASK_STYLES[int(rng.integers(len(MASK_STYLES)))], rng)
        placed = apply_mask(image, points, spec, rng)
    elif kind in OCCLUDER_TYPES:
        placed = apply_occluder(image, points, choose_spec(kind, rng), rng)
    else:
        raise ValueError(f"unknown occlusion type {kind!r} for a crop (known: mask, {', '.join(OCCLUDER_TYPES)})")
    return cv2.cvtColor(placed.image, cv2.COLOR_BGR2GRAY)
