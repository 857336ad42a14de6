"""MSRA Gaussian heatmaps with the argmax + quarter-pixel decoder.

Encoding as in SimpleBaseline/HRNet (Xiao et al., ECCV 2018): the keypoint is scaled by the stride
``heatmap / input`` and snapped to the nearest heatmap pixel; a Gaussian of peak 1 and standard
deviation σ is drawn around it within a radius of 3σ. Decoding takes the argmax and moves it a
quarter pixel towards the larger neighbour. The snapping loses up to half a heatmap pixel; DARK and
UDP remove that bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from animalpose.codecs.base import (
    GridMapping,
    argmax_2d,
    as_numpy_heatmaps,
    check_keypoints,
    quarter_offset,
    render_gaussians,
    visible_in_crop,
)


@dataclass(frozen=True)
class MSRAHeatmapCodec(GridMapping):
    """Integer-centred Gaussian targets; argmax (+ quarter-pixel shift) decoding.

    Attributes:
        input_size: (W, H) of the network input crop.
        heatmap_size: (w, h) of the output heatmaps.
        sigma: Gaussian standard deviation in heatmap pixels (2 for 64×64 maps).
        quarter_shift: apply the quarter-pixel shift when decoding.
    """

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0
    quarter_shift: bool = True

    def encode(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, 3) input-pixel keypoints -> heatmaps (K, h, w) float32 (peak exactly 1), weights (K,)."""
        kp = check_keypoints(keypoints)
        hm_xy = self.to_heatmap(kp[:, :2])
        weights = visible_in_crop(kp, self.input_size)
        centers = np.floor(np.nan_to_num(hm_xy, nan=-1e6) + 0.5)
        heatmaps = render_gaussians(centers, self.heatmap_size, self.sigma)
        heatmaps *= weights[:, None, None]
        return heatmaps, weights

    def decode(self, heatmaps: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, h, w) -> coords (N, K, 2) in input pixels, maxvals (N, K)."""
        hm = as_numpy_heatmaps(heatmaps)
        coords, maxvals = argmax_2d(hm)
        if self.quarter_shift:
            coords = quarter_offset(hm, coords)
        return self.from_heatmap(coords).astype(np.float32), maxvals
