"""Losses against hand-computed cases: heatmap MSE (CC-SSL reference formula), OHKM, DSNT."""

from __future__ import annotations

import math

import pytest
import torch

from animalpose.losses import dsnt_loss, gaussian_probs, heatmap_mse, js_divergence, ohkm_mse


def _reference_joints_mse(pred, target, weight):
    """The reference loop: Σ_j 0.5·MSE(w_j·P_j, w_j·G_j) / K over (N, h·w)."""
    n, k = target.shape[:2]
    p, g = pred.reshape(n, k, -1), target.reshape(n, k, -1)
    w = weight.reshape(n, k, 1)
    return sum(0.5 * torch.nn.functional.mse_loss(p[:, j] * w[:, j], g[:, j] * w[:, j]) for j in range(k)) / k


def test_heatmap_mse_hand_computed():
    # N=1, K=2, 1×2 maps. joint 0: diffs (1, 3), w=1 -> 0.5·(1+9)/2 = 2.5; joint 1 weight 0 -> 0
    pred = torch.tensor([[[[1.0, 3.0]], [[5.0, 5.0]]]])
    target = torch.zeros(1, 2, 1, 2)
    weight = torch.tensor([[1.0, 0.0]])
    assert heatmap_mse([pred], target, weight).item() == pytest.approx(2.5 / 2)
    # two stacks are summed; (N, K, 1) weights accepted
    assert heatmap_mse([pred, pred], target, weight[..., None]).item() == pytest.approx(2.5)
    # fractional weight w scales squared error by w²
    assert heatmap_mse(pred, target, torch.tensor([[0.5, 0.0]])).item() == pytest.approx(0.25 * 2.5 / 2)


def test_heatmap_mse_equals_reference_loop_and_computes_in_float32():
    torch.manual_seed(0)
    pred, target = torch.randn(3, 4, 5, 6), torch.rand(3, 4, 5, 6)
    weight = torch.tensor([[1.0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1]])
    expected = _reference_joints_mse(pred, target, weight)
    assert heatmap_mse([pred], target, weight).item() == pytest.approx(expected.item(), rel=1e-6)
    out = heatmap_mse([pred.bfloat16()], target, weight)
    assert out.dtype == torch.float32


