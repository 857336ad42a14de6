"""`animalpose data check`: counts on the real fixtures, JSON output, exit codes on bad data."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from animalpose.cli import app, main

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"shared real-data fixtures not found at {REAL}")
runner = CliRunner()


def check_json(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["data", "check", *args, "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


@needs_real
def test_coco_fixture_counts():
    code, out = check_json(str(REAL / "mmpose-tests" / "coco"))
    assert code == 0
    assert (out["format"], out["schema"], out["num_images"], out["num_instances"]) == ("coco", "coco", 4, 14)
    ann = json.loads((REAL / "mmpose-tests" / "coco" / "test_coco.json").read_text())["annotations"]
    labelled = sum(1 for a in ann for v in a["keypoints"][2::3] if v > 0)
    assert out["num_keypoints_labelled"] == labelled == sum(out["per_joint_labelled"].values())
    assert out["errors"] == []
    assert sum(out["image_sizes"].values()) == 4


@needs_real
def test_mirror_mouse_counts_and_video():
    code, out = check_json(str(REAL / "mirror-mouse"))
    assert code == 0
    assert (out["format"], out["num_images"], out["num_instances"], out["num_joints"]) == ("dlc", 90, 90, 17)
    assert len(out["per_joint_labelled"]) == 17
    assert [(Path(v["path"]).name, v["frames"]) for v in out["videos"]] == [("test_vid.mp4", 994)]


@needs_real
def test_sleap_clip_counts():
    code, out = check_json(str(REAL / "sleap-clip"), "--format", "slp")
    assert code == 0
    assert (out["num_images"], out["num_instances"], out["num_joints"]) == (1500, 3000, 13)
    assert [(Path(v["path"]).name, v["frames"], v["labelled_frames"]) for v in out["videos"]] == [
        ("clip.mp4", 1500, 1500)]


@needs_real
def test_text_summary():
    result = runner.invoke(app, ["data", "check", str(REAL / "mmpose-tests" / "mpii")])
    assert result.exit_code == 0
    assert "images 5  instances 5" in result.stdout and "ok, 0 warnings" in result.stdout


def test_bad_dataset_exits_non_zero_with_every_error(tmp_path):
    images, anns = [], []
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((20, 30, 3), np.uint8))
        images.append({"id": i, "file_name": f"{i}.png"})
        anns.append({"image_id": i, "keypoints": [5, 5, 2] * 20, "bbox": [0, 0, 10, 10]})
    anns[0]["keypoints"][0] = float("nan")
    anns[1]["keypoints"] = [5, 5, 2] * 19
    (tmp_path / "2.png").unlink()
    (tmp_path / "ann.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": []}))
    code, out = check_json(str(tmp_path), "--schema", "animalpose")
    assert code == 1
    assert out["schema"] == "animalpose"
    assert sorted((Path(e["file"]).name, e["field"]) for e in out["errors"]) == [
        ("2.png", "images[2].file_name"),
        ("ann.json", "annotations[0].keypoints[0]"),
        ("ann.json", "annotations[1].keypoints"),
    ]
    text = runner.invoke(app, ["data", "check", str(tmp_path), "--schema", "animalpose"])
    assert text.exit_code == 1 and "3 errors" in text.stdout


def test_malformed_json_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "x.json"
    path.write_text('{"images": [}')
    with pytest.raises(SystemExit) as exc:
        main(["data", "check", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(path) in err and "malformed JSON" in err


@pytest.mark.slow
@needs_real
def test_decode_whole_video():
    code, out = check_json(str(REAL / "sleap-clip"), "--decode-video")
    assert code == 0 and out["videos"][0]["frames_decoded"] == 1500


@needs_real
def test_animalpose_release_species_and_split():
    release = REAL / "animal-pose"
    code, out = check_json(str(release), "--category", "horse", "--split-file", str(release / "splits.json"),
                           "--split", "train")
    assert code == 0 and out["errors"] == [] and out["format"] == "animalpose-release"
    train_ids = set(json.loads((release / "splits.json").read_text())["horse"]["train"])
    ann = json.loads((release / "keypoints.json").read_text())["annotations"]
    animals = sum(1 for a in ann if a["category_id"] == 4 and a["image_id"] in train_ids)  # 4: horse
    assert out["categories"] == {"horse": {"images": 453, "instances": animals}}
    assert out["splits"] == {"train": animals}
    # boxes read as [xmin, ymin, xmax, ymax]: none reported outside its image (4,793 were with [x, y, w, h])
    code, out = check_json(str(release), "--format", "coco", "--category", "horse")
    assert code == 1 and any("extends outside" in e["message"] for e in out["errors"])
