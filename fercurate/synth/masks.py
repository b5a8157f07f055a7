"""Face masks placed from landmarks: procedural styles (surgical, cloth, N95, KN95) and user templates.

A procedural mask is drawn in the frame of the mean frontal face (``shapes.mean_shape``): its
outline is :func:`outline.mask_outline` of the mean face, so the 18 outline anchors correspond
one-to-one to the same anchors computed on the real face, and a thin-plate spline through them
carries the drawing (pleats, seams, shading, texture) onto the face, following the jaw, the nose and
head turns. A user template is warped the same way through its six anchors.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, replace

import cv2
import numpy as np

from fercurate.synth import outline as G
from fercurate.synth import shapes as S
from fercurate.synth.templates import Template, pick_view
from fercurate.synth.warp import ThinPlateSpline, bounding_rect, composite, paste_alpha, premultiply, warp_rgba

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


_BOTTOM_EDGE = np.r_[4:18, 0]


def _edge_profile(outline: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top and bottom y of the outline at each x (template pixels)."""
    top = outline[:5]
    bottom = outline[_BOTTOM_EDGE]
    t_order, b_order = np.argsort(top[:, 0]), np.argsort(bottom[:, 0])
    y_top = np.interp(xs, top[t_order, 0], top[t_order, 1])
    y_bot = np.interp(xs, bottom[b_order, 0], bottom[b_order, 1])
    return y_top, y_bot


# Procedural masks are drawn as colour-free *shading templates*: channel 0 the light (x 1/LIGHT_SCALE),
# channel 1 where the second colour of a pattern goes, channel 3 the alpha. They are tinted after the
# warp, so one template serves every colour. Templates come from a pool: POOL_SIZE seeded renderings
# per style/texture/size, one picked per image by the image's own generator (rendering one per image
# costs more than the rest of the mask put together). Sizes are half octaves of px per eye distance.
POOL_SIZE = 6
LIGHT_SCALE = 1.5
_PX_MIN, _PX_MAX = 24.0, 256.0
_POOL_BYTES = 160 * 2**20  # per process
_POOL: OrderedDict[tuple[str, str, float, int], Template] = OrderedDict()


def px_bucket(px: float) -> float:
    """Round a template scale to a half octave, so faces of similar size share templates."""
    px = float(np.clip(px, _PX_MIN, _PX_MAX))
    return float(2 ** (np.round(np.log2(px) * 2) / 2))


def pooled_template(style: str, texture: str, px: float, index: int) -> Template:
    """Shading template ``index`` of the pool for this style/texture at ``px`` (deterministic)."""
    key = (style, texture, px, index)
    tpl = _POOL.get(key)
    if tpl is not None:
        _POOL.move_to_end(key)
        return tpl
    digest = hashlib.blake2b(f"{style}|{texture}|{px:.4f}|{index}".encode(), digest_size=8).digest()
    r = np.random.Generator(np.random.PCG64(int.from_bytes(digest, "little")))
    tpl = render_procedural(style, texture, r, px)
    tpl = replace(tpl, premultiplied=premultiply(tpl.rgba))
    _POOL[key] = tpl
    while sum(t.premultiplied.nbytes for t in _POOL.values()) > _POOL_BYTES and len(_POOL) > 1:
        _POOL.popitem(last=False)
    return tpl


