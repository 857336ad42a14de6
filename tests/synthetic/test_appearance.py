"""Coat maps, their field form (read per texel by the renderer), and the fast camera-effect steps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from synthetic import appearance as ap

COATS = [
    {"kind": "solid", "color": [0.4, 0.2, 0.1]},
    {"kind": "stripes", "color": [0.86, 0.45, 0.12], "second": [0.07, 0.05, 0.04]},
    {"kind": "spots", "color": [0.7, 0.7, 0.7], "second": [0.4, 0.4, 0.4]},
    {"kind": "patches", "color": [0.9, 0.9, 0.86]},
    {"kind": "wool", "color": [0.85, 0.83, 0.78]},
    {"kind": "noise", "color": [0.55, 0.55, 0.55]},
]


@pytest.mark.parametrize("detail", [0.0, 1.0])
@pytest.mark.parametrize("coat", COATS, ids=[c["kind"] for c in COATS])
def test_coat_fields_rebuild_the_coat_map_with_the_same_draws(coat, detail):
    tex = ap.coat_map(coat, np.random.default_rng(7), detail)
    rng = np.random.default_rng(7)
    colours, mask, mod = ap.coat_fields(coat, rng, detail)
    expect = np.where(mask[:, :, None], colours[1], colours[0]) if mask is not None else np.broadcast_to(
        colours[0], tex.shape)
    if mod is not None:
        expect = expect * mod[:, :, None]
    np.testing.assert_array_equal(tex, expect.astype(np.float32))
    np.testing.assert_allclose(colours[0], coat["color"])
    # Both consumed the same random numbers: the next draw agrees.
    ref = np.random.default_rng(7)
    ap.coat_map(coat, ref, detail)
    assert rng.random() == ref.random()
    assert (mod is None) == (coat["kind"] in ("solid", "stripes", "spots", "patches") and detail == 0)


def test_channel_gains_match_a_saturating_per_channel_multiply():
    img = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    gains = np.array([1.3, 0.7, 1.0])
    out = ap.channel_gains(img, gains)
    expect = np.clip(np.rint(img * gains), 0, 255)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.abs(out.astype(int) - expect).max() <= 1  # exact halves may round either way
    assert out[..., 0].max() == 255  # saturates


def test_separable_defocus_equals_opencv_gaussian_blur_within_one_level():
    img = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    p = {"cast": 0.0, "blur_p": 1.0, "blur_sigma": 1.3, "motion_p": 0.0, "noise": 0.0, "jpeg_p": 0.0, "jpeg_q": 95.0}
    out, info = ap.camera_effects(img, np.random.default_rng(3), p)
    ref = cv2.GaussianBlur(img, (0, 0), info["defocus"])
    assert np.abs(out.astype(int) - ref).max() <= 1
