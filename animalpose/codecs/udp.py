"""UDP heatmaps: unbiased data processing (Huang et al., CVPR 2020).

With the UDP crop (:func:`animalpose.data.transforms.crop_matrix` with ``udp=True``) the first and
last pixel centres of the input and of the heatmap both span the same physical extent, so the
input→heatmap map is ``x_hm = x_in (w - 1) / (W - 1)`` (UDP) rather than the biased
``x_in w / W``. Targets are Gaussians at the exact (real-valued) heatmap location; decoding is the
DARK modulation + Taylor step followed by the inverse UDP scaling, as in the UDP reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from animalpose.codecs.base import as_numpy_heatmaps, check_keypoints, render_gaussians, visible_in_crop
from animalpose.codecs.dark import dark_decode_heatmap_pixels, default_blur_kernel


@dataclass(frozen=True)
class UDPHeatmapCodec:
    """Gaussian targets on the UDP grid, DARK-refined decoding.

    Attributes:
        input_size, heatmap_size: (W, H) and (w, h); both at least 2 pixels per side.
        sigma: Gaussian σ in heatmap pixels.
        blur_kernel: modulation kernel size; default from σ.
    """

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0
    blur_kernel: int | None = None

    @property
    def factor(self) -> np.ndarray:
        """(2,) heatmap pixels per input pixel: (w - 1) / (W - 1), (h - 1) / (H - 1)."""
        hm = np.array(self.heatmap_size, dtype=np.float64) - 1.0
        inp = np.array(self.input_size, dtype=np.float64) - 1.0
        return hm / inp

    def to_heatmap(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, dtype=np.float64) * self.factor

    def from_heatmap(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, dtype=np.float64) / self.factor

    @property
    def kernel(self) -> int:
        return self.blur_kernel or default_blur_kernel(self.sigma)

    def encode(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, 3) -> heatmaps (K, h, w) float32, weights (K,) float32."""
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
