"""`evaluate --mapping`: a TigDog-schema checkpoint scored on Animal-Pose labels over the shared joints.

The network is replaced by one whose heatmaps peak at the crop centre for every joint, so every
prediction is the box centre (50, 50) of the one 100x100 box, and each joint's result follows by hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import animalpose.engine.evaluate as evaluate_module
from animalpose.cli import app
from animalpose.config import parse_config, to_dict
from animalpose.data.coco_writer import write_coco
from animalpose.data.records import PoseRecord
from animalpose.engine.build import make_model
from animalpose.engine.checkpoint import save_checkpoint
from animalpose.engine.evaluate import evaluate
from animalpose.engine.evaluate_ensemble import evaluate_ensemble
from animalpose.errors import DataError
from animalpose.keypoints import load_mapping, load_schema

TIGDOG, ANIMALPOSE = load_schema("tigdog"), load_schema("animalpose")
# Animal-Pose labels (x, y); the prediction is (50, 50) for every joint
LABELS = {"L_Eye": (50, 50), "L_F_Paw": (50, 50), "R_F_Paw": (100, 100), "L_B_Paw": (57, 50), "Nose": (0, 0)}


@pytest.fixture
def tigdog_ckpt(tmp_path) -> Path:
    cfg = parse_config({"data": {"schema": "tigdog", "input_size": [64, 64], "heatmap_size": [16, 16], "workers": 0},
                        "model": {"name": "hourglass1", "channels": 32}, "codec": {"sigma": 1.0},
                        "tracking": {"enabled": False}})
    model = make_model(cfg, TIGDOG)
    return save_checkpoint(tmp_path / "tigdog.ckpt", model=model.state_dict(), schema=TIGDOG, config=to_dict(cfg),
                           epoch=1, step=1)


@pytest.fixture
def animalpose_json(tmp_path) -> Path:
    image = tmp_path / "images" / "a.png"
    image.parent.mkdir()
    cv2.imwrite(str(image), np.zeros((120, 120, 3), np.uint8))
    kp = np.zeros((20, 3), np.float32)
    for name, xy in LABELS.items():
        kp[ANIMALPOSE.index(name)] = (*xy, 2)
    rec = PoseRecord(str(image), kp, "animalpose", bbox=(0.0, 0.0, 100.0, 100.0), image_size=(120, 120), image_id=1)
    return write_coco([rec], tmp_path / "annotations" / "animalpose.json", "animalpose")


@pytest.fixture
def centre_peaks(monkeypatch):
    def peaks(model, images, perm=None, shift=False):
        hm = torch.zeros(images.shape[0], TIGDOG.num_joints, 16, 16)
        hm[:, :, 8, 8] = 1.0  # decodes to the crop centre (32, 32) of the 64 px input
        return hm

    monkeypatch.setattr(evaluate_module, "final_heatmaps", peaks)


def test_other_schema_is_refused_without_a_mapping(tigdog_ckpt, animalpose_json):
    with pytest.raises(DataError, match=r"schema 'animalpose' .*predicts 'tigdog'.*--mapping auto"):
        evaluate(tigdog_ckpt, animalpose_json, device="cpu", progress=False)


def test_shared_joints_scored_by_name(tigdog_ckpt, animalpose_json, centre_peaks):
    out = evaluate(tigdog_ckpt, animalpose_json, mapping="auto", device="cpu", flip=False, progress=False)
    table = load_mapping("animalpose", "tigdog")
    assert out["dataset_schema"] == "animalpose" and len(out["common_joints"]) == len(table.pairs) == 14
    assert out["common_joints"]["L_F_Hoof"] == "L_F_Paw" and out["common_joints"]["L_Eye"] == "L_Eye"
    assert "Chin" not in out["common_joints"] and "Nose" not in out["common_joints"].values()
    assert out["instances"] == 1 and "AP" not in out["metrics"]

    def scored(metric: str) -> dict[str, float]:
        return {j: v for j, v in out["per_joint_tables"][metric].items() if not math.isnan(v)}

    # The instance's size is its own labels' extent, (0, 0) to (100, 100): 100 px.
    # L_Eye and L_F_Paw (-> L_F_Hoof) lie on the prediction; R_F_Paw 70.7 px (0.707) off; L_B_Paw 7 px (0.07);
    # Nose has no TigDog joint and R_Eye is unlabelled: neither is scored.
    assert scored("pck_bbox@0.05") == {"L_Eye": 1.0, "L_F_Hoof": 1.0, "R_F_Hoof": 0.0, "L_B_Hoof": 0.0}
    assert scored("pck_bbox@0.1") == {"L_Eye": 1.0, "L_F_Hoof": 1.0, "R_F_Hoof": 0.0, "L_B_Hoof": 1.0}
    assert out["metrics"]["pck_bbox@0.05"] == pytest.approx(2 / 4)
    assert out["metrics"]["pck_bbox@0.1"] == pytest.approx(3 / 4)
    # pixel errors of the four scored joints: 0, 0, |(100, 100) - (50, 50)| = 70.71, |(57, 50) - (50, 50)| = 7
    assert out["metrics"]["pixel_error_mean"] == pytest.approx((0 + 0 + 50 * 2 ** 0.5 + 7) / 4, abs=0.05)
    assert out["metrics"]["pixel_error_median"] == pytest.approx(3.5, abs=0.05)
    assert out["per_joint_tables"]["pixel_error_mean"]["R_F_Hoof"] == pytest.approx(50 * 2 ** 0.5, abs=0.05)
    assert set(out["per_joint"]) == set(out["common_joints"])
    crop = scored("pck_crop@0.2")  # 1.5x padded crop: R_F_Paw is 21 input px (0.33 of 64) off
    assert (crop["L_Eye"], crop["L_F_Hoof"], crop["R_F_Hoof"]) == (1.0, 1.0, 0.0)


def test_cli_mapping_table_file_and_json(tigdog_ckpt, animalpose_json, centre_peaks, tmp_path):
    table = Path(evaluate_module.__file__).resolve().parents[2] / "configs" / "keypoints" / "mappings"
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(tigdog_ckpt), "--data", str(animalpose_json),
                                   "--mapping", str(table / "animalpose__tigdog.yaml"), "--no-flip", "--device",
                                   "cpu", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["common_joints"]["R_B_Hoof"] == "R_B_Paw" and out["metrics"]["pck_bbox@0.1"] == pytest.approx(0.75)
    wrong = table / "ap10k__animalpose.yaml"
    with pytest.raises(DataError, match="maps ap10k -> animalpose, not the dataset's animalpose") as err:
        evaluate(tigdog_ckpt, animalpose_json, mapping=wrong, device="cpu", progress=False)
    assert err.value.file == str(wrong)


def test_an_ensemble_is_scored_on_the_shared_joints_too(tigdog_ckpt, animalpose_json, centre_peaks):
    one = evaluate(tigdog_ckpt, animalpose_json, mapping="auto", device="cpu", flip=False, progress=False)
    two = evaluate_ensemble([tigdog_ckpt, tigdog_ckpt], animalpose_json, mapping="auto", device="cpu", flip=False,
                            progress=False)
    assert two["common_joints"] == one["common_joints"] and set(two["per_joint"]) == set(one["common_joints"])
    for k in ("pck_bbox@0.05", "pck_bbox@0.1", "pixel_error_mean", "pixel_error_median"):
        assert two["metrics"][k] == pytest.approx(one["metrics"][k])
    assert two["per_joint_tables"]["pixel_error_mean"]["R_F_Hoof"] == pytest.approx(50 * 2 ** 0.5, abs=0.05)
