"""Lightning Pose's multi-view consistency loss on unlabelled video, as an unsupervised term of CC-SSL training.

Biderman et al., "Lightning Pose: improved animal pose estimation via semi-supervised learning, Bayesian
ensembling and cloud-native open-source tools", Nature Methods 2024 (Methods, "Multi-view PCA loss"; their code:
``lightning_pose.losses.losses.PCALoss`` with ``loss_name="pca_multiview"``, the data layout of
``lightning_pose.utils.pca.format_multiview_data_for_pca`` and ``KeypointPCA``). In a frame that shows the animal
in V views at once (a mirror rig: a top and a bottom copy of every body part), one body part seen in every view
is a 2V-vector

    x = (x_view1, y_view1, x_view2, y_view2, ...)

and, the views being projections of one 3-D point, these vectors lie near a 3-dim (affine) subspace. On the
labelled frames, every (frame, body part) with all its views labelled is one sample (at least 2V of them); fit

    mean μ (2V,) and the first ``components`` principal axes U (k × 2V; Lightning Pose keeps k = 3);

the reconstruction error of view v of a sample x is the length of that view's part of the residual

    r = (x − μ) − Uᵀ U (x − μ),        e_v = || (r_{2v}, r_{2v+1}) ||_2

and ε is the ``percentile``-th percentile of every e_v of the labelled samples (their ``EmpiricalEpsilon``; 90th
by ``KeypointPCA``'s default). On N predicted frames of P body parts the loss is the ε-insensitive mean

    L_multiview = mean_{n,p,v} max(0, e_{n,p,v} − ε)

(their code zeroes errors below ε and keeps the others whole; their documentation, followed here as by
:mod:`animalpose.adapt.pca_loss`, subtracts ε). Predictions whose top and bottom copies agree on one 3-D point
cost nothing; a paw found in the top view but confused with another paw in the bottom view pays.

The fit is the one of :func:`animalpose.adapt.pca_loss.fit_pose_pca`, with each (frame, body part) sample a
"pose" of V two-dimensional points. Coordinates are original-image pixels (the views share one frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from animalpose.adapt.pca_loss import PosePCA, fit_pose_pca, reconstruction_error

#: Lightning Pose's multi-view subspace: the views of one 3-D point (``KeypointPCA._choose_n_components``)
LIGHTNING_POSE_COMPONENTS = 3


@dataclass(frozen=True)
class MultiviewPCA:
    """The views' subspace fitted on labelled frames.

    Attributes:
        pca: the subspace of the (V, 2) samples (``pca.joints`` is 0..V-1: the views), mean (2V,),
            components (k, 2V), ε in pixels.
        views: (P, V) schema indices: ``views[p][v]`` is body part p's keypoint in view v.
    """

    pca: PosePCA
    views: tuple[tuple[int, ...], ...]

    @property
    def epsilon(self) -> float:
        return self.pca.epsilon

    @property
    def num_views(self) -> int:
        return len(self.views[0])


def check_views(views: Sequence[Sequence[int]], num_joints: int) -> tuple[tuple[int, ...], ...]:
    """``views`` as a (P, V) tuple; ValueError when it is empty, ragged, has fewer than 2 views, a keypoint
    outside 0..num_joints-1 or one keypoint twice."""
    rows = tuple(tuple(int(i) for i in row) for row in views)
    if not rows:
        raise ValueError("no body part given")
    if len({len(r) for r in rows}) != 1 or len(rows[0]) < 2:
        raise ValueError(f"every body part needs its keypoint in each of the same >= 2 views, got "
                         f"{[len(r) for r in rows]} views")
    flat = [i for r in rows for i in r]
    if any(not 0 <= i < num_joints for i in flat):
        raise ValueError(f"keypoint index out of 0..{num_joints - 1}")
    if len(set(flat)) != len(flat):
        raise ValueError("a keypoint appears twice")
    return rows


def view_samples(coords: np.ndarray | torch.Tensor, views: tuple[tuple[int, ...], ...]):
    """(N, P, V, 2) body-part samples of (N, K, 2+) keypoints: ``[n, p, v]`` = keypoint ``views[p][v]`` of frame n."""
    idx = np.asarray(views)  # (P, V)
    return coords[:, idx, :2]


def fit_multiview_pca(keypoints: Sequence[np.ndarray], views: Sequence[Sequence[int]],
                      components: int | float = LIGHTNING_POSE_COMPONENTS, percentile: float = 90.0,
                      epsilon: float | None = None) -> MultiviewPCA:
    """The views' subspace and ε of labelled frames (module docstring).

    Args:
        keypoints: (K, 3) labelled keypoints of each frame (x, y pixels, visibility); a (frame, body part)
            sample is used when all its views are labelled (v > 0), as Lightning Pose drops rows with a NaN.
        views: (P, V) schema indices (:class:`MultiviewPCA`).
        components: axes kept (Lightning Pose: 3), or a fraction of the variance.
        percentile: ε is this percentile of the labelled samples' own errors; ``epsilon``: ε in pixels instead.

    Raises:
        ValueError for a bad ``views`` table, too few labelled samples (fewer than 2V) or a bad count.
    """
    if not len(keypoints):
        raise ValueError("no labelled frame")
    kp = np.stack([np.asarray(k, np.float64) for k in keypoints])  # (N, K, 3)
    rows = check_views(views, kp.shape[1])
    samples = view_samples(kp, rows)  # (N, P, V, 2)
    labelled = (kp[:, np.asarray(rows), 2] > 0).all(-1)  # (N, P)
    x = samples[labelled]  # (M, V, 2)
    v = len(rows[0])
    if len(x) < 2 * v:
        raise ValueError(f"{len(x)} labelled (frame, body part) samples with every view for {2 * v} dimensions "
                         f"({v} views); the multi-view PCA needs at least {2 * v}")
    return MultiviewPCA(fit_pose_pca(x, components, percentile, epsilon), rows)


def multiview_error(coords: torch.Tensor, mv: MultiviewPCA) -> torch.Tensor:
    """(N, P, V) reconstruction errors e_{n,p,v} of predicted frames (differentiable).

    Args:
        coords: (N, K, 2) predicted keypoints of the whole schema, pixels.
    """
    if coords.ndim != 3 or coords.shape[-1] != 2:
        raise ValueError(f"coords must be (N, K, 2), got {tuple(coords.shape)}")
    x = view_samples(coords, mv.views)  # (N, P, V, 2)
    n, p = x.shape[:2]
    return reconstruction_error(x.reshape(n * p, mv.num_views, 2), mv.pca).reshape(n, p, mv.num_views)


def multiview_loss(coords: torch.Tensor, mv: MultiviewPCA) -> torch.Tensor:
    """L_multiview = mean_{n,p,v} max(0, e_{n,p,v} − ε) of (N, K, 2) predictions; a scalar (module docstring)."""
    return torch.relu(multiview_error(coords, mv) - mv.epsilon).mean()
