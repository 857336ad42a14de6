"""Augmentation presets: distributions as published, keypoints stay attached to image content."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from animalpose.data import transforms as T
from animalpose.data.augment import (
    HourglassAugment,
    SimpleBaselineAugment,
    StrongAugment,
    augment_config,
    build_augmenter,
)
from animalpose.errors import ConfigError
from animalpose.keypoints import load_schema

TIGDOG = load_schema("tigdog")


def _decompose(matrix, flipped):
    """Scale factor (sqrt|det|) and rotation (degrees, content CCW) of a similarity source->crop matrix."""
    m = matrix[:, :2].copy()
    if flipped:
        m[0] *= -1
    return np.sqrt(abs(np.linalg.det(m))), np.degrees(np.arctan2(m[0, 1], m[0, 0]))


def test_config_defaults_overrides_and_errors():
    assert augment_config("hourglass") == HourglassAugment()
    assert augment_config("strong", shear=10).shear == 10
    assert isinstance(augment_config("hrnet"), SimpleBaselineAugment)
    assert augment_config({"preset": "simplebaseline", "scale_factor": 0.25}).scale_factor == 0.25
    with pytest.raises(ConfigError, match="bogus"):
        augment_config("strong", bogus=1)
    with pytest.raises(ConfigError, match="flip_prob"):
        augment_config("hourglass", flip_prob=1.5)
    with pytest.raises(ConfigError, match="preset"):
        augment_config("wild")


def test_hourglass_distributions():
    aug = build_augmenter("hourglass", TIGDOG, (64, 64))
    rng = np.random.default_rng(0)
    base = 64 / 200  # crop pixels per source pixel at scale 1
    scales, rots, flips = [], [], []
    for _ in range(2000):
        m, flipped, _ = aug.sample_matrix(np.zeros((18, 3)), np.array([100.0, 100.0]), np.array([1.0, 1.0]), rng)
        s, r = _decompose(m, flipped)
        scales.append(base / s)  # the sampled scale multiplier
        rots.append(r)
        flips.append(flipped)
    scales, rots, flips = np.array(scales), np.array(rots), np.array(flips)
    assert scales.min() >= 0.75 - 1e-9 and scales.max() <= 1.25 + 1e-9
    assert 0.05 < np.mean(np.isclose(scales, 0.75)) < 0.3  # clamped tail: P(N(1,.25) < .75) = 0.16
    assert np.abs(rots).max() <= 60 + 1e-6
    assert abs(np.mean(np.abs(rots) < 1e-9) - 0.4) < 0.05  # no rotation with p = 0.4
    assert abs(flips.mean() - 0.5) < 0.05


@pytest.mark.parametrize("preset", ["hourglass", "simplebaseline"])
def test_translate_shifts_the_crop_uniformly_within_its_fraction(preset):
    """With scale, rotation and flip off, the sampled matrix is the plain crop followed by a shift of
    U(-t, t) x the crop's width (x) and height (y), drawn independently; translate 0 (the default) is the plain crop."""
    fixed = ({"scale_sigma": 0.0, "rotation_prob": 0.0, "flip_prob": 0.0} if preset == "hourglass"
             else {"scale_factor": 0.0, "rotation_prob": 0.0, "flip_prob": 0.0, "half_body_prob": 0.0})
    centre, scale, size = np.array([100.0, 80.0]), np.array([1.0, 1.0]), (64, 32)
    plain = T.crop_matrix(centre, scale, size, 0.0, False)
    rng = np.random.default_rng(0)
    still, _, _ = build_augmenter(preset, TIGDOG, size, **fixed).sample_matrix(np.zeros((18, 3)), centre, scale, rng)
    np.testing.assert_allclose(still, plain)
    aug = build_augmenter(preset, TIGDOG, size, translate=0.25, **fixed)
    shifts = []
    for _ in range(2000):
        m, flipped, _ = aug.sample_matrix(np.zeros((18, 3)), centre, scale, rng)
        np.testing.assert_allclose(m[:, :2], plain[:, :2])  # a pure shift: the linear part is the crop's
        shifts.append(m[:, 2] - plain[:, 2])
        assert not flipped
    shifts = np.array(shifts) / size  # fractions of the crop
    assert np.abs(shifts).max() <= 0.25 + 1e-9
    assert np.abs(shifts).max() > 0.24  # fills the range
    np.testing.assert_allclose(shifts.std(axis=0), 0.25 / np.sqrt(3), rtol=0.06)  # U(-t, t): t / sqrt(3)
    assert abs(np.corrcoef(shifts.T)[0, 1]) < 0.06  # x and y independent


def test_simplebaseline_distributions_and_no_flip_for_horse10():
    aug = build_augmenter("simplebaseline", load_schema("horse10"), (48, 64))
    rng = np.random.default_rng(1)
    scales, rots = [], []
    for _ in range(1000):
        m, flipped, _ = aug.sample_matrix(np.zeros((22, 3)), np.array([50.0, 50.0]), np.array([0.75, 1.0]), rng)
        assert not flipped
        s, r = _decompose(m, False)
        scales.append((48 * 64 / (150 * 200)) ** 0.5 / s)
        rots.append(r)
    scales, rots = np.array(scales), np.array(rots)
    assert scales.min() >= 0.65 - 1e-9 and scales.max() <= 1.35 + 1e-9
    assert np.abs(rots).max() <= 90 + 1e-6 and np.abs(rots).max() > 45


