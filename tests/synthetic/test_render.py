"""The ellipsoid rasteriser against closed forms and an independent ray caster."""

from __future__ import annotations

import numpy as np

from synthetic.render import Camera, rasterise, ray_cast, surface


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
