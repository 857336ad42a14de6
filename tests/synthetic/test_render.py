"""The ellipsoid rasteriser against closed forms and an independent ray caster."""

from __future__ import annotations

import numpy as np

from synthetic.render import PAD_FREE, PAD_SLACK, Camera, _boxes, _groups, _setup, rasterise, ray_cast, surface


def test_sphere_on_axis_depth_and_outline():
    # A sphere of radius r at distance d on the optical axis: nearest depth d - r at the centre
    # pixel; its outline is a circle of radius f r / sqrt(d^2 - r^2) pixels.
    f, r, d, size = 100.0, 1.0, 5.0, 101
    cam = Camera(f, 50.0, 50.0, size, size)
    zbuf, pid = rasterise(np.array([[0.0, 0.0, d]]), np.eye(3)[None], np.array([[r, r, r]]), cam)
    np.testing.assert_allclose(zbuf[50, 50], d - r, rtol=1e-6)
    radius = f * r / np.sqrt(d * d - r * r)
    yy, xx = np.mgrid[:size, :size]
    inside = (xx - 50.0) ** 2 + (yy - 50.0) ** 2 < radius**2
    ring = np.abs(np.sqrt((xx - 50.0) ** 2 + (yy - 50.0) ** 2) - radius) < 0.75
    assert np.array_equal((pid == 0)[~ring], inside[~ring])
    # Depth of an off-centre pixel: ray (u, v, 1) t hits |p - c| = r.
    u, v = 60.0, 45.0
    ray = np.array([(u - 50) / f, (v - 50) / f, 1.0])
    a, b, c = ray @ ray, -2 * d, d * d - r * r
    t = (-b - np.sqrt(b * b - 4 * a * c)) / (2 * a)
    np.testing.assert_allclose(zbuf[int(v), int(u)], t, rtol=1e-5)


def test_depth_test_keeps_the_nearer_primitive_and_matches_ray_casting():
    rng = np.random.default_rng(0)
    n = 12
    centres = np.column_stack([rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), rng.uniform(4, 7, n)])
    axes = np.array([np.linalg.qr(rng.standard_normal((3, 3)))[0] for _ in range(n)])
    radii = rng.uniform(0.2, 0.8, (n, 3))
    cam = Camera(120.0, 31.5, 31.5, 64, 64)
    zbuf, pid = rasterise(centres, axes, radii, cam)
    assert (pid >= 0).mean() > 0.3
    for v in range(0, 64, 3):
        for u in range(0, 64, 3):
            t, k = ray_cast(centres, axes, radii, cam.rays(np.array([u]), np.array([v]))[0])
            assert k == pid[v, u]
            if k >= 0:
                np.testing.assert_allclose(zbuf[v, u], t, rtol=1e-4)


def test_surface_points_lie_on_their_ellipsoid_with_outward_normals():
    centres = np.array([[0.2, -0.1, 5.0]])
    axes = np.linalg.qr(np.random.default_rng(1).standard_normal((3, 3)))[0][None]
    radii = np.array([[1.2, 0.6, 0.4]])
    cam = Camera(90.0, 24.0, 24.0, 48, 48)
    zbuf, pid = rasterise(centres, axes, radii, cam)
    flat, _, local, normal = surface(zbuf, pid, centres, axes, radii, cam)
    assert len(flat) > 100
    np.testing.assert_allclose(np.linalg.norm(local, axis=0), 1.0, atol=1e-3)
    # Visible surface faces the camera: the normal points against the viewing ray (negative z-ish).
    ys, xs = np.divmod(flat, 48)
    rays = cam.rays(xs.astype(float), ys.astype(float))
    assert np.all((normal.T * rays).sum(1) < 1e-3)
    # The normal is the gradient of the ellipsoid's quadric at the hit point: R S^-2 R^T (p - c).
    t = zbuf.ravel()[flat].astype(np.float64)
    p = rays * t[:, None]
    grad = (p - centres[0]) @ axes[0] @ np.diag(radii[0] ** -2.0) @ axes[0].T
    grad /= np.linalg.norm(grad, axis=1, keepdims=True)
    np.testing.assert_allclose(normal.T, grad, atol=2e-3)


