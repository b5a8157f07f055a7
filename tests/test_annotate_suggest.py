"""Occlusion suggestions: synthetic occluders, label targets, the scorer end to end on real PNGs.

Training budgets here are tiny (a few hundred synthetic faces) so the file stays fast; how well the
scorer ranks real occlusions is measured by benchmarks/occlusion_suggest.py, not here.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from fercurate.annotations import append_events, latest_labels, make_event, read_events
from fercurate.errors import InputError
from fercurate.schema import OCCLUDED_TYPES as KINDS
from fercurate.scorer.synthetic import synthetic_set
from fercurate.synth.occluders import occlude_crop
from fercurate.workspace import Workspace

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


def _face(seed: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:48, 0:48]
    rng = np.random.default_rng(seed)
    return ((120 + 40 * np.sin(xx / 7.0) + 30 * np.cos(yy / 5.0)) + rng.normal(0, 5, (48, 48))).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind,rows", [("glasses", slice(10, 30)), ("mask", slice(22, 48)), ("upper", slice(0, 28)),
                                       ("bottom", slice(20, 48))])
def test_occluders_draw_in_their_part_of_the_face_and_are_seeded(kind: str, rows: slice) -> None:
    face = _face(0)
    changed = np.zeros((48, 48), bool)
    for seed in range(8):
        out = occlude_crop(face, kind, np.random.default_rng(seed))
        assert out.shape == (48, 48) and out.dtype == np.uint8
        changed |= np.abs(out.astype(int) - face) > 8
        assert np.array_equal(out, occlude_crop(face, kind, np.random.default_rng(seed)))
    inside = changed[rows].sum()
    assert inside > 0.8 * changed.sum(), f"{kind}: {inside} of {changed.sum()} changed pixels in its region"


def test_synthetic_set_targets_match_the_drawn_occlusions() -> None:
    faces = np.stack([_face(s) for s in range(6)])
    images, targets = synthetic_set(faces, 200, np.random.default_rng(3))
    assert images.shape == (200, 48, 48) and targets.shape == (200, 1 + len(KINDS))
    occluded = targets[:, 0] == 1
    assert 0.35 < occluded.mean() < 0.65
    assert np.all(targets[occluded, 1:].sum(1) == 1) and np.all(targets[~occluded, 1:] == 0)
    with pytest.raises(ValueError, match="48x48"):
        synthetic_set(np.zeros((4, 64, 64), np.uint8), 8, np.random.default_rng(0))


def test_label_targets_keep_unresolved_types_unknown() -> None:
    from fercurate.scorer.targets import label_targets

    t = label_targets(pd.DataFrame({"sample_id": ["a", "b", "c", "d"],
                                    "types": [["none"], ["glasses", "mask"], ["glasses|mask"], ["occluded"]]}))
    t = t.set_index("sample_id")
    assert t.loc["a", "occluded"] == 0 and (t.loc["a", list(KINDS)] == 0).all()
    assert t.loc["b", "occluded"] == 1 and t.loc["b", "glasses"] == 1 and t.loc["b", "mask"] == 1 and t.loc["b", "upper"] == 0
    assert t.loc["c", "occluded"] == 1 and t.loc["c", list(KINDS)].isna().all()
    assert t.loc["d", "occluded"] == 1 and t.loc["d", list(KINDS)].isna().all()


def test_suggest_scores_every_face_writes_layer_and_events_and_is_reproducible(workspace: Path) -> None:
    from test_annotate import make_toy_manifest

    from fercurate.annotate.dataset import suggestion_layer_path
    from fercurate.annotate.suggest import SUGGEST_ANNOTATOR, suggest
    from fercurate.scorer.config import ScorerConfig
    from fercurate.manifest import read_manifest

    manifest = make_toy_manifest(workspace, name="sugtoy", n=12)
    ids = pq.read_table(manifest, columns=["sample_id"]).column("sample_id").to_pylist()
    m = read_manifest(manifest)
    broken = m.root / m.table.column("image_path")[5].as_py()
    broken.write_bytes(b"not a png")
    ann = Workspace.current().annotation_path("sugtoy")
    append_events(ann, [make_event(ids[0], ["mask"], annotator="alice", source="human", labelled_at=T0)])
    config = ScorerConfig(seed=1, steps=8, finetune_epochs=1, threads=1, batch=32)

    result = suggest(manifest, config=config, prefill_occluded=0.25, prefill_clean=0.25)
    assert result.scored == 11 and [f[0] for f in result.failures] == [ids[5]]
    assert "could not be read" in result.summary()
    layer = pq.read_table(suggestion_layer_path(manifest)).to_pandas().set_index("sample_id")
    assert list(layer.index) == sorted(ids)
    assert np.isnan(layer.loc[ids[5], "score"]) and layer.loc[ids[5], "failure"]
    scores = layer["score"].dropna()
    assert len(scores) == 11 and ((scores >= 0) & (scores <= 1)).all()
    assert sum(s == ["none"] for s in layer["suggested"].dropna().map(list)) == 3  # bottom 25% of 11
    events = read_events(ann).to_pandas()
    sugg = events[events["source"] == "suggestion"]
    assert set(sugg["annotator"]) == {SUGGEST_ANNOTATOR} and len(sugg) == result.events_added > 0
    assert ids[0] not in set(sugg["sample_id"]) and ids[5] not in set(sugg["sample_id"])
    labels = latest_labels(read_events(ann)).set_index("sample_id")
    assert labels.loc[ids[0], "source"] == "human"  # a suggestion never beats a person

    again = suggest(manifest, config=config, write_events=False)
    layer2 = pq.read_table(suggestion_layer_path(manifest)).to_pandas().set_index("sample_id")
    assert np.allclose(layer["score"].fillna(-1), layer2["score"].fillna(-1), atol=0, rtol=0)
    assert again.events_added == 0


def test_suggest_rejects_bad_prefill_fractions(workspace: Path) -> None:
    from test_annotate import make_toy_manifest

    from fercurate.annotate.suggest import suggest

    manifest = make_toy_manifest(workspace, name="sugbad", n=4)
    with pytest.raises(InputError, match="prefill fractions"):
        suggest(manifest, prefill_occluded=0.8, prefill_clean=0.5)


def test_fine_tuning_uses_labels_and_reused_pretraining_gives_identical_scores(workspace: Path) -> None:
    from test_annotate import make_toy_manifest

    from fercurate.annotate.suggest import pretrained_path, suggest
    from fercurate.scorer.config import ScorerConfig
    from fercurate.scorer.targets import label_targets

    manifest = make_toy_manifest(workspace, name="sugft", n=12)
    ids = pq.read_table(manifest, columns=["sample_id"]).column("sample_id").to_pylist()
    labels = label_targets(pd.DataFrame({"sample_id": ids[:6],
                                         "types": [["mask"], ["upper"], ["glasses|mask"], ["none"], ["none"], ["none"]]}))
    config = ScorerConfig(seed=2, steps=6, finetune_epochs=2, min_labels=3, threads=1, batch=16)
    first = suggest(manifest, config=config, train_labels=labels, write_events=False)
    assert first.training["finetuned"] and not first.training["pretrain_reused"]
    assert (first.training["label_pos"], first.training["label_neg"]) == (3, 3)
    assert pretrained_path(manifest).exists()
    second = suggest(manifest, config=config, train_labels=labels, write_events=False)
    assert second.training["pretrain_reused"]
    pretrained_path(manifest).unlink()
    third = suggest(manifest, config=config, train_labels=labels, write_events=False)
    assert not third.training["pretrain_reused"]
    for other in (second, third):
        assert np.array_equal(first.scores["score"].to_numpy(), other.scores["score"].to_numpy())
    fewer = suggest(manifest, config=ScorerConfig(seed=2, steps=6, min_labels=4, threads=1, batch=16),
                    train_labels=labels, write_events=False)
    assert not fewer.training["finetuned"]  # 3 per class is below min_labels=4


@pytest.fixture(scope="module")
def expression_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch baseline from ``fercurate train`` on a toy manifest (24 px): a real checkpoint to start from."""
    import torch
    from fixtures_ran import make_toy_manifest as make_ran_manifest

    from fercurate.ran.train import TrainConfig as RanConfig
    from fercurate.ran.train import train

    ws = tmp_path_factory.mktemp("suggest-backbone")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERCURATE_WORKSPACE", str(ws))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        path = make_ran_manifest(ws, size=24, per_class={"train": 3, "val": 1, "test": 1})
        cfg = RanConfig(manifest=str(path), out=str(ws / "runs" / "b"), arch="baseline", epochs=1, batch_size=8,
                        input_size=24, face_size=24, decode_workers=1, save_every_min=0)
        ckpt = train(cfg, echo=lambda s: None).checkpoint
        torch.set_num_threads(threads)
    return ckpt


