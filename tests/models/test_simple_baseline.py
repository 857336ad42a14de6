"""SimpleBaseline: torchvision ResNet backbone built without weights, 34.0 M parameters for ResNet-50."""

from __future__ import annotations

import pytest
import torch

from animalpose.models.simple_baseline import SimpleBaseline, simple_baseline


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_resnet50_parameter_count_matches_paper(meta):
    with meta:
        net = simple_baseline(17, depth=50)
    assert n_params(net) == pytest.approx(34.0e6, rel=0.01)


def test_head_count_by_hand(meta):
    with meta:
        net = simple_baseline(17, depth=50)
    deconvs = 2048 * 256 * 16 + 2 * 256 * 256 * 16 + 3 * 2 * 256
    assert n_params(net.deconv_layers) == deconvs
    assert n_params(net.final_layer) == 256 * 17 + 17


def test_shapes_real_forward_resnet18():
    net = simple_baseline(5, depth=18, deconv_channels=16).eval()
    with torch.no_grad():
        for h, w in [(256, 256), (256, 192)]:
            assert [tuple(o.shape) for o in net(torch.randn(1, 3, h, w))] == [(1, 5, h // 4, w // 4)]


def test_backbone_keeps_torchvision_names(meta):
    with meta:
        net = simple_baseline(17, depth=18)
    keys = set(net.backbone.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer4.1.conv2.weight"} <= keys
    assert not any(k.startswith("fc.") for k in keys)


def test_unknown_depth_rejected():
    with pytest.raises(ValueError, match="depth"):
        SimpleBaseline(17, depth=42)
