"""The original Animal-Pose release (../shared/data/real/animal-pose): layout, joints by name, species, splits.

Counts are those of the fixture's SOURCES.md and its splits.json; named-joint checks use one standing
horse (2007_000332.jpg, a pony behind a climbing frame, head turned to the camera).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from animalpose.data.check import check_dataset
from animalpose.data.readers import detect_format, read_dataset
from animalpose.data.readers.animalpose_release import load_split_file
from animalpose.errors import DataError
from animalpose.keypoints import load_schema

SOURCES_COUNTS = {"horse": (723, 960), "cow": (534, 842), "sheep": (556, 1078)}  # images, animals


@pytest.fixture
def release(real) -> Path:
    return real / "animal-pose"


def test_release_layout_is_detected_and_plain_coco_is_not(release, real):
    assert detect_format(release / "keypoints.json") == "animalpose-release"
    assert detect_format(release) == "animalpose-release"
    assert detect_format(real / "mmpose-tests" / "animalpose") == "coco"  # mmpose's conversion: a COCO list


def test_boxes_are_read_as_xmin_ymin_xmax_ymax(release):
    raw = json.loads((release / "keypoints.json").read_text())["annotations"][0]
    assert raw["bbox"] == [25, 34, 419, 271]
    rec = read_dataset(release).records[0]
    assert rec.bbox == (25.0, 34.0, 394.0, 237.0)
    # the explicit override reads the same file with COCO's [x, y, w, h]
    assert read_dataset(release, "coco").records[0].bbox == (25.0, 34.0, 419.0, 271.0)


def test_counts_per_species_match_sources(release):
    ds = read_dataset(release)
    report = check_dataset(ds, decode_images=False)
    assert report.categories == {s: {"images": i, "instances": n} for s, (i, n) in SOURCES_COUNTS.items()}
    for species, (images, animals) in SOURCES_COUNTS.items():
        one = read_dataset(release, categories=[species])
        assert len(one) == animals and len({r.image for r in one.records}) == images
        assert {r.meta["category"] for r in one.records} == {species}


def test_split_file_selects_the_listed_images(release):
    table = json.loads((release / "splits.json").read_text())
    assert {k: len(v) for k, v in table["horse"].items()} == {"train": 453, "val": 90, "test": 180}
    for species, splits in table.items():
        for split, ids in splits.items():
            ds = read_dataset(release, categories=[species], split_file=release / "splits.json", split=split)
            assert {r.image_id for r in ds.records} == set(ids), (species, split)
            assert len({r.image for r in ds.records}) == len(ids)
    # every animal of the three species is in exactly one split
    ds = read_dataset(release, split_file=release / "splits.json")
    assert sum(r.split is None for r in ds.records) == 0


def test_named_joints_of_a_standing_horse(release):
    schema = load_schema("animalpose")
    ds = read_dataset(release, categories=["horse"])
    rec = next(r for r in ds.records if Path(r.image).name == "2007_000332.jpg")

    def at(name: str) -> np.ndarray:
        k = schema.index(name)
        assert rec.keypoints[k, 2] > 0, name
        return rec.keypoints[k, :2]

    # the head is on the image right (x > 240), the tail base on the left (x < 100)
    assert min(at(j)[0] for j in ("L_Eye", "R_Eye", "Nose")) > 240 and at("TailBase")[0] < 100
    # facing the camera: its left eye and left ear base are on the image right of the right ones
    assert at("L_Eye")[0] > at("R_Eye")[0] and at("L_EarBase")[0] > at("R_EarBase")[0]
    # the nose is below the eyes and near them (closer than a fifth of the tail-to-eye length)
    body = np.linalg.norm(at("L_Eye") - at("TailBase"))
    for eye in ("L_Eye", "R_Eye"):
        assert at("Nose")[1] > at(eye)[1] and np.linalg.norm(at("Nose") - at(eye)) < body / 3
    # ear bases above the eyes; withers on the back above the throat
    assert at("L_EarBase")[1] < at("L_Eye")[1] and at("Withers")[1] < at("Throat")[1]
    # standing: every labelled leg goes down from elbow to knee to hoof
    for leg in ("L_F", "R_F", "L_B", "R_B"):
        assert at(f"{leg}_Paw")[1] > at(f"{leg}_Knee")[1], leg
    for leg in ("R_F", "R_B"):  # the left elbows are not labelled on this image
        assert at(f"{leg}_Knee")[1] > at(f"{leg}_Elbow")[1], leg


def test_leg_order_holds_over_all_horses(release):
    """Under a wrong joint order paws would not sit below knees in nearly every labelled horse."""
    schema = load_schema("animalpose")
    kps = np.stack([r.keypoints for r in read_dataset(release, categories=["horse"]).records])
    for leg in ("L_F", "R_F", "L_B", "R_B"):
        knee, paw = kps[:, schema.index(f"{leg}_Knee")], kps[:, schema.index(f"{leg}_Paw")]
        both = (knee[:, 2] > 0) & (paw[:, 2] > 0)
        assert both.sum() > 400 and (paw[both, 1] > knee[both, 1]).mean() > 0.95, leg


def test_check_of_the_release(release):
    horse = check_dataset(read_dataset(release, categories=["horse"]), decode_images=False)
    assert horse.errors == [] and horse.warnings == [] and horse.num_instances == 960
    full = check_dataset(read_dataset(release), decode_images=False)
    # four labelled (visibility 1) keypoints lie 2-6 px past the image edge (cow annotations 585, 1234,
    # 2042 and sheep 1620): an annotator's estimate at the edge, inside the occluded-point tolerance
    # (animalpose.data.validate.OCCLUDED_TOLERANCE); no box is outside its image
    assert full.errors == [] and full.num_instances == 2880


def test_occluded_points_may_lie_a_little_past_the_edge():
    """Visible points: 1 px past the edge; visibility 1 (an estimate): 2 % of the larger side (10 px of 500)."""
    from animalpose.data.records import PoseRecord
    from animalpose.data.validate import check_record

    def problems(x, v):
        kp = np.array([[x, 100.0, v]], np.float32)
        return check_record(PoseRecord("img.png", kp, "one"), None, (347, 500))

    assert problems(350.0, 2) and not problems(347.5, 2)
    assert not problems(356.0, 1) and problems(358.0, 1)


def test_selection_errors_name_the_file_and_the_field(release, tmp_path):
    with pytest.raises(DataError, match="no instances of \\['zebra'\\]") as err:
        read_dataset(release, categories=["zebra"])
    assert err.value.file == str(release / "keypoints.json") and err.value.field == "categories"
    bad = tmp_path / "splits.json"
    bad.write_text(json.dumps({"horse": {"train": [3, 4], "test": [4]}}))
    with pytest.raises(DataError, match=r"image 4 is also in horse\.train") as err:
        load_split_file(bad)
    assert err.value.file == str(bad) and err.value.field == "horse.test"
    bad.write_text(json.dumps({"horse": {"train": ["3"]}}))
    with pytest.raises(DataError, match="integer image ids") as err:
        load_split_file(bad)
    assert err.value.field == "horse.train"
