"""DARK: distribution-aware coordinate representation (Zhang et al., CVPR 2020).

Encoding draws the Gaussian at the real-valued (unquantised) keypoint location. Decoding
(Sec. 3 of the paper):

1. modulate the predicted heatmap with a Gaussian kernel of the training σ, rescaled to
   keep its maximum, so that a noisy multi-peak map becomes Gaussian-like again;
2. take the logarithm, which turns a Gaussian into a quadratic P(x);
3. one Newton step from the argmax m: μ = m - (D''(m))⁻¹ D'(m), with the derivatives by
   central differences (first derivative over ±1 pixel, second over ±2 pixels as in the paper's code).

On a noiseless Gaussian target the log is exactly quadratic, so the step recovers the true centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from animalpose.codecs.base import (
    GridMapping,
    argmax_2d,
    as_numpy_heatmaps,
    check_keypoints,
    render_gaussians,
    visible_in_crop,
)


def default_blur_kernel(sigma: float) -> int:
    """Odd kernel size of the modulation: 11 for σ = 2, 17 for σ = 3 (the DARK reference values)."""
    k = round(6 * sigma - 1)
    return k if k % 2 == 1 else k + 1


def modulate(heatmaps: np.ndarray, kernel: int) -> np.ndarray:
    """Gaussian-smooth each (h, w) map with zero border and rescale it to its original maximum (DARK).

    Args:
        heatmaps: (N, K, h, w) float32.
        kernel: odd kernel size; the OpenCV σ for that size is used (0.3((k-1)/2 - 1) + 0.8), as in
            the DARK code's ``cv2.GaussianBlur(..., (k, k), 0)`` on a zero-padded map.

    Returns:
        (N, K, h, w) float32.
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n * k, h, w).astype(np.float32)
    g = cv2.getGaussianKernel(kernel, 0).astype(np.float32)[:, 0]
    # Separable blur with a zero border as banded matrices: out = By @ map @ Bxᵀ.
    out = _band(h, g) @ flat @ _band(w, g).T
    orig_max = flat.reshape(n * k, -1).max(axis=1)
    new_max = out.reshape(n * k, -1).max(axis=1)
    ratio = np.where(new_max > 0, orig_max / np.where(new_max > 0, new_max, 1.0), 0.0)
    out *= ratio[:, None, None].astype(np.float32)
    return out.reshape(n, k, h, w)


def _band(size: int, taps: np.ndarray) -> np.ndarray:
    """(size, size) matrix applying the 1-D filter ``taps`` (odd length) with zeros beyond the edges."""
    r = len(taps) // 2
    idx = np.arange(size)
    offset = idx[None, :] - idx[:, None] + r
    valid = (offset >= 0) & (offset < len(taps))
    return np.where(valid, taps[np.clip(offset, 0, len(taps) - 1)], 0.0).astype(np.float32)


def taylor_refine(heatmaps: np.ndarray, coords: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    """One second-order Taylor (Newton) step on the log-heatmap at each integer peak.

    Args:
        heatmaps: (N, K, h, w) positive maps (already modulated); values are clipped to >= 1e-10.
        coords: (N, K, 2) integer peaks (x, y).

    Returns:
        (N, K, 2) float64 refined (x, y); peaks whose Hessian is singular or not negative definite,
        or whose step exceeds one pixel, are left unrefined.
    """
    n, k = heatmaps.shape[:2]
    logs = np.log(np.clip(heatmaps.astype(np.float64), eps, None))
    padded = np.pad(logs, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="edge")
    px = coords[..., 0].astype(np.int64) + 2
    py = coords[..., 1].astype(np.int64) + 2
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")

    def at(dx: int, dy: int) -> np.ndarray:
        return padded[ni, ki, py + dy, px + dx]

    c = at(0, 0)
    gx = 0.5 * (at(1, 0) - at(-1, 0))
    gy = 0.5 * (at(0, 1) - at(0, -1))
    hxx = 0.25 * (at(2, 0) - 2 * c + at(-2, 0))
    hyy = 0.25 * (at(0, 2) - 2 * c + at(0, -2))
    hxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = hxx * hyy - hxy**2
    ok = (det > eps) & (hxx < 0)
    safe = np.where(ok, det, 1.0)
    # μ - m = -H⁻¹ g with H⁻¹ = [[hyy, -hxy], [-hxy, hxx]] / det
    ox = -(hyy * gx - hxy * gy) / safe
    oy = -(-hxy * gx + hxx * gy) / safe
    ok &= (np.abs(ox) <= 1.0) & (np.abs(oy) <= 1.0)
    out = coords.astype(np.float64).copy()
    out[..., 0] += np.where(ok, ox, 0.0)
    out[..., 1] += np.where(ok, oy, 0.0)
    return out


def dark_decode_heatmap_pixels(heatmaps: np.ndarray, kernel: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, h, w) -> sub-pixel peaks (N, K, 2) float64 in heatmap pixels and maxvals (N, K)."""
    coords, maxvals = argmax_2d(heatmaps)
    refined = taylor_refine(modulate(heatmaps, kernel), coords)
    return refined, maxvals


@dataclass(frozen=True)
class DarkCodec(GridMapping):
    """Unbiased sub-pixel Gaussian targets and the DARK decoder, on the standard (stride) grid.

    Attributes:
        input_size, heatmap_size: (W, H) and (w, h).
        sigma: Gaussian σ in heatmap pixels.
        blur_kernel: modulation kernel size; default from σ (:func:`default_blur_kernel`).
    """

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0
    blur_kernel: int | None = None

    @property
    def kernel(self) -> int:
        return self.blur_kernel or default_blur_kernel(self.sigma)

    def encode(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, 3) -> heatmaps (K, h, w) with the Gaussian at the exact location, weights (K,)."""
        kp = check_keypoints(keypoints)
        hm_xy = self.to_heatmap(kp[:, :2])
        weights = visible_in_crop(kp, self.input_size)
        heatmaps = render_gaussians(np.nan_to_num(hm_xy, nan=-1e6), self.heatmap_size, self.sigma)
        heatmaps *= weights[:, None, None]
        return heatmaps, weights

    def decode(self, heatmaps: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, h, w) -> coords (N, K, 2) in input pixels, maxvals (N, K)."""
        hm = as_numpy_heatmaps(heatmaps)
        coords, maxvals = dark_decode_heatmap_pixels(hm, self.kernel)
        return self.from_heatmap(coords).astype(np.float32), maxvals
