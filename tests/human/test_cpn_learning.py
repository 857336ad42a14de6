"""A learning test of CPN (slow): ``cpn_quick`` (ResNet-18 trunk from scratch, 64-channel pyramid,
GlobalNet L2 + RefineNet OHKM top-8, the loss the model carries) trained by the engine with the
quick_human.yaml settings (64×96 input, 16×24 DARK heatmaps σ = 2, Adam 1e-3, batch 8, augmentation
off) on 200 generated humans (``cad`` style, seed 0, COCO's 17 joints) for 5 epochs, scored by OKS AP
(pycocotools, flip test) on 60 held-out generated humans (seed 1), against the same network at
initialisation. Generated data only: not a COCO claim.

Stated numbers (deterministic CPU, 1 thread, about 60 s on the 2-core development machine): untrained
AP / AP50 0.000 / 0.000 (asserted < 0.01); trained 0.177 / 0.815 (asserted ≥ 0.10 / ≥ 0.55, margins of
10 and 55 AP points over the initialisation); training loss per epoch 2.218, 1.883, 1.729, 1.607, 1.505.
For comparison, quick_human's SimpleBaseline-18 in the same setting: 0.198 / 0.843
(tests/human/test_human_pipeline.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from animalpose.config import load_config
from animalpose.engine.build import build_data, make_model, pick_device
from animalpose.engine.evaluate import evaluate
from animalpose.engine.trainer import Trainer, seed_everything

pytestmark = pytest.mark.slow

QUICK_HUMAN = Path(__file__).resolve().parents[2] / "configs" / "experiments" / "quick_human.yaml"


def test_cpn_quick_beats_its_initialisation_on_held_out_generated_humans(tmp_path):
    from synthetic.writers import generate_dataset

    torch.set_num_threads(1)
    train_json = generate_dataset(tmp_path / "train", "human", "cad", 200, 96, 0) / "annotations" / "coco.json"
    val_json = generate_dataset(tmp_path / "val", "human", "cad", 60, 96, 1) / "annotations" / "coco.json"
    cfg = load_config(QUICK_HUMAN, overrides=[
        "model.name=cpn_quick", f"data.train=[{train_json}]", "data.val=[]", "data.workers=0",
        "augment.preset=none", "train.epochs=5", "train.milestones=[]", "train.deterministic=true",
        "tracking.enabled=false"])
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    data = build_data(cfg)
    model = make_model(cfg, data.schema)
    assert model.name == "cpn_quick" and len(model(torch.zeros(1, 3, 96, 64))) == 5
    trainer = Trainer(cfg, model, data.schema, data.train, data.val, tmp_path / "run", device=pick_device("cpu"),
                      progress=False)
    untrained = trainer.save(tmp_path / "run" / "untrained.ckpt")
    before = evaluate(untrained, val_json, device="cpu", progress=False)["metrics"]
    result = trainer.fit()
    after = evaluate(result.last_checkpoint, val_json, device="cpu", progress=False)["metrics"]
    assert before["AP"] < 0.01 and before["AP50"] < 0.01
    assert after["AP"] >= 0.10 and after["AP50"] >= 0.55
