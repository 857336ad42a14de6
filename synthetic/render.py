"""Z-buffered rasteriser of ellipsoids under a pinhole camera, with exact per-pixel depth.

Every body volume is an ellipsoid ``{c + R diag(r) s : |s| <= 1}`` in camera coordinates (OpenCV:
x right, y down, z forward). The ray through pixel centre (u, v) is ``t d`` with
``d = K^-1 [u, v, 1] = ((u - cx) / f, (v - cy) / f, 1)``, so ``t`` is the depth z. In the unit-sphere
frame of an ellipsoid the ray is ``o' + t d'`` with ``o' = -S R^T c``, ``d' = M [u, v, 1]``,
``M = S R^T K^-1``, ``S = diag(1 / r)``; the entry depth solves ``a t^2 + 2 b t + cc = 0`` with
``a = p^T (M^T M) p``, ``b = (M^T o') . p``, ``cc = |o'|^2 - 1`` (p = [u, v, 1]): the nearer root
``t = (-b - sqrt(b^2 - a cc)) / a``. ``a`` and ``b`` are a quadratic and a linear form in (u, v), so a
primitive costs a handful of array operations over its bounding box, found exactly from the dual of
its outline conic ``C = g g^T - cc G`` (tangent lines ``l`` satisfy ``l^T C^-1 l = 0``).

Pixel centres are at integer coordinates: column ``u`` covers [u - 0.5, u + 0.5], so a mirror of the
image maps x to ``W - 1 - x`` (the convention of :mod:`animalpose.data.flip`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels: focal ``f``, principal point (cx, cy), image ``width`` x ``height``."""

    f: float
    cx: float
    cy: float
    width: int
    height: int

    def project(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) camera points -> (N, 3) u, v, depth."""
        z = pts[:, 2]
        return np.stack([self.f * pts[:, 0] / z + self.cx, self.f * pts[:, 1] / z + self.cy, z], axis=1)

    def rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(N,) pixel coordinates -> (N, 3) ray directions with unit z."""
        return np.stack([(u - self.cx) / self.f, (v - self.cy) / self.f, np.ones_like(u, dtype=np.float64)], 1)


def _setup(centres: np.ndarray, axes: np.ndarray, radii: np.ndarray, cam: Camera):
    """Per-primitive quadratic forms: G (N, 3, 3), g (N, 3), cc (N,), and pixel boxes (N, 4)."""
    kinv = np.array([[1 / cam.f, 0, -cam.cx / cam.f], [0, 1 / cam.f, -cam.cy / cam.f], [0, 0, 1.0]])
    rt = np.transpose(axes, (0, 2, 1)) / radii[:, :, None]  # S R^T
    m = rt @ kinv
    o = -np.einsum("nij,nj->ni", rt, centres)
    big_g = np.transpose(m, (0, 2, 1)) @ m
    g = np.einsum("nji,nj->ni", m, o)
    cc = np.einsum("ni,ni->n", o, o) - 1.0
    conic = g[:, :, None] * g[:, None, :] - cc[:, None, None] * big_g
    boxes = np.zeros((len(centres), 4))
    ok = (cc > 1e-9) & (centres[:, 2] > 0)
    with np.errstate(all="ignore"):
        dual = np.linalg.inv(np.where(ok[:, None, None], conic, np.eye(3)))
        for k, (i, j) in enumerate(((0, 2), (1, 2))):
            # l = e_i - s e_2 tangent: dual_ii - 2 s dual_i2 + s^2 dual_22 = 0
            q2, q1, q0 = dual[:, 2, 2], dual[:, i, j], dual[:, i, i]
            root = np.sqrt(np.maximum(q1 * q1 - q0 * q2, 0.0))
            lo, hi = (q1 - root) / q2, (q1 + root) / q2
            boxes[:, k] = np.minimum(lo, hi)
            boxes[:, k + 2] = np.maximum(lo, hi)
    boxes[~ok | ~np.isfinite(boxes).all(1)] = np.nan
    return big_g, g, cc, boxes, ok


