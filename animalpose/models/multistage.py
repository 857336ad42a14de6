"""The multi-stage skeleton that MSPN (:mod:`animalpose.models.mspn`) and RSN (:mod:`animalpose.models.rsn`)
share, laid out as mmpose's ``MSPN`` / ``RSN`` backbones and ``MSPNHead`` (which follow the authors' code,
``megvii-research/MSPN`` and ``caiyuanhao1998/RSN``).

- stem: 7×7/2 conv 3→64 + BN + ReLU, 3×3/2 max-pool (stride 4, torchvision's ResNet stem).
- each stage: a downsampling path of four units at strides 4, 8, 16, 32 (C_1..C_4 channels; the unit
  is the family's: ResNet layers for MSPN, residual steps blocks for RSN) and an upsampling path from the
  coarsest level to the finest (the GlobalNet of CPN): per level a 1×1 conv + BN on the downsampling
  feature (``in_skip``, C_l→U), plus, below the coarsest, the coarser output upsampled (bilinear) through
  a 1×1 conv + BN (``up_conv``), summed, ReLU.
- cross-stage feature aggregation (MSPN Sec. 3.2): every stage but the last gives the next two 1×1
  conv + BN + ReLU per level, one from its downsampling feature (``out_skip1``, C_l→C_l) and one from its
  upsampling feature (``out_skip2``, U→C_l), which the next stage adds to its own downsampling feature
  of that level; and a 1×1 conv + BN + ReLU U→64 on its finest upsampling feature (``cross_conv``), which
  is the next stage's input.
- a prediction per stage and level (mmpose ``PredictHeatmap``): 1×1 conv U→U + BN + ReLU, 3×3 conv U→K
  + BN, bilinear upsampling to the finest size; optionally a refinement of the final one (RSN's PRM).

``forward`` returns num_stages × 4 maps (N, K, H/4, W/4), stage by stage, each stage coarse (1/32) to fine
(1/4); the last is the final prediction. Coarse-to-fine supervision (:func:`coarse_to_fine_loss`): the
target of level j of stage s is blurred by the kernel ``KERNELS[j]`` (15, 11, 9, 7), one step finer in the
last stage (11, 9, 7, 5); the three coarser levels weigh 0.25 with L2, the finest 1 with OHKM (top 8),
in every stage: mmpose's 4xmspn50 / rsn18 configs, which reproduce the authors' results. The MSPN paper
(Sec. 3.3) describes the kernels shrinking from stage to stage; its released code applies them per level
as above. The last stage's finest target (kernel 5) is the codec's own (σ = ``codec.sigma``; the
experiment configs set 1.1, the σ of a 5-pixel kernel), so the final output is trained on what the codec
decodes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from animalpose.losses import CoarseToFineLoss, kernel_sigma
from animalpose.models.cpn import conv_bn, upsample_like  # bilinear, align_corners=True as mmpose

#: Gaussian kernel sizes of the coarse-to-fine targets, coarsest level first (MSPN's code, mmpose configs).
KERNELS = (15, 11, 9, 7, 5)
OHKM_TOPK = 8


class UpsampleUnit(nn.Module):
    """One level of the upsampling path: (N, C_l, h, w) downsampling feature [+ (N, U, h', w') coarser
    output] -> (N, U, h, w); with ``gen_skip`` also the two cross-stage features (N, C_l, h, w), with
    ``cross_channels`` the next stage's input (N, cross_channels, h, w)."""

    def __init__(self, c_in: int, unit_channels: int, has_coarser: bool, gen_skip: bool,
                 cross_channels: int | None = None):
        super().__init__()
        self.in_skip = conv_bn(c_in, unit_channels, 1, relu=False)
        self.up_conv = conv_bn(unit_channels, unit_channels, 1, relu=False) if has_coarser else None
        self.out_skip1 = conv_bn(c_in, c_in, 1) if gen_skip else None
        self.out_skip2 = conv_bn(unit_channels, c_in, 1) if gen_skip else None
        self.cross_conv = conv_bn(unit_channels, cross_channels, 1) if cross_channels else None

    def forward(self, x: torch.Tensor, coarser: torch.Tensor | None):
        out = self.in_skip(x)
        if self.up_conv is not None:
            out = out + self.up_conv(upsample_like(coarser, x))
        out = F.relu(out)
        skips = (self.out_skip1(x), self.out_skip2(out)) if self.out_skip1 is not None else None
        cross = self.cross_conv(out) if self.cross_conv is not None else None
        return out, skips, cross


