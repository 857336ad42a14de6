"""Stacked hourglass networks (Newell, Yang & Deng, "Stacked Hourglass Networks for Human Pose
Estimation", ECCV 2016), in the form used by the CC-SSL reference ("Learning from Synthetic Animals",
Mu et al., CVPR 2020), which builds on the pytorch-pose implementation.

Architecture, for ``num_feats`` = 128 planes (256 = 2 × 128 feature channels):

- stem: 7×7/2 conv 3→64 (bias) + BN + ReLU → residual(64→128) → 2×2 max-pool →
  residual(128→256) → residual(256→256); the stem reduces the input by 4 (stride 4).
- per stack: hourglass of depth 4 (one residual per level on the upper branch, the lower branch and
  after the recursion, plus one extra residual at the innermost level: 13 residuals; nearest ×2
  upsampling), one residual, ``fc`` (1×1 conv + BN + ReLU), ``score`` (1×1 conv to K heatmaps).
- for every stack but the last, ``fc_`` (1×1 conv on the features) and ``score_`` (1×1 conv on the
  heatmaps) remap back into 256 channels and are added to the stack's input (intermediate
  supervision).

The stem, the stack wiring and the supervision layers are :class:`StackedHourglass`, shared with
PyraNet (:mod:`animalpose.models.pyranet`), which changes only the units.

Residuals are pre-activation bottlenecks with expansion 2: BN-ReLU-1×1 conv (C_in→p), BN-ReLU-3×3 conv
(p→p), BN-ReLU-1×1 conv (p→2p), convolutions with bias, and a 1×1 conv (with bias) on the shortcut
when C_in ≠ 2p.

Parameter counts (18 joints, 1 block per stack, 256 channels; verified in tests/models/test_hourglass.py):

    bottleneck 256→256: 214,528   stem: 513,152   last stack: 3,074,322   other stacks: 3,144,978
    1 stack 3,587,474 · 2 stacks 6,732,452 · 4 stacks 13,022,408 · 8 stacks 25,602,320

Compute at 256×256 (multiply-adds, :mod:`animalpose.flops`): 5.81 / 8.99 / 15.37 / 28.13 G for 1/2/4/8
stacks. Input H and W must be multiples of 64 (stride 4 × 2^depth).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck residual, expansion 2: (N, C_in, H, W) -> (N, 2·planes, H, W)."""

    expansion = 2

    def __init__(self, in_channels: int, planes: int):
        super().__init__()
        out_channels = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=True)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, kernel_size=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=True) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