def _random_ellipsoids(n: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = np.column_stack([rng.uniform(-1.5, 1.5, n), rng.uniform(-1.5, 1.5, n), rng.uniform(5, 9, n)])
    axes = np.linalg.qr(rng.standard_normal((n, 3, 3)))[0]
    radii = rng.uniform(0.1, 0.9, (n, 3))
    return centres, axes, radii


def test_outline_boxes_from_the_dual_quadric_are_tight():
    # Each ellipsoid alone: its rasterised silhouette fills its box up to the half-pixel of the
    # pixel-centre sampling, and the box equals the one from inverting the outline conic.
    cam = Camera(60.0, 40.0, 40.0, 80, 80)
    centres, axes, radii = _random_ellipsoids(12, 3)
    boxes, ok = _boxes(centres, axes, radii, cam)
    assert ok.all()
    conic = _setup(centres, axes, radii, cam)[0]
    dual = np.linalg.inv(conic)
    for n in range(len(centres)):
        _, pid = rasterise(centres[n : n + 1], axes[n : n + 1], radii[n : n + 1], cam)
        ys, xs = np.nonzero(pid == 0)
        x0, y0, x1, y1 = boxes[n]
        if x0 > 1 and y0 > 1 and x1 < 78 and y1 < 78:  # fully inside the image
            assert x0 <= xs.min() < x0 + 1 and x1 - 1 < xs.max() <= x1
            assert y0 <= ys.min() < y0 + 1 and y1 - 1 < ys.max() <= y1
        for k, i in enumerate((0, 1)):  # tangent lines u = x: dual_ii - 2 x dual_i2 + x^2 dual_22 = 0
            q2, q1, q0 = dual[n, 2, 2], dual[n, i, 2], dual[n, i, i]
            roots = np.sort([(q1 - np.sqrt(q1 * q1 - q0 * q2)) / q2, (q1 + np.sqrt(q1 * q1 - q0 * q2)) / q2])
            np.testing.assert_allclose([boxes[n, k], boxes[n, k + 2]], roots, atol=1e-6)


def test_box_groups_partition_the_primitives_and_bound_the_padding():
    rng = np.random.default_rng(0)
    size = np.column_stack([rng.integers(1, 120, 40), rng.integers(1, 120, 40)])
    groups = _groups(size)
    assert sorted(np.concatenate(groups).tolist()) == list(range(40))
    for idx in groups:
        if len(idx) > 1:  # a group's padded area stays within its slack
            padded = len(idx) * size[idx, 0].max() * size[idx, 1].max()
            assert padded <= PAD_SLACK * np.prod(size[idx], axis=1).sum() + PAD_FREE


def test_grouped_depth_equals_the_closed_form_per_pixel():
    # Many overlapping ellipsoids: every pixel's depth and primitive agree with the float64 ray caster.
    cam = Camera(70.0, 32.0, 32.0, 64, 64)
    centres, axes, radii = _random_ellipsoids(30, 5)
    zbuf, pid = rasterise(centres, axes, radii, cam)
    rng = np.random.default_rng(1)
    for u, v in rng.integers(0, 64, (300, 2)).tolist():
        t, k = ray_cast(centres, axes, radii, cam.rays(np.array([float(u)]), np.array([float(v)]))[0])
        if np.isfinite(t) and pid[v, u] != k:  # only a grazing tie between two surfaces may differ
            assert abs(zbuf[v, u] - t) < 1e-3 * t
        else:
            assert pid[v, u] == k
            if k >= 0:
                np.testing.assert_allclose(zbuf[v, u], t, rtol=1e-4)