def render_procedural(style: str, texture: str, rng: np.random.Generator, px_per_unit: float) -> Template:
    """Draw a procedural mask's shading on the mean face at ``px_per_unit`` px per eye distance.

    Colours and head-turn lighting are not baked in: :func:`place_template` applies them per pixel.
    """
    mean = S.mean_shape() * px_per_unit
    outline = G.mask_outline(mean, checks=False)
    pad = 3.0
    offset = outline.min(axis=0) - pad
    mean -= offset
    outline -= offset
    w, h = (np.ceil(outline.max(axis=0) + pad)).astype(int)
    fill = np.zeros((h, w), np.uint8)
    cv2.fillPoly(fill, [np.round(outline * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=2)

    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    y_top, y_bot = _edge_profile(outline, xs[0])
    v = (ys - y_top[None, :]) / np.maximum(y_bot - y_top, 1.0)[None, :]  # 0 top edge .. 1 bottom edge
    edge_dist = cv2.distanceTransform((fill > 0).astype(np.uint8), cv2.DIST_L2, 3) / px_per_unit  # face units

    pattern = np.zeros((h, w), np.float32)  # 1 where a pattern's second colour goes
    light = 1.0 - 0.10 * np.clip(v - 0.6, 0, None)  # the part under the chin faces down
    grain = _smooth_noise(rng, h, w, max(1.5, px_per_unit * 0.02))
    strength = {"surgical": 0.025, "cloth": 0.05, "n95": 0.04, "kn95": 0.02}[style]
    light *= 1.0 + strength * grain

    centre_x = mean[27, 0]
    if style == "surgical":
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
    elif style == "cloth":
        period = px_per_unit * rng.uniform(0.12, 0.22)
        if texture == "stripes":
            angle = rng.uniform(-0.8, 0.8)
            t = (xs * np.sin(angle) + ys * np.cos(angle)) / period
            pattern = (np.mod(t, 1.0) < 0.35).astype(np.float32)
        elif texture == "checks":
            a = np.mod(xs / period, 1.0) < 0.4
            b = np.mod(ys / period, 1.0) < 0.4
            pattern = (a.astype(np.float32) + b.astype(np.float32)) * 0.35
        elif texture == "dots":
            cx = np.mod(xs / period, 1.0) - 0.5
            cy = np.mod(ys / period + 0.5 * (np.floor(xs / period) % 2), 1.0) - 0.5
            pattern = (cx**2 + cy**2 < 0.06).astype(np.float32)
        weave = np.sin(xs * np.pi / 1.1) * np.sin(ys * np.pi / 1.1)
        light *= 1.0 + 0.03 * weave
        seam = np.abs(xs - centre_x) < max(0.6, 0.012 * px_per_unit)
        light *= np.where(seam & (v > 0.02), 0.75, 1.0)
        light *= 0.9 + 0.1 * np.clip(edge_dist / 0.25, 0, 1)  # soft fabric edge falls off
    elif style == "n95":
        dome = np.clip(edge_dist / 0.45, 0, 1)
        light *= 0.80 + 0.22 * np.sqrt(dome)
        light *= np.where(edge_dist < 0.06, 0.86, 1.0)  # rim seam
        weld = np.abs(v - 0.33) < 0.012
        light *= np.where(weld, 0.9, 1.0)
        clip = (v < 0.07) & (np.abs(xs - centre_x) < 0.3 * px_per_unit)
        light *= np.where(clip, 1.1, 1.0)
        if texture == "valve":
            side = 1 if rng.random() < 0.5 else -1
            vx = centre_x + side * 0.42 * px_per_unit
            vy = mean[57, 1] - 0.05 * px_per_unit
            r = np.hypot(xs - vx, ys - vy) / px_per_unit
            body = r < 0.22
            light *= np.where(body, 0.9, 1.0)
            ridges = body & (np.sin(np.arctan2(ys - vy, xs - vx) * 14) > 0.6) & (r < 0.17)
            light *= np.where(ridges, 0.8, 1.0)
            light *= np.where(np.abs(r - 0.22) < 0.02, 0.7, 1.0)
    elif style == "kn95":
        fold = xs - centre_x
        light *= np.where(fold < 0, 0.93, 1.02)
        light *= np.where(np.abs(fold) < max(0.5, 0.01 * px_per_unit), 0.8, 1.0)
        band = edge_dist < 0.07
        dots = band & (np.sin(xs * 1.6) * np.sin(ys * 1.6) > 0.55)
        light *= np.where(band, 0.95, 1.0) * np.where(dots, 0.88, 1.0)

    shading = np.dstack(
        [np.clip(light / LIGHT_SCALE, 0, 1) * 255.0, pattern * 255.0, np.zeros_like(light), fill.astype(np.float32)]
    )
    rgba = np.round(shading).astype(np.uint8)
    return Template(name=f"{style}:{texture}", rgba=rgba, anchors=outline, outline=outline, shading=True)


_SHRUNK: dict[tuple[str, int, float], Template] = {}


def _shrunk(template: Template, factor: float) -> Template:
    """A user template scaled down by ``factor`` (a quarter octave), cached per process."""
    key = (template.name, id(template.rgba), factor)
    if key not in _SHRUNK:
        if len(_SHRUNK) > 128:
            _SHRUNK.clear()
        small = template.scaled(factor)
        _SHRUNK[key] = replace(small, premultiplied=premultiply(small.rgba))
    return _SHRUNK[key]


def place_template(
    image: np.ndarray,
    points: np.ndarray,
    template: Template,
    *,
    face_outline: np.ndarray | None = None,
    brightness: float = 1.0,
    yaw: float | None = None,
    tint: tuple[np.ndarray, np.ndarray] | None = None,
) -> Placed:
    """Warp ``template`` onto the face given by 68 ``points`` and composite it (BGR uint8, copied).

    A procedural template carries the 18 outline anchors; a user template its six a..f anchors.
    With ``yaw`` (degrees) the warped mask is lit as a cylinder turned with the head: the side
    facing away from the camera gets darker. A shading template is coloured with ``tint`` (main and
    pattern colour, BGR 0..1).
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
        source = template.premultiplied if template.premultiplied is not None else premultiply(template.rgba)
        layer, tx = warp_rgba(source, inverse, rect)
        gain = np.float32(brightness)
        if yaw is not None:
            x_lo, x_hi = src[:, 0].min(), src[:, 0].max()
            u = (tx - x_lo) / max(x_hi - x_lo, 1.0)
            gain = gain * (0.72 + 0.28 * np.cos((u - 0.5) * (np.pi * 0.85) + np.radians(yaw) * 0.7))
        if template.shading:
            colour = _shaded(layer, *(tint if tint is not None else (np.ones(3, np.float32),) * 2), gain)
        else:
            colour = cv2.cvtColor(layer, cv2.COLOR_BGRA2BGR)
            colour = colour * (gain if np.ndim(gain) == 0 else gain[..., None])
        alpha = np.ascontiguousarray(layer[..., 3])
        composite(out, colour, alpha, rect)
        paste_alpha(alpha_full, alpha, rect)
    return Placed(image=out, alpha=alpha_full, polygon=polygon, view=template.name)


def _shaded(layer: np.ndarray, main: np.ndarray, second: np.ndarray, gain: np.ndarray | np.float32) -> np.ndarray:
    """Premultiplied (light, pattern, -, alpha) -> premultiplied BGR in the given colours, lit by ``gain``.

    With L the unpremultiplied light (``LIGHT_SCALE * layer[0] / alpha``) and P, A the premultiplied
    pattern and alpha, each colour channel is ``gain * L * (main * (A - P) + second * P)``: one
    ``cv2.transform`` for the colour mix, one multiply for the light (7x faster than numpy broadcasting).
    """
    alpha = layer[..., 3]
    light = layer[..., 0] * np.float32(LIGHT_SCALE)
    light /= np.maximum(alpha, np.float32(1e-6))
    light *= gain
    mix = np.zeros((3, 4), np.float32)  # rows B, G, R over the inputs (light, pattern, -, alpha)
    mix[:, 1] = np.asarray(second, np.float32) - np.asarray(main, np.float32)
    mix[:, 3] = main
    return cv2.multiply(cv2.transform(layer, mix), cv2.merge([light, light, light]))


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
    template = pooled_template(spec.style, spec.texture, px, int(rng.integers(POOL_SIZE)))
    main = _bgr(PALETTES[spec.style][spec.colour])
    others = [c for c in PALETTES[spec.style] if c != spec.colour]
    second = _bgr(PALETTES[spec.style][others[int(rng.integers(len(others)))]])
    if np.abs(second - main).sum() < 0.3:
        second = 1.0 - main * 0.6
    placed = place_template(
        image, points, template, face_outline=outline, brightness=gain, yaw=frame.yaw, tint=(main, second)
    )
    placed.view = spec.variant
    if loops and spec.style in ("surgical", "kn95", "cloth"):
        loop_colour = _bgr(PALETTES[spec.style][spec.colour]) * 0.9 * gain
        draw_ear_loops(placed.image, frame, outline, loop_colour)
    return placed
