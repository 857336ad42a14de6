"""Config → engine objects: augmentation ranges mapped onto presets, model width, errors."""

from __future__ import annotations

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


def test_model_width_and_joint_checks():
    cfg = parse_config({"model": {"name": "hourglass1", "channels": 32}, "data": {"input_size": [64, 64],
                                                                                   "heatmap_size": [16, 16]}})
    model = make_model(cfg, load_schema("tigdog"))
    assert model.num_joints == 18 and model.net.hg[0] is not None
    with pytest.raises(ConfigError, match="num_joints"):
        make_model(parse_config({"model": {"name": "hourglass1", "num_joints": 17}}), load_schema("tigdog"))
