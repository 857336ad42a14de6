"""Agreement of pseudo-labels with the labelled poses' priors: Lightning Pose's pose PCA and multi-view PCA as
filters rather than gradients.

As losses (:mod:`animalpose.adapt.pca_loss`, :mod:`animalpose.adapt.multiview_loss`) these priors can be met
by shrinking or freezing the predictions (BENCHMARKS.md, issue 23); as filters on CC-SSL's pseudo-labels they
only remove evidence. A pseudo-labelled keypoint stays eligible when its reconstruction error under each prior
that covers it is at most that prior's ε (pixels, the percentile of the labelled poses' own errors): a paw
predicted on the other paw of a mirror rig's top view disagrees with its bottom view and is dropped.
"""

from __future__ import annotations

import numpy as np
import torch

from animalpose.adapt.multiview_loss import MultiviewPCA, multiview_error
from animalpose.adapt.pca_loss import PosePCA, reconstruction_error


def prior_agreement(xy: np.ndarray, pca: PosePCA | None = None, multiview: MultiviewPCA | None = None) -> np.ndarray:
    """(N, K) bool: the keypoints of (N, K, 2) pseudo-labels (original pixels) that every given prior accepts
    (keypoints a prior does not cover are left to the others; with no prior everything is accepted)."""
    xy = np.asarray(xy, dtype=np.float32)
    if xy.ndim != 3 or xy.shape[-1] != 2:
        raise ValueError(f"xy must be (N, K, 2), got {xy.shape}")
    ok = np.ones(xy.shape[:2], dtype=bool)
    coords = torch.from_numpy(np.ascontiguousarray(xy))
    with torch.no_grad():
        if pca is not None:
            e = reconstruction_error(coords, pca).numpy()  # (N, J)
            ok[:, list(pca.joints)] &= e <= pca.epsilon
        if multiview is not None:
            e = multiview_error(coords, multiview).numpy()  # (N, P, V)
            # each keypoint is one view of one body part (check_views refuses repeats): one column per (p, v)
            ok[:, np.asarray(multiview.views).ravel()] &= (e <= multiview.epsilon).reshape(len(e), -1)
    return ok