def preact_residual(in_channels: int, planes: int, num_blocks: int) -> nn.Sequential:
    """``num_blocks`` pre-activation bottlenecks, the first mapping in_channels -> 2·planes:
    (N, C_in, H, W) -> (N, 2·planes, H, W)."""
    blocks = [PreActBottleneck(in_channels, planes)]
    blocks += [PreActBottleneck(planes * 2, planes) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


class Hourglass(nn.Module):
    """One hourglass of ``depth`` levels: (N, C, H, W) -> (N, C, H, W), H and W divisible by 2^depth.

    ``hg[level]`` holds the units of one level: [upper branch, lower branch before the recursion,
    lower branch after the recursion] and, at the innermost level (``hg[0]``), a fourth unit that
    replaces the recursion. Units map (N, C, h, w) to the same shape.

    Args:
        depth: levels (4 -> lowest resolution H/16 inside the hourglass).
        unit: builds every unit but the upper-branch ones.
        skip_unit: builds the upper-branch unit, whose output is summed with the upsampled lower branch
            (PyraNet puts variance control there); None: ``unit``.
    """

    def __init__(self, depth: int, unit: Callable[[], nn.Module], skip_unit: Callable[[], nn.Module] | None = None):
        super().__init__()
        self.depth = depth
        skip_unit = skip_unit or unit
        levels = []
        for level in range(depth):
            units = [skip_unit(), unit(), unit()]
            if level == 0:
                units.append(unit())
            levels.append(nn.ModuleList(units))
        self.hg = nn.ModuleList(levels)

    def _forward(self, n: int, x: torch.Tensor) -> torch.Tensor:
        level = self.hg[n - 1]
        up1 = level[0](x)
        low1 = level[1](F.max_pool2d(x, kernel_size=2, stride=2))
        low2 = self._forward(n - 1, low1) if n > 1 else level[3](low1)
        low3 = level[2](low2)
        return up1 + F.interpolate(low3, scale_factor=2.0, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(self.depth, x)


class StackedHourglass(nn.Module):
    """Stem, stacked hourglasses, intermediate supervision: (N, 3, H, W) -> ``num_stacks`` × (N, K, H/4, W/4).

    The base of :class:`HourglassNet` and :class:`~animalpose.models.pyranet.PyraNet`, which differ only
    in the units inside the hourglass and in the residual after it. The stem, ``fc``, ``score`` and the
    remapping layers (``fc_``, ``score_``) are built here, in this order, after the stacks' hourglasses
    and residuals: the order fixes both the state-dict names and the draws of a seeded initialisation.

    Args:
        num_joints: K, heatmap channels.
        num_stacks: hourglasses in sequence, each supervised.
        num_feats: bottleneck planes p; feature channels are 2p.
        stem_channels: channels of the 7×7 stem conv.
        hourglass: builds one stack's hourglass, (N, 2p, H/4, W/4) -> same.
        residual: builds the unit after one stack's hourglass, (N, 2p, H/4, W/4) -> same.
    """

    stride = 4

    def __init__(
        self,
        num_joints: int,
        num_stacks: int,
        num_feats: int,
        stem_channels: int,
        hourglass: Callable[[], nn.Module],
        residual: Callable[[], nn.Module],
    ):
        super().__init__()
        self.num_joints = num_joints
        self.num_stacks = num_stacks
        ch = num_feats * PreActBottleneck.expansion
        self.conv1 = nn.Conv2d(3, stem_channels, kernel_size=7, stride=2, padding=3, bias=True)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = preact_residual(stem_channels, stem_channels, 1)
        self.layer2 = preact_residual(stem_channels * 2, stem_channels * 2, 1)
        self.layer3 = preact_residual(stem_channels * 4, num_feats, 1)
        self.hg = nn.ModuleList([hourglass() for _ in range(num_stacks)])
        self.res = nn.ModuleList([residual() for _ in range(num_stacks)])
        self.fc = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(ch, ch, 1, bias=True), nn.BatchNorm2d(ch), nn.ReLU(inplace=True))
                for _ in range(num_stacks)
            ]
        )
        self.score = nn.ModuleList([nn.Conv2d(ch, num_joints, 1, bias=True) for _ in range(num_stacks)])
        self.fc_ = nn.ModuleList([nn.Conv2d(ch, ch, 1, bias=True) for _ in range(num_stacks - 1)])
        self.score_ = nn.ModuleList([nn.Conv2d(num_joints, ch, 1, bias=True) for _ in range(num_stacks - 1)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = F.max_pool2d(x, kernel_size=2, stride=2)
        x = self.layer3(self.layer2(x))
        outputs = []
        for i in range(self.num_stacks):
            y = self.fc[i](self.res[i](self.hg[i](x)))
            score = self.score[i](y)
            outputs.append(score)
            if i < self.num_stacks - 1:
                x = x + self.fc_[i](y) + self.score_[i](score)
        return outputs


class HourglassNet(StackedHourglass):
    """Stacked hourglass of pre-activation bottlenecks: (N, 3, H, W) -> list of ``num_stacks`` heatmaps
    (N, K, H/4, W/4).

    Args:
        num_joints: K, heatmap channels.
        num_stacks: hourglasses in sequence, each supervised.
        num_blocks: bottlenecks per residual (1 in CC-SSL).
        num_feats: bottleneck planes p; feature channels are 2p (128 -> 256 channels).
        depth: hourglass levels (4 -> lowest resolution H/64).
        stem_channels: channels of the 7×7 stem conv (64).
    """

    def __init__(
        self,
        num_joints: int,
        num_stacks: int = 4,
        num_blocks: int = 1,
        num_feats: int = 128,
        depth: int = 4,
        stem_channels: int = 64,
    ):
        ch = num_feats * PreActBottleneck.expansion

        def residual() -> nn.Sequential:
            return preact_residual(ch, num_feats, num_blocks)

        super().__init__(
            num_joints,
            num_stacks,
            num_feats,
            stem_channels,
            hourglass=lambda: Hourglass(depth, residual),
            residual=residual,
        )


def hourglass_net(num_joints: int = 18, num_stacks: int = 4, **kw) -> HourglassNet:
    """CC-SSL hourglass with 256 channels; kw passes through to :class:`HourglassNet`."""
    return HourglassNet(num_joints, num_stacks=num_stacks, **kw)


def hourglass_quick_net(num_joints: int = 18) -> HourglassNet:
    """CPU quick preset: 2 stacks, 128 feature channels (64 planes), 32-channel stem; for 128×128 input."""
    return HourglassNet(num_joints, num_stacks=2, num_feats=64, stem_channels=32)
