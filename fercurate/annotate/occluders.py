"""Quick synthetic occlusions on 48x48 grayscale faces, to train the occlusion scorer with no labels.

These are training material for :mod:`fercurate.annotate.suggest`, not the dataset variants of
``fercurate synth`` (which fits masks and glasses to landmarks at full resolution). Faces here are
FERPlus-like crops (eyes near row 18, mouth near row 36), so occluders are placed in that frame:

* ``mask``: a shaded polygon from the nose to the chin;
* ``glasses``: two frames (outlined or dark lenses) with a bridge and temples;
* ``upper`` / ``bottom`` / ``left_right``: a hand-like blob (palm + fingers) or a rounded object over
  the forehead, the mouth and chin, or one cheek, filled with a patch of *another real face image*
  (skin, hair or background texture), or, for ``upper``, a hair/hat band.

Everything is drawn from a ``numpy`` Generator, so a seed reproduces the same images.
"""

from __future__ import annotations

import cv2
import numpy as np

SIZE = 48
KINDS: tuple[str, ...] = ("mask", "glasses", "left_right", "upper", "bottom")
_SS = 4  # supersampling for smooth edges


def _texture(rng: np.random.Generator, base: float, amp: float) -> np.ndarray:
    small = rng.normal(0, 1, (6, 6)).astype(np.float32)
    tex = cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(-1, 1, SIZE, dtype=np.float32)[None, :] * rng.uniform(-20, 20)
    return np.clip(base + amp * tex + ramp, 0, 255)


