"""Heads: how a network's final score maps are read out, and which codec trains them.

Every architecture ends in its own 1×1 conv to K score maps (part of its published parameter count), so
the heads here hold no parameters: they declare the codec (``"heatmap"``, ``"dsnt"``, ``"integral"``)
and turn score maps (N, K, h, w) into a :class:`Readout`. Changing the head therefore changes the
training target and decoding, never the network or its parameter count.

- :class:`HeatmapHead`: the score maps are Gaussian heatmaps trained with MSE; the readout is the
  integer argmax and its value (sub-pixel refinement such as DARK belongs to the heatmap codec).
- :class:`DSNTHead` (Nibali, Zhe, Morgan & Prendergast, "Numerical Coordinate Regression with
  Convolutional Neural Networks", 2018): softmax over each map gives a probability map P; coordinates
  are the expectation of P over normalised grids with pixel centres at X_j = (2j + 1)/w − 1 ∈ (−1, 1),
  j = 0..w−1 (paper Sec. 3: X_ij = (2j − (n + 1))/n for 1-based j); trained with
  :func:`animalpose.losses.dsnt_loss`.
- :class:`IntegralHead` (Sun et al., "Integral Human Pose Regression", 2018; β-soft-argmax as in LPN):
  softmax of β·maps, coordinates are the expectation in heatmap pixels.

Each head also names the loss that trains it (:func:`make_loss`): heatmap MSE with target weights,
DSNT's Euclidean + λ·JS (λ = 1, σ = 1 heatmap pixel, as in the DSNT paper), or L1 on the integral
coordinates. An architecture trained with its own heatmap loss (CPN: L2 on GlobalNet, OHKM on
RefineNet) declares it with a ``heatmap_loss()`` method, which the heatmap head then uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from animalpose.losses import DSNTLoss, HeatmapMSELoss, IntegralL1Loss, PoseLoss
from animalpose.ops.soft_argmax import (
    expected_coordinates,
    pixels_to_normalized,
    soft_argmax,
    spatial_softmax,
)

HeadCodec = Literal["heatmap", "dsnt", "integral"]
HEAD_CODECS: tuple[str, ...] = ("heatmap", "dsnt", "integral")


@dataclass
class Readout:
    """What a head reads from score maps (N, K, h, w).

    Attributes:
        coords: (N, K, 2) x, y in heatmap pixels (pixel centres at integers).
        coords_norm: (N, K, 2) the same in DSNT's normalised range, pixel centres at (2i + 1)/size − 1.
        scores: (N, K) confidence: the map maximum (heatmap) or the peak probability (dsnt/integral).
        probs: (N, K, h, w) normalised maps for dsnt/integral, None for heatmap.
    """

    coords: torch.Tensor
    coords_norm: torch.Tensor
    scores: torch.Tensor
    probs: torch.Tensor | None = None


class HeatmapHead(nn.Module):
    """Gaussian-heatmap head: hard argmax readout."""

    codec: str = "heatmap"

    def readout(self, heatmaps: torch.Tensor) -> Readout:
        """(N, K, h, w) -> Readout with integer argmax coordinates and the maximum as score."""
        n, k, h, w = heatmaps.shape
        scores, index = heatmaps.reshape(n, k, h * w).max(dim=-1)
        coords = torch.stack([index % w, torch.div(index, w, rounding_mode="floor")], dim=-1)
        coords = coords.to(heatmaps.dtype)
        return Readout(coords, pixels_to_normalized(coords, h, w), scores)

    def extra_repr(self) -> str:
        return f"codec={self.codec!r}"


class DSNTHead(nn.Module):
    """DSNT head: softmax-normalised maps, coordinates = expectation over the (−1, 1) grids."""

    codec: str = "dsnt"

    def readout(self, heatmaps: torch.Tensor) -> Readout:
        """(N, K, h, w) -> Readout with probs (N, K, h, w) and coords_norm (N, K, 2) in (−1, 1)."""
        _, _, h, w = heatmaps.shape
        probs = spatial_softmax(heatmaps, beta=1.0)
        coords = expected_coordinates(probs)
        scores = probs.flatten(2).amax(dim=-1)
        return Readout(coords, pixels_to_normalized(coords, h, w), scores, probs)

    def extra_repr(self) -> str:
        return f"codec={self.codec!r}"


class IntegralHead(nn.Module):
    """Integral regression readout: β-soft-argmax in heatmap pixels.

    Args:
        beta: inverse temperature (LPN uses 160 on raw heatmaps; β = 1 is plain integral regression).
    """

    codec: str = "integral"

    def __init__(self, beta: float = 1.0):
        super().__init__()
        self.beta = float(beta)

    def readout(self, heatmaps: torch.Tensor) -> Readout:
        """(N, K, h, w) -> Readout with probs = softmax(β·maps) and their expected pixel coordinates."""
        _, _, h, w = heatmaps.shape
        coords, probs = soft_argmax(heatmaps, beta=self.beta)
        scores = probs.flatten(2).amax(dim=-1)
        return Readout(coords, pixels_to_normalized(coords, h, w), scores, probs)

    def extra_repr(self) -> str:
        return f"codec={self.codec!r}, beta={self.beta}"


def make_head(codec: str = "heatmap", beta: float = 1.0) -> HeatmapHead | DSNTHead | IntegralHead:
    """Head for a codec name; ``beta`` only matters for ``"integral"``."""
    if codec == "heatmap":
        return HeatmapHead()
    if codec == "dsnt":
        return DSNTHead()
    if codec == "integral":
        return IntegralHead(beta)
    raise ValueError(f"unknown head codec {codec!r}; expected one of {HEAD_CODECS}")


def make_loss(head: nn.Module, net: nn.Module) -> PoseLoss:
    """The loss that trains ``net`` read out by ``head``: the head's own for "dsnt" and "integral";
    for "heatmap" (or a head that declares no codec), the architecture's ``heatmap_loss()`` when it
    declares one, else heatmap MSE."""
    codec = getattr(head, "codec", "heatmap")
    if codec == "dsnt":
        return DSNTLoss()
    if codec == "integral":
        return IntegralL1Loss(head.beta)
    own = getattr(net, "heatmap_loss", None)
    return own() if callable(own) else HeatmapMSELoss()


class PoseModel(nn.Module):
    """A pose network plus its head and its loss; the object the engine trains.

    ``forward(x (N, 3, H, W)) -> list[Tensor (N, K, H/4, W/4)]``, one per supervised stage, the last the
    final prediction. ``readout(heatmaps)`` applies the head to one of them; ``loss(outputs, target,
    weight, coords)`` is the training loss the model declares.

    Attributes:
        name: the factory name (e.g. "hourglass4").
        net: the architecture; its parameters are the model's parameters.
        head: parameter-free head declaring the codec.
        criterion: the :class:`~animalpose.losses.PoseLoss` (default :func:`make_loss`).
        num_joints, stride (4), head_codec.
    """

    def __init__(self, name: str, net: nn.Module, head: nn.Module, input_size: tuple[int, int],
                 criterion: PoseLoss | None = None):
        super().__init__()
        self.name = name
        self.net = net
        self.head = head
        self.input_size = tuple(input_size)
        self.criterion = criterion if criterion is not None else make_loss(head, net)

    @property
    def num_joints(self) -> int:
        return self.net.num_joints

    @property
    def stride(self) -> int:
        return self.net.stride

    @property
    def head_codec(self) -> str:
        return self.head.codec

    @property
    def needs_coords(self) -> bool:
        """Whether :meth:`loss` reads the target coordinates (DSNT, integral, coarse-to-fine targets)."""
        return bool(getattr(self.criterion, "needs_coords", False))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net(x)

    def readout(self, heatmaps: torch.Tensor) -> Readout:
        return self.head.readout(heatmaps)

    def loss(self, outputs: list[torch.Tensor], target: torch.Tensor, weight: torch.Tensor,
             coords: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar training loss of ``forward``'s outputs: target (N, K, h, w) heatmaps, weight (N, K),
        coords (N, K, 2) target (x, y) in heatmap pixels (needed by the DSNT and integral losses)."""
        return self.criterion(outputs, target, weight, coords)
