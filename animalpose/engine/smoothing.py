"""Temporal smoothing of predicted keypoint tracks: Savitzky–Golay, a constant-velocity Kalman smoother, and for an
ensemble Lightning Pose's ensemble Kalman smoother (``eks``, :mod:`animalpose.engine.ensemble`).

Each keypoint's (x, y) track over a video's T frames is smoothed on its own. The network's likelihood decides
how much a frame counts: frames below ``min_confidence`` are treated as missing (an occluded or lost keypoint
is no measurement), the others count by their likelihood.

- ``savgol``: missing frames are first filled by linear interpolation between the nearest confident frames
  (held constant beyond the first and last), then a Savitzky–Golay filter (Savitzky & Golay, Anal. Chem. 1964:
  a least-squares polynomial of degree ``polyorder`` over a sliding window of ``window`` frames) runs over
  the track. A polynomial of degree ≤ ``polyorder`` (a constant-velocity track, for degree ≥ 1) passes
  through unchanged, also at the ends (``scipy.signal.savgol_filter``, ``mode="interp"``).
- ``kalman``: a constant-velocity model per coordinate, state (p, v), p_{t+1} = p_t + v_t, with white
  acceleration noise of standard deviation ``process_std`` px/frame² (Bar-Shalom et al., "Estimation with
  Applications to Tracking and Navigation", 2001, §6.2.2: Q = q·[[1/4, 1/2], [1/2, 1]]); a measurement of
  likelihood c has standard deviation ``measurement_std`` / c px; a forward Kalman filter, then the
  Rauch–Tung–Striebel backward pass (the smoother: every frame uses the whole track). The state starts at
  the first confident position with the velocity to the next one, so a constant-velocity track has zero
  cost under the model and passes through unchanged.

The likelihood column is returned as predicted (a filled frame keeps its low likelihood, so a reader still
sees that it was not measured).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Method = Literal["none", "savgol", "kalman", "eks"]
METHODS: tuple[str, ...] = ("none", "savgol", "kalman", "eks")


@dataclass(frozen=True)
class SmoothingConfig:
    """How to smooth a track (module docstring)."""

    method: Method = "none"
    window: int = 7  # savgol: frames in the window (odd, > polyorder)
    polyorder: int = 2
    min_confidence: float = 0.1  # frames below: missing
    process_std: float = 1.0  # kalman: px / frame^2
    measurement_std: float = 2.0  # kalman: px at likelihood 1
    eks_smooth: float | None = None  # eks: the smoothing parameter; None: chosen per keypoint by its likelihood
    eks_min_std: float = 0.5  # eks: px added in quadrature to the ensemble's spread

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"smoothing method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.window < 3 or self.window % 2 == 0:
            raise ValueError(f"smoothing window {self.window} must be an odd number of frames >= 3")
        if not 0 <= self.polyorder < self.window:
            raise ValueError(f"polyorder {self.polyorder} must lie in 0..window-1 ({self.window - 1})")
        if not 0 <= self.min_confidence <= 1:
            raise ValueError(f"min_confidence {self.min_confidence} is not in 0..1")
        if self.process_std <= 0 or self.measurement_std <= 0:
            raise ValueError("process_std and measurement_std must be positive")
        if (self.eks_smooth is not None and not self.eks_smooth > 0) or not self.eks_min_std > 0:
            raise ValueError("the eks smoothing parameter and minimum std must be positive")


def smooth_track(track: np.ndarray, cfg: SmoothingConfig) -> np.ndarray:
    """The smoothed copy of a (T, K, 3) track of x, y, likelihood (NaN x/y: no prediction in that frame).

    Keypoints with no confident frame at all are returned as they are. ``eks`` is not done here: it smooths an
    ensemble's track by the members' variance (:func:`animalpose.engine.ensemble.eks_smooth`)."""
    if cfg.method == "eks":
        raise ValueError("eks smooths an ensemble's track by the members' variance: use ensemble.eks_smooth")
    track = np.asarray(track, dtype=np.float64)
    if track.ndim != 3 or track.shape[-1] != 3:
        raise ValueError(f"track must be (T, K, 3), got {track.shape}")
    out = track.copy()
    if cfg.method == "none" or len(track) < 2:
        return out
    xy, conf = track[..., :2], np.nan_to_num(track[..., 2], nan=0.0)
    good = (conf >= cfg.min_confidence) & (conf > 0) & np.isfinite(xy).all(-1)  # (T, K)
    joints = np.flatnonzero(good.any(0))
    if cfg.method == "savgol":
        for k in joints:
            out[:, k, :2] = savgol_smooth(xy[:, k], good[:, k], cfg.window, cfg.polyorder)
    elif len(joints):
        # every (joint, coordinate) series at once: (T, S) with S = 2 * joints
        z = xy[:, joints].reshape(len(track), -1)
        w = np.repeat(np.where(good, conf, 0.0)[:, joints], 2, axis=1)
        out[:, joints, :2] = kalman_smooth(z, w, cfg.process_std, cfg.measurement_std).reshape(-1, len(joints), 2)
    return out


def fill_gaps(xy: np.ndarray, good: np.ndarray) -> np.ndarray:
    """(T, 2) ``xy`` with the frames not ``good`` linearly interpolated between good ones (held at the ends)."""
    t = np.arange(len(xy))
    return np.stack([np.interp(t, t[good], xy[good, d]) for d in range(2)], -1)


def savgol_smooth(xy: np.ndarray, good: np.ndarray, window: int, polyorder: int) -> np.ndarray:
    """(T, 2) Savitzky–Golay smoothing of one keypoint's track after filling its gaps (window shrunk to an
    odd length ≤ T for short tracks)."""
    from scipy.signal import savgol_filter

    filled = fill_gaps(xy, good)
    n = len(filled)
    w = min(window, n if n % 2 else n - 1)
    if w <= polyorder:
        return filled
    return savgol_filter(filled, w, polyorder, axis=0, mode="interp")


def kalman_smooth(z: np.ndarray, weight: np.ndarray, process_std: float, measurement_std: float) -> np.ndarray:
    """(T, S) constant-velocity Kalman + Rauch–Tung–Striebel smoothing of S independent 1-d series.

    Args:
        z: (T, S) measurements, pixels.
        weight: (T, S) likelihoods; 0 = missing (no update), else measurement std = measurement_std / weight.
            Every series needs at least one frame with a positive weight.
    """
    n, s = z.shape
    f = np.array([[1.0, 1.0], [0.0, 1.0]])
    q = process_std ** 2 * np.array([[0.25, 0.5], [0.5, 1.0]])
    cols = np.arange(s)
    # start: the first confident position, with the velocity to the next confident one, extrapolated back to
    # frame 0 on that line (a constant-velocity track then has no innovation anywhere)
    has = weight > 0
    i0 = has.argmax(0)
    later = has & (np.arange(n)[:, None] > i0)
    i1 = np.where(later.any(0), later.argmax(0), i0)
    v0 = np.where(i1 > i0, (z[i1, cols] - z[i0, cols]) / np.maximum(i1 - i0, 1), 0.0)
    m = np.stack([z[i0, cols] - v0 * i0, v0], -1)  # (S, 2)
    p = np.broadcast_to(np.eye(2) * measurement_std ** 2, (s, 2, 2)).copy()
    m_f, p_f = np.zeros((n, s, 2)), np.zeros((n, s, 2, 2))
    m_p, p_p = np.zeros((n, s, 2)), np.zeros((n, s, 2, 2))
    for t in range(n):
        if t > 0:
            m, p = m @ f.T, f @ p @ f.T + q
        m_p[t], p_p[t] = m, p
        w = weight[t]
        upd = w > 0
        r = np.where(upd, (measurement_std / np.where(upd, w, 1.0)) ** 2, np.inf)
        gain = np.where(upd[:, None], p[:, :, 0] / (p[:, 0, 0] + r)[:, None], 0.0)  # (S, 2)
        m = m + gain * np.where(upd, z[t] - m[:, 0], 0.0)[:, None]
        p = p - gain[:, :, None] * p[:, None, 0, :]
        m_f[t], p_f[t] = m, p
    ms = m_f.copy()
    for t in range(n - 2, -1, -1):
        c = p_f[t] @ f.T @ np.linalg.inv(p_p[t + 1])
        ms[t] = m_f[t] + np.einsum("sij,sj->si", c, ms[t + 1] - m_p[t + 1])
    return ms[..., 0]
