"""Paper-faithful preprocessing options: recorded in the checkpoint and used again by evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fixtures_ran import make_toy_manifest

from fercurate.errors import InputError
from fercurate.manifest import read_manifest
from fercurate.ran import data as rdata
from fercurate.ran.batches import AugmentConfig, prepare_batch
from fercurate.ran.checkpoint import load_checkpoint
from fercurate.ran.config import PAPER_LANDMARK_SCALE, TrainConfig
from fercurate.ran.crops import eval_boxes, landmark_boxes
from fercurate.ran.evaluate import evaluate, load_predictor, run_model
from fercurate.ran.train import train


def _tiny(ws, out, **kw) -> TrainConfig:  # noqa: ANN001
    base = dict(manifest="toy", out=str(out), epochs=1, batch_size=4, input_size=24, face_size=24, lr=0.05,
                decode_workers=1, save_every_min=0)
    return TrainConfig(**{**base, **kw})


def test_aligned_landmark_run_is_recorded_and_evaluated_the_same_way(workspace) -> None:  # noqa: ANN001
    torch.set_num_threads(1)
    make_toy_manifest(workspace, size=32, per_class={"train": 2, "val": 0, "test": 2}, landmarks=True)
    cfg = _tiny(workspace, workspace / "runs" / "p", align="dlib5", crops="landmark",
                landmark_scale=PAPER_LANDMARK_SCALE, landmark_clip=True)
    res = train(cfg, workspace=workspace, echo=lambda s: None)
    stored = load_checkpoint(res.checkpoint)["config"]
    assert (stored["align"], stored["crops"], stored["landmark_scale"], stored["landmark_clip"]) == \
        ("dlib5", "landmark", 0.8, True)
    out = evaluate(res.checkpoint, splits=["test"], report_dir=workspace / "runs" / "p" / "eval", bootstrap=0,
                   decode_workers=1, echo=lambda s: None)
    assert out.groups[0]["n"] == 8
    metas = [json.loads(p.read_text()) for p in (workspace / "cache" / "faces").glob("*.json")]
    assert sorted((m["align"], m["n"]) for m in metas) == [("dlib5", 8), ("dlib5", 8)], \
        "train and eval faces must both be cut with the checkpoint's alignment"
    # without the cache the landmarks could not follow each face's alignment: refused, not misplaced
    with pytest.raises(InputError, match="need the face cache"):
        evaluate(res.checkpoint, splits=["test"], cache=False, bootstrap=0, decode_workers=1, echo=lambda s: None)


def test_random_crop_counts_for_training_and_evaluation(workspace) -> None:  # noqa: ANN001
    torch.set_num_threads(1)
    make_toy_manifest(workspace, size=24, per_class={"train": 2, "val": 0, "test": 1})
    cfg = _tiny(workspace, workspace / "runs" / "r", crops="random", random_crops=3, random_eval_crops=7)
    res = train(cfg, workspace=workspace, echo=lambda s: None)
    predictor = load_predictor(res.checkpoint, device="cpu")
    assert eval_boxes(predictor.config).shape == (8, 4)
    samples = rdata.select_samples(read_manifest(workspace / "manifests" / "toy.parquet"), splits=["test"])
    store = rdata.load_faces(samples, 24, workers=1, workspace=workspace)
    out = run_model(predictor.model, samples, store, predictor.config)
    assert out["mu"].shape == (len(samples), 8), "evaluation uses random_eval_crops regions + the whole face"
    faces, boxes = prepare_batch(torch.from_numpy(np.array(store.faces[:2])), input_size=24,
                                       train=True, augment=AugmentConfig(), generator=torch.Generator(),
                                       crops="random", num_crops=cfg.random_crops)
    assert boxes.shape == (2, 4, 4), "training draws random_crops regions + the whole face"


def test_paper_landmark_regions_are_clipped_to_the_face() -> None:
    centres = torch.tensor([[[0.1, 0.2], [0.9, 0.2], [0.5, 0.6], [0.3, 0.95], [0.7, 0.95]]])
    free = landmark_boxes(centres, PAPER_LANDMARK_SCALE)
    clipped = landmark_boxes(centres, PAPER_LANDMARK_SCALE, clip=True)
    assert float(free[..., 2:].max()) > 1 and float(free[..., :2].min()) < 0
    assert float(clipped.min()) >= 0 and float(clipped.max()) <= 1
    np.testing.assert_allclose(clipped[0, 1].numpy(), [0.0, 0.0, 0.5, 0.6], atol=1e-6)  # radius 0.4 about (0.1, 0.2)


def test_torchscript_export_carries_the_alignment_and_scores_like_its_checkpoint(workspace) -> None:  # noqa: ANN001
    from fercurate.ran.checkpoint import export_torchscript

    torch.set_num_threads(1)
    make_toy_manifest(workspace, size=32, per_class={"train": 2, "val": 0, "test": 2}, landmarks=True)
    res = train(_tiny(workspace, workspace / "runs" / "a", align="dlib5"), workspace=workspace, echo=lambda s: None)
    scripted = export_torchscript(res.checkpoint, workspace / "runs" / "a" / "ran.ts")
    assert load_predictor(scripted).align == "dlib5" and load_predictor(res.checkpoint).align == "dlib5"
    ours = evaluate(res.checkpoint, manifest="toy", splits=["test"], bootstrap=0, decode_workers=1, workspace=workspace,
                    echo=lambda s: None)
    theirs = evaluate(scripted, manifest="toy", splits=["test"], bootstrap=0, decode_workers=1, workspace=workspace,
                      echo=lambda s: None)
    assert theirs.groups[0]["n"] == ours.groups[0]["n"] == 8
    assert theirs.groups[0]["accuracy"] == ours.groups[0]["accuracy"]
    assert theirs.groups[0]["confusion"] == ours.groups[0]["confusion"]
