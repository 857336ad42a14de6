"""Batched invertible transforms: warp -> inverse recovers keypoints and heatmap peaks exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from animalpose.codecs import build_codec
from animalpose.data.consistency import (
    BatchedGeometric,
    GeometricParams,
    apply_photometric,
    sample_geometric,
    sample_photometric,
)
from animalpose.data.dataset import IMAGENET_MEAN, IMAGENET_STD
from animalpose.keypoints import load_schema

TIGDOG = load_schema("tigdog")


def _keypoints(n, j, rng, lo, hi):
    return np.concatenate([rng.uniform(lo, hi, (n, j, 2)), np.full((n, j, 1), 2.0)], -1)


def test_sampled_parameters_follow_ccssl_ranges():
    p = sample_geometric(4000, np.random.default_rng(0))
    assert p.scale.min() >= 0.75 and p.scale.max() <= 1.25
    assert np.abs(p.rotation).max() <= 60
    assert abs(p.flip.mean() - 0.5) < 0.03
    assert abs(np.std(p.rotation) - 30) < 4  # clamping at 2σ shrinks the std a little
    assert not sample_geometric(50, np.random.default_rng(0), flip=False).flip.any()


@pytest.mark.parametrize("udp", [False, True])
def test_keypoints_round_trip(udp):
    rng = np.random.default_rng(1)
    geo = BatchedGeometric(sample_geometric(6, rng), (128, 96), (32, 24), TIGDOG.flip_permutation(), udp)
    kp = _keypoints(3, 18, rng, 10, 90)
    fwd = geo.keypoints_to_transformed(kp)
    assert fwd.shape == (6, 3, 18, 3)
    back = geo.keypoints_to_original(fwd)
    np.testing.assert_allclose(back, np.broadcast_to(kp, back.shape), atol=1e-6)


def test_warped_images_carry_content_to_transformed_keypoints():
    rng = np.random.default_rng(2)
    params = GeometricParams(np.array([1.2, 0.8, 1.0]), np.array([25.0, -40.0, 0.0]), np.array([False, True, True]))
    geo = BatchedGeometric(params, (64, 64), (16, 16), TIGDOG.flip_permutation())
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    kp = np.zeros((2, 18, 3))
    kp[:, :, :2] = 32
    kp[:, 0, :2] = rng.uniform(24, 40, (2, 2))  # L_Eye
    blobs = torch.stack([torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 8.0) for x, y in kp[:, 0, :2]])
    images = blobs[:, None].expand(2, 3, 64, 64)
    out = geo.warp_images(images)
    assert out.shape == (3, 2, 3, 64, 64)
    fwd = geo.keypoints_to_transformed(kp)
    r_eye = TIGDOG.index("R_Eye")
    for k, flipped in enumerate(params.flip):
        for n in range(2):
            g = out[k, n, 0].numpy()
            g = np.where(g > 0.5 * g.max(), g, 0)
            found = np.array([(g * xs.numpy()).sum() / g.sum(), (g * ys.numpy()).sum() / g.sum()])
            joint = r_eye if flipped else 0  # the L_Eye dot is the R_Eye of a flipped image
            assert np.linalg.norm(found - fwd[k, n, joint, :2]) < 0.3


@pytest.mark.parametrize("udp", [False, True])
def test_heatmaps_warp_then_inverse_recovers_peaks(udp):
    """Predicted heatmaps on transformed crops, mapped back, peak where the original keypoints are."""
    rng = np.random.default_rng(3)
    input_size, hm_size = (256, 256), (64, 64)
    codec = build_codec("udp" if udp else "dark", input_size, hm_size, 2.0)
    geo = BatchedGeometric(sample_geometric(5, rng), input_size, hm_size, TIGDOG.flip_permutation(), udp)
    kp = _keypoints(2, 18, rng, 88, 168)  # central, so every transform keeps them on the map
    fwd = geo.keypoints_to_transformed(kp)
    # What a perfect model would predict on each transformed crop.
    pred = np.stack([np.stack([codec.encode(fwd[k, n])[0] for n in range(2)]) for k in range(len(geo))])
    back = geo.heatmaps_to_original(torch.from_numpy(pred))
    assert back.shape == (5, 2, 18, 64, 64)
    coords, _ = codec.decode(back.reshape(10, 18, 64, 64).numpy())
    err_hm = np.abs(codec.to_heatmap(coords.reshape(5, 2, 18, 2)) - codec.to_heatmap(kp[None, :, :, :2]))
    assert err_hm.max() < 0.25


def test_photometric_batch_shapes_identity_and_normalisation():
    rng = np.random.default_rng(4)
    x = torch.rand(2, 3, 8, 8)
    params = sample_photometric(3, rng)
    out = apply_photometric(x, params, seed=1)
    assert out.shape == (3, 2, 3, 8, 8) and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out[0], out[1])
    ident = type(params)(np.ones((1, 3)), np.zeros(1), np.ones(1), np.zeros(1))
    torch.testing.assert_close(apply_photometric(x, ident)[0], x)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    xn = (x - mean) / std
    torch.testing.assert_close(apply_photometric(xn, ident, IMAGENET_MEAN, IMAGENET_STD)[0], xn, atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(apply_photometric(x, params, seed=7), apply_photometric(x, params, seed=7))


def test_flip_without_permutation_is_refused():
    params = GeometricParams(np.ones(1), np.zeros(1), np.array([True]))
    with pytest.raises(ValueError, match="permutation"):
        BatchedGeometric(params, (64, 64), (16, 16), None)
