"""SimpleBaseline (Xiao, Wu & Wei, "Simple Baselines for Human Pose Estimation and Tracking", ECCV 2018).

A torchvision ResNet backbone (built with ``weights=None``; ImageNet weights come from a local file via
:mod:`animalpose.models.weights`), without its pooling and classifier, then three 4×4 stride-2
transposed convolutions with 256 channels (no bias, each followed by BN + ReLU) and a 1×1 conv to K
heatmaps. The backbone reduces by 32 and the deconvolutions upsample by 8, so the output stride is 4.

Parameter counts with 17 joints (paper Table 1 reports 34.0 M for ResNet-50 at 256×192):
ResNet-18 15,376,721 · ResNet-34 25,484,881 · ResNet-50 33,999,697 (tested within 1%) ·
ResNet-101 52,991,825 · ResNet-152 68,635,473.

Compute of ResNet-50 at 256×192: 5.43 G multiply-adds by :mod:`animalpose.flops` (a transposed conv costs
input positions × k² × C_in × C_out); the HRNet paper's Table 1 lists 8.9 GFLOPs for it, counted by a
different tool.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torchvision
from torch import nn

#: torchvision's ResNet constructors by depth (also CPN's trunk)
RESNETS = {
    18: torchvision.models.resnet18,
    34: torchvision.models.resnet34,
    50: torchvision.models.resnet50,
    101: torchvision.models.resnet101,
    152: torchvision.models.resnet152,
}


class SimpleBaseline(nn.Module):
    """ResNet + deconvolutions: (N, 3, H, W) -> [(N, K, H/4, W/4)], H and W divisible by 32.

    ``backbone`` keeps torchvision's module names (conv1, bn1, layer1..layer4), so a torchvision
    ImageNet state dict loads into it unchanged.
    """

    stride = 4

    def __init__(
        self,
        num_joints: int,
        depth: int = 50,
        deconv_channels: int = 256,
        num_deconv: int = 3,
        final_kernel: int = 1,
    ):
        super().__init__()
        if depth not in RESNETS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNETS)}, got {depth}")
        self.num_joints = num_joints
        self.depth = depth
        resnet = RESNETS[depth](weights=None)
        self.backbone = nn.Sequential(
            OrderedDict(
                (name, getattr(resnet, name))
                for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
            )
        )
        in_channels = resnet.fc.in_features
        layers: list[nn.Module] = []
        for _ in range(num_deconv):
            layers += [
                nn.ConvTranspose2d(in_channels, deconv_channels, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(deconv_channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = deconv_channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(in_channels, num_joints, final_kernel, padding=final_kernel // 2)
        self._init_head()

    def _init_head(self) -> None:
        """Head init of the reference: N(0, 0.001) weights, zero biases, BN γ=1 β=0."""
        for module in [*self.deconv_layers.modules(), self.final_layer]:
            if isinstance(module, nn.ConvTranspose2d | nn.Conv2d):
                nn.init.normal_(module.weight, std=0.001)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def pretrained_target(self) -> tuple[nn.Module, tuple[str, ...]]:
        """Where ImageNet weights go (the backbone) and which of its keys may be absent (none)."""
        return self.backbone, ()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.final_layer(self.deconv_layers(self.backbone(x)))]


def simple_baseline(num_joints: int = 17, depth: int = 50, **kw) -> SimpleBaseline:
    """SimpleBaseline with a ResNet-``depth`` backbone (18, 34, 50, 101 or 152)."""
    return SimpleBaseline(num_joints, depth=depth, **kw)
