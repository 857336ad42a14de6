"""Top-down crops: centre/scale from a box, affine matrices, warps and their exact inverses.

Conventions
-----------
- A point (x, y) is in pixels of the image it refers to, pixel ``i`` covering [i - 0.5, i + 0.5]
  (its centre at ``i``), as in OpenCV.
- ``scale`` is the crop size in units of :data:`SCALE_UNIT` = 200 pixels, as (sw, sh), the MSRA /
  Stacked-Hourglass convention; the crop covers ``scale * 200`` source pixels.
- Matrices are (2, 3) float64 affines mapping source pixels to crop pixels; :func:`to3x3` lifts
  them so that they compose by ``@``.

Two conventions for the source→crop scale factor are supported:

- standard (MSRA, SimpleBaseline, HRNet): ``s = W_out / (200 * sw)``, crop centre at ``W_out / 2``;
- UDP (Huang et al., "The Devil is in the Details: Delving into Unbiased Data Processing for Human
  Pose Estimation", CVPR 2020): ``s = (W_out - 1) / (200 * sw)``, crop centre at
  ``(W_out - 1) / 2``, so that the first and last pixel centres of the crop correspond to the box
  edges and flipping/resizing commute with the transform without a half-pixel bias.

Both are exactly invertible (:func:`invert_affine`), so predictions map back to the original image.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

SCALE_UNIT = 200.0
# Box padding factors of the CC-SSL reference: real crops and synthetic renders.
PADDING_REAL = 1.5
PADDING_SYNTHETIC = 1.25


def box_to_center_scale(
    bbox: Sequence[float],
    aspect_ratio: float = 1.0,
    padding: float = PADDING_SYNTHETIC,
    unit: float = SCALE_UNIT,
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of a top-down crop around a box.

    The box is widened (or heightened) to the crop's aspect ratio before padding, so a 256×192
    input sees the animal undistorted.

    Args:
        bbox: (x, y, w, h) in pixels.
        aspect_ratio: width / height of the network input (192/256 = 0.75 for 256×192).
        padding: factor applied to the aspect-corrected box (1.5 real, 1.25 synthetic in CC-SSL).
        unit: pixels per scale unit.

    Returns:
        center (2,) float64 (x, y), scale (2,) float64 (sw, sh) in units of ``unit`` pixels.
    """
    x, y, w, h = (float(v) for v in bbox)
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float64)
    w, h = max(w, 1.0), max(h, 1.0)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    scale = np.array([w, h], dtype=np.float64) / unit * padding
    return center, scale


def to3x3(matrix: np.ndarray) -> np.ndarray:
    """(..., 2, 3) affine -> (..., 3, 3) homogeneous matrix."""
    matrix = np.asarray(matrix, dtype=np.float64)
    bottom = np.zeros((*matrix.shape[:-2], 1, 3))
    bottom[..., 0, 2] = 1.0
    return np.concatenate([matrix, bottom], axis=-2)


