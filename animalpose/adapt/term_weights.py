"""Lightning Pose's weights of its unsupervised terms, carried over to our heatmap loss's scale.

A weight w of an unsupervised term (temporal, pose PCA, multi-view; :mod:`animalpose.adapt.temporal_loss` and
its siblings) means a balance against the supervised heatmap loss, and the two libraries scale that loss very
differently:

- **Lightning Pose** (Biderman et al., Nature Methods 2024; ``lightning_pose/data/heatmaps.py``
  ``generate_heatmaps`` and ``lightning_pose/losses/losses.py`` ``HeatmapMSELoss`` / ``Loss.weight``): targets are
  Gaussians of σ = 1.25 heatmap pixels *normalised to sum 1* (predictions are spatial softmaxes, also summing to
  1); the MSE is multiplied by the heatmap's pixel count ("to standardize loss range") and averaged over the
  labelled keypoints, so it is per keypoint Σ_pixels (P − G)²; its weight is 1 / (2 e^0) = 0.5. Every
  unsupervised term is in original-image pixels (``convert_bbox_coords``, as ours) with weight 1 / (2 e^5) =
  0.003369 by default (``log_weight: 5``).
- **here** (:func:`animalpose.losses.heatmap_mse`): targets are Gaussians of peak 1 (the codec's σ, e.g. 1.5
  heatmap pixels on a 32×32 map), and the loss is 0.5 · the *mean* over heatmap pixels of (P − G)².

Both losses are quadratic in the heatmap error, so their ratio is the ratio of what a heatmap error of the target's
own size costs: the target's energy under each normalisation,

    E_ours = mean_pixels G²             (G of peak 1, our σ and map size;   ≈ πσ² / (h·w))
    E_LP   = Σ_pixels (G / Σ G)²        (Lightning Pose's σ_LP = 1.25;        ≈ 1 / (4π σ_LP²))

and the weight that keeps Lightning Pose's balance of terms here is w_LP · E_ours / E_LP. For our σ = 1.5 on
32×32 maps: E_ours = 0.00690, E_LP = 0.0509, ratio 0.136, so Lightning Pose's 0.003369 becomes 0.000457 (7.4×
smaller): our supervised loss is that much smaller than theirs for the same miss, and the faithful weight lets the
unsupervised term dominate it 7.4× more than Lightning Pose intends. (Lightning Pose averages over labelled
keypoints only, ours over all K with unlabelled ones weighted 0: a further factor of the labelled fraction, left
out here; about 0.9 on mirror-mouse, 1 on the SLEAP clip.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from animalpose.codecs.base import render_gaussians

#: Lightning Pose's target σ in heatmap pixels (``generate_heatmaps(..., sigma=1.25)``)
LIGHTNING_POSE_SIGMA = 1.25
#: Lightning Pose's default log-weight of every unsupervised term (its config's ``log_weight: 5.0``)
LIGHTNING_POSE_LOG_WEIGHT = 5.0


def lightning_pose_weight(log_weight: float = LIGHTNING_POSE_LOG_WEIGHT) -> float:
    """A term's weight from its Lightning Pose log-weight: 1 / (2 e^log_weight) (``Loss.weight``)."""
    return 1.0 / (2.0 * math.exp(log_weight))


def _centred_gaussian(sigma: float, heatmap_size: Sequence[int], radius: int | None) -> np.ndarray:
    """(h, w) Gaussian of peak 1 centred on the map's middle pixel."""
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    return render_gaussians(np.array([[w // 2, h // 2]], float), (w, h), sigma, radius=radius)[0].astype(np.float64)


def heatmap_energy(sigma: float, heatmap_size: Sequence[int]) -> float:
    """E_ours = mean over pixels of G², G our codec's target of peak 1 (its 3σ window), on a (w, h) map."""
    g = _centred_gaussian(sigma, heatmap_size, None)
    return float((g**2).mean())


def lightning_pose_heatmap_energy(sigma: float = LIGHTNING_POSE_SIGMA, heatmap_size: Sequence[int] = (64, 64)) -> float:
    """E_LP = Σ over pixels of (G / Σ G)², Lightning Pose's unit-sum target (whole map, no window); barely
    depends on the map size once it holds the Gaussian (≈ 1 / (4πσ²))."""
    g = _centred_gaussian(sigma, heatmap_size, -1)
    return float(((g / g.sum()) ** 2).sum())


def balanced_weight(lp_weight: float, sigma: float, heatmap_size: Sequence[int]) -> float:
    """The weight here with Lightning Pose's balance of an unsupervised term against the heatmap loss:
    ``lp_weight · E_ours / E_LP`` (module docstring) for our codec's ``sigma`` and ``heatmap_size`` (w, h)."""
    return lp_weight * heatmap_energy(sigma, heatmap_size) / lightning_pose_heatmap_energy()
