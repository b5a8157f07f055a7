"""Face masks placed from landmarks: procedural styles (surgical, cloth, N95, KN95) and user templates.

A procedural mask is drawn in the frame of the mean frontal face (``shapes.mean_shape``): its
outline is :func:`geometry.mask_outline` of the mean face, so the 18 outline anchors correspond
one-to-one to the same anchors computed on the real face, and a thin-plate spline through them
carries the drawing (pleats, seams, shading, texture) onto the face, following the jaw, the nose and
head turns. A user template is warped the same way through its six anchors.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from fercurate.synth import geometry as G
from fercurate.synth import shapes as S
from fercurate.synth.templates import Template, pick_view
from fercurate.synth.warp import ThinPlateSpline, bounding_rect, composite, paste_alpha, warp_rgba

# Colours as RGB (converted to BGR when drawing); the first is the default.
PALETTES: dict[str, dict[str, tuple[int, int, int]]] = {
    "surgical": {
        "blue": (150, 196, 222),
        "white": (238, 238, 236),
        "green": (160, 208, 182),
        "pink": (238, 182, 200),
        "black": (42, 42, 46),
    },
    "cloth": {
        "black": (36, 36, 40),
        "navy": (34, 44, 84),
        "grey": (128, 128, 132),
        "red": (168, 34, 44),
        "olive": (104, 112, 62),
        "beige": (204, 184, 152),
        "denim": (72, 102, 142),
    },
    "n95": {
        "white": (236, 236, 230),
        "offwhite": (226, 220, 204),
        "grey": (188, 188, 190),
    },
    "kn95": {
        "white": (240, 240, 240),
        "black": (38, 38, 40),
        "grey": (150, 150, 154),
        "pink": (236, 176, 192),
        "blue": (124, 170, 220),
    },
}
# Texture options per style (the first is the plain default, left out of the variant name).
TEXTURES: dict[str, tuple[str, ...]] = {
    "surgical": ("pleated",),
    "cloth": ("plain", "stripes", "checks", "dots"),
    "n95": ("plain", "valve"),
    "kn95": ("plain",),
}
STYLES: tuple[str, ...] = tuple(PALETTES)
TEMPLATE_COLOUR = "template"  # the colour field of a user-template spec (its colours are its own)


@dataclass(frozen=True)
class MaskSpec:
    """Which mask to draw: a procedural ``style`` with colour/texture, or a user template style
    (colour ``template``; its views are attached by the process that draws it)."""

    style: str
    colour: str
    texture: str = ""
    template_views: tuple[Template, ...] = ()

    @property
    def is_template(self) -> bool:
        return self.colour == TEMPLATE_COLOUR

    @property
    def variant(self) -> str:
        if self.is_template:
            return f"mask:{self.style}:{TEMPLATE_COLOUR}"
        parts = ["mask", self.style, self.colour]
        if self.texture and self.texture != TEXTURES[self.style][0]:
            parts.append(self.texture)
        return ":".join(parts)


def choose_spec(
    style: str, rng: np.random.Generator, colours: list[str] | None = None, textures: list[str] | None = None
) -> MaskSpec:
    """A procedural spec with colour and texture drawn from the allowed lists (all when None)."""
    palette = list(PALETTES[style])
    allowed = [c for c in (colours or palette) if c in PALETTES[style]] or palette
    colour = allowed[int(rng.integers(len(allowed)))]
    tex_allowed = [t for t in (textures or TEXTURES[style]) if t in TEXTURES[style]] or list(TEXTURES[style])
    texture = tex_allowed[int(rng.integers(len(tex_allowed)))]
    return MaskSpec(style=style, colour=colour, texture=texture)


@dataclass
class Placed:
    """What drawing an occluder did: the output image, its coverage map and outline in the image."""

    image: np.ndarray
    alpha: np.ndarray  # float32 coverage, image size
    polygon: np.ndarray  # outline in image pixels
    view: str = ""


def _bgr(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.array(rgb[::-1], dtype=np.float32) / 255.0


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Zero-mean smooth noise (std ~1) with features about ``cell`` pixels wide."""
    gh, gw = max(2, int(np.ceil(h / cell)) + 1), max(2, int(np.ceil(w / cell)) + 1)
    small = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _edge_profile(outline: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top and bottom y of the outline at each x (template pixels)."""
    top = outline[:5]
    bottom = outline[np.r_[4:18, 0]]
    t_order, b_order = np.argsort(top[:, 0]), np.argsort(bottom[:, 0])
    y_top = np.interp(xs, top[t_order, 0], top[t_order, 1])
    y_bot = np.interp(xs, bottom[b_order, 0], bottom[b_order, 1])
    return y_top, y_bot


# Procedural textures come from a pool: POOL_SIZE seeded renderings per style/colour/texture/size,
# one picked per image by the image's own generator (drawing one per image costs more than the rest
# of the mask put together). Size buckets are quarter octaves of pixels per inter-ocular distance.
POOL_SIZE = 8
_PX_MIN, _PX_MAX = 24.0, 256.0


def px_bucket(px: float) -> float:
    """Round a template scale to a quarter octave, so faces of similar size share templates."""
    px = float(np.clip(px, _PX_MIN, _PX_MAX))
    return float(2 ** (np.round(np.log2(px) * 4) / 4))


@lru_cache(maxsize=256)
def pooled_template(style: str, colour: str, texture: str, px: float, index: int) -> Template:
    """Pattern ``index`` of the pool for this style/colour/texture at ``px`` (deterministic)."""
    key = f"{style}|{colour}|{texture}|{px:.4f}|{index}".encode()
    seed = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
    r = np.random.Generator(np.random.PCG64(seed))
    return render_procedural(MaskSpec(style, colour, texture), r, px)


def render_procedural(spec: MaskSpec, rng: np.random.Generator, px_per_unit: float) -> Template:
    """Draw a procedural mask on the mean face at ``px_per_unit`` pixels per inter-ocular distance.

    Head-turn shading is not baked in: :func:`place_template` lights the warped mask per pixel.
    """
    mean = S.mean_shape() * px_per_unit
    outline = G.mask_outline(mean, checks=False)
    pad = 3.0
    offset = outline.min(axis=0) - pad
    mean -= offset
    outline -= offset
    w, h = (np.ceil(outline.max(axis=0) + pad)).astype(int)
    fill = np.zeros((h, w), np.uint8)
    ss = 4
    cv2.fillPoly(fill, [np.round(outline * ss).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=2)
    alpha = fill.astype(np.float32) / 255.0

    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    y_top, y_bot = _edge_profile(outline, xs[0])
    v = (ys - y_top[None, :]) / np.maximum(y_bot - y_top, 1.0)[None, :]  # 0 top edge .. 1 bottom edge
    inside = (fill > 0).astype(np.uint8)
    edge_dist = cv2.distanceTransform(inside, cv2.DIST_L2, 3) / px_per_unit  # in face units

    base = _bgr(PALETTES[spec.style][spec.colour])
    colour = np.ones((h, w, 3), np.float32) * base
    light = np.ones((h, w), np.float32)
    light *= 1.0 - 0.10 * np.clip(v - 0.6, 0, None)  # the part under the chin faces down
    grain = _smooth_noise(rng, h, w, max(1.5, px_per_unit * 0.02))
    strength = {"surgical": 0.025, "cloth": 0.05, "n95": 0.04, "kn95": 0.02}[spec.style]
    light *= 1.0 + strength * grain

    centre_x = mean[27, 0]
    if spec.style == "surgical":
        folds = np.sort(rng.uniform(0.22, 0.78, size=3)) if rng.random() < 0.3 else np.array([0.3, 0.5, 0.7])
        folds = folds + rng.uniform(-0.03, 0.03, size=3)
        width = 0.06
        for f in folds:
            d = v - f
            light *= 1.0 - 0.22 * np.exp(-((d - width / 2) / (width / 2)) ** 2) * (d > 0)
            light *= 1.0 + 0.10 * np.exp(-((d + width / 3) / (width / 3)) ** 2)
        band = edge_dist < 0.09
        light *= np.where(band, 1.06, 1.0)
        stitch = band & (np.abs(edge_dist - 0.045) < 0.012) & (np.sin(xs * 2.2 + ys * 2.2) > 0.3)
        light *= np.where(stitch, 0.9, 1.0)
        wire = (v < 0.06) & (np.abs(xs - centre_x) < 0.35 * px_per_unit)
        light *= np.where(wire, 1.08, 1.0)
    elif spec.style == "cloth":
        second = _bgr(PALETTES["cloth"][list(PALETTES["cloth"])[int(rng.integers(len(PALETTES["cloth"])))]])
        if np.abs(second - base).sum() < 0.3:
            second = 1.0 - base * 0.6
        period = px_per_unit * rng.uniform(0.12, 0.22)
        if spec.texture == "stripes":
            angle = rng.uniform(-0.8, 0.8)
            t = (xs * np.sin(angle) + ys * np.cos(angle)) / period
            m = (np.mod(t, 1.0) < 0.35)[..., None]
            colour = np.where(m, second, colour)
        elif spec.texture == "checks":
            a = np.mod(xs / period, 1.0) < 0.4
            b = np.mod(ys / period, 1.0) < 0.4
            mix = (a.astype(np.float32) + b.astype(np.float32))[..., None] * 0.35
            colour = colour * (1 - mix) + second * mix
        elif spec.texture == "dots":
            cx = np.mod(xs / period, 1.0) - 0.5
            cy = np.mod(ys / period + 0.5 * (np.floor(xs / period) % 2), 1.0) - 0.5
            m = (cx**2 + cy**2 < 0.06)[..., None]
            colour = np.where(m, second, colour)
        weave = np.sin(xs * np.pi / 1.1) * np.sin(ys * np.pi / 1.1)
        light *= 1.0 + 0.03 * weave
        seam = np.abs(xs - centre_x) < max(0.6, 0.012 * px_per_unit)
        light *= np.where(seam & (v > 0.02), 0.75, 1.0)
        light *= 0.9 + 0.1 * np.clip(edge_dist / 0.25, 0, 1)  # soft fabric edge falls off
    elif spec.style == "n95":
        dome = np.clip(edge_dist / 0.45, 0, 1)
        light *= 0.80 + 0.22 * np.sqrt(dome)
        light *= np.where(edge_dist < 0.06, 0.86, 1.0)  # rim seam
        weld = np.abs(v - 0.33) < 0.012
        light *= np.where(weld, 0.9, 1.0)
        clip = (v < 0.07) & (np.abs(xs - centre_x) < 0.3 * px_per_unit)
        light *= np.where(clip, 1.1, 1.0)
        if spec.texture == "valve":
            side = 1 if rng.random() < 0.5 else -1
            vx = centre_x + side * 0.42 * px_per_unit
            vy = mean[57, 1] - 0.05 * px_per_unit
            r = np.hypot(xs - vx, ys - vy) / px_per_unit
            body = r < 0.22
            colour = np.where(body[..., None], colour * 0.9, colour)
            ridges = body & (np.sin(np.arctan2(ys - vy, xs - vx) * 14) > 0.6) & (r < 0.17)
            light *= np.where(ridges, 0.8, 1.0)
            light *= np.where(np.abs(r - 0.22) < 0.02, 0.7, 1.0)
    elif spec.style == "kn95":
        fold = xs - centre_x
        light *= np.where(fold < 0, 0.93, 1.02)
        light *= np.where(np.abs(fold) < max(0.5, 0.01 * px_per_unit), 0.8, 1.0)
        band = edge_dist < 0.07
        dots = band & (np.sin(xs * 1.6) * np.sin(ys * 1.6) > 0.55)
        light *= np.where(band, 0.95, 1.0) * np.where(dots, 0.88, 1.0)

    rgb = np.clip(colour * light[..., None], 0, 1)
    rgba = np.dstack([rgb * 255.0, alpha * 255.0]).astype(np.uint8)
    return Template(name=spec.variant, rgba=rgba, anchors=outline, outline=outline)


_SHRUNK: dict[tuple[str, int, float], Template] = {}


def _shrunk(template: Template, factor: float) -> Template:
    """A user template scaled down by ``factor`` (a quarter octave), cached per process."""
    key = (template.name, id(template.rgba), factor)
    if key not in _SHRUNK:
        if len(_SHRUNK) > 128:
            _SHRUNK.clear()
        _SHRUNK[key] = template.scaled(factor)
    return _SHRUNK[key]


def place_template(
    image: np.ndarray,
    points: np.ndarray,
    template: Template,
    *,
    face_outline: np.ndarray | None = None,
    brightness: float = 1.0,
    yaw: float | None = None,
) -> Placed:
    """Warp ``template`` onto the face given by 68 ``points`` and composite it (BGR uint8, copied).

    A procedural template carries the 18 outline anchors; a user template its six a..f anchors.
    With ``yaw`` (degrees) the warped mask is lit as a cylinder turned with the head: the side
    facing away from the camera gets darker.
    """
    outline = face_outline if face_outline is not None else G.mask_outline(points)
    procedural = len(template.anchors) == len(outline)
    dst = outline if procedural else outline[list(G.TEMPLATE_ANCHORS.values())]
    src = template.anchors
    # shrink big templates first so the warp samples them without aliasing
    span_img = float(np.ptp(dst[:, 0])) or 1.0
    span_tpl = float(np.ptp(src[:, 0])) or 1.0
    factor = min(1.0, 2.0 * span_img / span_tpl)
    if factor < 0.999:
        before = np.array(template.rgba.shape[1::-1], dtype=np.float64)
        template = _shrunk(template, float(2 ** (np.ceil(np.log2(factor) * 4) / 4)))
        src = src * np.array(template.rgba.shape[1::-1], dtype=np.float64) / before
    inverse = ThinPlateSpline.fit(dst, src)
    if procedural:
        # the spline passes through every outline anchor: the outline is the drawn edge
        polygon = _densify(outline)
    else:
        polygon = ThinPlateSpline.fit(src, dst)(_densify(template.outline))
    out = image.copy()
    alpha_full = np.zeros(image.shape[:2], np.float32)
    rect = bounding_rect(polygon, image.shape, margin=2.0 + 0.02 * span_img)
    if rect is not None:
        layer, tx = warp_rgba(template.rgba, inverse, rect)
        gain = np.float32(brightness)
        if yaw is not None:
            x_lo, x_hi = src[:, 0].min(), src[:, 0].max()
            u = (tx - x_lo) / max(x_hi - x_lo, 1.0)
            gain = gain * (0.72 + 0.28 * np.cos((u - 0.5) * (np.pi * 0.85) + np.radians(yaw) * 0.7))
        if yaw is not None or brightness != 1.0:
            layer[..., :3] *= gain if np.ndim(gain) == 0 else gain[..., None]
        composite(out, layer, rect)
        paste_alpha(alpha_full, layer[..., 3], rect)
    return Placed(image=out, alpha=alpha_full, polygon=polygon, view=template.name)


def _densify(poly: np.ndarray, per_edge: int = 4) -> np.ndarray:
    nxt = np.roll(poly, -1, axis=0)
    t = np.arange(per_edge, dtype=np.float64)[None, :, None] / per_edge
    return (poly[:, None, :] * (1 - t) + nxt[:, None, :] * t).reshape(-1, 2)


def face_brightness(image: np.ndarray, points: np.ndarray, frame: G.FaceFrame | None = None) -> float:
    """A gain matching the mask to the face's lighting (dim faces get a dimmer mask)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    region = G.face_region(points, frame)
    rect = bounding_rect(region, gray.shape, margin=0)
    if rect is None:
        return 1.0
    x0, y0, w, h = rect
    m = G.polygon_mask(region - [x0, y0], (h, w), supersample=1) > 0.5
    vals = gray[y0 : y0 + h, x0 : x0 + w][m]
    if vals.size < 4:
        return 1.0
    lum = float(np.median(vals))
    return float(np.clip((lum / 150.0) ** 0.5, 0.55, 1.05))


def draw_ear_loops(image: np.ndarray, frame: G.FaceFrame, outline: np.ndarray, colour_bgr: np.ndarray) -> None:
    """Thin elastic loops from the mask's side corners back towards the ears (in place)."""
    pts = frame.points
    thickness = max(1, int(round(frame.length * 0.015)))
    col = tuple(float(c) * 255.0 for c in colour_bgr)
    # half-widths of the mask left and right of the nose: a side much narrower than the other is
    # turned away from the camera, and its loop is hidden behind the face
    half = np.abs([(outline[2] - outline[0]) @ frame.right, (outline[4] - outline[2]) @ frame.right])
    for side, (top, bottom, ear_idx) in enumerate(((outline[0], outline[16], 0), (outline[4], outline[6], 16))):
        if half[side] < 0.6 * half[1 - side]:
            continue
        ear = pts[ear_idx] + (pts[ear_idx] - pts[27]) * 0.08
        for start in (top, bottom):
            mid = (start + ear) / 2 + (ear - start) @ np.array([[0, 1], [-1, 0]]) * 0.05
            curve = np.array([start, mid, ear])
            cv2.polylines(
                image, [np.round(curve * 4).astype(np.int32)], False, col, thickness, cv2.LINE_AA, shift=2
            )


def apply_mask(
    image: np.ndarray,
    points: np.ndarray,
    spec: MaskSpec,
    rng: np.random.Generator,
    *,
    loops: bool = True,
) -> Placed:
    """Draw the mask ``spec`` on the face with 68 landmarks ``points`` (BGR uint8 in, BGR out)."""
    shape = G.MaskShape().jittered(rng)
    frame = G.FaceFrame.from_points(points)
    outline = G.mask_outline(points, shape, frame)
    gain = face_brightness(image, points, frame)
    if spec.is_template:
        if not spec.template_views:
            raise ValueError(f"{spec.variant}: template views not loaded")
        top = outline[[0, 2, 4]]
        span = float((top[2] - top[0]) @ frame.right)
        ratio = float((top[1] - top[0]) @ frame.right) / span if abs(span) > 1e-6 else 0.5
        template = pick_view(list(spec.template_views), ratio)
        return place_template(image, points, template, face_outline=outline, brightness=gain)
    iod = float(np.hypot(*np.subtract(*S.eye_centres(frame.points))))
    px = px_bucket(1.5 * max(iod, frame.length / 1.7))
    template = pooled_template(spec.style, spec.colour, spec.texture, px, int(rng.integers(POOL_SIZE)))
    placed = place_template(image, points, template, face_outline=outline, brightness=gain, yaw=frame.yaw)
    if loops and spec.style in ("surgical", "kn95", "cloth"):
        loop_colour = _bgr(PALETTES[spec.style][spec.colour]) * 0.9 * gain
        draw_ear_loops(placed.image, frame, outline, loop_colour)
    return placed
