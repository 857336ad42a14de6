"""Heatmap codecs: hand-computed targets, weights, and sub-pixel round trips of every codec."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from animalpose.codecs import Codec, build_codec
from animalpose.codecs.base import quarter_offset, render_gaussians
from animalpose.codecs.dark import default_blur_kernel, taylor_refine
from animalpose.errors import ConfigError


def _subpixel_keypoints(n=64, lo=24.0, hi=232.0, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(lo, hi, (n, 2)), np.full((n, 1), 2.0)], 1)


def test_msra_target_peak_radius_and_values():
    codec = build_codec("gaussian", 256, 64, sigma=2.0)
    kp = np.array([[41.0, 81.0, 2.0]])  # /4 = (10.25, 20.25) -> snapped to (10, 20)
    hm, w = codec.encode(kp)
    assert hm.shape == (1, 64, 64) and hm.dtype == np.float32 and w.tolist() == [1.0]
    assert hm[0, 20, 10] == 1.0 and hm.max() == 1.0
    assert hm[0, 20, 11] == pytest.approx(math.exp(-1 / 8))
    assert hm[0, 21, 11] == pytest.approx(math.exp(-2 / 8))
    assert hm[0, 20, 16] == pytest.approx(math.exp(-36 / 8))  # radius 3σ = 6 still drawn
    assert hm[0, 20, 17] == 0.0 and hm[0, 27, 10] == 0.0  # beyond the radius: zero
    assert isinstance(codec, Codec)


def test_target_weights_are_visibility_and_crop_aware():
    codec = build_codec("dark", 256, 64, 2.0)
    kp = np.array([[100, 100, 2], [100, 100, 1], [100, 100, 0], [-10, 100, 2], [100, 258, 2], [255, 0, 2]], float)
    hm, w = codec.encode(kp)
    assert w.tolist() == [1, 1, 0, 0, 0, 1]
    assert hm[2].max() == 0 and hm[3].max() == 0 and hm[4].max() == 0


@pytest.mark.parametrize("kind", ["gaussian", "dark", "udp", "soft_argmax"])
def test_round_trip_subpixel(kind):
    codec = build_codec(kind, 256, 64, 2.0)
    kp = _subpixel_keypoints()
    hm, _ = codec.encode(kp)
    coords, maxvals = codec.decode(hm[None])
    err = np.abs(coords[0] - kp[:, :2]).max()
    if kind in ("dark", "udp"):
        assert err < 0.05  # input pixels, noiseless targets
    else:
        assert err / 4 <= 0.5  # heatmap pixels (the integer snap loses up to half a pixel)
    assert coords.shape == (1, 64, 2) and maxvals.shape == (1, 64)
    assert maxvals.min() > 0.8


def test_round_trip_non_square_and_torch_input():
    for kind in ("dark", "udp"):
        codec = build_codec(kind, (192, 256), (48, 64), 2.0)
        kp = _subpixel_keypoints(lo=20, hi=170)
        hm, _ = codec.encode(kp)
        coords, _ = codec.decode(torch.from_numpy(hm[None]))
        assert np.abs(coords[0] - kp[:, :2]).max() < 0.05


def test_dark_beats_argmax_on_the_same_targets():
    kp = _subpixel_keypoints(seed=4)
    dark = build_codec("dark", 256, 64, 2.0)
    hm, _ = dark.encode(kp)
    e_dark = np.abs(dark.decode(hm[None])[0][0] - kp[:, :2]).mean()
    e_arg = np.abs(build_codec("gaussian", 256, 64, 2.0).decode(hm[None])[0][0] - kp[:, :2]).mean()
    assert e_dark < 0.05 < 0.2 < e_arg


def test_udp_grid_maps_end_pixels_to_end_pixels():
    codec = build_codec("udp", 256, 64, 2.0)
    np.testing.assert_allclose(codec.to_heatmap(np.array([[0.0, 255.0]])), [[0.0, 63.0]])
    std = build_codec("gaussian", 256, 64, 2.0)
    np.testing.assert_allclose(std.to_heatmap(np.array([[0.0, 255.0]])), [[0.0, 63.75]])


def test_quarter_offset_moves_towards_larger_neighbour():
    hm = np.zeros((1, 2, 5, 5), np.float32)
    hm[0, 0, 2, 2], hm[0, 0, 2, 3], hm[0, 0, 1, 2] = 1.0, 0.5, 0.2  # right and up are larger
    hm[0, 1, 0, 4] = 1.0  # on the border: untouched
    out = quarter_offset(hm, np.array([[[2.0, 2.0], [4.0, 0.0]]], np.float32))
    np.testing.assert_allclose(out, [[[2.25, 1.75], [4.0, 0.0]]])


def test_taylor_step_is_exact_on_full_gaussian():
    centers = np.array([[10.3, 12.8], [20.71, 5.49]])
    hm = render_gaussians(centers, (32, 24), 2.0, radius=-1)[None]
    peaks = np.floor(centers + 0.5)[None]
    np.testing.assert_allclose(taylor_refine(hm, peaks)[0], centers, atol=1e-4)
    assert default_blur_kernel(2.0) == 11 and default_blur_kernel(3.0) == 17


def test_beta_soft_argmax_equals_hand_computed_expectation():
    # With β = 1 and heatmap = log(weights), softmax = weights / sum: 1/4 at (x=0, y=0), 3/4 at (x=2, y=1).
    hm = np.full((1, 1, 3, 4), -1e4, np.float32)
    hm[0, 0, 0, 0] = math.log(1.0)
    hm[0, 0, 1, 2] = math.log(3.0)
    codec = build_codec("soft_argmax", (4, 3), (4, 3), beta=1.0)
    coords, maxvals = codec.decode(hm)
    np.testing.assert_allclose(coords[0, 0], [0.25 * 0 + 0.75 * 2, 0.25 * 0 + 0.75 * 1], atol=1e-6)
    assert maxvals[0, 0] == pytest.approx(math.log(3.0))
    # β scales the logits: β = 2 on log(w)/2 gives the same distribution.
    codec2 = build_codec("soft_argmax", (4, 3), (4, 3), beta=2.0)
    np.testing.assert_allclose(codec2.decode(hm / 2)[0][0, 0], [1.5, 0.75], atol=1e-6)
    # Input-pixel scaling: a 2x larger input doubles the coordinates.
    codec3 = build_codec("soft_argmax", (8, 6), (4, 3), beta=1.0)
    np.testing.assert_allclose(codec3.decode(hm)[0][0, 0], [3.0, 1.5], atol=1e-6)


def test_soft_argmax_decode_is_differentiable():
    codec = build_codec("soft_argmax", 64, 16, 1.0, beta=10.0)
    hm = torch.zeros(1, 1, 16, 16, requires_grad=True)
    coords, _ = codec.decode_torch(hm)
    coords.sum().backward()
    assert hm.grad is not None and torch.isfinite(hm.grad).all()


def test_build_codec_rejects_bad_config():
    with pytest.raises(ConfigError, match="kind"):
        build_codec("nope", 256, 64)
    with pytest.raises(ConfigError, match="sigma"):
        build_codec("dark", 256, 64, sigma=0)
    with pytest.raises(ConfigError, match="input_size"):
        build_codec("dark", (256,), 64)
    with pytest.raises(ConfigError, match="blur_kernel"):
        build_codec("udp", 256, 64, blur_kernel=4)
