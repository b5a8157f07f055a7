"""Decoding images with OpenCV, robustly: any path (unicode too), grayscale/RGBA/palette inputs.

Every decode first reads the image size from the file header (Pillow's lazy ``Image.open``) and
refuses images over the pixel limit, so a decompression bomb (a few hundred KB of PNG that would
expand to gigabytes) is rejected before any pixel buffer is allocated.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fercurate.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_MAX_PIXELS = 50_000_000
# The limit travels in the environment so worker processes (spawned) use the same one.
MAX_PIXELS_ENV = "FERCURATE_MAX_PIXELS"


class ImageReadError(InputError):
    """An image file is missing, empty or cannot be decoded."""


def max_pixels() -> int:
    """The pixel limit in force: ``$FERCURATE_MAX_PIXELS`` if set (see :func:`set_max_pixels`), else 50 MP."""
    raw = os.environ.get(MAX_PIXELS_ENV)
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError as exc:
        raise InputError(f"${MAX_PIXELS_ENV}={raw!r}: not a whole number of pixels") from exc
    if value <= 0:
        raise InputError(f"${MAX_PIXELS_ENV}={raw!r}: the pixel limit must be positive")
    return value


def set_max_pixels(limit: int | None) -> None:
    """Set the pixel limit for this process and the worker processes it starts (None: the default)."""
    if limit is None:
        os.environ.pop(MAX_PIXELS_ENV, None)
        return
    if limit <= 0:
        raise InputError(f"--max-pixels must be positive, not {limit}")
    os.environ[MAX_PIXELS_ENV] = str(int(limit))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); not DHT/JPG/DAC
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_HEAD_BYTES = 16384


def _png_jpeg_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG (its IHDR) or a JPEG (its SOF segment) from the file's first bytes.

    A fast path for the common formats (~3x quicker than Pillow's open, which matters across 420k
    files); None for anything else, or a JPEG whose frame header is not in ``head``.
    """
    if head.startswith(_PNG_SIGNATURE):
        if len(head) >= 24 and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return int(width), int(height)
        return None
    if not head.startswith(b"\xff\xd8"):
        return None
    i, n = 2, len(head)
    while i + 9 <= n:
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", head[i + 5 : i + 9])
            return int(width), int(height)
        (length,) = struct.unpack(">H", head[i + 2 : i + 4])
        i += 2 + length
    return None


def header_size(source: bytes | str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) from the image header (bytes, or a file of which only the header is read)
    without decoding the pixels; None if it can't be told (OpenCV's decode then decides).

    PNG and JPEG headers are parsed directly; other formats (and JPEGs with a long preamble) go
    through Pillow's lazy ``Image.open``, which also reads only the header.
    """
    if isinstance(source, bytes):
        head = source[:_HEAD_BYTES]
    else:
        try:
            fd = os.open(source, os.O_RDONLY)
        except OSError:
            return None
        try:
            head = os.read(fd, _HEAD_BYTES)
        except OSError:
            return None
        finally:
            os.close(fd)
    size = _png_jpeg_size(head)
    if size is not None or not head:  # an empty file has no size (its decode fails: "empty file")
        return size
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's own bomb warning: our limit decides
        try:
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
                return int(im.size[0]), int(im.size[1])
        except Image.DecompressionBombError as exc:
            sizes = [int(v) for v in re.findall(r"\d+", str(exc))[:1]]
            return (sizes[0], 1) if sizes else (2**31 - 1, 1)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            return None


def pixel_limit_reason(data: bytes | str | os.PathLike, limit: int | None = None) -> str | None:
    """Why an image (bytes or a file) may not be decoded (over the pixel limit, read from its header), or None."""
    size = header_size(data)
    limit = limit or max_pixels()
    if size is None or size[0] * size[1] <= limit:
        return None
    w, h = size
    shown = f"{w}x{h}" if h > 1 else f"{w:,} pixels"
    return (
        f"image too large: {shown} is over the limit of {limit:,} pixels "
        "(a possible decompression bomb; raise it with --max-pixels)"
    )


def read_bytes(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: image file missing") from exc
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read ({exc.strerror})") from exc


def decode(
    data: bytes, path: str | os.PathLike = "<bytes>", *, color: bool = True, max_pixels: int | None = None
) -> np.ndarray:
    """Decode image bytes to uint8 BGR (``color``) or single-channel gray; raises ImageReadError.

    Images over the pixel limit (``max_pixels``, default :func:`max_pixels`, from the header) are
    refused before decoding.
    """
    if not data:
        raise ImageReadError(f"{path}: empty file")
    reason = pixel_limit_reason(data, max_pixels)
    if reason is not None:
        raise ImageReadError(f"{path}: {reason}")
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


def inspect(path: str | os.PathLike, max_pixels: int | None = None) -> ImageInfo:
    """Decode an image fully (to prove it is readable) and return its size and content hash."""
    data = read_bytes(path)
    img = decode(data, path, color=False, max_pixels=max_pixels)
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
