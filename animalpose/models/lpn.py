"""Lightweight Pose Network (Zhang et al., "Simple and Lightweight Human Pose Estimation",
arXiv 1911.10346), laid out as the authors' released code (``zhang943/lpn-pytorch``, ``lib/models/lpn.py``
and ``lightweight_modules.py``), which this file follows layer for layer.

A SimpleBaseline made light:

- backbone: ResNet's stem (7×7 conv stride 2, BN, ReLU, 3×3 max-pool stride 2), then four stages of
  *lightweight bottlenecks* with 64, 128, 256, 512 channels (strides 1, 2, 2, **1**: the backbone reduces by
  16, not 32). A lightweight bottleneck has expansion 1: 1×1 conv C_in→C, 3×3 **depthwise** conv (groups =
  C, carrying the stride), 1×1 conv C→C, BN after each, then a global-context block, the shortcut (1×1 conv +
  BN when the stride or width changes) and ReLU. Blocks per stage: LPN-50 (3, 4, 6, 3), LPN-101
  (3, 4, 23, 3), LPN-152 (3, 8, 36, 3), as ResNet's.
- GC block (Cao et al., "GCNet", 2019; the authors' ``GCBlock(C, P, 'att', ['channel_add'])``): a 1×1 conv
  C→1 with a softmax over the positions pools the feature into one context vector (N, C, 1, 1), which a
  1×1 conv C→P, LayerNorm, ReLU, 1×1 conv P→C transforms and adds to every position; P = max(C/16, 16).
- head: two *grouped* 4×4 stride-2 transposed convolutions to 256 channels (groups = gcd(C_in, 256): 256
  for both), each followed by BN, ReLU, a 1×1 conv 256→256, BN, ReLU; then a 1×1 conv to K heatmaps
  (output stride 4).

Training and readout as the authors' COCO config (``experiments/coco/lpn/lpn50_256x192_gd256x2_gc.yaml``):
heatmap MSE on Gaussians (σ = 2), Adam 1e-3, ×0.1 at epochs 90 and 120 of 150, flip test with the 1-px
shift, and β-soft-argmax decoding with β = 160 (``codec.kind: soft_argmax``; their
``get_final_preds_using_softargmax``). The paper's iterative training (no ImageNet weights; the schedule
run again from the previous cycle's weights) is ``train.cycles`` (:mod:`animalpose.engine.trainer`).
Initialisation as their from-scratch ``init_weights``: every conv and transposed conv N(0, 0.001), BN γ = 1,
β = 0 (conv biases at PyTorch's default).

Where the numbers come from. The authors' README (github.com/zhang943/lpn-pytorch, "Results on COCO val2017",
input 256×192) lists LPN-50 2.9 M parameters / 1.0 GFLOPs, LPN-101 5.3 M / 1.4 G, LPN-152 7.4 M / 1.8 G
(and LPN-50 1.3 G at MPII's 256×256). With 17 joints we count 2,911,153 / 5,353,458 / 7,377,459 parameters
(tested term by term, tests/models/test_lpn.py): LPN-50 and LPN-152 round to the published 2.9 M and 7.4 M;
LPN-101's 5.35 M rounds to 5.4 M, 1.0 % above the README's 5.3 M, and we found no layer that the released
``lpn.py`` builds otherwise. Compute by :mod:`animalpose.flops` (multiply-adds of every conv, depthwise and
transposed conv counted by their real groups, plus the GC blocks' attention product): 1.07 / 1.51 / 1.95 G
at 256×192 and 1.43 G at 256×256, a near-constant 7–10 % above the README's 1.0 / 1.4 / 1.8 / 1.3 G (one
factor of about 1.09 reproduces all four roundings). The release has no counting code, and no component of
the network is that fraction of its cost in all variants (the 7×7 stem is 11 % of LPN-50 but 6 % of LPN-152;
the deconvolutions and the GC attention under 1 %), so we take it for the counting tool and test within
10 %. ``lpn_quick`` is ours: LPN-50's widths with two blocks per stage and 128-channel deconvolutions, for the
CPU learning test: 1,577,529 parameters, 0.15 G at 128×96.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: blocks per stage of the published variants (ResNet-50/101/152's)
LPN_LAYERS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
STAGE_WIDTHS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 1)


class GCBlock(nn.Module):
    """Global context block, attention pooling + channel add: (N, C, H, W) -> (N, C, H, W).

    ``planes`` P is the bottleneck width of the transform (LPN: max(C/16, 16)).
    """

    def __init__(self, channels: int, planes: int):
        super().__init__()
        self.conv_mask = nn.Conv2d(channels, 1, 1)
        self.channel_add = nn.Sequential(nn.Conv2d(channels, planes, 1), nn.LayerNorm([planes, 1, 1]),
                                         nn.ReLU(inplace=True), nn.Conv2d(planes, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        attention = torch.softmax(self.conv_mask(x).reshape(n, 1, h * w), dim=-1)  # (N, 1, HW)
        context = torch.bmm(x.reshape(n, c, h * w), attention.transpose(1, 2))  # (N, C, 1)
        return x + self.channel_add(context.reshape(n, c, 1, 1))


class LightweightBottleneck(nn.Module):
    """1×1, depthwise 3×3 (stride), 1×1, GC block, residual: (N, C_in, H, W) -> (N, C, H/s, W/s)."""

    def __init__(self, c_in: int, channels: int, stride: int = 1, gc: bool = True):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.gc = GCBlock(channels, max(channels // 16, 16)) if gc else nn.Identity()
        projection = stride != 1 or c_in != channels
        self.shortcut = (nn.Sequential(nn.Conv2d(c_in, channels, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(channels)) if projection else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.gc(self.body(x)) + self.shortcut(x))


class LPN(nn.Module):
    """Lightweight backbone + two grouped deconvolutions: (N, 3, H, W) -> [(N, K, H/4, W/4)], H, W multiples of 16.

    Args:
        num_joints: K.
        layers: lightweight bottlenecks per stage (LPN-50: (3, 4, 6, 3)).
        deconv_channels: width of the two deconvolution layers (paper 256).
        gc: global-context blocks in every bottleneck (the paper's LPN; False gives its ablation without).
    """

    stride = 4

    def __init__(self, num_joints: int, layers: tuple[int, ...] = LPN_LAYERS[50], deconv_channels: int = 256,
                 gc: bool = True):
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"LPN needs four stages of at least one block, got layers={layers}")
        self.num_joints, self.layers = num_joints, tuple(layers)
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        stages, c_in = [], 64
        for width, stride, blocks in zip(STAGE_WIDTHS, STAGE_STRIDES, layers, strict=True):
            stage = [LightweightBottleneck(c_in, width, stride, gc)]
            stage += [LightweightBottleneck(width, width, 1, gc) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            c_in = width
        self.stages = nn.Sequential(*stages)
        head: list[nn.Module] = []
        for _ in range(2):
            head += [nn.ConvTranspose2d(c_in, deconv_channels, 4, stride=2, padding=1,
                                        groups=math.gcd(c_in, deconv_channels), bias=False),
                     nn.BatchNorm2d(deconv_channels), nn.ReLU(inplace=True),
                     nn.Conv2d(deconv_channels, deconv_channels, 1, bias=False), nn.BatchNorm2d(deconv_channels),
                     nn.ReLU(inplace=True)]
            c_in = deconv_channels
        self.deconv_layers = nn.Sequential(*head)
        self.final_layer = nn.Conv2d(c_in, num_joints, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        """The authors' from-scratch init: conv and deconv weights N(0, 0.001), BN γ = 1, β = 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.final_layer(self.deconv_layers(self.stages(self.stem(x))))]


def lpn(num_joints: int = 17, depth: int = 50, **kw) -> LPN:
    """LPN-``depth`` (50, 101 or 152); keywords as :class:`LPN`."""
    if depth not in LPN_LAYERS:
        raise ValueError(f"LPN depth must be one of {sorted(LPN_LAYERS)}, got {depth}")
    return LPN(num_joints, layers=LPN_LAYERS[depth], **kw)


def lpn_quick(num_joints: int = 17) -> LPN:
    """CPU quick LPN (ours, not published): two blocks per stage, 128-channel deconvolutions."""
    return LPN(num_joints, layers=(2, 2, 2, 2), deconv_channels=128)
