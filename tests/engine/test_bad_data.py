"""Nothing silently wrong: every corrupt-input family is the same error in `data check`, `train`,
`evaluate` and CC-SSL's target reading (file and field named, non-zero exit, before any work), and
``data.skip_bad=true`` skips the bad records and records them (summary.json, JSON output, MLflow)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from animalpose.cli import app, main
from animalpose.config import parse_config
from animalpose.data.readers import dataset_schema, read_dataset
from animalpose.data.validate import validate_dataset
from animalpose.errors import DataError

SIZE = 64
N = 4


def _doc(root: Path) -> dict:
    """A valid 4-image COCO-keypoints dataset (17 joints, one instance per image) under ``root``."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(N):
        img = rng.integers(0, 255, size=(SIZE, SIZE, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "images" / f"im{i}.png"), img)
        kp = np.zeros((17, 3))
        kp[:, :2] = rng.uniform(6, SIZE - 6, size=(17, 2))
        kp[:, 2] = 2
        images.append({"id": i + 1, "file_name": f"im{i}.png", "width": SIZE, "height": SIZE})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [0, 0, SIZE, SIZE],
                     "keypoints": [round(float(v), 2) for v in kp.reshape(-1)], "num_keypoints": 17})
    from animalpose.keypoints import load_schema

    coco = load_schema("coco")
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": list(coco.joints)}]}


def _write(root: Path, doc: dict) -> Path:
    path = root / "annotations" / "data.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _set_kp(doc: dict, ann: int, value_index: int, value) -> None:
    doc["annotations"][ann]["keypoints"][value_index] = value


def _string_ids(doc: dict) -> None:
    doc["images"][1]["id"] = "im1"
    doc["annotations"][1]["image_id"] = "im1"


def _truncate(root: Path) -> None:
    p = root / "images" / "im1.png"
    p.write_bytes(p.read_bytes()[:300])


# family -> (mutate the JSON doc, mutate the files, file the error names (relative to root), field regex,
#            records skipped by data.skip_bad or None when skipping cannot help)
Mutation = Callable[[dict], None]
CASES: dict[str, tuple[Mutation, Callable[[Path], None] | None, str, str, int | None]] = {
    "nan_coords": (lambda d: _set_kp(d, 1, 6, None), None, "annotations/data.json",
                   r"annotations\[1\]\.keypoints\[2\]", 1),
    "visibility_out_of_range": (lambda d: _set_kp(d, 1, 2, 5), None, "annotations/data.json",
                                r"annotations\[1\]\.keypoints\[0\]", 1),
    "zero_size_box": (lambda d: d["annotations"][1].update(bbox=[10, 10, 0, 20]), None, "annotations/data.json",
                      r"annotations\[1\]\.bbox", 1),
    "visible_point_outside_image": (lambda d: _set_kp(d, 1, 0, 3 * SIZE), None, "annotations/data.json",
                                    r"annotations\[1\]\.keypoints\[0\]", 1),
    "all_nan_training_set": (lambda d: [a.update(keypoints=[None, None, 2] * 17) for a in d["annotations"]], None,
                             "annotations/data.json", r"annotations\[0\]\.keypoints\[0\]", None),
    "string_image_ids": (_string_ids, None, "annotations/data.json", r"annotations\[1\]\.image_id", 1),
    "duplicate_annotation_ids": (lambda d: d["annotations"][2].update(id=2), None, "annotations/data.json",
                                 r"annotations\[2\]\.id", 1),
    "empty_annotation_list": (lambda d: d.update(annotations=[]), None, "annotations/data.json",
                              r"^annotations$", None),
    "missing_image": (lambda d: None, lambda root: (root / "images" / "im1.png").unlink(), "images/im1.png",
                      r"images\[1\]\.file_name", 1),
    "truncated_image": (lambda d: None, _truncate, "images/im1.png", r"^image$", 1),
}


def _bad_dataset(root: Path, family: str) -> tuple[Path, str, str]:
    """Write the dataset of ``family``; returns (annotation file, file the error must name, field regex)."""
    mutate, files, named, field, _ = CASES[family]
    doc = _doc(root)
    mutate(doc)
    path = _write(root, doc)
    if files is not None:
        files(root)
    return path, str(root / named), field


