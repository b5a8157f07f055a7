"""What an image file's header says, read without decoding a pixel: its format, size and EXIF orientation.

:func:`read_header` knows every format :mod:`fercurate.images` lets OpenCV decode (PNG, JPEG, BMP,
TIFF, WebP) and names the ones OpenCV would also decode but fercurate refuses (Radiance HDR, PFM,
PNM, Sun raster, JPEG 2000, OpenEXR, GIF, AVIF): for those the size is not read first, so a 6 MB
file could be a 10000x10000 float image, and they are no format a face dataset ships in. PNG, JPEG,
BMP and WebP headers are parsed here directly (a few microseconds, which matters across 420k
files); TIFF goes through Pillow's lazy ``Image.open``, which reads the tags only.

Two bounds on the decoder's work, checked on the whole file before OpenCV sees it
(:func:`work_reason`): a PNG's compressed data may inflate to at most twice its pixel data plus
1 MiB (libpng inflates the whole stream, so 8 MB of deflated zeros behind a 256x256 image cost 9 s
of CPU on every decode), and a progressive JPEG may have at most :data:`MAX_JPEG_SCANS` scans
(TurboJPEG's advice for untrusted progressive JPEGs).
"""

from __future__ import annotations

import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field

PNG, JPEG, BMP, TIFF, WEBP = "PNG", "JPEG", "BMP", "TIFF", "WebP"
FORMATS = (PNG, JPEG, BMP, TIFF, WEBP)  # what fercurate decodes
MAX_JPEG_SCANS = 500
_INFLATE_SLACK = 1 << 20
# Adam7 interlace passes: (x start, y start, x step, y step)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); not DHT/JPG/DAC
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})  # progressive frames: each scan refines the whole image
# Formats OpenCV decodes that fercurate refuses, by the signature OpenCV itself checks.
_REFUSED = (
    (b"#?RADIANCE", "Radiance HDR"),
    (b"#?RGBE", "Radiance HDR"),
    (b"PF\n", "PFM"), (b"Pf\n", "PFM"), (b"PF\r", "PFM"), (b"Pf\r", "PFM"),
    (b"P7", "PAM"),
    *((f"P{k}".encode(), "PNM") for k in range(1, 7)),
    (b"\x59\xa6\x6a\x95", "Sun raster"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
)
# ORIENTATION 1..8 -> OpenCV's own ExifTransform steps (transpose first, then flip code)
_ORIENT_STEPS = {1: (False, None), 2: (False, 1), 3: (False, -1), 4: (False, 0),
                 5: (True, None), 6: (True, 1), 7: (True, -1), 8: (True, 0)}


class HeaderError(ValueError):
    """The header says the file may not be decoded (a refused format, an unreadable size)."""


@dataclass(frozen=True)
class Header:
    """An image's format and stored size (before EXIF orientation) and its EXIF orientation (1: as stored)."""

    format: str
    width: int
    height: int
    exif: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def orientation(self) -> int:
        """The EXIF orientation tag (1..8; 1 when absent or unreadable), parsed by Pillow's EXIF reader."""
        if not self.exif:
            return 1
        from PIL import Image

        try:
            exif = Image.Exif()
            exif.load(self.exif)
            value = int(exif.get(0x0112, 1))
        except Exception:  # noqa: BLE001 - damaged EXIF: the image shows as stored (as OpenCV does)
            return 1
        return value if value in _ORIENT_STEPS else 1

    @property
    def oriented_size(self) -> tuple[int, int]:
        """(width, height) as shown, after the EXIF orientation."""
        turned = _ORIENT_STEPS[self.orientation][0] and self.format != TIFF
        return (self.height, self.width) if turned else (self.width, self.height)


def refused_format(head: bytes) -> str | None:
    """The name of a format OpenCV would decode but fercurate refuses, from the first bytes; else None."""
    for sig, name in _REFUSED:
        if head.startswith(sig):
            return name
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"mif1", b"heic", b"heix"):
        return "AVIF/HEIF"
    return None


