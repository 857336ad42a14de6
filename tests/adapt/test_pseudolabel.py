"""Equivariance/invariance aggregation: exact inverse warps, peak recovery, flip joint swap, scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from animalpose.adapt.pseudolabel import (
    ConsistencyConfig,
    argmax_decode,
    consistency_predict,
    photometric,
    similarity_matrices,
    transform_points,
    warp,
)
from animalpose.errors import ConfigError

STRIDE = 4


def _gaussian_maps(h: int, w: int, centers: list[tuple[float, float]], sigma: float = 1.5) -> torch.Tensor:
    """(1, K, h, w) Gaussian maps peaking at the given (x, y) pixel centres."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    maps = [torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y in centers]
    return torch.stack(maps)[None]


def _blob_images(centers_px: list[tuple[float, float]], size: int = 64) -> torch.Tensor:
    """(1, 3, size, size): joint k is a Gaussian blob in colour channel k (k < 3)."""
    maps = _gaussian_maps(size, size, centers_px, sigma=2.5 * STRIDE / 2)[0]
    img = torch.zeros(1, 3, size, size)
    img[0, : len(centers_px)] = maps
    return img


def _equivariant_model(x: torch.Tensor, k: int = 2) -> torch.Tensor:
    """Heatmap of joint j = the image's colour channel j pooled by the stride: follows any warp."""
    return F.avg_pool2d(x[:, :k], STRIDE)


def test_similarity_matrix_rotates_pixel_points_about_the_centre():
    h = w = 16
    m = similarity_matrices(torch.tensor([90.0]), torch.tensor([1.0]), torch.tensor([False]), h, w)
    # centre of a 16-px map is 7.5; a point 4 px right of it goes 4 px up (y down) under +90°
    p = torch.tensor([[[11.5, 7.5]]], dtype=torch.float64)
    np.testing.assert_allclose(transform_points(p, m, h, w)[0, 0].numpy(), [7.5, 3.5], atol=1e-9)
    m2 = similarity_matrices(torch.tensor([0.0]), torch.tensor([2.0]), torch.tensor([True]), 8, 12)
    q = transform_points(torch.tensor([[[6.5, 4.5]]], dtype=torch.float64), m2, 8, 12)
    np.testing.assert_allclose(q[0, 0].numpy(), [5.5 - 2 * 1.0, 3.5 + 2 * 1.0], atol=1e-9)


@pytest.mark.parametrize(("angle", "scale"), [(35.0, 1.0), (-50.0, 0.8), (20.0, 1.2), (0.0, 0.75)])
def test_hand_built_heatmap_peak_recovered_after_warp_and_inverse(angle, scale):
    h = w = 32
    centers = [(12.0, 18.0), (20.0, 9.0)]
    hm = _gaussian_maps(h, w, centers)
    m = similarity_matrices(torch.tensor([angle]), torch.tensor([scale]), torch.tensor([False]), h, w)
    view = warp(hm, m)
    # the view's peak is where the matrix sends the original centre
    expected_view = transform_points(torch.tensor([centers], dtype=torch.float64), m, h, w)[0]
    got_view, _ = argmax_decode(view)
    np.testing.assert_allclose(got_view[0].numpy(), expected_view.numpy(), atol=0.8)
    back = warp(view, torch.linalg.inv(m))
    got, _ = argmax_decode(back)
    np.testing.assert_allclose(got[0].numpy(), np.array(centers), atol=0.3)


def test_equivariance_aggregation_recovers_peak_of_equivariant_model():
    size = 64
    centers_hm = [(5.0, 6.0), (10.0, 9.0)]  # in heatmap pixels (16 x 16)
    centers_px = [(STRIDE * x + (STRIDE - 1) / 2, STRIDE * y + (STRIDE - 1) / 2) for x, y in centers_hm]
    img = _blob_images(centers_px, size)
    cfg = ConsistencyConfig(num_geometric=6, invariance=False, rot_std=40.0)
    out = consistency_predict(_equivariant_model, img, cfg, torch.Generator().manual_seed(3))
    assert out.view_kind == ["identity"] + ["geometric"] * 6
    # the views really were rotated/scaled
    assert not torch.allclose(out.matrices[1:], torch.eye(3).expand_as(out.matrices[1:]))
    np.testing.assert_allclose(out.coords[0].numpy(), np.array(centers_hm), atol=0.3)
    # each view's own peak, mapped back exactly, lands on the same joint
    assert (out.components["spread_geo"] < 0.6).all()
    assert (out.components["agree_geo"] > 0.9).all()


