"""Cascaded Pyramid Network (Chen, Wang, Peng, Zhang, Yu & Sun, "Cascaded Pyramid Network for
Multi-Person Pose Estimation", CVPR 2018), laid out as the authors' code (``chenyilun95/tf-cpn``) and its
PyTorch port (``GengDavid/pytorch-cpn``), which this file follows layer for layer.

Architecture, for pyramid width C = 256 and refine planes p = 128 (the paper's values):

- backbone: a torchvision ResNet (built with ``weights=None``; ImageNet weights come from a local file via
  :mod:`animalpose.models.weights`) giving C2..C5 at strides 4, 8, 16, 32.
- GlobalNet, from C5 down to C2: lateral 1×1 conv C_l→C + BN + ReLU; from C4 on, the coarser level's
  feature is bilinearly upsampled ×2, passed through a 1×1 conv C→C + BN and added to the lateral.
  Each level predicts: 1×1 conv C→C + BN + ReLU, 3×3 conv C→K, bilinear upsampling to the C2 size, BN(K).
- RefineNet: the GlobalNet feature of level C_{2+i} goes through i bottlenecks (C2: 0, C3: 1, C4: 2,
  C5: 3; bottleneck = 1×1 C→p, 3×3 p→p, 1×1 p→2p = C, BN after each, identity shortcut), is upsampled
  to the C2 size, the four are concatenated (4C channels) and a final bottleneck (with a 1×1 conv + BN
  shortcut 4C→C) and a 3×3 conv C→K + BN(K) give the refined heatmaps.

``forward`` returns five (N, K, H/4, W/4) maps: GlobalNet's C2, C3, C4, C5 predictions, then RefineNet's
(the final prediction). :meth:`CPN.heatmap_loss` is the paper's loss: L2 on all joints for each
GlobalNet level, online hard keypoint mining on RefineNet (the top M = 8 of the 17 COCO joints), summed.
Deviation: tf-cpn trains the GlobalNet levels against Gaussians of decreasing size (kernels 15, 11, 9, 7)
and RefineNet against the smallest; here every stage has the codec's one target.

Where the numbers come from. Parameters: neither the CPN paper nor the HRNet paper (whose Table 1
lists CPN without a parameter count) publishes one, and we know of no CPN entry in mmpose's model zoo, so the
counts are computed from the architecture above and tested term by term (tests/models/test_cpn.py).
With 17 joints: ``cpn50`` 27,010,538 = ResNet-50 trunk 23,508,032 (torchvision's 25,557,032 less the
2,049,000 of its classifier) + GlobalNet 1,604,232 + RefineNet 1,898,274; ``cpn101`` 46,002,666 (trunk
42,500,160). Compute: Table 1 of the HRNet paper (Sun et al., CVPR 2019) lists CPN ResNet-50 at 256×192
at 6.20 GFLOPs (69.4 AP with OHKM); :mod:`animalpose.flops` counts 7.23 G multiply-adds for ``cpn50``
(trunk 4.00 G; the final RefineNet bottleneck on the 1024-channel concatenation at 64×48 alone is 1.76 G),
17 % more. We keep the authors' concatenation rather than fit the figure; counting tools differ (the
same table's SimpleBaseline-50 8.90 GFLOPs is 5.43 G by ours). ``cpn101``: 10.87 G, no published figure.
``cpn_quick`` is ours (ResNet-18 trunk, C = 64, p = 32; 128×96 input): 11,434,794 parameters, 0.51 G.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from animalpose.losses import HeatmapMSELoss, IntermediateFinalLoss, OHKMLoss, PoseLoss
from animalpose.models.simple_baseline import RESNETS

#: CPN's OHKM keeps the M = 8 hardest of the 17 COCO joints (paper Sec. 4.3, Table 4).
OHKM_TOPK = 8


def upsample_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of x (N, C, h, w) to ref's (H, W), align_corners=True as pytorch-cpn's nn.Upsample.
    A leaf for torch.fx (the size is read inside), so BN folding can trace CPN, MSPN and RSN."""
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=True)


torch.fx.wrap("upsample_like")


