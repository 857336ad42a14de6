"""`check_dataset`: every problem of a dataset in one pass, each naming its file and field."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from animalpose.data.check import check_dataset
from animalpose.data.readers import read_coco, read_dataset
from animalpose.data.records import PoseDataset, PoseRecord


def _doc(tmp_path: Path, write_image, n: int = 4) -> dict:
    images, anns = [], []
    for i in range(n):
        write_image(tmp_path / f"im{i}.png", 40, 30)
        images.append({"id": i + 1, "file_name": f"im{i}.png", "width": 40, "height": 30})
        kps = [v for j in range(17) for v in (1.0 + j, 2.0 + i, 2)]
        anns.append({"id": 10 + i, "image_id": i + 1, "category_id": 1, "keypoints": kps, "bbox": [0, 0, 20, 10]})
    return {"info": {"schema": "coco"}, "images": images, "annotations": anns, "categories": [{"id": 1}]}


def _check(tmp_path, doc):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))  # json writes NaN as the NaN literal, which Python reads back
    return path, check_dataset(read_coco(path))


def test_clean_dataset_summary(tmp_path, write_image):
    _, report = _check(tmp_path, _doc(tmp_path, write_image))
    assert report.ok and report.problems == []
    assert (report.num_images, report.num_instances, report.num_keypoints_labelled) == (4, 4, 68)
    assert report.image_sizes == {"40x30": 4} and report.num_joints == 17
    assert report.per_joint_labelled["nose"] == 4 and sum(report.per_joint_labelled.values()) == 68


def test_truncated_image(tmp_path, write_image):
    doc = _doc(tmp_path, write_image)
    img = tmp_path / "im2.png"
    rng = np.random.default_rng(1)
    cv2.imwrite(str(img), rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    img.write_bytes(img.read_bytes()[:-40])
    _, report = _check(tmp_path, doc)
    assert [(p.file, p.field) for p in report.errors] == [(str(img), "image")]
    assert "truncated" in report.errors[0].message


def test_wrong_joint_count(tmp_path, write_image):
    doc = _doc(tmp_path, write_image)
    doc["annotations"][1]["keypoints"] = doc["annotations"][1]["keypoints"][:-6]  # 15 joints
    path, report = _check(tmp_path, doc)
    assert [(p.file, p.field) for p in report.errors] == [(str(path), "annotations[1].keypoints")]
    assert "15 joints, schema 'coco' has 17" in report.errors[0].message


def test_nan_coordinate(tmp_path, write_image):
    doc = _doc(tmp_path, write_image)
    doc["annotations"][0]["keypoints"][3 * 5 + 1] = float("nan")  # y of joint 5
    path, report = _check(tmp_path, doc)
    assert [(p.file, p.field) for p in report.errors] == [(str(path), "annotations[0].keypoints[5]")]
    assert report.errors[0].message == "y is nan"
    assert report.num_keypoints_labelled == 67  # the NaN joint is not counted as labelled


@pytest.mark.parametrize("missing", [0, 3])
def test_missing_image_file(tmp_path, write_image, missing):
    doc = _doc(tmp_path, write_image)
    (tmp_path / f"im{missing}.png").unlink()
    _, report = _check(tmp_path, doc)
    assert [(p.file, p.field) for p in report.errors] == [
        (str(tmp_path / f"im{missing}.png"), f"images[{missing}].file_name")]
    assert "not found" in report.errors[0].message


def test_outside_points_and_bad_boxes(tmp_path, write_image):
    doc = _doc(tmp_path, write_image)
    kps = doc["annotations"][0]["keypoints"]
    kps[0:3] = [45.0, 5.0, 2]  # visible, right of the 40 px image
    kps[3:6] = [45.0, 5.0, 0]  # outside but not labelled: fine
    kps[6:9] = [40.5, 30.0, 1]  # on the edge within tolerance: fine
    kps[9:12] = [5.0, 5.0, 3]  # visibility 3
    doc["annotations"][1]["bbox"] = [0, 0, 0, 5]
    doc["annotations"][2]["bbox"] = [10, 10, 40, 10]  # ends at x = 50 > 40 + 2
    doc["annotations"][3]["bbox"] = [-1, -1, 41, 31]  # 1 px over: within tolerance
    _, report = _check(tmp_path, doc)
    assert [p.field for p in report.errors] == [
        "annotations[0].keypoints[0]", "annotations[0].keypoints[3]", "annotations[1].bbox", "annotations[2].bbox"]
    assert "outside the 40x30 image" in report.errors[0].message


def test_all_problems_in_one_pass(tmp_path, write_image):
    doc = _doc(tmp_path, write_image, n=5)
    img = tmp_path / "im0.png"
    cv2.imwrite(str(img), np.random.default_rng(2).integers(0, 255, (30, 40, 3), dtype=np.uint8))
    img.write_bytes(img.read_bytes()[:-40])  # truncated
    doc["annotations"][1]["keypoints"] = doc["annotations"][1]["keypoints"][:-3]  # 16 joints
    doc["annotations"][2]["keypoints"][0] = float("inf")
    (tmp_path / "im3.png").unlink()
    doc["images"][4]["width"] = 99  # declared size disagrees with the file
    doc["images"].append({"id": 2, "file_name": "im1.png"})  # duplicate image id
    _, report = _check(tmp_path, doc)
    found = sorted((Path(p.file).name, p.field) for p in report.errors)
    assert found == sorted([
        ("ann.json", "images[5].id"),
        ("im0.png", "image"),
        ("ann.json", "annotations[1].keypoints"),
        ("ann.json", "annotations[2].keypoints[0]"),
        ("im3.png", "images[3].file_name"),
        ("ann.json", "images[4]"),
    ])
    assert not report.ok


def test_video_frame_references(tmp_path, write_video):
    path = write_video(tmp_path / "v.mp4", frames=5)
    recs = [PoseRecord(image=str(path), keypoints=np.zeros((0, 3)), schema="unlabelled", frame_index=f,
                       meta={"origin": ("labels.slp", f"labeled_frames[{f}]")}) for f in (0, 4, 7)]
    missing = tmp_path / "gone.mp4"
    ds = PoseDataset(recs, "unlabelled", "video", str(tmp_path), videos={str(missing): 3})
    report = check_dataset(ds, decode_video=True)
    assert [(p.file, p.field) for p in report.errors] == [
        ("labels.slp", "labeled_frames[7].frame_index"), (str(missing), "video")]
    video = report.videos[0]
    assert (video["frames"], video["frames_decoded"], video["labelled_frames"]) == (5, 5, 3)
    assert report.image_sizes == {"32x24": 2}


@pytest.mark.parametrize(
    ("folder", "images", "instances", "joints"),
    [
        ("mmpose-tests/animalpose", 2, 2, 20),
        ("mmpose-tests/ap10k", 2, 2, 17),
        ("mmpose-tests/atrw", 2, 2, 15),
        ("mmpose-tests/horse10", 3, 3, 22),
        ("mmpose-tests/coco", 4, 14, 17),
        ("mmpose-tests/mpii", 5, 5, 16),
        ("mirror-mouse", 90, 90, 17),
        ("sleap-clip", 1500, 3000, 13),
    ],
)
def test_real_fixtures_are_clean(real, folder, images, instances, joints):
    report = check_dataset(read_dataset(real / folder))
    assert report.errors == []
    assert (report.num_images, report.num_instances, report.num_joints) == (images, instances, joints)
    assert sum(report.per_joint_labelled.values()) == report.num_keypoints_labelled > 0