@pytest.mark.parametrize("family", list(CASES))
def test_validation_names_file_and_field(family, tmp_path):
    path, named, field = _bad_dataset(tmp_path, family)
    ds = read_dataset(path)
    with pytest.raises(DataError) as err:
        validate_dataset(ds, dataset_schema(ds))
    assert err.value.file == named
    assert re.search(field, err.value.field), err.value.field
    # the hint to skip is given where skipping can help (not for a dataset without instances)
    assert ("data.skip_bad=true" in str(err.value)) == (family != "empty_annotation_list")


@pytest.mark.parametrize("family", list(CASES))
def test_skip_bad_skips_and_records(family, tmp_path):
    path, named, _ = _bad_dataset(tmp_path, family)
    skipped = CASES[family][4]
    ds = read_dataset(path)
    if skipped is None:  # nothing valid is left: still an error
        with pytest.raises(DataError, match=r"no (valid|annotated) instances"):
            validate_dataset(ds, dataset_schema(ds), skip_bad=True)
        return
    checked = validate_dataset(ds, dataset_schema(ds), skip_bad=True)
    assert len(checked.records) == N - skipped
    assert checked.skipped.records == skipped and named in checked.skipped.files


@pytest.mark.parametrize("family", list(CASES))
def test_data_check_fails_naming_the_field(family, tmp_path):
    path, named, field = _bad_dataset(tmp_path, family)
    res = CliRunner().invoke(app, ["data", "check", str(path), "--json"])
    assert res.exit_code == 1, res.output
    errors = json.loads(res.output)["errors"]
    assert any(e["file"] == named and re.search(field, e["field"]) for e in errors), errors


def test_data_check_fails_for_a_dlc_header_without_rows(tmp_path):
    path = tmp_path / "CollectedData_me.csv"
    path.write_text("scorer,,,me,me\nbodyparts,,,nose,nose\ncoords,,,x,y\n")
    with pytest.raises(DataError) as err:
        ds = read_dataset(path)
        validate_dataset(ds, dataset_schema(ds))
    assert err.value.file == str(path) and err.value.field == "rows"
    res = CliRunner().invoke(app, ["data", "check", str(path), "--json"])
    assert res.exit_code == 1
    assert json.loads(res.output)["errors"][0] == {"file": str(path), "field": "rows",
                                                    "message": "no annotated instances"}