def test_backbone_scorer_is_the_checkpoints_resnet_on_the_grey_face(expression_checkpoint: Path) -> None:
    import torch
    import torch.nn.functional as F

    from fercurate.scorer.model import build_net
    from fercurate.scorer.model import face_tensor as _tensor
    from fercurate.ran.checkpoint import load_checkpoint
    from fercurate.ran.train import model_from_checkpoint

    net = build_net(str(expression_checkpoint)).eval()
    model = model_from_checkpoint(load_checkpoint(expression_checkpoint)).eval()
    assert torch.equal(net.expression.weight, model.fc.weight) and torch.equal(net.expression.bias, model.fc.bias)
    faces = np.stack([_face(1), _face(2)])
    rgb = torch.from_numpy(faces.astype(np.float32) / 255.0)[:, None].expand(-1, 3, -1, -1)
    rgb = F.interpolate(rgb, size=(24, 24), mode="bilinear", align_corners=False)
    with torch.no_grad():
        ours = net.body(_tensor(faces))
        theirs = model.backbone.features(model.norm(rgb))
        assert ours.shape == (2, 512) and torch.allclose(ours, theirs, atol=1e-5)
        assert torch.allclose(net.expression(ours), model(rgb).logits, atol=1e-5)  # same expression prediction
        assert net(_tensor(faces)).shape == (2, 1 + len(KINDS))


