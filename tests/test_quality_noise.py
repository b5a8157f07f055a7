"""Label noise: vote agreement/entropy on real FERPlus votes, confident learning on planted label
errors, probability-file checks, the CLI with --probs / --model, and the FiftyOne saved view."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.stats
from fixtures_quality import Row, write_manifest_over
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.errors import InputError
from fercurate.layers import read_layer
from fercurate.manifest import read_manifest
from fercurate.quality.noise import (
    check_probs,
    confident_joint,
    find_label_issues,
    label_noise,
    model_probs,
    read_probs,
)
from fercurate.schema import FERPLUS_LABELS, FERPLUS_VOTE_COLUMNS, LABEL_TO_ID
from fercurate.workspace import layer_path


def _ferplus_rows(ferplus_root, n: int) -> list[tuple[str, list[int]]]:
    out = []
    with open(ferplus_root / "FER2013Test" / "label.csv", newline="") as fh:
        for rec in csv.reader(fh):
            votes = [int(v) for v in rec[2:12]]
            if FERPLUS_LABELS[FERPLUS_VOTE_COLUMNS[int(np.argmax(votes))]] is not None:
                out.append((rec[0], votes))
            if len(out) == n:
                break
    return out


@pytest.fixture
def fer_manifest(ferplus_root, workspace):
    """40 real FERPlus test images with their label.csv votes and majority labels."""
    root = workspace / "data"
    root.mkdir()
    rows = []
    for name, votes in _ferplus_rows(ferplus_root, 40):
        shutil.copyfile(ferplus_root / "FER2013Test" / name, root / name)
        label = FERPLUS_LABELS[FERPLUS_VOTE_COLUMNS[int(np.argmax(votes))]]
        rows.append(Row(name, "test", LABEL_TO_ID[label], votes))
    return write_manifest_over(workspace, "fer", root, rows)


def test_vote_agreement_and_entropy_on_real_votes(fer_manifest):
    m = read_manifest(fer_manifest)
    df = label_noise(m).table.to_pandas()
    votes = np.array(m.table.column("label_votes").to_pylist(), dtype=float)
    assert np.allclose(df["entropy_bits"], scipy.stats.entropy(votes.T, base=2), atol=1e-5)
    assert np.allclose(df["agreement"], votes.max(1) / votes.sum(1), atol=1e-6)
    assert (df["contested"] == (df["agreement"] < 0.5)).all()
    assert df["contested"].any() and not df["contested"].all()
    assert (df["votes_total"] == votes.sum(1)).all()
    first = df.iloc[0]  # fer0032220: 2 anger, 1 disgust, 7 contempt
    assert first.vote_winner == "contempt" and first.vote_runner_up == "anger"
    assert df["prob_given"].isna().all() and not df["likely_mislabel"].any()
    assert layer_path(fer_manifest, "noise").exists()


def test_confident_joint_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 2])
    probs = np.array([
        [0.9, 0.1, 0.0],
        [0.8, 0.1, 0.1],
        [0.1, 0.8, 0.1],  # labelled 0, confidently 1
        [0.2, 0.7, 0.1],
        [0.1, 0.8, 0.1],
        [0.1, 0.1, 0.8],
    ])
    # thresholds: class 0 mean(.9,.8,.1)=.6, class 1 mean(.7,.8)=.75, class 2 .8; row 3 (p1=.7) reaches
    # no threshold, so it is not counted
    cj = confident_joint(labels, probs, calibrate=False)
    assert cj.tolist() == [[2, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert confident_joint(labels, probs).sum(axis=1).tolist() == [3, 2, 1]
    assert find_label_issues(labels, probs).tolist() == [False, False, True, False, False, False]


def test_planted_label_errors_are_found():
    rng = np.random.default_rng(0)
    n, k = 2000, 7
    truth = rng.integers(0, k, n)
    given = truth.copy()
    flipped = rng.random(n) < 0.12
    given[flipped] = (truth[flipped] + rng.integers(1, k, flipped.sum())) % k
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), truth] += 4.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    issues = find_label_issues(given, probs)
    precision = (issues & flipped).sum() / issues.sum()
    recall = (issues & flipped).sum() / flipped.sum()
    assert precision > 0.9 and recall > 0.9
    assert not issues[probs.argmax(1) == given].any()


def test_probability_files_are_checked(tmp_path):
    good = pd.DataFrame({"sample_id": ["a", "b"], "prob_0": [0.25, 1.0], "prob_1": [0.75, 0.0]})
    assert list(check_probs(good, "x").columns) == ["sample_id", "prob_0", "prob_1"]
    with pytest.raises(InputError, match="no 'sample_id' column"):
        check_probs(good.drop(columns="sample_id"), "x")
    with pytest.raises(InputError, match=r"row 2 \(b\) is not a probability vector.*logits"):
        check_probs(good.assign(prob_1=[0.75, 3.0]), "x")
    with pytest.raises(InputError, match="prob_0 .. prob_K-1"):
        check_probs(good.rename(columns={"prob_1": "prob_5"}), "x")
    with pytest.raises(InputError, match="appears more than once"):
        check_probs(pd.concat([good, good]), "x")
    with pytest.raises(InputError, match="not found"):
        read_probs(tmp_path / "missing.parquet")
    good.to_csv(tmp_path / "p.csv", index=False)
    assert len(read_probs(tmp_path / "p.csv")) == 2


def _planted_probs(m, flip_every: int = 5) -> tuple[pd.DataFrame, set[str]]:
    """Confident, correct probabilities except every n-th row, where the model is sure of another class.

    Only classes with at least 3 rows are flipped, into another such class: confident learning (like
    cleanlab) never prunes a class down to nothing, and cannot suggest a class no row is labelled with.
    """
    ids = m.table.column("sample_id").to_pylist()
    labels = m.table.column("label_id").to_numpy()
    big = [c for c in range(8) if (labels == c).sum() >= 3]
    assert len(big) >= 2
    probs = np.full((len(ids), 8), 0.02)
    wrong = set()
    for i, y in enumerate(labels):
        target = big[(big.index(y) + 1) % len(big)] if i % flip_every == 0 and y in big else y
        probs[i, target] = 0.86
        if target != y:
            wrong.add(ids[i])
    df = pd.DataFrame({"sample_id": ids, **{f"prob_{j}": probs[:, j] for j in range(8)}})
    return df, wrong


def test_cli_noise_with_probs_and_app_view(fer_manifest, workspace):
    m = read_manifest(fer_manifest)
    probs, wrong = _planted_probs(m)
    pf = workspace / "probs.parquet"
    probs.to_parquet(pf)
    res = CliRunner().invoke(app, ["quality", "noise", "fer", "--probs", str(pf), "--app-view", "qa-mislabels",
                                   "-w", str(workspace)])
    assert res.exit_code == 0, res.output
    assert "likely mislabels" in res.output and "saved view 'qa-mislabels'" in res.output
    table, meta = read_layer(layer_path(fer_manifest, "noise"), "noise")
    df = table.to_pandas()
    assert set(df.loc[df["likely_mislabel"], "sample_id"]) == wrong
    assert meta["provenance"]["probabilities"] is True
    flagged = df[df["likely_mislabel"]].sort_values("issue_rank")
    assert flagged["issue_rank"].tolist() == list(range(1, len(wrong) + 1))
    assert (flagged["suggested_label"] == flagged["pred_label"]).all()

    from fercurate.annotate.dataset import load_dataset

    ds = load_dataset("fer")
    view = ds.load_saved_view("qa-mislabels")
    ids = view.values("sample_id")
    contested = set(df.loc[df["contested"].fillna(False) & ~df["likely_mislabel"], "sample_id"])
    assert set(ids[: len(wrong)]) == wrong and set(ids[len(wrong):]) == contested
    ds.delete()


def test_model_probs_come_from_the_predictor_the_caller_passes(fer_manifest, workspace):
    m = read_manifest(fer_manifest)
    probs, wrong = _planted_probs(m)
    ckpt = workspace / "model.pt"
    ckpt.write_bytes(b"any model")
    calls = []

    def predict(model_path, manifest_path, split):
        calls.append((model_path, manifest_path, split))
        return probs

    got = model_probs(ckpt, m, "test", predict=predict)
    assert calls == [(ckpt, m.path, "test")]
    assert set(label_noise(m, got, write=False).table.to_pandas().query("likely_mislabel")["sample_id"]) == wrong
    with pytest.raises(InputError, match="model checkpoint not found"):
        model_probs(workspace / "none.pt", m, predict=predict)
    with pytest.raises(InputError, match="not a probability vector"):
        model_probs(ckpt, m, predict=lambda *_: probs.assign(prob_0=2.0))


def test_cli_noise_rejects_bad_inputs(fer_manifest, workspace):
    runner = CliRunner()
    pf = workspace / "probs.parquet"
    pd.DataFrame({"sample_id": ["fer/nope.png"], **{f"prob_{j}": [0.125] for j in range(8)}}).to_parquet(pf)
    res = runner.invoke(app, ["quality", "noise", "fer", "--probs", str(pf), "-w", str(workspace)])
    assert res.exit_code == 1 and "not in" in res.output and "fer/nope.png" in res.output
    res = runner.invoke(app, ["quality", "noise", "fer", "--probs", str(pf), "--model", "x.pt", "-w", str(workspace)])
    assert res.exit_code == 1 and "not both" in res.output
    res = runner.invoke(app, ["quality", "noise", "fer", "--model", str(workspace / "none.pt"), "-w", str(workspace)])
    assert res.exit_code == 1 and "model checkpoint not found" in res.output


def test_cli_noise_with_a_trained_ran(workspace, monkeypatch):
    torch = pytest.importorskip("torch")
    from fixtures_ran import make_toy_manifest

    from fercurate.ran.train import TrainConfig, train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = make_toy_manifest(workspace, size=24, per_class={"train": 4, "val": 1, "test": 3})
        cfg = TrainConfig(manifest=str(path), out=str(workspace / "runs" / "ran"), epochs=1, batch_size=8,
                          input_size=24, face_size=24, decode_workers=1, save_every_min=0)
        ckpt = train(cfg, echo=lambda s: None).checkpoint
        res = CliRunner().invoke(app, ["quality", "noise", "toy", "--model", str(ckpt), "--split", "test",
                                       "-w", str(workspace)])
    finally:
        torch.set_num_threads(threads)
    assert res.exit_code == 0, res.output
    assert "12 rows scored" in res.output
    df = pq.read_table(layer_path(path, "noise")).to_pandas()
    scored = df[df["prob_given"].notna()]
    assert set(scored["split"]) == {"test"} and len(scored) == 12
    assert scored["pred_label"].notna().all()


def test_the_old_review_path_still_gives_save_review_view_with_a_warning():
    from fercurate.annotate.review import save_review_view

    with pytest.warns(DeprecationWarning, match=r"quality\.review\.save_review_view moved to fercurate\.annotate\.review"):
        from fercurate.quality.review import save_review_view as old
    assert old is save_review_view
