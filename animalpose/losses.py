"""Training losses of the pose networks.

- :func:`heatmap_mse`: visibility-weighted heatmap MSE of the CC-SSL / pytorch-pose reference, summed
  over the supervised stages.
- :func:`ohkm_mse`: the same per-joint loss with online hard keypoint mining (Chen et al., "Cascaded
  Pyramid Network for Multi-Person Pose Estimation", CVPR 2018; as in the HRNet code): only the top-k
  joints by loss count, per sample.
- :func:`dsnt_loss`: DSNT (Nibali et al. 2018): Euclidean distance of the normalised coordinates plus
  Jensen–Shannon divergence of the normalised heatmap to a Gaussian around the target.
- :func:`integral_l1`: integral regression (Sun et al. 2018): L1 distance of the soft-argmax coordinates.
- :class:`CoarseToFineLoss`: MSPN's / RSN's coarse-to-fine supervision: one Gaussian width, one weight and
  plain or OHKM L2 per output, the targets drawn by :func:`gaussian_heatmaps` at the target coordinates.

A built model carries its loss (:attr:`animalpose.models.heads.PoseModel.criterion`), one of the
:class:`PoseLoss` callables at the end of this module; the trainer calls ``model.loss(outputs, target,
weight, coords)`` and never picks a loss itself. Every :class:`PoseLoss` takes the stage outputs, the
codec's heatmap targets, the per-joint weights and the target coordinates in heatmap pixels (None when
the loss does not read them).

Losses compute in float32 whatever the dtype of the predictions (autocast-safe).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from animalpose.ops.soft_argmax import (
    expected_coordinates,
    normalized_to_pixels,
    pixel_grids,
    pixels_to_normalized,
    soft_argmax,
    spatial_softmax,
)


def as_list(outputs: list[torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
    return [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)


def joint_weights(target_weight: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """(N, K) or (N, K, 1) -> (N, K) float32."""
    if target_weight.numel() != n * k or target_weight.shape[:2] != (n, k):
        raise ValueError(f"target_weight must be (N, K) or (N, K, 1) = ({n}, {k}), got {tuple(target_weight.shape)}")
    return target_weight.reshape(n, k).float()


def per_joint_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """0.5·mean_pixels((w·P − w·G)²): (N, K, h, w) ×2, (N, K) -> (N, K)."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    w = weight[:, :, None, None]
    diff = pred.float() * w - target.float() * w
    return 0.5 * diff.pow(2).flatten(2).mean(dim=-1)


def heatmap_mse(
    outputs: list[torch.Tensor] | torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor
) -> torch.Tensor:
    """Visibility-weighted heatmap MSE (CC-SSL reference ``JointsMSELoss``, summed over stacks):

        L = Σ_stacks Σ_j 0.5 · mean_{n,pixels}((w_nj·P_nj − w_nj·G_nj)²) / K

    Args:
        outputs: predicted heatmaps, one (N, K, h, w) tensor per supervised stage (or one tensor).
        target: (N, K, h, w) target heatmaps.
        target_weight: (N, K) or (N, K, 1) per-joint weights (0 for unlabelled joints).

    Returns:
        scalar tensor.
    """
    n, k = target.shape[:2]
    weight = joint_weights(target_weight, n, k)
    return sum(per_joint_mse(out, target, weight).mean() for out in as_list(outputs))


def ohkm_mse(
    outputs: list[torch.Tensor] | torch.Tensor,
    target: torch.Tensor,
    target_weight: torch.Tensor,
    topk: int = 8,
) -> torch.Tensor:
    """Online hard keypoint mining: per sample, the mean of the ``topk`` largest per-joint losses
    0.5·mean_pixels((w·P − w·G)²); averaged over the batch and summed over stacks.

    Shapes as in :func:`heatmap_mse`; ``topk`` ≤ K.
    """
    n, k = target.shape[:2]
    if not 1 <= topk <= k:
        raise ValueError(f"topk must be in [1, K={k}], got {topk}")
    weight = joint_weights(target_weight, n, k)
    total = torch.zeros((), device=target.device)
    for out in as_list(outputs):
        per_joint = per_joint_mse(out, target, weight)  # (N, K)
        hardest, _ = per_joint.topk(topk, dim=1)
        total = total + hardest.mean(dim=1).mean()
    return total


