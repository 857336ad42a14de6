"""Equivariance/invariance aggregation: exact inverse warps, peak recovery, flip joint swap, scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from animalpose.adapt.pseudolabel import ConsistencyConfig, consistency_predict, gaussian_blur, view_params
from animalpose.codecs import build_codec
from animalpose.data.consistency import BatchedGeometric, GeometricParams
from animalpose.errors import ConfigError

SIZE, HM = 64, 16
STRIDE = SIZE // HM


def _gaussians(h: int, w: int, centers: list[tuple[float, float]], sigma: float) -> torch.Tensor:
    """(K, h, w) Gaussian maps peaking at the given (x, y) pixel centres."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    return torch.stack([torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y in centers])


def _blob_images(centers_px: list[tuple[float, float]], amplitude: float = 1.0) -> torch.Tensor:
    """(1, 3, SIZE, SIZE): joint k is a Gaussian blob (σ = 5 px) in colour channel k."""
    img = torch.zeros(1, 3, SIZE, SIZE)
    img[0, : len(centers_px)] = amplitude * _gaussians(SIZE, SIZE, centers_px, 5.0)
    return img


def _standard_model(x: torch.Tensor, k: int = 2) -> torch.Tensor:
    """Joint j's heatmap = colour channel j sampled at input pixel STRIDE·i: exactly the standard
    codec's grid (x_hm = x_in · w / W), so it follows any warp of the input."""
    return x[:, :k, ::STRIDE, ::STRIDE]


def _udp_model(x: torch.Tensor, k: int = 2) -> torch.Tensor:
    """The same on the UDP grid (x_hm = x_in · (w - 1) / (W - 1))."""
    return F.interpolate(x[:, :k], size=(HM, HM), mode="bilinear", align_corners=True)


CENTERS = [(24.0, 28.0), (40.0, 34.0)]  # input pixels, well inside the crop


@pytest.mark.parametrize(("angle", "scale"), [(35.0, 1.0), (-50.0, 0.8), (20.0, 1.2), (0.0, 0.75)])
def test_hand_built_heatmap_peak_recovered_after_rotation_and_scale(angle, scale):
    codec = build_codec("gaussian", SIZE, HM, sigma=1.5)
    centers_hm = np.array(CENTERS) / STRIDE
    hm = _gaussians(HM, HM, [tuple(c) for c in centers_hm], 1.5)[None]  # (1, K, h, w)
    params = GeometricParams(np.array([scale]), np.array([angle]), np.array([False]))
    geo = BatchedGeometric(params, codec.input_size, codec.heatmap_size)
    # the map as the network would see it in the transformed view: warp with the heatmap matrix
    view = BatchedGeometric._warp(hm[None], geo.heatmap_matrices, codec.heatmap_size)
    view_xy, _ = codec.decode(view[0])
    expected_view = geo.keypoints_to_transformed(np.array(CENTERS)[None])[0]
    np.testing.assert_allclose(view_xy[0], expected_view[0], atol=0.3 * STRIDE)
    back = geo.heatmaps_to_original(view)[0]
    got, _ = codec.decode(back)
    np.testing.assert_allclose(got[0], CENTERS, atol=0.3 * STRIDE)


@pytest.mark.parametrize(("kind", "model"), [("gaussian", _standard_model), ("udp", _udp_model)])
def test_equivariance_aggregation_recovers_peak_of_equivariant_model(kind, model):
    codec = build_codec(kind, SIZE, HM, sigma=1.5)
    img = _blob_images(CENTERS)
    cfg = ConsistencyConfig(num_geometric=6, invariance=False)
    out = consistency_predict(model, img, cfg, codec, np.random.default_rng(3))
    assert out.view_kind == ["identity"] + ["geometric"] * 6
    assert np.abs(out.params.rotation[1:]).max() > 10.0  # the views really were rotated
    assert np.abs(out.params.scale[1:] - 1.0).max() > 0.05  # ... and scaled
    np.testing.assert_allclose(out.coords[0], CENTERS, atol=0.3 * STRIDE)
    # each view's own peak, mapped back exactly, lands on the same joint (within heatmap quantisation)
    assert (out.components["spread_geo"] < 0.75 * STRIDE).all()
    assert (out.components["agree_geo"] > 0.9).all()
    assert out.heatmaps.shape == (1, 2, HM, HM)


