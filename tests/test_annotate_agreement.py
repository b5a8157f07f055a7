"""Withdrawals, adjudication and agreement over independent (blind) labels with bootstrap intervals.

Everything goes through real Parquet annotation files (written with append_events, read back) and,
for the commands, the real typer CLI; no FiftyOne needed (status runs with --no-app).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fercurate.annotate.adjudicate import decide, disagreements
from fercurate.annotate.agreement import cohen_kappa, conflicts, pair_rng, pairwise_agreement
from fercurate.annotations import (
    BLIND_ORIGIN,
    EVENT_SCHEMA,
    append_events,
    latest_labels,
    is_blind,
    make_event,
    make_withdrawal,
    read_events,
)
from fercurate.cli import app
from fercurate.errors import InputError
from fercurate.workspace import Workspace
from test_annotate import make_toy_manifest  # the annotate tests' toy FERPlus-like manifest (real PNGs)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
BLIND = f"{BLIND_ORIGIN}toy"


def _ids(manifest: Path) -> list[str]:
    return pq.read_table(manifest, columns=["sample_id"]).column("sample_id").to_pylist()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def table(events: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(events, schema=EVENT_SCHEMA)


def human(sid: str, types: list[str], who: str, minutes: float, origin: str | None = None) -> dict:
    return make_event(sid, types, annotator=who, source="human", labelled_at=at(minutes), origin=origin)


# --- withdrawals --------------------------------------------------------------------------------


def test_withdrawal_is_an_empty_label_with_its_own_id_and_normal_events_still_need_types() -> None:
    w1 = make_withdrawal("s1", annotator="alice", labelled_at=at(1), origin="app:toy")
    w2 = make_withdrawal("s1", annotator="alice", labelled_at=at(2))
    assert w1["types"] == [] and w1["source"] == "human" and w1["origin"] == "app:toy"
    assert w1["event_id"] != w2["event_id"]  # two withdrawals at different times are two events
    assert make_withdrawal("s1", annotator="alice", labelled_at=at(1), origin="app:toy") == w1  # content hash
    with pytest.raises(InputError, match="at least one type"):
        make_event("s1", [], annotator="alice", source="human")
    with pytest.raises(InputError, match="annotator name"):
        make_withdrawal("s1", annotator=" ")
    with pytest.raises(InputError, match="unknown annotation source"):
        make_withdrawal("s1", annotator="alice", source="robot")


def test_withdrawn_label_is_no_label_everywhere_and_earlier_labels_do_not_come_back(tmp_path: Path) -> None:
    path = tmp_path / "toy.occlusion.parquet"
    append_events(path, [
        human("s1", ["mask"], "alice", 0),
        make_withdrawal("s1", annotator="alice", labelled_at=at(1)),  # s1: only label withdrawn
        human("s2", ["mask"], "alice", 0),
        human("s2", ["glasses"], "alice", 1),
        make_withdrawal("s2", annotator="alice", labelled_at=at(2)),  # the mask does not come back
        human("s2", ["none"], "bob", 3),
        human("s3", ["upper"], "alice", 0),
        human("s3", ["bottom"], "bob", 1),
        make_withdrawal("s3", annotator="bob", labelled_at=at(2)),  # conflict gone with bob's label
        make_event("s4", ["glasses|mask"], annotator="ran-authors", source="official", labelled_at=at(0)),
        human("s4", ["mask"], "alice", 1),
        make_withdrawal("s4", annotator="alice", labelled_at=at(2)),  # the official list shows again
        human("s5", ["mask"], "alice", 0),
        make_withdrawal("s5", annotator="alice", labelled_at=at(1)),
        human("s5", ["left_right"], "alice", 2),  # relabelled after the undo
    ])
    events = read_events(path)
    assert events.num_rows == 15 and events.column("types").to_pylist()[1] == []
    cur = latest_labels(events).set_index("sample_id")
    assert "s1" not in cur.index
    assert cur.loc["s2", "types"] == ["none"] and cur.loc["s2", "annotator"] == "bob"
    assert not cur.loc["s2", "conflict"] and cur.loc["s2", "n_annotators"] == 1
    assert cur.loc["s3", "types"] == ["upper"] and not cur.loc["s3", "conflict"]
    assert cur.loc["s4", "source"] == "official" and cur.loc["s4", "types"] == ["glasses|mask"]
    assert cur.loc["s5", "types"] == ["left_right"]

    latest = latest_labels(events, source="human", per_annotator=True)
    assert sorted(zip(latest["sample_id"], latest["annotator"], latest["types"].map(tuple))) == [
        ("s2", "bob", ("none",)), ("s3", "alice", ("upper",)), ("s5", "alice", ("left_right",))]
    assert conflicts(events).empty

    from fercurate.annotate.pull import _latest_human

    assert _latest_human(events) == {("s2", "bob"): ["none"], ("s3", "alice"): ["upper"], ("s5", "alice"): ["left_right"]}


# --- adjudication -------------------------------------------------------------------------------


def _disputed() -> list[dict]:
    return [
        human("a", ["mask"], "bob", 0), human("a", ["glasses", "mask"], "alice", 1),  # disagree
        human("b", ["none"], "alice", 0), human("b", ["none"], "bob", 1),  # agree
        human("c", ["upper"], "alice", 0), human("c", ["bottom"], "bob", 2), human("c", ["bottom"], "carol", 1),
        human("d", ["mask"], "alice", 0),  # one person only
    ]


def test_disagreements_lists_open_ones_and_an_adjudication_settles_until_a_newer_label_differs() -> None:
    events = table(_disputed())
    open_ = disagreements(events)
    assert open_.columns.tolist() == ["sample_id", "labels", "n_annotators", "last_labelled_at"]
    assert open_["sample_id"].tolist() == ["a", "c"]
    assert open_.iloc[0]["labels"] == {"alice": "glasses|mask", "bob": "mask"}
    assert list(open_.iloc[1]["labels"]) == ["alice", "bob", "carol"]  # sorted by annotator
    assert open_["n_annotators"].tolist() == [2, 3]
    assert open_.iloc[1]["last_labelled_at"] == at(2)
    assert disagreements(events, ["c", "b"])["sample_id"].tolist() == ["c"]
    pd_equal = disagreements(events).equals(open_)
    assert pd_equal  # deterministic

    decision = make_event("a", ["mask"], annotator="dora", source="adjudication", labelled_at=at(5))
    settled = table([*_disputed(), decision])
    assert disagreements(settled)["sample_id"].tolist() == ["c"]
    cur = latest_labels(settled).set_index("sample_id")
    assert (cur.loc["a", "types"], cur.loc["a", "source"], cur.loc["a", "annotator"]) == (["mask"], "adjudication", "dora")
    assert not cur.loc["a", "conflict"] and bool(cur.loc["c", "conflict"])

    # alice changes her mind after the decision, still disagreeing: open again (the decision stays current)
    reopened = table([*_disputed(), decision, human("a", ["glasses"], "alice", 6)])
    assert disagreements(reopened)["sample_id"].tolist() == ["a", "c"]
    assert latest_labels(reopened).set_index("sample_id").loc["a", "source"] == "adjudication"
    # the adjudicator withdraws the decision: open again, and the people's labels are current again
    undone = table([*_disputed(), decision, make_withdrawal("a", annotator="dora", source="adjudication",
                                                            labelled_at=at(7))])
    assert disagreements(undone)["sample_id"].tolist() == ["a", "c"]
    cur = latest_labels(undone).set_index("sample_id")
    assert cur.loc["a", "source"] == "human" and bool(cur.loc["a", "conflict"])
    # a withdrawal ends a disagreement too
    withdrawn = table([*_disputed(), make_withdrawal("a", annotator="bob", labelled_at=at(3))])
    assert disagreements(withdrawn)["sample_id"].tolist() == ["c"]


def test_decide_records_one_adjudication_event_and_refuses_what_is_not_disputed(tmp_path: Path) -> None:
    path = tmp_path / "toy.occlusion.parquet"
    append_events(path, _disputed())
    event = decide(path, "c", ["bottom"], adjudicator="dora", now=at(10))
    assert (event["source"], event["annotator"], event["types"], event["origin"]) == ("adjudication", "dora", ["bottom"], "cli")
    events = read_events(path)
    assert events.num_rows == len(_disputed()) + 1 and event["event_id"] in events.column("event_id").to_pylist()
    with pytest.raises(InputError, match="already adjudicated"):
        decide(path, "c", ["upper"], adjudicator="dora")
    with pytest.raises(InputError, match=r"labels agree \(alice=none, bob=none\)"):
        decide(path, "b", ["mask"], adjudicator="dora")
    with pytest.raises(InputError, match="no person has labelled it"):
        decide(path, "zzz", ["mask"], adjudicator="dora")
    with pytest.raises(InputError, match="not in the vocabulary"):
        decide(path, "a", ["hat"], adjudicator="dora")
    with pytest.raises(InputError, match="adjudicator"):
        decide(path, "a", ["mask"], adjudicator="")
    assert read_events(path).num_rows == len(_disputed()) + 1  # refusals wrote nothing
    forced = decide(path, "b", ["mask"], adjudicator="dora", force=True, now=at(11))
    assert latest_labels(read_events(path)).set_index("sample_id").loc["b", "types"] == ["mask"]
    assert forced["source"] == "adjudication"


@pytest.fixture
def disputed_toy(workspace: Path) -> tuple[Path, list[str]]:
    manifest = make_toy_manifest(workspace)
    ids = _ids(manifest)
    append_events(Workspace.current().annotation_path(manifest.stem), [
        human(ids[1], ["mask"], "alice", 0, BLIND), human(ids[1], ["glasses"], "bob", 1, BLIND),
        human(ids[2], ["none"], "alice", 0, BLIND), human(ids[2], ["none"], "bob", 1, BLIND),
        human(ids[3], ["upper", "bottom"], "alice", 0, BLIND), human(ids[3], ["bottom"], "bob", 1, BLIND),
    ])
    return manifest, ids


def test_cli_adjudicate_shows_disagreements_side_by_side_and_records_decisions(
    disputed_toy: tuple[Path, list[str]], workspace: Path
) -> None:
    manifest, ids = disputed_toy
    runner = CliRunner()
    res = runner.invoke(app, ["annotate", "adjudicate", manifest.stem])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "2 face(s) where annotators disagree" in lines[0]
    header = lines[1].split()
    assert header == ["sample_id", "image", "alice", "bob"]
    assert lines[2].split() == [ids[1], ids[1].removeprefix("ferplus/"), "mask", "glasses"]
    assert lines[3].split() == [ids[3], ids[3].removeprefix("ferplus/"), "bottom|upper", "bottom"]
    assert f"fercurate annotate launch {manifest.stem} --adjudicate" in res.output
    listed = json.loads(runner.invoke(app, ["annotate", "adjudicate", manifest.stem, "--json"]).output)
    assert [(o["sample_id"], o["image_path"], o["labels"], o["n_annotators"]) for o in listed["open"]] == [
        (ids[1], ids[1].removeprefix("ferplus/"), {"alice": "mask", "bob": "glasses"}, 2),
        (ids[3], ids[3].removeprefix("ferplus/"), {"alice": "bottom|upper", "bob": "bottom"}, 2)]
    assert listed["decided"] == [] and listed["open"][1]["last_labelled_at"] == at(1).isoformat()

    res = runner.invoke(app, ["annotate", "adjudicate", manifest.stem, "--decide", f"{ids[1]}=mask|glasses",
                              "--decide", f"{ids[3]}=bottom", "--by", "carol", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [(d["sample_id"], d["types"], d["adjudicator"]) for d in data["decided"]] == [
        (ids[1], ["glasses", "mask"], "carol"), (ids[3], ["bottom"], "carol")]
    assert data["decided"][0]["labels"] == {"alice": "mask", "bob": "glasses"}
    assert data["open"] == []
    events = read_events(Workspace.current().annotation_path(manifest.stem))
    adj = events.filter(pa.compute.equal(events.column("source"), "adjudication")).to_pylist()
    assert sorted((e["sample_id"], e["annotator"], e["origin"]) for e in adj) == [
        (ids[1], "carol", f"cli:{manifest.stem}"), (ids[3], "carol", f"cli:{manifest.stem}")]
    res = runner.invoke(app, ["annotate", "adjudicate", manifest.stem])
    assert res.exit_code == 0 and "no open disagreements" in res.output


@pytest.mark.parametrize(
    ("decision", "extra", "message"),
    [
        ("ferplus/test/nosuch.png=mask", [], "is not in"),
        ("{id}=hat", [], "'hat' is not in the vocabulary"),
        ("{id}", [], "expected SAMPLE_ID=type|type"),
        ("{other}=mask", [], "not in disagreement: its labels agree (alice=none, bob=none)"),
        ("{id}=mask", ["--by", " "], "who decides? pass --by NAME"),
        ("{id}=mask", ["--split", "train"], "is not in"),
    ],
)
def test_cli_adjudicate_bad_input_is_one_clear_error_and_writes_nothing(
    disputed_toy: tuple[Path, list[str]], decision: str, extra: list[str], message: str
) -> None:
    manifest, ids = disputed_toy
    path = Workspace.current().annotation_path(manifest.stem)
    before = read_events(path).num_rows
    res = CliRunner().invoke(
        app, ["annotate", "adjudicate", manifest.stem, *extra,
              "--decide", f"{ids[1]}=mask", "--decide", decision.format(id=ids[3], other=ids[2])])
    assert res.exit_code == 1, res.output
    assert "error:" in res.output and message in res.output, res.output
    assert "Traceback" not in res.output
    assert read_events(path).num_rows == before  # the valid first decision was not recorded either


# --- agreement over independent labels ----------------------------------------------------------

# Hand-computed below: 10 faces labelled blind by alice and bob.
ALICE = ["mask", "mask", "glasses", "glasses", "none", "none", "none", "none", "none", "mask"]
BOB = ["mask", "glasses", "glasses", "glasses", "none", "none", "none", "mask", "none", "mask"]


def _blind_pair(repeat: int = 1) -> list[dict]:
    events = []
    for r in range(repeat):
        for i, (a, b) in enumerate(zip(ALICE, BOB)):
            sid = f"s{r:03d}-{i}"
            events += [human(sid, [a], "alice", i, BLIND), human(sid, [b], "bob", i + 0.5, BLIND)]
    return events


def test_independent_kappa_matches_hand_computation_and_ignores_seen_labels_and_adjudications() -> None:
    events = _blind_pair() + [
        human("s000-1", ["mask"], "bob", 30, "app:toy"),  # bob saw alice's label and changed his (not blind)
        human("s000-0", ["none"], "carol", 31, "app:toy"),  # carol never labels blind
        make_event("s000-7", ["none"], annotator="dora", source="adjudication", labelled_at=at(40), origin=BLIND),
        human("s000-4", ["none"], "erin", 41, BLIND),
        make_withdrawal("s000-4", annotator="erin", labelled_at=at(42)),  # withdrawn: erin has no label
    ]
    (pair,) = pairwise_agreement(table(events), independent_only=True)
    assert (pair.a, pair.b, pair.shared, pair.independent) == ("alice", "bob", 10, True)
    # po = 8/10; marginals alice mask 3 glasses 2 none 5, bob 3 3 4 -> pe = (9 + 6 + 20)/100
    assert pair.exact_kappa == pytest.approx((0.8 - 0.35) / 0.65)
    assert pair.occluded_kappa == pytest.approx((0.9 - 0.5) / 0.5)  # alice 5/10 occluded, bob 6/10
    assert pair.type_kappa["mask"] == pytest.approx((0.8 - 0.58) / 0.42)  # 3/10 each, 2 disagreements
    assert pair.type_kappa["glasses"] == pytest.approx((0.9 - 0.62) / 0.38)  # 2/10 vs 3/10, 1 disagreement
    assert np.isnan(pair.type_kappa["upper"]) and np.isnan(pair.type_ci["upper"]).all()  # undefined: (nan, nan)
    assert pair.type_n["upper"] == 10

    everything = pairwise_agreement(table(events))  # all labels: bob's changed label, carol, no erin
    assert [(p.a, p.b) for p in everything] == [("alice", "bob"), ("alice", "carol"), ("bob", "carol")]
    assert not everything[0].independent and everything[0].agreement == pytest.approx(0.9)
    assert is_blind(BLIND) and not is_blind("app:toy") and not is_blind(None)


def test_bootstrap_intervals_contain_the_estimate_narrow_with_more_samples_and_are_seeded() -> None:
    small = pairwise_agreement(table(_blind_pair(1)), independent_only=True, n_boot=2000, seed=0)[0]
    large = pairwise_agreement(table(_blind_pair(6)), independent_only=True, n_boot=2000, seed=0)[0]
    assert large.exact_kappa == pytest.approx(small.exact_kappa)  # same proportions, 6x the faces
    for p in (small, large):
        for point, (lo, hi) in [(p.exact_kappa, p.exact_ci), (p.occluded_kappa, p.occluded_ci),
                                (p.type_kappa["mask"], p.type_ci["mask"]), (p.type_kappa["glasses"], p.type_ci["glasses"])]:
            assert lo <= point <= hi and -1 <= lo < hi <= 1
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(large.exact_ci) < 0.6 * width(small.exact_ci)
    assert width(large.type_ci["mask"]) < 0.6 * width(small.type_ci["mask"])
    again = pairwise_agreement(table(_blind_pair(1)), independent_only=True, n_boot=2000, seed=0)[0]
    other = pairwise_agreement(table(_blind_pair(6)), independent_only=True, n_boot=2000, seed=1)[0]
    assert repr(again) == repr(small) and other.exact_ci != large.exact_ci  # repr: nan != nan
    joined = pairwise_agreement(table(_blind_pair(1) + [human("s000-0", ["mask"], "aaron", 99, BLIND)]),
                                independent_only=True, n_boot=2000, seed=0)
    assert [(p.a, p.b) for p in joined] == [("aaron", "alice"), ("aaron", "bob"), ("alice", "bob")]
    assert joined[2].exact_ci == small.exact_ci and joined[2].type_ci["mask"] == small.type_ci["mask"]
    none = pairwise_agreement(table(_blind_pair(1)), independent_only=True, n_boot=0)[0]
    assert np.isnan(none.exact_ci[0]) and none.exact_kappa == small.exact_kappa


def test_bootstrap_matches_a_plain_loop_over_the_same_resamples() -> None:
    """The vectorised (weighted) kappas equal cohen_kappa on each resample, drawn the way the module does."""
    events = table(_blind_pair(2))
    (pair,) = pairwise_agreement(events, independent_only=True, n_boot=300, seed=5)
    a = np.array(ALICE * 2, dtype=object)
    b = np.array(BOB * 2, dtype=object)
    order = np.argsort([f"s{r:03d}-{i}" for r in range(2) for i in range(10)], kind="stable")
    a, b = a[order], b[order]  # the pair's shared samples, in sample_id order
    idx = pair_rng(5, "alice", "bob").integers(0, len(a), size=(300, len(a)))
    kappas = np.array([cohen_kappa(a[i], b[i]) for i in idx])
    lo, hi = np.percentile(kappas[~np.isnan(kappas)], [2.5, 97.5])
    assert pair.exact_ci == pytest.approx((lo, hi))


# --- status -------------------------------------------------------------------------------------


def test_status_reports_independent_agreement_with_intervals_withdrawals_and_adjudications(
    workspace: Path,
) -> None:
    from fercurate.annotate.status import status

    manifest = make_toy_manifest(workspace, n=40)
    ids = sorted(_ids(manifest))
    rng = np.random.default_rng(11)
    events = []
    for i, sid in enumerate(ids):
        a = ["mask"] if i % 3 == 0 else ["none"]
        b = a if rng.random() < 0.8 else (["none"] if a == ["mask"] else ["mask"])
        events += [human(sid, a, "alice", i, BLIND), human(sid, b, "bob", i + 0.5, BLIND)]
    events += [
        human(ids[0], ["mask", "glasses"], "carol", 100, "app:toy"),  # not blind
        human(ids[1], ["upper"], "alice", 101, "app:toy"),  # alice relabels having seen bob's (not blind)
        make_withdrawal(ids[1], annotator="alice", labelled_at=at(102)),
    ]
    path = Workspace.current().annotation_path(manifest.stem)
    append_events(path, events)
    open_before = disagreements(read_events(path))["sample_id"].tolist()
    assert len(open_before) >= 2
    decide(path, open_before[0], ["mask"], adjudicator="dora", now=at(200))

    report = status(manifest.stem, app=False)
    assert report.total == 40 and report.human == 40 and report.unlabelled == 0
    assert report.adjudicated == 1
    who = {(a.annotator, a.source): a for a in report.annotators}
    assert (who["alice", "human"].labels, who["alice", "human"].withdrawals) == (41, 1)
    assert (who["alice", "human"].samples, who["alice", "human"].blind) == (39, 39)  # ids[1] withdrawn
    assert who["dora", "adjudication"].adjudications == 1 and who["carol", "human"].blind == 0
    assert report.independent_samples == 39
    (ind,) = report.agreement_independent
    assert (ind.a, ind.b, ind.shared, ind.type_n["mask"]) == ("alice", "bob", 39, 39)
    assert ind.type_ci["mask"][0] <= ind.type_kappa["mask"] <= ind.type_ci["mask"][1]
    assert report.all_labels_differ and len(report.agreement) == 3  # carol joins when seen labels count
    open_now = disagreements(read_events(path), ids)
    assert report.n_disagreements == len(open_now) == len(open_before) - 1 + int(ids[0] not in open_before)

    text = report.render()
    k, (lo, hi) = ind.type_kappa["mask"], ind.type_ci["mask"]
    assert f"    mask        {k:.2f} [{lo:.2f}, {hi:.2f}] n=39" in text
    assert "39 sample(s) labelled blind by two or more people" in text
    assert "agreement over all labels (not independent" in text
    assert f"open (not adjudicated): {len(open_now)}; adjudicated: 1" in text
    assert "withdrawn" in text and "1 decided" in text

    res = CliRunner().invoke(app, ["annotate", "status", manifest.stem, "--json", "--no-app"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["independent_samples"] == 39 and data["adjudicated"] == 1 and data["agreement_all_differs"]
    assert data["disagreements"] == len(open_now)
    (pair,) = data["agreement_independent"]
    assert pair["type_kappa"]["mask"] == pytest.approx(k, abs=1e-4)
    assert pair["type_ci"]["mask"] == pytest.approx([lo, hi], abs=1e-4)
    alice = next(a for a in data["annotators"] if a["annotator"] == "alice")
    assert (alice["withdrawals"], alice["blind"]) == (1, 39)


def test_a_kappa_from_too_few_faces_or_positives_comes_with_a_warning(workspace: Path) -> None:
    """One glasses face of 6, marked by both: kappa 1.00 [1.00, 1.00] is printed, and flagged as thin."""
    from fercurate.annotate.status import status

    manifest = make_toy_manifest(workspace, n=8)
    ids = sorted(_ids(manifest))[:6]
    events = []
    for i, sid in enumerate(ids):
        label = ["glasses"] if i == 0 else ["none"]
        events += [human(sid, label, "alice", i, BLIND), human(sid, label, "bob", i + 0.5, BLIND)]
    append_events(Workspace.current().annotation_path(manifest.stem), events)

    report = status(manifest.stem, app=False)
    text = report.render()
    assert ("    glasses     1.00 [1.00, 1.00] n=6 positives=1 (warning: too few to judge: 6 face(s) < 30, "
            "1 positive(s) < 10)") in text, text
    (pair,) = report.agreement_independent
    assert pair.type_kappa["glasses"] == 1.0 and pair.type_ci["glasses"] == (1.0, 1.0)
    assert (pair.type_n["glasses"], pair.type_positives["glasses"]) == (6, 1)
    assert pair.warnings()["glasses"] == "too few to judge: 6 face(s) < 30, 1 positive(s) < 10"
    data = report.to_dict()["agreement_independent"][0]
    assert data["warnings"]["glasses"].startswith("too few to judge") and data["type_positives"]["glasses"] == 1

    # enough faces and positives: no warning
    many = [human(f"s{i}", ["mask"] if i % 3 == 0 else ["none"], who, i, BLIND) for i in range(60)
            for who in ("alice", "bob")]
    (big,) = pairwise_agreement(table(many), independent_only=True, n_boot=200)
    assert big.type_positives["mask"] == 20 and "mask" not in big.warnings() and "occluded" not in big.warnings()
