"""Ensembles (animalpose.engine.ensemble): the members' median and spread, the random-walk Kalman smoother
against the least-squares solution it computes, and EKS's choice of its smoothing parameter (`predict` with
several checkpoints: test_smoothing.py)."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.engine.ensemble import SMOOTH_GRID, at_grid_edge, eks_smooth, ensemble_pose, random_walk_smoother


def test_ensemble_pose_is_the_members_median_with_their_variance():
    members = np.zeros((3, 1, 2, 3))
    members[:, 0, 0] = [[10, 20, 0.9], [12, 26, 0.6], [30, 23, 0.3]]
    members[:, 0, 1] = [[5, 5, 0.5], [np.nan, np.nan, 0.0], [7, 9, 0.7]]  # one member without a prediction
    pose, var = ensemble_pose(members)
    assert np.allclose(pose[0, 0], [12, 23, 0.6])
    # x: mean 52/3, variance ((10-52/3)^2 + (12-52/3)^2 + (30-52/3)^2) / 3; y: mean 23, (9 + 9 + 0) / 3
    assert np.allclose(var[0, 0], [np.var([10, 12, 30]), 6.0])
    assert np.allclose(pose[0, 1], [6, 7, 0.4]) and np.allclose(var[0, 1], [1.0, 4.0])
    members[:, 0, 1, :2] = np.nan
    pose, var = ensemble_pose(members)
    assert np.isnan(pose[0, 1, :2]).all() and np.isnan(var[0, 1]).all()


def _least_squares(y, r, q):
    """The posterior of a random walk given measurements y (variance r, inf = missing) by solving its normal
    equations: the mean minimises sum (y_t - x_t)^2 / r_t + sum (x_t - x_{t-1})^2 / q, its covariance is the
    inverse of that quadratic's Hessian."""
    n = len(y)
    h = np.diag(np.where(np.isfinite(r), 1 / np.where(np.isfinite(r), r, 1), 0.0))
    for t in range(1, n):
        h[t, t] += 1 / q
        h[t - 1, t - 1] += 1 / q
        h[t, t - 1] -= 1 / q
        h[t - 1, t] -= 1 / q
    b = np.where(np.isfinite(r), y / np.where(np.isfinite(r), r, 1), 0.0)
    cov = np.linalg.inv(h)
    return cov @ b, np.diag(cov)


def test_the_smoother_is_the_least_squares_posterior_of_a_random_walk():
    rng = np.random.default_rng(3)
    n = 30
    y = np.cumsum(rng.normal(0, 1.0, n)) + rng.normal(0, 2.0, n)
    r = rng.uniform(0.5, 6.0, n)
    r[[0, 1, 2, 11, 12, 20]] = np.inf  # missing at the start (filled backward) and inside
    mean, var, nll = random_walk_smoother(np.stack([y, 2 * y], 1), np.stack([r, 4 * r], 1), np.array([0.7, 2.8]))
    want_mean, want_var = _least_squares(y, r, 0.7)
    assert np.allclose(mean[:, 0], want_mean, atol=1e-9) and np.allclose(var[:, 0], want_var, atol=1e-9)
    # a series and its double (variances x4) are the same walk twice as large
    assert np.allclose(mean[:, 1], 2 * mean[:, 0]) and np.allclose(var[:, 1], 4 * var[:, 0])
    assert nll[1] == pytest.approx(nll[0] + (n - 7) * np.log(2))  # 23 innovations after the first, each 2x wide


def test_eks_follows_agreement_and_passes_over_disagreement():
    n = 40
    t = np.arange(n, dtype=float)
    truth = np.stack([50 + 0.8 * t, 30 + 5 * np.sin(t / 6)], -1)
    track = np.zeros((n, 1, 3))
    track[:, 0, :2], track[:, 0, 2] = truth, 0.9
    var = np.full((n, 1, 2), 0.25)
    track[17, 0, :2] += [25, -30]  # the members scatter on one frame: their median jumps
    var[17, 0] = 400.0
    smoothed, s = eks_smooth(track, var)
    assert np.linalg.norm(smoothed[17, 0, :2] - truth[17]) < 3  # pulled back to its neighbours
    others = np.arange(n) != 17
    assert np.abs(smoothed[others, 0, :2] - truth[others]).max() < 1.5  # agreement is kept
    assert s[0] in SMOOTH_GRID
    assert np.array_equal(smoothed[..., 2], track[..., 2])


def test_eks_chooses_a_smoothing_parameter_near_the_walk_that_made_the_track():
    rng = np.random.default_rng(0)
    n, k = 2000, 2
    chosen = []
    for step, gain in ((0.3, 0.5), (3.0, 0.95)):  # a slow and a fast walk, measured with the same 1-px spread
        walk = np.cumsum(rng.normal(0, step, (n, k, 2)), 0)
        track = np.concatenate([walk + rng.normal(0, 1.0, walk.shape), np.ones((n, k, 1))], -1)
        smoothed, s = eks_smooth(track, np.full((n, k, 2), 1.0), min_std=1e-3)
        err = np.abs(smoothed[..., :2] - walk).mean()
        assert err < gain * np.abs(track[..., :2] - walk).mean()  # better than the measurements, more when slow
        # the chosen walk's step variance s * v, v the measured steps' variance (walk + 2 x noise)
        chosen.append(s * (step ** 2 + 2.0))
    assert chosen[0] == pytest.approx([0.09, 0.09], rel=0.6) and chosen[1] == pytest.approx([9.0, 9.0], rel=0.6)


def test_eks_settings_are_checked():
    track, var = np.zeros((5, 1, 3)), np.zeros((5, 1, 2))
    with pytest.raises(ValueError, match="positive"):
        eks_smooth(track, var, smooth=0)
    with pytest.raises(ValueError, match="min_std"):
        eks_smooth(track, var, min_std=0)
    with pytest.raises(ValueError, match=r"variance \(T, K, 2\)"):
        eks_smooth(track, np.zeros((5, 1)))


def test_a_still_keypoint_chooses_the_grid_edge_and_is_named():
    rng = np.random.default_rng(1)
    n = 500
    track = np.ones((n, 2, 3))
    track[:, 0, :2] = 40 + rng.normal(0, 1.0, (n, 2))  # still: only measurement noise
    track[:, 1, :2] = np.cumsum(rng.normal(0, 2.0, (n, 2)), 0) + rng.normal(0, 1.0, (n, 2))  # a walk
    _, s = eks_smooth(track, np.ones((n, 2, 2)))
    assert s[0] == SMOOTH_GRID[0] and SMOOTH_GRID[0] < s[1] < SMOOTH_GRID[-1]
    assert at_grid_edge({"still": s[0], "walking": s[1]}) == ["still"]