def test_backbone_from_a_ran_checkpoint_reads_its_fc_on_the_whole_face(expression_checkpoint: Path, tmp_path: Path) -> None:
    import torch

    from fercurate.scorer.model import build_net
    from fercurate.scorer.model import face_tensor as _tensor
    from fercurate.ran.checkpoint import load_checkpoint, save_checkpoint
    from fercurate.ran.model import build_model

    state = load_checkpoint(expression_checkpoint)
    ran = build_model("ran", len(state["labels"]), input_size=24)
    torch.nn.init.normal_(ran.fc.weight)
    state = {k: v for k, v in state.items() if k not in ("format", "format_version")}
    state.update(arch="ran", model=ran.state_dict(), config={**state["config"], "arch": "ran"})
    path = save_checkpoint(state, tmp_path / "ran.pt")
    net = build_net(str(path)).eval()
    w = ran.fc.weight
    assert torch.allclose(net.expression.weight, w[:, :512] + w[:, 512:])  # FC on P = [f : f]
    with torch.no_grad():
        assert torch.equal(net.body.backbone.conv1.weight, ran.backbone.conv1.weight)
        assert net(_tensor(np.stack([_face(3)]))).shape == (1, 1 + len(KINDS))


def test_suggest_with_a_backbone_records_it_and_is_reproducible(workspace: Path, expression_checkpoint: Path) -> None:
    import torch
    from test_annotate import make_toy_manifest
    from typer.testing import CliRunner

    from fercurate.annotate.dataset import suggestion_layer_path
    from fercurate.annotate.suggest import suggest
    from fercurate.scorer.config import BACKBONE_METHOD
    from fercurate.scorer.config import ScorerConfig
    from fercurate.scorer.targets import label_targets
    from fercurate.cli import app
    from fercurate.layers import read_layer
    from fercurate.ran.checkpoint import file_sha256

    manifest = make_toy_manifest(workspace, name="sugbb", n=12)
    ids = pq.read_table(manifest, columns=["sample_id"]).column("sample_id").to_pylist()
    labels = label_targets(pd.DataFrame({"sample_id": ids[:6], "types": [["mask"], ["upper"], ["bottom"]] + [["none"]] * 3}))
    config = ScorerConfig(seed=3, steps=4, finetune_epochs=2, min_labels=3, threads=1, batch=8,
                         backbone=str(expression_checkpoint))
    first = suggest(manifest, config=config, train_labels=labels, write_events=False)
    assert first.scored == 12 and first.training["finetuned"] and BACKBONE_METHOD in first.summary()
    prov = read_layer(suggestion_layer_path(manifest))[1]["provenance"]
    assert prov["device"] == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert prov["method"] == BACKBONE_METHOD and prov["backbone_sha256"] == file_sha256(expression_checkpoint)
    again = suggest(manifest, config=config, train_labels=labels, write_events=False)
    assert again.training["pretrain_reused"]
    assert np.array_equal(first.scores["score"].to_numpy(), again.scores["score"].to_numpy())
    small = suggest(manifest, config=ScorerConfig(seed=3, steps=4, finetune_epochs=2, min_labels=3, threads=1, batch=8),
                    train_labels=labels, write_events=False)
    assert not small.training["pretrain_reused"]  # the small CNN never reuses the ResNet's weights
    assert not np.array_equal(first.scores["score"].to_numpy(), small.scores["score"].to_numpy())

    r = CliRunner().invoke(app, ["annotate", "suggest", "sugbb", "--steps", "2", "--epochs", "0", "--threads", "1",
                                 "--backbone", str(expression_checkpoint)])
    assert r.exit_code == 0, r.output
    assert BACKBONE_METHOD in r.output
    events = read_events(Workspace.current().annotation_path("sugbb")).to_pandas()
    assert set(events["origin"]) == {BACKBONE_METHOD}


