"""Several models as one: the ensemble's pose and spread, and Lightning Pose's ensemble Kalman smoother (EKS).

Networks trained from different seeds err in different places; where they disagree the prediction is
unreliable. Lightning Pose (Biderman et al., Nature Methods 2024, "Ensemble Kalman smoothing"; the ``eks``
package's single-camera smoother) uses both facts: the ensemble's median is the measurement, the ensemble's
variance its noise, and a Kalman smoother over the video weighs each frame by it, so a frame where the members
scatter follows its neighbours and a frame where they agree is kept.

- :func:`ensemble_pose`: per keypoint, the median of the members' x and of their y, the mean of their
  likelihoods, and the variance of x and of y over the members (the eks package's ``median`` ensembling mode).
- :func:`eks_smooth`: each keypoint coordinate is a random walk, x_t = x_{t-1} + w_t, w_t ~ N(0, s·v), v the
  variance of the ensemble track's frame-to-frame steps (so ``s`` is free of the video's scale and frame rate)
  and s the smoothing parameter; the measurement y_t (the ensemble median) has variance
  (σ²_t + ``min_std``²) / c_t², σ²_t the ensemble variance and c_t the mean likelihood (a frame below
  ``min_confidence`` is no measurement, as in :mod:`animalpose.engine.smoothing`). A forward Kalman filter and the
  Rauch–Tung–Striebel backward pass give every frame's posterior mean and variance. Without a given ``s`` each
  keypoint takes, from a log grid, the s that maximises the likelihood of its x and y measurements under the
  filter (the sum of the innovations' Gaussian log densities), as eks chooses its smoothing parameter by the
  negative log-likelihood (it optimises it continuously; a grid of 1/4-decade steps is enough for one number
  per keypoint).

Where we differ: eks also reports z-scores and has multi-camera variants (a latent 3-D point); here a rig's views
are mended before ensembling by each member's own :mod:`animalpose.engine.multiview` correction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# s on a grid from 1e-3 (nearly a constant position) to 1e2 (nearly the measurements): 1/4-decade steps
SMOOTH_GRID = np.logspace(-3.0, 2.0, 21)


def ensemble_pose(members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((N, K, 3) median x, y and mean likelihood; (N, K, 2) variance of x and y over the members) of
    ``members`` (M, N, K, 3): M models' x, y, likelihood for the same N crops. NaN coordinates (no prediction)
    are left out of a keypoint's statistics; a keypoint no member predicted stays NaN."""
    members = np.asarray(members, dtype=np.float64)
    if members.ndim != 4 or members.shape[-1] != 3:
        raise ValueError(f"members must be (M, N, K, 3), got {members.shape}")
    pose = np.full(members.shape[1:], np.nan)
    var = np.full((*members.shape[1:-1], 2), np.nan)
    seen = np.isfinite(members[..., :2]).all(-1).any(0)  # (N, K)
    if seen.any():
        sub = members[:, seen]  # (M, n, 3)
        pose[seen, :2] = np.nanmedian(sub[..., :2], axis=0)
        pose[seen, 2] = np.nanmean(np.nan_to_num(sub[..., 2], nan=0.0), axis=0)
        var[seen] = np.nanvar(sub[..., :2], axis=0)
    return pose, var


