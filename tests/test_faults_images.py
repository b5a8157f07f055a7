"""The one image reader (issue 29, cases 3, 4 and 11's PNG): EXIF orientation everywhere, formats whose
size cannot be read first refused, and a bound on the decoder's work.

The photos are real: matplotlib's sample photo of Grace Hopper, stored the way a phone stores a
picture taken sideways or upside down (pixels turned, EXIF orientation 6 or 3 saying how to show
them), beside the upright original and a copy whose pixels were turned for real.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from fercurate import images
from fercurate.cli import app
from fercurate.manifest import build_table, read_manifest, rejects_path, write_manifest


def _photo() -> np.ndarray:
    from fercurate.demo.faces import _package_file

    img = cv2.imread(str(_package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")))
    return cv2.resize(img, (256, 300), interpolation=cv2.INTER_AREA)  # w 256, h 300: not square


def _jpeg(stored_bgr: np.ndarray, orientation: int, **kwargs) -> bytes:  # noqa: ANN003
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(stored_bgr[:, :, ::-1]).save(buf, "JPEG", quality=95, exif=exif.tobytes(), **kwargs)
    return buf.getvalue()


@pytest.fixture(scope="module")
def phone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """upright.jpg, phone6.jpg / phone3.jpg (as a phone stores them) and turned.jpg (really sideways)."""
    root = tmp_path_factory.mktemp("phone")
    up = _photo()
    (root / "upright.jpg").write_bytes(_jpeg(up, 1))
    (root / "phone6.jpg").write_bytes(_jpeg(cv2.rotate(up, cv2.ROTATE_90_COUNTERCLOCKWISE), 6))
    (root / "phone3.jpg").write_bytes(_jpeg(cv2.rotate(up, cv2.ROTATE_180), 3))
    (root / "turned.jpg").write_bytes(_jpeg(cv2.rotate(up, cv2.ROTATE_90_COUNTERCLOCKWISE), 1))
    return root


def _manifest(ws: Path, root: Path, names: list[str], name: str = "phone") -> Path:
    n = len(names)
    table = build_table({"sample_id": [f"{name}/{x}" for x in names], "dataset": ["rafdb"] * n,
                         "split": ["test"] * n, "image_path": names, "label_id": [-1] * n})
    path = ws / "manifests" / f"{name}.parquet"
    write_manifest(table, path, dataset="rafdb", root=root)
    return path


# --- case 3: EXIF orientation in every command ----------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_every_decode_mode_shows_the_image_upright(fmt: str) -> None:
    """All four modes give the pixels OpenCV's own EXIF transform gives, for all 8 orientations."""
    from fercurate.image_header import read_header

    art = np.zeros((20, 40, 3), np.uint8)
    art[:5, :5], art[12:, 30:, 1] = 255, 200
    for orientation in range(1, 9):
        buf = io.BytesIO()
        im = Image.fromarray(np.dstack([art, np.full((20, 40), 255, np.uint8)]) if fmt == "PNG" else art)
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs = {"tiffinfo": {274: orientation}} if fmt == "TIFF" else {"exif": exif.tobytes()}
        im.save(buf, fmt, **kwargs, **({"lossless": True} if fmt == "WEBP" else {}))
        data = buf.getvalue()
        bgr = images.decode(data, mode="bgr")
        expect = (40, 20) if orientation >= 5 else (20, 40)
        assert bgr.shape[:2] == expect, (fmt, orientation)
        assert np.array_equal(images.decode(data, mode="bgra")[..., :3], bgr), (fmt, orientation)
        assert np.array_equal(images.decode(data, mode="native"), bgr), (fmt, orientation)
        assert images.decode(data, mode="gray").shape == expect
        if fmt != "TIFF":  # libtiff turns TIFFs itself; the header gives the stored size
            assert read_header(data).oriented_size == expect[::-1]


def test_pose_sees_a_phone_photo_upright(phone: Path, workspace: Path) -> None:
    """Before: orientation 6 gave roll -91.9 (the turned copy's -1.9), orientation 3 pitch -22.9."""
    from fercurate.layers import read_layer
    from fercurate.pose.runner import run_pose

    path = _manifest(workspace, phone, ["upright.jpg", "phone6.jpg", "phone3.jpg", "turned.jpg"])
    rows = {r["sample_id"].split("/")[1]: r for r in read_layer(run_pose(path, workers=1).path, "pose")[0].to_pylist()}
    assert all(r["failure"] is None for r in rows.values()), rows
    up = rows["upright.jpg"]
    for name in ("phone6.jpg", "phone3.jpg"):
        for angle in ("yaw", "pitch", "roll"):
            assert abs(rows[name][angle] - up[angle]) < 3.0, (name, angle, rows[name], up)
    assert abs(abs(rows["turned.jpg"]["roll"] - up["roll"]) - 90) < 10  # really turned pixels stay turned


def test_synth_draws_on_the_upright_photo(phone: Path, workspace: Path) -> None:
    """Before: the masked copy of orientation 6 was written sideways (300x256 for a 256x300 parent)."""
    from fercurate.synth.runner import SynthConfig, run
    from fercurate.workspace import Workspace

    path = _manifest(workspace, phone, ["upright.jpg", "phone6.jpg"], name="phones")
    result = run(path, SynthConfig(kind="mask", styles=("surgical",), seed=1), out_dir=workspace / "masked",
                 workers=1, workspace=Workspace(workspace))
    m = read_manifest(result.manifest_path)
    assert result.failed == 0 and len(m) == 2
    for row in m.table.to_pylist():
        img = images.read_image(m.root / row["image_path"])
        assert img.shape[:2] == (300, 256) and (row["width"], row["height"]) == (256, 300), row["image_path"]


