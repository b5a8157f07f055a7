"""Property-based tests (Hypothesis) over the CSV/text row parsing of the ingestors (issue 18).

Whatever quoting, line endings and BOM a writer uses, good rows come back exactly and every other
line becomes a reject with its line number: no row is lost, none is invented.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fercurate.ingest import ferplus, rafdb  # noqa: E402
from fercurate.ingest.ferplus import csv_layout  # noqa: E402
from fercurate.ingest.rejects import Rejects  # noqa: E402
from fercurate.schema import FERPLUS_VOTE_COLUMNS  # noqa: E402
from fercurate.votes import parse_votes  # noqa: E402

SETTINGS = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

QUOTING = st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC])
EOL = st.sampled_from(["\n", "\r\n"])
USAGES = list(ferplus.FOLDER_OF_USAGE)


@SETTINGS
@given(votes=st.lists(st.integers(0, 30), min_size=10, max_size=10).filter(lambda v: sum(v) > 0),
       pad=st.sampled_from(["", " ", "  "]))
def test_parse_votes_round_trips_counts(votes: list[int], pad: str) -> None:
    parsed, err = parse_votes([f"{pad}{v}{pad}" for v in votes])
    assert err is None and parsed == votes


@SETTINGS
@given(votes=st.lists(st.integers(0, 30), min_size=10, max_size=10), col=st.integers(0, 9),
       junk=st.sampled_from(["x", "-1", "1.5", "", "1e3", "٣"]))
def test_parse_votes_names_the_bad_column(votes: list[int], col: int, junk: str) -> None:
    fields = [str(v) for v in votes]
    fields[col] = junk
    parsed, err = parse_votes(fields)
    assert parsed is None and FERPLUS_VOTE_COLUMNS[col] in err


@SETTINGS
@given(
    rows=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 2**32 - 1), st.sampled_from(USAGES)),
                  min_size=1, max_size=6),
    quoting=QUOTING,
    eol=EOL,
    bom=st.booleans(),
    comment=st.none() | st.text(alphabet=st.sampled_from('ab ,"x\''), max_size=8),
)
def test_fer2013_rows_survive_any_csv_writer(tmp_path_factory, rows, quoting, eol, bom, comment) -> None:  # noqa: ANN001
    """emotion/pixels/Usage rows written by csv.writer (any quoting, LF or CRLF, a BOM, an extra
    column holding commas and quotes) are all read back with the exact pixels."""
    path = Path(tmp_path_factory.mktemp("fer")) / "fer2013.csv"
    buf = io.StringIO()
    w = csv.writer(buf, quoting=quoting, lineterminator=eol)
    header = ["emotion", "pixels", "Usage"] + (["comment"] if comment is not None else [])
    w.writerow(header)
    expected = []
    for emotion, seed, usage in rows:
        pixels = np.random.default_rng(seed).integers(0, 256, ferplus.N_PIXELS)
        text = " ".join(map(str, pixels))
        w.writerow([emotion, text, usage] + ([comment] if comment is not None else []))
        expected.append((emotion, pixels, usage))
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode())

    scanned, _ = csv_layout._scan_fer2013(path)
    assert len(scanned) == len(expected)
    with open(path, "rb") as fh:
        for (line, off, length, usage, emotion, err, _), (e_emotion, e_pixels, e_usage) in zip(scanned, expected):
            assert err is None, (line, err)
            assert (usage, emotion) == (e_usage, str(e_emotion))
            fh.seek(off)
            pixels, perr = ferplus.decode_pixels(fh.read(length))
            assert perr is None and np.array_equal(pixels.reshape(-1), e_pixels)


RAF_LINE = st.one_of(
    st.tuples(st.sampled_from(["train", "test"]), st.integers(1, 99999), st.integers(1, 7)).map(
        lambda t: (f"{t[0]}_{t[1]:05d}.jpg {t[2]}", True)),
    st.text(alphabet=st.sampled_from("ab_./ 9\t"), min_size=1, max_size=12).map(lambda s: (s, None)),
)


@SETTINGS
@given(lines=st.lists(RAF_LINE, min_size=1, max_size=12), eol=EOL, bom=st.booleans())
def test_rafdb_list_every_line_is_a_row_or_a_reject(tmp_path_factory, lines, eol, bom) -> None:  # noqa: ANN001
    path = Path(tmp_path_factory.mktemp("raf")) / "list_patition_label.txt"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + eol.join(t for t, _ in lines).encode() + eol.encode())
    rejects = Rejects("rafdb")
    rows = rafdb._parse_list(path, "aligned", rejects, [])
    non_blank = [i for i, (t, _) in enumerate(lines, 1) if t.strip()]
    assert sorted(rows.line + [r["row"] for r in rejects.rows]) == non_blank
    for i, (text, good) in enumerate(lines, 1):
        if good:  # a well-formed line is never rejected, the first one included (BOM)
            assert i in rows.line, (text, rejects.rows)


@SETTINGS
@given(width=st.integers(1, 300), height=st.integers(1, 300), fmt=st.sampled_from(["PNG", "JPEG"]),
       mode=st.sampled_from(["L", "RGB", "RGBA", "P"]), progressive=st.booleans(), exif=st.booleans())
def test_header_size_agrees_with_pillow(width, height, fmt, mode, progressive, exif) -> None:  # noqa: ANN001
    """The PNG/JPEG header fast path reads the same size Pillow does (progressive, EXIF, palette...)."""
    from PIL import Image

    from fercurate import images
    from fercurate.image_header import read_header

    if fmt == "JPEG" and mode in ("RGBA", "P"):
        mode = "RGB"
    im = Image.new(mode, (width, height))
    buf = io.BytesIO()
    kwargs = {"progressive": progressive} if fmt == "JPEG" else {}
    if exif:
        e = Image.Exif()
        e[0x010E] = "x" * 5000  # a long APP1 segment before the frame header
        kwargs["exif"] = e.tobytes()
    im.save(buf, format=fmt, **kwargs)
    data = buf.getvalue()
    head = read_header(data[:16384], complete=False)
    assert (head.width, head.height) == (width, height)
    assert images.header_size(data) == Image.open(io.BytesIO(data)).size
