"""Lightning Pose's pose-PCA plausibility loss on unlabelled video, as an unsupervised term of CC-SSL training.

Biderman et al., "Lightning Pose: improved animal pose estimation via semi-supervised learning, Bayesian
ensembling and cloud-native open-source tools", Nature Methods 2024 (Methods, "Pose PCA loss"; their code:
``lightning_pose.losses.losses.PCALoss`` with ``lightning_pose.utils.pca.KeypointPCA``; their docs, "Unsupervised
losses"). A pose of J keypoints is a 2J-vector x (x1, y1, x2, y2, ...). On the labelled poses (frames with every
selected keypoint labelled; at least 2J of them) fit

    mean μ, principal axes U (k × 2J, orthonormal rows): the fewest components whose explained variance
    reaches ``components`` (their default 0.99), or exactly ``components`` of them when an integer;

the reconstruction error of keypoint j of a pose x is the length of its part of the residual

    r = (x − μ) − Uᵀ U (x − μ),        e_j = || (r_{2j}, r_{2j+1}) ||_2

and ε is the ``percentile``-th percentile of every e_j of the labelled poses themselves (their
``EmpiricalEpsilon``, 90th by ``KeypointPCA``'s default), so the labelled data's own spread costs nothing.
On N predicted poses the loss is their documented ε-insensitive form

    L_pca = mean_{n,j} max(0, e_{n,j} − ε)

(their code zeroes errors below ε and keeps the others whole; their documentation, followed here and by
:mod:`animalpose.adapt.temporal_loss`, subtracts ε). A pose on the subspace has e = 0; a pose the labelled
frames never showed (a limb swapped, a keypoint stuck in a corner) leaves it and pays.

Coordinates are original-image pixels (a fixed lab camera: the labelled frames and the video share them), as
in Lightning Pose, where the whole frame is the network's input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PosePCA:
    """A pose subspace fitted on labelled poses.

    Attributes:
        mean: (2J,) μ, pixels.
        components: (k, 2J) orthonormal principal axes, the largest variance first.
        epsilon: ε, pixels.
        joints: (J,) indices of the schema's keypoints that the poses hold, in order.
        explained: fraction of the labelled poses' variance the k axes explain.
    """

    mean: torch.Tensor
    components: torch.Tensor
    epsilon: float
    joints: tuple[int, ...]
    explained: float

    @property
    def num_components(self) -> int:
        return int(self.components.shape[0])


def fit_pose_pca(poses: np.ndarray, components: float | int = 0.99, percentile: float = 90.0,
                 epsilon: float | None = None, joints: tuple[int, ...] | None = None) -> PosePCA:
    """The subspace and ε of labelled ``poses`` (module docstring).

    Args:
        poses: (N, J, 2) labelled keypoints, pixels; N ≥ 2J (more poses than dimensions, as Lightning Pose asks).
        components: a fraction in (0, 1] of the variance to explain, or an integer count of axes (1..2J).
        percentile: ε is this percentile (0..100) of the labelled poses' own errors.
        epsilon: ε given in pixels instead (None: from ``percentile``).
        joints: the schema indices the J keypoints are (recorded; default 0..J-1).

    Raises:
        ValueError when there are too few poses, or ``components`` is out of range.
    """
    x = np.asarray(poses, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != 2:
        raise ValueError(f"poses must be (N, J, 2), got {x.shape}")
    n, j = x.shape[:2]
    if n < 2 * j:
        raise ValueError(f"{n} fully labelled poses for {2 * j} pose dimensions ({j} keypoints); the PCA needs "
                         f"at least {2 * j} (label more frames or select fewer keypoints)")
    flat = x.reshape(n, 2 * j)
    mean = flat.mean(0)
    _, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    var = s ** 2
    ratio = np.cumsum(var) / var.sum() if var.sum() > 0 else np.ones_like(var)
    if isinstance(components, bool) or not isinstance(components, int | float):
        raise ValueError(f"components must be a fraction or a count, got {components!r}")
    if isinstance(components, int):
        if not 1 <= components <= 2 * j:
            raise ValueError(f"components {components} is not in 1..{2 * j}")
        k = components
    else:
        if not 0 < components <= 1:
            raise ValueError(f"components {components} is not a fraction in (0, 1]")
        # the first count whose cumulative explained variance reaches the fraction (float slack at 1.0)
        k = int(np.searchsorted(ratio, components - 1e-12) + 1)
    k = min(k, len(var))
    axes = vt[:k]
    if epsilon is None:
        if not 0 <= percentile <= 100:
            raise ValueError(f"percentile {percentile} is not in 0..100")
        errors = reconstruction_error_np(x, mean, axes)
        epsilon = float(np.percentile(errors, percentile))
    return PosePCA(torch.from_numpy(mean).float(), torch.from_numpy(np.ascontiguousarray(axes)).float(),
                   float(epsilon), tuple(range(j)) if joints is None else tuple(int(i) for i in joints),
                   float(ratio[k - 1]))


def reconstruction_error_np(poses: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """(N, J) e_{n,j} of (N, J, 2) ``poses`` against a subspace (numpy, for fitting)."""
    n, j = poses.shape[:2]
    c = poses.reshape(n, 2 * j) - mean
    r = c - (c @ axes.T) @ axes
    return np.linalg.norm(r.reshape(n, j, 2), axis=-1)


def reconstruction_error(coords: torch.Tensor, pca: PosePCA) -> torch.Tensor:
    """(N, J) reconstruction errors e_{n,j} of predicted poses (differentiable).

    Args:
        coords: (N, K, 2) predicted keypoints of the whole schema, pixels; the PCA's ``joints`` are used.
    """
    if coords.ndim != 3 or coords.shape[-1] != 2:
        raise ValueError(f"coords must be (N, K, 2), got {tuple(coords.shape)}")
    x = coords[:, list(pca.joints)]
    n, j = x.shape[:2]
    mean, axes = pca.mean.to(x), pca.components.to(x)
    c = x.reshape(n, 2 * j) - mean
    r = c - (c @ axes.T) @ axes
    return torch.linalg.vector_norm(r.reshape(n, j, 2), dim=-1)


def pca_loss(coords: torch.Tensor, pca: PosePCA) -> torch.Tensor:
    """L_pca = mean_{n,j} max(0, e_{n,j} − ε) of (N, K, 2) predicted poses; a scalar (module docstring)."""
    return torch.relu(reconstruction_error(coords, pca) - pca.epsilon).mean()


def labelled_poses(keypoints: list[np.ndarray], joints: tuple[int, ...]) -> np.ndarray:
    """(N, J, 2) the ``joints`` of every (K, 3) labelled pose in which all of them are labelled (v > 0);
    Lightning Pose likewise drops the frames with a missing keypoint before fitting."""
    idx = list(joints)
    kept = [np.asarray(kp, np.float64)[idx, :2] for kp in keypoints if (np.asarray(kp)[idx, 2] > 0).all()]
    return np.stack(kept) if kept else np.zeros((0, len(idx), 2))