def test_heatmap_mse_rejects_bad_shapes():
    with pytest.raises(ValueError, match="target_weight"):
        heatmap_mse([torch.zeros(2, 3, 4, 4)], torch.zeros(2, 3, 4, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match="differ"):
        heatmap_mse([torch.zeros(2, 3, 4, 4)], torch.zeros(2, 3, 8, 8), torch.ones(2, 3))


def test_ohkm_hand_computed():
    # one pixel maps: per-joint losses 0.5·d²: joints d = (1, 2, 3, 0) -> (0.5, 2, 4.5, 0)
    pred = torch.tensor([1.0, 2.0, 3.0, 0.0]).reshape(1, 4, 1, 1)
    target = torch.zeros(1, 4, 1, 1)
    weight = torch.ones(1, 4)
    assert ohkm_mse(pred, target, weight, topk=2).item() == pytest.approx((4.5 + 2.0) / 2)
    assert ohkm_mse(pred, target, weight, topk=4).item() == pytest.approx(7.0 / 4)
    # masked joint 2 drops out of the top-k; batch mean over samples
    weight2 = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    assert ohkm_mse(pred, target, weight2, topk=2).item() == pytest.approx((2.0 + 0.5) / 2)
    both = ohkm_mse(torch.cat([pred, pred]), torch.zeros(2, 4, 1, 1), torch.cat([weight, weight2]), topk=2)
    assert both.item() == pytest.approx((3.25 + 1.25) / 2)
    with pytest.raises(ValueError, match="topk"):
        ohkm_mse(pred, target, weight, topk=5)


def test_gaussian_probs_and_js_by_hand():
    q = gaussian_probs(torch.tensor([[[0.0, 0.0]]]), 3, 3, sigma=1.0)  # centre pixel (1, 1)
    e = math.exp(-0.5)
    c = math.exp(-1.0)
    z = 1 + 4 * e + 4 * c
    assert q[0, 0, 1, 1].item() == pytest.approx(1 / z)
    assert q[0, 0, 0, 1].item() == pytest.approx(e / z) and q[0, 0, 0, 0].item() == pytest.approx(c / z)
    # JS of two disjoint point masses is log 2; of identical maps 0
    p1 = torch.zeros(1, 1, 2, 2)
    p1[0, 0, 0, 0] = 1
    p2 = torch.zeros(1, 1, 2, 2)
    p2[0, 0, 1, 1] = 1
    assert js_divergence(p1, p2).item() == pytest.approx(math.log(2))
    assert js_divergence(q, q).item() == pytest.approx(0.0, abs=1e-7)


def test_dsnt_loss_hand_computed():
    h = w = 3
    target = torch.tensor([[[0.0, 0.0], [0.5, -0.5]]])
    q = gaussian_probs(target, h, w, sigma=1.0)
    coords = target + torch.tensor([[[0.3, 0.4], [0.0, 0.0]]])  # joint 0 off by 0.5, joint 1 exact
    # heatmaps equal to the target Gaussians: the JS term vanishes, the loss is the mean distance
    loss = dsnt_loss(coords, q, target, torch.ones(1, 2), sigma=1.0)
    assert loss.item() == pytest.approx(0.25, abs=1e-5)
    # weight 0 on joint 0 leaves only joint 1
    assert dsnt_loss(coords, q, target, torch.tensor([[0.0, 1.0]]), sigma=1.0).item() == pytest.approx(0.0, abs=1e-5)
    # point-mass heatmap: add λ·JS(δ, q) computed by hand
    p = torch.zeros(1, 2, h, w)
    p[0, :, 0, 0] = 1.0
    js = [
        0.5 * math.log(2 / (1 + q[0, j, 0, 0].item()))
        + 0.5
        * sum(
            qi * math.log(2 * qi / (qi + (1.0 if i == 0 else 0.0))) for i, qi in enumerate(q[0, j].flatten().tolist())
        )
        for j in range(2)
    ]
    expected = (0.5 + 2.0 * js[0] + 0.0 + 2.0 * js[1]) / 2
    got = dsnt_loss(coords, p, target, torch.ones(1, 2, 1), sigma=1.0, reg_weight=2.0)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_dsnt_loss_backpropagates_to_logits():
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    probs = torch.softmax(logits.flatten(2), -1).reshape(2, 3, 8, 8)
    xs = (2 * torch.arange(8.0) + 1) / 8 - 1
    coords = torch.stack([(probs.sum(2) * xs).sum(-1), (probs.sum(3) * xs).sum(-1)], -1)
    loss = dsnt_loss(coords, probs, torch.zeros(2, 3, 2), torch.ones(2, 3), sigma=1.0)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_integral_l1_hand_computed():
    from animalpose.losses import integral_l1

    pred = torch.tensor([[[0.5, 0.0], [0.0, 0.0]]])
    target = torch.tensor([[[0.0, 0.25], [1.0, 1.0]]])
    # joint 0: |0.5| + |−0.25| = 0.75; joint 1 has weight 0
    assert integral_l1(pred, target, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0.75)
    assert integral_l1(pred, target, torch.tensor([[1.0, 1.0]])).item() == pytest.approx((0.75 + 2.0) / 2)


def test_coordinate_losses_need_coordinates():
    from animalpose.losses import DSNTLoss, IntegralL1Loss

    maps, weight = torch.zeros(1, 2, 4, 4), torch.ones(1, 2)
    for loss in (DSNTLoss(), IntegralL1Loss()):
        with pytest.raises(ValueError, match="coordinates"):
            loss([maps], maps, weight, None)
    # uniform maps read out at the centre (1.5, 1.5) px = (0, 0) normalised; the integral loss is L1 there
    coords = torch.tensor([[[1.5, 1.5], [3.5, 1.5]]])
    assert IntegralL1Loss()([maps], maps, weight, coords).item() == pytest.approx((0 + 1.0) / 2)


def test_losses_declare_whether_they_read_coordinates():
    from animalpose.losses import (
        CoarseToFineLoss,
        DSNTLoss,
        HeatmapMSELoss,
        IntegralL1Loss,
        IntermediateFinalLoss,
        OHKMLoss,
    )

    assert not HeatmapMSELoss().needs_coords and not OHKMLoss().needs_coords
    assert DSNTLoss().needs_coords and IntegralL1Loss().needs_coords
    assert not IntermediateFinalLoss(HeatmapMSELoss(), OHKMLoss()).needs_coords
    assert IntermediateFinalLoss(HeatmapMSELoss(), DSNTLoss()).needs_coords
    assert CoarseToFineLoss((2.0, None), (0.25, 1.0), (False, True)).needs_coords
    assert not CoarseToFineLoss((None,), (1.0,), (True,)).needs_coords
    with pytest.raises(ValueError, match="one entry per output"):
        CoarseToFineLoss((2.0, None), (1.0,), (False, True))
