"""HRNet (Sun, Xiao, Liu & Wang, "Deep High-Resolution Representation Learning for Human Pose
Estimation", CVPR 2019), the pose network: the final 1×1 conv reads only the highest-resolution branch.

- stem: two 3×3 stride-2 convs (64 channels, BN, ReLU) and four bottlenecks (expansion 4, 64 planes):
  256 channels at stride 4;
- stage 2/3/4: 1/4/3 modules with 2/3/4 parallel branches of widths W, 2W, 4W, 8W, each branch four
  basic blocks; transitions open a new branch by a strided 3×3 conv from the lowest resolution;
- every module ends with multi-scale fusion: a lower-resolution input reaches a higher output by 1×1 conv
  + BN + nearest upsampling, a higher-resolution input reaches a lower output by strided 3×3 convs (BN,
  ReLU on all but the last), summed and passed through a ReLU; the last module fuses only into the
  highest-resolution branch;
- final 1×1 conv (with bias) W → K.

The residual blocks are torchvision's ``BasicBlock`` and ``Bottleneck``, the same blocks as the authors'
(post-activation, convs without bias, BN momentum 0.1). Module names follow the authors' code (conv1,
bn1, conv2, bn2, layer1, transition1, stage2, ...), so an ImageNet HRNet state dict loads into it without
renaming.

Published (paper Table 1, COCO, 256×192, 17 joints): W32 28.5 M parameters, 7.10 GFLOPs; W48 63.6 M,
14.6 GFLOPs. Ours: W32 28,536,113 parameters and 7.65 GFLOPs; W48 63,595,745 and 15.69 GFLOPs
(parameters tested within 1%, W32 GFLOPs within 7.1–7.7). GFLOPs are multiply-adds of convolutions, see
:mod:`animalpose.flops`; the paper's counter gives slightly lower figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

BN_MOMENTUM = 0.1


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def _make_blocks(block: type[BasicBlock | Bottleneck], in_channels: int, planes: int, n: int) -> nn.Sequential:
    """``n`` torchvision ResNet blocks (the authors' blocks: post-activation, BN momentum 0.1, convs without
    bias); the first gets a 1×1 conv + BN shortcut when in_channels != planes · expansion."""
    out_channels = planes * block.expansion
    downsample = None
    if in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
        )
    layers = [block(in_channels, planes, downsample=downsample)]
    layers += [block(out_channels, planes) for _ in range(n - 1)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches then multi-scale fusion: list of B tensors (N, C_b, H/2^b, W/2^b) -> list of
    B tensors (or only the highest resolution when ``multi_scale_output`` is False)."""

    def __init__(self, channels: list[int], num_blocks: int, multi_scale_output: bool = True):
        super().__init__()
        self.num_branches = len(channels)
        self.multi_scale_output = multi_scale_output
        self.branches = nn.ModuleList([_make_blocks(BasicBlock, c, c, num_blocks) for c in channels])
        self.fuse_layers = nn.ModuleList(
            [
                nn.ModuleList([self._fuse_layer(channels, j, i) for j in range(self.num_branches)])
                for i in range(self.num_branches if multi_scale_output else 1)
            ]
        )
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _fuse_layer(channels: list[int], j: int, i: int) -> nn.Module:
        """Map branch j into branch i's resolution and width (j == i: identity)."""
        if j == i:
            return nn.Identity()
        if j > i:
            return nn.Sequential(
                nn.Conv2d(channels[j], channels[i], 1, bias=False),
                nn.BatchNorm2d(channels[i], momentum=BN_MOMENTUM),
                nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
            )
        steps = []
        for k in range(i - j):
            last = k == i - j - 1
            out_channels = channels[i] if last else channels[j]
            layers: list[nn.Module] = [
                _conv3x3(channels[j], out_channels, stride=2),
                nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
            ]
            if not last:
                layers.append(nn.ReLU(inplace=True))
            steps.append(nn.Sequential(*layers))
        return nn.Sequential(*steps)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        if self.num_branches == 1:
            return xs
        fused = []
        for fuse in self.fuse_layers:
            y = fuse[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + fuse[j](xs[j])
            fused.append(self.relu(y))
        return fused


def _transition(previous: list[int], current: list[int]) -> nn.ModuleList:
    """Per new-stage branch: adapt an existing branch (or identity) or open one from the lowest."""
    layers: list[nn.Module] = []
    for i, c in enumerate(current):
        if i < len(previous):
            if previous[i] == c:
                layers.append(nn.Identity())
            else:
                layers.append(
                    nn.Sequential(_conv3x3(previous[i], c), nn.BatchNorm2d(c, momentum=BN_MOMENTUM), nn.ReLU(True))
                )
        else:
            steps = []
            for k in range(i + 1 - len(previous)):
                in_c = previous[-1]
                out_c = c if k == i - len(previous) else in_c
                steps.append(
                    nn.Sequential(
                        _conv3x3(in_c, out_c, stride=2),
                        nn.BatchNorm2d(out_c, momentum=BN_MOMENTUM),
                        nn.ReLU(inplace=True),
                    )
                )
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


def _stage(channels: list[int], num_modules: int, num_blocks: int, multi_scale_output: bool = True) -> nn.Sequential:
    """One stage: ``num_modules`` high-resolution modules on branches of ``channels``; with
    ``multi_scale_output`` False, the last one fuses only into the highest-resolution branch (HRNet's
    final stage)."""
    return nn.Sequential(
        *(
            HighResolutionModule(channels, num_blocks, multi_scale_output or m < num_modules - 1)
            for m in range(num_modules)
        )
    )


@dataclass(frozen=True)
class HRNetConfig:
    """Stage layout; widths of stage s are ``width · 2^b`` for its branches b."""

    width: int = 32
    num_modules: tuple[int, int, int] = (1, 4, 3)
    num_blocks: int = 4
    stem_blocks: int = 4


class HRNet(nn.Module):
    """HRNet pose network: (N, 3, H, W) -> [(N, K, H/4, W/4)], H and W divisible by 32."""

    stride = 4

    def __init__(self, num_joints: int, config: HRNetConfig | None = None):
        super().__init__()
        cfg = config or HRNetConfig()
        self.num_joints = num_joints
        self.config = cfg
        self.conv1 = _conv3x3(3, 64, stride=2)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = _conv3x3(64, 64, stride=2)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _make_blocks(Bottleneck, 64, 64, cfg.stem_blocks)

        # Stage s has s branches of widths W·2^b; transition s-1 leads into it. Registered in this order
        # (transition1, stage2, ...): the authors' names, and the order of the seeded initialisation.
        widths = [cfg.width * 2**b for b in range(4)]
        self.transition1 = _transition([64 * Bottleneck.expansion], widths[:2])
        self.stage2 = _stage(widths[:2], cfg.num_modules[0], cfg.num_blocks)
        self.transition2 = _transition(widths[:2], widths[:3])
        self.stage3 = _stage(widths[:3], cfg.num_modules[1], cfg.num_blocks)
        self.transition3 = _transition(widths[:3], widths)
        self.stage4 = _stage(widths, cfg.num_modules[2], cfg.num_blocks, multi_scale_output=False)
        self.final_layer = nn.Conv2d(widths[0], num_joints, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        """Authors' init: conv weights N(0, 0.001), zero biases, BN γ=1 β=0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.001)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def pretrained_target(self) -> tuple[nn.Module, tuple[str, ...]]:
        """ImageNet weights load into the whole network except the pose head ``final_layer``."""
        return self, ("final_layer.",)

    @staticmethod
    def _apply_transition(transition: nn.ModuleList, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [layer(xs[i] if i < len(xs) else xs[-1]) for i, layer in enumerate(transition)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        xs = self.stage2(self._apply_transition(self.transition1, xs))
        xs = self.stage3(self._apply_transition(self.transition2, xs))
        xs = self.stage4(self._apply_transition(self.transition3, xs))
        return [self.final_layer(xs[0])]


def hrnet(num_joints: int = 17, width: int = 32, **kw) -> HRNet:
    """HRNet-W``width`` (32 or 48 in the paper); kw overrides :class:`HRNetConfig` fields."""
    return HRNet(num_joints, HRNetConfig(width=width, **kw))
