"""RAN model pieces: ResNet-18 names and weight loading, crops, each attention equation, the RB-loss."""

from __future__ import annotations

import math

import pytest
import torch

from fercurate.errors import InputError
from fercurate.ran.backbone import ResNet18, load_pretrained
from fercurate.ran.crops import (
    augment_matrices,
    box_thetas,
    crop_regions,
    fixed_boxes,
    invert_points,
    landmark_boxes,
    landmark_centres,
    random_boxes,
)
from fercurate.ran.loss import classification_loss, ran_loss, rb_loss
from fercurate.ran.model import (
    BaselineResNet,
    RegionAttentionNetwork,
    head_from_baseline,
    relation_attention,
    self_attention,
)

# A sample of torchvision resnet18's state_dict keys (every kind of entry it has).
TORCHVISION_KEYS = [
    "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
    "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.1.conv2.weight", "layer1.1.bn2.running_var",
    "layer2.0.conv1.weight", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight",
    "layer2.0.downsample.1.running_mean", "layer3.1.bn2.bias", "layer4.0.downsample.0.weight",
    "layer4.1.conv2.weight", "layer4.1.bn2.weight", "fc.weight", "fc.bias",
]


def test_backbone_has_torchvision_names_and_shapes():
    sd = ResNet18(1000).state_dict()
    for key in TORCHVISION_KEYS:
        assert key in sd, key
    assert len(sd) == 122  # torchvision resnet18: 62 parameters + 60 BN buffers
    assert sd["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd["fc.weight"].shape == (1000, 512)
    assert sum(p.numel() for p in ResNet18(1000).parameters()) == 11_689_512  # torchvision's count


def test_pretrained_torchvision_file_loads_with_none_missing(tmp_path):
    torch.manual_seed(1)
    source = ResNet18(1000)
    for p in source.parameters():
        p.data.normal_()
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(source.state_dict(), path)
    ran = RegionAttentionNetwork(8, input_size=32)
    report = load_pretrained(ran.backbone, path)
    assert report.missing == []
    assert report.unexpected == []
    assert any(s.startswith("fc.weight: file (1000, 512)") for s in report.skipped_shape)
    assert torch.equal(ran.backbone.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    assert torch.equal(ran.backbone.bn1.running_var, source.bn1.running_var)
    assert "fc.weight" in report.summary()


def test_pretrained_prefixed_partial_file_reports_keys(tmp_path):
    source = ResNet18(1000).state_dict()
    wrapped = {f"module.{k}": v for k, v in source.items() if not k.startswith("layer4.1.")}
    wrapped["module.alpha.0.weight"] = torch.zeros(1, 512)  # the RAN authors' attention layer
    wrapped["module.conv1.weight"] = torch.zeros(64, 1, 7, 7)  # a grayscale stem: wrong shape
    path = tmp_path / "ms_celeb.pth.tar"
    torch.save({"state_dict": wrapped, "epoch": 3}, path)
    model = BaselineResNet(8, input_size=32)
    report = load_pretrained(model.backbone, path)
    assert "alpha.0.weight" in report.unexpected
    assert "layer4.1.conv1.weight" in report.missing
    assert "conv1.weight" in report.missing
    assert any(s.startswith("conv1.weight: file (64, 1, 7, 7) vs model (64, 3, 7, 7)") for s in report.skipped_shape)
    assert torch.equal(model.backbone.layer2[0].conv1.weight, source["layer2.0.conv1.weight"])


def test_pretrained_bad_files_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot read"):
        load_pretrained(ResNet18(0), junk)
    other = tmp_path / "other.pth"
    torch.save({"encoder.w": torch.zeros(3)}, other)
    with pytest.raises(InputError, match="no tensor matches"):
        load_pretrained(ResNet18(0), other)
    with pytest.raises(InputError, match="not found"):
        load_pretrained(ResNet18(0), tmp_path / "absent.pth")


def test_paper_crops_are_the_stated_regions():
    boxes = fixed_boxes("paper")
    assert boxes.shape == (6, 4)
    sides = (boxes[:, 2] - boxes[:, 0]).tolist()
    assert sides == pytest.approx([1.0, 0.75, 0.75, 0.75, 0.9, 0.85])
    faces = torch.rand(2, 3, 48, 48)
    crops = crop_regions(faces, box_thetas(boxes), 36)  # (B, 6, 3, 36, 36)
    assert torch.allclose(crops[:, 1], faces[:, :, :36, :36], atol=1e-5)  # top-left
    assert torch.allclose(crops[:, 2], faces[:, :, :36, 12:], atol=1e-5)  # top-right
    assert torch.allclose(crops[:, 3], faces[:, :, 12:, 6:42], atol=1e-5)  # center-down
    whole = crop_regions(faces, box_thetas(boxes), 48)[:, 0]
    assert torch.allclose(whole, faces, atol=1e-5)


def test_all_crops_go_through_the_backbone_as_one_batch():
    model = RegionAttentionNetwork(8, input_size=32)
    calls = []
    model.backbone.conv1.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    out = model(torch.rand(3, 3, 40, 40))  # training mode: BatchNorm statistics over all 18 crops
    assert calls == [torch.Size([18, 3, 32, 32])]
    assert out.logits.shape == (3, 8) and out.mu.shape == (3, 6) and out.nu.shape == (3, 6)


def test_cpu_inference_in_slices_gives_the_same_outputs():
    torch.manual_seed(0)
    model = RegionAttentionNetwork(8, input_size=32).eval()
    faces = torch.rand(3, 3, 32, 32)
    calls = []
    model.backbone.conv1.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    with torch.no_grad():
        whole = model(faces)
        model.cpu_chunk_pixels = 4 * 32 * 32  # at most 4 crops per slice
        sliced = model(faces)
    assert calls == [18, 4, 4, 4, 4, 2]
    assert torch.allclose(whole.logits, sliced.logits, atol=1e-5)
    assert torch.allclose(whole.mu, sliced.mu, atol=1e-6)


def test_self_attention_equation_on_hand_made_tensors():
    feats = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]])  # (B=1, K=3, D=2)
    q0 = torch.nn.Linear(2, 1)
    with torch.no_grad():
        q0.weight.copy_(torch.tensor([[0.5, -1.0]]))
        q0.bias.zero_()
    mu, f_m = self_attention(feats, q0)
    s = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    expected_mu = [s(0.5), s(-2.0), s(-0.5)]
    assert mu[0].tolist() == pytest.approx(expected_mu, abs=1e-6)
    num = [sum(m * f[d] for m, f in zip(expected_mu, [[1, 0], [0, 2], [1, 1]])) for d in range(2)]
    assert f_m[0].tolist() == pytest.approx([v / sum(expected_mu) for v in num], abs=1e-6)
    mu_soft, _ = self_attention(feats, q0, attention="softmax")  # the authors' code
    assert mu_soft.sum().item() == pytest.approx(1.0)
    assert mu_soft[0].tolist() == pytest.approx(torch.softmax(torch.tensor(expected_mu), 0).tolist(), abs=1e-6)


