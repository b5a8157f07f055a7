"""The one image reader of every command: any path (unicode too), grayscale/RGBA/palette/16-bit inputs.

:func:`decode` (and :func:`read_image`) is the only place fercurate turns image bytes into pixels.
Before OpenCV sees a byte it reads the header (:mod:`fercurate.image_header`) and refuses

* a format it does not decode (Radiance HDR, PFM, JPEG 2000, GIF ...: no size is read first) or bytes
  that are no image at all: refused, never decoded under a memory cap;
* an image over the pixel limit (a decompression bomb: a few hundred KB of PNG that would expand to
  gigabytes), before any pixel buffer is allocated;
* a PNG whose compressed data inflates far past its pixel data, or a JPEG with hundreds of scans
  (a bound on the decoder's work, not only its memory).

Every mode applies the EXIF orientation (a phone photo with orientation 6 comes out upright), so
pose, synth, training, evaluation, suggestions and the quality checks all see the same pixels.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fercurate.errors import InputError
from fercurate.image_header import JPEG, TIFF, Header, HeaderError, orient, read_header, sniff, work_reason

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_MAX_PIXELS = 50_000_000
# The limit travels in the environment so worker processes (spawned) use the same one.
MAX_PIXELS_ENV = "FERCURATE_MAX_PIXELS"


class ImageReadError(InputError):
    """An image file is missing, empty or cannot be decoded; ``reason`` is the message without the path."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        # "<path>: <reason>" (read_bytes' messages): the reason is what follows the path
        self.reason = reason if reason is not None else message.rsplit(": ", 1)[-1]


def _refuse(path: str | os.PathLike, reason: str) -> ImageReadError:
    return ImageReadError(f"{path}: {reason}", reason)


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


_HEAD_BYTES = 16384
_MAX_HEAD_BYTES = 4 << 20  # a JPEG's frame header after this much APPn data: read the whole file
DECODE_MODES = ("bgr", "gray", "native", "bgra")
# How the reasons for images the reader refuses (rather than fails to decode) begin.
REFUSED_REASONS = ("image too large", "unsupported image", "decompression bomb")
# OpenCV's flags per mode; every one but "bgra" (IMREAD_UNCHANGED) applies the EXIF orientation itself
_FLAGS = {
    "bgr": cv2.IMREAD_COLOR,
    "gray": cv2.IMREAD_GRAYSCALE,
    "native": cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR,
    "bgra": cv2.IMREAD_UNCHANGED,
}


def _head(path: str | os.PathLike, size: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def header(source: bytes | str | os.PathLike) -> Header | None:
    """The header of an image (bytes, or a file of which only the first bytes are read); see
    :func:`fercurate.image_header.read_header`. None when it cannot be told (the decode then fails);
    raises :class:`~fercurate.image_header.HeaderError` for a format fercurate refuses."""
    if isinstance(source, bytes):
        return read_header(source)
    size = _HEAD_BYTES
    while True:
        head = _head(source, size)
        if not head:
            return None
        complete = len(head) < size
        found = read_header(head, complete=complete)
        # only a JPEG's frame header or a TIFF's tags may lie past the first bytes (after metadata)
        if found is not None or complete or sniff(head) not in (JPEG, TIFF):
            return found
        size = size * 16 if size < _MAX_HEAD_BYTES else os.path.getsize(source) + 1


def header_size(source: bytes | str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) as stored, from the image header without decoding the pixels; None if it
    can't be told (not an image, a refused format, truncated)."""
    try:
        found = header(source)
    except HeaderError:
        return None
    return None if found is None else (found.width, found.height)


def _limit_in_force() -> int:
    return max_pixels()


def _limit_reason(found: Header, limit: int) -> str | None:
    if found.pixels <= limit:
        return None
    shown = f"{found.width}x{found.height}" if found.height > 1 else f"{found.width:,} pixels"
    return (
        f"image too large: {shown} is over the limit of {limit:,} pixels "
        "(a possible decompression bomb; raise it with --max-pixels)"
    )


def pixel_limit_reason(data: bytes | str | os.PathLike, limit: int | None = None) -> str | None:
    """Why an image (bytes or a file) may not be decoded, judged by its header only: over the pixel
    limit, or in a format fercurate refuses (whose size can't be read first); None otherwise (a
    damaged file is left to the decode to find)."""
    try:
        found = header(data)
    except HeaderError as exc:
        return f"unsupported image: {exc}"
    return None if found is None else _limit_reason(found, limit or max_pixels())


def read_bytes(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: image file missing") from exc
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read ({exc.strerror})") from exc


def decode(
    data: bytes,
    path: str | os.PathLike = "<bytes>",
    *,
    color: bool = True,
    mode: str | None = None,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Decode image bytes to pixels, EXIF orientation applied; raises ImageReadError naming ``path``.

    ``mode``: ``"bgr"`` uint8 BGR (the default; ``color=False`` means ``"gray"``), ``"gray"`` uint8
    single channel, ``"native"`` the stored depth and channels less alpha (16-bit stays 16-bit, gray
    stays one channel), ``"bgra"`` everything stored, alpha included. Refused before decoding: see
    the module docstring (``max_pixels`` defaults to :func:`max_pixels`).
    """
    mode = mode or ("bgr" if color else "gray")
    if mode not in _FLAGS:
        raise ValueError(f"unknown decode mode {mode!r} (use {', '.join(DECODE_MODES)})")
    if not data:
        raise _refuse(path, "empty file")
    try:
        found = read_header(data)
    except HeaderError as exc:
        raise _refuse(path, f"unsupported image: {exc}") from exc
    if found is None:  # no format fercurate decodes, or its size is not in the file: OpenCV never sees it
        raise _refuse(path, "not a decodable image")
    reason = _limit_reason(found, max_pixels or _limit_in_force()) or work_reason(data, found)
    if reason is not None:
        raise _refuse(path, reason)
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _FLAGS[mode])
    if img is None:
        raise _refuse(path, "not a decodable image")
    if mode == "bgra" and found.format != TIFF:  # IMREAD_UNCHANGED ignores the orientation
        img = orient(img, found)
    return img


def read_image(path: str | os.PathLike, *, color: bool = True, mode: str | None = None) -> np.ndarray:
    """Read an image file through :func:`decode` (``mode`` as there; default uint8 BGR, gray when not ``color``)."""
    return decode(read_bytes(path), path, color=color, mode=mode)


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
