"""Human-pose metrics on the real fixtures: OKS AP with a hand-computed OKS on COCO, PCKh@0.5 on MPII.

OKS (COCO keypoint evaluation, as pycocotools computes it): for one prediction and one ground truth,
``OKS = mean over labelled joints of exp(-d² / (2 · area · (2σ)²))`` with ``area`` the annotation's
area and σ the joint's sigma. A single instance is matched at an OKS threshold t when OKS ≥ t, so its
AP over t = 0.50, 0.55, ..., 0.95 is the fraction of those thresholds at or below its OKS.

PCKh@0.5 (Andriluka et al., CVPR 2014) on the MPII fixture: mmpose's MPII JSON carries no head
boxes, so the head size is the stated fallback, the head-top–upper-neck distance.

(Ground truth fed back giving AP = 1 on the COCO fixture is tested in tests/test_evaluation.py.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from animalpose.config import parse_config, to_dict
from animalpose.data.readers import read_dataset
from animalpose.data.records import PoseRecord
from animalpose.engine.build import make_model
from animalpose.engine.checkpoint import save_checkpoint
from animalpose.engine.evaluate import evaluate
from animalpose.evaluation import head_sizes, oks_ap, pckh
from animalpose.keypoints import load_schema

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "mmpose-tests"
COCO_JSON = REAL / "coco" / "test_coco.json"
MPII_JSON = REAL / "mpii" / "test_mpii.json"


def _fully_labelled_coco_annotation() -> dict:
    """The fixture's first annotation with all 17 joints labelled (image 785, area 27789.1)."""
    data = json.loads(COCO_JSON.read_text())
    return next(a for a in data["annotations"] if a["num_keypoints"] == 17 and not a["iscrowd"])


def _record(ann: dict) -> PoseRecord:
    kp = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)
    return PoseRecord(str(ann["image_id"]), kp, "coco", bbox=tuple(ann["bbox"]), image_id=ann["image_id"],
                      meta={"area": ann["area"], "iscrowd": ann["iscrowd"]})


def test_oks_ap_of_a_perturbed_prediction_matches_the_hand_computed_oks():
    schema = load_schema("coco")
    ann = _fully_labelled_coco_annotation()
    area = float(ann["area"])
    sigmas = schema.sigmas_array()
    kp = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)
    # Move six joints each by the distance whose OKS term is exactly 1/2:
    #   exp(-d² / (2·area·(2σ)²)) = 1/2  <=>  d = 2σ · sqrt(2 · area · ln 2).
    # The other eleven terms are 1, so OKS = (11 + 6 · 0.5) / 17 = 14/17 = 0.8235...
    moved = [0, 5, 9, 11, 13, 16]  # nose, left shoulder, left wrist, left hip, left knee, right ankle
    pred = kp.copy()
    for j in moved:
        d = 2 * sigmas[j] * math.sqrt(2 * area * math.log(2))
        pred[j, :2] += (0.6 * d, 0.8 * d)  # a 3-4-5 direction: length d
    pred[:, 2] = 1.0
    oks = 14 / 17
    assert oks == pytest.approx(0.8235, abs=1e-4)
    stats = oks_ap([_record(ann)], [{"image_id": ann["image_id"], "keypoints": pred.reshape(-1).tolist(),
                                     "score": 0.9}], schema)
    # matched at t = 0.50 ... 0.80 (7 of 10 thresholds), missed at 0.85, 0.90, 0.95
    assert stats["AP"] == pytest.approx(0.7, abs=1e-6)
    assert stats["AR"] == pytest.approx(0.7, abs=1e-6)
    assert stats["AP50"] == pytest.approx(1.0) and stats["AP75"] == pytest.approx(1.0)
    # the nose far off (its term -> 0): OKS = 13.5/17 = 0.794 < 0.80, one threshold fewer
    pred[0, :2] += 10 * 2 * sigmas[0] * math.sqrt(2 * area * math.log(2))
    stats = oks_ap([_record(ann)], [{"image_id": ann["image_id"], "keypoints": pred.reshape(-1).tolist(),
                                     "score": 0.9}], schema)
    assert stats["AP"] == pytest.approx(0.6, abs=1e-6)


def test_oks_ap_ranks_two_instances_by_score():
    """One exact prediction (OKS 1, score 0.9) and one at OKS 14/17 (score 0.5) on another image.

    At t ≤ 0.80 both match: precision 1 up to recall 1, AP_t = 1. At t ≥ 0.85 only the first
    matches: precision 1 up to recall 1/2 and nothing beyond, so the 101-point interpolated AP_t
    is 51/101. AP = (7 · 1 + 3 · 51/101) / 10.
    """
    schema = load_schema("coco")
    data = json.loads(COCO_JSON.read_text())
    full = [a for a in data["annotations"] if a["num_keypoints"] == 17 and not a["iscrowd"]]
    a, b = full[0], next(x for x in full if x["image_id"] != full[0]["image_id"])
    sigmas = schema.sigmas_array()
    kb = np.asarray(b["keypoints"], np.float64).reshape(-1, 3)
    for j in [0, 5, 9, 11, 13, 16]:
        kb[j, 0] += 2 * sigmas[j] * math.sqrt(2 * float(b["area"]) * math.log(2))
    preds = [{"image_id": a["image_id"], "keypoints": a["keypoints"], "score": 0.9},
             {"image_id": b["image_id"], "keypoints": kb.reshape(-1).tolist(), "score": 0.5}]
    stats = oks_ap([_record(a), _record(b)], preds, schema)
    assert stats["AP"] == pytest.approx((7 + 3 * 51 / 101) / 10, abs=1e-6)
    assert 0 < stats["AP"] < 1
    # scores swapped: at t >= 0.85 the first-ranked prediction is a false positive, so the precision is
    # 1/2 at recall 1/2: AP_t = (1/2) · 51/101
    preds[0]["score"], preds[1]["score"] = 0.5, 0.9
    swapped = oks_ap([_record(a), _record(b)], preds, schema)
    assert swapped["AP"] == pytest.approx((7 + 3 * 0.5 * 51 / 101) / 10, abs=1e-6)


