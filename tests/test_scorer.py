"""The occlusion scorer's package stands on its own: below the labelling App, one config, one face loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_import_graph import import_graph  # the package's import graph, every import counted


def test_the_scorer_never_imports_the_labelling_app() -> None:
    graph = import_graph()
    scorer = {m: deps for m, deps in graph.items() if m == "fercurate.scorer" or m.startswith("fercurate.scorer.")}
    assert scorer, "fercurate.scorer has modules"
    reach = {d for deps in scorer.values() for d in deps if d.startswith("fercurate.annotate")}
    assert not reach, f"the scorer imports {sorted(reach)}"


def test_the_scorer_reads_its_48px_grey_crops_from_the_face_store(tmp_path: Path) -> None:
    import cv2

    from fercurate.faces.store import FaceRows, load_faces as load_store
    from fercurate.manifest import build_table, read_manifest, write_manifest
    from fercurate.scorer.faces import FACE_SIZE, load_faces

    root = tmp_path / "data"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(root / f"f{i}.png"), rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))
    (root / "f3.png").write_bytes(b"no image")
    table = build_table({"sample_id": [f"t/{i}" for i in range(4)], "dataset": ["ferplus"] * 4, "split": ["test"] * 4,
                         "image_path": [f"f{i}.png" for i in range(4)], "label": ["happy"] * 4, "label_id": [1] * 4,
                         "bbox": [{"x": 5.0, "y": 4.0, "w": 40.0, "h": 30.0}, None, None, None]})
    path = tmp_path / "manifests" / "fx.parquet"
    write_manifest(table, path, dataset="ferplus", root=root)
    manifest = read_manifest(path)
    faces, ok, failures = load_faces(manifest, workers=1, workspace=tmp_path)
    assert faces.shape == (4, FACE_SIZE, FACE_SIZE) and faces.dtype == np.uint8
    assert ok.tolist() == [True, True, True, False] and failures == [("t/3", "not a decodable image")]
    store = load_store(FaceRows.of(manifest), FACE_SIZE, grey=True, workspace=tmp_path)  # the same cache entry
    assert store.cache_path is not None and store.cache_path.parent == tmp_path / "cache" / "faces"
    np.testing.assert_array_equal(store.faces[:, 0], faces)
    grey = cv2.imread(str(root / "f0.png"), cv2.IMREAD_GRAYSCALE)
    from fercurate.faces.crop import face_crop

    np.testing.assert_array_equal(faces[0], face_crop(grey, (5.0, 4.0, 40.0, 30.0), FACE_SIZE))
