"""Z-buffered rasteriser of ellipsoids under a pinhole camera, with exact per-pixel depth.

Every body volume is an ellipsoid ``{c + R diag(r) s : |s| <= 1}`` in camera coordinates (OpenCV:
x right, y down, z forward). The ray through pixel centre (u, v) is ``t d`` with
``d = K^-1 [u, v, 1] = ((u - cx) / f, (v - cy) / f, 1)``, so ``t`` is the depth z. In the unit-sphere
frame of an ellipsoid the ray is ``o' + t d'`` with ``o' = -S R^T c``, ``d' = M [u, v, 1]``,
``M = S R^T K^-1``, ``S = diag(1 / r)``; the entry depth solves ``a t^2 + 2 b t + cc = 0`` with
``a = p^T (M^T M) p``, ``b = (M^T o') . p``, ``cc = |o'|^2 - 1`` (p = [u, v, 1]): the nearer root
``t = (-b - sqrt(b^2 - a cc)) / a``. ``a`` and ``b`` are a quadratic and a linear form in (u, v), so a
primitive costs a handful of array operations over its bounding box (primitives of similar box size are
evaluated together, see :func:`_depth_boxes`), the box found exactly from the dual of
its outline conic ``C = g g^T - cc G`` (tangent lines ``l`` satisfy ``l^T C^-1 l = 0``; ``C^-1`` is the
projected dual quadric, see :func:`_boxes`).

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


def _boxes(centres: np.ndarray, axes: np.ndarray, radii: np.ndarray, cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Pixel boxes (N, 4) x0, y0, x1, y1 of the primitives' outlines (NaN where unbounded) and ok (N,).

    The outline's dual conic is the projection of the ellipsoid's dual quadric,
    ``C* = K (A A^T - c c^T) K^T`` with ``A = R diag(r)`` (the inverse of the outline conic up to scale,
    without inverting it); a vertical tangent ``u = x`` satisfies ``C*_00 - 2 x C*_02 + x^2 C*_22 = 0``,
    and with ``K = [[f, 0, cx], [0, f, cy], [0, 0, 1]]`` its roots are ``f`` times those of
    ``D = A A^T - c c^T`` plus ``cx`` (likewise for y). ``ok``: the camera lies outside the ellipsoid and
    the centre in front of it.
    """
    a = axes * radii[:, None, :]
    d = a @ np.transpose(a, (0, 2, 1)) - centres[:, :, None] * centres[:, None, :]
    rt = np.transpose(axes, (0, 2, 1)) / radii[:, :, None]  # S R^T
    o = (rt @ centres[:, :, None])[:, :, 0]
    ok = ((o * o).sum(1) - 1.0 > 1e-9) & (centres[:, 2] > 0)
    boxes = np.empty((len(centres), 4))
    with np.errstate(all="ignore"):
        for k, (i, f, c) in enumerate(((0, cam.f, cam.cx), (1, cam.f, cam.cy))):
            q2, q1, q0 = d[:, 2, 2], d[:, i, 2], d[:, i, i]
            root = np.sqrt(np.maximum(q1 * q1 - q0 * q2, 0.0))
            lo, hi = (q1 - root) / q2, (q1 + root) / q2
            boxes[:, k] = np.minimum(lo, hi) * f + c
            boxes[:, k + 2] = np.maximum(lo, hi) * f + c
    boxes[~ok | ~np.isfinite(boxes).all(1)] = np.nan
    return boxes, ok


