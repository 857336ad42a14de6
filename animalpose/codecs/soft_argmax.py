"""β-soft-argmax decoding of heatmaps (LPN: Zhang et al., "Simple and Lightweight Human Pose
Estimation", 2019, β = 160).

The coordinate is the expectation of the pixel grid under softmax(β · heatmap). Targets are the
same real-valued Gaussians as DARK's (the network is still trained on heatmaps). The differentiable
core lives in :mod:`animalpose.ops.soft_argmax` and is shared with the integral/DSNT heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from animalpose.codecs.base import GridMapping, check_keypoints, render_gaussians, visible_in_crop
from animalpose.ops.soft_argmax import soft_argmax

LPN_BETA = 160.0


@dataclass(frozen=True)
class SoftArgmaxCodec(GridMapping):
    """Real-valued Gaussian targets; β-soft-argmax decoding on the standard (stride) grid.

    Attributes:
        input_size, heatmap_size: (W, H) and (w, h).
        sigma: Gaussian σ in heatmap pixels.
        beta: inverse temperature of the softmax (LPN: 160).
    """

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0
    beta: float = LPN_BETA

    def encode(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, 3) -> heatmaps (K, h, w) float32, weights (K,) float32."""
        kp = check_keypoints(keypoints)
        hm_xy = self.to_heatmap(kp[:, :2])
        weights = visible_in_crop(kp, self.input_size)
        heatmaps = render_gaussians(np.nan_to_num(hm_xy, nan=-1e6), self.heatmap_size, self.sigma)
        heatmaps *= weights[:, None, None]
        return heatmaps, weights

    def decode_torch(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable: (N, K, h, w) -> coords (N, K, 2) in input pixels, maxvals (N, K)."""
        coords, _ = soft_argmax(heatmaps.float(), self.beta)
        scale = torch.as_tensor(1.0 / self.scale, dtype=coords.dtype, device=coords.device)
        maxvals = heatmaps.flatten(2).amax(dim=-1)
        return coords * scale, maxvals

    def decode(self, heatmaps: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, h, w) -> coords (N, K, 2) float32 in input pixels, maxvals (N, K) float32."""
        hm = heatmaps if isinstance(heatmaps, torch.Tensor) else torch.as_tensor(np.asarray(heatmaps))
        if hm.ndim != 4:
            raise ValueError(f"heatmaps must be (N, K, h, w), got shape {tuple(hm.shape)}")
        with torch.no_grad():
            coords, maxvals = self.decode_torch(hm.detach().float().cpu())
        return coords.numpy().astype(np.float32), maxvals.numpy().astype(np.float32)