# --- case 4: formats whose size the header read does not know are refused -------------------------


def radiance_hdr(width: int, height: int) -> bytes:
    """A valid run-length-encoded Radiance HDR image of one grey value (6 MB for 10000x10000)."""
    line = bytearray([2, 2, width >> 8, width & 255])
    for value in (100, 100, 100, 128):
        left = width
        while left:
            n = min(127, left)
            line += bytes([128 + n, value])
            left -= n
    return b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n" % (height, width) + bytes(line) * height


@pytest.mark.parametrize("data, name", [
    (radiance_hdr(64, 64), "Radiance HDR"),
    (b"PF\n64 64\n-1.0\n" + bytes(64 * 64 * 12), "PFM"),
    (b"P6\n64 64\n255\n" + bytes(64 * 64 * 3), "PNM"),
    (b"GIF89a" + bytes(64), "GIF"),
], ids=["hdr", "pfm", "pnm", "gif"])
def test_formats_without_a_size_check_are_refused_by_name(data: bytes, name: str) -> None:
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None or name == "GIF"
    with pytest.raises(images.ImageReadError, match=f"x.jpg: unsupported image: {name} is not an image format "
                                                    "fercurate decodes"):
        images.decode(data, "x.jpg")
    assert images.pixel_limit_reason(data).startswith(f"unsupported image: {name}")


def test_ingest_verify_refuses_an_hdr_named_jpg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: a 2000x2000 HDR renamed .jpg passed ingest --verify with a 1 MP limit (4 MP decoded)."""
    from fixtures_layouts import make_rafdb

    # --max-pixels sets the limit in this process's environment (for its workers): undone after the test
    monkeypatch.setenv(images.MAX_PIXELS_ENV, str(images.DEFAULT_MAX_PIXELS))

    raf = make_rafdb(tmp_path / "raf", n_train=3, n_test=2, original=False, annotations=False)
    victim = raf["root"] / raf["rows"][0]["aligned_path"]
    victim.write_bytes(radiance_hdr(2000, 2000))
    out = tmp_path / "m" / "rafdb.parquet"
    for verify in (["--verify"], []):
        res = CliRunner().invoke(app, ["--max-pixels", "1000000", "ingest", "rafdb", str(raf["root"]), "-o", str(out),
                                       *verify])
        assert res.exit_code == 0, res.output
        reasons = pq.read_table(rejects_path(out)).column("reason").to_pylist()
        assert any(r.startswith("unsupported image: Radiance HDR") for r in reasons), (verify, reasons)
        assert victim.name not in " ".join(read_manifest(out).table.column("image_path").to_pylist())


def test_pose_and_synth_refuse_an_hdr(tmp_path: Path) -> None:
    from fercurate.pose.runner import _read
    from fercurate.synth.pipeline import decode_parent

    p = tmp_path / "big.jpg"
    p.write_bytes(radiance_hdr(2000, 2000))
    img, why = _read(str(p))
    assert img is None and why.startswith("unsupported image: Radiance HDR")
    with pytest.raises(ValueError, match="unsupported image: Radiance HDR"):
        decode_parent(str(p))


# --- case 11: a bound on the decoder's work -------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def inflating_png(width: int, height: int, excess: int, level: int = 9) -> bytes:
    """A grey PNG whose one zlib stream holds the image and then ``excess`` bytes of zeros."""
    rng = np.random.default_rng(0)
    raw = b"".join(b"\x00" + rng.integers(0, 255, width, dtype=np.uint8).tobytes() for _ in range(height))
    z = zlib.compressobj(level)
    parts = [z.compress(raw)] + [z.compress(bytes(1 << 24)) for _ in range(excess >> 24)] + [z.flush()]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts))
            + _chunk(b"IEND", b""))


def test_a_png_inflating_far_past_its_size_is_refused() -> None:
    """Before: OpenCV inflated the whole stream (8 GiB: 9 s of CPU on every decode)."""
    bomb = inflating_png(256, 256, 64 << 20)
    assert len(bomb) < 200_000
    with pytest.raises(images.ImageReadError, match="bomb.png: decompression bomb: its PNG data inflates past "
                                                    r"1,180,160 bytes where its 65,792 bytes of pixel data"):
        images.decode(bomb, "bomb.png")
    # the same image without the excess, and stored without compression (FER+'s PNGs), decode
    assert images.decode(inflating_png(256, 256, 0), mode="gray").shape == (256, 256)
    assert images.decode(inflating_png(256, 256, 0, level=0), mode="gray").shape == (256, 256)


def test_a_jpeg_with_hundreds_of_scans_is_refused() -> None:
    """Each progressive scan decodes the whole image again: more than 500 scans are refused."""
    from fercurate.image_header import MAX_JPEG_SCANS

    data = _jpeg(_photo(), 1, progressive=True)
    assert images.decode(data).shape == (300, 256, 3)
    last_scan = data.rindex(b"\xff\xda")
    body = data[last_scan:-2]  # the last (refinement) scan, repeated as a crafted file would
    crafted = data[:-2] + body * MAX_JPEG_SCANS + b"\xff\xd9"
    with pytest.raises(images.ImageReadError, match="decompression bomb: a JPEG with 5.. scans"):
        images.decode(crafted, "many.jpg")