def _setup(centres: np.ndarray, axes: np.ndarray, radii: np.ndarray, cam: Camera):
    """Per-primitive forms of the module docstring: conic ``g g^T - cc G`` (N, 3, 3), g (N, 3), cc (N,),
    pixel boxes (N, 4) and ok (N,) (see :func:`_boxes`)."""
    kinv = np.array([[1 / cam.f, 0, -cam.cx / cam.f], [0, 1 / cam.f, -cam.cy / cam.f], [0, 0, 1.0]])
    rt = np.transpose(axes, (0, 2, 1)) / radii[:, :, None]  # S R^T
    m = rt @ kinv
    o = -(rt @ centres[:, :, None])
    mt = np.transpose(m, (0, 2, 1))
    g = (mt @ o)[:, :, 0]
    cc = (o * o).sum((1, 2)) - 1.0
    conic = g[:, :, None] * g[:, None, :] - cc[:, None, None] * (mt @ m)
    boxes, ok = _boxes(centres, axes, radii, cam)
    return conic, g, cc, boxes, ok


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
    conic, g, cc, boxes, ok = _setup(centres, axes, radii, cam)
    live = np.flatnonzero(ok & np.isfinite(boxes).all(1))
    lo = np.maximum(np.floor(boxes[live, :2]), 0).astype(int)
    hi = np.minimum(np.ceil(boxes[live, 2:]) + 1, [w, h]).astype(int)
    keep = (hi > lo).all(1)
    live, lo, hi = live[keep], lo[keep], hi[keep]
    depth = _depth_boxes(conic[live].astype(np.float32), g[live].astype(np.float32), cc[live].astype(np.float32),
                         lo, hi - lo)
    # The depth test, primitive by primitive in index order (a miss is NaN, which never wins).
    for n, (x0, y0), (x1, y1), t in zip(live.tolist(), lo.tolist(), hi.tolist(), depth, strict=True):
        zv = zbuf[y0:y1, x0:x1]
        win = t < zv
        np.copyto(zv, t, where=win)
        np.copyto(pid[y0:y1, x0:x1], np.int16(n), where=win)
    return zbuf, pid


# Primitives are evaluated in groups padded to a common box: a few array operations per group instead
# of per primitive (most boxes are small, so per-call overhead, not arithmetic, dominated).
PAD_SLACK = 1.6  # a group's padded area may exceed its members' own box area by this factor (+ PAD_FREE px)
PAD_FREE = 1024


def _groups(size: np.ndarray) -> list[np.ndarray]:
    """Indices of boxes (N, 2 = w, h), grouped by area so that padding each group wastes little."""
    wh = size.tolist()
    order = sorted(range(len(wh)), key=lambda i: wh[i][0] * wh[i][1])  # stable, like argsort(kind="stable")
    groups, cur, wmax, hmax, area = [], [], 0, 0, 0
    for i in order:
        bw, bh = wh[i]
        nw, nh = max(wmax, bw), max(hmax, bh)
        if cur and (len(cur) + 1) * nw * nh > PAD_SLACK * (area + bw * bh) + PAD_FREE:
            groups.append(np.array(cur))
            cur, nw, nh, area = [], bw, bh, 0
        cur.append(i)
        wmax, hmax, area = nw, nh, area + bw * bh
    if cur:
        groups.append(np.array(cur))
    return groups


def _depth_boxes(conic: np.ndarray, g: np.ndarray, cc: np.ndarray, lo: np.ndarray, size: np.ndarray) -> list:
    """Entry depth over each primitive's pixel box: (h_i, w_i) float32 arrays, NaN where the ray misses.

    Args:
        conic: (N, 3, 3), g: (N, 3), cc: (N,) float32 forms of :func:`_setup`.
        lo: (N, 2) box corners x0, y0; size: (N, 2) box widths and heights (all >= 1).

    ``t = cc / (sqrt(disc) - b)`` where ``disc = q00 u^2 + 2 q02 u + q22 + q11 v^2 + 2 q12 v + 2 q01 u v`` and
    ``-b = -(g0 u + g1 v + g2)`` are bilinear in ``[1, v, v^2]`` and ``[1, u, u^2]``: over a group of boxes
    padded to one size they are two batched (gh, 3) @ (3, 3) @ (3, gw) matrix products.
    """
    out: list = [None] * len(cc)
    wh = size.tolist()
    q = conic
    ab = np.zeros((len(cc), 3, 6), dtype=np.float32)  # [a | b]: disc = pv a pu, -b = pv b pu
    ab[:, 0, 0], ab[:, 0, 1], ab[:, 0, 2] = q[:, 2, 2], 2 * q[:, 0, 2], q[:, 0, 0]
    ab[:, 1, 0], ab[:, 1, 1], ab[:, 2, 0] = 2 * q[:, 1, 2], 2 * q[:, 0, 1], q[:, 1, 1]
    ab[:, 0, 3], ab[:, 0, 4], ab[:, 1, 3] = -g[:, 2], -g[:, 0], -g[:, 1]
    lo32 = lo.astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        for idx in _groups(size):
            k = len(idx)
            members = idx.tolist()
            gw, gh = max(wh[i][0] for i in members), max(wh[i][1] for i in members)
            u = lo32[idx, 0, None] + np.arange(gw, dtype=np.float32)  # (k, gw)
            v = lo32[idx, 1, None] + np.arange(gh, dtype=np.float32)  # (k, gh)
            pu = np.empty((k, 3, gw), dtype=np.float32)
            pu[:, 0], pu[:, 1], pu[:, 2] = 1.0, u, u * u
            pv = np.empty((k, gh, 3), dtype=np.float32)
            pv[:, :, 0], pv[:, :, 1], pv[:, :, 2] = 1.0, v, v * v
            w = pv @ ab[idx]  # (k, gh, 6)
            t = w[:, :, :3] @ pu
            np.sqrt(t, out=t)
            t += w[:, :, 3:] @ pu
            np.divide(cc[idx, None, None], t, out=t)
            for j, i in enumerate(members):
                out[i] = t[j, : wh[i][1], : wh[i][0]]
    return out