def test_suggest_rejects_a_backbone_that_is_not_a_checkpoint(workspace: Path, tmp_path: Path) -> None:
    from test_annotate import make_toy_manifest
    from typer.testing import CliRunner

    from fercurate.annotate.dataset import suggestion_layer_path
    from fercurate.annotate.suggest import suggest
    from fercurate.scorer.config import ScorerConfig
    from fercurate.cli import app

    manifest = make_toy_manifest(workspace, name="sugbadbb", n=4)
    with pytest.raises(InputError, match="checkpoint not found"):
        suggest(manifest, config=ScorerConfig(backbone=str(tmp_path / "nope.pt")))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(InputError, match="junk.pt: cannot read as a fercurate checkpoint"):
        suggest(manifest, config=ScorerConfig(backbone=str(junk)))
    assert not suggestion_layer_path(manifest).exists()  # rejected before anything was written
    r = CliRunner().invoke(app, ["annotate", "suggest", "sugbadbb", "--backbone", str(tmp_path / "nope.pt")])
    assert r.exit_code != 0 and "nope.pt" in r.output


def test_suggest_asking_for_cuda_without_a_gpu_is_a_clear_error(workspace: Path) -> None:
    import torch
    from test_annotate import make_toy_manifest

    from fercurate.annotate.dataset import suggestion_layer_path
    from fercurate.annotate.suggest import suggest
    from fercurate.scorer.config import ScorerConfig

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    manifest = make_toy_manifest(workspace, name="sugcuda", n=4)
    with pytest.raises(InputError, match="no CUDA GPU"):
        suggest(manifest, config=ScorerConfig(device="cuda", steps=1, threads=1))
    assert not suggestion_layer_path(manifest).exists()


