"""Differentiable spatial soft-argmax, shared by the soft-argmax codec, DSNT head and integral readouts."""

from __future__ import annotations

import torch


def pixel_grids(height: int, width: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates: xs (W,) = 0..W-1 and ys (H,) = 0..H-1."""
    xs = torch.arange(width, device=device, dtype=dtype)
    ys = torch.arange(height, device=device, dtype=dtype)
    return xs, ys


def spatial_softmax(heatmaps: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """(N, K, H, W) -> (N, K, H, W) probabilities: softmax of beta * heatmaps over H*W."""
    n, k, h, w = heatmaps.shape
    flat = (beta * heatmaps).reshape(n, k, h * w)
    return torch.softmax(flat.float(), dim=-1).reshape(n, k, h, w).to(heatmaps.dtype)


def expected_coordinates(probs: torch.Tensor) -> torch.Tensor:
    """(N, K, H, W) probabilities -> (N, K, 2) expected (x, y) in heatmap pixels."""
    _, _, h, w = probs.shape
    xs, ys = pixel_grids(h, w, probs.device, probs.dtype)
    x = (probs.sum(dim=2) * xs).sum(dim=-1)
    y = (probs.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


def soft_argmax(heatmaps: torch.Tensor, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """β-soft-argmax (LPN uses β = 160 on raw heatmaps).

    Args:
        heatmaps: (N, K, H, W) scores.
        beta: inverse temperature; larger approaches the hard argmax.

    Returns:
        coords (N, K, 2) in heatmap pixels (x, y), and the probabilities (N, K, H, W).
    """
    probs = spatial_softmax(heatmaps, beta)
    return expected_coordinates(probs), probs


def pixels_to_normalized(coords: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Heatmap pixels -> DSNT's (-1, 1) range, pixel centres at ((2i + 1) / size - 1)."""
    size = coords.new_tensor([width, height])
    return (2 * coords + 1) / size - 1


def normalized_to_pixels(coords: torch.Tensor, height: int, width: int) -> torch.Tensor:
    size = coords.new_tensor([width, height])
    return ((coords + 1) * size - 1) / 2
