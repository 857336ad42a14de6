"""Learning tests of MSPN and RSN (slow): ``mspn_quick`` (two ResNet-18 stages from scratch) and
``rsn_quick`` (RSN-18 blocks from scratch, no PRM), each trained with the coarse-to-fine loss it carries
(per-output Gaussian targets, L2 x 0.25 on the coarser levels, OHKM top 8 on the finest) by the engine with
the quick_human.yaml settings (64×96 input, 16×24 DARK heatmaps σ = 2, Adam 1e-3, batch 8, augmentation off)
on 200 generated humans (``cad`` style, seed 0, COCO's 17 joints) for 5 epochs, scored by OKS AP
(pycocotools, flip test) on 60 held-out generated humans (seed 1), against the same network at
initialisation; the training loss must fall from the first epoch to the last. Generated data only: not a
COCO claim.

Stated numbers (deterministic CPU, 1 thread; 3–5 min each on the shared 2-core development machine):
untrained AP / AP50 0.000 / 0.000 for both (asserted < 0.01);
- ``mspn_quick`` trained 0.159 / 0.725 (asserted ≥ 0.10 / ≥ 0.50); training loss per epoch 1.391, 1.080,
  0.936, 0.848, 0.786;
- ``rsn_quick`` trained 0.091 / 0.621 (asserted ≥ 0.05 / ≥ 0.45); training loss 0.675, 0.515, 0.452,
  0.412, 0.380 (with the PRM on, the same run ends at AP 0.000: rsn.py says why it is off).
For comparison, CPN-quick in the same setting reaches 0.177 / 0.815 (tests/human/test_cpn_learning.py) and
quick_human's SimpleBaseline-18 0.198 / 0.843.
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

#: name -> (outputs, asserted AP / AP50 floors after training)
RESULTS = {
    "mspn_quick": (8, (0.10, 0.50)),
    "rsn_quick": (4, (0.05, 0.45)),
}


@pytest.mark.parametrize("name", list(RESULTS))
def test_quick_multistage_net_beats_its_initialisation_on_held_out_generated_humans(name, tmp_path):
    from synthetic.writers import generate_dataset

    torch.set_num_threads(1)
    n_outputs, (min_ap, min_ap50) = RESULTS[name]
    train_json = generate_dataset(tmp_path / "train", "human", "cad", 200, 96, 0) / "annotations" / "coco.json"
    val_json = generate_dataset(tmp_path / "val", "human", "cad", 60, 96, 1) / "annotations" / "coco.json"
    cfg = load_config(QUICK_HUMAN, overrides=[
        f"model.name={name}", f"data.train=[{train_json}]", "data.val=[]", "data.workers=0",
        "augment.preset=none", "train.epochs=5", "train.milestones=[]", "train.deterministic=true",
        "tracking.enabled=false"])
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    data = build_data(cfg)
    model = make_model(cfg, data.schema)
    assert model.name == name and len(model(torch.zeros(1, 3, 96, 64))) == n_outputs
    assert model.criterion.needs_coords
    trainer = Trainer(cfg, model, data.schema, data.train, data.val, tmp_path / "run", device=pick_device("cpu"),
                      progress=False)
    untrained = trainer.save(tmp_path / "run" / "untrained.ckpt")
    before = evaluate(untrained, val_json, device="cpu", progress=False)["metrics"]
    result = trainer.fit()
    after = evaluate(result.last_checkpoint, val_json, device="cpu", progress=False)["metrics"]
    losses = [h["train/loss"] for h in result.history]
    assert len(losses) == 5 and losses[-1] < 0.8 * losses[0]
    assert before["AP"] < 0.01 and before["AP50"] < 0.01
    assert after["AP"] >= min_ap and after["AP50"] >= min_ap50
