"""Temporal consistency (T_Δ of CC-SSL): propagate pseudo-labels along a video with optical flow.

Mu et al., "Learning from Synthetic Animals" (CVPR 2020), Sec. 3.3 and its reference code: the
previous frame's keypoints are tracked into the current frame with pyramidal Lucas–Kanade flow
(``cv2.calcOpticalFlowPyrLK``, window 15×15, pyramid maxLevel 2, stop after 10 iterations or a
0.03 update). A flow displacement over 15 px is not trusted (flow confidence 0); otherwise the flow
confidence is the previous frame's confidence. Where the flow is confident and
``current_conf / flow_conf < 0.9``, the flowed keypoint replaces the current prediction with
confidence ``0.9 * flow_conf``.

Two departures from the reference, both deliberate:

- frames are chained only within one video (and one instance track), in frame order, and only
  between frames at most ``max_gap`` apart; the reference used the previous sample in loader order,
  which crosses video boundaries;
- nothing is modified in place: the previous frame's confidences stay as they were, every call
  returns new arrays.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FlowParams:
    """Lucas–Kanade and propagation parameters (defaults: the CC-SSL reference).

    Attributes:
        win_size: LK search window side in pixels (15).
        max_level: cv2 ``maxLevel``, pyramid levels above the full-resolution image (2).
        max_iter: LK iterations per level (10).
        eps: LK stop when the update is below this (0.03).
        max_jump: flowed displacement in pixels above which the flow confidence is 0 (15).
        ratio: replace when ``current / flow < ratio``, new confidence ``ratio * flow`` (0.9).
        max_gap: largest frame-index step between frames that are chained (1 = consecutive only).
    """

    win_size: int = 15
    max_level: int = 2
    max_iter: int = 10
    eps: float = 0.03
    max_jump: float = 15.0
    ratio: float = 0.9
    max_gap: int = 1

    def lk_kwargs(self) -> dict:
        return {
            "winSize": (self.win_size, self.win_size),
            "maxLevel": self.max_level,
            "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, self.max_iter, self.eps),
        }


@dataclass
class FlowStep:
    """Result of propagating one frame's keypoints into the next.

    Attributes:
        xy: (K, 2) refined keypoints of the current frame.
        conf: (K,) refined confidences of the current frame.
        flow_xy: (K, 2) previous keypoints tracked into the current frame.
        flow_conf: (K,) flow confidence (previous confidence, or 0 where the flow failed/jumped).
        replaced: (K,) bool, joints taken from the flow.
    """

    xy: np.ndarray
    conf: np.ndarray
    flow_xy: np.ndarray
    flow_conf: np.ndarray
    replaced: np.ndarray


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) image, uint8 or float in [0, 1] -> (H, W) uint8."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img.astype(np.float64) * (255.0 if img.max() <= 1.0 else 1.0)), 0, 255)
        img = img.astype(np.uint8)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.shape[2] == 3 else img[..., 0]
    return np.ascontiguousarray(img)


def track_points(prev_gray: np.ndarray, cur_gray: np.ndarray, points: np.ndarray,
                 params: FlowParams = FlowParams()) -> tuple[np.ndarray, np.ndarray]:
    """Track (K, 2) points from ``prev_gray`` to ``cur_gray``; returns (K, 2) positions and (K,) bool ok."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 1, 2)
    if len(pts) == 0:
        return np.zeros((0, 2), np.float32), np.zeros(0, bool)
    nxt, status, _err = cv2.calcOpticalFlowPyrLK(to_gray(prev_gray), to_gray(cur_gray), pts, None,
                                                 **params.lk_kwargs())
    nxt = nxt.reshape(-1, 2)
    ok = status.reshape(-1).astype(bool) & np.isfinite(nxt).all(1)
    return nxt, ok