def test_half_body_crop_on_coco():
    coco = load_schema("coco")
    aug = build_augmenter("hrnet", coco, (192, 256), half_body_prob=1.0, scale_factor=0.0, rotation_prob=0.0,
                          flip_prob=0.0)
    rng = np.random.default_rng(2)
    kp = np.concatenate([np.random.default_rng(3).uniform(0, 400, (17, 2)), np.full((17, 1), 2.0)], 1)
    upper = [coco.index(j) for j in coco.joints if any(w in j for w in ("eye", "ear", "nose", "shoulder",
                                                                          "elbow", "wrist"))]
    lower = [i for i in range(17) if i not in upper]
    centers = set()
    for _ in range(20):
        m, flipped, _ = aug.sample_matrix(kp, np.array([200.0, 200.0]), np.array([3.0, 4.0]), rng)
        assert not flipped
        src_center = T.transform_points(np.array([[96.0, 128.0]]), T.invert_affine(m))[0]  # crop centre W/2, H/2
        centers.add(tuple(np.round(src_center, 3)))
    expected = {tuple(np.round(kp[upper, :2].mean(0), 3)), tuple(np.round(kp[lower, :2].mean(0), 3))}
    assert centers <= expected and len(centers) == 2


def _blob_image(h, w, x, y, sigma=2.0):
    ys, xs = np.mgrid[0:h, 0:w]
    g = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=2)


def _find_blob(img):
    """Intensity-weighted centroid of the pixels above half the maximum of the channel mean."""
    g = img.astype(np.float64).mean(axis=2)
    g = np.where(g >= 0.5 * g.max(), g, 0.0)
    ys, xs = np.mgrid[0 : g.shape[0], 0 : g.shape[1]]
    return np.array([(g * xs).sum() / g.sum(), (g * ys).sum() / g.sum()])


@pytest.mark.parametrize("preset", ["hourglass", "strong", "simplebaseline"])
@pytest.mark.parametrize("udp", [False, True])
def test_keypoints_stay_attached_to_image_content(preset, udp):
    """Draw a dot at a joint, augment, find the dot again at the augmented joint (after its flip swap)."""
    overrides = {"noise_max": 0.0, "contrast_range": (1.0, 1.0), "translate": 0.0} if preset == "strong" else {}
    aug = build_augmenter(preset, TIGDOG, (96, 128), udp=udp, **overrides)
    perm = TIGDOG.flip_permutation()
    j = TIGDOG.index("L_Eye")
    rng = np.random.default_rng(5)
    n_flipped = 0
    for _ in range(12):
        x, y = rng.uniform(330, 370, 2)
        img = _blob_image(700, 700, x, y)  # large enough that no border enters the crop
        kp = np.zeros((18, 3), np.float32)
        kp[:, :2] = 350
        kp[j] = (x, y, 2)
        center, scale = T.box_to_center_scale((290, 290, 120, 120), 96 / 128, 1.25)
        out = aug(img, kp, center, scale, rng)
        k_out = int(np.flatnonzero(perm == j)[0]) if out.flipped else j
        n_flipped += out.flipped
        assert out.image.shape == (128, 96, 3) and out.image.dtype == np.uint8
        found = _find_blob(out.image)
        assert np.linalg.norm(found - out.keypoints[k_out, :2]) < 0.75, (found, out.keypoints[k_out])
        np.testing.assert_allclose(T.transform_points(kp[j : j + 1, :2], out.matrix)[0], out.keypoints[k_out, :2],
                                   atol=1e-4)
    assert 0 < n_flipped < 12


def test_strong_photometric_changes_pixels_but_not_shape():
    aug = build_augmenter("strong", TIGDOG, (64, 64), step_prob=1.0)
    img = cv2.resize(_blob_image(64, 64, 30, 30, 8), (64, 64))
    rng = np.random.default_rng(0)
    out = aug.photometric(img, rng)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img).mean() > 5
    same = build_augmenter("strong", TIGDOG, (64, 64), step_prob=0.0).photometric(img, rng)
    np.testing.assert_array_equal(same, img)


def test_hourglass_colour_gains_in_range():
    aug = build_augmenter("hourglass", TIGDOG, (8, 8))
    img = np.full((8, 8, 3), 100, np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(50):
        out = aug.photometric(img, rng)
        assert (out >= 79).all() and (out <= 120).all()
        assert (out == out[0, 0]).all()  # one gain per channel


def test_strong_affine_border_and_flip_composition():
    cfg = StrongAugment(step_prob=1.0, flip_prob=1.0)
    aug = build_augmenter(cfg, TIGDOG, (64, 64))
    rng = np.random.default_rng(9)
    img = np.full((100, 100, 3), 255, np.uint8)
    center, scale = T.box_to_center_scale((0, 0, 100, 100), 1.0, 2.0)  # the crop shows border all around
    out = aug(img, np.zeros((18, 3), np.float32), center, scale, rng)
    assert out.flipped
    corner = out.image[0, 0]
    assert not (corner == 0).all()  # random border colour, not black (with this seed)


def test_half_body_only_for_human_schemas_or_configured_joints():
    assert build_augmenter("hrnet", load_schema("atrw"), (64, 64)).upper_body is None
    assert build_augmenter("hrnet", load_schema("coco"), (64, 64)).upper_body.tolist() == list(range(11))
    aug = build_augmenter("hrnet", load_schema("atrw"), (64, 64), upper_body_joints=("nose", "left_ear"))
    assert aug.upper_body.tolist() == [2, 0]
