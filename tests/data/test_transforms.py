"""Top-down crop geometry: centre/scale, affine matrices, exact inverses (standard and UDP)."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.data import transforms as T


def test_box_to_center_scale_square_and_aspect():
    center, scale = T.box_to_center_scale((10, 20, 100, 50), aspect_ratio=1.0, padding=1.25)
    np.testing.assert_allclose(center, [60, 45])
    np.testing.assert_allclose(scale, [100 / 200 * 1.25, 100 / 200 * 1.25])
    # Tall box in a 192x256 (w/h = 0.75) input: the width grows to 0.75 * 80 = 60.
    center, scale = T.box_to_center_scale((0, 0, 30, 80), aspect_ratio=0.75, padding=1.5)
    np.testing.assert_allclose(center, [15, 40])
    np.testing.assert_allclose(scale, [60 / 200 * 1.5, 80 / 200 * 1.5])
    # Wide box: the height grows to 120 / 0.75 = 160.
    _, scale = T.box_to_center_scale((0, 0, 120, 20), aspect_ratio=0.75, padding=1.0)
    np.testing.assert_allclose(scale, [0.6, 0.8])


def test_crop_matrix_maps_box_edges():
    center, scale = np.array([50.0, 40.0]), np.array([0.5, 0.5])  # a 100-px box
    std = T.crop_matrix(center, scale, (64, 64))
    pts = np.array([[50.0, 40.0], [0.0, -10.0], [100.0, 90.0]])
    # Standard: box centre -> W/2, box edges -> 0 and W.
    np.testing.assert_allclose(T.transform_points(pts, std), [[32, 32], [0, 0], [64, 64]], atol=1e-9)
    udp = T.crop_matrix(center, scale, (64, 64), udp=True)
    # UDP: box centre -> (W-1)/2, box edges -> 0 and W-1.
    np.testing.assert_allclose(T.transform_points(pts, udp), [[31.5, 31.5], [0, 0], [63, 63]], atol=1e-9)


def test_rotation_turns_content_counter_clockwise_on_screen():
    m = T.rotation_matrix(90.0)
    # A point to the right of the centre moves up (y decreases) on screen.
    np.testing.assert_allclose(T.transform_points(np.array([[1.0, 0.0]]), m[:2]), [[0.0, -1.0]], atol=1e-12)


@pytest.mark.parametrize("udp", [False, True])
def test_crop_then_inverse_recovers_keypoints(udp):
    rng = np.random.default_rng(3)
    for _ in range(20):
        kp = np.concatenate([rng.uniform(0, 640, (17, 2)), rng.integers(0, 3, (17, 1))], 1).astype(np.float32)
        center = rng.uniform(100, 500, 2)
        scale = rng.uniform(0.3, 3.0, 2)
        rot = rng.uniform(-60, 60)
        m = T.crop_matrix(center, scale, (192, 256), rot, udp=udp)
        crop = T.transform_points(kp, m)
        np.testing.assert_array_equal(crop[:, 2], kp[:, 2])  # visibility carried over
        back = T.transform_points(crop, T.invert_affine(m))
        assert np.abs(back[:, :2] - kp[:, :2]).max() < 0.01
        # Batched helpers used on predictions.
        back2 = T.crop_to_original(crop[None, :, :2], m[None])
        assert np.abs(back2[0] - kp[:, :2]).max() < 0.01
        back3 = T.center_scale_to_original(crop[None, :, :2], center[None], scale[None], (192, 256), rot, udp)
        assert np.abs(back3[0] - kp[:, :2]).max() < 0.01


def test_warp_image_moves_pixels_like_points():
    img = np.zeros((40, 50, 3), np.uint8)
    img[12, 7] = 255
    # Integer translation and a 2x upscale about the origin: pixel centre (7, 12) -> (2*7+3, 2*12-4).
    m = np.array([[2.0, 0.0, 3.0], [0.0, 2.0, -4.0]])
    out = T.warp_image(img, m, (60, 50))
    y, x = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
    np.testing.assert_allclose(T.transform_points(np.array([[7.0, 12.0]]), m), [[x, y]])
    # Crop pixel (0, 0) comes from source (-1.5, 2), outside: constant border.
    assert (T.warp_image(img, m, (60, 50), border_value=(9, 9, 9))[0, 0] == 9).all()


def test_hflip_matrix_is_an_involution():
    f = T.hflip_matrix(64)
    np.testing.assert_allclose(f @ f, np.eye(3))
    np.testing.assert_allclose(T.transform_points(np.array([[0.0, 5.0], [63.0, 1.0]]), f[:2]), [[63, 5], [0, 1]])


def test_transform_points_batched_applies_each_samples_affine_and_carries_visibility():
    from animalpose.data.transforms import transform_points_batched

    pts = np.array([[[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]], [[1.0, 2.0, 1.0], [3.0, -1.0, 2.0]]])
    mats = np.array([[[2.0, 0.0, 1.0], [0.0, 2.0, -1.0]],   # scale 2, shift (1, -1)
                     [[0.0, -1.0, 0.0], [1.0, 0.0, 5.0]]])  # rotate 90 degrees, shift (0, 5)
    out = transform_points_batched(pts, mats)
    np.testing.assert_allclose(out, [[[3.0, 3.0, 2.0], [1.0, -1.0, 0.0]], [[-2.0, 6.0, 1.0], [1.0, 8.0, 2.0]]])
    assert transform_points_batched(pts[..., :2], mats).shape == (2, 2, 2)
    for n in range(2):  # the same as one affine at a time
        np.testing.assert_allclose(out[n], T.transform_points(pts[n], mats[n]))