def surface(
    zbuf: np.ndarray, pid: np.ndarray, centres: np.ndarray, axes: np.ndarray, radii: np.ndarray, cam: Camera
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deferred surface attributes of the foreground pixels (structure-of-arrays layout).

    Returns:
        flat: (P,) flat pixel indices of the foreground, grouped by primitive (ascending primitive index,
            then pixel order).
        prim: (P,) primitive index at each (non-decreasing).
        local: (3, P) float32 hit point on the primitive's unit sphere (its own frame).
        normal: (3, P) float32 unit surface normal in camera coordinates.

    The unit-sphere point is ``o' + t M [u, v, 1]`` (see the module docstring) and the normal is
    ``R S^-1`` times it; both are per-primitive affine maps, gathered once per pixel.
    """
    fg = pid.ravel()
    flat = np.flatnonzero(fg >= 0)
    # Pixels in primitive order (a stable radix sort of int16 ids): every per-primitive coefficient then
    # repeats over a run of pixels, which np.repeat lays out directly in (21, P) rows (no gather, no transpose).
    ids = fg[flat]
    flat = flat[np.argsort(ids, kind="stable")]
    counts = np.bincount(ids, minlength=len(centres))
    prim = np.repeat(np.arange(len(centres)), counts)
    flat32 = flat.astype(np.int32)
    ys = flat32 // np.int32(cam.width)
    u = (flat32 - ys * np.int32(cam.width)).astype(np.float32)
    v = ys.astype(np.float32)
    t = zbuf.ravel()[flat]
    kinv = np.array([[1 / cam.f, 0, -cam.cx / cam.f], [0, 1 / cam.f, -cam.cy / cam.f], [0, 0, 1.0]])
    rt = np.transpose(axes, (0, 2, 1)) / radii[:, :, None]  # S R^T
    m = rt @ kinv
    o = -(rt @ centres[:, :, None])[:, :, 0]
    b = axes / radii[:, None, :]  # R S^-1 (normal direction, up to length)
    coef = np.concatenate([m.reshape(-1, 9), o, b.reshape(-1, 9)], 1).T.astype(np.float32, order="C")  # (21, N)
    c = np.repeat(coef, counts, axis=1)  # (21, P)
    ut, vt = u * t, v * t
    local = np.empty((3, len(flat)), dtype=np.float32)
    for i in range(3):
        row = local[i]
        np.multiply(c[3 * i], ut, out=row)
        row += c[3 * i + 1] * vt
        row += c[3 * i + 2] * t
        row += c[9 + i]
    normal = np.empty_like(local)
    for i in range(3):
        row = normal[i]
        np.multiply(c[12 + 3 * i], local[0], out=row)
        row += c[13 + 3 * i] * local[1]
        row += c[14 + 3 * i] * local[2]
    norm = normal[0] * normal[0]
    norm += normal[1] * normal[1]
    norm += normal[2] * normal[2]
    np.sqrt(norm, out=norm)
    norm += np.float32(1e-12)
    normal /= norm
    return flat, prim, local, normal


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
