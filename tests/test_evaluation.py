"""Metrics against hand-computed cases, and OKS AP = 1 for ground truth fed back on real COCO labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from animalpose.data.records import PoseRecord
from animalpose.errors import DataError
from animalpose.evaluation import (
    crop_distances,
    format_table,
    gap_recovery,
    head_sizes,
    heatmap_argmax,
    oks_ap,
    pck_batch_averaged,
    pck_bbox,
    pck_crop,
    pck_curve,
    pck_from_distances,
    pckh,
    per_joint_table,
)
from animalpose.keypoints import load_schema, schema_from_names

COCO_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "mmpose-tests" / "coco"


def _maps(points, size=64, empty=()):
    """(1, K, size, size) one-hot maps at integer points; joints in ``empty`` are all zero."""
    hm = np.zeros((1, len(points), size, size), np.float32)
    for k, (x, y) in enumerate(points):
        if k not in empty:
            hm[0, k, y, x] = 1.0
    return hm


def test_heatmap_argmax_returns_x_then_y():
    hm = _maps([(5, 9), (0, 63)])
    coords, maxvals = heatmap_argmax(hm)
    assert coords.tolist() == [[[5.0, 9.0], [0.0, 63.0]]]
    assert maxvals.tolist() == [[1.0, 1.0]]


def test_pck_crop_hand_computed():
    # 64-px maps: alpha 0.05 -> 3.2 heatmap px (= 12.8 px of a 256 input).
    gt = _maps([(10, 10), (10, 10), (10, 10), (30, 30)], empty=(3,))
    pred = _maps([(13, 10), (14, 10), (12, 12), (0, 0)])
    # distances 3, 4, 2.83 -> correct, wrong, correct; joint 3 excluded (empty gt map)
    r = pck_crop(pred, gt, 0.05)
    assert r.correct.tolist() == [1, 0, 1, 0]
    assert r.total.tolist() == [1, 1, 1, 0]
    assert r.mean == pytest.approx(2 / 3)
    assert np.isnan(r.per_joint[3])
    d = crop_distances(pred, gt)
    assert d[0, :3] == pytest.approx([3 / 64, 4 / 64, np.hypot(2, 2) / 64])
    # boundary: exactly 3.2 px is correct at alpha 0.05 (<=)
    assert pck_from_distances(np.array([[3.2 / 64]]), 0.05).correct.tolist() == [1]


def test_pooled_joint_mean_and_reference_batch_average_differ_as_computed_by_hand():
    # 3 images x 2 joints on 64-px maps (threshold 3.2 px); an empty ground-truth map is not evaluated.
    gt = np.concatenate([_maps([(20, 20), (30, 30)]), _maps([(20, 20), (30, 30)], empty=(1,)),
                         _maps([(20, 20), (30, 30)])])
    pred = np.concatenate([_maps([(21, 20), (40, 30)]), _maps([(20, 21), (5, 5)]), _maps([(40, 20), (30, 31)])])
    r = pck_crop(pred, gt, 0.05)
    assert r.per_joint.tolist() == [2 / 3, 1 / 2]
    assert r.mean == pytest.approx(3 / 5)
    assert r.joint_mean == pytest.approx((2 / 3 + 1 / 2) / 2)
    # batch size 2: batch 1 joints (1.0, 0.0) -> 0.5 (x2 imgs); batch 2 joints (0, 1) -> 0.5 (x1 img)
    assert pck_batch_averaged(pred, gt, batch_size=2) == pytest.approx(0.5)
    # batch size 1: 0.5, 1.0, 0.5 -> 2/3
    assert pck_batch_averaged(pred, gt, batch_size=1) == pytest.approx(2 / 3)
    # a batch with no valid joint counts as 0 in the reference's meter
    assert pck_batch_averaged(gt[1:3, 1:], gt[1:3, 1:], batch_size=1) == pytest.approx(0.5)
    assert pck_batch_averaged(pred, gt, batch_size=1, joints=[1]) == pytest.approx((0 + 0 + 1) / 3)


def test_pck_bbox_uses_longer_side_of_keypoint_box():
    gt = np.array([[[0, 0, 2], [100, 0, 2], [50, 40, 2], [7, 7, 0]]], np.float64)  # box 100 x 40
    pred = np.array([[[4, 3, 0], [106, 0, 0], [50, 45, 0], [500, 500, 0]]], np.float64)
    r = pck_bbox(pred, gt, 0.05)  # threshold 5 px: distances 5, 6, 5
    assert r.correct.tolist() == [1, 0, 1, 0]
    assert r.total.tolist() == [1, 1, 1, 0]
    # one labelled joint -> degenerate keypoint box -> falls back to the instance box (longer side 200)
    gt1 = np.array([[[10, 10, 2], [0, 0, 0]]], np.float64)
    pred1 = np.array([[[19, 10], [0, 0]]], np.float64)
    assert pck_bbox(pred1, gt1, 0.05, boxes=np.array([[0, 0, 200, 50]])).correct.tolist() == [1, 0]
    assert pck_bbox(pred1, gt1, 0.05).total.tolist() == [0, 0]  # no box: excluded


def test_pckh_head_box_and_stated_fallback():
    schema = load_schema("mpii")
    top, neck = schema.index("head_top"), schema.index("upper_neck")
    kp = np.zeros((schema.num_joints, 3), np.float32)
    kp[top] = (100, 50, 2)
    kp[neck] = (100, 90, 2)  # head-top to neck: 40 px
    with_box = PoseRecord("a.jpg", kp, "mpii", meta={"head_box": [0, 0, 30, 40]})  # diag 50 -> 30
    without = PoseRecord("b.jpg", kp, "mpii")
    sizes, how = head_sizes([with_box, without], schema)
    assert sizes.tolist() == pytest.approx([30.0, 40.0])
    assert how == "head_box+head_top-upper_neck"
    pred = kp[None].repeat(2, 0).copy()
    pred[:, top, 0] += 16  # 16 px off: within 0.5 x 40 = 20, outside 0.5 x 30 = 15
    gt = np.stack([kp, kp])
    r = pckh(pred, gt, sizes, 0.5)
    assert r.correct[top] == 1 and r.total[top] == 2
    assert r.total[0] == 0  # unlabelled joints excluded


def test_pck_curve_is_monotone():
    d = np.random.default_rng(0).uniform(0, 0.3, size=(50, 4))
    curve = pck_curve(d, [0.0, 0.05, 0.1, 0.2, 0.5])
    assert np.all(np.diff(curve) >= 0) and curve[-1] == 1.0


def test_oks_ap_is_one_for_ground_truth_fed_back_on_real_coco():
    data = json.loads((COCO_DIR / "test_coco.json").read_text())
    schema = load_schema("coco")
    records, preds = [], []
    for a in data["annotations"]:
        kp = np.asarray(a["keypoints"], np.float32).reshape(-1, 3)
        records.append(PoseRecord(str(a["image_id"]), kp, "coco", bbox=tuple(a["bbox"]),
                                  image_id=a["image_id"], meta={"area": a["area"], "iscrowd": a["iscrowd"]}))
        if a["num_keypoints"] > 0:
            preds.append({"image_id": a["image_id"], "keypoints": a["keypoints"], "score": 1.0})
    stats = oks_ap(records, preds, schema)
    assert stats["AP"] == pytest.approx(1.0)
    assert stats["AR"] == pytest.approx(1.0)
    # shifting every prediction by a large amount must lower AP well below 1
    shift = np.tile([40, 40, 0], 17)
    moved = [{**p, "keypoints": (np.asarray(p["keypoints"]) + shift).tolist()} for p in preds]
    assert oks_ap(records, moved, schema)["AP"] < 0.5


def test_oks_ap_needs_sigmas_and_matching_joints():
    schema = schema_from_names("nosig", ["a", "b"])
    rec = PoseRecord("x.png", np.zeros((2, 3)), "nosig", image_id=1)
    with pytest.raises(DataError, match="sigmas"):
        oks_ap([rec], [], schema)
    coco = load_schema("coco")
    with pytest.raises(DataError, match="joints"):
        oks_ap([rec], [], coco)


def test_per_joint_table_and_format():
    schema = schema_from_names("s", ["a", "bb"])
    rows = per_joint_table(schema, np.array([0.5, np.nan]))
    assert list(rows) == ["a", "bb"] and rows["a"] == 0.5
    text = format_table(rows)
    assert "50.00" in text and "n/a" in text


def test_gap_recovery_by_hand():
    # baseline 0.40, oracle 0.60: a gap of 0.20; 0.55 closes 0.15 of it = 75 %
    assert gap_recovery(0.40, 0.55, 0.60) == pytest.approx(0.75)
    assert gap_recovery(0.40, 0.60, 0.60) == pytest.approx(1.0)  # the whole gap
    assert gap_recovery(0.40, 0.70, 0.60) == pytest.approx(1.5)  # beyond the oracle
    assert gap_recovery(0.40, 0.35, 0.60) == pytest.approx(-0.25)  # below the baseline
    assert gap_recovery(0.10, 0.20, 0.30) == pytest.approx(0.5)
    # undefined: no oracle, an oracle that is not a number, no gap, a negative gap
    for oracle in (None, float("nan"), float("inf"), 0.40, 0.40 + 1e-10, 0.30):
        assert gap_recovery(0.40, 0.50, oracle) is None


def test_pixel_errors_by_hand():
    from animalpose.evaluation import pixel_errors

    # two instances, three joints; errors 3-4-5 triangles: (0,0)->(3,4) = 5, (1,1)->(1,1) = 0,
    # (10,10)->(16,18) = 10; the third joint of the second instance is unlabelled, the second joint never
    gt = np.array([[[0, 0, 2], [5, 5, 0], [10, 10, 1]],
                   [[2, 2, 2], [7, 7, 0], [0, 0, 0]]], dtype=np.float64)
    pred = np.array([[[3, 4, 1], [0, 0, 1], [16, 18, 1]],
                     [[2, 2, 1], [9, 9, 1], [50, 50, 1]]], dtype=np.float64)
    px = pixel_errors(pred, gt)
    assert px.count == 3
    assert px.mean == pytest.approx((5 + 10 + 0) / 3) and px.median == pytest.approx(5.0)
    assert px.rmse == pytest.approx(np.sqrt((25 + 100 + 0) / 3))
    assert px.per_joint_mean[0] == pytest.approx(2.5) and np.isnan(px.per_joint_mean[1])
    assert px.per_joint_mean[2] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="no labelled joint"):
        pixel_errors(pred, np.zeros_like(gt))
