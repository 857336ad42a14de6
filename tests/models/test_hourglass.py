"""Stacked hourglass: exact CC-SSL parameter counts, derived by hand and checked per component."""

from __future__ import annotations

import pytest
import torch

from animalpose.models.hourglass import HourglassNet, PreActBottleneck, hourglass_net, hourglass_quick_net


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def bottleneck_params(c_in: int, p: int) -> int:
    """BN(c_in) + 1×1 c_in→p + BN(p) + 3×3 p→p + BN(p) + 1×1 p→2p (+ 1×1 shortcut), all convs with bias."""
    n = 2 * c_in + (c_in * p + p) + 2 * p + (9 * p * p + p) + 2 * p + (p * 2 * p + 2 * p)
    if c_in != 2 * p:
        n += c_in * 2 * p + 2 * p
    return n


def test_bottleneck_count_by_hand():
    assert bottleneck_params(256, 128) == 214_528
    assert n_params(PreActBottleneck(256, 128)) == 214_528
    assert n_params(PreActBottleneck(64, 64)) == bottleneck_params(64, 64) == 58_112


def expected_hourglass_params(stacks: int, k: int = 18) -> int:
    """Stem + stacks, from the architecture description (pytorch-pose / CC-SSL)."""
    stem = (3 * 49 * 64 + 64) + 2 * 64 + bottleneck_params(64, 64) + bottleneck_params(128, 128)
    stem += bottleneck_params(256, 128)
    per_stack = 13 * bottleneck_params(256, 128)  # hourglass depth 4: 3 per level + 1 innermost
    per_stack += bottleneck_params(256, 128)  # residual after the hourglass
    per_stack += (256 * 256 + 256) + 2 * 256  # fc: 1×1 conv + BN
    per_stack += 256 * k + k  # score
    remap = (256 * 256 + 256) + (k * 256 + 256)  # fc_ and score_, all stacks but the last
    return stem + stacks * per_stack + (stacks - 1) * remap


@pytest.mark.parametrize(("stacks", "published"), [(1, 3_587_474), (2, 6_732_452), (4, 13_022_408), (8, 25_602_320)])
def test_parameter_counts_match_ccssl_exactly(meta, stacks, published):
    assert expected_hourglass_params(stacks) == published
    with meta:
        net = hourglass_net(18, num_stacks=stacks)
    assert n_params(net) == published


def test_quick_variant_is_listed_size():
    net = hourglass_quick_net(18)
    assert net.num_stacks == 2 and net.score[0].in_channels == 128 and net.conv1.out_channels == 32


def test_one_output_per_stack_at_stride_4_real_forward():
    net = HourglassNet(5, num_stacks=2, num_feats=16, stem_channels=8).eval()
    assert net.stride == 4 and net.num_joints == 5
    with torch.no_grad():
        for h, w in [(256, 256), (256, 192)]:
            outs = net(torch.randn(1, 3, h, w))
            assert [tuple(o.shape) for o in outs] == [(1, 5, h // 4, w // 4)] * 2


def test_full_size_shapes_on_meta(meta):
    with meta:
        net = hourglass_net(18, num_stacks=2)
        for h, w in [(256, 256), (256, 192)]:
            assert [tuple(o.shape) for o in net(torch.zeros(2, 3, h, w))] == [(2, 18, h // 4, w // 4)] * 2


def test_intermediate_heatmaps_feed_the_next_stack():
    """Changing stack 0's score_ remap changes the final output but not stack 0's own heatmaps."""
    net = HourglassNet(3, num_stacks=2, num_feats=8, depth=2, stem_channels=4).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        first, last = net(x)
        net.score_[0].bias.add_(1.0)
        first2, last2 = net(x)
    assert torch.equal(first, first2)
    assert not torch.allclose(last, last2)


def test_last_stack_has_no_remap():
    net = HourglassNet(3, num_stacks=3, num_feats=8, depth=2, stem_channels=4)
    assert len(net.fc_) == len(net.score_) == 2 and len(net.score) == 3