def propagate(prev_gray: np.ndarray, cur_gray: np.ndarray, prev_xy: np.ndarray, prev_conf: np.ndarray,
              cur_xy: np.ndarray, cur_conf: np.ndarray, params: FlowParams = FlowParams()) -> FlowStep:
    """One temporal step: refine the current frame's keypoints from the previous frame's.

    Args:
        prev_gray, cur_gray: (H, W) frames (any form :func:`to_gray` accepts).
        prev_xy, cur_xy: (K, 2) keypoints in pixels of those frames.
        prev_conf, cur_conf: (K,) confidences.

    Returns:
        a :class:`FlowStep` of new arrays; the inputs are left untouched.
    """
    prev_conf = np.asarray(prev_conf, dtype=np.float64)
    cur_conf = np.asarray(cur_conf, dtype=np.float64)
    flow_xy, ok = track_points(prev_gray, cur_gray, prev_xy, params)
    jump = np.linalg.norm(flow_xy - np.asarray(prev_xy, dtype=np.float32), axis=1)
    trusted = ok & (jump <= params.max_jump) & np.isfinite(prev_conf) & (prev_conf > 0)
    flow_conf = np.where(trusted, prev_conf, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.nan_to_num(cur_conf, nan=0.0) / np.where(trusted, flow_conf, 1.0)
    replaced = trusted & (ratio < params.ratio)
    xy = np.array(cur_xy, dtype=np.float32, copy=True)
    conf = np.array(cur_conf, dtype=np.float64, copy=True)
    xy[replaced] = flow_xy[replaced]
    conf[replaced] = params.ratio * flow_conf[replaced]
    return FlowStep(xy, conf, flow_xy.astype(np.float32), flow_conf, replaced)


@dataclass
class TemporalResult:
    """Temporal refinement of a whole set of frames (same order as the input).

    Attributes:
        xy: (N, K, 2) refined keypoints.
        conf: (N, K) refined confidences.
        flow_conf: (N, K) flow confidence, NaN for frames with no chained predecessor.
        replaced: (N, K) bool, joints taken from the flow.
        predecessor: (N,) int index of the frame each one was chained to, -1 for none.
    """

    xy: np.ndarray
    conf: np.ndarray
    flow_conf: np.ndarray
    replaced: np.ndarray
    predecessor: np.ndarray


def chain_order(video_ids: Sequence[Hashable | None], frame_indices: Sequence[int | None],
                tracks: Sequence[Hashable | None] | None = None, max_gap: int = 1) -> np.ndarray:
    """(N,) index of each sample's predecessor in its own video/track, or -1.

    Samples without a video id or frame index have no predecessor. Within a (video, track) group,
    samples are ordered by frame index; a sample is chained to the one before it when the frame
    step is between 1 and ``max_gap``.
    """
    n = len(video_ids)
    if len(frame_indices) != n or (tracks is not None and len(tracks) != n):
        raise ValueError("video_ids, frame_indices and tracks must have the same length")
    groups: dict[tuple, list[int]] = {}
    for i in range(n):
        if video_ids[i] is None or frame_indices[i] is None:
            continue
        groups.setdefault((video_ids[i], None if tracks is None else tracks[i]), []).append(i)
    pred = np.full(n, -1, dtype=np.int64)
    for members in groups.values():
        members.sort(key=lambda i: frame_indices[i])
        for a, b in itertools.pairwise(members):
            step = frame_indices[b] - frame_indices[a]
            if 1 <= step <= max_gap:
                pred[b] = a
    return pred


def refine_sequence(xy: np.ndarray, conf: np.ndarray, video_ids: Sequence[Hashable | None],
                    frame_indices: Sequence[int | None], load_gray: Callable[[int], np.ndarray],
                    params: FlowParams = FlowParams(),
                    tracks: Sequence[Hashable | None] | None = None) -> TemporalResult:
    """Refine every frame from its predecessor, in frame order within each video.

    Args:
        xy: (N, K, 2) predicted keypoints in pixels of each sample's frame.
        conf: (N, K) confidences.
        video_ids, frame_indices: per-sample video identity and frame number; None = not a frame.
        load_gray: i -> (H, W) frame of sample i (called about once per chained sample).
        tracks: optional per-sample instance track id, so that two animals in one video are never mixed.

    Returns:
        a :class:`TemporalResult`; ``xy`` and ``conf`` are new arrays (the inputs are not mutated).
        A frame's refined output is what its successor propagates from.
    """
    xy = np.asarray(xy, dtype=np.float32)
    conf = np.asarray(conf, dtype=np.float64)
    n, k = conf.shape
    pred = chain_order(video_ids, frame_indices, tracks, params.max_gap)
    out_xy, out_conf = xy.copy(), conf.copy()
    flow_conf = np.full((n, k), np.nan)
    replaced = np.zeros((n, k), dtype=bool)
    # process in an order where each predecessor comes first: sort by (group, frame)
    order = sorted(range(n), key=lambda i: (frame_indices[i] if frame_indices[i] is not None else -1))
    cache: dict[int, np.ndarray] = {}

    def gray(i: int) -> np.ndarray:
        if i not in cache:
            cache[i] = to_gray(load_gray(i))
        return cache[i]

    needed_by = np.bincount(pred[pred >= 0], minlength=n)
    for i in order:
        p = pred[i]
        if p < 0:
            continue
        step = propagate(gray(p), gray(i), out_xy[p], out_conf[p], xy[i], conf[i], params)
        out_xy[i], out_conf[i] = step.xy, step.conf
        flow_conf[i], replaced[i] = step.flow_conf, step.replaced
        needed_by[p] -= 1
        if needed_by[p] <= 0:
            cache.pop(p, None)
        if needed_by[i] <= 0:
            cache.pop(i, None)
    return TemporalResult(out_xy, out_conf, flow_conf, replaced, pred)
