"""fercurate.faces.dlib_resnet: the port of dlib's face-recognition ResNet against dlib itself.

Face chips are made by dlib (HOG detector, 5-point shape predictor, ``get_face_chip`` at 150 px with
padding 0.25) from scikit-image's astronaut photo and, when present, the photos in
``../shared/data/faces``; the port's descriptors must equal dlib's to 1e-4.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fercurate.faces import dlib_resnet as D
from fercurate.faces.dlib68 import model_path

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def dat() -> Path:
    return D.default_model_path()


@pytest.fixture(scope="module")
def net(dat: Path) -> D.DlibNetwork:
    return D.read_dat(dat)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> D.DlibResNet:
    return D.descriptor_model(cache_dir=tmp_path_factory.mktemp("dlib-cache"))


@pytest.fixture(scope="module")
def dlib_models():  # noqa: ANN201 - dlib objects
    dlib = pytest.importorskip("dlib")
    return (dlib, dlib.get_frontal_face_detector(),
            dlib.shape_predictor(str(model_path("shape_predictor_5_face_landmarks.dat"))),
            dlib.face_recognition_model_v1(str(D.default_model_path())))


def _chips(dlib_models, image: np.ndarray) -> list[np.ndarray]:  # noqa: ANN001
    dlib, detector, predictor, _ = dlib_models
    image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    upsample = 1 if max(image.shape[:2]) < 800 else 0
    return [dlib.get_face_chip(image, predictor(image, box), size=150, padding=0.25)
            for box in detector(image, upsample)]


def _max_difference(model: D.DlibResNet, dlib_models, chips: list[np.ndarray]) -> float:  # noqa: ANN001
    ref = np.array([np.array(d) for d in dlib_models[3].compute_face_descriptor(chips)], np.float64)
    x = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        ours = model(x).double().numpy()
    assert ours.shape == ref.shape == (len(chips), D.DESCRIPTOR_DIM)
    return float(np.abs(ours - ref).max())


def test_descriptors_equal_dlibs_on_the_astronaut(model: D.DlibResNet, dlib_models) -> None:  # noqa: ANN001
    skimage_data = pytest.importorskip("skimage.data")
    chips = _chips(dlib_models, skimage_data.astronaut())
    assert chips  # her face (dlib's detector also takes a patch on her suit for one when upsampling)
    diff = _max_difference(model, dlib_models, chips)
    print(f"astronaut: max |port - dlib| = {diff:.2e}")
    assert diff <= TOLERANCE


@pytest.mark.realdata
def test_descriptors_equal_dlibs_on_real_photos(model: D.DlibResNet, dlib_models, faces_dir: Path) -> None:  # noqa: ANN001
    from PIL import Image

    chips = []
    for p in sorted(faces_dir.glob("*")):
        if p.suffix.lower() in (".jpg", ".png"):
            chips += _chips(dlib_models, np.asarray(Image.open(p).convert("RGB")))
    assert len(chips) >= 15, f"only {len(chips)} faces found in {faces_dir}"
    diff = _max_difference(model, dlib_models, chips)
    print(f"{len(chips)} chips from {faces_dir}: max |port - dlib| = {diff:.2e}")
    assert diff <= TOLERANCE


def test_the_parsed_layers_are_dlibs_network_type(net: D.DlibNetwork) -> None:
    D.check_architecture(net)
    kinds = [layer.kind for layer in net.layers]
    assert len(kinds) == 132  # input + 130 layers + loss
    assert kinds[:6] == ["input_rgb_image_sized", "con", "affine", "relu", "max_pool", "tag/skip"]
    assert kinds[-3:] == ["avg_pool", "fc", "loss_metric"]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds.count("add_prev") == 14
    assert net.layers[1].describe() == "con 32 7x7/2 pad 0,0"
    assert net.layers[-2].describe() == "fc 256->128 no-bias"
    assert net.input.params["mean"] == pytest.approx([122.782, 117.001, 104.298])
    assert net.layers[-1].attrs["distance_threshold"] == pytest.approx(0.6)
    widths = [layer.attrs["num_filters"] for layer in net.layers if layer.kind == "con"]
    assert widths == [32] + [32] * 6 + [64] * 8 + [128] * 6 + [256] * 8
    state = D.state_dict_from(net)
    assert state["fc.weight"].shape == (128, 256) and state["layer2.0.block.conv1.weight"].shape == (64, 32, 3, 3)


def test_a_different_network_is_refused_naming_the_layer(dat: Path, net: D.DlibNetwork, tmp_path: Path) -> None:
    data = bytearray(dat.read_bytes())
    # the stem's num_filters 32, 7x7, stride 2,2, padding 0,0 as dlib integers: make the row stride 3
    fields = b"\x01\x20\x01\x07\x01\x07\x01\x02\x01\x02\x01\x00\x01\x00"
    at = data.index(fields, net.layers[1].offset)
    assert at < net.layers[2].offset
    data[at + 7] = 3
    odd = tmp_path / "odd.dat"
    odd.write_bytes(bytes(data))
    parsed = D.read_dat(odd)  # still a well-formed dlib network
    with pytest.raises(D.DlibFormatError, match=r"odd\.dat: layer 1 .*con 32 7x7/3,2 .*has con 32 7x7/2 pad 0,0"):
        D.check_architecture(parsed)
    with pytest.raises(D.DlibFormatError, match="odd.dat: layer 1"):
        D.descriptor_model(odd, cache_dir=tmp_path / "cache")
    shorter = D.DlibNetwork(net.path, net.layers[:5] + net.layers[6:], net.sha256)  # a tag layer less
    with pytest.raises(D.DlibFormatError, match=r"layer 5 .* is con 32 3x3/1 pad 1,1, but .* has tag/skip there"):
        D.check_architecture(shorter)


@pytest.mark.parametrize("cut", [0, 1, 40, 300, 11_000_000, -1])
def test_a_truncated_file_is_a_clear_error(dat: Path, tmp_path: Path, cut: int) -> None:
    data = dat.read_bytes()
    bad = tmp_path / "cut.dat"
    bad.write_bytes(data[:cut])
    with pytest.raises(D.DlibFormatError, match=r"cut\.dat: byte \d+: .*(truncated|not a dlib network)"):
        D.read_dat(bad)


def test_other_files_are_clear_errors(tmp_path: Path) -> None:
    cases = {
        "image.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        "text.dat": b"hello, this is not a network\n" * 10,
        "packed.dat.bz2": b"BZh91AY&SY" + bytes(100),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(D.DlibFormatError, match=rf"{name.replace('.', '[.]')}: .*(not a dlib|compressed)"):
            D.read_dat(tmp_path / name)
    # a real dlib file that is not a network: the 5-point shape predictor
    with pytest.raises(D.DlibFormatError, match="shape_predictor_5_face_landmarks.dat: byte"):
        D.read_dat(model_path("shape_predictor_5_face_landmarks.dat"))
    with pytest.raises(D.DlibFormatError, match="missing.dat: cannot read"):
        D.descriptor_model(tmp_path / "missing.dat", cache_dir=tmp_path)


def test_the_cache_is_read_on_the_second_load_and_keyed_by_the_files_hash(
    dat: Path, net: D.DlibNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = D.descriptor_model(dat, cache_dir=cache)
    assert not first.weights_source["from_cache"]
    assert [p.name for p in cache.iterdir()] == [f"dlib_resnet-{net.sha256}.npz"]

    def no_parsing(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the .dat was parsed again although the cache holds it")

    with monkeypatch.context() as m:
        m.setattr(D, "read_dat", no_parsing)
        second = D.descriptor_model(dat, cache_dir=cache)
    assert second.weights_source["from_cache"]
    for (k, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), k

    # one weight changed by one bit: another file, another key
    data = bytearray(dat.read_bytes())
    data[net.layers[-2].offset + 200] ^= 1  # inside the fc's float32 weights
    other = tmp_path / "other.dat"
    other.write_bytes(bytes(data))
    changed = D.descriptor_model(other, cache_dir=cache)
    assert not changed.weights_source["from_cache"]
    assert changed.weights_source["sha256"] != net.sha256
    assert len(list(cache.glob("dlib_resnet-*.npz"))) == 2
    assert not torch.equal(changed.fc.weight, first.fc.weight)

    # a damaged cache file is converted again (with a warning) and replaced
    target = Path(first.weights_source["cache"])
    target.write_bytes(b"garbage")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = D.descriptor_model(dat, cache_dir=cache)
    assert not again.weights_source["from_cache"] and any("unreadable cache" in str(w.message) for w in caught)
    assert D.descriptor_model(dat, cache_dir=cache).weights_source["from_cache"]
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


def test_the_default_cache_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert D.default_cache_dir() == tmp_path / "fercurate"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # not absolute: ignored, as the XDG spec says
    assert D.default_cache_dir() == Path.home() / ".cache" / "fercurate"


def test_smaller_inputs_run_and_every_parameter_learns(model: D.DlibResNet) -> None:
    torch.manual_seed(0)
    seen: list[tuple[int, int]] = []
    hook = model.layer5[0].register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
    try:
        with torch.no_grad():
            for size in (64, 102, D.NATIVE_MIN_INPUT, 112, D.INPUT_SIZE):
                x = torch.rand(2, 3, size, size) * 255
                assert model(x).shape == (2, D.DESCRIPTOR_DIM)
                f = model.features(x)
                assert f.shape == (2, D.FEATURE_DIM)
                assert torch.allclose(model.fc(f), model(x))
    finally:
        hook.remove()
    # layer5's input: under 3x3 (the small-map rule) only below NATIVE_MIN_INPUT
    assert seen[::3] == [(1, 1), (2, 2), (3, 3), (3, 3), (4, 4)]  # three passes per size
    with pytest.raises(ValueError, match="H, W >= 11"):
        model(torch.zeros(1, 3, 10, 10))

    trained = D.DlibResNet()
    trained.load_state_dict(model.state_dict())
    trained.train()
    trained(torch.rand(4, 3, 64, 64) * 255).square().sum().backward()
    silent = [n for n, p in trained.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, f"no gradient at 64 px: {silent}"


def test_affine_layers_are_trainable_and_have_no_batch_statistics(model: D.DlibResNet) -> None:
    affines = [m for m in model.modules() if isinstance(m, D.Affine)]
    assert len(affines) == 29
    assert all(m.scale.requires_grad and m.shift.requires_grad for m in affines)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    x = torch.rand(3, 3, 150, 150) * 255
    with torch.no_grad():
        evaluated = model(x)
        model.train()
        trained = model(x)
        model.eval()
    assert torch.equal(evaluated, trained)
    assert set(D.STAGES) == {"stem", "layer1", "layer2", "layer3", "layer4", "layer5"}
    assert sum(p.numel() for s in D.STAGES for p in model.stage(s).parameters()) + model.fc.weight.numel() == sum(
        p.numel() for p in model.parameters()
    )
