"""COCO keypoints JSON reader: real fixtures, schema resolution, Animal-Pose orders, generator layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from animalpose.data.coco_writer import write_coco
from animalpose.data.readers import detect_format, read_coco, read_dataset
from animalpose.data.readers.common import canonical_joint
from animalpose.data.records import PoseRecord
from animalpose.errors import DataError
from animalpose.keypoints import load_schema, schema_from_names


@pytest.mark.parametrize(
    ("folder", "schema", "images", "instances"),
    [
        ("animalpose", "animalpose", 2, 2),
        ("ap10k", "ap10k", 2, 2),
        ("atrw", "atrw", 2, 2),
        ("horse10", "horse10", 3, 3),
        ("coco", "coco", 4, 14),
    ],
)
def test_real_fixture_counts(real, folder, schema, images, instances):
    path = real / "mmpose-tests" / folder
    assert detect_format(path) == "coco"
    ds = read_dataset(path)
    assert (ds.format, ds.schema) == ("coco", schema)
    assert len(ds.images) == images and len(ds) == instances
    k = load_schema(schema).num_joints
    assert all(r.keypoints.shape == (k, 3) for r in ds.records)
    assert all(Path(r.image).is_file() for r in ds.records)
    assert ds.problems == []


def test_real_coco_values_match_the_json(real):
    path = real / "mmpose-tests" / "coco" / "test_coco.json"
    data = json.loads(path.read_text())
    ds = read_coco(path)
    for rec, ann in zip(ds.records, data["annotations"], strict=True):
        np.testing.assert_allclose(rec.keypoints.reshape(-1), ann["keypoints"])
        assert rec.bbox == tuple(float(v) for v in ann["bbox"])
        assert rec.image_id == ann["image_id"]
    first = ds.records[0]
    assert first.image.endswith("000000000785.jpg") and first.image_size == (640, 425)
    np.testing.assert_array_equal(first.keypoints[0], [367, 81, 2])  # nose of the first person
    # the person-detection file beside it is not an annotation file
    assert ds.source.endswith("test_coco.json")


def test_canonical_joint_names():
    assert canonical_joint("left_front_paw") == canonical_joint("L_F_Paw") == canonical_joint("LeftFrontPaw") == "lfpaw"
    assert canonical_joint("TailBase") == canonical_joint("tailbase") == "tail"
    assert canonical_joint("root_of_tail") == canonical_joint("Root_of_Tail")


def _coco_doc(k: int, names=None, info=None, keypoints=None) -> dict:
    kps = keypoints if keypoints is not None else [v for j in range(k) for v in (1.0 + j, 2.0, 2)]
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 32, "height": 24}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "keypoints": kps, "bbox": [0, 0, 20, 10]}],
        "categories": [{"id": 1, "name": "thing", **({"keypoints": names} if names else {})}],
    }
    if info is not None:
        doc["info"] = info
    return doc


def _write(tmp_path: Path, doc: dict, name: str = "ann.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_schema_resolution_order(tmp_path):
    coco_names = list(load_schema("coco").joints)
    # names decide when nothing else is given
    assert read_coco(_write(tmp_path, _coco_doc(17, coco_names))).schema == "coco"
    # info.schema beats the names
    assert read_coco(_write(tmp_path, _coco_doc(17, coco_names, {"schema": "ap10k"}))).schema == "ap10k"
    # the explicit argument beats info.schema
    assert read_coco(_write(tmp_path, _coco_doc(17, coco_names, {"schema": "ap10k"})), "coco").schema == "coco"
    # no names: a unique joint count decides (20 -> animalpose)
    assert read_coco(_write(tmp_path, _coco_doc(20))).schema == "animalpose"
    # AP-10K spelling of its names (left_front_paw) matches the schema's (L_F_Paw)
    ap10k_names = ["left_eye", "right_eye", "nose", "neck", "root_of_tail", "left_shoulder", "left_elbow",
                   "left_front_paw", "right_shoulder", "right_elbow", "right_front_paw", "left_hip", "left_knee",
                   "left_back_paw", "right_hip", "right_knee", "right_back_paw"]
    assert read_coco(_write(tmp_path, _coco_doc(17, ap10k_names))).schema == "ap10k"


def test_ambiguous_joint_count_asks_for_schema(tmp_path):
    path = _write(tmp_path, _coco_doc(17))  # coco and ap10k both have 17 joints, no names
    with pytest.raises(DataError, match="--schema") as err:
        read_coco(path)
    assert err.value.file == str(path)


def test_animalpose_original_release_order(tmp_path):
    schema = load_schema("animalpose")
    original = schema.extra["original_order"]
    release_names = ["left_eye", "right_eye", "nose", "left_ear", "right_ear", "left_front_elbow",
                     "right_front_elbow", "left_back_elbow", "right_back_elbow", "left_front_knee",
                     "right_front_knee", "left_back_knee", "right_back_knee", "left_front_paw", "right_front_paw",
                     "left_back_paw", "right_back_paw", "throat", "withers", "tailbase"]
    # the release's keypoints.json: images as an id -> name dict, nested [x, y, v] keypoints
    kps = [[10.0 + j, 20.0 + j, 2] for j in range(20)]  # x = 10 + release index
    doc = {"images": {"1": "a.png"}, "annotations": [{"image_id": 1, "keypoints": kps, "bbox": [0, 0, 50, 50],
                                                     "category_id": 1}],
           "categories": [{"id": 1, "name": "dog", "keypoints": release_names}]}
    rec = read_coco(_write(tmp_path, doc)).records[0]
    assert rec.schema == "animalpose"
    # mmpose order: Nose is joint 4, the release's joint 2; Throat 5 <- 17, TailBase 6 <- 19, Withers 7 <- 18
    assert rec.keypoints[schema.index("Nose"), 0] == 12.0
    assert rec.keypoints[schema.index("Throat"), 0] == 27.0
    assert rec.keypoints[schema.index("TailBase"), 0] == 29.0
    assert rec.keypoints[schema.index("Withers"), 0] == 28.0
    assert rec.keypoints[schema.index("L_EarBase"), 0] == 13.0
    for j, name in enumerate(original):
        assert rec.keypoints[schema.index(name), 0] == 10.0 + j
    # without names the order must be said explicitly
    doc["categories"][0].pop("keypoints")
    rec = read_coco(_write(tmp_path, doc), "animalpose", keypoint_order="original").records[0]
    assert rec.keypoints[schema.index("Nose"), 0] == 12.0


def _generator_records(root: Path, write_image) -> list[PoseRecord]:
    recs = []
    for i in range(3):
        img = write_image(root / "images" / f"{i:04d}.png", 40, 30)
        kps = np.zeros((18, 3), np.float32)
        kps[:5] = [[1 + i, 2, 2], [3, 4, 1], [5.5, 6.25, 2], [7, 8, 2], [9, 10, 2]]
        recs.append(PoseRecord(image=str(img), keypoints=kps, schema="tigdog", bbox=(1, 2, 30, 20),
                               image_size=(40, 30), video_id="clip0", frame_index=i, instance_id=0,
                               meta={"factors": {"texture": "stripes", "yaw": 0.5 * i}}))
    return recs


def test_write_coco_round_trip_generator_layout(tmp_path, write_image):
    out = tmp_path / "OUT"
    recs = _generator_records(out, write_image)
    path = write_coco(recs, out / "annotations" / "tigdog.json", "tigdog")
    assert [p.name for p in path.parent.iterdir()] == ["tigdog.json"]  # no temporary file left behind
    doc = json.loads(path.read_text())
    assert doc["images"][0]["file_name"] == "images/0000.png"  # relative to OUT
    assert doc["info"]["schema"] == "tigdog"
    assert doc["annotations"][0]["num_keypoints"] == 5
    assert detect_format(out) == "coco"
    back = read_dataset(out)
    assert back.schema == "tigdog" and len(back) == 3
    for a, b in zip(recs, back.records, strict=True):
        assert Path(b.image) == Path(a.image)
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        assert (b.bbox, b.image_size, b.video_id, b.frame_index, b.instance_id) == (
            a.bbox, a.image_size, a.video_id, a.frame_index, a.instance_id)
        assert b.meta["factors"] == a.meta["factors"]
    assert [r.image_id for r in back.records] == [1, 2, 3]


def test_folder_with_several_annotation_files(tmp_path, write_image):
    out = tmp_path / "OUT"
    recs = _generator_records(out, write_image)
    write_coco(recs, out / "annotations" / "tigdog.json", "tigdog")
    ap = [PoseRecord(image=recs[0].image, keypoints=np.zeros((20, 3)), schema="animalpose", bbox=(0, 0, 5, 5))]
    write_coco(ap, out / "annotations" / "animalpose.json", "animalpose")
    first = read_dataset(out)  # sorted: animalpose.json first, and says so
    assert first.schema == "animalpose" and "read animalpose.json" in first.meta["notes"][0]
    assert read_dataset(out, schema="tigdog").schema == "tigdog"


def test_write_coco_custom_schema_round_trip(tmp_path, write_image):
    schema = schema_from_names("dlc:mouse", ["nose", "tail"])
    img = write_image(tmp_path / "x.png", 16, 16)
    rec = PoseRecord(image=str(img), keypoints=[[1, 2, 2], [0, 0, 0]], schema=schema.name)
    path = write_coco([rec], tmp_path / "ann.json", schema)
    back = read_coco(path)
    assert back.schema == "dlc:mouse" and back.meta["schema_def"].joints == ("nose", "tail")
    assert back.records[0].image_size == (16, 16)  # probed from the PNG header by the writer
    assert back.records[0].bbox == (1.0, 2.0, 0.0, 0.0)  # box of the single labelled point


def test_write_coco_rejects_wrong_joint_count_and_nan(tmp_path):
    bad = PoseRecord(image="a.png", keypoints=np.zeros((3, 3)), schema="tigdog", image_size=(4, 4))
    with pytest.raises(ValueError, match="3 joints"):
        write_coco([bad], tmp_path / "a.json", "tigdog")
    nan = PoseRecord(image="a.png", keypoints=np.full((18, 3), np.nan), schema="tigdog", image_size=(4, 4),
                     bbox=(0, 0, 1, 1))
    with pytest.raises(ValueError, match="non-finite"):
        write_coco([nan], tmp_path / "a.json", "tigdog")
    assert not (tmp_path / "a.json").exists()


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"images": [],\n "annotations": [,]}')
    with pytest.raises(DataError, match="malformed JSON") as err:
        read_coco(path)
    assert err.value.file == str(path) and err.value.field.startswith("line 2")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("annotations"), "annotations"),
        (lambda d: d["annotations"][0].pop("image_id"), "annotations[0].image_id"),
        (lambda d: d["annotations"][0].update(keypoints=[1, 2]), "annotations[0].keypoints"),
        (lambda d: d["images"][0].pop("file_name"), "images[0].file_name"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "annotations[0].bbox"),
    ],
)
def test_missing_keys_name_the_field(tmp_path, mutate, field):
    doc = _coco_doc(20)
    mutate(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(DataError) as err:
        read_coco(path)
    assert (err.value.file, err.value.field) == (str(path), field)


def test_soft_problems_are_collected_not_raised(tmp_path):
    doc = _coco_doc(20)
    doc["images"].append({"id": 1, "file_name": "b.png"})  # duplicate id
    doc["annotations"].append({"image_id": 99, "keypoints": [0] * 60})  # unknown image
    ds = read_coco(_write(tmp_path, doc))
    assert len(ds) == 1
    fields = [p.field for p in ds.problems]
    assert fields == ["images[1].id", "annotations[1].image_id"]