def _alpha(draw) -> np.ndarray:  # noqa: ANN001 - a callable drawing on a supersampled canvas
    canvas = np.zeros((SIZE * _SS, SIZE * _SS), np.uint8)
    draw(canvas)
    return cv2.resize(canvas, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _hand(rng: np.random.Generator, cx: float, cy: float, w: float, h: float) -> np.ndarray:
    angle = rng.uniform(0, 360)

    def draw(c: np.ndarray) -> None:
        centre = (int(cx * _SS), int(cy * _SS))
        cv2.ellipse(c, centre, (int(w * _SS / 2), int(h * _SS / 2)), angle, 0, 360, 255, -1)
        fingers = int(rng.integers(3, 6))
        for k in range(fingers):
            a = np.deg2rad(angle - 60 + k * 120 / max(1, fingers - 1) + rng.normal(0, 8))
            length = rng.uniform(0.8, 1.4) * max(w, h) * _SS
            tip = (int(centre[0] + np.cos(a) * length), int(centre[1] - np.sin(a) * length))
            cv2.line(c, centre, tip, 255, max(1, int(rng.uniform(0.13, 0.2) * SIZE * _SS / 2)))

    return _alpha(draw)


def _blob(rng: np.random.Generator, cx: float, cy: float, w: float, h: float) -> np.ndarray:
    def draw(c: np.ndarray) -> None:
        if rng.random() < 0.5:
            cv2.ellipse(c, (int(cx * _SS), int(cy * _SS)), (int(w * _SS), int(h * _SS)), rng.uniform(0, 180),
                        0, 360, 255, -1)
        else:
            box = cv2.boxPoints(((cx * _SS, cy * _SS), (w * 2 * _SS, h * 1.2 * _SS), rng.uniform(0, 180)))
            cv2.fillPoly(c, [box.astype(np.int32)], 255)

    return _alpha(draw)


def _where(rng: np.random.Generator, kind: str) -> tuple[float, float]:
    if kind == "upper":
        return rng.uniform(8, 40), rng.uniform(2, 14)
    if kind == "bottom":
        return rng.uniform(12, 36), rng.uniform(33, 46)
    side = rng.choice([-1, 1])
    return 24 + side * rng.uniform(11, 20), rng.uniform(18, 42)


def _glasses(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    y, dx, cx = rng.uniform(17, 22), rng.uniform(9, 12), 24 + rng.normal(0, 1.5)
    rw, rh = rng.uniform(5, 8), rng.uniform(3.5, 6)
    dark = rng.random() < 0.4
    thick = int(rng.uniform(3, 7))

    def draw(c: np.ndarray) -> None:
        for side in (-1, 1):
            cv2.ellipse(c, (int((cx + side * dx) * _SS), int(y * _SS)), (int(rw * _SS), int(rh * _SS)), 0, 0, 360,
                        255, -1 if dark else thick)
        ys = int(y * _SS)
        cv2.line(c, (int((cx - dx + rw) * _SS), ys), (int((cx + dx - rw) * _SS), ys), 255, thick)
        cv2.line(c, (int((cx - dx - rw) * _SS), ys), (0, int((y - 1) * _SS)), 255, thick)
        cv2.line(c, (int((cx + dx + rw) * _SS), ys), (SIZE * _SS, int((y - 1) * _SS)), 255, thick)

    a = _alpha(draw)
    tone = rng.uniform(0, 60)
    layer = _texture(rng, tone, 8) if dark else np.full((SIZE, SIZE), tone, np.float32)
    return face * (1 - a) + layer * a


def _mask(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    pts = np.array([
        [rng.uniform(2, 8), rng.uniform(24, 29)], [24, rng.uniform(22, 27)], [rng.uniform(40, 46), rng.uniform(24, 29)],
        [rng.uniform(40, 47), rng.uniform(38, 44)], [24, rng.uniform(46, 50)], [rng.uniform(1, 8), rng.uniform(38, 44)],
    ])
    a = _alpha(lambda c: cv2.fillPoly(c, [(pts * _SS).astype(np.int32)], 255))
    layer = _texture(rng, rng.uniform(170, 250) if rng.random() < 0.6 else rng.uniform(20, 90), 6)
    for _ in range(int(rng.integers(0, 3))):  # pleats
        row = int(rng.uniform(28, 42))
        layer[row : row + 1] *= 0.85
    return face * (1 - a) + layer * a


def _patch(face: np.ndarray, donor: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    """A hand- or object-shaped piece of another real image laid over the face."""
    cx, cy = _where(rng, kind)
    w, h = rng.uniform(7, 15), rng.uniform(6, 13)
    m = cv2.getRotationMatrix2D((rng.uniform(14, 34), rng.uniform(14, 34)), rng.uniform(0, 360), rng.uniform(0.8, 2.0))
    m[:, 2] += np.array([cx, cy]) - m[:, :2] @ np.array([24.0, 24.0])
    texture = cv2.warpAffine(donor.astype(np.float32), m, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)
    a = _hand(rng, cx, cy, w * 0.7, h * 0.7) if rng.random() < 0.6 else _blob(rng, cx, cy, w, h)
    a = cv2.GaussianBlur(a, (3, 3), 0)
    return face * (1 - a) + np.clip(texture * rng.uniform(0.7, 1.3), 0, 255) * a


def _drawn(face: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    """A flat-textured hand, object or (upper) hair band."""
    cx, cy = _where(rng, kind)
    w, h = rng.uniform(7, 14), rng.uniform(6, 12)
    style = rng.choice(["hand", "object", "hair"] if kind == "upper" else ["hand", "hand", "object"])
    if style == "hair":
        edge = cy + 4 * np.sin(np.linspace(0, rng.uniform(2, 8), SIZE) + rng.uniform(0, 6))
        a = (np.arange(SIZE)[:, None] < edge[None, :]).astype(np.float32)
        a = cv2.GaussianBlur(a, (3, 3), 0)
        base = rng.uniform(10, 80)
    elif style == "hand":
        a = _hand(rng, cx, cy, w, h)
        base = float(face.mean()) + rng.normal(0, 25)
    else:
        a = _blob(rng, cx, cy, w, h)
        base = rng.uniform(0, 255)
    return face * (1 - a) + _texture(rng, base, rng.uniform(5, 20)) * a


def occlude(face: np.ndarray, kind: str, rng: np.random.Generator, donor: np.ndarray | None = None) -> np.ndarray:
    """One synthetic occlusion of ``kind`` on a 48x48 uint8 face; returns uint8."""
    if face.shape != (SIZE, SIZE):
        raise ValueError(f"faces must be {SIZE}x{SIZE} grayscale, got {face.shape}")
    f = face.astype(np.float32)
    if kind == "glasses":
        out = _glasses(f, rng)
    elif kind == "mask":
        out = _mask(f, rng)
    elif kind in ("upper", "bottom", "left_right"):
        out = _patch(f, donor, rng, kind) if donor is not None and rng.random() < 0.7 else _drawn(f, rng, kind)
    else:
        raise ValueError(f"unknown occluder kind {kind!r} (known: {', '.join(KINDS)})")
    return np.clip(out, 0, 255).astype(np.uint8)


def synthetic_set(
    faces: np.ndarray, n: int, rng: np.random.Generator, occluded_fraction: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` training faces drawn from ``faces`` (N, 48, 48): a fraction occluded with a random kind.

    Returns (images (n, 48, 48) uint8, targets (n, 1 + len(KINDS)) float32: occluded, then one-hot kind).
    """
    if len(faces) < 2:
        raise ValueError("need at least two faces to draw synthetic occlusions from")
    pick = rng.integers(0, len(faces), n)
    out = faces[pick].copy()
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    targets = np.zeros((n, 1 + len(KINDS)), np.float32)
    for i in np.flatnonzero(rng.random(n) < occluded_fraction):
        k = int(rng.integers(0, len(KINDS)))
        donor = faces[int(rng.integers(0, len(faces)))]
        out[i] = occlude(out[i], KINDS[k], rng, donor)
        targets[i, 0] = 1.0
        targets[i, 1 + k] = 1.0
    return out, targets