def test_flip_view_swaps_left_right_joints():
    codec = build_codec("gaussian", SIZE, HM, sigma=1.5)

    def anatomical(x):
        """joint 0 = blob in the left half, joint 1 = blob in the right half (same colour)."""
        hm = x[:, :1, ::STRIDE, ::STRIDE]
        left, right = hm.clone(), hm.clone()
        left[..., HM // 2:] = 0
        right[..., : HM // 2] = 0
        return torch.cat([left, right], 1)

    centers = [(16.0, 20.0), (44.0, 36.0)]
    blobs = _blob_images(centers)
    img = torch.zeros_like(blobs)
    img[:, 0] = blobs[:, 0] + blobs[:, 1]
    cfg = ConsistencyConfig(num_geometric=0, flip=True, invariance=False)
    out = consistency_predict(anatomical, img, cfg, codec, flip_permutation=np.array([1, 0]))
    assert out.view_kind == ["identity", "flip"]
    # the flip of a 64-px crop maps pixel x to 63 - x; the standard grid samples even pixels, so the
    # flipped view's peak is within a heatmap pixel of the true one
    np.testing.assert_allclose(out.view_coords[1, 0], centers, atol=STRIDE)
    np.testing.assert_allclose(out.coords[0], centers, atol=0.3 * STRIDE)
    # without the swap the flipped view would put joint 0 on joint 1's place: the swap matters
    bad = consistency_predict(anatomical, img, cfg, codec, flip_permutation=np.array([0, 1]))
    assert (bad.components["spread_geo"] > 5.0).all()
    with pytest.raises(ConfigError):
        consistency_predict(anatomical, img, cfg, codec)


def test_invariance_views_keep_geometry_and_disagreement_lowers_confidence():
    codec = build_codec("gaussian", SIZE, HM, sigma=1.5)
    img = _blob_images(CENTERS, amplitude=0.5)
    cfg = ConsistencyConfig(num_geometric=0, num_photometric=4, confidence="peak_agreement")
    out = consistency_predict(_standard_model, img, cfg, codec, np.random.default_rng(0))
    assert out.view_kind == ["identity"] + ["photometric"] * 4
    assert (out.components["spread_photo"] < 0.75 * STRIDE).all()

    gen = torch.Generator().manual_seed(1)

    def fickle(x):  # appearance-dependent noise dominates the maps
        return _standard_model(x) * 0.2 + torch.rand(x.shape[0], 2, HM, HM, generator=gen)

    bad = consistency_predict(fickle, img, cfg, codec, np.random.default_rng(0))
    assert bad.components["agree_photo"].mean() < 0.5 * out.components["agree_photo"].mean()
    assert bad.confidence.mean() < out.confidence.mean()


def test_confidence_modes_and_components():
    codec = build_codec("gaussian", SIZE, HM, sigma=1.5)
    img = _blob_images(CENTERS, amplitude=0.5)
    ref = consistency_predict(_standard_model, img, ConsistencyConfig(), codec)  # default: the reference
    np.testing.assert_array_equal(ref.confidence, ref.components["peak"])
    comb = consistency_predict(_standard_model, img, ConsistencyConfig(confidence="peak_agreement"), codec)
    c = comb.components
    np.testing.assert_allclose(comb.confidence, c["peak"] * c["agree_geo"] * c["agree_photo"], rtol=1e-6)
    assert set(c) == {"peak", "peak_geo", "peak_photo", "spread_geo", "spread_photo", "agree_geo",
                      "agree_photo", "peak_std"}
    for v in c.values():
        assert v.shape == (1, 2)
    # agreement σ is 2 heatmap pixels = 2 × STRIDE input pixels
    sig = 2.0 * STRIDE
    np.testing.assert_allclose(np.exp(-(c["spread_geo"] ** 2) / (2 * sig**2)), c["agree_geo"], rtol=1e-5)
    with pytest.raises(ConfigError):
        ConsistencyConfig(confidence="mean")


def test_label_point_moves_the_label_not_the_confidence():
    """mean_heatmap (the reference) decodes the views' averaged heatmap; median_views takes the per-coordinate median
    of the views' own points mapped back; identity the untransformed view's point, which is the plain decode of the
    model's heatmap. The peak (the confidence) is the averaged heatmap's in all three; the spreads are measured
    about the chosen point. A view that disagrees moves the mean label and not the median."""
    codec = build_codec("gaussian", SIZE, HM, sigma=1.5)
    img = _blob_images(CENTERS, amplitude=0.5)
    gen = torch.Generator().manual_seed(4)

    def noisy(x):  # every view sees the blobs, plus its own random clutter
        return _standard_model(x) + 0.45 * torch.rand(x.shape[0], 2, HM, HM, generator=gen)

    outs = {}
    for point in ("mean_heatmap", "median_views", "identity"):
        gen.manual_seed(4)
        cfg = ConsistencyConfig(num_geometric=4, scale_sigma=0.1, rotation_sigma=10.0, num_photometric=2,
                                label_point=point)
        outs[point] = consistency_predict(noisy, img, cfg, codec, np.random.default_rng(7))
    ref, med, ident = outs["mean_heatmap"], outs["median_views"], outs["identity"]
    np.testing.assert_array_equal(ref.view_coords, med.view_coords)  # the same views, the same maps
    np.testing.assert_allclose(med.coords, np.median(med.view_coords, axis=0), atol=1e-5)
    np.testing.assert_allclose(ident.coords, ident.view_coords[0], atol=1e-5)
    gen.manual_seed(4)
    plain, _ = codec.decode(noisy(img))  # the identity view is the first the model sees
    np.testing.assert_allclose(ident.coords, plain, atol=1e-4)
    for out in (med, ident):
        np.testing.assert_array_equal(out.confidence, ref.confidence)
        np.testing.assert_array_equal(out.components["peak"], ref.components["peak"])
        spread = np.sqrt(((out.view_coords[:5] - out.coords[None]) ** 2).sum(-1).mean(0))  # identity + 4 views
        np.testing.assert_allclose(out.components["spread_geo"], spread, rtol=1e-5)
    assert not np.allclose(ref.coords, med.coords)  # the clutter makes the choice matter

    # one view far off: the median stays with the other views, the averaged map's maximum does not
    far = torch.zeros(1, 2, HM, HM)
    far[0, :, 1, 1] = 3.0  # a strong peak in the corner

    def one_view_off(x):  # all views in one call (max_batch 64)
        out = _standard_model(x)
        return torch.cat([out[:-1], far.expand(1, 2, HM, HM)], 0)  # the last view (a photometric one)

    cfg = dict(num_geometric=2, scale_sigma=0.05, rotation_sigma=3.0, num_photometric=2)
    mean_out = consistency_predict(one_view_off, img, ConsistencyConfig(**cfg), codec, np.random.default_rng(1))
    med_out = consistency_predict(one_view_off, img, ConsistencyConfig(label_point="median_views", **cfg), codec,
                                  np.random.default_rng(1))
    assert np.linalg.norm(mean_out.coords[0] - np.array(CENTERS), axis=-1).min() > 10  # pulled to the corner
    np.testing.assert_allclose(med_out.coords[0], CENTERS, atol=0.5 * STRIDE)
    with pytest.raises(ConfigError, match="label_point"):
        ConsistencyConfig(label_point="mode")
    from animalpose.adapt.ccssl import CCSSLSection

    assert CCSSLSection(label_point="identity").consistency("cpu").label_point == "identity"


def test_reference_view_distribution_and_identity_first():
    p = view_params(ConsistencyConfig(num_geometric=2000), np.random.default_rng(0))
    assert p.scale[0] == 1.0 and p.rotation[0] == 0.0 and not p.flip.any()
    s, r = p.scale[1:], p.rotation[1:]
    assert s.min() == pytest.approx(0.75) and s.max() == pytest.approx(1.25)  # clamp(N(1, .25), .75, 1.25)
    assert r.min() == pytest.approx(-60.0) and r.max() == pytest.approx(60.0)  # clamp(N(0, 30°), ±60°)
    assert abs(np.median(s) - 1.0) < 0.03 and abs(np.median(r)) < 3.0
    pf = view_params(ConsistencyConfig(num_geometric=1, flip=True), np.random.default_rng(0))
    np.testing.assert_array_equal(pf.flip, [False, False, True])


def test_same_seed_same_pseudolabels():
    codec = build_codec("gaussian", SIZE, HM, sigma=1.5)
    img = _blob_images(CENTERS, amplitude=0.5)
    a = consistency_predict(_standard_model, img, ConsistencyConfig(), codec, np.random.default_rng(7))
    b = consistency_predict(_standard_model, img, ConsistencyConfig(), codec, np.random.default_rng(7))
    np.testing.assert_array_equal(a.heatmaps, b.heatmaps)


def test_view_chunk_size_changes_calls_not_pseudolabels():
    """``max_batch`` only splits the views × images into forward passes (the device-dependent
    ``ccssl.view_batch``): the same heatmaps whatever the chunk, and chunks of at most ``max_batch``."""
    codec = build_codec("gaussian", SIZE, HM, sigma=1.5)
    img = torch.cat([_blob_images(CENTERS), _blob_images(CENTERS[::-1], amplitude=0.7)])  # 2 images × 7 views
    out, calls = {}, {}
    for chunk in (1, 3, 8, 64):
        seen = []

        def model(x, seen=seen):
            seen.append(x.shape[0])
            return _standard_model(x)

        out[chunk] = consistency_predict(model, img, ConsistencyConfig(max_batch=chunk), codec,
                                         np.random.default_rng(3))
        calls[chunk] = seen
    assert calls[64] == [14] and calls[8] == [8, 6] and calls[3] == [3, 3, 3, 3, 2] and len(calls[1]) == 14
    for chunk in (1, 3, 8):
        np.testing.assert_allclose(out[chunk].heatmaps, out[64].heatmaps, atol=1e-6)
        np.testing.assert_allclose(out[chunk].coords, out[64].coords, atol=1e-5)
        np.testing.assert_allclose(out[chunk].confidence, out[64].confidence, atol=1e-6)


def test_gaussian_blur_keeps_mass_and_identity_at_zero():
    x = torch.zeros(2, 1, 1, 9, 9)
    x[:, :, :, 4, 4] = 1.0
    y = gaussian_blur(x, [0.0, 1.0])
    torch.testing.assert_close(y[0], x[0])
    assert y[1].sum().item() == pytest.approx(1.0, abs=1e-5)
    assert y[1, 0, 0, 4, 4] < 0.2 and y[1, 0, 0].argmax().item() == 4 * 9 + 4


def test_fast_views_give_the_labels_of_the_plain_network_one_view_at_a_time(capsys):
    """The pseudo-labelling forward (BN folded, channels-last, all views batched) against the plain network
    run one view at a time: the same labels within float rounding, and the fast path really ran."""
    from animalpose.adapt.pseudolabel import view_model
    from animalpose.models.factory import build_model

    torch.manual_seed(0)
    net = build_model("hourglass1", 4, num_feats=8, stem_channels=8)
    with torch.no_grad():  # running statistics far from (0, 1), so that folding them changes the weights
        for _ in range(3):
            net.train()(torch.rand(4, 3, SIZE, SIZE) * 3 + 1)
    codec = build_codec("gaussian", SIZE, HM, sigma=1.5)
    img = torch.rand(3, 3, SIZE, SIZE)
    plain = consistency_predict(view_model(net, fast=False), img, ConsistencyConfig(max_batch=1), codec,
                                np.random.default_rng(5))
    fast = consistency_predict(view_model(net, fast=True), img, ConsistencyConfig(max_batch=7 * 3), codec,
                               np.random.default_rng(5))
    assert "without BN folding" not in capsys.readouterr().err
    assert fast.heatmaps.shape == (3, 4, HM, HM)
    np.testing.assert_allclose(fast.heatmaps, plain.heatmaps, atol=1e-5 * np.abs(plain.heatmaps).max())
    np.testing.assert_allclose(fast.coords, plain.coords, atol=1e-3)
    np.testing.assert_allclose(fast.confidence, plain.confidence, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fast.view_coords, plain.view_coords, atol=1e-3)
    assert net.training is False  # view_model leaves the network in eval mode, as label_records did