def _mpii_head_sizes_by_hand() -> list[float]:
    """Head-top (joint 9) to upper-neck (joint 8) distance of each fixture entry, from the raw JSON."""
    out = []
    for entry in json.loads(MPII_JSON.read_text()):
        (nx, ny), (tx, ty) = entry["joints"][8], entry["joints"][9]
        out.append(math.hypot(tx - nx, ty - ny))
    return out


def test_pckh_on_the_mpii_fixture_uses_the_head_top_neck_fallback():
    schema = load_schema("mpii")
    ds = read_dataset(MPII_JSON, "auto", None)
    assert ds.format == "mpii" and len(ds.records) == 5
    sizes, how = head_sizes(ds.records, schema)
    assert how == "head_top-upper_neck"  # no head boxes in mmpose's MPII JSON
    assert sizes.tolist() == pytest.approx(_mpii_head_sizes_by_hand(), rel=1e-5)
    assert sizes[0] == pytest.approx(math.hypot(982.7591 - 962.2409, 235.9694 - 80.0306), rel=1e-6)
    gt = np.stack([r.keypoints for r in ds.records]).astype(np.float64)
    labelled = gt[..., 2] > 0
    assert pckh(gt, gt, sizes, 0.5).mean == 1.0
    # every joint 0.45 head sizes off: all correct; 0.55 off: none
    for frac, expected in ((0.45, 1.0), (0.55, 0.0)):
        pred = gt.copy()
        pred[..., 1] += frac * sizes[:, None]
        assert pckh(pred, gt, sizes, 0.5).mean == expected
    # even joints 0.3 off, odd joints 0.7 off: PCKh = labelled even joints / labelled joints
    pred = gt.copy()
    pred[:, 0::2, 0] += 0.3 * sizes[:, None]
    pred[:, 1::2, 0] -= 0.7 * sizes[:, None]
    r = pckh(pred, gt, sizes, 0.5)
    assert r.mean == pytest.approx(labelled[:, 0::2].sum() / labelled.sum())
    assert r.correct[1::2].sum() == 0 and (r.correct[0::2] == labelled[:, 0::2].sum(0)).all()


def test_evaluate_reports_pckh_with_its_head_size_definition_on_the_mpii_fixture(tmp_path):
    """`evaluate` on MPII data: PCKh@0.5 is reported, named with the fallback it used; no OKS (no sigmas)."""
    torch.manual_seed(0)
    cfg = parse_config({"data": {"schema": "mpii", "format": "mpii", "input_size": [64, 64],
                                 "heatmap_size": [16, 16], "bbox_padding_real": 1.25},
                        "model": {"name": "hourglass1", "channels": 32}, "codec": {"sigma": 1.0},
                        "tracking": {"enabled": False}})
    schema = load_schema("mpii")
    ckpt = save_checkpoint(tmp_path / "mpii.ckpt", model=make_model(cfg, schema).state_dict(), schema=schema,
                           config=to_dict(cfg), epoch=0, step=0)
    out = evaluate(ckpt, MPII_JSON, device="cpu", progress=False)
    m = out["metrics"]
    assert out["instances"] == 5
    assert out["notes"]["pckh_head_size"] == "head_top-upper_neck"
    assert 0.0 <= m["pckh@0.5"] <= 1.0
    assert "AP" not in m
    assert set(out["per_joint_tables"]["pckh@0.5"]) == set(schema.joints)


def test_coco_reader_keeps_the_annotation_area_that_oks_is_scaled_by():
    """OKS divides by the annotation's (segment) area, not the box's: the reader must carry it."""
    data = json.loads(COCO_JSON.read_text())
    ds = read_dataset(COCO_JSON, "auto", None)
    assert [r.meta["area"] for r in ds.records] == pytest.approx([a["area"] for a in data["annotations"]])
    rec = ds.records[0]
    assert rec.meta["area"] == pytest.approx(27789.11055) and rec.bbox[2] * rec.bbox[3] > 2.5 * 27789.11055
    # the hand-computed case of the first test, on the record as read: OKS 14/17 -> AP 0.7
    schema = load_schema("coco")
    kp = rec.keypoints.astype(np.float64).copy()
    for j in [0, 5, 9, 11, 13, 16]:
        kp[j, 1] += 2 * schema.sigmas_array()[j] * math.sqrt(2 * rec.meta["area"] * math.log(2))
    pred = {"image_id": rec.image_id, "keypoints": kp.reshape(-1).tolist(), "score": 1.0}
    assert oks_ap([rec], [pred], schema)["AP"] == pytest.approx(0.7, abs=1e-6)
