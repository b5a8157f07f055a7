"""Reading MaskTheFace-style template configs: the real masks.cfg and broken ones made here."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fercurate.errors import InputError
from fercurate.synth import templates as T


def _png(path: Path, alpha: int = 255) -> Path:
    img = np.zeros((60, 100, 4), np.uint8)
    img[..., :3] = (200, 180, 160)
    img[10:50, 10:90, 3] = alpha
    cv2.imwrite(str(path), img)
    return path


def _cfg(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "masks.cfg"
    p.write_text(body)
    return p


GOOD = """
[plain]
template: masks/templates/plain.png
mask_a: 10, 12
mask_b: 50, 10
mask_c: 90, 12
mask_d: 12, 40
mask_e: 50, 50
mask_f: 88, 40

[plain_left]
template: plain.png
mask_a: 20, 12
mask_b: 30, 10
mask_c: 90, 12
mask_d: 22, 40
mask_e: 40, 50
mask_f: 88, 40

;[commented]
;template: nowhere.png

[empty]
"""


def test_real_masktheface_config(shared_data):
    cfg = shared_data / "mask_templates" / "masks.cfg"
    if not cfg.exists():
        pytest.skip("MaskTheFace templates not available")
    tset = T.read_template_config(cfg)
    assert tset.styles == sorted(["surgical", "surgical_green", "surgical_blue", "N95", "cloth", "gas", "KN95"])
    assert tset.groups["surgical"] == ["surgical", "surgical_left", "surgical_right"]
    assert len(tset.skipped) == 6  # empty / inpaint sections have no template
    # the commented-out ';[N95_left]' block is ignored; the live N95_left section is read
    png, anchors = tset.sections["N95_left"]
    assert png.name == "N95_left.png"
    assert anchors[0].tolist() == [193, 331]
    # anchors may lie outside the template (MaskTheFace's gas_right has negative x)
    assert tset.sections["gas_right"][1][0].tolist() == [-105, 239]
    tpl = tset.load("surgical")
    assert tpl.rgba.shape[2] == 4 and tpl.rgba.dtype == np.uint8
    assert 0.45 < tpl.top_ratio() < 0.55  # frontal view: nose bridge midway
    left = tset.load("surgical_left")
    assert left.top_ratio() < 0.3  # turned view: nose bridge near the image-left corner
    small = tpl.scaled(0.25)
    assert small.rgba.shape[1] == round(tpl.rgba.shape[1] * 0.25)
    assert np.allclose(small.anchors[1], tpl.anchors[1] * 0.25, atol=1.0)


def test_config_made_here_groups_views(tmp_path):
    _png(tmp_path / "plain.png")
    tset = T.read_template_config(_cfg(tmp_path, GOOD))
    assert tset.styles == ["plain"]
    assert tset.groups["plain"] == ["plain", "plain_left"]
    views = tset.views("plain")
    assert [v.name for v in views] == ["plain", "plain_left"]
    assert T.pick_view(views, 0.2).name == "plain_left"
    assert T.pick_view(views, 0.5).name == "plain"
    # the outline follows the opaque part
    outline = views[0].outline
    assert outline[:, 0].min() >= 9 and outline[:, 0].max() <= 90


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (GOOD.replace("mask_f: 88, 40\n\n[plain_left]", "\n[plain_left]"), "missing anchors mask_f"),
        (GOOD.replace("mask_b: 50, 10", "mask_b: fifty, 10"), "expected numbers"),
        (GOOD.replace("mask_b: 50, 10", "mask_b: 50"), "expected 'x, y'"),
        (GOOD.replace("template: plain.png", "template: gone.png"), "'gone.png' not found"),
        ("[empty]\n", "no template sections"),
        ("not an ini file\n", "not a readable INI file"),
    ],
)
def test_broken_configs_name_file_and_section(tmp_path, body, message):
    _png(tmp_path / "plain.png")
    cfg = _cfg(tmp_path, body)
    with pytest.raises(InputError, match=message) as err:
        T.read_template_config(cfg).views("plain")
    assert str(cfg) in str(err.value)


def test_unreadable_and_transparent_templates(tmp_path):
    (tmp_path / "plain.png").write_bytes(b"not a png")
    tset = T.read_template_config(_cfg(tmp_path, GOOD))
    with pytest.raises(InputError, match="not a decodable image"):
        tset.load("plain")
    _png(tmp_path / "clear.png", alpha=0)
    tset = T.read_template_config(_cfg(tmp_path, GOOD.replace("plain.png", "clear.png")))
    with pytest.raises(InputError, match="fully transparent"):
        tset.load("plain")


def test_missing_config(tmp_path):
    with pytest.raises(InputError, match="template config not found"):
        T.read_template_config(tmp_path / "nope.cfg")
