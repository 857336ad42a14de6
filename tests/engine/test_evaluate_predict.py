"""`evaluate` and `predict`: JSON output, metric consistency, output files, bad input before work."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from animalpose.cli import app, main
from animalpose.engine.drawing import legend_width
from animalpose.engine.evaluate import evaluate
from animalpose.engine.predict import predict, scorer_name
from animalpose.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"
COCO = SHARED / "mmpose-tests" / "coco"
CLIP = SHARED / "sleap-clip" / "clip.mp4"


def test_evaluate_json_has_metrics_and_per_joint(trained, dots):
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(trained), "--data", str(dots["val"]), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    m = out["metrics"]
    assert {"pck_crop@0.05", "pck_bbox@0.05", "AP", "AR"} <= set(m)
    # the reference's number belongs to the reference protocol only
    assert not any("_ref" in k for k in m)
    assert (out["protocol"], out["flip"], out["batch_size"]) == ("default", True, 16)
    assert out["instances"] == 8 and len(out["per_joint"]) == 17 and "left_wrist" in out["per_joint"]
    # larger thresholds can only admit more joints
    assert m["pck_crop@0.05"] <= m["pck_crop@0.1"] <= m["pck_crop@0.2"]
    assert m["pck_bbox@0.05"] <= m["pck_bbox@0.1"] <= m["pck_bbox@0.2"]
    # the pooled number is the per-joint counts pooled: all joints labelled in every image -> the joint mean
    pj = np.array(list(out["per_joint"].values()), dtype=float)
    assert m["pck_crop@0.05"] == pytest.approx(pj.mean())


def test_evaluate_refuses_data_of_another_schema(trained):
    mpii = SHARED / "mmpose-tests" / "mpii" / "test_mpii.json"
    with pytest.raises(DataError, match=r"test_mpii\.json: schema: .*checkpoint predicts 'coco'"):
        evaluate(trained, mpii, progress=False)


def test_corrupt_checkpoint_is_a_one_line_error_naming_it(tmp_path, capsys, dots):
    bad = tmp_path / "corrupt.ckpt"
    bad.write_bytes(trained_bytes := b"\x80\x02garbage" * 10)
    assert trained_bytes
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--checkpoint", str(bad), "--data", str(dots["val"])])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(bad) in err and "not a readable checkpoint" in err


def test_predict_images_with_detection_boxes(trained, tmp_path):
    dets = COCO / "test_coco_det_AP_H_56.json"
    images = sorted(COCO.glob("*.jpg"))
    result = predict(trained, [COCO], tmp_path, detections=dets, min_score=0.5, progress=False)
    assert result["frames"] == len(images) == 4
    rows = list(csv.reader((tmp_path / "images.csv").open()))
    assert rows[0][0] == "scorer" and rows[1][0] == "individuals" and rows[3][1:4] == ["x", "y", "likelihood"]
    assert len(rows) == 4 + 4  # 4 header rows, one row per image
    # the scorer names the model (network, experiment, run folder), not the checkpoint's "best"
    cfg = torch.load(trained, weights_only=False, map_location="cpu")["config"]
    expected = f"animalpose_{cfg['model']['name']}_{cfg['tracking']['experiment']}_{trained.parent.name}-best"
    assert trained.name == "best.ckpt" and set(rows[0][1:]) == {expected}
    results = json.loads((tmp_path / "images.json").read_text())
    n_boxes = sum(1 for d in json.loads(dets.read_text()) if d["score"] >= 0.5 and d["category_id"] == 1)
    assert len(results) == n_boxes and {r["image_id"] for r in results} <= {785, 40083, 196141, 197388}
    kp = np.array(results[0]["keypoints"]).reshape(17, 3)
    assert np.all((kp[:, 2] >= 0) & (kp[:, 2] <= 1))
    assert len(list((tmp_path / "labelled").glob("*.png"))) == 4


def test_scorer_names_the_model_not_the_checkpoint_file():
    from types import SimpleNamespace as N

    cfg = N(model=N(name="hourglass1"), tracking=N(experiment="dlc-mirror"))
    assert scorer_name("runs/x/adapt_ccssl/final.ckpt", cfg) == "animalpose_hourglass1_dlc-mirror_adapt_ccssl-final"
    assert scorer_name("runs/x/train/last.ckpt", cfg) == "animalpose_hourglass1_dlc-mirror_train-last"
    assert scorer_name("a/b/round_2.ckpt", cfg) == "animalpose_hourglass1_dlc-mirror_b-round_2"
    # a name the user chose is kept; a comma or a space would break the CSV header's cells
    assert scorer_name("/m/mouse v2,final.ckpt", cfg) == "animalpose_hourglass1_dlc-mirror_mouse-v2-final"
    assert scorer_name("best.ckpt", N(model=N(name="hrnet_w32"), tracking=N(experiment="horse"))) == \
        "animalpose_hrnet_w32_horse_best"  # no folder to name it by


def test_undecodable_video_fails_before_work(trained, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    with pytest.raises(DataError, match=r"broken\.mp4: video: cannot decode"):
        predict(trained, [COCO / "000000000785.jpg", bad], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="no such file"):
        predict(trained, [tmp_path / "missing.png"], tmp_path / "out", progress=False)


@pytest.mark.slow
def test_predict_on_the_sleap_clip_writes_1500_frames(trained, tmp_path):
    result = predict(trained, [CLIP], tmp_path, video_scale=0.25, batch_size=64, progress=False)
    assert result["frames"] == 1500
    rows = list(csv.reader((tmp_path / "clip.csv").open()))
    assert len(rows) == 3 + 1500 and rows[3][0] == "0" and rows[-1][0] == "1499"
    cap = cv2.VideoCapture(str(tmp_path / "clip_labelled.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 1500
    joints = torch.load(trained, weights_only=False, map_location="cpu")["schema"]["joints"]
    panel = legend_width(256, joints)
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 256 + panel + panel % 2  # the legend beside the frame
    cap.release()
    assert len(json.loads((tmp_path / "clip.json").read_text())) == 1500


def test_evaluate_takes_the_trainers_worker_choice_and_scores_the_same(trained, dots, monkeypatch):
    """Without ``workers`` the loader asks the thread plan for the device (issue 30: evaluation decoded every
    image in the main process, also on a GPU); the scores do not depend on the worker count."""
    import animalpose.engine.evaluate as ev

    asked = []

    def plan(configured, device=None):
        asked.append((configured, str(device)))
        return 1

    monkeypatch.setattr(ev, "loader_workers", plan)
    with_worker = evaluate(trained, dots["val"], progress=False)
    assert asked == [(None, "cpu")]
    monkeypatch.undo()
    in_process = evaluate(trained, dots["val"], progress=False, workers=0)
    assert with_worker["metrics"] == in_process["metrics"] and with_worker["instances"] == in_process["instances"] == 8
