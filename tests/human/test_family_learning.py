"""Learning tests of the CPN, MSPN, RSN, LPN and G-RMI families (slow): each ``*_quick`` variant, from scratch,
trained with the loss it carries by the engine with the quick_human.yaml settings (64×96 input, 16×24
heatmaps, Adam 1e-3, batch 8, augmentation off) on 200 generated humans (``cad`` style, seed 0, COCO's 17
joints) for 5 epochs, scored by OKS AP (pycocotools, flip test) on 60 held-out generated humans (seed 1),
against the same network at initialisation; the training loss must fall by a fifth from the first epoch to
the last. Generated data only: not a COCO claim.

- ``cpn_quick``: ResNet-18 trunk, 64-channel pyramid, GlobalNet L2 + RefineNet OHKM top 8; DARK σ = 2.
- ``mspn_quick`` (two ResNet-18 stages) and ``rsn_quick`` (RSN-18 blocks, no PRM): the coarse-to-fine loss
  (per-output Gaussian targets, L2 × 0.25 on the coarser levels, OHKM top 8 on the finest); DARK σ = 2.
- ``lpn_quick``: heatmap MSE on σ = 2 Gaussians, decoded by β-soft-argmax with LPN's β = 160.
- ``grmi_quick``: ResNet-18 at output stride 8, upsampled to 16×24; disks of radius 2 heatmap px and offset
  fields, λ_h·sigmoid cross-entropy + λ_o·Huber (4 and 1), decoded by Hough voting.

Stated numbers (deterministic CPU, 1 thread; 1–5 min each on the shared 2-core development machine): every
untrained AP and AP50 0.000 (asserted < 0.01); trained AP / AP50 (asserted floors in :data:`RESULTS`):
``cpn_quick`` 0.162 / 0.808 (0.177 / 0.815 when CPN landed), ``mspn_quick`` 0.159 / 0.725, ``rsn_quick``
0.091 / 0.621 (with the PRM on, 0.000: rsn.py says why it is off), ``lpn_quick`` 0.167 / 0.776 (training loss
0.010, 0.005, 0.004, 0.004, 0.004), ``grmi_quick`` 0.306 / 0.808 (training loss 1.497, 0.699, 0.555, 0.474,
0.414). For comparison, quick_human's
SimpleBaseline-18 in the same setting reaches 0.198 / 0.843 (tests/human/test_human_pipeline.py).
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

#: name -> (outputs, whether its loss reads coordinates, config overrides, asserted AP / AP50 floors)
RESULTS = {
    "cpn_quick": (5, False, [], (0.10, 0.55)),
    "mspn_quick": (8, True, [], (0.10, 0.50)),
    "rsn_quick": (4, True, [], (0.05, 0.45)),
    "lpn_quick": (1, False, ["codec.kind=soft_argmax"], (0.10, 0.55)),
    "grmi_quick": (1, False, ["codec.kind=grmi", "codec.radius=2.0"], (0.15, 0.55)),
}


@pytest.mark.parametrize("name", list(RESULTS))
def test_quick_variant_beats_its_initialisation_on_held_out_generated_humans(name, tmp_path):
    from synthetic.writers import generate_dataset

    torch.set_num_threads(1)
    n_outputs, needs_coords, overrides, (min_ap, min_ap50) = RESULTS[name]
    train_json = generate_dataset(tmp_path / "train", "human", "cad", 200, 96, 0) / "annotations" / "coco.json"
    val_json = generate_dataset(tmp_path / "val", "human", "cad", 60, 96, 1) / "annotations" / "coco.json"
    cfg = load_config(QUICK_HUMAN, overrides=[
        f"model.name={name}", f"data.train=[{train_json}]", "data.val=[]", "data.workers=0",
        "augment.preset=none", "train.epochs=5", "train.milestones=[]", "train.deterministic=true",
        "tracking.enabled=false", *overrides])
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    data = build_data(cfg)
    model = make_model(cfg, data.schema)
    assert model.name == name and len(model(torch.zeros(1, 3, 96, 64))) == n_outputs
    assert model.needs_coords == needs_coords
    trainer = Trainer(cfg, model, data.schema, data.train, data.val, tmp_path / "run", device=pick_device("cpu"),
                      progress=False)
    untrained = trainer.save(tmp_path / "run" / "untrained.ckpt")
    before = evaluate(untrained, val_json, device="cpu", progress=False)["metrics"]
    result = trainer.fit()
    after = evaluate(result.last_checkpoint, val_json, device="cpu", progress=False)["metrics"]
    losses = [h["train/loss"] for h in result.history]
    print(f"{name}: AP/AP50 before {before['AP']:.3f}/{before['AP50']:.3f} after {after['AP']:.3f}/"
          f"{after['AP50']:.3f}; losses {[round(v, 3) for v in losses]}")
    assert len(losses) == 5 and losses[-1] < 0.8 * losses[0]
    assert before["AP"] < 0.01 and before["AP50"] < 0.01
    assert after["AP"] >= min_ap and after["AP50"] >= min_ap50