def conv_bn(c_in: int, c_out: int, kernel: int, relu: bool = True) -> nn.Sequential:
    """Bias-free conv ('same' padding) + BN (+ ReLU): (N, c_in, H, W) -> (N, c_out, H, W)."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class RefineBottleneck(nn.Module):
    """pytorch-cpn's RefineNet bottleneck, expansion 2: (N, c_in, H, W) -> (N, 2·planes, H, W).

    1×1 c_in→p, 3×3 p→p, 1×1 p→2p, BN after each, ReLU after the first two and after the sum; the
    shortcut is 1×1 conv + BN when c_in ≠ 2p.
    """

    def __init__(self, c_in: int, planes: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(c_in, planes, 1), conv_bn(planes, planes, 3), conv_bn(planes, 2 * planes, 1,
                                                                                                 relu=False))
        self.shortcut = conv_bn(c_in, 2 * planes, 1, relu=False) if c_in != 2 * planes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class GlobalNet(nn.Module):
    """Feature pyramid over C2..C5 with one heatmap prediction per level.

    ``forward([C2, C3, C4, C5])`` (C_l channels, strides 4..32) -> (features [4 × (N, C, h_l, w_l)],
    heatmaps [4 × (N, K, h_2, w_2)]), both ordered C2..C5.
    """

    def __init__(self, in_channels: tuple[int, ...], channels: int, num_joints: int):
        super().__init__()
        self.lateral = nn.ModuleList(conv_bn(c, channels, 1) for c in in_channels)
        # top-down merge of level l+1 into level l (one per level below C5)
        self.merge = nn.ModuleList(conv_bn(channels, channels, 1, relu=False) for _ in in_channels[:-1])
        self.predict_features = nn.ModuleList(conv_bn(channels, channels, 1) for _ in in_channels)
        self.predict_heatmaps = nn.ModuleList(
            nn.Conv2d(channels, num_joints, 3, padding=1, bias=False) for _ in in_channels)
        self.predict_bn = nn.ModuleList(nn.BatchNorm2d(num_joints) for _ in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        fms: list[torch.Tensor] = []  # built C5 first (top-down), returned C2 first
        outs: list[torch.Tensor] = []
        for level in reversed(range(len(feats))):
            fm = self.lateral[level](feats[level])
            if fms:
                fm = fm + self.merge[level](upsample_like(fms[-1], fm))
            fms.append(fm)
            hm = self.predict_heatmaps[level](self.predict_features[level](fm))
            outs.append(self.predict_bn[level](upsample_like(hm, feats[0])))  # BN after the upsampling, as pytorch-cpn
        return fms[::-1], outs[::-1]


class RefineNet(nn.Module):
    """Level C_{2+i} through i bottlenecks, upsampled to C2, concatenated, final bottleneck + 3×3 conv.

    ``forward(features [4 × (N, C, h_l, w_l)], C2..C5) -> (N, K, h_2, w_2)``.
    """

    def __init__(self, channels: int, planes: int, num_joints: int, levels: int = 4):
        super().__init__()
        if 2 * planes != channels:
            raise ValueError(f"refine bottlenecks map {channels} channels to 2·planes; got planes={planes}")
        self.cascade = nn.ModuleList(
            nn.Sequential(*(RefineBottleneck(channels, planes) for _ in range(i))) for i in range(levels))
        self.final_bottleneck = RefineBottleneck(levels * channels, planes)
        self.final_layer = conv_bn(channels, num_joints, 3, relu=False)

    def forward(self, fms: list[torch.Tensor]) -> torch.Tensor:
        refined = [upsample_like(stage(fm), fms[0]) for stage, fm in zip(self.cascade, fms, strict=True)]
        return self.final_layer(self.final_bottleneck(torch.cat(refined, dim=1)))


class CPN(nn.Module):
    """ResNet + GlobalNet + RefineNet: (N, 3, H, W) -> 5 × (N, K, H/4, W/4), H and W divisible by 32.

    ``backbone`` keeps torchvision's module names (conv1, bn1, layer1..layer4), so a torchvision
    ImageNet state dict loads into it unchanged.

    Args:
        num_joints: K.
        depth: ResNet depth (18, 34, 50, 101, 152).
        channels: pyramid width C (paper 256).
        refine_planes: bottleneck planes p of RefineNet, 2p = C (paper 128).
        ohkm_topk: M of the OHKM loss on RefineNet (paper 8 of 17).
    """

    stride = 4

    def __init__(self, num_joints: int, depth: int = 50, channels: int = 256, refine_planes: int = 128,
                 ohkm_topk: int = OHKM_TOPK):
        super().__init__()
        if depth not in RESNETS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNETS)}, got {depth}")
        self.num_joints, self.depth, self.ohkm_topk = num_joints, depth, ohkm_topk
        resnet = RESNETS[depth](weights=None)
        self.backbone = nn.Sequential(OrderedDict(
            (name, getattr(resnet, name))
            for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")))
        expansion = 4 if depth >= 50 else 1
        in_channels = tuple(64 * 2**i * expansion for i in range(4))  # C2..C5
        self.global_net = GlobalNet(in_channels, channels, num_joints)
        self.refine_net = RefineNet(channels, refine_planes, num_joints)

    def pretrained_target(self) -> tuple[nn.Module, tuple[str, ...]]:
        """Where ImageNet weights go (the backbone) and which of its keys may be absent (none)."""
        return self.backbone, ()

    def heatmap_loss(self) -> PoseLoss:
        """L2 on every GlobalNet level, OHKM (top ``ohkm_topk`` joints) on RefineNet."""
        return IntermediateFinalLoss(HeatmapMSELoss(), OHKMLoss(self.ohkm_topk))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b = self.backbone
        c1 = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        c2 = b.layer1(c1)
        c3 = b.layer2(c2)
        c4 = b.layer3(c3)
        c5 = b.layer4(c4)
        fms, global_outs = self.global_net([c2, c3, c4, c5])
        return [*global_outs, self.refine_net(fms)]


def cpn(num_joints: int = 17, depth: int = 50, **kw) -> CPN:
    """CPN with a ResNet-``depth`` backbone; keywords as :class:`CPN`."""
    return CPN(num_joints, depth=depth, **kw)


def cpn_quick(num_joints: int = 17) -> CPN:
    """CPU quick CPN: ResNet-18 trunk, pyramid width 64, refine planes 32 (ours, not published)."""
    return CPN(num_joints, depth=18, channels=64, refine_planes=32)
