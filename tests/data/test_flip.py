"""Horizontal flip: identity when applied twice, left/right joints swapped by name."""

from __future__ import annotations

import logging

import numpy as np
import torch

from animalpose.codecs import build_codec
from animalpose.data.flip import flip_heatmaps, flip_image, flip_keypoints, flip_permutation_or_none
from animalpose.keypoints import load_schema


def _tigdog_keypoints(rng):
    kp = np.concatenate([rng.uniform(0, 99, (18, 2)), np.full((18, 1), 2.0)], 1).astype(np.float32)
    return kp


def test_flip_swaps_named_joints_tigdog():
    schema = load_schema("tigdog")
    perm = flip_permutation_or_none(schema)
    kp = _tigdog_keypoints(np.random.default_rng(0))
    kp[schema.index("L_Eye"), :2] = (10, 5)
    kp[schema.index("R_Eye"), :2] = (30, 6)
    kp[schema.index("Chin"), :2] = (20, 15)
    out = flip_keypoints(kp, 100, perm)
    np.testing.assert_allclose(out[schema.index("L_Eye"), :2], (100 - 1 - 30, 6))
    np.testing.assert_allclose(out[schema.index("R_Eye"), :2], (100 - 1 - 10, 5))
    np.testing.assert_allclose(out[schema.index("Chin"), :2], (100 - 1 - 20, 15))  # unpaired: stays
    np.testing.assert_allclose(out[schema.index("R_B_Hoof"), :2], [99 - kp[schema.index("L_B_Hoof"), 0],
                                                                    kp[schema.index("L_B_Hoof"), 1]])


def test_flip_twice_is_identity():
    schema = load_schema("atrw")
    perm = flip_permutation_or_none(schema)
    rng = np.random.default_rng(1)
    kp = np.concatenate([rng.uniform(0, 63, (15, 2)), rng.integers(0, 3, (15, 1))], 1)
    np.testing.assert_allclose(flip_keypoints(flip_keypoints(kp, 64, perm), 64, perm), kp)
    img = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(flip_image(flip_image(img)), img)
    hm = rng.random((2, 15, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(flip_heatmaps(flip_heatmaps(hm, perm), perm), hm)
    t = torch.from_numpy(hm)
    assert torch.equal(flip_heatmaps(flip_heatmaps(t, perm), perm), t)
    assert torch.equal(flip_heatmaps(t, perm), torch.from_numpy(flip_heatmaps(hm, perm)))


def test_flipped_image_content_follows_flipped_keypoints():
    schema = load_schema("tigdog")
    perm = schema.flip_permutation()
    kp = np.zeros((18, 3), np.float32)
    kp[schema.index("L_Eye")] = (12, 7, 2)
    img = np.zeros((20, 40, 3), np.uint8)
    img[7, 12] = 255
    out_img, out_kp = flip_image(img), flip_keypoints(kp, 40, perm)
    y, x = np.unravel_index(out_img[..., 0].argmax(), out_img.shape[:2])
    np.testing.assert_allclose(out_kp[schema.index("R_Eye"), :2], (x, y))


def test_flipped_udp_heatmaps_equal_heatmaps_of_flipped_keypoints():
    """On the UDP grid a mirrored target is exactly the target of the mirrored keypoints."""
    schema = load_schema("tigdog")
    perm = schema.flip_permutation()
    codec = build_codec("udp", (128, 128), (32, 32), 1.0)
    kp = _tigdog_keypoints(np.random.default_rng(2)) + np.array([10, 10, 0], np.float32)
    hm, w = codec.encode(kp)
    hm_f, w_f = codec.encode(flip_keypoints(kp, 128, perm))
    np.testing.assert_allclose(flip_heatmaps(hm[None], perm)[0], hm_f, atol=1e-6)
    np.testing.assert_array_equal(w[perm], w_f)


def test_schema_without_pairs_disables_flip_and_logs_once(caplog):
    schema = load_schema("horse10")
    with caplog.at_level(logging.INFO, logger="animalpose.data.flip"):
        assert flip_permutation_or_none(schema) is None
        assert flip_permutation_or_none(schema) is None
    msgs = [r.getMessage() for r in caplog.records if "horse10" in r.getMessage()]
    assert len(msgs) <= 1  # once per process (another test may already have triggered it)
    from animalpose.data import flip as flip_mod
    assert "horse10" in flip_mod._WARNED
