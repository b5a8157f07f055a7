"""Training: checkpoints, exact resume, excluded rows, targets, variants and the ``fercurate train`` CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from fixtures_ran import make_toy_manifest as _make_toy_manifest
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.errors import InputError
from fercurate.manifest import read_manifest
from fercurate.ran import data as rdata
from fercurate.ran.checkpoint import load_checkpoint, save_checkpoint
from fercurate.ran.train import TrainConfig, train


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine OpenMP spin-waiting makes 2 threads far slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_toy_manifest(ws, **kw):
    """16 train, 8 val, 12 test faces of 24 px: enough to exercise every path, quick on a busy CPU."""
    return _make_toy_manifest(ws, size=24, per_class={"train": 4, "val": 2, "test": 3}, **kw)


def tiny(ws, out, **kw) -> TrainConfig:
    base = dict(manifest=str(ws / "manifests" / "toy.parquet"), out=str(out), epochs=2, batch_size=8, input_size=24,
                face_size=24, lr=0.05, decode_workers=1, save_every_min=0, log_every=1)
    base.update(kw)
    return TrainConfig(**base)


def weights(path):
    return load_checkpoint(path)["model"]


def test_train_writes_checkpoint_metrics_and_excluded(workspace):
    make_toy_manifest(workspace, unlabelled=2)
    res = train(tiny(workspace, workspace / "runs" / "a", val_splits=["val"]))
    state = load_checkpoint(res.checkpoint)
    assert res.checkpoint.name == "ran.pt"
    for key in ("model", "optimizer", "scheduler", "scaler", "epoch", "rng", "config", "labels", "manifest"):
        assert key in state
    assert state["epoch"] == 2 and state["batch_in_epoch"] == 0
    assert state["labels"] == ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"]
    assert state["manifest"]["sha256"] and state["train_samples"] == 16
    assert state["scheduler"]["step_count"] == 4  # 16 faces / 8 per batch x 2 epochs
    lines = [json.loads(x) for x in (res.checkpoint.parent / "metrics.jsonl").read_text().splitlines()]
    epochs = [ln for ln in lines if ln["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert all(0 <= e["val_acc"] <= 1 and e["val_n"] == 8 and e["img_per_s"] > 0 for e in epochs)
    assert any(ln["event"] == "train" and "rb" in ln for ln in lines)
    excluded = pq.read_table(res.checkpoint.parent / "excluded.parquet").to_pylist()
    assert len(excluded) == 2 and all("no canonical label" in r["reason"] for r in excluded)
    assert res.best_checkpoint is not None and res.best_checkpoint.exists()


def test_resume_continues_exactly(workspace):
    make_toy_manifest(workspace)
    straight = train(tiny(workspace, workspace / "runs" / "straight"))
    # killed after epoch 1 (2 steps), then resumed
    first = train(tiny(workspace, workspace / "runs" / "killed"), stop_after_steps=2)
    assert load_checkpoint(first.checkpoint)["epoch"] == 1
    resumed = train(TrainConfig(manifest="", out=""), resume=workspace / "runs" / "killed")
    # killed mid-epoch (after 3 steps: 1 batch into epoch 2), then resumed
    mid = train(tiny(workspace, workspace / "runs" / "mid"), stop_after_steps=3)
    state = load_checkpoint(mid.checkpoint)
    assert (state["epoch"], state["batch_in_epoch"]) == (1, 1)
    resumed_mid = train(TrainConfig(manifest="", out=""), resume=mid.checkpoint)
    a, b, c = weights(straight.checkpoint), weights(resumed.checkpoint), weights(resumed_mid.checkpoint)
    assert a.keys() == b.keys() == c.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
        assert torch.equal(a[k], c[k]), k
    # the metrics log of the resumed run has each step once
    steps = [json.loads(x)["step"] for x in (workspace / "runs" / "mid" / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["event"] == "train"]
    assert steps == sorted(set(steps))


def test_resume_refuses_changed_settings_and_changed_manifest(workspace):
    make_toy_manifest(workspace)
    run = train(tiny(workspace, workspace / "runs" / "r", epochs=1, arch="baseline"))
    with pytest.raises(InputError, match="lr = 0.5 differs"):
        train(TrainConfig(manifest="", out=""), resume=run.checkpoint, overrides={"lr": 0.5})
    # epochs may change: training goes on for one more epoch
    more = train(TrainConfig(manifest="", out=""), resume=run.checkpoint, overrides={"epochs": 2})
    assert load_checkpoint(more.checkpoint)["epoch"] == 2
    # a checkpoint from before a setting existed resumes with that setting's default, even when given
    state = load_checkpoint(more.checkpoint)
    del state["config"]["pretrained_head"]
    save_checkpoint(state, more.checkpoint)
    with pytest.raises(InputError, match="pretrained_head = True differs from the checkpoint's False"):
        train(TrainConfig(manifest="", out=""), resume=more.checkpoint, overrides={"pretrained_head": True})
    older = train(TrainConfig(manifest="", out=""), resume=more.checkpoint, overrides={"epochs": 3, "pretrained_head": False})
    assert load_checkpoint(older.checkpoint)["epoch"] == 3
    manifest = workspace / "manifests" / "toy.parquet"
    m = read_manifest(manifest)
    from fercurate.manifest import write_manifest

    write_manifest(m.table.slice(1), manifest, dataset="ferplus", root=m.root)
    with pytest.raises(InputError, match="changed since the checkpoint"):
        train(TrainConfig(manifest="", out=""), resume=run.checkpoint, overrides={"epochs": 4})


def test_baseline_official_variant_votes_and_seven_classes(workspace):
    make_toy_manifest(workspace)
    res = train(tiny(workspace, workspace / "runs" / "b", arch="baseline", epochs=1, targets="votes", num_classes=7))
    state = load_checkpoint(res.checkpoint)
    assert res.checkpoint.name == "baseline.pt"
    assert state["labels"][-1] == "anger" and len(state["labels"]) == 7
    assert state["model"]["fc.weight"].shape == (7, 512)
    res2 = train(tiny(workspace, workspace / "runs" / "o", variant="official-code", epochs=1, lr=0.01))
    cfg = load_checkpoint(res2.checkpoint)["config"]
    assert (cfg["attention"], cfg["normalize"], cfg["rb_margin"], cfg["crop_set"]) == ("softmax", "none", 0.1, "official-code")
    assert TrainConfig(manifest="m", out="o", variant="official-code").resolved().lr == 0.1
    assert TrainConfig(manifest="m", out="o").resolved().lr == 0.01


def test_ran_fine_tunes_from_a_baseline_with_its_classifier(workspace):
    make_toy_manifest(workspace)
    base = train(tiny(workspace, workspace / "runs" / "base", arch="baseline", epochs=1)).checkpoint
    said: list[str] = []
    # a tiny lr: the RAN's head must still be the baseline's, split over [F_i : F_m]
    ran = train(tiny(workspace, workspace / "runs" / "ran", epochs=1, lr=1e-9, pretrained=str(base), pretrained_head=True,
                     freeze=["stem", "layer1", "layer2", "layer3", "layer4"]), echo=said.append).checkpoint
    w_base, w_ran = weights(base), weights(ran)
    assert torch.allclose(w_ran["fc.weight"], torch.cat([w_base["fc.weight"]] * 2, 1) / 2, atol=1e-6)
    assert torch.allclose(w_ran["fc.bias"], w_base["fc.bias"], atol=1e-6)
    assert torch.equal(w_ran["backbone.layer4.1.conv2.weight"], w_base["backbone.layer4.1.conv2.weight"])
    assert any("classifier loaded from the baseline checkpoint (split over [F_i : F_m]" in line for line in said)
    again = weights(train(tiny(workspace, workspace / "runs" / "again", epochs=1, lr=1e-9, pretrained=str(ran),
                                pretrained_head=True, freeze=["stem", "layer1", "layer2", "layer3", "layer4"])).checkpoint)
    for key in ("fc.weight", "q0.weight", "q1.weight", "q1.bias"):  # RAN -> RAN: the head as it is
        assert torch.allclose(again[key], w_ran[key], atol=1e-6), key
    fresh = weights(train(tiny(workspace, workspace / "runs" / "fresh", epochs=1, lr=1e-9, pretrained=str(base))).checkpoint)
    assert not torch.allclose(fresh["fc.weight"], w_ran["fc.weight"], atol=1e-3)
    with pytest.raises(InputError, match="same label map"):
        train(tiny(workspace, workspace / "runs" / "x", num_classes=7, pretrained=str(base), pretrained_head=True))
    with pytest.raises(InputError, match="does not fit a baseline"):
        train(tiny(workspace, workspace / "runs" / "x", arch="baseline", pretrained=str(ran), pretrained_head=True))
    with pytest.raises(InputError, match="needs --pretrained"):
        train(tiny(workspace, workspace / "runs" / "x", pretrained_head=True))


def test_random_and_landmark_crops_train(workspace):
    make_toy_manifest(workspace, landmarks=True)
    # random: cached faces through a DataLoader worker; landmark: the no-cache decode path
    for crops, cache, workers in (("random", True, 1), ("landmark", False, 0)):
        res = train(tiny(workspace, workspace / "runs" / crops, epochs=1, crops=crops, cache=cache, workers=workers,
                         val_splits=["val"]))
        cfg = load_checkpoint(res.checkpoint)["config"]
        assert (cfg["crops"], cfg["cache"]) == (crops, cache)
        assert 0 <= res.metrics[-1]["val_acc"] <= 1
    assert not (workspace / "cache" / "faces").exists() or len(list((workspace / "cache" / "faces").glob("*.npy"))) == 2


def test_vote_targets_follow_ferplus_processing(workspace):
    path = make_toy_manifest(workspace, unlabelled=1)
    m = read_manifest(path)
    s = rdata.select_samples(m, splits=["train"], targets="votes")
    assert s.soft.shape == (16, 8)
    assert np.allclose(s.soft.sum(1), 1.0)
    # a 7-vote happy image with 3 neutral votes: both kept, in canonical columns
    i = int(np.flatnonzero(s.labels == 1)[0])
    assert s.soft[i].tolist() == pytest.approx([0.3, 0.7, 0, 0, 0, 0, 0, 0])
    assert any("no vote-distribution target" in e["reason"] for e in s.excluded)
    s7 = rdata.select_samples(m, splits=["train"], targets="votes", num_classes=7)
    assert s7.soft.shape == (16, 7)


def test_bad_settings_are_clear_errors(workspace):
    make_toy_manifest(workspace)
    with pytest.raises(InputError, match="--arch"):
        train(tiny(workspace, workspace / "runs" / "x", arch="vgg"))
    with pytest.raises(InputError, match="--classes must be 7 or 8"):
        train(tiny(workspace, workspace / "runs" / "x", num_classes=5))
    with pytest.raises(InputError, match="no official list 'pose45'"):
        train(tiny(workspace, workspace / "runs" / "x", subset="pose45"))
    with pytest.raises(InputError, match="no rows in split"):
        train(tiny(workspace, workspace / "runs" / "x", splits=["dev"]))


def test_cli_train_and_resume(workspace):
    make_toy_manifest(workspace)
    runner = CliRunner()
    out = workspace / "runs" / "cli"
    args = ["train", "--manifest", "toy", "--out", str(out), "--epochs", "1", "--batch-size", "8", "--input-size", "24", "--arch", "baseline", "-j", "1", "--val-split", "val"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "epoch 1:" in r.output and "val acc" in r.output and (out / "baseline.pt").exists()
    r = runner.invoke(app, ["train", "--resume", str(out), "--epochs", "2"])
    assert r.exit_code == 0, r.output
    assert "resuming" in r.output and load_checkpoint(out / "baseline.pt")["epoch"] == 2
    r = runner.invoke(app, ["train", "--resume", str(out), "--lr", "0.3"])
    assert r.exit_code == 1 and "error:" in r.output and "differs" in r.output
    r = runner.invoke(app, ["train", "--help"])
    assert r.exit_code == 0 and "Example:" in r.output and "--pretrained-head" in r.output


def test_batches_and_augmentation_moved_to_ran_batches():
    from fercurate.ran import batches

    for name in ("epoch_order", "epoch_batches", "BatchLoader", "AugmentConfig", "prepare_batch"):
        with pytest.warns(DeprecationWarning, match=f"fercurate.ran.data.{name} moved to fercurate.ran.batches"):
            assert getattr(rdata, name) is getattr(batches, name)


def test_training_helpers_keep_their_old_import_path():
    import fercurate.ran.train as old
    from fercurate.ran.checkpoint import load_pretrained_head
    from fercurate.ran.optim import LRSchedule, freeze_stages

    assert (old.LRSchedule, old.freeze_stages, old.load_pretrained_head) == (LRSchedule, freeze_stages,
                                                                             load_pretrained_head)