def test_relation_attention_equation_on_hand_made_tensors():
    feats = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # (1, K=2, D=2)
    f_m = torch.tensor([[0.5, 0.5]])
    mu = torch.tensor([[0.8, 0.4]])
    q1 = torch.nn.Linear(4, 1)
    with torch.no_grad():
        q1.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 2.0]]))
        q1.bias.fill_(-1.0)
    nu, p = relation_attention(feats, f_m, mu, q1)
    s = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    # [F_1:F_m] = [1,0,.5,.5] -> 1 + 1 - 1 = 1 ; [F_2:F_m] = [0,2,.5,.5] -> 0 + 1 - 1 = 0
    expected_nu = [s(1.0), s(0.0)]
    assert nu[0].tolist() == pytest.approx(expected_nu, abs=1e-6)
    w = [0.8 * expected_nu[0], 0.4 * expected_nu[1]]
    concat = [[1, 0, 0.5, 0.5], [0, 2, 0.5, 0.5]]
    expected_p = [sum(wi * c[d] for wi, c in zip(w, concat)) / sum(w) for d in range(4)]
    assert p[0].tolist() == pytest.approx(expected_p, abs=1e-6)


def test_ran_forward_composes_the_equations():
    torch.manual_seed(0)
    model = RegionAttentionNetwork(5, input_size=32).eval()
    faces = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(faces)
        crops = model.crops(model.norm(faces)).reshape(12, 3, 32, 32)
        feats = model.backbone.features(crops).view(2, 6, 512)
        mu = torch.sigmoid(feats @ model.q0.weight[0] + model.q0.bias)
        f_m = (mu[..., None] * feats).sum(1) / mu.sum(1, keepdim=True)
        cat = torch.cat([feats, f_m[:, None].expand(-1, 6, -1)], -1)
        nu = torch.sigmoid(cat @ model.q1.weight[0] + model.q1.bias)
        p = ((mu * nu)[..., None] * cat).sum(1) / (mu * nu).sum(1, keepdim=True)
        logits = model.fc(p)
    assert torch.allclose(out.mu, mu, atol=1e-5)
    assert torch.allclose(out.nu, nu, atol=1e-5)
    assert torch.allclose(out.logits, logits, atol=1e-4)


