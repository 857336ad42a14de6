"""Predicted poses drawn on frames: one colour per joint (evenly spaced hues, as DeepLabCut's labelled videos),
a legend of the joint names, and the likelihood shown by the marker (a filled disc when confident, a ring
when not)."""

from __future__ import annotations

import cv2
import numpy as np

# joints below this likelihood are drawn as rings: still visible, marked as unsure
CONFIDENT = 0.5
BONE = (200, 200, 200)  # BGR


def joint_colours(k: int) -> list[tuple[int, int, int]]:
    """``k`` BGR colours of evenly spaced hues at full saturation and value (joint j gets hue j / k)."""
    hsv = np.zeros((1, max(k, 1), 3), np.uint8)
    hsv[0, :, 0] = (np.arange(max(k, 1)) * 180 / max(k, 1)).astype(np.uint8)  # OpenCV hue: 0..179
    hsv[0, :, 1:] = 255
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]
    return [tuple(int(v) for v in c) for c in bgr[:k]]


def marker_radius(frame_bgr: np.ndarray, scale: float = 1.0) -> int:
    return max(2, round(3 * scale * max(frame_bgr.shape[:2]) / 512))


def draw_pose(frame_bgr: np.ndarray, keypoints: np.ndarray, skeleton, scale: float = 1.0,
              colours: list[tuple[int, int, int]] | None = None) -> np.ndarray:
    """Draw (K, 3) x, y, likelihood on a BGR frame (in place): bones in grey, joint j in ``colours[j]``
    (default :func:`joint_colours`), filled when its likelihood is at least ``CONFIDENT``, else a ring.
    Joints with a NaN position (no prediction) are skipped."""
    colours = colours or joint_colours(len(keypoints))
    r = marker_radius(frame_bgr, scale)
    kp = np.asarray(keypoints, np.float64).copy()
    kp[:, :2] *= scale
    ok = np.isfinite(kp[:, :2]).all(1)
    for a, b in skeleton:
        if ok[a] and ok[b]:
            cv2.line(frame_bgr, (int(kp[a, 0]), int(kp[a, 1])), (int(kp[b, 0]), int(kp[b, 1])), BONE,
                     max(1, r // 2), cv2.LINE_AA)
    for j, (x, y, c) in enumerate(kp):
        if ok[j]:
            thickness = -1 if c >= CONFIDENT else max(1, r // 2)
            cv2.circle(frame_bgr, (int(x), int(y)), r, colours[j], thickness, cv2.LINE_AA)
    return frame_bgr


def draw_legend(frame_bgr: np.ndarray, names, colours: list[tuple[int, int, int]]) -> np.ndarray:
    """The joint names with their colours in the top-left corner, on a darkened panel (in place); rows shrink
    to fit the frame's height."""
    h, w = frame_bgr.shape[:2]
    row = int(np.clip(h / (len(names) + 1), 6, 18))
    font = row / 30.0
    width = max(cv2.getTextSize(str(n), cv2.FONT_HERSHEY_SIMPLEX, font, 1)[0][0] for n in names) + row + 8
    x1, y1 = min(w, width + 4), min(h, row * len(names) + 6)
    frame_bgr[:y1, :x1] = (frame_bgr[:y1, :x1] * 0.4).astype(frame_bgr.dtype)
    for j, name in enumerate(names):
        cy = 3 + row * j + row // 2
        cv2.circle(frame_bgr, (4 + row // 2, cy), max(2, row // 3), colours[j], -1, cv2.LINE_AA)
        cv2.putText(frame_bgr, str(name), (6 + row, cy + row // 3), cv2.FONT_HERSHEY_SIMPLEX, font,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return frame_bgr