def _config_file(tmp_path: Path, train: Path, **data) -> Path:
    import yaml

    cfg = {"data": {"train": [str(train)], "val": [], "schema": "coco", "input_size": [SIZE, SIZE],
                    "heatmap_size": [16, 16], "workers": 0, **data},
           "model": {"name": "hourglass1", "channels": 32}, "codec": {"sigma": 1.0},
           "train": {"epochs": 1, "batch_size": 3, "device": "cpu", "select_on": "none"},
           "tracking": {"enabled": False, "experiment": "bad-data"}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("family", list(CASES))
def test_train_stops_before_any_work(family, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ANIMALPOSE_HOME", str(tmp_path / "home"))
    path, named, field = _bad_dataset(tmp_path / "data", family)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", str(_config_file(tmp_path, path)), "--out", str(out), "--no-progress"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert re.match(rf"error: {re.escape(named)}: {field.strip('^$')}: ", err), err
    assert not out.exists()  # nothing was written: no checkpoint, no model


def test_train_with_skip_bad_records_what_it_skipped(tmp_path, monkeypatch):
    """One NaN instance of four: trains on three; summary.json, the JSON line and MLflow say so."""
    monkeypatch.setenv("ANIMALPOSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path, named, _ = _bad_dataset(tmp_path / "data", "nan_coords")
    config = _config_file(tmp_path, path, skip_bad=True)
    raw = config.read_text().replace("enabled: false", "enabled: true")
    config.write_text(raw)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["train", "--config", str(config), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    line = json.loads(res.output.strip().splitlines()[-1])
    assert line["data_skipped"]["records"] == 1 and line["data_skipped"]["files"] == [named]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data_skipped"]["records"] == 1
    assert summary["data_skipped"]["problems"][0]["field"] == "annotations[1].keypoints[2]"
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("bad-data").experiment_id])
    assert run.data.metrics["data/skipped_records"] == 1
    assert run.data.params["data.skip_bad"] == "True"
    assert "data/skipped.json" in [a.path for a in client.list_artifacts(run.info.run_id, "data")]


@pytest.mark.parametrize("family", ["nan_coords", "zero_size_box", "truncated_image"])
def test_evaluate_stops_or_skips_and_reports(family, trained, tmp_path, capsys):
    path, named, field = _bad_dataset(tmp_path, family)
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--checkpoint", str(trained), "--data", str(path), "--device", "cpu", "--json"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert re.match(rf"error: {re.escape(named)}: {field.strip('^$')}: ", err), err
    assert "--skip-bad" in err
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(trained), "--data", str(path), "--device", "cpu",
                                   "--json", "--skip-bad"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.output)
    assert result["instances"] == N - 1
    assert result["skipped"]["records"] == 1 and result["skipped"]["files"] == [named]
    assert result["metrics"]["pck_crop@0.05"] is not None  # a number, not a silent null


def _ccssl_config(tmp_path: Path, train: Path, target: Path, **data):
    from animalpose.adapt.ccssl import CCSSLConfig

    raw = {"data": {"train": [str(train)], "target": [str(target)], "schema": "coco", "input_size": [SIZE, SIZE],
                    "heatmap_size": [16, 16], "workers": 0, **data},
           "model": {"name": "hourglass1", "channels": 32}, "tracking": {"enabled": False}}
    return parse_config(raw, CCSSLConfig)


@pytest.mark.parametrize("method", ["ccssl", "wscda"])
@pytest.mark.parametrize("family", ["missing_image", "truncated_image", "visibility_out_of_range"])
def test_adapt_target_is_validated(family, method, tmp_path):
    from animalpose.adapt.ccssl import _read_target
    from animalpose.adapt.wscda.datasets import read_unlabelled
    from animalpose.keypoints import load_schema

    read = _read_target if method == "ccssl" else read_unlabelled
    good = _write(tmp_path / "good", _doc(tmp_path / "good"))
    target, named, field = _bad_dataset(tmp_path / "target", family)
    with pytest.raises(DataError) as err:
        read([target], load_schema("coco"), _ccssl_config(tmp_path, good, target))
    assert err.value.file == named and re.search(field, err.value.field)
    records = read([target], load_schema("coco"), _ccssl_config(tmp_path, good, target, skip_bad=True))[0]
    assert len(records) == N - 1


def test_valid_data_passes_unchanged(tmp_path):
    path = _write(tmp_path, _doc(tmp_path))
    ds = read_dataset(path)
    checked = validate_dataset(ds, dataset_schema(ds))
    assert checked.records == ds.records and checked.skipped.records == 0 and not checked.skipped.problems


def test_bad_records_in_one_file_do_not_hide_problems_of_others(tmp_path):
    """The error lists every problem (the first in file/field, the others counted and quoted)."""
    doc = _doc(tmp_path)
    bad = copy.deepcopy(doc)
    _set_kp(bad, 0, 2, 7)
    bad["annotations"][3]["bbox"] = [0, 0, -1, 5]
    ds = read_dataset(_write(tmp_path, bad))
    with pytest.raises(DataError) as err:
        validate_dataset(ds, dataset_schema(ds))
    assert err.value.field == "annotations[0].keypoints[0]"
    assert [p.field for p in err.value.problems] == ["annotations[0].keypoints[0]", "annotations[3].bbox"]
    assert "and 1 more" in str(err.value) and "annotations[3].bbox" in str(err.value)


def _corrupt_pixels(root: Path) -> None:
    """Header and end marker intact (the up-front check passes), pixel data broken (decode fails)."""
    p = root / "images" / "im1.png"
    b = bytearray(p.read_bytes())
    i = b.index(b"IDAT")
    b[i + 20:i + 60] = bytes(x ^ 0xFF for x in b[i + 20:i + 60])
    p.write_bytes(bytes(b))


def test_evaluate_does_not_drop_an_undecodable_image_silently(trained, tmp_path, capsys):
    path = _write(tmp_path, _doc(tmp_path))
    _corrupt_pixels(tmp_path)
    image = str(tmp_path / "images" / "im1.png")
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--checkpoint", str(trained), "--data", str(path), "--device", "cpu", "--json"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {image}: image: 1 image(s)") and "--skip-bad" in err, err
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(trained), "--data", str(path), "--device", "cpu",
                                   "--json", "--skip-bad"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.output)
    assert result["instances"] == N - 1
    assert result["skipped"]["records"] == 1 and result["skipped"]["files"] == [image]


