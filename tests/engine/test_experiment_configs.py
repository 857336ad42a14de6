"""The engine's experiment configs load, follow their papers, and build their models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from animalpose.config import load_config
from animalpose.engine.build import make_model
from animalpose.keypoints import load_schema

EXPERIMENTS = Path(__file__).resolve().parents[2] / "configs" / "experiments"


@pytest.mark.parametrize(("name", "model", "milestones", "epochs"), [
    ("simplebaseline_coco", "simplebaseline50", [90, 120], 140),
    ("hrnet_coco", "hrnet_w32", [170, 200], 210),
])
def test_coco_experiments(name, model, milestones, epochs):
    cfg = load_config(EXPERIMENTS / f"{name}.yaml")
    assert cfg.model.name == model and cfg.train.optimizer == "adam" and cfg.train.lr == 1e-3
    assert cfg.train.milestones == milestones and cfg.train.epochs == epochs
    assert tuple(cfg.data.input_size) == (192, 256) and tuple(cfg.data.heatmap_size) == (48, 64)
    with torch.device("meta"):
        net = make_model(cfg, load_schema("coco"))
        (out,) = net(torch.zeros(1, 3, 256, 192))[-1:]
    assert tuple(out.shape) == (1, 17, 64, 48)


def test_ccssl_paper_setting():
    cfg = load_config(EXPERIMENTS / "ccssl_paper.yaml")
    assert cfg.model.name == "hourglass4" and cfg.train.optimizer == "rmsprop" and cfg.train.lr == 2.5e-4
    assert cfg.train.batch_size == 6 and cfg.train.milestones == [60, 90] and cfg.codec.sigma == 1.0


def test_quick_synthetic_names_its_missing_data(tmp_path):
    from animalpose.errors import ConfigError

    if (EXPERIMENTS / "../../data/synth/horse-train").resolve().exists():
        pytest.skip("the quick data has been generated here")
    with pytest.raises(ConfigError, match=r"data\.train"):
        load_config(EXPERIMENTS / "quick_synthetic.yaml")
