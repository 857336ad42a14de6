"""Predicted poses drawn on frames: one colour per joint (evenly spaced hues, as DeepLabCut's labelled videos),
a legend of the joint names in a panel beside the frame, and the likelihood shown by the marker (a filled disc
when confident, a ring when not)."""

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


PANEL = (32, 32, 32)  # BGR: the legend's background


def _legend_layout(height: int, names) -> tuple[int, int, float, int, int]:
    """Row height, rows per column, font scale, column width and column count of a legend ``height`` px tall:
    rows shrink with the frame (6 to 18 px), and names that do not fit one column take more."""
    row = int(np.clip(height / (len(names) + 1), 6, 18))
    per_column = max(1, (height - 6) // row)
    font = row / 30.0
    column = max(cv2.getTextSize(str(n), cv2.FONT_HERSHEY_SIMPLEX, font, 1)[0][0] for n in names) + row + 12
    return row, per_column, font, column, -(-len(names) // per_column)


def legend_width(height: int, names) -> int:
    """Width of the panel :func:`with_legend` puts beside a frame ``height`` px tall (0 without names)."""
    if not len(names):
        return 0
    _, _, _, column, columns = _legend_layout(height, names)
    return column * columns


def legend_panel(height: int, names, colours: list[tuple[int, int, int]], width: int | None = None) -> np.ndarray:
    """The joint names in their colours on a dark panel (height, P, 3) uint8, P :func:`legend_width` or ``width``
    if that is larger (a video codec wants even sizes): drawn once, put beside every frame of a video."""
    if not len(names):
        return np.full((height, width or 0, 3), PANEL, np.uint8)
    row, per_column, font, column, columns = _legend_layout(height, names)
    panel = np.empty((height, max(column * columns, width or 0), 3), np.uint8)
    panel[:] = PANEL
    for j, name in enumerate(names):
        x0, cy = column * (j // per_column), 3 + row * (j % per_column) + row // 2
        cv2.circle(panel, (x0 + 4 + row // 2, cy), max(2, row // 3), colours[j], -1, cv2.LINE_AA)
        cv2.putText(panel, str(name), (x0 + 6 + row, cy + row // 3), cv2.FONT_HERSHEY_SIMPLEX, font,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def with_legend(frame_bgr: np.ndarray, names, colours: list[tuple[int, int, int]],
                width: int | None = None) -> np.ndarray:
    """The frame with :func:`legend_panel` to its right: (H, W, 3) -> (H, W + P, 3). Beside the frame, not on
    it: on a small frame a legend drawn over the image hid the animal (mirror-mouse's 396 x 406 px: the bottom
    view's paws)."""
    if not len(names):
        return frame_bgr
    return np.hstack([frame_bgr, legend_panel(frame_bgr.shape[0], names, colours, width).astype(frame_bgr.dtype)])