def test_train_records_an_image_that_does_not_decode(tmp_path, monkeypatch):
    """An image that passes the up-front check but does not decode is skipped by the loader: the JSON line,
    summary.json, the checkpoint (so a resume keeps it) and MLflow (data/skipped_images + its list) say so."""
    monkeypatch.setenv("ANIMALPOSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = _write(tmp_path / "data", _doc(tmp_path / "data"))
    _corrupt_pixels(tmp_path / "data")
    image = str(tmp_path / "data" / "images" / "im1.png")
    config = _config_file(tmp_path, path)
    # one batch of all four: the three readable images make a batch BatchNorm can train on
    config.write_text(config.read_text().replace("enabled: false", "enabled: true").replace("batch_size: 3",
                                                                                            "batch_size: 4"))
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["train", "--config", str(config), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    (skipped,) = json.loads(res.output.strip().splitlines()[-1])["images_skipped"]
    assert skipped["image"] == image and skipped["frame_index"] is None and "cannot decode" in skipped["reason"]
    assert json.loads((out / "summary.json").read_text())["images_skipped"] == [skipped]
    from animalpose.engine.checkpoint import load_checkpoint

    assert load_checkpoint(out / "last.ckpt")["extra"]["skipped_images"] == [skipped]
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("bad-data").experiment_id])
    assert run.data.metrics["data/skipped_images"] == 1
    assert "data/skipped_images.json" in [a.path for a in client.list_artifacts(run.info.run_id, "data")]


def test_collate_lists_skipped_images_once_each():
    import torch

    from animalpose.data.dataset import SkippedImages, SkippedSample, collate_skip

    bad = SkippedSample(3, "/d/a.png", None, "cannot decode image")
    assert not bad  # falsy: `if sample:` tells a sample from a skip
    batch = collate_skip([{"image": torch.zeros(1)}, bad, None])
    assert batch["skipped"] == 2 and batch["image"].shape == (1, 1)
    assert batch["skipped_images"] == [{"image": "/d/a.png", "frame_index": None, "reason": "cannot decode image"}]
    seen = SkippedImages()
    for b in (batch, batch, collate_skip([SkippedSample(0, "/d/v.mp4", 7, "frame 7 cut")])):
        seen.add(b)
    assert [(s["image"], s["frame_index"]) for s in seen.to_list()] == [("/d/a.png", None), ("/d/v.mp4", 7)]
    assert len(SkippedImages(seen.to_list())) == 2  # round-trips through a checkpoint / state.json


def test_ccssl_lists_target_images_pseudo_labelling_dropped():
    from animalpose.data.dataset import images_left_out
    from animalpose.data.records import PoseRecord

    def rec(image, frame=None):
        return PoseRecord(image, np.zeros((17, 3), np.float32), "coco", frame_index=frame)

    records = [rec("/t/a.png"), rec("/t/a.png"), rec("/t/b.png"), rec("/t/v.mp4", 3), rec("/t/v.mp4", 4)]
    labelled = [records[0], records[1], records[3]]
    missed = images_left_out(records, labelled, "pseudo-labelling")
    assert [(m["image"], m["frame_index"]) for m in missed] == [("/t/b.png", None), ("/t/v.mp4", 4)]
    assert all("did not decode" in m["reason"] for m in missed)
    assert images_left_out(records, records, "pseudo-labelling") == []