def rotation_matrix(degrees: float, about: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """(3, 3) rotation of image content by ``degrees`` counter-clockwise on screen (y points down)."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    cx, cy = about
    rot = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    return translation_matrix(cx, cy) @ rot @ translation_matrix(-cx, -cy)


def translation_matrix(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def scaling_matrix(sx: float, sy: float, about: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    cx, cy = about
    return translation_matrix(cx, cy) @ np.diag([sx, sy, 1.0]) @ translation_matrix(-cx, -cy)


def hflip_matrix(width: int, udp: bool = True) -> np.ndarray:
    """(3, 3) horizontal mirror of an image ``width`` pixels wide: x -> W - 1 - x.

    The mirror about the image's middle pixel-edge maps pixel centre i to W - 1 - i in both
    conventions; ``udp`` is accepted for symmetry with the other builders and changes nothing.
    """
    del udp
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def crop_matrix(
    center: Sequence[float],
    scale: Sequence[float],
    output_size: Sequence[int],
    rotation: float = 0.0,
    udp: bool = False,
    unit: float = SCALE_UNIT,
) -> np.ndarray:
    """(2, 3) affine from source pixels to crop pixels.

    The source box of ``scale * unit`` pixels around ``center``, rotated by ``rotation`` degrees
    (content turns counter-clockwise on screen), is mapped onto an ``output_size`` = (W, H) crop.

    Standard: ``x' = W/(200 sw) * R(x - c) + W/2``. UDP (Huang et al. 2020):
    ``x' = (W-1)/(200 sw) * R(x - c) + (W-1)/2``.
    """
    out_w, out_h = float(output_size[0]), float(output_size[1])
    src_w, src_h = float(scale[0]) * unit, float(scale[1]) * unit
    if udp:
        sx, sy = (out_w - 1.0) / src_w, (out_h - 1.0) / src_h
        ocx, ocy = (out_w - 1.0) * 0.5, (out_h - 1.0) * 0.5
    else:
        sx, sy = out_w / src_w, out_h / src_h
        ocx, ocy = out_w * 0.5, out_h * 0.5
    m = (
        translation_matrix(ocx, ocy)
        @ np.diag([sx, sy, 1.0])
        @ rotation_matrix(rotation)
        @ translation_matrix(-float(center[0]), -float(center[1]))
    )
    return m[:2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """(..., 2, 3) -> (..., 2, 3) exact inverse in float64."""
    m3 = to3x3(matrix)
    return np.linalg.inv(m3)[..., :2, :]


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to points.

    Args:
        points: (..., 2) x, y, or (..., 3) x, y, visibility (the third column is carried over).
        matrix: (2, 3).

    Returns:
        same shape and dtype as ``points``.
    """
    pts = np.asarray(points)
    m = np.asarray(matrix, dtype=np.float64)
    xy = pts[..., :2].astype(np.float64)
    out = xy @ m[:, :2].T + m[:, 2]
    if pts.shape[-1] > 2:
        out = np.concatenate([out, pts[..., 2:].astype(np.float64)], axis=-1)
    return out.astype(pts.dtype if np.issubdtype(pts.dtype, np.floating) else np.float64)


def transform_points_batched(points: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Apply each sample's (2, 3) affine to its points.

    Args:
        points: (N, K, 2) x, y, or (N, K, 3+) with visibility etc. carried over unchanged.
        matrices: (N, 2, 3).

    Returns:
        (N, K, 2) or (N, K, 3+) float64.
    """
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrices, dtype=np.float64)
    xy = np.einsum("nkj,nij->nki", pts[..., :2], m[:, :, :2]) + m[:, None, :, 2]
    return np.concatenate([xy, pts[..., 2:]], axis=-1) if pts.shape[-1] > 2 else xy


def warp_image(
    image: np.ndarray,
    matrix: np.ndarray,
    output_size: Sequence[int],
    border_value: Sequence[float] | float = 0,
    interpolation: int = cv2.INTER_LINEAR,
) -> np.ndarray:
    """Warp an (H, W, C) image with a (2, 3) source→crop affine into an ``output_size`` = (W, H) crop."""
    if np.isscalar(border_value):
        border = (float(border_value),) * 3
    else:
        border = tuple(float(v) for v in border_value)
    return cv2.warpAffine(
        image,
        np.asarray(matrix, dtype=np.float64),
        (int(output_size[0]), int(output_size[1])),
        flags=interpolation,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border,
    )


def crop_to_original(coords: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Map crop-pixel coordinates back to the original image with each sample's crop matrix.

    Args:
        coords: (N, K, 2) in crop pixels.
        matrices: (N, 2, 3) source→crop affines (as returned in the dataset's meta).

    Returns:
        (N, K, 2) float64 in original image pixels.
    """
    return transform_points_batched(coords, invert_affine(np.asarray(matrices, dtype=np.float64)))


def center_scale_to_original(
    coords: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    output_size: Sequence[int],
    rotation: np.ndarray | float = 0.0,
    udp: bool = False,
) -> np.ndarray:
    """Map (N, K, 2) crop-pixel coordinates to the original image from (N, 2) centres and scales."""
    center = np.asarray(center, dtype=np.float64).reshape(-1, 2)
    scale = np.asarray(scale, dtype=np.float64).reshape(-1, 2)
    rot = np.broadcast_to(np.asarray(rotation, dtype=np.float64), (len(center),))
    mats = np.stack([crop_matrix(c, s, output_size, r, udp) for c, s, r in zip(center, scale, rot, strict=True)])
    return crop_to_original(coords, mats)
