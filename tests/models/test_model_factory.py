"""Factory: the listed variants, typed config validation, output shapes at 256×256 and 256×192."""

from __future__ import annotations

import pytest
import torch

from animalpose.errors import ConfigError
from animalpose.models.factory import MODELS, ModelConfig, build_model, build_model_from_config, model_info

# one variant per family on meta at both inputs in the default suite; every variant in the slow one
FAMILY_REPRESENTATIVES = ["hourglass4", "hourglass_quick", "pyranet_quick", "simplebaseline50", "hrnet_w32",
                          "lpn_quick", "grmi_quick"]


def _maps(name: str) -> int:
    """Output maps: K, or 3K for G-RMI's heatmaps + offsets."""
    with torch.device("meta"):
        return MODELS[name].num_joints * getattr(build_model(name).net, "channels_per_joint", 1)


def _shapes(name: str, h: int, w: int) -> list[tuple[int, ...]]:
    with torch.device("meta"):
        model = build_model(name)
        return [tuple(o.shape) for o in model(torch.zeros(1, 3, h, w))]


@pytest.mark.parametrize("name", FAMILY_REPRESENTATIVES)
def test_family_shapes_at_both_inputs(name):
    k = _maps(name)
    for h, w in [(256, 256), (256, 192)]:
        shapes = _shapes(name, h, w)
        assert shapes[-1] == (1, k, h // 4, w // 4)
        assert len(set(shapes)) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_every_listed_model_shapes_at_both_inputs(name):
    k = _maps(name)
    for h, w in [(256, 256), (256, 192)]:
        assert set(_shapes(name, h, w)) == {(1, k, h // 4, w // 4)}


def test_listing_names_and_required_variants():
    assert {"hourglass1", "hourglass2", "hourglass4", "hourglass8", "hourglass_quick", "pyranet"} <= set(MODELS)
    assert {"simplebaseline50", "hrnet_w32", "hrnet_w48"} <= set(MODELS)
    assert all(MODELS[f"hourglass{s}"].num_joints == 18 for s in (1, 2, 4, 8))


def test_model_info_hourglass4():
    info = model_info("hourglass4")
    assert info["params"] == 13_022_408 and info["input_size"] == [256, 256] and info["num_joints"] == 18
    assert info["outputs"] == [[1, 18, 64, 64]] * 4
    assert 10 < info["gflops"] < 20


def test_build_model_arguments_reach_head_and_architecture():
    with torch.device("meta"):
        m = build_model("hourglass2", 5, head="integral", beta=50.0, num_feats=16)
    assert m.head_codec == "integral" and m.head.beta == 50.0 and m.num_joints == 5
    assert m.net.score[0].in_channels == 32
    assert m.input_size == (256, 256)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "hourglass5"}, "model.name"),
        ({"name": "hourglass4", "head": "regression"}, "model.head"),
        ({"name": "hourglass4", "num_joints": 0}, "model.num_joints"),
        ({"name": "hourglass4", "input_size": (256, 200)}, "model.input_size"),
        ({"name": "hrnet_w32", "beta": -1}, "model.beta"),
    ],
)
def test_config_errors_name_file_and_field(data, field):
    with pytest.raises(ConfigError) as err:
        build_model_from_config(ModelConfig(**data), source="exp.yaml")
    assert err.value.file == "exp.yaml" and err.value.field == field


def test_unknown_architecture_keyword_is_config_error():
    with pytest.raises(ConfigError, match="num_stackz") as err:
        build_model_from_config(ModelConfig("hourglass_quick", arch={"num_stackz": 3}), source="exp.yaml")
    assert err.value.field == "model.arch"
