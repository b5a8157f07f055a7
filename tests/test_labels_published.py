"""Label orders and ``--labels`` parsing; the attributed published results and ``fercurate leaderboard``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fercurate import published
from fercurate.cli import app
from fercurate.errors import InputError
from fercurate.labels import CANONICAL_LABELS, ORDERS, check_order, parse_labels, to_canonical
from fercurate.schema import CANONICAL_LABELS as SCHEMA_LABELS
from fercurate.schema import FER2013_EMOTIONS, FERPLUS_LABELS, FERPLUS_VOTE_COLUMNS, RAFDB_LABELS, SFEW_LABELS


def test_one_canonical_space_and_the_published_orders():
    assert SCHEMA_LABELS is CANONICAL_LABELS
    assert CANONICAL_LABELS == ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
    # each named order agrees with the ingest label maps of its dataset
    assert list(ORDERS["fer2013"]) == [FER2013_EMOTIONS[i] for i in range(7)]
    assert list(ORDERS["ferplus"]) == [FERPLUS_LABELS[c] for c in FERPLUS_VOTE_COLUMNS[:8]]
    assert list(ORDERS["rafdb"]) == [RAFDB_LABELS[i] for i in range(1, 8)]
    assert list(ORDERS["sfew"]) == [SFEW_LABELS[d] for d in sorted(SFEW_LABELS)]
    assert list(ORDERS["affectnet"]) == list(CANONICAL_LABELS)


def test_parse_labels_orders_lists_files_and_aliases(tmp_path):
    assert parse_labels("RAF-DB") == list(ORDERS["rafdb"])
    assert parse_labels("fer2013") == ["anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert parse_labels("Angry, Disgusted ,fearful,happiness,sadness,surprised,neutrality") == list(ORDERS["fer2013"])
    f = tmp_path / "names.txt"
    f.write_bytes("\ufeff# FER+ order\r\nneutral\r\nhappiness\r\nsurprise\r\nsadness\r\nanger\r\ndisgust\r\n"
                  "fear\r\ncontempt\r\n\r\n".encode())
    assert parse_labels(str(f)) == list(ORDERS["ferplus"])
    assert to_canonical(ORDERS["rafdb"]) == [6, 3, 4, 0, 1, 2, 5]  # rafdb column of neutral, happy, sad, ...
    with pytest.raises(InputError, match="unknown class name 'grumpy'"):
        parse_labels("neutral,grumpy,sad")
    with pytest.raises(InputError, match="happy appears more than once"):
        parse_labels("happy,happiness,sad,surprise,fear,disgust,anger")
    with pytest.raises(InputError, match="must name the 8 expression classes.*missing: anger"):
        check_order(["neutral", "happy", "sad", "surprise", "fear", "disgust", "contempt"], "m.onnx")
    with pytest.raises(InputError, match="not a known order"):
        parse_labels("imagenet")
    with pytest.raises(InputError, match="missing.txt: file not found"):
        parse_labels(str(tmp_path / "missing.txt"))


def test_published_rows_are_attributed_and_sorted():
    rows = published.leaderboard("ferplus", "test", 8)
    assert [r.accuracy for r in rows] == sorted((r.accuracy for r in rows), reverse=True)
    by_method = {r.method: r for r in rows}
    vgg = by_method["RAN-VGG16"]
    assert (vgg.accuracy, vgg.backbone, vgg.pretraining, vgg.table) == (89.16, "VGG16", "VGGFace", "Table VI")
    assert "label distributions" in vgg.notes
    assert by_method["RAN-ResNet18"].accuracy == 88.55 and by_method["RAN-ResNet18"].backbone == "ResNet-18"
    sfew = {r.method: r for r in published.leaderboard("sfew", "val")}
    assert sfew["RAN (VGG16+ResNet18)"].accuracy == 56.4 and "ensemble" in sfew["RAN (VGG16+ResNet18)"].notes
    assert sfew["RAN-ResNet18"].accuracy == 54.19 and sfew["RAN-ResNet18"].split == "val"
    affect = {r.method: r for r in published.leaderboard("affectnet", "test", 8)}
    assert affect["RAN-ResNet18+"].accuracy == 59.5 and "oversampling" in affect["RAN-ResNet18+"].notes
    assert affect["RAN-ResNet18"].accuracy == 52.97
    assert published.leaderboard("sfew", "test") == []  # SFEW figures are on the validation set
    assert all(r.num_classes == 7 for r in published.leaderboard("affectnet", "pose45", 7))
    assert {r.accuracy for r in published.leaderboard("affectnet", "pose45", 8)} >= {53.19, 48.5, 60.86, 57.78}
    for r in published.RESULTS:
        assert r.paper and r.table and r.method and r.num_classes in (7, 8) and 0 < r.accuracy < 100
        assert r.split in ("test", "val") and r.subset in ("test", "val", *published.PAPER_SUBSETS)
    assert published.subset_size("ferplus", "pose45") == (634, "RAN Table I")


def test_leaderboard_command_prints_sources():
    r = CliRunner().invoke(app, ["leaderboard", "--subset", "pose45", "--dataset", "ferplus"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "published size 634 (RAN Table I)" in lines[0]
    body = [ln for ln in lines if ln.strip()[:1].isdigit()]
    assert [ln.split()[1] for ln in body] == ["88.15", "87.50", "80.40", "75.50"]
    assert "RAN Table II" in r.output and "SCAN-CCI Table 3" in r.output and "MS-Celeb-1M" in r.output
    in_ws = CliRunner().invoke(app, ["leaderboard", "--subset", "pose45", "--dataset", "ferplus", "-w", "."])
    assert in_ws.exit_code == 0 and in_ws.output == r.output  # -w as on every command; the table is fercurate's own
    bad = CliRunner().invoke(app, ["leaderboard", "--subset", "pose45", "--dataset", "sfew"])
    assert bad.exit_code == 1 and "no published result" in bad.output


def test_eval_help_documents_each_labels_form():
    r = CliRunner().invoke(app, ["eval", "--help"], env={"COLUMNS": "220"})
    assert r.exit_code == 0
    text = " ".join(r.output.replace("│", " ").split())
    for piece in ("--labels", "rafdb", "fer2013", "classes.txt", "angry,disgust,fear,happy,sad,surprise,neutral",
                  "--overwrite"):
        assert piece in text, piece


# --- issue 28: the leaderboard beyond RAN, SCAN-CCI and MA-Net; published sizes are faces ---------------------


def test_latent_ofer_rows_stand_only_beside_runs_of_their_class_count():
    occ = {r.method: r for r in published.leaderboard("rafdb", "occlusion", 7)}
    lo = occ["Latent-OFER"]
    assert (lo.accuracy, lo.paper, lo.table, lo.backbone, lo.num_classes) == \
        (84.2, "Latent-OFER (Lee, Lee & Yoo, ICCV 2023)", "Table 6", "ResNet-18 + ViT", 7)
    assert "MS-Celeb-1M" in lo.pretraining and lo.source() == "Latent-OFER Table 6"
    assert occ["Wang et al. [53] (ACCV 2022, cited by Latent-OFER)"].accuracy == 82.5
    affect = {r.method: r for r in published.leaderboard("affectnet", "occlusion", 7)}
    assert affect["Latent-OFER"].accuracy == 66.1 and affect["Latent-OFER"].table == "Table 5"
    assert "Latent-OFER" not in {r.method for r in published.leaderboard("affectnet", "occlusion", 8)}
    r = CliRunner().invoke(app, ["leaderboard", "--subset", "occlusion", "--dataset", "rafdb"])
    assert r.exit_code == 0 and "Latent-OFER Table 6" in r.output and "84.20" in r.output


def test_rafdb_list_sizes_are_faces_not_line_counts(ran_lists_root):
    """Item 11: 735 and 1,248 count lines (one repeated, one header); the lists hold 734 and 1,247 faces."""
    occ = (ran_lists_root / "RAF_DB_dir" / "rafdb_occlusion_list.txt").read_text().split("\n")
    pose = (ran_lists_root / "RAF_DB_dir" / "val_raf_db_list.txt").read_text().split()
    faces = {"occlusion": len({ln.split()[0] for ln in occ if ln.strip()}), "pose30": len(set(pose))}
    for subset, n in faces.items():
        size, source = published.subset_size("rafdb", subset)
        assert size == n, subset
        assert "SCAN-CCI section 6.1 says" in source
    assert faces == {"occlusion": 734, "pose30": 1247}
    r = CliRunner().invoke(app, ["leaderboard", "--subset", "occlusion", "--dataset", "rafdb"])
    assert "published size 734 (faces in the RAN authors' list; SCAN-CCI section 6.1 says 735" in r.output