def test_suggest_excludes_the_nonfaces_quality_found_from_ranking_and_prefill(workspace: Path) -> None:
    import cv2
    from test_annotate import make_toy_manifest

    from fercurate.annotate.dataset import suggestion_layer_path
    from fercurate.annotate.suggest import suggest
    from fercurate.scorer.config import ScorerConfig
    from fercurate.manifest import read_manifest
    from fercurate.quality.nonface import find_nonfaces

    manifest = make_toy_manifest(workspace, name="sugnf", n=12)
    m = read_manifest(manifest)
    ids = m.table.column("sample_id").to_pylist()
    for i in (2, 7):  # two uniform grey "images": quality flags them blank (not faces)
        assert cv2.imwrite(str(m.root / m.table.column("image_path")[i].as_py()), np.full((48, 48), 128, np.uint8))
    flagged = find_nonfaces(m, detect=False, workers=1)
    assert sorted(np.asarray(ids)[flagged.table.column("flagged").to_numpy(zero_copy_only=False)]) == sorted([ids[2], ids[7]])
    said: list[str] = []
    config = ScorerConfig(seed=1, steps=6, finetune_epochs=1, threads=1, batch=32)

    result = suggest(manifest, config=config, prefill_occluded=0.5, prefill_clean=0.5, report=said.append)
    assert result.excluded == 2 and result.scored == 10
    assert "2 non-face(s) from 'fercurate quality nonface' excluded" in result.summary()
    assert any(line.startswith("excluding 2 non-face(s)") for line in said)
    layer = pq.read_table(suggestion_layer_path(manifest)).to_pandas().set_index("sample_id")
    for sid in (ids[2], ids[7]):
        assert np.isnan(layer.loc[sid, "score"]) and layer.loc[sid, "suggested"] is None
        assert layer.loc[sid, "excluded"].startswith("non-face: blank")
    others = layer.drop(index=[ids[2], ids[7]])
    assert others["score"].notna().all() and others["excluded"].isna().all()
    assert others["suggested"].notna().all()  # 50% top + 50% bottom: every real face pre-filled
    sugg = read_events(Workspace.current().annotation_path("sugnf")).to_pandas()
    assert set(sugg["sample_id"]) == set(others.index)  # no suggestion for a non-face

    kept = suggest(manifest, config=config, exclude_nonfaces=False, write_events=False)
    assert kept.excluded == 0 and kept.scored == 12


def test_fast_preset_runs_fewer_steps_and_explicit_values_win() -> None:
    from fercurate.scorer.config import ScorerConfig

    default, fast = ScorerConfig(), ScorerConfig.fast()
    assert (default.steps, default.pool, default.finetune_epochs) == (800, 30_000, 10)
    assert (fast.steps, fast.pool, fast.finetune_epochs) == (200, 5_000, 4)
    assert ScorerConfig.fast(steps=50, seed=3).steps == 50 and ScorerConfig.fast(steps=50).pool == 5_000


def test_training_reports_its_expected_duration_before_most_of_it_runs() -> None:
    from fercurate.scorer.config import ScorerConfig
    from fercurate.scorer.train import train_scorer

    rng = np.random.default_rng(0)
    pool = rng.integers(0, 255, (40, 48, 48)).astype(np.uint8)
    said: list[tuple[str, float]] = []
    import time

    t0 = time.perf_counter()
    _, summary, _, _ = train_scorer(pool, None, ScorerConfig(steps=12, threads=1, batch=16),
                                    report=lambda line: said.append((line, time.perf_counter() - t0)))
    total = time.perf_counter() - t0
    assert len(said) == 1 and said[0][0].startswith("expected training time: ~0 min")
    assert "12 pre-training + 0 fine-tuning batches" in said[0][0] and summary["estimate"] == said[0][0]
    assert said[0][1] < total * 0.6  # said after 4 of the 12 batches, not at the end
    assert 0 < summary["estimate_s"] < 60


def test_cli_suggest_fast_prints_its_plan_and_the_estimate_first(workspace: Path) -> None:
    import os
    import subprocess
    import sys

    from test_annotate import make_toy_manifest

    manifest = make_toy_manifest(workspace, name="sugcli", n=8)
    exe = Path(sys.executable).with_name("fercurate")
    proc = subprocess.run([str(exe), "annotate", "suggest", str(manifest), "--fast", "--steps", "6", "--threads", "1"],
                          env={**os.environ, "FERCURATE_WORKSPACE": str(workspace)}, cwd=workspace,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "training the scorer: 6 pre-training batches on at most 5,000 faces, 4 fine-tuning epochs (--fast)"
    assert lines[1].startswith("expected training time: ~0 min") and "6 pre-training" in lines[1]
    assert lines[2].startswith("scored 8 faces")