class Stage(nn.Module):
    """One single-stage module: ``down`` (4 units, strides ×1, ×2, ×2, ×2) then the upsampling path.

    ``forward(x (N, C_in, H/4, W/4), skips [4 × ((N, C_l, ·), (N, C_l, ·))] or None)`` -> (features
    [4 × (N, U, h_l, w_l)] coarse to fine, skips for the next stage fine to coarse or None, the next stage's
    input (N, C_in, H/4, W/4) or None).
    """

    def __init__(self, down: nn.ModuleList, channels: tuple[int, ...], unit_channels: int, last: bool,
                 cross_channels: int):
        super().__init__()
        self.down = down
        coarse_first = channels[::-1]
        self.up = nn.ModuleList(
            UpsampleUnit(c, unit_channels, has_coarser=i > 0, gen_skip=not last,
                         cross_channels=cross_channels if (not last and i == len(channels) - 1) else None)
            for i, c in enumerate(coarse_first))

    def forward(self, x: torch.Tensor, skips: list | None):
        feats = []
        for level, unit in enumerate(self.down):
            x = unit(x)
            if skips is not None:  # cross-stage aggregation: previous stage's encoder + decoder features
                x = x + skips[level][0] + skips[level][1]
            feats.append(x)
        outs, new_skips, cross = [], [], None
        for unit, feat in zip(self.up, reversed(feats), strict=True):
            out, skip, cross = unit(feat, outs[-1] if outs else None)
            outs.append(out)
            new_skips.append(skip)
        return outs, (new_skips[::-1] if new_skips[0] is not None else None), cross


class PredictHeatmap(nn.Module):
    """(N, U, h, w) -> (N, K, H/4, W/4): 1×1 conv + BN + ReLU, 3×3 conv to K + BN, bilinear upsampling to
    the size of ``ref`` (N, ·, H/4, W/4), then ``refine`` (RSN's PRM on the final output, else nothing)."""

    def __init__(self, unit_channels: int, num_joints: int, refine: nn.Module | None = None):
        super().__init__()
        self.conv = nn.Sequential(conv_bn(unit_channels, unit_channels, 1),
                                  conv_bn(unit_channels, num_joints, 3, relu=False))
        self.refine = refine if refine is not None else nn.Identity()

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return self.refine(upsample_like(self.conv(x), ref))


class MultiStageNet(nn.Module):
    """Stem + ``len(stages)`` single-stage modules + one prediction per stage and level:
    (N, 3, H, W) -> num_stages·4 × (N, K, H/4, W/4), H and W divisible by 32.

    Built by the family factories (:func:`animalpose.models.mspn.mspn`, :func:`animalpose.models.rsn.rsn`).
    """

    stride = 4

    def __init__(self, num_joints: int, stem: nn.Module, stages: list[Stage], unit_channels: int,
                 final_refine: nn.Module | None = None, ohkm_topk: int = OHKM_TOPK):
        super().__init__()
        self.num_joints, self.num_stages, self.ohkm_topk = num_joints, len(stages), ohkm_topk
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        levels = len(stages[0].up)
        self.levels = levels
        self.predict = nn.ModuleList(
            PredictHeatmap(unit_channels, num_joints,
                           final_refine if (s == len(stages) - 1 and j == levels - 1) else None)
            for s in range(len(stages)) for j in range(levels))

    def heatmap_loss(self) -> CoarseToFineLoss:
        """The coarse-to-fine loss of :func:`coarse_to_fine_loss` for this net's stages and levels."""
        return coarse_to_fine_loss(self.num_stages, self.levels, self.ohkm_topk)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        ref = x  # stride 4: the size of every prediction
        skips, outputs = None, []
        for s, stage in enumerate(self.stages):
            feats, skips, x = stage(x, skips)
            outputs += [self.predict[s * self.levels + j](f, ref) for j, f in enumerate(feats)]
        return outputs


def coarse_to_fine_loss(num_stages: int, levels: int = 4, ohkm_topk: int = OHKM_TOPK) -> CoarseToFineLoss:
    """Per output (stage s, level j, coarse first): kernel ``KERNELS[j]`` (``KERNELS[j + 1]`` in the last
    stage; the last stage's finest is the codec's target), weight 0.25 and L2 below the finest level,
    1 and OHKM top-``ohkm_topk`` at the finest."""
    if levels > len(KERNELS) - 1:
        raise ValueError(f"at most {len(KERNELS) - 1} levels have a coarse-to-fine kernel, got {levels}")
    sigmas: list[float | None] = []
    for s in range(num_stages):
        shift = 1 if s == num_stages - 1 else 0
        sigmas += [kernel_sigma(KERNELS[j + shift]) for j in range(levels)]
    sigmas[-1] = None
    finest = [j == levels - 1 for j in range(levels)] * num_stages
    weights = tuple(1.0 if f else 0.25 for f in finest)
    return CoarseToFineLoss(tuple(sigmas), weights, tuple(finest), ohkm_topk)
