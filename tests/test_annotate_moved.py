"""Names that moved out of fercurate.annotate (issue 30) still import from their old paths, with a warning."""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from fercurate.annotations import EVENT_SCHEMA, LABEL_SOURCES, latest_labels, make_event, make_withdrawal

MOVED = [
    # (old module, name, new module, new name)
    ("fercurate.annotate.app", "default_annotator", "fercurate.annotate.identity", "default_annotator"),
    ("fercurate.annotate.app", "free_port", "fercurate.annotate.network", "free_port"),
    ("fercurate.annotate.app", "STANDARD_VIEWS", "fercurate.annotate.views", "STANDARD_VIEWS"),
    *[("fercurate.annotate.dataset", n, "fercurate.annotate.views", n) for n in (
        "STANDARD_VIEWS", "VIEW_UNLABELLED", "VIEW_BY_SUGGESTION", "VIEW_OFFICIAL", "VIEW_CONFLICTS",
        "unlabelled_view", "ensure_standard_views", "add_saved_view")],
    ("fercurate.annotate.agreement", "RESOLVED_TYPES", "fercurate.schema", "OCCLUDED_TYPES"),
    # the occlusion scorer, from annotate/suggest.py and annotate/occluders.py to fercurate/scorer/
    ("fercurate.annotate.suggest", "TrainConfig", "fercurate.scorer.config", "ScorerConfig"),
    ("fercurate.annotate.suggest", "METHOD", "fercurate.scorer.config", "METHOD"),
    ("fercurate.annotate.suggest", "BACKBONE_METHOD", "fercurate.scorer.config", "BACKBONE_METHOD"),
    ("fercurate.annotate.suggest", "FAST_STEPS", "fercurate.scorer.config", "FAST_STEPS"),
    ("fercurate.annotate.suggest", "FAST_POOL", "fercurate.scorer.config", "FAST_POOL"),
    ("fercurate.annotate.suggest", "FAST_EPOCHS", "fercurate.scorer.config", "FAST_EPOCHS"),
    ("fercurate.annotate.suggest", "TIMED_BATCHES", "fercurate.scorer.estimate", "TIMED_BATCHES"),
    ("fercurate.annotate.suggest", "load_faces", "fercurate.scorer.faces", "load_faces"),
    ("fercurate.annotate.suggest", "build_net", "fercurate.scorer.model", "build_net"),
    ("fercurate.annotate.suggest", "predict", "fercurate.scorer.model", "predict"),
    ("fercurate.annotate.suggest", "label_targets", "fercurate.scorer.targets", "label_targets"),
    ("fercurate.annotate.suggest", "table_labels", "fercurate.scorer.targets", "table_labels"),
    ("fercurate.annotate.suggest", "train_scorer", "fercurate.scorer.train", "train_scorer"),
    ("fercurate.annotate.occluders", "KINDS", "fercurate.schema", "OCCLUDED_TYPES"),
    ("fercurate.annotate.occluders", "SIZE", "fercurate.scorer.faces", "FACE_SIZE"),
    ("fercurate.annotate.occluders", "occlude", "fercurate.synth.occluders", "occlude_crop"),
    ("fercurate.annotate.occluders", "synthetic_set", "fercurate.scorer.synthetic", "synthetic_set"),
]


@pytest.mark.parametrize("old,name,new,new_name", MOVED, ids=[f"{o}.{n}" for o, n, _, _ in MOVED])
def test_a_moved_name_imports_from_its_old_path_with_a_deprecation_warning(old: str, name: str, new: str,
                                                                           new_name: str) -> None:
    target = getattr(importlib.import_module(new), new_name)
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} moved to {new}\.{new_name}"):
        value = getattr(importlib.import_module(old), name)
    assert value is target


def _history() -> pa.Table:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    at = [t0 + timedelta(minutes=m) for m in range(6)]
    return pa.Table.from_pylist([
        make_event("s1", ["mask"], annotator="alice", source="human", labelled_at=at[0]),
        make_event("s1", ["glasses", "mask"], annotator="bob", source="human", labelled_at=at[1]),
        make_event("s2", ["none"], annotator="fercurate-suggest", source="suggestion", labelled_at=at[2]),
        make_event("s2", ["glasses|mask"], annotator="ran-authors", source="official", labelled_at=at[3]),
        make_event("s3", ["upper"], annotator="alice", source="human", labelled_at=at[4]),
        make_withdrawal("s3", annotator="alice", labelled_at=at[5]),
    ], schema=EVENT_SCHEMA)


def test_the_retired_latest_label_functions_warn_and_answer_as_latest_labels_does() -> None:
    import pandas as pd

    import fercurate.annotations as annotations
    from fercurate.annotate import agreement, session

    events = _history()
    with pytest.warns(DeprecationWarning, match=r"current_labels\(events\) is fercurate.annotations.latest_labels"):
        pd.testing.assert_frame_equal(annotations.current_labels(events), latest_labels(events))
    with pytest.warns(DeprecationWarning, match="per_annotator=True"):
        old = annotations.latest_per_annotator(events, by_source=True)
    pd.testing.assert_frame_equal(old, latest_labels(events, per_annotator=True, by_source=True))
    with pytest.warns(DeprecationWarning, match="source=LABEL_SOURCES"):
        labels = annotations.label_events(events)
    assert set(labels.column("source").to_pylist()) == {"human", "official"} and set(LABEL_SOURCES) >= {"human"}
    with pytest.warns(DeprecationWarning, match="session.latest_labels"):
        people = session.latest_labels(events)
    assert people.columns.tolist() == ["sample_id", "annotator", "types"]
    assert sorted(zip(people["sample_id"], people["annotator"], people["types"].map(tuple))) == [
        ("s1", "alice", ("mask",)), ("s1", "bob", ("glasses", "mask"))]
    with pytest.warns(DeprecationWarning, match="latest_by_annotator is rater_labels"):
        keyed = agreement.latest_by_annotator(events)
    assert keyed.columns.tolist() == ["sample_id", "annotator", "source", "types_key", "labelled_at"]
    assert keyed["types_key"].tolist() == ["mask", "glasses|mask", "glasses|mask"]
