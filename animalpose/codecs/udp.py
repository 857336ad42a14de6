"""UDP heatmaps: unbiased data processing (Huang et al., CVPR 2020).

With the UDP crop (:func:`animalpose.data.transforms.crop_matrix` with ``udp=True``) the first and
last pixel centres of the input and of the heatmap both span the same physical extent, so the
input→heatmap map is ``x_hm = x_in (w - 1) / (W - 1)`` (UDP) rather than the biased
``x_in w / W``. Targets are Gaussians at the exact (real-valued) heatmap location; decoding is the
DARK modulation + Taylor step followed by the inverse UDP scaling, as in the UDP reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from animalpose.codecs.dark import DarkCodec


@dataclass(frozen=True)
class UDPHeatmapCodec(DarkCodec):
    """Gaussian targets on the UDP grid, DARK-refined decoding.

    Encoding, decoding and the modulation kernel are DARK's; only the input↔heatmap mapping differs.

    Attributes:
        input_size, heatmap_size: (W, H) and (w, h); both at least 2 pixels per side.
        sigma: Gaussian σ in heatmap pixels.
        blur_kernel: modulation kernel size; default from σ.
    """

    udp: ClassVar[bool] = True

    @property
    def scale(self) -> np.ndarray:
        """(2,) heatmap pixels per input pixel: (w - 1) / (W - 1), (h - 1) / (H - 1)."""
        hm = np.array(self.heatmap_size, dtype=np.float64) - 1.0
        inp = np.array(self.input_size, dtype=np.float64) - 1.0
        return hm / inp
