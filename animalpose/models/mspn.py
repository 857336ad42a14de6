"""Multi-Stage Pose Network (Li, Wang, Yin, Peng, Du, Xiao, Yu, Lu, Wei & Sun, "Rethinking on Multi-Stage
Networks for Human Pose Estimation", arXiv 1901.00148, 2019), as mmpose's ``MSPN`` backbone + ``MSPNHead``
(configs ``td-hm_{2,3,4}xmspn50_8xb32-210e_coco-256x192``), on the skeleton of
:mod:`animalpose.models.multistage`.

Each stage is a CPN-like single-stage module whose downsampling path is a whole ResNet-50 body (the
torchvision ``layer1``..``layer4``: bottlenecks [3, 4, 6, 3], channels 256, 512, 1024, 2048, doubling at each
downsampling) and whose upsampling path keeps 256 channels; the stem (7×7 conv, max-pool) runs once.
Stages are joined by cross-stage feature aggregation (the previous stage's encoder and decoder features,
each through a 1×1 conv, added to this stage's encoder at every level) and the previous stage's finest
feature (1×1 conv to 64 channels) is the next stage's input. Every stage and level is supervised
(coarse-to-fine: Gaussian kernels 15/11/9/7, the last stage 11/9/7/5, OHKM top 8 on the finest level;
:func:`animalpose.models.multistage.coarse_to_fine_loss`).

Where the numbers come from. Neither the MSPN paper, nor the authors' README (megvii-research/MSPN, AP
tables only), nor mmpose's model zoo (mspn_coco.md, AP only) publishes a parameter count or GFLOPs for
these variants that we found, so both are computed from the architecture above and tested term by term
(tests/models/test_mspn.py). Convolutions are bias-free before BN, as mmpose's; the authors' code gives
every conv a (redundant) bias: one per output channel, 66,568 more for ``mspn_2stg``, 140,816 for
``mspn_4stg``.
With 17 joints at 256×192 (multiply-adds by :mod:`animalpose.flops`): one stage (mmpose's ``mspn50``)
25,112,264 parameters, 5.07 G; ``mspn_2stg`` 56,800,464, 11.26 G; ``mspn_3stg`` 88,488,664, 17.45 G;
``mspn_4stg`` 120,176,864, 23.64 G. A stage before the last: 31,688,200 = ResNet-50 body 23,498,496 +
upsampling path with its cross-stage convs 7,768,704 + predictions 421,000; the last stage's upsampling path
has no cross-stage convs (1,183,232); the stem 9,536 runs once. ``mspn_quick`` is ours (ResNet-18 bodies,
2 stages, 64-channel upsampling; 128×96 input): 23,022,800 parameters, 0.93 G. ImageNet weights
(``model.pretrained``) go into the stem and the first stage's body; mmpose copies them into every stage's
body, here the later stages start from scratch.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from animalpose.models.multistage import OHKM_TOPK, MultiStageNet, Stage
from animalpose.models.simple_baseline import RESNETS


class _TorchvisionLayout(nn.Module):
    """The stem and first stage's body under torchvision's ResNet names (conv1, bn1, layer1..layer4), so an
    ImageNet state dict loads into them unchanged. Holds references, no parameters of its own."""

    def __init__(self, stem: nn.Sequential, body: nn.ModuleList):
        super().__init__()
        self.conv1, self.bn1 = stem.conv1, stem.bn1
        for i, layer in enumerate(body):
            self.add_module(f"layer{i + 1}", layer)


class MSPN(MultiStageNet):
    """MSPN with ResNet-``depth`` bodies: (N, 3, H, W) -> num_stages·4 × (N, K, H/4, W/4).

    Args:
        num_joints: K.
        num_stages: single-stage modules (2, 3, 4 in the paper).
        depth: ResNet depth of every stage's downsampling path (paper 50).
        unit_channels: width U of the upsampling path (paper 256).
        ohkm_topk: M of OHKM on each stage's finest output (8 of 17).
    """

    def __init__(self, num_joints: int, num_stages: int = 4, depth: int = 50, unit_channels: int = 256,
                 ohkm_topk: int = OHKM_TOPK):
        if depth not in RESNETS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNETS)}, got {depth}")
        if num_stages < 1:
            raise ValueError(f"num_stages must be >= 1, got {num_stages}")
        resnets = [RESNETS[depth](weights=None) for _ in range(num_stages)]
        stem = nn.Sequential(OrderedDict((n, getattr(resnets[0], n)) for n in ("conv1", "bn1", "relu", "maxpool")))
        expansion = 4 if depth >= 50 else 1
        channels = tuple(64 * 2**i * expansion for i in range(4))
        stages = [Stage(nn.ModuleList(getattr(r, f"layer{i}") for i in range(1, 5)), channels, unit_channels,
                        last=s == num_stages - 1, cross_channels=64) for s, r in enumerate(resnets)]
        super().__init__(num_joints, stem, stages, unit_channels, ohkm_topk=ohkm_topk)
        self.depth = depth

    def pretrained_target(self) -> tuple[nn.Module, tuple[str, ...]]:
        """ImageNet weights go into the stem and the first stage's body (torchvision key layout)."""
        return _TorchvisionLayout(self.stem, self.stages[0].down), ()


def mspn(num_joints: int = 17, num_stages: int = 4, **kw) -> MSPN:
    """MSPN with ``num_stages`` ResNet-50 stages; keywords as :class:`MSPN`."""
    return MSPN(num_joints, num_stages=num_stages, **kw)


def mspn_quick(num_joints: int = 17) -> MSPN:
    """CPU quick MSPN: 2 stages of ResNet-18 bodies, 64-channel upsampling (ours, not published)."""
    return MSPN(num_joints, num_stages=2, depth=18, unit_channels=64)
