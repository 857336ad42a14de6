"""Training losses of the pose networks.

- :func:`heatmap_mse`: visibility-weighted heatmap MSE of the CC-SSL / pytorch-pose reference, summed
  over the supervised stages.
- :func:`ohkm_mse`: the same per-joint loss with online hard keypoint mining (Chen et al., "Cascaded
  Pyramid Network for Multi-Person Pose Estimation", CVPR 2018; as in the HRNet code): only the top-k
  joints by loss count, per sample.
- :func:`dsnt_loss`: DSNT (Nibali et al. 2018): Euclidean distance of the normalised coordinates plus
  Jensen–Shannon divergence of the normalised heatmap to a Gaussian around the target.

Losses compute in float32 whatever the dtype of the predictions (autocast-safe).
"""

from __future__ import annotations

import torch

from animalpose.ops.soft_argmax import normalized_to_pixels, pixel_grids


def _as_list(outputs: list[torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
    return [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)


def _joint_weights(target_weight: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """(N, K) or (N, K, 1) -> (N, K) float32."""
    if target_weight.numel() != n * k or target_weight.shape[:2] != (n, k):
        raise ValueError(f"target_weight must be (N, K) or (N, K, 1) = ({n}, {k}), got {tuple(target_weight.shape)}")
    return target_weight.reshape(n, k).float()


def _per_joint_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
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
    weight = _joint_weights(target_weight, n, k)
    return sum(_per_joint_mse(out, target, weight).mean() for out in _as_list(outputs))


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
    weight = _joint_weights(target_weight, n, k)
    total = torch.zeros((), device=target.device)
    for out in _as_list(outputs):
        per_joint = _per_joint_mse(out, target, weight)  # (N, K)
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
    wt = _joint_weights(weight, n, k)
    euclid = (coords_norm.float() - target_norm.float()).pow(2).sum(-1).clamp_min(1e-12).sqrt()
    reg = js_divergence(heatmap_probs.float(), gaussian_probs(target_norm, h, w, sigma))
    per_joint = euclid + reg_weight * reg
    return (wt * per_joint).sum() / wt.sum().clamp_min(1e-12)