def sniff(head: bytes) -> str | None:
    """Which of :data:`FORMATS` the first bytes belong to, or None."""
    if head.startswith(_PNG_SIGNATURE):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"BM"):
        return BMP
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return TIFF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


def read_header(data: bytes, *, complete: bool = True) -> Header | None:
    """The header of an image in ``data`` (the whole file, or its first bytes when not ``complete``).

    None when the bytes are no image of a known format, or a supported format's size is not in
    ``data`` (truncated). Raises :class:`HeaderError` for a format fercurate refuses, or a TIFF whose
    tags Pillow cannot read.
    """
    fmt = sniff(data)
    if fmt is None:
        refused = refused_format(data)
        if refused is not None:
            raise HeaderError(f"{refused} is not an image format fercurate decodes ({', '.join(FORMATS)}): "
                              "its size cannot be checked before decoding")
        return None
    if fmt == PNG:
        return _png(data)
    if fmt == JPEG:
        return _jpeg(data)
    if fmt == BMP:
        return _bmp(data)
    if fmt == WEBP:
        return _webp(data)
    return _tiff(data, complete)


def _png(data: bytes) -> Header | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    exif = None
    for kind, start, end in _png_chunks(data):
        if kind == b"IDAT":  # an eXIf after the image data does not orient it (nor does OpenCV read it)
            break
        if kind == b"eXIf":
            exif = data[start:end]
            break
    return Header(PNG, int(width), int(height), exif)


def _png_chunks(data: bytes):  # noqa: ANN202 - yields (type, data start, data end)
    i, n = 8, len(data)
    while i + 8 <= n:
        (length,) = struct.unpack(">I", data[i : i + 4])
        kind = data[i + 4 : i + 8]
        start = i + 8
        end = start + length
        if end > n:
            yield kind, start, n
            return
        yield kind, start, end
        if kind == b"IEND":
            return
        i = end + 4


def _jpeg(data: bytes) -> Header | None:
    found = _jpeg_frame(data)
    return None if found is None else found[0]


def _jpeg_frame(data: bytes) -> tuple[Header, int] | None:
    """The JPEG's header and where its frame header (SOF) starts: metadata segments come before it."""
    i, n = 2, len(data)
    exif = None
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_SOF:
            if i + 9 > n:
                return None
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return Header(JPEG, int(width), int(height), exif), i
        if marker == 0xE1 and exif is None and data[i + 4 : i + 10] == b"Exif\x00\x00":
            exif = data[i + 4 : i + 2 + length]
        if marker == 0xDA:  # a scan before any frame header: not a JPEG OpenCV can size
            return None
        i += 2 + length
    return None


def _bmp(data: bytes) -> Header | None:
    if len(data) < 26:
        return None
    (dib,) = struct.unpack("<I", data[14:18])
    if dib == 12:
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return Header(BMP, abs(int(width)), abs(int(height)))


