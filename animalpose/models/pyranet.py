"""PyraNet: stacked hourglass with Pyramid Residual Modules (Yang, Li, Ouyang, Li & Wang, "Learning
Feature Pyramids for Human Pose Estimation", ICCV 2017), variant PRM-B.

PRM-B (paper Fig. 3, Eq. 2 and 3): x^(l+1) = x^(l) + P(x^(l)), P(x) = g(Σ_c f_c(x)) + f_0(x), where

- f_0 is the usual bottleneck branch at the input scale: BN-ReLU-1×1 (C_in→p), BN-ReLU-3×3 (p→p);
- the pyramid branches share one input projection (PRM-B): BN-ReLU-1×1 (C_in→D); branch c = 1..C
  resizes the projection by s_c = 2^(−c/C), extracts features with a 3×3 conv (D→D) and resizes back
  to the input size; the C branch outputs are summed and ``g`` = BN-ReLU-1×1 (D→p) maps them to p
  channels;
- f_0 + g(·) goes through BN-ReLU-1×1 (p→2p) and is added to the identity path.

**Subsampling.** The paper subsamples with fractional max-pooling; like the published PyTorch
reproduction we use bilinear resizing (down by s_c, back up to the input size) instead, which is
deterministic and exports cleanly.

**Variance control** (paper Sec. 4.2): where the outputs of two residual units are summed (the upper
branch of each hourglass level, added to the upsampled lower branch) the identity mapping is replaced
by BN-ReLU-1×1 conv, so the variance of the sum does not grow with depth.

**Initialisation** (paper Sec. 4.1): Xavier generalised to multi-branch layers. A conv layer with
fan-in n_i = k²·c_in and fan-out n_o = k²·c_out, fed by C_i input branches and feeding C_o output
branches, draws weights from N(0, 2 / (α²·(C_i·n_i + C_o·n_o))), α² = 1/2 when a ReLU precedes the
conv (every conv here is pre-activated) and 1 otherwise. In a PRM the shared projection feeds C
branches (C_o = C) and ``g`` reads the sum of C branches (C_i = C); all other layers have C_i = C_o = 1.

D = 2p / ``pyramid_ratio`` (ratio 8 here: D = 32 for 256 channels; our choice, the paper varies it) and
C = 4, so a PRM has 264,544 parameters against a bottleneck's 214,528. The stem and per-stack layers are
:class:`animalpose.models.hourglass.StackedHourglass`'s, shared with the stacked hourglass. Parameters
with 18 joints: 4 stacks 16,884,168; 8 stacks 33,325,840 (tested via the per-PRM count in tests/models/test_pyranet.py).
"""

from __future__ import annotations

import math

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from animalpose.models.hourglass import Hourglass, PreActBottleneck, StackedHourglass


def _resize_by(x: torch.Tensor, scale: float) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, max(1, floor(H·s)), max(1, floor(W·s))), bilinear."""
    h, w = x.shape[-2:]
    size = (max(1, math.floor(h * scale)), max(1, math.floor(w * scale)))
    return _bilinear(x, size)


def _resize_like(y: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of y (N, C, h, w) to ref's (H, W)."""
    return _bilinear(y, tuple(ref.shape[-2:]))


