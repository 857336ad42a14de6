"""Residual Steps Network (Cai, Wang, Luo, Yin, Du, Wang, Zhang, Zhou, Zhou & Sun, "Learning Delicate Local
Representations for Multi-Person Pose Estimation", ECCV 2020), as mmpose's ``RSN`` backbone (configs
``td-hm_rsn18`` / ``td-hm_rsn50_8xb32-210e_coco-256x192``) on the skeleton of
:mod:`animalpose.models.multistage`; the paper's Pose Refine Machine on the final output is an option
(``prm=True``, e.g. ``build_model("rsn18", prm=True)``).

- Residual steps block (RSB, mmpose ``RSB``, expansion 1): 1×1 conv (stride s) C_in→4b + BN + ReLU, split
  into four branches of b = ⌊26·C_in/64⌋ channels; branch i runs i + 1 3×3 convs (+ BN + ReLU), the j-th
  of them also adding the j-th output of branch i − 1 (dense intra-level connections; receptive fields
  3, 5, 7, 9 on the four branches); the last outputs of the four branches are concatenated, 1×1 conv
  4b→C_out + BN, plus the shortcut (1×1 conv + BN when the shape changes), ReLU.
- Downsampling path: RSBs [2, 2, 2, 2] (RSN-18) or [3, 4, 6, 3] (RSN-50) at channels 64, 128, 256, 512 and
  strides 4..32; upsampling path, cross-stage aggregation, predictions and coarse-to-fine supervision are
  MSPN's (:mod:`animalpose.models.multistage`).
- Pose Refine Machine (paper Sec. 3.3; mmpose ``PRM``) on the last stage's final heatmaps: 3×3 conv K→K +
  BN + ReLU gives F; a channel path (global average pool, twice Linear K→K + BN1d + ReLU, sigmoid) and a
  spatial path (1×1 conv K→K + BN + ReLU, depthwise 9×9 conv + BN + ReLU, 1×1 conv K→1 + BN + ReLU,
  sigmoid) give α (N, K, 1, 1) and β (N, 1, h, w); the output is F·(1 + α·β).

Where the numbers come from. GFLOPs: the authors' README (caiyuanhao1998/RSN, "Results on COCO val",
256×192) lists RSN-18 at 2.5 and RSN-50 at 6.4 GFLOPs. :mod:`animalpose.flops` counts 2.25 G multiply-adds
for ``rsn18`` (10 % under the README; tested) and 4.07 G for ``rsn50`` (36 % under). The architecture is
mmpose's, whose RSB has expansion 1 (unit widths 64..512). The authors' released ``exps/RSN50.coco`` and
``exps/RSN18.coco`` network.py use expansion 4 with branches of 26·C_in/64 channels (up to 832 in the
last unit), which counts 48.6 G for RSN-50 (``RSN(..., blocks=(3, 4, 6, 3), expansion=4)``): neither layout
gives 6.4 G, and without the authors' counter we keep mmpose's, which reproduces RSN-18's figure.
Parameters: neither the paper nor mmpose's model zoo publishes a count, so they are computed from the
architecture and tested term by term (tests/models/test_rsn.py): with 17 joints ``rsn18`` 9,144,936 and
``rsn50`` 19,328,584; the PRM adds 5,068. ``rsn_quick`` is ours (RSN-18 blocks, 64-channel upsampling;
128×96 input): 8,408,808 parameters, 0.39 G.

Why the PRM is off by default: the authors' released COCO networks (``exps/RSN18.coco``, ``RSN50.coco``,
``4XRSN18.coco``) and mmpose's RSN configs (``use_prm`` False) train without it; and in our quick learning
setting (tests/human/test_multistage_learning.py: 5 epochs from scratch on 200 generated humans)
``rsn_quick`` with the PRM reached val PCK@0.1 0.105 against 0.559 without it (one run each, 2026-12-05):
the ReLU'd 3×3 conv at its input learns slowly from scratch.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from animalpose.models.cpn import conv_bn
from animalpose.models.multistage import OHKM_TOPK, MultiStageNet, Stage

#: RSBs per downsampling unit.
RSN_BLOCKS = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}


class ResidualStepsBlock(nn.Module):
    """RSB: (N, C_in, H, W) -> (N, C_out, H/s, W/s); ``branch = 26·C_in // 64`` channels per step."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, num_steps: int = 4, expand_times: int = 26,
                 base_channels: int = 64):
        super().__init__()
        if num_steps < 2:
            raise ValueError(f"an RSB needs at least 2 steps, got {num_steps}")
        self.num_steps = num_steps
        self.branch = c_in * expand_times // base_channels
        self.conv_in = nn.Sequential(
            nn.Conv2d(c_in, num_steps * self.branch, 1, stride=stride, bias=False),
            nn.BatchNorm2d(num_steps * self.branch), nn.ReLU(inplace=True))
        # steps[i][j]: the j-th 3×3 conv of branch i (i + 1 convs on branch i)
        self.steps = nn.ModuleList(
            nn.ModuleList(conv_bn(self.branch, self.branch, 3) for _ in range(i + 1)) for i in range(num_steps))
        self.conv_out = conv_bn(num_steps * self.branch, c_out, 1, relu=False)
        self.shortcut = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
                         if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        splits = torch.split(self.conv_in(x), self.branch, dim=1)
        previous: list[torch.Tensor] = []  # outputs of branch i - 1
        finals = []
        for i, convs in enumerate(self.steps):
            outs: list[torch.Tensor] = []
            for j, conv in enumerate(convs):
                y = splits[i] if j == 0 else outs[-1]
                if j < i:  # dense intra-level connection from the previous branch
                    y = y + previous[j]
                outs.append(conv(y))
            finals.append(outs[-1])
            previous = outs
        return F.relu(self.conv_out(torch.cat(finals, dim=1)) + self.shortcut(x))


