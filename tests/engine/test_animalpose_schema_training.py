"""Training directly in the ``animalpose`` schema (the generator writes it beside ``tigdog`` for horses),
then scoring on the real Animal-Pose release: its horse ``test`` split, with no joint mapping.

The fast test is plumbing (a 1-epoch model; no accuracy claim). The slow one is the learning check of
test_learning.py in this schema: 300 training and 60 held-out 64-px generated horses (cad, seeds 0/1),
hourglass1 with 64 channels, 64-px input, 16-px heatmaps (σ = 1), Adam 2e-3, batch 16, 6 epochs, no
augmentation; thresholds as there (initial below 2 % / 10 % PCK@0.05 / 0.1, trained at least 4 % / 25 %).
Measured (deterministic CPU, 1 thread, 20 joints): initial 0.4 % / 5.8 %, after 6 epochs 5.4 % / 38.7 %;
about 100 s on a shared 2-core machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from animalpose.engine.build import build_data, make_model, pick_device
from animalpose.engine.evaluate import evaluate
from animalpose.engine.trainer import Trainer, seed_everything

RELEASE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "animal-pose"


def test_train_in_animalpose_schema_and_evaluate_on_real_horse_test_split(tmp_path, tiny_config):
    if not RELEASE.is_dir():
        pytest.skip(f"shared real data not found at {RELEASE}")
    from animalpose.engine.train import train
    from synthetic.writers import generate_dataset

    generate_dataset(tmp_path / "synth", "horse", "cad", 12, 64, 0)
    ann = tmp_path / "synth" / "annotations" / "animalpose.json"
    cfg = tiny_config(ann, RELEASE / "keypoints.json",
                      data={"schema": None, "categories": ["horse"], "split_file": str(RELEASE / "splits.json")},
                      train={"epochs": 1})
    result = train(cfg, out_dir=tmp_path / "out", progress=False)
    out = evaluate(result.best_checkpoint, RELEASE / "keypoints.json", categories=["horse"],
                   split_file=RELEASE / "splits.json", split="test", device="cpu", progress=False)
    assert "common_joints" not in out and len(out["per_joint"]) == 20 and "L_B_Paw" in out["per_joint"]
    # 235 horses in the test images of splits.json; one (image 1286) has no labelled keypoint and is not scored
    assert out["instances"] == 234
    assert len(build_data(cfg, train=False).val["keypoints"].records) == 122  # the 122 horses of the val images
    assert 0.0 <= out["metrics"]["pck_bbox@0.2"] <= 1.0 and "AP" in out["metrics"]  # animalpose has OKS sigmas


@pytest.mark.slow
def test_hourglass_learns_generated_horses_in_animalpose_schema(tmp_path, tiny_config):
    from synthetic.writers import generate_dataset

    generate_dataset(tmp_path / "train", "horse", "cad", 300, 64, 0)
    generate_dataset(tmp_path / "val", "horse", "cad", 60, 64, 1)
    train_json, val_json = (tmp_path / d / "annotations" / "animalpose.json" for d in ("train", "val"))
    cfg = tiny_config(train_json, val_json,
                      data={"schema": "animalpose"}, model={"name": "hourglass1", "channels": 64},
                      augment={"preset": "none"}, train={"epochs": 6, "batch_size": 16, "lr": 2e-3})
    seed_everything(0)
    data = build_data(cfg)
    assert data.schema.num_joints == 20
    trainer = Trainer(cfg, make_model(cfg, data.schema), data.schema, data.train, data.val, tmp_path / "out",
                      device=pick_device("cpu"), progress=False)
    before = trainer.validate()
    result = trainer.fit()
    after = result.history[-1]
    assert before["val/pck@0.05"] < 0.02 and before["val/pck@0.1"] < 0.10
    assert after["val/pck@0.05"] >= 0.04 and after["val/pck@0.1"] >= 0.25
