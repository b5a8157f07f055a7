"""Occlusion labelling: the App dataset, the plugin's labelling actions, pull, status and agreement.

Everything runs on FiftyOne's real bundled MongoDB (private folder from conftest) with real PNGs
written by OpenCV; the browser half lives in test_annotate_team.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fercurate.annotations import append_events, latest_labels, make_event, read_events
from fercurate.errors import InputError
from fercurate.layers import write_layer
from fercurate.manifest import build_table, write_manifest
from fercurate.workspace import Workspace, layer_path

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def make_toy_manifest(ws: Path, name: str | None = None, n: int = 8) -> Path:
    """A FERPlus-like manifest of ``n`` real 48x48 PNG faces (smooth gradients + noise), splits test/train."""
    name = name or f"toy{uuid.uuid4().hex[:8]}"
    root = ws / f"data-{name}"
    rng = np.random.default_rng(7)
    ids, paths, splits, labels = [], [], [], []
    for i in range(n):
        split = "train" if i % 4 == 0 else "test"
        rel = f"{split}/fer{i:07d}.png"
        (root / split).mkdir(parents=True, exist_ok=True)
        yy, xx = np.mgrid[0:48, 0:48]
        img = ((xx * 3 + yy * 2 + rng.integers(0, 40, (48, 48))) % 256).astype(np.uint8)
        assert cv2.imwrite(str(root / rel), img)
        ids.append(f"ferplus/{rel}")
        paths.append(rel)
        splits.append(split)
        labels.append(["neutral", "happy", "sad", "surprise"][i % 4])
    table = build_table({"sample_id": ids, "dataset": ["ferplus"] * n, "split": splits, "image_path": paths,
                         "label": labels, "label_id": [0] * n})
    path = ws / "manifests" / f"{name}.parquet"
    write_manifest(table, path, dataset="ferplus", root=root)
    return path


@pytest.fixture
def toy(workspace: Path) -> Path:
    return make_toy_manifest(workspace)


def _ids(manifest: Path) -> list[str]:
    return pq.read_table(manifest, columns=["sample_id"]).column("sample_id").to_pylist()


def test_ensure_dataset_is_idempotent_and_carries_label_split_pose_occlusion(toy: Path, workspace: Path) -> None:
    from fercurate.annotate.dataset import ensure_dataset
    from fercurate.annotate.views import STANDARD_VIEWS, unlabelled_view

    ids = _ids(toy)
    pose = pa.table({"sample_id": ids, "yaw": pa.array([10.0, -50.0] * 4, pa.float32()),
                     "pitch": pa.array([5.0] * 8, pa.float32()), "roll": pa.array([0.0] * 8, pa.float32()),
                     "method": ["mediapipe"] * 8, "confidence": pa.array([0.9] * 8, pa.float32()),
                     "failure": [None] * 7 + ["no face"]})
    write_layer(pose, layer_path(toy, "pose"), layer="pose", manifest=toy.stem)
    ann = Workspace.current().annotation_path(toy.stem)
    append_events(ann, [make_event(ids[1], ["glasses|mask"], annotator="ran-authors", source="official",
                                   labelled_at=T0, source_code="3")])

    ds = ensure_dataset(toy, split="test")
    assert len(ds) == 6 and set(ds.distinct("split")) == {"test"}
    ds = ensure_dataset(toy)  # all splits now; re-running never duplicates
    ds = ensure_dataset(toy)
    assert len(ds) == 8 and len(set(ds.values("sample_id"))) == 8
    s = ds.match({"sample_id": ids[1]}).first()
    row = pq.read_table(toy).to_pandas().set_index("sample_id").loc[ids[1]]
    assert s.label.label == row["label"] and s.split == row["split"] == "test"
    assert s.yaw == pytest.approx(-50.0) and s.pose_max == pytest.approx(50.0)
    assert s.occlusion == ["glasses|mask"] and s.occlusion_source == "official"
    assert ds.match({"sample_id": ids[7]}).first().pose_failure == "no face"
    assert set(STANDARD_VIEWS) <= set(ds.list_saved_views())
    assert ds.load_saved_view("occlusion-official-to-review").values("sample_id") == [ids[1]]
    assert unlabelled_view(ds).count() == 8  # an official label still awaits a person


def test_add_saved_view_selects_ids_in_order_and_rejects_unknown(toy: Path) -> None:
    from fercurate.annotate.dataset import ensure_dataset
    from fercurate.annotate.views import add_saved_view

    ds = ensure_dataset(toy)
    ids = _ids(toy)
    add_saved_view(ds, "quality-flagged", [ids[5], ids[2]], description="test")
    assert ds.load_saved_view("quality-flagged").values("sample_id") == [ids[5], ids[2]]
    add_saved_view(ds, "quality-flagged", [ids[3]])  # re-running refreshes the view
    assert ds.load_saved_view("quality-flagged").values("sample_id") == [ids[3]]
    with pytest.raises(InputError, match="not in App dataset"):
        add_saved_view(ds, "bad", ["ferplus/nope.png"])


def test_missing_images_are_a_clear_error_naming_the_file(toy: Path) -> None:
    from fercurate.annotate.dataset import ensure_dataset
    from fercurate.manifest import read_manifest

    m = read_manifest(toy)
    rel = m.table.column("image_path")[3].as_py()
    (m.root / rel).unlink()
    with pytest.raises(InputError, match=rf"1 of 8 images are missing .*row 3 .*{rel}"):
        ensure_dataset(toy)


def _own(toy: Path, who: str):
    """``who``'s own labelling copy of the toy manifest's App dataset, and its sample id -> App id map."""
    from fercurate.annotate.dataset import ensure_dataset
    from fercurate.annotate.session import open_session

    ds = open_session(ensure_dataset(toy), toy, annotator=who).dataset
    return ds, dict(zip(ds.values("sample_id"), ds.values("id")))


def _saved(toy: Path) -> None:
    """Write the labels the plugin queued (the App server does this every few seconds)."""
    from fercurate.annotate.live import writer_for

    writer_for(Workspace.current().annotation_path(toy.stem)).flush()


def test_plugin_labels_are_saved_as_made_and_pull_collects_hand_tags(toy: Path, workspace: Path) -> None:
    from fercurate.annotate import labelling
    from fercurate.annotate.dataset import ensure_dataset
    from fercurate.annotate.pull import pull

    ds, by_sid = _own(toy, "alice")
    ids = _ids(toy)
    ann = Workspace.current().annotation_path(toy.stem)
    earlier = make_event(ids[6], ["bottom"], annotator="carol", source="human", labelled_at=T0)
    append_events(ann, [earlier])
    before = read_events(ann)
    # the plugin: mask on two faces, then one of them relabelled mask+glasses (replaces), none on a third
    labelling.set_types(ds, [by_sid[ids[1]], by_sid[ids[2]]], ["mask"], "alice")
    labelling.set_types(ds, [by_sid[ids[1]]], ["mask", "glasses"], "alice")
    labelling.set_types(ds, [by_sid[ids[3]]], ["none"], "alice")
    _saved(toy)
    assert read_events(ann).num_rows == before.num_rows + 4
    # tags typed in the App's own tag menu: in alice's copy they are alice's; in the shared one --annotator's
    ds.select(by_sid[ids[5]]).tag_samples(["occ:upper", "reviewed"])
    shared = ensure_dataset(toy)
    shared.match({"sample_id": ids[7]}).tag_samples("occ:left_right")

    result = pull(toy.stem, annotator="dave")
    assert result.added == 2 and result.by_annotator == {"alice": 1, "dave": 1} and not result.problems
    events = read_events(ann)
    assert events.slice(0, before.num_rows).equals(before)  # earlier rows untouched
    labels = latest_labels(events).set_index("sample_id")
    assert labels.loc[ids[1], "types"] == ["glasses", "mask"] and labels.loc[ids[1], "annotator"] == "alice"
    assert labels.loc[ids[3], "types"] == ["none"]
    assert labels.loc[ids[5], "types"] == ["upper"] and labels.loc[ids[5], "annotator"] == "alice"
    assert labels.loc[ids[7], "annotator"] == "dave"
    assert labels.loc[ids[6], "types"] == ["bottom"]  # carol's earlier label survives
    assert set(events.column("source").to_pylist()) == {"human"}

    again = pull(toy.stem)  # nothing changed in the App: nothing appended
    assert again.added == 0 and read_events(ann).num_rows == events.num_rows
    # pulled labels show in alice's copy as her current labels (and carol's does not: blind)
    assert ds.match({"sample_id": ids[1]}).first().occlusion == ["glasses", "mask"]
    assert ds.match({"sample_id": ids[6]}).first().occlusion is None


def test_pull_reports_tags_outside_the_vocabulary_and_keeps_the_rest(toy: Path) -> None:
    from fercurate.annotate import labelling
    from fercurate.annotate.pull import pull

    ds, by_sid = _own(toy, "alice")
    ids = _ids(toy)
    ds.select(by_sid[ids[1]]).tag_samples("occ:scarf")
    ds.select(by_sid[ids[2]]).tag_samples(["occ:none", "occ:mask"])
    ds.select(by_sid[ids[4]]).tag_samples("mask")
    labelling.set_types(ds, [by_sid[ids[3]]], ["left_right"], "alice")
    _saved(toy)

    result = pull(toy.stem)
    messages = [p.line() for p in result.problems]
    assert any(ids[1] in m and "'occ:scarf' is not in the vocabulary" in m for m in messages)
    assert any(ids[2] in m and "cannot be combined" in m for m in messages)
    assert any("'mask' on 1 sample(s)" in m and "did you mean occ:mask" in m for m in messages)
    labels = latest_labels(read_events(Workspace.current().annotation_path(toy.stem)))
    assert labels["sample_id"].tolist() == [ids[3]]  # only the valid label was taken
    # once fixed in the App, the next pull takes it
    ds.select(by_sid[ids[1]]).untag_samples("occ:scarf")
    ds.select(by_sid[ids[1]]).tag_samples("occ:bottom")
    assert pull(toy.stem).added == 1


def test_two_annotators_conflict_is_kept_reported_and_measured(toy: Path, workspace: Path) -> None:
    from fercurate.annotate import labelling
    from fercurate.annotate.pull import pull
    from fercurate.annotate.status import status

    ids = _ids(toy)
    alice, a_ids = _own(toy, "alice")
    bob, b_ids = _own(toy, "bob")  # bob labels the same faces in his own copy; disagrees on one
    labelling.set_types(alice, [a_ids[i] for i in ids[:4]], ["mask"], "alice")
    labelling.set_types(alice, [a_ids[i] for i in ids[4:]], ["none"], "alice")
    labelling.set_types(bob, [b_ids[i] for i in ids[:3]], ["mask"], "bob")
    labelling.set_types(bob, [b_ids[ids[3]]], ["none"], "bob")
    labelling.set_types(bob, [b_ids[i] for i in ids[4:]], ["none"], "bob")
    _saved(toy)
    result = pull(toy.stem)
    assert result.added == 0  # all 16 labels were saved as they were made
    assert read_events(Workspace.current().annotation_path(toy.stem)).num_rows == 16
    assert result.conflicts["sample_id"].tolist() == [ids[3]]
    assert result.conflicts.iloc[0]["labels"] == {"alice": "mask", "bob": "none"}

    report = status(toy.stem, app=True)
    assert report.total == 8 and report.human == 8 and report.unlabelled == 0
    assert report.n_conflicts == 1 and report.pending_in_app == 0
    (pair,) = report.agreement_independent  # every label was made blind, in each one's own copy
    assert (pair.a, pair.b, pair.shared) == ("alice", "bob", 8)
    # 7/8 agree; categories {mask, none}: alice 4/4, bob 3/5 -> pe = .5*.375 + .5*.625 = .5
    assert pair.agreement == pytest.approx(7 / 8)
    assert pair.exact_kappa == pytest.approx((7 / 8 - 0.5) / 0.5)
    assert pair.type_kappa["mask"] == pytest.approx(0.75)
    text = report.render()
    assert "alice vs bob: shared 8" in text and "conflicts: 1" in text
    labels = latest_labels(read_events(Workspace.current().annotation_path(toy.stem))).set_index("sample_id")
    assert bool(labels.loc[ids[3], "conflict"]) is True


def test_cohen_kappa_matches_the_textbook_formula_and_unresolved_values_are_excluded() -> None:
    from sklearn.metrics import cohen_kappa_score

    from fercurate.annotate.agreement import cohen_kappa, pairwise_agreement

    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, 200)
    b = np.where(rng.random(200) < 0.7, a, rng.integers(0, 4, 200))
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert np.isnan(cohen_kappa(["x", "x"], ["x", "x"]))  # undefined, not 1

    ev = [make_event("s1", ["glasses|mask"], annotator="ran-authors", source="official", labelled_at=T0),
          make_event("s1", ["glasses"], annotator="ann", source="human", labelled_at=T0),
          make_event("s2", ["bottom"], annotator="ran-authors", source="official", labelled_at=T0),
          make_event("s2", ["bottom"], annotator="ann", source="human", labelled_at=T0)]
    (pair,) = pairwise_agreement(pa.Table.from_pylist(ev, schema=read_events("/nonexistent").schema))
    assert pair.shared == 2 and pair.type_n["glasses"] == 1 and pair.type_n["bottom"] == 2


def test_human_label_supersedes_official_and_occlusion_subsets_ignore_suggestions(toy: Path) -> None:
    from fercurate.annotate import labelling
    from fercurate.subsets import build, subset_ids

    ids = _ids(toy)
    ann = Workspace.current().annotation_path(toy.stem)
    append_events(ann, [
        make_event(ids[0], ["glasses|mask"], annotator="ran-authors", source="official", labelled_at=T0),
        make_event(ids[1], ["upper"], annotator="ran-authors", source="official", labelled_at=T0),
        make_event(ids[2], ["mask"], annotator="fercurate-suggest", source="suggestion", labelled_at=T0),
    ])
    ds, by_sid = _own(toy, "alice")
    assert ds.match({"sample_id": ids[2]}).first().occ_suggested == ["mask"]
    labelling.set_types(ds, [by_sid[ids[0]]], ["glasses"], "alice")  # resolves glasses|mask
    assert labelling.accept_prefilled(ds, [by_sid[ids[1]]], "alice", source="official") == 1
    assert labelling.accept_prefilled(ds, [by_sid[ids[0]]], "alice", source="official") == 0  # unresolved: left
    _saved(toy)
    events = read_events(ann)
    assert events.num_rows == 5  # history keeps the official rows
    labels = latest_labels(events.filter(pa.compute.not_equal(events.column("source"), "suggestion")))
    labels = labels.set_index("sample_id")
    assert labels.loc[ids[0], ("types")] == ["glasses"] and labels.loc[ids[0], "source"] == "human"
    built = {s.name: s for s in build(toy, occlusion=True)}
    assert subset_ids(built["occlusion-labelled"]) == {ids[0], ids[1]}  # the suggestion is not a label
    assert subset_ids(built["occlusion-labelled-glasses"]) == {ids[0]}


def test_pull_of_unknown_dataset_and_status_of_unknown_manifest_are_clear(workspace: Path) -> None:
    from fercurate.annotate.pull import pull
    from fercurate.annotate.status import status

    with pytest.raises(InputError, match="no App dataset for 'nosuch'"):
        pull("nosuch")
    with pytest.raises(InputError, match="no manifest named 'nosuch'"):
        status("nosuch", app=False)


def test_plugin_registers_its_operators_and_panel(tmp_path: Path) -> None:
    from fiftyone.operators.registry import list_operators

    from fercurate.annotate.app import PLUGIN_NAME, install_plugin

    dest = install_plugin()
    assert (dest / "fiftyone.yml").exists() and install_plugin() == dest  # idempotent
    uris = {op.uri for op in list_operators(builtin=False)}
    for name in ("occ_mask", "occ_none", "label_occlusion", "accept_suggestion", "occlusion_labeller"):
        assert f"{PLUGIN_NAME}/{name}" in uris


def test_plugin_operators_run_through_fiftyones_executor(toy: Path) -> None:
    from fiftyone.operators import execute_operator

    from fercurate.annotate.app import PLUGIN_NAME, install_plugin

    install_plugin()
    ids = _ids(toy)
    ann = Workspace.current().annotation_path(toy.stem)
    append_events(ann, [make_event(ids[2], ["bottom"], annotator="fercurate-suggest", source="suggestion",
                                   labelled_at=T0)])
    ds, by_sid = _own(toy, "frank")

    def run(name: str, selected: list[str], **params) -> None:
        execute_operator(f"{PLUGIN_NAME}/{name}", dataset=ds, selected=selected, params=params)

    run("label_occlusion", [by_sid[ids[0]], by_sid[ids[1]]], glasses=True, upper=True)
    run("occ_none", [by_sid[ids[3]]])
    run("occ_mask", [by_sid[ids[4]]])
    run("occ_glasses", [by_sid[ids[3]]])  # replaces 'none', never adds to it
    run("clear_occlusion", [by_sid[ids[4]]])  # a mistaken click, withdrawn
    run("accept_suggestion", [by_sid[ids[2]]])
    tags = dict(zip(ds.values("sample_id"), ds.values("tags")))
    assert sorted(tags[ids[0]]) == ["occ:glasses", "occ:upper"] and tags[ids[3]] == ["occ:glasses"]
    assert tags[ids[4]] == [] and tags[ids[2]] == ["occ:bottom"]
    _saved(toy)
    labels = latest_labels(read_events(ann)).set_index("sample_id")
    assert labels.loc[ids[2], "source"] == "human" and labels.loc[ids[2], "annotator"] == "frank"
    assert labels.loc[ids[3], "types"] == ["glasses"]
    assert ids[4] not in labels.index


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the installed ``fercurate`` console script (as a user would)."""
    exe = Path(sys.executable).with_name("fercurate")
    return subprocess.run([str(exe), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cli_mongodb_not_starting_is_one_clear_line(toy: Path, workspace: Path) -> None:
    from fercurate.annotate.network import free_port

    # A MongoDB that isn't there (FiftyOne would otherwise attach to the test session's mongod).
    uri = f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=1500"
    env = {**os.environ, "FIFTYONE_DATABASE_URI": uri, "FERCURATE_WORKSPACE": str(workspace)}
    env.pop("FIFTYONE_PRIVATE_DATABASE_PORT", None)
    proc = _cli(["annotate", "launch", str(toy), "--annotator", "x"], env, workspace)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: FiftyOne's MongoDB could not start") and "FIFTYONE_DATABASE_URI" in lines[-1]
    assert "Traceback" not in proc.stderr


def _post(url: str, body: dict) -> dict:
    import urllib.request

    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as reply:
        return json.loads(reply.read())


def test_cli_launch_from_the_workspace_serves_only_its_annotator_and_its_labels_land_there(
    toy: Path, workspace: Path
) -> None:
    """``cd WS && fercurate annotate launch ...`` (no $FERCURATE_WORKSPACE): the App server, in FiftyOne's
    folder, writes to WS; its App lists only the annotator's dataset; the launcher says only what is true."""
    import signal
    import time
    import urllib.request

    import pymongo

    from fercurate.annotate.database import database_uri

    env = {k: v for k, v in os.environ.items() if k != "FERCURATE_WORKSPACE"}  # the workspace is the current folder
    exe = Path(sys.executable).with_name("fercurate")
    proc = subprocess.Popen([str(exe), "annotate", "launch", toy.stem, "--split", "test", "--annotator", "eve"],
                            env=env, cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shown: list[str] = []
    try:
        deadline = time.monotonic() + 280
        while time.monotonic() < deadline and proc.poll() is None:
            shown.append(proc.stdout.readline())
            if shown[-1].startswith("queue:"):
                break
        first = next((x for x in shown if x.startswith("App: ")), "")
        assert "annotator: eve" in first, (shown, proc.stderr.read() if proc.poll() is not None else "")
        port = int(first.split()[1].rsplit(":", 1)[1].strip("/"))
        url = f"http://localhost:{port}"
        with urllib.request.urlopen(f"{url}/fiftyone", timeout=10) as reply:
            assert reply.status == 200
        name = f"fercurate-{toy.stem}--eve"
        listed = _post(f"{url}/graphql", {"query": "{ datasets(search: \"\", first: 100) { edges { node { name } } } }"})
        assert [e["node"]["name"] for e in listed["data"]["datasets"]["edges"]] == [name]  # the App's dataset menu
        client = pymongo.MongoClient(database_uri())
        db = next(client[d] for d in client.list_database_names() if client[d].datasets.find_one({"name": name}))
        samples = db[db.datasets.find_one({"name": name})["sample_collection_name"]]
        face = samples.find_one({"split": "test"})
        done = _post(f"{url}/operators/execute", {"operator_uri": "@fercurate/occlusion/occ_mask",
                                                  "dataset_name": name, "params": {}, "selected": [str(face["_id"])],
                                                  "view": []})
        assert done["result"]["changed"] == 1, done
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    said = "".join(shown) + out + err
    assert f"labels go to {workspace / 'annotations' / (toy.stem + '.occlusion.parquet')}" in said
    assert "pulled fercurate-" in out
    for noise in ("localhost:5151", "Connected to FiftyOne", "show_index", "Exception ignored", "Traceback"):
        assert noise not in said, said
    events = read_events(Workspace(workspace).annotation_path(toy.stem))
    assert [(e["sample_id"], e["annotator"], e["types"]) for e in events.to_pylist()] == [(face["sample_id"], "eve",
                                                                                          ["mask"])]
    # a tag typed in eve's App (its tag menu writes the sample's tags) is pulled from her own database
    other = samples.find_one({"split": "test", "_id": {"$ne": face["_id"]}})
    samples.update_one({"_id": other["_id"]}, {"$push": {"tags": "occ:upper"}})
    pulled = _cli(["annotate", "pull", toy.stem], env, workspace)
    assert pulled.returncode == 0 and "1 new label(s) (eve 1)" in pulled.stdout, pulled.stdout + pulled.stderr
    events = read_events(Workspace(workspace).annotation_path(toy.stem))
    assert events.to_pylist()[-1]["sample_id"] == other["sample_id"] and events.to_pylist()[-1]["types"] == ["upper"]
    with pytest.raises(OSError):  # the App server went away with the command
        urllib.request.urlopen(f"{url}/fiftyone", timeout=5)
    from fercurate.annotate.network import stable_ports

    assert port in list(stable_ports(f"{workspace.resolve()}\0eve")), port  # the same port at every launch


def _start_launch(toy: Path, workspace: Path, port: int) -> subprocess.Popen:
    """``fercurate annotate launch`` as a user starts it; returns once it printed the App URL."""
    import time

    exe = Path(sys.executable).with_name("fercurate")
    env = {**os.environ, "FERCURATE_WORKSPACE": str(workspace)}
    proc = subprocess.Popen([str(exe), "annotate", "launch", str(toy), "--annotator", "eve", "--port", str(port)],
                            env=env, cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 280
    first = proc.stdout.readline()
    while not first.startswith("App: ") and time.monotonic() < deadline and proc.poll() is None:
        first = proc.stdout.readline()
    if not first.startswith(f"App: http://localhost:{port}/"):
        proc.kill()
        pytest.fail(f"launch did not start: {first!r} {proc.communicate()[1]}")
    return proc


def _answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://localhost:{port}/fiftyone", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def test_cli_launch_killed_9_takes_its_app_server_with_it(toy: Path, workspace: Path) -> None:
    import signal
    import time

    from fercurate.annotate.network import free_port

    port = free_port()
    proc = _start_launch(toy, workspace, port)
    try:
        assert _answers(port)
        proc.send_signal(signal.SIGKILL)  # no handler, no atexit: only the server's watchdog can act
        proc.wait(timeout=10)
        killed_at = time.monotonic()
        while _answers(port) and time.monotonic() - killed_at < 10:
            time.sleep(0.2)
        gone_after = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    assert not _answers(port)
    assert gone_after < 5, f"the App still answered {gone_after:.1f} s after its launcher died"


def test_cli_pull_exits_3_on_a_bad_tag_and_status_prints(toy: Path, workspace: Path) -> None:
    ds, _ = _own(toy, "dora")
    first, second = ds.values("id")[:2]
    ds.select(first).tag_samples("occ:hat")
    ds.select(second).tag_samples("occ:mask")
    env = {**os.environ, "FERCURATE_WORKSPACE": str(workspace)}
    proc = _cli(["annotate", "pull", toy.stem], env, workspace)
    assert proc.returncode == 3, proc.stderr
    assert "1 new label(s) (dora 1)" in proc.stdout
    assert "'occ:hat' is not in the vocabulary" in proc.stderr
    proc = _cli(["annotate", "status", toy.stem, "--json"], env, workspace)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["human"] == 1 and data["pending_in_app"] == 1  # the bad tag still waits in the App
