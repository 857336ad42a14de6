"""Config → engine objects: augmentation ranges mapped onto presets, model width, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from animalpose.config import parse_config
from animalpose.engine.build import augment_overrides, make_model
from animalpose.errors import ConfigError
from animalpose.keypoints import load_schema


def test_reference_ranges_map_onto_the_hourglass_preset_defaults():
    # pytorch-pose: scale clamp(N(1, 0.25), 0.75, 1.25), rotation clamp(N(0, 30), ±60)
    cfg = parse_config({"augment": {"preset": "hourglass", "rotation": 60, "scale": [0.75, 1.25], "flip_prob": 0}})
    assert augment_overrides(cfg) == {"flip_prob": 0.0, "rotation_sigma": 30.0, "scale_sigma": 0.25}
    hr = parse_config({"augment": {"preset": "hrnet", "rotation": 90, "scale": [0.65, 1.35], "half_body": False}})
    assert augment_overrides(hr) == pytest.approx({"rotation_factor": 45.0, "scale_factor": 0.35,
                                                   "half_body_prob": 0.0})
    strong = parse_config({"augment": {"preset": "strong", "scale": [0.5, 1.5], "rotation": 30}})
    assert augment_overrides(strong) == {"scale_range": (0.5, 1.5), "rotation": 30}
    with pytest.raises(ConfigError, match=r"augment\.color"):
        augment_overrides(parse_config({"augment": {"preset": "strong", "color": [0.8, 1.2]}}))


def test_translate_reaches_every_preset_that_shifts():
    """``augment.translate`` (a fraction of the crop) is the same field in the three presets that shift; the plain
    crop has nothing to shift and says so."""
    for preset in ("hourglass", "hrnet", "strong"):
        assert augment_overrides(parse_config({"augment": {"preset": preset, "translate": 0.1}})) == {"translate": 0.1}
    with pytest.raises(ConfigError, match=r"augment\.translate"):
        augment_overrides(parse_config({"augment": {"preset": "none", "translate": 0.1}}))
    with pytest.raises(ConfigError, match="translate"):
        parse_config({"augment": {"translate": 1.5}})


def test_model_width_and_joint_checks():
    cfg = parse_config({"model": {"name": "hourglass1", "channels": 32}, "data": {"input_size": [64, 64],
                                                                                   "heatmap_size": [16, 16]}})
    model = make_model(cfg, load_schema("tigdog"))
    assert model.num_joints == 18 and model.net.hg[0] is not None
    with pytest.raises(ConfigError, match="num_joints"):
        make_model(parse_config({"model": {"name": "hourglass1", "num_joints": 17}}), load_schema("tigdog"))


MOUSE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "mirror-mouse"


def test_a_header_schema_reaches_the_val_sets(tmp_path):
    """A DLC project's schema comes from its CSV header (``dlc:mirror-mouse``, no file under configs/keypoints):
    the val sets must get it as the object. ``load_records`` used to look its name up among the shipped
    schema files ("unknown keypoint schema 'dlc:mirror-mouse'")."""
    if not MOUSE.is_dir():
        pytest.skip(f"real data not found at {MOUSE}")
    from animalpose.data.readers import read_dataset
    from animalpose.data.subset import write_subset
    from animalpose.engine.build import build_data

    ds = read_dataset(MOUSE / "CollectedData.csv")
    schema = ds.meta["schema_def"]
    train, _ = write_subset(ds.records, tmp_path / "train.json", schema, "img01", "img60")
    val, n_val = write_subset(ds.records, tmp_path / "val.json", schema, "img61", "img90")
    # the subsets name the project's images by absolute path: read with the containment opt-in
    cfg = parse_config({"data": {"train": [str(train)], "val": [str(val), str(MOUSE / "CollectedData.csv")],
                                 "input_size": [64, 64], "heatmap_size": [16, 16], "workers": 0,
                                 "allow_outside_root": True},
                        "augment": {"preset": "none"}})
    data = build_data(cfg)
    assert data.schema.name == "dlc:mirror-mouse" and data.schema.num_joints == 17
    assert sorted(data.val) == ["CollectedData", "val"]
    assert len(data.val["val"]) == n_val == 30
    assert all(v.schema == data.schema for v in data.val.values())
    # a val set may also name the train set's header schema when only it is labelled (val only, no train)
    only_val = build_data(parse_config({"data": {"val": [str(val)], "input_size": [64, 64],
                                                 "heatmap_size": [16, 16], "workers": 0,
                                                 "allow_outside_root": True}}), train=False)
    assert only_val.schema.joints == data.schema.joints
