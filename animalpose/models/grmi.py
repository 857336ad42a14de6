"""G-RMI's pose head (Papandreou et al., "Towards Accurate Multi-person Pose Estimation in the Wild", CVPR 2017,
Sec. 3.1) on any backbone: a 1×1 conv from the backbone's features to 3K maps (K heatmap logits, K x- and K
y-offsets, :mod:`animalpose.codecs.grmi`'s layout), bilinearly upsampled to output stride 4. The network
carries G-RMI's loss (λ_h = 4 · logistic loss on disks of radius R + λ_o = 1 · Huber loss on the offsets
inside them, :class:`animalpose.losses.GRMILoss`) and is trained and decoded with ``codec.kind: grmi``.

:class:`GRMINet` takes any feature extractor (N, 3, H, W) -> (N, C, H/s, W/s); the factories use the paper's
fully convolutional ResNet at output stride 8 (torchvision's ResNet with layer3 and layer4 dilated instead
of strided, as the paper's atrous convolution; ImageNet weights load into ``features`` by torchvision's names).

Where the numbers come from: the paper uses ResNet-101 at output stride 8 and upsamples to the input
resolution; our maps stop at stride 4, where every codec of this project works, and the offsets give the
sub-pixel position. The paper publishes no parameter count or FLOPs, so the counts are computed from the
architecture and tested term by term (tests/models/test_grmi.py): with 17 joints ``grmi_resnet101``
42,604,659 = ResNet-101 trunk 42,500,160 + head 2048·51 + 51; ``grmi_resnet50`` 23,612,531; compute at
256×192 (multiply-adds, :mod:`animalpose.flops`) 33.31 G and 18.77 G: the dilated layer3 and layer4 run at
stride 8. ``grmi_quick`` is ours: ResNet-18 through layer3 with layer3 at stride 1 (BasicBlock has no
dilation), 256 channels at stride 8: 2,795,891 parameters, 0.65 G at 128×96.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from animalpose.losses import GRMILoss, PoseLoss

_RESNETS = {50: torchvision.models.resnet50, 101: torchvision.models.resnet101}


class GRMINet(nn.Module):
    """Features + 1×1 conv to 3K maps, upsampled to stride 4: (N, 3, H, W) -> [(N, 3K, H/4, W/4)].

    Args:
        features: any module (N, 3, H, W) -> (N, feature_channels, H/s, W/s), s ≥ 4.
        feature_channels: C of the features.
        num_joints: K.
    """

    stride = 4
    channels_per_joint = 3

    def __init__(self, features: nn.Module, feature_channels: int, num_joints: int):
        super().__init__()
        self.num_joints = num_joints
        self.features = features
        self.final_layer = nn.Conv2d(feature_channels, 3 * num_joints, 1)

    def pretrained_target(self) -> tuple[nn.Module, tuple[str, ...]]:
        """Where ImageNet weights go (the ResNet trunk) and which of its keys may be absent (none)."""
        return self.features, ()

    def heatmap_loss(self) -> PoseLoss:
        """λ_h = 4 · logistic loss on the disks + λ_o = 1 · Huber loss on the offsets inside them."""
        return GRMILoss()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2] // self.stride, x.shape[-1] // self.stride
        return [F.interpolate(self.final_layer(self.features(x)), size=(h, w), mode="bilinear", align_corners=False)]


def resnet_features(resnet: nn.Module, last: str = "layer4") -> nn.Sequential:
    """A torchvision ResNet's trunk up to ``last``, keeping its module names."""
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    return nn.Sequential(OrderedDict((n, getattr(resnet, n)) for n in names[:names.index(last) + 1]))


def grmi_resnet(num_joints: int = 17, depth: int = 101) -> GRMINet:
    """G-RMI on a ResNet-``depth`` (50 or 101) at output stride 8 (layer3 and layer4 dilated)."""
    if depth not in _RESNETS:
        raise ValueError(f"G-RMI ResNet depth must be one of {sorted(_RESNETS)}, got {depth}")
    resnet = _RESNETS[depth](weights=None, replace_stride_with_dilation=[False, True, True])
    return GRMINet(resnet_features(resnet), 2048, num_joints)


def grmi_quick(num_joints: int = 17) -> GRMINet:
    """CPU quick G-RMI (ours): ResNet-18 through layer3, layer3 at stride 1, so 256 channels at stride 8."""
    resnet = torchvision.models.resnet18(weights=None)
    first = resnet.layer3[0]
    first.conv1.stride = (1, 1)
    first.downsample[0].stride = (1, 1)
    return GRMINet(resnet_features(resnet, "layer3"), 256, num_joints)
