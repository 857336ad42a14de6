"""Crop padding per source dataset (issue 29): a training list that mixes generated and photographed files
crops each record at its own file's padding (generated 1.25, photographed 1.5), where it used to crop every
record at the last file's; single-source runs are unchanged. Checked by the crop's box size, by hand."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from animalpose.config import parse_config
from animalpose.data.coco_writer import write_coco
from animalpose.data.records import PoseRecord

SIZE, BOX = 64, (16.0, 8.0, 32.0, 24.0)  # x, y, w, h: at a square crop the box is 32 px wide and high
# the side of the cropped square in image pixels: max(32, 24) x padding
GENERATED_SIDE, REAL_SIDE = 32 * 1.25, 32 * 1.5  # 40 and 48 px


def _write(root: Path, name: str, n: int, generated: bool, schema: str = "coco", joints: int = 17) -> Path:
    """``n`` 64-px images with ``joints`` labelled points inside BOX; ``generated``: the records carry our
    generator's ``factors`` (what makes a COCO file generated data)."""
    rng = np.random.default_rng(len(name))
    (root / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        path = root / "images" / f"{name}_{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8))
        kp = np.zeros((joints, 3), np.float32)
        kp[:, 0], kp[:, 1], kp[:, 2] = rng.uniform(17, 47, joints), rng.uniform(9, 31, joints), 2
        meta = {"factors": {"species": "horse"}} if generated else {}
        records.append(PoseRecord(str(path), kp, schema, bbox=BOX, image_size=(SIZE, SIZE), image_id=i + 1,
                                  meta=meta))
    return write_coco(records, root / f"{name}.json", schema)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed_padding")
    return {"generated": _write(root, "generated", 2, True), "real": _write(root, "real", 3, False)}


def _config(train: list[Path], **data):
    return parse_config({"data": {"train": [str(p) for p in train], "schema": "coco", "input_size": [SIZE, SIZE],
                                  "heatmap_size": [16, 16], "workers": 0, **data},
                         "augment": {"preset": "none"}})


def _crop_side(dataset, index: int) -> float:
    """The side, in image pixels, of the square the crop of sample ``index`` covers: its affine maps image
    pixels to crop pixels at (W - udp) / side (transforms.crop_matrix)."""
    sample = dataset[index]
    m = np.asarray(sample["meta"]["matrix"], np.float64)
    assert m[0, 1] == pytest.approx(0.0) and m[0, 0] == pytest.approx(m[1, 1])  # no rotation, square
    return (SIZE - dataset.udp) / m[0, 0]


@pytest.mark.parametrize("order", [("real", "generated"), ("generated", "real")])
def test_a_mixed_training_list_crops_each_record_at_its_own_files_padding(files, order):
    from animalpose.engine.build import build_data

    data = build_data(_config([files[k] for k in order]))
    train = data.train
    generated = [is_gen for k in order for is_gen in [k == "generated"] * (2 if k == "generated" else 3)]
    assert len(train) == 5
    for i, is_generated in enumerate(generated):
        side = _crop_side(train, i)
        assert side == pytest.approx(GENERATED_SIDE if is_generated else REAL_SIDE), (order, i)
        # the crop is centred on the box: its centre maps to the crop's centre
        m = np.asarray(train[i]["meta"]["matrix"])
        centre = m @ np.array([BOX[0] + BOX[2] / 2, BOX[1] + BOX[3] / 2, 1.0])
        assert centre == pytest.approx([(SIZE - train.udp) / 2] * 2)


def test_the_paddings_follow_the_config_and_single_source_runs_are_unchanged(files):
    from animalpose.data.dataset import TopDownDataset
    from animalpose.engine.build import build_data, load_records

    cfg = _config([files["real"], files["generated"]], bbox_padding_real=2.0, bbox_padding_synthetic=1.0)
    train = build_data(cfg).train
    assert [round(_crop_side(train, i), 6) for i in range(5)] == [64.0, 64.0, 64.0, 32.0, 32.0]
    for key, side in (("real", REAL_SIDE), ("generated", GENERATED_SIDE)):
        cfg = _config([files[key]])
        records, schema, padding = load_records([files[key]], cfg, "coco")
        assert padding == side / 32 and {r.padding for r in records} == {padding}
        # a record's own padding equals the dataset's: the samples are those of records without one, bit for bit
        ds = build_data(cfg).train
        plain = TopDownDataset([replace(r, padding=None) for r in records], schema, ds.codec,
                               None, padding=padding, normalization=ds.normalization)
        for i in range(len(records)):
            a, b = ds[i], plain[i]
            assert np.array_equal(a["meta"]["matrix"], b["meta"]["matrix"]) and bool((a["image"] == b["image"]).all())


def test_unlabelled_target_files_keep_their_own_padding(files, tmp_path):
    """WS-CDA's and CC-SSL's target readers: each target record carries its own file's padding."""
    from animalpose.adapt.ccssl import _read_target
    from animalpose.adapt.wscda.datasets import read_unlabelled
    from animalpose.keypoints import load_schema

    cfg = _config([files["real"]])
    records, truth, _ = read_unlabelled([files["generated"], files["real"]], load_schema("coco"), cfg)
    assert [r.padding for r in records] == [1.25, 1.25, 1.5, 1.5, 1.5]
    assert truth is not None and not any(r.labelled.any() for r in records)  # labels kept aside, not in records
    records, padding = _read_target([files["real"], files["generated"]], load_schema("coco"), cfg)
    assert [r.padding for r in records] == [1.5, 1.5, 1.5, 1.25, 1.25] and padding == 1.25


def test_the_wscda_streams_crop_generated_and_photographed_animals_apart(tmp_path):
    """The synthetic arm's labelled animals (photographed cows beside generated horses) in a WSCDARun: the few
    labelled stream crops the cows at 1.5 and the horses at 1.25, the generated humans at 1.25, the
    photographed target at 1.5; ``crops`` records it, and a folder recorded otherwise is refused."""
    from animalpose.adapt.wscda.datasets import crops_mismatch, source_crops
    from animalpose.adapt.wscda.run import WSCDAConfig, WSCDARun
    from animalpose.errors import ConfigError

    humans = _write(tmp_path / "h", "humans", 2, True)
    horses = _write(tmp_path / "g", "horses", 2, True, "animalpose", 20)
    cows = _write(tmp_path / "c", "cows", 2, False, "animalpose", 20)
    target = _write(tmp_path / "t", "target", 2, False, "animalpose", 20)
    raw = {"data": {"train": [str(cows), str(horses)], "target": [str(target)], "schema": "animalpose",
                    "input_size": [SIZE, SIZE], "heatmap_size": [16, 16], "workers": 0},
           "model": {"name": "simplebaseline18"}, "augment": {"preset": "none"},
           "train": {"batch_size": 2, "device": "cpu", "epochs": 1}, "tracking": {"enabled": False},
           "wscda": {"human": [str(humans)], "labelled_per_species": None, "discriminator_hidden": 8}}
    cfg = parse_config(raw, WSCDAConfig)
    run = WSCDARun(cfg, tmp_path / "run", progress=False)
    few = run.few_set
    sides = {("generated" if "factors" in r.meta else "real"): round(_crop_side(few, i), 6)
             for i, r in enumerate(few.records)}
    assert sides == {"real": REAL_SIDE, "generated": GENERATED_SIDE}
    assert round(_crop_side(run.human_set, 0), 6) == GENERATED_SIDE
    assert round(_crop_side(run.target_plain, 0), 6) == REAL_SIDE
    expected = {"human": [1.25], "animals": [1.25, 1.5], "target": [1.5]}
    assert run.crops == expected == source_crops(cfg)
    # a folder with a finished step and no crops record (trained before per-source padding) mixed its animals
    # at one padding: refused; with this record it resumes
    state = tmp_path / "run" / "state.json"
    state.write_text(json.dumps({"stages": ["wscda"], "rounds": [], "wscda": {}}))
    with pytest.raises(ConfigError, match=r"state\.json.*crops.*before per-source crop padding"):
        WSCDARun(cfg, tmp_path / "run", progress=False)
    state.write_text(json.dumps({"stages": ["wscda"], "rounds": [], "wscda": {}, "crops": expected}))
    assert WSCDARun(cfg, tmp_path / "run", progress=False).crops == expected
    # by hand: a single-padding stream was cropped the same way before; a recorded change is named
    assert crops_mismatch(None, {"human": [1.25], "animals": [1.5]}) is None
    assert "now" in crops_mismatch({"animals": [1.25]}, {"animals": [1.25, 1.5]})
