"""Heads: DSNT, integral and argmax readouts against hand-computed expectations; PoseModel contract."""

from __future__ import annotations

import math

import pytest
import torch

from animalpose.models.factory import build_model
from animalpose.models.heads import DSNTHead, HeatmapHead, IntegralHead, PoseModel, make_head


def test_dsnt_readout_equals_hand_computed_expectation():
    # 2×3 map; softmax of these logits puts probability 1/2 on (x=2, y=0) and 1/4 on (0, 1) and (1, 1)
    logits = torch.full((1, 1, 2, 3), -1e4)
    logits[0, 0, 0, 2] = math.log(2.0)
    logits[0, 0, 1, 0] = 0.0
    logits[0, 0, 1, 1] = 0.0
    r = DSNTHead().readout(logits)
    assert r.probs.sum().item() == pytest.approx(1.0)
    # grids: x centres (2j+1)/3 - 1 = -2/3, 0, 2/3 ; y centres (2i+1)/2 - 1 = -1/2, 1/2
    ex = 0.5 * (2 / 3) + 0.25 * (-2 / 3) + 0.25 * 0.0
    ey = 0.5 * (-0.5) + 0.25 * 0.5 + 0.25 * 0.5
    assert r.coords_norm[0, 0].tolist() == pytest.approx([ex, ey], abs=1e-6)
    # in pixels: x = 0.5·2 + 0.25·0 + 0.25·1, y = 0.5·0 + 0.5·1
    assert r.coords[0, 0].tolist() == pytest.approx([1.25, 0.5], abs=1e-6)
    assert r.scores[0, 0].item() == pytest.approx(0.5)


def test_integral_beta_sharpens_towards_argmax():
    maps = torch.zeros(1, 1, 4, 5)
    maps[0, 0, 3, 1] = 1.0
    maps[0, 0, 0, 4] = 0.9
    soft = IntegralHead(beta=1.0).readout(maps)
    sharp = IntegralHead(beta=160.0).readout(maps)
    assert sharp.coords[0, 0].tolist() == pytest.approx([1.0, 3.0], abs=1e-3)
    # β = 1: all 20 cells weighted by exp(value); expectation by hand
    w = torch.ones(4, 5)
    w[3, 1] = math.e
    w[0, 4] = math.exp(0.9)
    w = w / w.sum()
    ex = (w.sum(0) * torch.arange(5.0)).sum().item()
    ey = (w.sum(1) * torch.arange(4.0)).sum().item()
    assert soft.coords[0, 0].tolist() == pytest.approx([ex, ey], abs=1e-5)


def test_heatmap_head_argmax():
    maps = torch.zeros(2, 3, 4, 6)
    maps[1, 2, 3, 5] = 7.0
    r = HeatmapHead().readout(maps)
    assert r.coords[1, 2].tolist() == [5.0, 3.0]
    assert r.scores[1, 2].item() == 7.0 and r.probs is None
    assert r.coords_norm[1, 2].tolist() == pytest.approx([11 / 6 - 1, 7 / 4 - 1])


def test_make_head_codecs():
    assert [make_head(c).codec for c in ("heatmap", "dsnt", "integral")] == ["heatmap", "dsnt", "integral"]
    assert make_head("integral", beta=160).beta == 160.0
    with pytest.raises(ValueError, match="unknown head"):
        make_head("regression")


def test_pose_model_contract():
    model = PoseModel("tiny", build_model("simplebaseline18", 6, deconv_channels=8).net, DSNTHead(), (64, 64))
    assert (model.num_joints, model.stride, model.head_codec) == (6, 4, "dsnt")
    outs = model(torch.randn(2, 3, 64, 64))
    assert isinstance(outs, list) and [tuple(o.shape) for o in outs] == [(2, 6, 16, 16)]
    r = model.readout(outs[-1])
    assert r.coords_norm.shape == (2, 6, 2) and r.probs.shape == (2, 6, 16, 16)
    assert bool((r.coords_norm.abs() < 1).all())
