"""Decoding images with OpenCV, robustly: any path (unicode too), grayscale/RGBA/palette inputs."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fercurate.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(InputError):
    """An image file is missing, empty or cannot be decoded."""


def read_bytes(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: image file missing") from exc
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read ({exc.strerror})") from exc


def decode(data: bytes, path: str | os.PathLike = "<bytes>", *, color: bool = True) -> np.ndarray:
    """Decode image bytes to uint8 BGR (``color``) or single-channel gray; raises ImageReadError."""
    if not data:
        raise ImageReadError(f"{path}: empty file")
    buf = np.frombuffer(data, dtype=np.uint8)
    flag = cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE
    img = cv2.imdecode(buf, flag)
    if img is None:
        raise ImageReadError(f"{path}: not a decodable image")
    return img


def read_image(path: str | os.PathLike, *, color: bool = True) -> np.ndarray:
    """Read an image as uint8 BGR (or gray when ``color`` is false)."""
    return decode(read_bytes(path), path, color=color)


def is_grayscale(img: np.ndarray) -> bool:
    """True for single-channel images and for colour images whose three channels are equal."""
    if img.ndim == 2 or img.shape[2] == 1:
        return True
    b, g, r = img[..., 0], img[..., 1], img[..., 2]
    return bool(np.array_equal(b, g) and np.array_equal(g, r))


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    sha256: str


def inspect(path: str | os.PathLike) -> ImageInfo:
    """Decode an image fully (to prove it is readable) and return its size and content hash."""
    data = read_bytes(path)
    img = decode(data, path, color=False)
    h, w = img.shape[:2]
    return ImageInfo(width=int(w), height=int(h), sha256=hashlib.sha256(data).hexdigest())


def write_image_atomic(path: str | os.PathLike, img: np.ndarray, params: list[int] | None = None) -> None:
    """Encode by the path's suffix and write atomically (temp file + rename)."""
    from fercurate.atomic import write_bytes

    suffix = Path(path).suffix or ".png"
    ok, enc = cv2.imencode(suffix, img, params or [])
    if not ok:
        raise ImageReadError(f"{path}: OpenCV could not encode the image as {suffix}")
    write_bytes(path, enc.tobytes())