def gaussian_probs(centres_norm: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """Normalised Gaussians on the heatmap grid: (N, K, 2) centres in (−1, 1) -> (N, K, h, w) summing to 1.

    ``sigma`` is in heatmap pixels.
    """
    centres = normalized_to_pixels(centres_norm.float(), height, width)
    xs, ys = pixel_grids(height, width, centres.device, torch.float32)
    dx2 = (xs[None, None, :] - centres[..., 0:1]) ** 2  # (N, K, w)
    dy2 = (ys[None, None, :] - centres[..., 1:2]) ** 2  # (N, K, h)
    logits = -(dy2[..., :, None] + dx2[..., None, :]) / (2.0 * sigma**2)
    return torch.softmax(logits.flatten(2), dim=-1).reshape(*logits.shape)


def kernel_sigma(kernel: int) -> float:
    """σ that OpenCV's ``GaussianBlur`` gives a ``kernel``-pixel kernel when called with σ = 0
    (``getGaussianKernel``: σ = 0.3·((k − 1)/2 − 1) + 0.8); MSPN and RSN blur their targets so, with kernels
    15, 11, 9, 7, 5 -> σ 2.6, 2.0, 1.7, 1.4, 1.1 heatmap pixels."""
    if kernel < 3 or kernel % 2 == 0:
        raise ValueError(f"Gaussian kernel size must be odd and >= 3, got {kernel}")
    return 0.3 * ((kernel - 1) / 2 - 1) + 0.8


def gaussian_heatmaps(coords: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """Unnormalised Gaussians of peak 1 at sub-pixel centres: (N, K, 2) (x, y) heatmap pixels (pixel centres
    at integers) -> (N, K, h, w) float32, exp(−d²/2σ²), σ in heatmap pixels. Not truncated, not snapped
    to the pixel grid."""
    xs, ys = pixel_grids(height, width, coords.device, torch.float32)
    c = coords.float()
    gx = torch.exp(-((xs[None, None, :] - c[..., 0:1]) ** 2) / (2.0 * sigma**2))  # (N, K, w)
    gy = torch.exp(-((ys[None, None, :] - c[..., 1:2]) ** 2) / (2.0 * sigma**2))  # (N, K, h)
    return gy[..., :, None] * gx[..., None, :]


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon divergence (natural log) of maps (N, K, h, w) that each sum to 1 -> (N, K)."""
    m = 0.5 * (p + q)
    kl_pm = (torch.xlogy(p, p) - torch.xlogy(p, m)).flatten(2).sum(-1)
    kl_qm = (torch.xlogy(q, q) - torch.xlogy(q, m)).flatten(2).sum(-1)
    return 0.5 * (kl_pm + kl_qm)


def dsnt_loss(
    coords_norm: torch.Tensor,
    heatmap_probs: torch.Tensor,
    target_norm: torch.Tensor,
    weight: torch.Tensor,
    sigma: float = 1.0,
    reg_weight: float = 1.0,
) -> torch.Tensor:
    """DSNT loss (Nibali et al. 2018, Eq. 7 with the JS regulariser of Sec. 4.2):

        l_nk = ‖μ̂_nk − μ_nk‖₂ + λ · JS(P̂_nk ‖ N(μ_nk, σ²)),   L = Σ w_nk·l_nk / Σ w_nk

    Args:
        coords_norm: (N, K, 2) predicted (x, y) in (−1, 1) (DSNT readout).
        heatmap_probs: (N, K, h, w) softmax-normalised heatmaps.
        target_norm: (N, K, 2) target (x, y) in (−1, 1), pixel centres at (2i + 1)/size − 1.
        weight: (N, K) or (N, K, 1) per-joint weights; the loss is their weighted mean (0 if all zero).
        sigma: σ of the target Gaussian, in heatmap pixels.
        reg_weight: λ.
    """
    n, k, h, w = heatmap_probs.shape
    if coords_norm.shape != (n, k, 2) or target_norm.shape != (n, k, 2):
        raise ValueError(f"coords {tuple(coords_norm.shape)} and target {tuple(target_norm.shape)} must be (N, K, 2)")
    wt = joint_weights(weight, n, k)
    euclid = (coords_norm.float() - target_norm.float()).pow(2).sum(-1).clamp_min(1e-12).sqrt()
    reg = js_divergence(heatmap_probs.float(), gaussian_probs(target_norm, h, w, sigma))
    per_joint = euclid + reg_weight * reg
    return (wt * per_joint).sum() / wt.sum().clamp_min(1e-12)


def integral_l1(coords_norm: torch.Tensor, target_norm: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Integral regression loss (Sun et al., "Integral Human Pose Regression", ECCV 2018, Sec. 3.2):
    the weighted mean over joints of ‖μ̂ − μ‖₁, coordinates in the (−1, 1) range so that the loss does
    not depend on the heatmap size.

    Args:
        coords_norm, target_norm: (N, K, 2) predicted and target (x, y) in (−1, 1).
        weight: (N, K) or (N, K, 1) per-joint weights.
    """
    n, k = coords_norm.shape[:2]
    wt = joint_weights(weight, n, k)
    per_joint = (coords_norm.float() - target_norm.float()).abs().sum(-1)
    return (wt * per_joint).sum() / wt.sum().clamp_min(1e-12)


# --- the losses a model carries ----------------------------------------------------------------------


class PoseLoss(Protocol):
    """``loss(outputs, target, weight, coords) -> scalar``; ``needs_coords`` says whether it reads coords
    (the trainer computes them only then).

    outputs: one (N, K, h, w) score map per supervised stage, the last the final prediction;
    target: (N, K, h, w) codec heatmaps; weight: (N, K) or (N, K, 1); coords: (N, K, 2) target (x, y)
    in heatmap pixels, or None (only the coordinate losses read it, and they refuse None).
    """

    needs_coords: bool

    def __call__(self, outputs: list[torch.Tensor], target: torch.Tensor, weight: torch.Tensor,
                 coords: torch.Tensor | None = None) -> torch.Tensor: ...


def _need_coords(coords: torch.Tensor | None, loss: str) -> torch.Tensor:
    if coords is None:
        raise ValueError(f"{loss} needs the target coordinates (N, K, 2); the batch has no crop keypoints")
    return coords


@dataclass(frozen=True)
class HeatmapMSELoss:
    """:func:`heatmap_mse` summed over every stage (intermediate supervision)."""

    needs_coords = False

    def __call__(self, outputs: list[torch.Tensor], target: torch.Tensor, weight: torch.Tensor,
                 coords: torch.Tensor | None = None) -> torch.Tensor:
        return heatmap_mse(outputs, target, weight)


@dataclass(frozen=True)
class OHKMLoss:
    """:func:`ohkm_mse` summed over every stage; CPN keeps the top 8 of 17 COCO joints."""

    topk: int = 8
    needs_coords = False

    def __call__(self, outputs: list[torch.Tensor], target: torch.Tensor, weight: torch.Tensor,
                 coords: torch.Tensor | None = None) -> torch.Tensor:
        return ohkm_mse(outputs, target, weight, min(self.topk, target.shape[1]))


@dataclass(frozen=True)
class IntermediateFinalLoss:
    """One loss on the intermediate stages, another on the last (CPN: L2 on GlobalNet's pyramid
    levels, OHKM on RefineNet's output). Both are summed."""

    intermediate: PoseLoss
    final: PoseLoss

    @property
    def needs_coords(self) -> bool:
        return self.intermediate.needs_coords or self.final.needs_coords

    def __call__(self, outputs: list[torch.Tensor], target: torch.Tensor, weight: torch.Tensor,
                 coords: torch.Tensor | None = None) -> torch.Tensor:
        outputs = as_list(outputs)
        loss = self.final(outputs[-1:], target, weight, coords)
        if len(outputs) > 1:
            loss = loss + self.intermediate(outputs[:-1], target, weight, coords)
        return loss


@dataclass(frozen=True)
class DSNTLoss:
    """:func:`dsnt_loss` of the DSNT readout (softmax, expectation) of every stage, summed.

    Attributes:
        sigma: σ of the JS target Gaussian in heatmap pixels (the DSNT paper's σ = 1).
        reg_weight: λ of the JS regulariser (the paper's λ = 1).
    """

    sigma: float = 1.0
    reg_weight: float = 1.0
    needs_coords = True

    def __call__(self, outputs: list[torch.Tensor], target: torch.Tensor, weight: torch.Tensor,
                 coords: torch.Tensor | None = None) -> torch.Tensor:
        coords = _need_coords(coords, "the DSNT loss")
        total = torch.zeros((), device=target.device)
        for out in as_list(outputs):
            h, w = out.shape[-2:]
            probs = spatial_softmax(out.float())
            pred_norm = pixels_to_normalized(expected_coordinates(probs), h, w)
            target_norm = pixels_to_normalized(coords.float(), h, w)
            total = total + dsnt_loss(pred_norm, probs, target_norm, weight, self.sigma, self.reg_weight)
        return total


@dataclass(frozen=True)
class IntegralL1Loss:
    """:func:`integral_l1` of the β-soft-argmax readout of every stage, summed."""

    beta: float = 1.0
    needs_coords = True

    def __call__(self, outputs: list[torch.Tensor], target: torch.Tensor, weight: torch.Tensor,
                 coords: torch.Tensor | None = None) -> torch.Tensor:
        coords = _need_coords(coords, "the integral loss")
        total = torch.zeros((), device=target.device)
        for out in as_list(outputs):
            h, w = out.shape[-2:]
            pred, _ = soft_argmax(out.float(), self.beta)
            total = total + integral_l1(pixels_to_normalized(pred, h, w),
                                        pixels_to_normalized(coords.float(), h, w), weight)
        return total


@dataclass(frozen=True)
class CoarseToFineLoss:
    """Coarse-to-fine supervision of MSPN (Li et al. 2019, Sec. 3.3) and RSN: output i is trained against
    its own Gaussian target, with its own weight, by L2 or OHKM L2:

        L = Σ_i w_i · ℓ_i(P_i, G(σ_i)),   ℓ_i = ``ohkm_mse`` (top ``topk`` joints) if ohkm[i] else ``heatmap_mse``

    G(σ_i) is :func:`gaussian_heatmaps` at the target coordinates; σ_i = None takes the codec's target (the
    trainer's ``target``) instead, so the final output is trained on what the codec decodes.

    Attributes:
        sigmas: one σ (heatmap pixels) or None per output, in ``forward``'s order.
        weights: one weight per output.
        ohkm: one flag per output.
        topk: M of the OHKM outputs.
    """

    sigmas: tuple[float | None, ...]
    weights: tuple[float, ...]
    ohkm: tuple[bool, ...]
    topk: int = 8

    def __post_init__(self):
        if not len(self.sigmas) == len(self.weights) == len(self.ohkm):
            raise ValueError(f"sigmas, weights and ohkm need one entry per output, got "
                             f"{len(self.sigmas)}, {len(self.weights)}, {len(self.ohkm)}")

    @property
    def needs_coords(self) -> bool:
        return any(s is not None for s in self.sigmas)

    def targets(self, target: torch.Tensor, coords: torch.Tensor | None) -> list[torch.Tensor]:
        """The (N, K, h, w) target of every output: the codec's where σ is None, else G(σ_i) at ``coords``."""
        h, w = target.shape[-2:]
        if self.needs_coords:
            coords = _need_coords(coords, "the coarse-to-fine loss (per-stage Gaussian targets)")
        return [target if s is None else gaussian_heatmaps(coords, h, w, s) for s in self.sigmas]

    def __call__(self, outputs: list[torch.Tensor], target: torch.Tensor, weight: torch.Tensor,
                 coords: torch.Tensor | None = None) -> torch.Tensor:
        outputs = as_list(outputs)
        if len(outputs) != len(self.sigmas):
            raise ValueError(f"the coarse-to-fine loss is set for {len(self.sigmas)} outputs, got {len(outputs)}")
        k = target.shape[1]
        total = torch.zeros((), device=target.device)
        for out, tgt, w, hard in zip(outputs, self.targets(target, coords), self.weights, self.ohkm, strict=True):
            part = ohkm_mse(out, tgt, weight, min(self.topk, k)) if hard else heatmap_mse(out, tgt, weight)
            total = total + w * part
        return total


#: G-RMI's loss weights (Papandreou et al., CVPR 2017, Sec. 3.1): λ_h = 4 on the heatmaps, λ_o = 1 on the offsets
GRMI_HEATMAP_WEIGHT = 4.0
GRMI_OFFSET_WEIGHT = 1.0


def huber(r: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Huber's function of r ≥ 0: r²/2 up to δ, then δ(r − δ/2)."""
    return torch.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta))


@dataclass(frozen=True)
class GRMILoss:
    """G-RMI's heatmap + offset loss (Papandreou et al., CVPR 2017, Sec. 3.1), summed over stages:

        L = λ_h · L_h + λ_o · L_o
        L_h = mean_{n,k} w_nk · mean_pixels BCE(σ(logit), disk)            (logistic loss on the disks)
        L_o = Σ_{n,k,i in disk} w_nk · H(‖F_k(x_i) − (l_k − x_i)‖) / Σ_{n,k,i in disk} w_nk

    H is Huber's function with δ = 1 heatmap pixel, offsets in heatmap pixels. Outputs and targets are
    (N, 3K, h, w) in :mod:`animalpose.codecs.grmi`'s layout; weight (N, K).
    """

    heatmap_weight: float = GRMI_HEATMAP_WEIGHT
    offset_weight: float = GRMI_OFFSET_WEIGHT
    delta: float = 1.0
    needs_coords = False

    def __call__(self, outputs: list[torch.Tensor], target: torch.Tensor, weight: torch.Tensor,
                 coords: torch.Tensor | None = None) -> torch.Tensor:
        n, c = target.shape[:2]
        if c % 3:
            raise ValueError(f"G-RMI targets must be (N, 3K, h, w), got {tuple(target.shape)}: is codec.kind grmi?")
        k = c // 3
        wt = joint_weights(weight, n, k)[:, :, None, None]
        disk = target[:, :k].float()
        inside = disk * wt
        total = torch.zeros((), device=target.device)
        for out in as_list(outputs):
            if out.shape != target.shape:
                raise ValueError(f"prediction {tuple(out.shape)} and target {tuple(target.shape)} differ")
            out = out.float()
            bce = torch.nn.functional.binary_cross_entropy_with_logits(out[:, :k], disk, reduction="none")
            l_h = (wt * bce).flatten(2).mean(-1).mean()
            err = (out[:, k:] - target[:, k:].float()).reshape(n, 2, k, *out.shape[-2:])
            dist = err.pow(2).sum(1).clamp_min(1e-12).sqrt()  # (N, K, h, w)
            l_o = (inside * huber(dist, self.delta)).sum() / inside.sum().clamp_min(1.0)
            total = total + self.heatmap_weight * l_h + self.offset_weight * l_o
        return total