def _bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if x.is_meta:  # shape only: torch's meta bilinear kernel is ~0.1 s a call, slowing model listing
        return x.new_empty(*x.shape[:2], *size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


# Shape-dependent helpers stay leaf calls when the network is traced (BN folding in speed.py).
torch.fx.wrap("_resize_by")
torch.fx.wrap("_resize_like")


class BNReLUConv(nn.Sequential):
    """BN-ReLU-conv (pre-activation), padding k // 2."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1):
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=True),
        )
        self.in_branches = 1
        self.out_branches = 1

    @property
    def conv(self) -> nn.Conv2d:
        return self[2]


class PyramidResidual(nn.Module):
    """PRM-B: (N, C_in, H, W) -> (N, 2·planes, H, W).

    Args:
        in_channels: C_in.
        planes: p; output has 2p channels.
        pyramid_channels: D, channels of the shared projection and of each pyramid branch.
        cardinality: C, number of pyramid branches (scales 2^(−c/C), c = 1..C).
        variance_control: replace the identity mapping by BN-ReLU-1×1 conv (used where two residual
            outputs are summed).
    """

    def __init__(
        self,
        in_channels: int,
        planes: int,
        pyramid_channels: int,
        cardinality: int = 4,
        variance_control: bool = False,
    ):
        super().__init__()
        out_channels = 2 * planes
        self.scales = [2.0 ** (-c / cardinality) for c in range(1, cardinality + 1)]
        self.f0 = nn.Sequential(BNReLUConv(in_channels, planes, 1), BNReLUConv(planes, planes, 3))
        self.project = BNReLUConv(in_channels, pyramid_channels, 1)
        self.project.out_branches = cardinality
        self.branches = nn.ModuleList(
            [nn.Conv2d(pyramid_channels, pyramid_channels, 3, padding=1, bias=True) for _ in self.scales]
        )
        self.g = BNReLUConv(pyramid_channels, planes, 1)
        self.g.in_branches = cardinality
        self.out = BNReLUConv(planes, out_channels, 1)
        if variance_control:
            self.shortcut: nn.Module | None = BNReLUConv(in_channels, out_channels, 1)
        elif in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, bias=True)
        else:
            self.shortcut = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.project(x)
        pyramid = None
        for scale, conv in zip(self.scales, self.branches, strict=True):
            level = _resize_like(conv(_resize_by(projected, scale)), projected)
            pyramid = level if pyramid is None else pyramid + level
        out = self.out(self.f0(x) + self.g(pyramid))
        identity = x if self.shortcut is None else self.shortcut(x)
        return out + identity


class PyraNet(StackedHourglass):
    """PyraNet (PRM-B): (N, 3, H, W) -> list of ``num_stacks`` heatmaps (N, K, H/4, W/4).

    :class:`StackedHourglass` (stem, stack wiring, fc, score and remapping layers, as in
    :class:`~animalpose.models.hourglass.HourglassNet`) whose hourglass units and per-stack residuals
    are PRMs, with variance control on the hourglasses' upper branches; multi-branch initialisation.
    """

    def __init__(
        self,
        num_joints: int,
        num_stacks: int = 2,
        num_feats: int = 128,
        depth: int = 4,
        stem_channels: int = 64,
        cardinality: int = 4,
        pyramid_ratio: int = 8,
    ):
        ch = 2 * num_feats
        d = max(1, ch // pyramid_ratio)

        def prm(variance_control: bool = False) -> PyramidResidual:
            return PyramidResidual(ch, num_feats, d, cardinality, variance_control)

        super().__init__(
            num_joints,
            num_stacks,
            num_feats,
            stem_channels,
            hourglass=lambda: Hourglass(depth, prm, skip_unit=lambda: prm(variance_control=True)),
            residual=prm,
        )
        multi_branch_init(self)


def multi_branch_std(conv: nn.Conv2d, in_branches: int, out_branches: int, after_relu: bool) -> float:
    """Std of the generalised Xavier init: sqrt(2 / (α²·(C_i·n_i + C_o·n_o))), n = k²·channels."""
    k = conv.kernel_size[0] * conv.kernel_size[1]
    n_in = k * conv.in_channels // conv.groups
    n_out = k * conv.out_channels // conv.groups
    alpha_sq = 0.5 if after_relu else 1.0
    return math.sqrt(2.0 / (alpha_sq * (in_branches * n_in + out_branches * n_out)))


def multi_branch_init(model: nn.Module) -> None:
    """Initialise every conv of ``model`` with :func:`multi_branch_std`, biases 0, BN γ=1 β=0.

    Branch counts come from :class:`BNReLUConv` attributes (``in_branches``/``out_branches``), one
    each way for every other conv. α² = 1/2 for convs that read a ReLU output (those of
    :class:`BNReLUConv` and the pre-activated bottleneck convs), 1 for the rest (stem conv on the image,
    shortcut convs, pyramid branch convs that read the projection, fc/score/remap convs).
    """
    branches: dict[int, tuple[int, int]] = {}
    after_relu: set[int] = set()
    for module in model.modules():
        if isinstance(module, BNReLUConv):
            branches[id(module.conv)] = (module.in_branches, module.out_branches)
            after_relu.add(id(module.conv))
        elif isinstance(module, PreActBottleneck):
            after_relu.update(id(c) for c in (module.conv1, module.conv2, module.conv3))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            c_in, c_out = branches.get(id(module), (1, 1))
            std = multi_branch_std(module, c_in, c_out, after_relu=id(module) in after_relu)
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def pyranet(num_joints: int = 18, num_stacks: int = 2, **kw) -> PyraNet:
    """PyraNet PRM-B with 256 channels, C = 4; kw passes through to :class:`PyraNet`."""
    return PyraNet(num_joints, num_stacks=num_stacks, **kw)


def pyranet_quick(num_joints: int = 18) -> PyraNet:
    """CPU quick preset: 2 stacks, 128 channels, 32-channel stem; for 128×128 input."""
    return PyraNet(num_joints, num_stacks=2, num_feats=64, stem_channels=32)


__all__ = [
    "BNReLUConv",
    "PreActBottleneck",
    "PyraNet",
    "PyramidResidual",
    "multi_branch_init",
    "multi_branch_std",
    "pyranet",
    "pyranet_quick",
]
