"""Pseudo-label diagnostics: precision-coverage curves, verdicts, crop errors, COCO output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from animalpose.adapt.diagnostics import (
    check_scores,
    collapsed,
    crop_errors,
    curves_figure,
    gallery_figure,
    precision_coverage,
    pseudo_label_coco,
    summarize,
    swapped,
    verdicts,
    write_json,
)
from animalpose.adapt.pseudolabel import PseudoLabelSet
from animalpose.data.records import PoseRecord
from animalpose.keypoints import schema_from_names


def test_precision_coverage_hand_computed():
    score = np.array([[0.9, 0.8, 0.7, 0.6], [0.5, 0.4, np.nan, 0.2]])
    correct = np.array([[True, False, True, True], [False, True, True, False]])
    valid = np.array([[True, True, True, True], [True, True, True, False]])
    # ranked valid finite: 0.9 T, 0.8 F, 0.7 T, 0.6 T, 0.5 F, 0.4 T  (NaN and invalid dropped) -> 6 joints
    got = precision_coverage(score, correct, valid, [1 / 6, 0.5, 1.0])
    np.testing.assert_allclose(got, [1.0, 2 / 3, 4 / 6])
    assert np.isnan(precision_coverage(score, correct, np.zeros_like(valid), [0.5])).all()


def _labels(truth: bool = True) -> PseudoLabelSet:
    recs = [PoseRecord(image=f"img{i}.png", keypoints=np.zeros((3, 3)), schema="toy", bbox=(0, 0, 100, 100),
                       image_size=(100, 100), video_id="v", frame_index=i) for i in range(2)]
    xy = np.array([[[10, 10], [50, 50], [90, 20]], [[20, 30], [60, 60], [30, 80]]], dtype=np.float32)
    gt = np.concatenate([xy + np.array([[[1, 0], [30, 0], [0, 2]], [[0, 0], [0, 0], [0, 10]]]),
                         np.array([[[2], [2], [0]], [[2], [1], [2]]])], -1).astype(np.float32)
    comp = {
        "peak": np.array([[0.9, 0.2, 0.5], [0.8, 0.7, 0.1]], np.float32),
        "peak_geo": np.array([[0.9, 0.3, 0.5], [0.8, 0.7, 0.2]], np.float32),
        "agree_geo": np.array([[1.0, 0.5, 0.9], [1.0, 1.0, 0.1]], np.float32),
        "peak_photo": np.array([[0.9, 0.2, 0.5], [0.8, 0.7, 0.9]], np.float32),
        "agree_photo": np.array([[1.0, 0.1, 0.9], [1.0, 1.0, 0.9]], np.float32),
    }
    # crop = whole 100x100 image scaled to 50x50
    m = np.tile(np.array([[0.5, 0, 0], [0, 0.5, 0]]), (2, 1, 1))
    conf = comp["peak"].copy()
    weights = (conf >= 0.5).astype(np.float32)
    replaced = np.array([[False, False, False], [True, False, False]])
    flow = np.array([[np.nan] * 3, [0.9, 0.6, 0.0]])
    return PseudoLabelSet(recs, xy, conf, comp, m, (50, 50), flow, replaced, weights, 0.5, gt if truth else None)


def test_crop_errors_and_summary_against_hand_values():
    lab = _labels()
    d = crop_errors(lab)
    # distances in crop pixels are half the image ones, divided by crop width 50
    expected = np.array([[0.5 / 50, 15 / 50, np.nan], [0.0, 0.0, 5 / 50]])
    np.testing.assert_allclose(d, expected)
    outside = _labels()
    outside.truth[1, 2, 1] = 120.0  # truth outside the crop is not evaluated
    assert np.isnan(crop_errors(outside)[1, 2])
    s = summarize(lab, alpha=0.05)  # threshold 2.5 crop px
    # kept: (0,0) ok, (0,2) no truth, (1,0) ok, (1,1) ok -> precision 3/3
    assert s["num_kept"] == 4 and s["coverage"] == pytest.approx(4 / 6)
    assert s["precision@0.05"] == pytest.approx(1.0)
    assert s["all_pck@0.05"] == pytest.approx(3 / 5)
    assert s["rejected_pck@0.05"] == pytest.approx(0.0)
    assert s["num_temporal"] == 1
    assert set(s["curves"]) == {"equivariance", "invariance", "temporal", "combined"}
    assert s["curves"]["combined"][-1] == pytest.approx(3 / 5)  # full coverage = all valid joints
    assert "precision@0.05" not in summarize(_labels(truth=False))


def test_left_right_collapse_swap_and_per_joint_table_against_hand_values():
    lab = _labels()
    # crop pixels are half the image's (0.5 scale); joints 0 and 1 form a pair
    lab.xy[0, 1] = lab.xy[0, 0] + [1.0, 0.0]  # instance 0: the pair 0.5 crop px apart (< 0.02 x 50 = 1 px)
    lab.truth[0, 1, :2] = [60.0, 60.0]
    lab.truth[0, 0, :2] = lab.xy[0, 0] + [30.0, 0.0]  # joint 0 misses its truth by 15 crop px ...
    lab.truth[0, 1, :2] = lab.xy[0, 0] + [0.0, 2.0]  # ... and lies 1 crop px from its partner's: swapped
    lab.weights[:] = 0
    lab.weights[0, :2] = 1  # kept: both collapsed joints of instance 0, and joint 1 of instance 1
    lab.weights[1, 1] = 1
    np.testing.assert_array_equal(collapsed(lab, [(0, 1)]), [[True, True, False], [False, False, False]])
    sw = swapped(lab, [(0, 1)], 0.05)
    # joint 0: own truth 15 px off, partner's truth 1 px: swapped; joint 1 of instance 0: own truth 1 px: right
    np.testing.assert_array_equal(sw, [[True, False, False], [False, False, False]])
    s = summarize(lab, 0.05, joints=("a", "b", "c"), flip_pairs=[(0, 1)])
    assert s["collapsed"] == pytest.approx(2 / 3)  # kept paired joints: (0,0), (0,1) collapsed, (1,1) not
    assert s["collapsed_all"] == pytest.approx(2 / 4)
    # kept with truth: (0,0) swapped, (0,1) right and not swapped, (1,1) right (truth v=1)
    assert s["swapped@0.05"] == pytest.approx(1 / 3)
    assert s["precision@0.05"] == pytest.approx(2 / 3)
    assert s["precision@0.1"] == pytest.approx(2 / 3)  # the swapped one is 15/50 = 0.3 off
    assert s["per_joint"]["a"] == {"kept": 0.5, "precision@0.05": 0.0, "all_pck@0.05": 0.5}
    assert s["per_joint"]["b"]["precision@0.05"] == pytest.approx(1.0)
    assert s["per_joint"]["c"]["precision@0.05"] is None and s["per_joint"]["c"]["kept"] == 0.0
    bare = summarize(_labels(truth=False), flip_pairs=[(0, 1)])
    assert "collapsed" in bare and not any(k.startswith("swapped") for k in bare)


def test_ccssl_selection_applies_the_collapsed_pair_rule():
    from animalpose.adapt.ccssl import select

    lab = _labels()
    lab.xy[0, 1] = lab.xy[0, 0]  # instance 0: joints 0 and 1 coincide (peaks 0.9 and 0.2)
    keep = select(lab, 0.0)  # percentile 0: every eligible joint kept
    assert keep.weights.sum() == 6
    lower = select(lab, 0.0, flip_pairs=[(0, 1)], collapsed_pairs="drop_lower")
    np.testing.assert_array_equal(lower.weights, [[1, 0, 1], [1, 1, 1]])
    both = select(lab, 0.0, flip_pairs=[(0, 1)], collapsed_pairs="drop_both")
    np.testing.assert_array_equal(both.weights, [[0, 0, 1], [1, 1, 1]])


def test_check_scores_and_verdicts():
    lab = _labels()
    sc = check_scores(lab)
    np.testing.assert_allclose(sc["equivariance"], lab.components["peak_geo"] * lab.components["agree_geo"])
    v = verdicts(lab)
    assert v[0, 0] == "accepted" and v[1, 0] == "accepted:temporal"
    assert v[0, 1] == "rejected:invariance"  # 0.2*0.1 < 0.3*0.5
    assert v[1, 2] == "rejected:equivariance"  # 0.2*0.1 < 0.9*0.9
    lab.components["peak_photo"] = np.full((2, 3), np.nan, np.float32)
    assert "invariance" not in check_scores(lab)
    assert verdicts(lab)[0, 1] == "rejected:equivariance"


def test_pseudo_label_coco_document(tmp_path):
    lab = _labels()
    schema = schema_from_names("toy", ["a", "b", "c"])
    doc = pseudo_label_coco(lab, schema, round_index=2)
    path = write_json(doc, tmp_path / "round_2" / "pseudo_labels.json")
    back = json.loads(path.read_text())
    assert back["info"]["round"] == 2 and len(back["images"]) == 2 and len(back["annotations"]) == 2
    a0 = back["annotations"][0]
    assert a0["keypoints"][:3] == [10.0, 10.0, 2.0] and a0["keypoints"][5] == 0.0
    assert a0["num_keypoints"] == 2 and len(a0["confidence"]) == 3 and a0["weight"] == [1.0, 0.0, 1.0]
    assert a0["check"][1].startswith("rejected:")
    assert a0["flow_confidence"] == [None, None, None]
    assert back["annotations"][1]["flow_confidence"] == [0.9, 0.6, 0.0]
    assert set(a0["components"]) == set(lab.components)
    assert back["images"][1]["frame_index"] == 1
    assert not list(tmp_path.glob("round_2/.*tmp"))


def test_to_records_keeps_only_selected_joints():
    lab = _labels()
    recs = lab.to_records()
    np.testing.assert_array_equal(recs[0].keypoints[:, 2], [2, 0, 2])
    np.testing.assert_allclose(recs[0].keypoints[0, :2], [10, 10])
    assert recs[0].keypoints[1, :2].tolist() == [0, 0]
    assert recs[0].meta["pseudo_label"] and recs[0].bbox == (0, 0, 100, 100)
    assert lab.records[0].keypoints.sum() == 0  # originals untouched


def test_figures_draw():
    lab = _labels()
    s = summarize(lab)
    assert curves_figure(s) is not None
    assert curves_figure(summarize(_labels(truth=False))) is None
    crops = [np.zeros((50, 50, 3), np.uint8)] * 2
    fig = gallery_figure(crops, lab.crop_xy, lab.weights > 0, None, columns=2)
    assert len(fig.axes) == 2


def test_write_json_nan_as_null(tmp_path):
    p = write_json({"a": float("nan"), "b": [1.0, np.float32(np.inf)], "c": np.int64(3)}, tmp_path / "x.json")
    assert json.loads(p.read_text()) == {"a": None, "b": [1.0, None], "c": 3}