def test_head_from_baseline_is_the_baseline_classifier_on_the_mean_crop():
    torch.manual_seed(0)
    base = BaselineResNet(5, input_size=32).eval()
    ran = RegionAttentionNetwork(5, input_size=32).eval()
    ran.backbone.load_state_dict(base.backbone.state_dict())
    head_from_baseline(ran, base.fc.weight.detach(), base.fc.bias.detach())
    assert torch.equal(ran.fc.weight, torch.cat([base.fc.weight, base.fc.weight], 1) / 2)
    faces = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        out = ran(faces)
        crops = ran.crops(ran.norm(faces)).reshape(18, 3, 32, 32)
        mean_crop = ran.backbone.features(crops).view(3, 6, 512).mean(1)  # q0 = q1 = 0: every crop weighs the same
        assert torch.allclose(out.mu, torch.full((3, 6), 0.5)) and torch.allclose(out.nu, torch.full((3, 6), 0.5))
        assert torch.allclose(out.logits, base.fc(mean_crop), atol=1e-4)
        # every crop with the same feature: exactly the baseline's prediction
        same = ran.backbone.features(ran.norm(faces))[:, None].expand(-1, 6, -1)
        _, f_m = self_attention(same, ran.q0)
        _, p = relation_attention(same, f_m, torch.full((3, 6), 0.5), ran.q1)
        assert torch.allclose(ran.fc(p), base(faces).logits, atol=1e-4)
    copy = BaselineResNet(5, input_size=32)
    head_from_baseline(copy, base.fc.weight.detach(), base.fc.bias.detach())
    assert torch.equal(copy.fc.weight, base.fc.weight) and torch.equal(copy.fc.bias, base.fc.bias)
    with pytest.raises(ValueError, match="does not fit"):
        head_from_baseline(ran, torch.zeros(8, 512), torch.zeros(8))


def test_rb_loss_on_hand_made_weights():
    mu = torch.tensor([
        [0.50, 0.51, 0.30, 0.20],  # best crop only 0.01 above the face: 0.02 - 0.01 = 0.01
        [0.50, 0.60, 0.10, 0.10],  # 0.10 above: no loss
        [0.70, 0.40, 0.65, 0.10],  # below the face by 0.05: 0.02 + 0.05 = 0.07
    ])
    assert rb_loss(mu[:1]).item() == pytest.approx(0.01, abs=1e-6)
    assert rb_loss(mu[1:2]).item() == pytest.approx(0.0, abs=1e-7)
    assert rb_loss(mu[2:]).item() == pytest.approx(0.07, abs=1e-6)
    assert rb_loss(mu).item() == pytest.approx(0.08 / 3, abs=1e-6)
    assert rb_loss(mu[:1], margin=0.1).item() == pytest.approx(0.09, abs=1e-6)  # the authors' code margin


def test_total_loss_is_ce_plus_rb_one_to_one():
    logits = torch.tensor([[2.0, 0.5, -1.0]])
    mu = torch.tensor([[0.5, 0.51, 0.3]])
    total, ce, rb = ran_loss(logits, torch.tensor([0]), mu)
    assert ce.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, torch.tensor([0])).item())
    assert total.item() == pytest.approx(ce.item() + 0.01, abs=1e-6)
    soft = torch.tensor([[0.7, 0.3, 0.0]])
    expected = -(soft * torch.log_softmax(logits, 1)).sum().item()
    assert classification_loss(logits, soft).item() == pytest.approx(expected, abs=1e-6)


def test_random_and_landmark_boxes():
    g = torch.Generator().manual_seed(0)
    boxes = random_boxes(4, 5, min_scale=0.6, max_scale=0.8, generator=g)
    assert boxes.shape == (4, 6, 4)
    assert torch.equal(boxes[:, 0], torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(4, 4))
    side = boxes[:, 1:, 2] - boxes[:, 1:, 0]
    assert side.min() >= 0.6 - 1e-6 and side.max() <= 0.8 + 1e-6
    assert boxes.min() >= 0 and boxes.max() <= 1
    import numpy as np

    five = np.array([[0.3, 0.4, 0.7, 0.4, 0.5, 0.6, 0.35, 0.8, 0.65, 0.8]], dtype=np.float32)
    centres = landmark_centres(five)
    assert centres.shape == (1, 5, 2)
    lb = landmark_boxes(torch.as_tensor(centres), 0.5)
    assert lb[0, 1].tolist() == pytest.approx([0.05, 0.15, 0.55, 0.65])
    with pytest.raises(ValueError, match="5 or 68"):
        landmark_centres(np.zeros((1, 8), dtype=np.float32))


def test_flip_augmentation_mirrors_the_face_and_points():
    g = torch.Generator().manual_seed(3)
    aug = augment_matrices(8, flip=True, max_rotate=0, scale=(1.0, 1.0), max_translate=0.0, generator=g)
    faces = torch.rand(8, 3, 16, 16)
    out = crop_regions(faces, box_thetas(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), aug), 16)[:, 0]
    flipped = aug[:, 0, 0] < 0
    assert flipped.any() and (~flipped).any()
    assert torch.allclose(out[flipped], faces[flipped].flip(-1), atol=1e-5)
    assert torch.allclose(out[~flipped], faces[~flipped], atol=1e-5)
    pts = torch.tensor([[[0.2, 0.3]]]).expand(8, 1, 2)
    moved = invert_points(aug, pts)
    assert torch.allclose(moved[flipped, 0], torch.tensor([0.8, 0.3]).expand(int(flipped.sum()), 2), atol=1e-5)
