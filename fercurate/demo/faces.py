"""Real face photos that ship inside installed packages, and controlled variants of them.

The demo must run offline before a user owns any dataset, so its faces come from files that are
already on disk after ``pip install``:

* ``astronaut.png`` (scikit-image): NASA photo of Eileen Collins, public domain.
* ``camera.png`` (scikit-image): CC0 by the photographer, Lav Varshney.
* ``grace_hopper.jpg`` (matplotlib sample data): US Navy photo of Grace Hopper, public domain.
* ``lfw_subset.npy`` (scikit-image): 100 face crops (25x25 grey) from Labeled Faces in the Wild, as
  scikit-image ships them (LFW states no licence; they are used here only as the package ships them,
  never copied into the project).

Variants (yaw by a cylindrical warp, roll, scale, flip, brightness) make head-pose and quality
steps meaningful: the turned variants are what Pose subsets should catch, and the repeated
identities are the cross-split near-duplicates that ``quality dups`` should find.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

LICENCES = {
    "astronaut": "public domain (NASA; scikit-image sample data)",
    "camera": "CC0 (Lav Varshney; scikit-image sample data)",
    "grace_hopper": "public domain (US Navy; matplotlib sample data)",
    "lfw": "Labeled Faces in the Wild subset as shipped by scikit-image (no licence stated by LFW)",
}


@dataclass(frozen=True)
class BaseFace:
    """A square, roughly centred face crop (uint8 BGR) and where it came from."""

    name: str
    image: np.ndarray
    source: str
    licence: str


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found in package {package!r}")
    return path


def _square_crop(img: np.ndarray, box: tuple[float, float, float, float], margin: float) -> np.ndarray:
    x, y, w, h = box
    cx, cy, side = x + w / 2, y + h / 2, max(w, h) * (1 + margin)
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    pad = max(0, -x0, -y0, x0 + s - img.shape[1], y0 + s - img.shape[0])
    if pad:
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    return img[y0 : y0 + s, x0 : x0 + s].copy()


def _read_colour(path: Path) -> np.ndarray | None:
    """BGR pixels through fercurate's one image reader; None when the package's file is unreadable."""
    from fercurate.images import ImageReadError, read_image

    try:
        return read_image(path)
    except ImageReadError:
        return None


def _photo(name: str, path: Path, margin: float = 0.6) -> BaseFace | None:
    from fercurate.faces.detection import detect_faces

    img = _read_colour(path)
    if img is None:
        return None
    faces = detect_faces(img)
    if not faces:
        return None
    best = max(faces, key=lambda f: f.area)
    crop = _square_crop(img, best.bbox, margin)
    return BaseFace(name, cv2.resize(crop, (256, 256), interpolation=cv2.INTER_AREA), str(path), LICENCES[name])


def base_faces(include_lfw: bool = True) -> list[BaseFace]:
    """The offline faces: 3 photos (when a face is found in them) + up to 100 LFW crops."""
    photos = [
        ("astronaut", _package_file("skimage", "data", "astronaut.png")),
        ("camera", _package_file("skimage", "data", "camera.png")),
        ("grace_hopper", _package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")),
    ]
    out = [f for f in (_photo(n, p) for n, p in photos) if f is not None]
    if include_lfw:
        path = _package_file("skimage", "data", "lfw_subset.npy")
        lfw = np.load(path)[:100]  # the first 100 are faces, the rest background patches
        for i, face in enumerate(lfw):
            gray = (np.clip(face, 0, 1) * 255).astype(np.uint8)
            # The LFW crops are tight: pad a little so the face is framed like the photos above.
            padded = cv2.copyMakeBorder(gray, 3, 3, 3, 3, cv2.BORDER_REPLICATE)
            big = cv2.resize(padded, (128, 128), interpolation=cv2.INTER_CUBIC)
            out.append(BaseFace(f"lfw{i:03d}", cv2.cvtColor(big, cv2.COLOR_GRAY2BGR), f"{path}[{i}]", LICENCES["lfw"]))
    return out


def turn(img: np.ndarray, yaw_deg: float) -> np.ndarray:
    """Approximate a head turn by ``yaw_deg`` with a cylindrical warp (positive: toward the image's left)."""
    if abs(yaw_deg) < 1e-3:
        return img.copy()
    h, w = img.shape[:2]
    cx, r = w / 2.0 - 0.5, 0.42 * w  # the head: a vertical cylinder centred in the crop
    x = np.arange(w, dtype=np.float32)
    xs = (x - cx) / r
    inside = np.abs(xs) <= 1
    phi = np.arcsin(np.clip(xs, -1, 1)) + np.deg2rad(yaw_deg)  # where output x looks on the cylinder
    src_x = np.where(inside, np.sin(np.clip(phi, -np.pi / 2, np.pi / 2)) * r + cx, x).astype(np.float32)
    map_x = np.repeat(src_x[None, :], h, axis=0)
    map_y = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
    return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass(frozen=True)
class Variant:
    yaw: float = 0.0
    roll: float = 0.0
    scale: float = 1.0
    flip: bool = False
    brightness: float = 1.0

    def tag(self) -> str:
        return f"y{self.yaw:+.0f}r{self.roll:+.0f}s{self.scale:.2f}{'f' if self.flip else ''}b{self.brightness:.2f}"


def render(face: BaseFace, v: Variant, size: int, gray: bool = False) -> np.ndarray:
    """The face with variant ``v`` applied, resized to ``size`` x ``size`` (grey if asked)."""
    img = turn(face.image, v.yaw)
    if v.flip:
        img = cv2.flip(img, 1)
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -v.roll, v.scale)
    img = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    img = np.clip(img.astype(np.float32) * v.brightness, 0, 255).astype(np.uint8)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if gray else img


def random_variant(rng: np.random.Generator, turned: bool) -> Variant:
    """A mild variant, or (``turned``) one with a large yaw for the Pose subsets."""
    yaw = float(rng.choice([-1, 1]) * rng.uniform(35, 60)) if turned else float(rng.uniform(-12, 12))
    return Variant(
        yaw=round(yaw),
        roll=round(float(rng.uniform(-10, 10))),
        scale=round(float(rng.uniform(0.9, 1.1)), 2),
        flip=bool(rng.random() < 0.5),
        brightness=round(float(rng.uniform(0.8, 1.2)), 2),
    )