def rasterise(
    centres: np.ndarray, axes: np.ndarray, radii: np.ndarray, cam: Camera
) -> tuple[np.ndarray, np.ndarray]:
    """Depth buffer (H, W) float32 (inf where empty) and primitive index (H, W) int16 (-1 where empty).

    Args:
        centres: (N, 3) ellipsoid centres in camera coordinates.
        axes: (N, 3, 3) unit axes as columns, camera coordinates.
        radii: (N, 3) semi-axis lengths.
    """
    h, w = cam.height, cam.width
    zbuf = np.full((h, w), np.inf, dtype=np.float32)
    pid = np.full((h, w), -1, dtype=np.int16)
    big_g, g, cc, boxes, ok = _setup(centres, axes, radii, cam)
    conic = g[:, :, None] * g[:, None, :] - cc[:, None, None] * big_g
    us = np.arange(w, dtype=np.float32)
    vs = np.arange(h, dtype=np.float32)
    live = np.flatnonzero(ok & np.isfinite(boxes).all(1))
    lo = np.maximum(np.floor(boxes[live, :2]), 0).astype(int)
    hi = np.minimum(np.ceil(boxes[live, 2:]) + 1, [w, h]).astype(int)
    coef = np.concatenate([conic[live].reshape(-1, 9), g[live], cc[live, None]], 1).astype(np.float32)
    for n, (x0, y0), (x1, y1), c in zip(live.tolist(), lo.tolist(), hi.tolist(), coef, strict=True):
        if x0 >= x1 or y0 >= y1:
            continue
        u, v = us[x0:x1], vs[y0:y1]
        # disc = p^T C p (the outline conic), b = g . p; nearer root t = cc / (sqrt(disc) - b).
        disc = ((c[4] * v + 2 * c[5]) * v)[:, None] + (2 * c[1] * v)[:, None] * u
        disc += (c[0] * u + 2 * c[2]) * u + c[8]
        minus_b = (-(c[10] * v + c[11]))[:, None] - c[9] * u
        hit = disc > 0
        np.sqrt(disc, out=disc, where=hit)
        disc += minus_b
        t = c[12] / disc
        zv = zbuf[y0:y1, x0:x1]
        win = hit & (t < zv)
        np.copyto(zv, t, where=win)
        np.copyto(pid[y0:y1, x0:x1], np.int16(n), where=win)
    return zbuf, pid


def surface(
    zbuf: np.ndarray, pid: np.ndarray, centres: np.ndarray, axes: np.ndarray, radii: np.ndarray, cam: Camera
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deferred surface attributes of the foreground pixels.

    Returns:
        flat: (P,) flat pixel indices of the foreground.
        prim: (P,) primitive index at each.
        local: (P, 3) hit point on the primitive's unit sphere (its own frame).
        normal: (P, 3) unit surface normal in camera coordinates.
    """
    flat = np.flatnonzero(pid.ravel() >= 0)
    prim = pid.ravel()[flat].astype(np.intp)
    ys, xs = np.divmod(flat, cam.width)
    t = zbuf.ravel()[flat]
    # Camera point p = t (K^-1 [x, y, 1]); unit-sphere point = S R^T (p - c) = A p - A c.
    p = np.empty((len(flat), 3), dtype=np.float32)
    p[:, 0] = (xs.astype(np.float32) - np.float32(cam.cx)) * (t / np.float32(cam.f))
    p[:, 1] = (ys.astype(np.float32) - np.float32(cam.cy)) * (t / np.float32(cam.f))
    p[:, 2] = t
    amat = (np.transpose(axes, (0, 2, 1)) / radii[:, :, None]).astype(np.float32)
    shift = np.einsum("nij,nj->ni", amat, centres).astype(np.float32)
    local = _matvec(amat.reshape(-1, 9)[prim], p) - shift[prim]
    bmat = (axes / radii[:, None, :]).astype(np.float32)  # R S: normal direction of a unit-sphere point
    normal = _matvec(bmat.reshape(-1, 9)[prim], local)
    normal /= np.sqrt((normal * normal).sum(1, keepdims=True)) + np.float32(1e-12)
    return flat, prim, local, normal


def _matvec(m: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Row-wise (P, 9) row-major 3x3 matrices times (P, 3) vectors -> (P, 3)."""
    out = np.empty_like(x)
    for i in range(3):
        out[:, i] = m[:, 3 * i] * x[:, 0] + m[:, 3 * i + 1] * x[:, 1] + m[:, 3 * i + 2] * x[:, 2]
    return out


def ray_cast(centres: np.ndarray, axes: np.ndarray, radii: np.ndarray, ray: np.ndarray) -> tuple[float, int]:
    """Brute-force nearest hit of one ray ``t * ray`` from the origin: (depth, primitive) or (inf, -1).

    Independent of :func:`rasterise` (no bounding boxes, float64): used to check the depth buffer.
    """
    rt = np.transpose(axes, (0, 2, 1)) / radii[:, :, None]
    o = -np.einsum("nij,nj->ni", rt, centres)
    d = rt @ ray
    a, b, c = (d * d).sum(1), (o * d).sum(1), (o * o).sum(1) - 1
    disc = b * b - a * c
    with np.errstate(invalid="ignore"):
        t = np.where(disc > 0, (-b - np.sqrt(disc)) / a, np.inf)
    n = int(np.argmin(t))
    return float(t[n]), (n if np.isfinite(t[n]) else -1)
