"""HRNet W32/W48: published parameter counts and GFLOPs at 256×192, multi-resolution structure."""

from __future__ import annotations

import pytest
import torch

from animalpose.flops import count_macs
from animalpose.models.hrnet import HighResolutionModule, HRNet, HRNetConfig, hrnet


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_w32_parameters_and_gflops_match_paper(meta):
    with meta:
        net = hrnet(17, width=32)
    assert n_params(net) == pytest.approx(28.5e6, rel=0.01)
    assert 7.1 <= count_macs(net, (256, 192)) / 1e9 <= 7.7


def test_w48_parameters_match_paper_and_shapes(meta):
    with meta:
        net = hrnet(17, width=48)
        assert n_params(net) == pytest.approx(63.6e6, rel=0.01)
        for h, w in [(256, 256), (256, 192)]:
            assert [tuple(o.shape) for o in net(torch.zeros(1, 3, h, w))] == [(1, 17, h // 4, w // 4)]


def test_w32_real_forward_at_256x192():
    net = hrnet(17, width=32).eval()
    with torch.no_grad():
        assert [tuple(o.shape) for o in net(torch.randn(1, 3, 256, 192))] == [(1, 17, 64, 48)]


def test_small_width_shapes_both_inputs():
    net = HRNet(5, HRNetConfig(width=8, num_modules=(1, 1, 1), num_blocks=1, stem_blocks=1)).eval()
    with torch.no_grad():
        for h, w in [(256, 256), (256, 192)]:
            assert [tuple(o.shape) for o in net(torch.randn(1, 3, h, w))] == [(1, 5, h // 4, w // 4)]


def test_stage_layout_and_last_module_fuses_only_to_the_highest_resolution(meta):
    with meta:
        net = hrnet(17, width=32)
    assert [len(stage) for stage in (net.stage2, net.stage3, net.stage4)] == [1, 4, 3]
    last = net.stage4[-1]
    assert isinstance(last, HighResolutionModule) and len(last.fuse_layers) == 1
    assert all(len(m.fuse_layers) == 4 for m in list(net.stage4)[:-1])
    widths = [blocks[0].conv1.out_channels for blocks in last.branches]
    assert widths == [32, 64, 128, 256]
    # downsampling path 0 -> 3: three strided 3×3 convs, ReLU on all but the last
    down = net.stage4[0].fuse_layers[3][0]
    assert [type(step[-1]).__name__ for step in down] == ["ReLU", "ReLU", "BatchNorm2d"]
    assert all(step[0].stride == (2, 2) for step in down)
    up = net.stage4[0].fuse_layers[0][3]
    assert up[0].kernel_size == (1, 1) and up[2].scale_factor == 8 and up[2].mode == "nearest"


def test_fusion_sums_all_branches():
    """Output of branch i depends on every input branch (multi-scale fusion)."""
    module = HighResolutionModule([4, 8], num_blocks=1).eval()
    xs = [torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4)]
    with torch.no_grad():
        base = module(xs)
        bumped = module([xs[0], xs[1] + 1.0])
    assert not torch.allclose(base[0], bumped[0])
    assert [tuple(o.shape) for o in base] == [(1, 4, 8, 8), (1, 8, 4, 4)]
