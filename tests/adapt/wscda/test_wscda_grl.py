"""Gradient reversal layer and the DANN schedule (Ganin & Lempitsky 2015; Ganin et al. 2016)."""

import pytest
import torch

from animalpose.adapt.wscda.grl import GradientReversal, dann_lambda, grad_reverse


@pytest.mark.parametrize("lambd", [0.0, 0.5, 1.0, 2.5])
def test_grl_is_identity_forward_and_flips_and_scales_gradients(lambd):
    x = torch.tensor([[1.0, -2.0, 3.0]], requires_grad=True)
    upstream = torch.tensor([[0.3, -1.0, 2.0]])
    out = grad_reverse(x, lambd)
    assert torch.equal(out, x)
    (out * upstream).sum().backward()
    assert torch.allclose(x.grad, -lambd * upstream)


def test_grl_module_matches_plain_gradient_times_minus_lambda():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    (g_plain,) = torch.autograd.grad(layer(x).pow(2).sum(), layer.weight)
    grl = GradientReversal(0.7)
    (g_rev,) = torch.autograd.grad(grl(layer(x)).pow(2).sum(), layer.weight)
    assert torch.allclose(g_rev, -0.7 * g_plain, atol=1e-6)
    assert "lambd=0.7" in repr(grl)


def test_dann_schedule_values():
    # 2 / (1 + e^0) − 1 = 0
    assert dann_lambda(0.0) == 0.0
    # 2 / (1 + e^−5) − 1 = 2 / 1.006737947 − 1 = 0.986614298
    assert dann_lambda(0.5) == pytest.approx(0.986614298, abs=1e-9)
    # 2 / (1 + e^−10) − 1 = 2 / 1.0000453999 − 1 = 0.999909204
    assert dann_lambda(1.0) == pytest.approx(0.999909204, abs=1e-9)
    values = [dann_lambda(p / 10) for p in range(11)]
    assert values == sorted(values)
    with pytest.raises(ValueError, match="progress"):
        dann_lambda(1.5)
