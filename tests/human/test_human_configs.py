"""The human-pose experiment configs: COCO 256×192 with DARK / UDP codecs, MPII 256×256 hourglass.

Each file loads, keeps its paper's recipe, builds its model (on the meta device: no memory) and its
codec, and the codec kind switches by a ``codec.kind=...`` override on any of them.
(simplebaseline_coco.yaml and hrnet_coco.yaml themselves are checked in tests/engine.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from animalpose.codecs import DarkCodec, MSRAHeatmapCodec, UDPHeatmapCodec
from animalpose.config import load_config
from animalpose.engine.build import make_codec, make_model
from animalpose.engine.inference import flip_shift_for
from animalpose.engine.trainer import build_optimizer, lr_factor
from animalpose.errors import ConfigError
from animalpose.keypoints import load_schema

EXPERIMENTS = Path(__file__).resolve().parents[2] / "configs" / "experiments"
CODEC_CLASSES = {"gaussian": MSRAHeatmapCodec, "dark": DarkCodec, "udp": UDPHeatmapCodec}


@pytest.mark.parametrize(("name", "base", "kind"), [
    ("simplebaseline_coco_dark", "simplebaseline_coco", "dark"),
    ("simplebaseline_coco_udp", "simplebaseline_coco", "udp"),
    ("hrnet_coco_dark", "hrnet_coco", "dark"),
    ("hrnet_coco_udp", "hrnet_coco", "udp"),
])
def test_coco_codec_variants_are_their_base_recipe_with_another_codec(name, base, kind):
    cfg = load_config(EXPERIMENTS / f"{name}.yaml")
    ref = load_config(EXPERIMENTS / f"{base}.yaml")
    assert cfg.codec.kind == kind and ref.codec.kind == "gaussian"
    # everything but the codec kind and the MLflow experiment name is the base file's
    assert cfg.model == ref.model and cfg.data == ref.data and cfg.train == ref.train
    assert cfg.augment == ref.augment and cfg.codec.sigma == ref.codec.sigma == 2.0
    assert cfg.tracking.experiment == f"{ref.tracking.experiment}-{kind}"
    codec = make_codec(cfg)
    assert type(codec) is CODEC_CLASSES[kind]
    # UDP's flip test needs no 1-px shift; DARK keeps the MSRA shift
    assert flip_shift_for(cfg.model.name, kind) is (kind != "udp")


def test_half_body_recipe_of_the_coco_files():
    sb = load_config(EXPERIMENTS / "simplebaseline_coco.yaml")
    hr = load_config(EXPERIMENTS / "hrnet_coco.yaml")
    assert sb.augment.preset == "simplebaseline" and hr.augment.preset == "hrnet"
    assert sb.train.flip_test and hr.train.flip_test
    # Adam 1e-3, x0.1 at 90/120 of 140 (SimpleBaseline) and at 170/200 of 210 (HRNet)
    spe = 100  # steps per epoch, any
    assert [lr_factor(e * spe, sb, spe) for e in (0, 89, 90, 119, 120, 139)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])
    assert [lr_factor(e * spe, hr, spe) for e in (169, 170, 200, 209)] == pytest.approx([1, 0.1, 0.01, 0.01])


@pytest.mark.parametrize("kind", ["gaussian", "dark", "udp", "soft_argmax"])
@pytest.mark.parametrize("name", ["simplebaseline_coco", "hrnet_coco", "mpii_hourglass"])
def test_codec_kind_switches_by_override(name, kind):
    cfg = load_config(EXPERIMENTS / f"{name}.yaml", overrides=[f"codec.kind={kind}"])
    assert cfg.codec.kind == kind
    codec = make_codec(cfg)
    assert type(codec).__name__ == {"gaussian": "MSRAHeatmapCodec", "dark": "DarkCodec", "udp": "UDPHeatmapCodec",
                                    "soft_argmax": "SoftArgmaxCodec"}[kind]
    w, h = cfg.data.heatmap_size
    heatmaps, weights = codec.encode(np.array([[w * 2.0, h * 2.0, 2.0]]))
    assert heatmaps.shape[-2:] == (h, w) and weights.tolist() == [1.0]


def test_unknown_codec_override_names_the_key():
    with pytest.raises(ConfigError, match=r"codec\.kind"):
        load_config(EXPERIMENTS / "simplebaseline_coco_dark.yaml", overrides=["codec.kind=darkk"])


def test_mpii_hourglass_follows_newell_and_builds():
    cfg = load_config(EXPERIMENTS / "mpii_hourglass.yaml")
    assert cfg.data.schema_name == "mpii" and cfg.data.format == "mpii"
    assert tuple(cfg.data.input_size) == (256, 256) and tuple(cfg.data.heatmap_size) == (64, 64)
    assert cfg.codec.kind == "gaussian" and cfg.codec.sigma == 1.0 and cfg.train.flip_test
    # RMSprop 2.5e-4, dropped once by a factor of 5
    assert cfg.train.optimizer == "rmsprop" and cfg.train.lr == 2.5e-4
    assert [lr_factor(e * 10, cfg, 10) for e in (0, 74, 75, 99)] == pytest.approx([1, 1, 0.2, 0.2])
    schema = load_schema("mpii")
    with torch.device("meta"):
        net = make_model(cfg, schema)
        outs = net(torch.zeros(1, 3, 256, 256))
        opt = build_optimizer(cfg, net.parameters())
    assert isinstance(opt, torch.optim.RMSprop) and opt.defaults["lr"] == 2.5e-4
    # eight stacks, each supervised: eight (1, 16, 64, 64) heatmap outputs
    assert [tuple(o.shape) for o in outs] == [(1, 16, 64, 64)] * 8
    assert type(make_codec(cfg)) is MSRAHeatmapCodec
    assert not flip_shift_for(cfg.model.name, cfg.codec.kind)  # pytorch-pose's flip_back: no shift


def test_mpii_hourglass_refuses_coco_joints():
    with pytest.raises(ConfigError, match=r"model\.num_joints"):
        load_config(EXPERIMENTS / "mpii_hourglass.yaml", overrides=["data.schema=coco"])


REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "mmpose-tests"


@pytest.mark.parametrize(("name", "data", "image", "target"), [
    ("mpii_hourglass", REAL / "mpii" / "test_mpii.json", (3, 256, 256), (16, 64, 64)),
    ("simplebaseline_coco_udp", REAL / "coco" / "test_coco.json", (3, 256, 192), (17, 64, 48)),
])
def test_configs_build_their_data_from_the_real_fixtures(name, data, image, target):
    from animalpose.engine.build import build_data

    cfg = load_config(EXPERIMENTS / f"{name}.yaml", overrides=[f"data.train=[{data}]", f"data.val=[{data}]",
                                                                "data.workers=0"])
    bundle = build_data(cfg)
    sample = bundle.train[0]
    assert tuple(sample["image"].shape) == image and tuple(sample["target"].shape) == target
    plain = next(iter(bundle.val.values()))[0]
    assert float(plain["target_weight"].sum()) == float((plain["meta"]["keypoints"][:, 2] > 0).sum())
