"""`animalpose bench train-step` trains with the loss the model carries, not a hard-wired heatmap MSE."""

from __future__ import annotations

import torch

import flows.benchmarks.engine as bench


def test_train_step_calls_the_models_own_loss(monkeypatch):
    """rsn_quick carries the coarse-to-fine loss, which reads coordinates: the bench passes them, and the
    loss it calls is the model's (counted through PoseModel.loss)."""
    from animalpose.models.heads import PoseModel

    calls = []
    real = PoseModel.loss

    def spy(self, outputs, target, weight, coords=None):
        calls.append((type(self.criterion).__name__, coords is not None, len(outputs)))
        return real(self, outputs, target, weight, coords)

    monkeypatch.setattr(PoseModel, "loss", spy)
    torch.set_num_threads(1)
    row = bench.train_step("rsn_quick", 64, 2, steps=1, warmup=0)
    assert row["bench"] == "train-step" and row["images_per_s"] > 0
    assert calls == [("CoarseToFineLoss", True, 4)]
    calls.clear()
    bench.train_step("hourglass_quick", 64, 2, steps=1, warmup=0)
    assert calls == [("HeatmapMSELoss", False, 2)]
