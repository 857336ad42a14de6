"""Shared pieces of the heatmap codecs: the protocol, Gaussian rendering, argmax and target weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Codec(Protocol):
    """Keypoints in input-crop pixels <-> heatmaps.

    ``input_size`` and ``heatmap_size`` are (W, H). Keypoints are (K, 3) x, y, visibility in pixels
    of the network input crop; decoded coordinates are in the same pixels.
    """

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    #: True for the UDP grid (crops must be warped UDP-consistently); ask the codec, not the config
    udp: bool
    #: output maps per joint: 1 for heatmaps, 3 for G-RMI's heatmap + offsets
    channels_per_joint: int

    def score_maps(self, maps, target: bool = False):
        """Outputs (or, with ``target``, encoded targets) -> (N, K, h, w) maps whose argmax is the joint."""
        ...

    def encode(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, 3) -> heatmaps (K, h, w) float32, target weights (K,) float32."""
        ...

    def decode(self, heatmaps: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, h, w) -> coords (N, K, 2) float32 in input pixels, maxvals (N, K) float32."""
        ...


class GridMapping:
    """Input-crop pixels <-> heatmap pixels as a per-axis scale (mixin for the codec dataclasses).

    The standard top-down grid (MSRA, DARK, soft-argmax) scales by w / W; UDP overrides
    :attr:`scale` with (w - 1) / (W - 1) and sets :attr:`udp`. Needs ``input_size`` and ``heatmap_size``
    as (W, H), (w, h).
    """

    udp: ClassVar[bool] = False

    @property
    def scale(self) -> np.ndarray:
        """(2,) heatmap pixels per input pixel, x and y."""
        return np.array(self.heatmap_size, dtype=np.float64) / np.array(self.input_size, dtype=np.float64)

    def to_heatmap(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, dtype=np.float64) * self.scale

    def from_heatmap(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, dtype=np.float64) / self.scale

    #: output maps per joint (G-RMI: heatmap + two offset fields)
    channels_per_joint: ClassVar[int] = 1

    def score_maps(self, maps, target: bool = False):
        """(N, K·channels_per_joint, h, w) outputs or targets -> (N, K, h, w) maps whose argmax is the joint's
        pixel, for argmax metrics (PCK on the crop). A heatmap codec's maps are that already."""
        return maps


def as_numpy_heatmaps(heatmaps: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N, K, h, w) numpy or torch -> float32 numpy (detached, on the CPU)."""
    if isinstance(heatmaps, torch.Tensor):
        heatmaps = heatmaps.detach().float().cpu().numpy()
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (N, K, h, w), got shape {heatmaps.shape}")
    return heatmaps


def check_keypoints(keypoints: np.ndarray) -> np.ndarray:
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] != 3:
        raise ValueError(f"keypoints must be (K, 3) x, y, visibility; got shape {kp.shape}")
    return kp


def radius_of(sigma: float) -> int:
    """Half-width of the rendered Gaussian window: 3σ rounded to whole pixels (MSRA)."""
    return max(1, round(3.0 * sigma))


def render_gaussians(
    centers: np.ndarray,
    heatmap_size: Sequence[int],
    sigma: float,
    window_centers: np.ndarray | None = None,
    radius: int | None = None,
) -> np.ndarray:
    """Unnormalised Gaussians exp(-d²/2σ²) on a (h, w) pixel grid, zero outside a square window.

    Args:
        centers: (K, 2) Gaussian means (x, y) in heatmap pixels (integer for MSRA, real for DARK/UDP).
        heatmap_size: (w, h).
        sigma: standard deviation in heatmap pixels.
        window_centers: (K, 2) integer centres of the ±radius window; default: ``centers`` rounded.
        radius: window half-width; default 3σ. A negative value renders the full map.

    Returns:
        (K, h, w) float32.
    """
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    if window_centers is None:
        window_centers = np.floor(centers + 0.5)
    r = radius_of(sigma) if radius is None else radius
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    gx = np.exp(-((xs[None, :] - centers[:, :1]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((ys[None, :] - centers[:, 1:]) ** 2) / (2 * sigma**2))
    if r >= 0:
        gx *= np.abs(xs[None, :] - window_centers[:, :1]) <= r
        gy *= np.abs(ys[None, :] - window_centers[:, 1:]) <= r
    return (gy[:, :, None] * gx[:, None, :]).astype(np.float32)


def visible_in_crop(keypoints: np.ndarray, input_size: Sequence[int]) -> np.ndarray:
    """(K,) float32 target weights: 1 where labelled (visibility > 0) and inside the crop's pixel area
    [-0.5, W - 0.5) × [-0.5, H - 0.5), else 0 (a joint outside the crop or unlabelled gives no gradient).

    Args:
        keypoints: (K, 3) in input-crop pixels.
        input_size: (W, H).
    """
    w, h = float(input_size[0]), float(input_size[1])
    x, y = keypoints[:, 0], keypoints[:, 1]
    with np.errstate(invalid="ignore"):
        inside = (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)
    return ((keypoints[:, 2] > 0) & inside & np.isfinite(keypoints[:, :2]).all(axis=1)).astype(np.float32)


def argmax_2d(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, h, w) -> integer peak locations (N, K, 2) float32 (x, y) and peak values (N, K)."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    idx = flat.argmax(axis=-1)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float32)
    return coords, maxvals.astype(np.float32)


def quarter_offset(heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Move each argmax a quarter pixel towards its larger neighbour, per axis (Newell et al. 2016;
    SimpleBaseline/HRNet ``get_final_preds``). Peaks on the border are left as they are.

    Args:
        heatmaps: (N, K, h, w); coords: (N, K, 2) integer peaks from :func:`argmax_2d`.

    Returns:
        (N, K, 2) float32.
    """
    n, k, h, w = heatmaps.shape
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    out = coords.astype(np.float32).copy()
    okx = (px > 0) & (px < w - 1)
    oky = (py > 0) & (py < h - 1)
    dx = heatmaps[ni, ki, py, np.clip(px + 1, 0, w - 1)] - heatmaps[ni, ki, py, np.clip(px - 1, 0, w - 1)]
    dy = heatmaps[ni, ki, np.clip(py + 1, 0, h - 1), px] - heatmaps[ni, ki, np.clip(py - 1, 0, h - 1), px]
    out[..., 0] += np.where(okx, 0.25 * np.sign(dx), 0.0)
    out[..., 1] += np.where(oky, 0.25 * np.sign(dy), 0.0)
    return out
