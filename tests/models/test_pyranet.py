"""PyraNet PRM-B: structure, resizing at fractional scales, variance control, multi-branch init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from animalpose.models.pyranet import (
    BNReLUConv,
    PyramidResidual,
    PyraNet,
    _resize_by,
    multi_branch_init,
    multi_branch_std,
    pyranet_quick,
)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_prm_parameter_count_by_hand():
    c_in, p, d = 64, 32, 8
    prm = PyramidResidual(c_in, p, d, cardinality=4)
    bn_relu_conv = lambda ci, co, k: 2 * ci + ci * co * k * k + co  # noqa: E731
    expected = (
        bn_relu_conv(c_in, p, 1)
        + bn_relu_conv(p, p, 3)  # f0
        + bn_relu_conv(c_in, d, 1)  # shared projection (PRM-B)
        + 4 * (d * d * 9 + d)  # one 3×3 conv per pyramid level
        + bn_relu_conv(d, p, 1)  # g
        + bn_relu_conv(p, 2 * p, 1)  # output 1×1
    )
    assert n_params(prm) == expected
    vc = PyramidResidual(c_in, p, d, cardinality=4, variance_control=True)
    assert n_params(vc) == expected + bn_relu_conv(c_in, 2 * p, 1)


def test_scales_are_powers_of_two_to_minus_c_over_C():
    prm = PyramidResidual(16, 8, 4, cardinality=4)
    assert prm.scales == pytest.approx([2 ** (-0.25), 2 ** (-0.5), 2 ** (-0.75), 0.5])
    x = torch.randn(1, 4, 16, 12)
    assert [tuple(_resize_by(x, s).shape[-2:]) for s in prm.scales] == [(13, 10), (11, 8), (9, 7), (8, 6)]
    assert tuple(_resize_by(torch.randn(1, 1, 1, 1), 0.5).shape) == (1, 1, 1, 1)


def test_upper_branch_units_use_variance_control():
    net = PyraNet(4, num_stacks=1, num_feats=8, depth=2, stem_channels=4)
    for level in net.hg[0].hg:
        assert isinstance(level[0].shortcut, BNReLUConv)  # summed with the upsampled lower branch
        assert all(unit.shortcut is None for unit in list(level)[1:])


def test_shapes_and_one_output_per_stack():
    net = pyranet_quick(7).eval()
    assert net.num_stacks == 2
    tiny = PyraNet(7, num_stacks=2, num_feats=8, stem_channels=4).eval()
    with torch.no_grad():
        for h, w in [(256, 256), (256, 192)]:
            assert [tuple(o.shape) for o in tiny(torch.randn(1, 3, h, w))] == [(1, 7, h // 4, w // 4)] * 2


def test_multi_branch_std_formula():
    conv = nn.Conv2d(10, 20, 3)
    # n_i = 9·10, n_o = 9·20; α² = 1/2 after ReLU
    assert multi_branch_std(conv, 1, 4, after_relu=True) == pytest.approx(math.sqrt(2 / (0.5 * (90 + 4 * 180))))
    assert multi_branch_std(conv, 4, 1, after_relu=False) == pytest.approx(math.sqrt(2 / (4 * 90 + 180)))


def test_init_draws_with_the_branch_aware_std():
    prm = PyramidResidual(256, 128, 64, cardinality=4)
    multi_branch_init(prm)
    proj, g = prm.project.conv, prm.g.conv
    assert prm.project.out_branches == 4 and prm.g.in_branches == 4
    for conv, c_in, c_out in [(proj, 1, 4), (g, 4, 1), (prm.out.conv, 1, 1)]:
        want = multi_branch_std(conv, c_in, c_out, after_relu=True)
        assert conv.weight.std().item() == pytest.approx(want, rel=0.1)
        assert torch.count_nonzero(conv.bias) == 0
    # pyramid branch convs read the projection (no ReLU): α² = 1
    branch = prm.branches[0]
    assert branch.weight.std().item() == pytest.approx(multi_branch_std(branch, 1, 1, False), rel=0.1)


@pytest.mark.parametrize(("stacks", "hourglass_count"), [(4, 13_022_408), (8, 25_602_320)])
def test_pyranet_count_is_hourglass_with_prms(meta, stacks, hourglass_count):
    """Per stack, 14 bottlenecks (13 in the hourglass + 1 after it) become PRMs, and the 4 upper-branch
    PRMs get a BN-ReLU-1×1 (256→256) identity path."""
    prm, bottleneck, vc = 264_544, 214_528, 2 * 256 + 256 * 256 + 256
    expected = hourglass_count + stacks * (14 * (prm - bottleneck) + 4 * vc)
    with meta:
        net = PyraNet(18, num_stacks=stacks)
    assert n_params(net) == expected == {4: 16_884_168, 8: 33_325_840}[stacks]
    assert n_params(PyramidResidual(256, 128, 32)) == prm