def rsb_layers(blocks: tuple[int, ...], expansion: int = 1, base_channels: int = 64,
               num_steps: int = 4) -> nn.ModuleList:
    """The downsampling path: unit l has ``blocks[l]`` RSBs at expansion·64·2^l channels, the first with
    stride 2 (except unit 0)."""
    layers, c_in = [], base_channels
    for level, n in enumerate(blocks):
        c_out = expansion * base_channels * 2**level
        units = [ResidualStepsBlock(c_in, c_out, 1 if level == 0 else 2, num_steps, base_channels=base_channels)]
        units += [ResidualStepsBlock(c_out, c_out, 1, num_steps, base_channels=base_channels) for _ in range(n - 1)]
        layers.append(nn.Sequential(*units))
        c_in = c_out
    return nn.ModuleList(layers)


class PoseRefineMachine(nn.Module):
    """PRM: (N, K, h, w) -> (N, K, h, w) = F·(1 + α·β), channel attention α and spatial attention β."""

    def __init__(self, num_joints: int):
        super().__init__()
        k = num_joints
        self.conv = conv_bn(k, k, 3)
        self.channel = nn.Sequential(nn.Linear(k, k), nn.BatchNorm1d(k), nn.ReLU(inplace=True),
                                     nn.Linear(k, k), nn.BatchNorm1d(k), nn.ReLU(inplace=True), nn.Sigmoid())
        self.spatial = nn.Sequential(
            conv_bn(k, k, 1),
            nn.Conv2d(k, k, 9, padding=4, groups=k, bias=False), nn.BatchNorm2d(k), nn.ReLU(inplace=True),
            conv_bn(k, 1, 1), nn.Sigmoid())

    def _channel_attention(self, pooled: torch.Tensor) -> torch.Tensor:
        """(N, K) -> (N, K). A training batch of one has no batch statistics for BN1d (PyTorch raises), so
        that step normalises with the running ones."""
        if not (self.training and pooled.shape[0] == 1):
            return self.channel(pooled)
        norms = [m for m in self.channel if isinstance(m, nn.BatchNorm1d)]
        for m in norms:
            m.eval()
        try:
            return self.channel(pooled)
        finally:
            for m in norms:
                m.train()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.conv(x)
        alpha = self._channel_attention(f.mean(dim=(2, 3)))[:, :, None, None]
        return f * (1 + alpha * self.spatial(f))


class RSN(MultiStageNet):
    """RSN: (N, 3, H, W) -> num_stages·4 × (N, K, H/4, W/4), the last refined by the PRM if ``prm``.

    Args:
        num_joints: K.
        blocks: RSBs per downsampling unit ((2, 2, 2, 2) RSN-18, (3, 4, 6, 3) RSN-50).
        num_stages: single-stage modules (1 for RSN-18/50; the paper's 2×..4×RSN-50 stack 2..4).
        unit_channels: width of the upsampling path (256).
        num_steps: branches of an RSB (4).
        expansion: RSB output channels over 64·2^l (mmpose's 1; the authors' released network.py has 4).
        prm: the Pose Refine Machine on the final output (off by default: see the module docstring).
    """

    def __init__(self, num_joints: int, blocks: tuple[int, ...] = RSN_BLOCKS[18], num_stages: int = 1,
                 unit_channels: int = 256, num_steps: int = 4, expansion: int = 1, prm: bool = False,
                 ohkm_topk: int = OHKM_TOPK):
        if len(blocks) != 4:
            raise ValueError(f"RSN has 4 downsampling units, got blocks={blocks}")
        if num_stages < 1:
            raise ValueError(f"num_stages must be >= 1, got {num_stages}")
        stem = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)), ("bn1", nn.BatchNorm2d(64)),
            ("relu", nn.ReLU(inplace=True)), ("maxpool", nn.MaxPool2d(3, stride=2, padding=1))]))
        channels = tuple(expansion * 64 * 2**i for i in range(4))
        stages = [Stage(rsb_layers(tuple(blocks), expansion, 64, num_steps), channels, unit_channels,
                        last=s == num_stages - 1, cross_channels=64) for s in range(num_stages)]
        super().__init__(num_joints, stem, stages, unit_channels,
                         final_refine=PoseRefineMachine(num_joints) if prm else None, ohkm_topk=ohkm_topk)


def rsn(num_joints: int = 17, depth: int = 18, **kw) -> RSN:
    """RSN-``depth`` (18 or 50); keywords as :class:`RSN`."""
    if depth not in RSN_BLOCKS:
        raise ValueError(f"RSN depth must be one of {sorted(RSN_BLOCKS)}, got {depth}")
    return RSN(num_joints, blocks=RSN_BLOCKS[depth], **kw)


def rsn_quick(num_joints: int = 17, **kw) -> RSN:
    """CPU quick RSN: RSN-18 blocks, one stage, 64-channel upsampling (ours, not published); keywords as
    :class:`RSN`."""
    return RSN(num_joints, blocks=RSN_BLOCKS[18], **{"unit_channels": 64, **kw})