def test_flip_view_swaps_left_right_joints():
    size = 64
    # an "anatomical" model: joint 0 = blob in the left half, joint 1 = blob in the right half
    def model(x):
        pooled = F.avg_pool2d(x[:, :1], STRIDE)
        w = pooled.shape[-1]
        left, right = pooled.clone(), pooled.clone()
        left[..., w // 2:] = 0
        right[..., : w // 2] = 0
        return torch.cat([left, right], 1)

    centers_hm = [(4.0, 5.0), (11.0, 9.0)]
    centers_px = [(STRIDE * x + 1.5, STRIDE * y + 1.5) for x, y in centers_hm]
    blobs = _blob_images(centers_px, size)
    img = torch.zeros_like(blobs)
    img[:, 0] = blobs[:, 0] + blobs[:, 1]
    cfg = ConsistencyConfig(num_geometric=0, flip=True, invariance=False)
    out = consistency_predict(model, img, cfg, flip_permutation=np.array([1, 0]))
    assert out.view_kind == ["identity", "flip"]
    np.testing.assert_allclose(out.view_coords[1, 0].numpy(), np.array(centers_hm), atol=0.3)
    np.testing.assert_allclose(out.coords[0].numpy(), np.array(centers_hm), atol=0.3)
    # without the swap the flipped view would put joint 0 on joint 1's place: check the swap matters
    out_noswap = consistency_predict(model, img, cfg, flip_permutation=np.array([0, 1]))
    assert (out_noswap.components["spread_geo"] > 2.0).all()
    with pytest.raises(ConfigError):
        consistency_predict(model, img, cfg)


def test_invariance_views_keep_geometry_and_score_agreement():
    size = 64
    centers_px = [(21.5, 25.5), (41.5, 37.5)]
    img = _blob_images(centers_px, size)
    cfg = ConsistencyConfig(num_geometric=0, num_photometric=4)
    out = consistency_predict(_equivariant_model, img, cfg, torch.Generator().manual_seed(0))
    assert out.view_kind == ["identity"] + ["photometric"] * 4
    assert (out.components["spread_photo"] < 0.6).all()

    # a model whose output depends on appearance noise disagrees with itself
    def fickle(x):
        noise_map = F.avg_pool2d(x[:, 2:3] * 0 + (x[:, :1] - F.avg_pool2d(x[:, :1], 3, 1, 1)).abs(), STRIDE)
        return torch.cat([noise_map, noise_map], 1) + torch.rand(x.shape[0], 2, size // STRIDE, size // STRIDE,
                                                                   generator=torch.Generator().manual_seed(1))
    bad = consistency_predict(fickle, img, cfg, torch.Generator().manual_seed(0))
    assert bad.components["agree_photo"].mean() < out.components["agree_photo"].mean()
    assert bad.confidence.mean() < out.confidence.mean()


def test_confidence_modes_and_components():
    img = _blob_images([(21.5, 25.5), (41.5, 37.5)])
    ref = consistency_predict(_equivariant_model, img, ConsistencyConfig(confidence="peak"))
    torch.testing.assert_close(ref.confidence, ref.components["peak"])
    comb = consistency_predict(_equivariant_model, img, ConsistencyConfig())
    expected = comb.components["peak"] * comb.components["agree_geo"] * comb.components["agree_photo"]
    torch.testing.assert_close(comb.confidence, expected)
    assert set(comb.components) == {"peak", "peak_geo", "peak_photo", "spread_geo", "spread_photo",
                                    "agree_geo", "agree_photo", "peak_std"}
    for v in comb.components.values():
        assert v.shape == (1, 2)
    with pytest.raises(ConfigError):
        ConsistencyConfig(confidence="mean")


def test_same_seed_same_pseudolabels():
    img = _blob_images([(21.5, 25.5), (41.5, 37.5)])
    a = consistency_predict(_equivariant_model, img, ConsistencyConfig(), torch.Generator().manual_seed(7))
    b = consistency_predict(_equivariant_model, img, ConsistencyConfig(), torch.Generator().manual_seed(7))
    torch.testing.assert_close(a.heatmaps, b.heatmaps)


def test_photometric_changes_appearance_only():
    img = 0.5 * _blob_images([(21.0, 25.0), (41.0, 37.0)])  # integer centres, no clipping plateau at 1
    out = photometric(img, ConsistencyConfig(noise_std=0.0), torch.Generator().manual_seed(0))
    assert out.shape == img.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, img)
    c_in, _ = argmax_decode(img[:, :2])
    c_out, _ = argmax_decode(out[:, :2])
    torch.testing.assert_close(c_in, c_out, atol=0.25, rtol=0)  # at most the quarter-pixel refinement