def _webp(data: bytes) -> Header | None:
    i, n = 12, len(data)
    exif, size = None, None
    while i + 8 <= n:
        kind = data[i : i + 4]
        (length,) = struct.unpack("<I", data[i + 4 : i + 8])
        body = data[i + 8 : i + 8 + length]
        if kind == b"VP8X" and len(body) >= 10:
            size = (1 + int.from_bytes(body[4:7], "little"), 1 + int.from_bytes(body[7:10], "little"))
        elif kind == b"VP8 " and size is None and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
            w, h = struct.unpack("<HH", body[6:10])
            size = (w & 0x3FFF, h & 0x3FFF)
        elif kind == b"VP8L" and size is None and len(body) >= 5 and body[0] == 0x2F:
            bits = int.from_bytes(body[1:5], "little")
            size = (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
        elif kind == b"EXIF":  # after the image data in an extended file: a few chunks to walk
            exif = body
        i += 8 + length + (length & 1)
    if size is None:
        return None
    return Header(WEBP, size[0], size[1], exif)


def _tiff(data: bytes, complete: bool) -> Header | None:
    import io

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's own bomb warning: our limit decides
        try:
            with Image.open(io.BytesIO(data)) as im:
                return Header(TIFF, int(im.size[0]), int(im.size[1]))
        except Image.DecompressionBombError as exc:  # over Pillow's own limit: only the pixel count is known
            pixels = [int(v) for v in re.findall(r"\d+", str(exc))[:1]]
            return Header(TIFF, pixels[0] if pixels else 2**31 - 1, 1)
        except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for a damaged file
            if not complete:
                return None  # the tags may lie past the bytes read so far
            raise HeaderError(f"a TIFF whose size cannot be read from its tags ({exc})") from exc


def orient(img, header: Header):  # noqa: ANN001, ANN201 - numpy arrays (cv2 is imported by the caller)
    """Apply the EXIF orientation to pixels decoded without it (OpenCV's own steps; TIFFs come oriented)."""
    import cv2

    transpose, flip = _ORIENT_STEPS[header.orientation] if header.format != TIFF else (False, None)
    if transpose:
        img = cv2.transpose(img)
    if flip is not None:
        img = cv2.flip(img, flip)
    return img


def png_raw_size(data: bytes) -> int | None:
    """Bytes the PNG's pixel data inflates to (filter bytes and Adam7 passes included), from its IHDR."""
    if len(data) < 29:
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour)
    if channels is None:
        return None
    bits = channels * depth
    if not interlace:
        return height * ((width * bits + 7) // 8 + 1)
    total = 0
    for xs, ys, dx, dy in _ADAM7:
        pw, ph = (width - xs + dx - 1) // dx, (height - ys + dy - 1) // dy
        if pw > 0 and ph > 0:
            total += ph * ((pw * bits + 7) // 8 + 1)
    return total


def work_reason(data: bytes, header: Header) -> str | None:
    """Why decoding this file would cost far more than its size says (a decompression bomb), or None."""
    if header.format == PNG:
        return _png_inflate_reason(data)
    if header.format == JPEG:
        frame = _jpeg_frame(data)
        if frame is None or data[frame[1] + 1] not in _PROGRESSIVE_SOF:
            return None  # a sequential JPEG decodes each component once, whatever its scans
        # markers are never inside entropy-coded data (0xFF there is followed by 0x00), so each
        # 0xFFDA after the frame header starts a scan (metadata, a thumbnail's scans, come before it)
        scans = data.count(b"\xff\xda", frame[1])
        if scans > MAX_JPEG_SCANS:
            return (f"decompression bomb: a JPEG with {scans:,} scans (over the limit of {MAX_JPEG_SCANS:,}; "
                    "each scan decodes the whole image again)")
    return None


def _png_inflate_reason(data: bytes) -> str | None:
    raw = png_raw_size(data)
    if raw is None:
        return None
    bound = 2 * raw + _INFLATE_SLACK
    idat = [(s, e) for kind, s, e in _png_chunks(data) if kind == b"IDAT"]
    if sum(e - s for s, e in idat) * 1032 <= bound:  # deflate inflates at most ~1032:1
        return None
    inflater = zlib.decompressobj()
    produced = 0
    try:
        for start, end in idat:
            buf = memoryview(data)[start:end]
            while buf and not inflater.eof:
                produced += len(inflater.decompress(buf, _INFLATE_SLACK))
                if produced > bound:
                    return (f"decompression bomb: its PNG data inflates past {bound:,} bytes where its "
                            f"{raw:,} bytes of pixel data need no more")
                buf = inflater.unconsumed_tail
            if inflater.eof:
                break
    except zlib.error:
        return None  # damaged data: the decoder stops where inflating stops here
    return None
