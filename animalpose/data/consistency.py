"""Batched invertible transforms for CC-SSL's consistency checks and test-time augmentation.

CC-SSL (Mu et al., "Learning from Synthetic Animals", CVPR 2020) keeps a pseudo-label
only where the model is *equivariant* to geometric changes (predict on T(x), map back with T⁻¹,
compare) and *invariant* to appearance changes. Given a batch of crops this module samples K
geometric transforms (scale clamp(N(1, 0.25), 0.75, 1.25), rotation clamp(N(0, 30°), ±60°),
optional flip with joint swap) and M photometric ones, warps the batch with
``kornia.geometry.transform.warp_affine``, and maps heatmaps (K, N, J, h, w) and keypoints back
exactly into the frame of the original crop.

Matrices act on pixel-centre coordinates about the crop's centre ((W - 1) / 2, (H - 1) / 2). The
heatmap matrix is the input matrix conjugated by the codec's input→heatmap scaling (standard
``w / W`` or UDP ``(w - 1) / (W - 1)``), so heatmaps and keypoints travel with the same geometry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from kornia.geometry.transform import warp_affine

from animalpose.data import transforms as T


@dataclass(frozen=True)
class GeometricParams:
    """K geometric transforms: scale (K,), rotation (K,) degrees, flip (K,) bool."""

    scale: np.ndarray
    rotation: np.ndarray
    flip: np.ndarray

    def __len__(self) -> int:
        return len(self.scale)


def sample_geometric(
    k: int,
    rng: np.random.Generator,
    scale_sigma: float = 0.25,
    rotation_sigma: float = 30.0,
    flip_prob: float = 0.5,
    flip: bool = True,
) -> GeometricParams:
    """K transforms as in CC-SSL: scale clamp(N(1, σs), 1 ± σs), rotation clamp(N(0, σr), ±2σr),
    flip with probability ``flip_prob`` when ``flip`` (pass False for schemas without flip pairs)."""
    scale = np.clip(rng.normal(1.0, scale_sigma, size=k), 1 - scale_sigma, 1 + scale_sigma)
    rotation = np.clip(rng.normal(0.0, rotation_sigma, size=k), -2 * rotation_sigma, 2 * rotation_sigma)
    flips = (rng.random(k) < flip_prob) if flip else np.zeros(k, dtype=bool)
    return GeometricParams(scale, rotation, flips)


def input_to_heatmap(input_size: Sequence[int], heatmap_size: Sequence[int], udp: bool = False) -> np.ndarray:
    """(3, 3) scaling from input pixels to heatmap pixels (standard w/W or UDP (w-1)/(W-1))."""
    (w_in, h_in), (w_hm, h_hm) = input_size, heatmap_size
    if udp:
        return np.diag([(w_hm - 1) / (w_in - 1), (h_hm - 1) / (h_in - 1), 1.0])
    return np.diag([w_hm / w_in, h_hm / h_in, 1.0])


class BatchedGeometric:
    """K invertible geometric transforms applied to every sample of a batch.

    Args:
        params: the K transforms (:func:`sample_geometric`).
        input_size: (W, H) of the crops.
        heatmap_size: (w, h) of the model's heatmaps.
        flip_permutation: (J,) joint permutation of a flip; required when any transform flips.
        udp: heatmap grid convention of the codec.
    """

    def __init__(
        self,
        params: GeometricParams,
        input_size: Sequence[int],
        heatmap_size: Sequence[int],
        flip_permutation: np.ndarray | None = None,
        udp: bool = False,
    ):
        if np.any(params.flip) and flip_permutation is None:
            raise ValueError("a flip was sampled but no flip permutation was given")
        self.params = params
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.perm = None if flip_permutation is None else np.asarray(flip_permutation)
        self.inv_perm = None if self.perm is None else np.argsort(self.perm)
        w, h = self.input_size
        c = ((w - 1) * 0.5, (h - 1) * 0.5)
        mats = []
        for s, r, f in zip(params.scale, params.rotation, params.flip, strict=True):
            m = T.rotation_matrix(float(r), c) @ T.scaling_matrix(float(s), float(s), c)
            if f:
                m = T.hflip_matrix(w) @ m
            mats.append(m)
        self.input_matrices = np.stack(mats) if mats else np.zeros((0, 3, 3))  # (K, 3, 3)
        d = input_to_heatmap(self.input_size, self.heatmap_size, udp)
        self.heatmap_matrices = d @ self.input_matrices @ np.linalg.inv(d)  # (K, 3, 3)

    def __len__(self) -> int:
        return len(self.params)

    @staticmethod
    def _warp(x: torch.Tensor, mats: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """(K, N, C, H, W) with (K, 3, 3) matrices -> (K, N, C, h, w) (size = (w, h))."""
        k, n = x.shape[:2]
        m = torch.as_tensor(mats[:, :2], dtype=x.dtype, device=x.device)
        m = m[:, None].expand(k, n, 2, 3).reshape(k * n, 2, 3)
        out = warp_affine(x.reshape(k * n, *x.shape[2:]), m, (size[1], size[0]), align_corners=True)
        return out.reshape(k, n, *out.shape[1:])

    def warp_images(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (K, N, C, H, W): the batch under each transform (zeros outside)."""
        x = images[None].expand(len(self), *images.shape)
        return self._warp(x, self.input_matrices, self.input_size)

    def _unswap(self, x, flip: bool, axis: int):
        if not flip:
            return x
        idx = self.inv_perm if isinstance(x, np.ndarray) else torch.as_tensor(self.inv_perm, device=x.device)
        return x.index_select(axis, idx) if isinstance(x, torch.Tensor) else np.take(x, idx, axis=axis)

    def heatmaps_to_original(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """(K, N, J, h, w) heatmaps predicted on the transformed crops -> the original crop's frame,
        joints swapped back where the transform flipped."""
        inv = np.linalg.inv(self.heatmap_matrices)
        out = self._warp(heatmaps, inv, self.heatmap_size)
        return torch.stack([self._unswap(out[i], bool(f), 1) for i, f in enumerate(self.params.flip)])

    def keypoints_to_transformed(self, keypoints: np.ndarray) -> np.ndarray:
        """(N, J, C) input-pixel keypoints of the original crops -> (K, N, J, C) in each transformed crop."""
        out = []
        for m, f in zip(self.input_matrices, self.params.flip, strict=True):
            kp = T.transform_points(keypoints, m[:2])
            out.append(kp[:, self.perm] if f else kp)
        return np.stack(out)

    def keypoints_to_original(self, keypoints: np.ndarray) -> np.ndarray:
        """(K, N, J, C) input-pixel keypoints in the transformed crops -> (K, N, J, C) in the original."""
        out = []
        for i, (m, f) in enumerate(zip(self.input_matrices, self.params.flip, strict=True)):
            kp = T.transform_points(keypoints[i], T.invert_affine(m[:2]))
            out.append(self._unswap(kp, bool(f), 1))
        return np.stack(out)


@dataclass(frozen=True)
class PhotometricParams:
    """M appearance changes: colour gains (M, 3), brightness (M,), contrast (M,), noise σ (M,) on [0, 1]."""

    gains: np.ndarray
    brightness: np.ndarray
    contrast: np.ndarray
    noise: np.ndarray

    def __len__(self) -> int:
        return len(self.brightness)


def sample_photometric(
    m: int,
    rng: np.random.Generator,
    gain_range: tuple[float, float] = (0.8, 1.2),
    brightness: float = 0.1,
    contrast_range: tuple[float, float] = (0.7, 1.3),
    noise_max: float = 0.05,
) -> PhotometricParams:
    """M appearance transforms: per-channel gains (the hourglass colour jitter), brightness shift,
    contrast about mid-grey and additive Gaussian noise, all on images scaled to [0, 1]."""
    return PhotometricParams(
        gains=rng.uniform(*gain_range, size=(m, 3)),
        brightness=rng.uniform(-brightness, brightness, size=m),
        contrast=rng.uniform(*contrast_range, size=m),
        noise=rng.uniform(0.0, noise_max, size=m),
    )


def apply_photometric(
    images: torch.Tensor,
    params: PhotometricParams,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """(N, 3, H, W) -> (M, N, 3, H, W) under each appearance change, batched on the images' device.

    Images are in [0, 1], or normalised with ``mean``/``std`` (then they are un-normalised, changed,
    clipped to [0, 1] and normalised again). ``seed`` makes the noise reproducible.
    """
    x = images.float()
    if mean is not None and std is not None:
        mu = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        sd = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = x * sd + mu
    dev, dt = x.device, x.dtype
    gains = torch.as_tensor(params.gains, dtype=dt, device=dev).view(-1, 1, 3, 1, 1)
    bright = torch.as_tensor(params.brightness, dtype=dt, device=dev).view(-1, 1, 1, 1, 1)
    contrast = torch.as_tensor(params.contrast, dtype=dt, device=dev).view(-1, 1, 1, 1, 1)
    noise_sd = torch.as_tensor(params.noise, dtype=dt, device=dev).view(-1, 1, 1, 1, 1)
    gen = torch.Generator(device=dev).manual_seed(seed)
    noise = torch.randn((len(params), *x.shape), generator=gen, device=dev, dtype=dt)
    out = ((x[None] * gains) - 0.5) * contrast + 0.5 + bright + noise * noise_sd
    out = out.clamp(0.0, 1.0)
    if mean is not None and std is not None:
        out = (out - mu) / sd
    return out.to(images.dtype)