def random_walk_smoother(y: np.ndarray, r: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kalman filter + Rauch–Tung–Striebel smoother of S independent 1-d random walks.

    Args:
        y: (T, S) measurements.
        r: (T, S) measurement variances; ``inf`` = missing. Every series needs one finite frame.
        q: (S,) variance of a step of the walk.

    Returns:
        ((T, S) posterior means, (T, S) posterior variances, (S,) negative log-likelihood of the measurements
        after each series' first, which fixes the start: the walk starts at that measurement with its variance).
    """
    n, s = y.shape
    has = np.isfinite(r)
    first = has.argmax(0)
    cols = np.arange(s)
    m, p = y[first, cols].copy(), r[first, cols].copy()
    m_f, p_f, p_p = np.empty((n, s)), np.empty((n, s)), np.empty((n, s))
    nll = np.zeros(s)
    for t in range(n):
        pp = np.where(t <= first, p, p + q)  # the start sits at the first measurement; earlier frames wait for it
        upd = has[t] & (t > first)
        gain = np.where(upd, pp / (pp + np.where(upd, r[t], 1.0)), 0.0)
        innov = np.where(upd, y[t] - m, 0.0)
        var_in = pp + np.where(upd, r[t], 1.0)
        nll += np.where(upd, 0.5 * (np.log(2 * np.pi * var_in) + innov ** 2 / var_in), 0.0)
        m = m + gain * innov
        p = (1 - gain) * pp
        m_f[t], p_f[t], p_p[t] = m, p, pp
    ms, ps = m_f.copy(), p_f.copy()
    for t in range(n - 2, -1, -1):
        c = p_f[t] / p_p[t + 1]  # a random walk predicts its last mean: m_pred[t + 1] = m_f[t]
        pre = t < first  # before the start the walk runs backward from it, its variance growing a step a frame
        ms[t] = np.where(pre, ms[t + 1], m_f[t] + c * (ms[t + 1] - m_f[t]))
        ps[t] = np.where(pre, ps[t + 1] + q, p_f[t] + c ** 2 * (ps[t + 1] - p_p[t + 1]))
    return ms, np.maximum(ps, 0.0), nll


def eks_smooth(track: np.ndarray, variance: np.ndarray, smooth: float | None = None, min_std: float = 0.5,
               min_confidence: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Lightning Pose's ensemble Kalman smoother (module docstring) of an ensemble's (T, K, 3) track.

    Args:
        track: (T, K, 3) ensemble median x, y and mean likelihood per frame (:func:`ensemble_pose`); NaN x/y:
            no prediction in that frame.
        variance: (T, K, 2) the ensemble's variance of x and y, pixels².
        smooth: the smoothing parameter s; None: chosen per keypoint by the likelihood over :data:`SMOOTH_GRID`.
        min_std: pixels added (in quadrature) to the ensemble's spread, so members that agree exactly still
            leave the measurement some noise.

    Returns:
        ((T, K, 3) smoothed x, y with the likelihood as given; (K,) the s each keypoint used, NaN for a keypoint
        with no confident frame, which is returned as it is).
    """
    track = np.asarray(track, dtype=np.float64)
    variance = np.asarray(variance, dtype=np.float64)
    if track.ndim != 3 or track.shape[-1] != 3 or variance.shape != (*track.shape[:2], 2):
        raise ValueError(f"track must be (T, K, 3) and variance (T, K, 2), got {track.shape} and {variance.shape}")
    if smooth is not None and not smooth > 0:
        raise ValueError(f"the smoothing parameter must be positive, got {smooth}")
    if not min_std > 0:
        raise ValueError(f"min_std must be positive (a measurement without noise fixes its frame), got {min_std}")
    out = track.copy()
    n, k = track.shape[:2]
    chosen = np.full(k, np.nan)
    if n < 2:
        return out, chosen
    xy, conf = track[..., :2], np.nan_to_num(track[..., 2], nan=0.0)
    good = (conf >= min_confidence) & (conf > 0) & np.isfinite(xy).all(-1) & np.isfinite(variance).all(-1)
    joints = np.flatnonzero(good.any(0))
    if not len(joints):
        return out, chosen
    # (T, S) series, S = 2 * joints: x and y of each joint side by side
    y = np.where(np.repeat(good[:, joints], 2, axis=1), xy[:, joints].reshape(n, -1), 0.0)
    c = np.repeat(np.where(good, conf, 1.0)[:, joints], 2, axis=1)
    r = np.where(np.repeat(good[:, joints], 2, axis=1),
                 (np.nan_to_num(variance[:, joints].reshape(n, -1)) + min_std ** 2) / c ** 2, np.inf)
    steps = np.array([_step_variance(y[:, j], np.isfinite(r[:, j])) for j in range(y.shape[1])])
    grid = np.array([smooth]) if smooth is not None else SMOOTH_GRID
    # every (series, s) at once: (T, S * G)
    g = len(grid)
    _, _, nll = random_walk_smoother(np.repeat(y, g, axis=1), np.repeat(r, g, axis=1),
                                     (steps[:, None] * grid[None, :]).reshape(-1))
    per_joint = nll.reshape(len(joints), 2, g).sum(1)  # x and y of a joint share their s
    best = grid[per_joint.argmin(1)]
    ms, _, _ = random_walk_smoother(y, r, steps * np.repeat(best, 2))
    out[:, joints, :2] = ms.reshape(n, len(joints), 2)
    chosen[joints] = best
    return out, chosen


def _step_variance(y: np.ndarray, has: np.ndarray) -> float:
    """The variance of a series' steps between consecutive measured frames, per frame (a gap of d frames is a
    walk of d steps); 1 px² when fewer than two steps are measured, at least 1e-4 px²."""
    t = np.flatnonzero(has)
    if len(t) < 3:
        return 1.0
    d = np.diff(y[t]) / np.sqrt(np.diff(t))
    return float(max(np.mean(d ** 2), 1e-4))


def at_grid_edge(chosen: dict[str, float]) -> list[str]:
    """The keypoints of ``{keypoint: s}`` (:func:`eks_smooth`'s choices) whose s is the first or last value of
    :data:`SMOOTH_GRID`: their likelihood wanted a value beyond it (a still keypoint, or one that jumps)."""
    return [j for j, v in chosen.items() if v in (SMOOTH_GRID[0], SMOOTH_GRID[-1])]


def merged_groups(members: Sequence[Sequence[list[str]]]) -> list[list[str]]:
    """Every look-alike group some member's multi-view correction mends (each model found its own), in the
    members' order, each once."""
    seen: list[list[str]] = []
    for groups in members:
        seen += [g for g in groups if g not in seen]
    return seen
