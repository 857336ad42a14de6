"""Temporal propagation with Lucas–Kanade flow: follows motion, stops at video boundaries, no mutation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from animalpose.adapt.temporal import FlowParams, chain_order, propagate, refine_sequence

SHIFT = np.array([3.0, 2.0])  # pixels per frame (dx, dy)


def _texture(size: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    blurred = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 6.0)
    blurred = (blurred - blurred.min()) / (blurred.max() - blurred.min())  # contrast-stretched blobs
    return (blurred * 255).astype(np.uint8)


def _shifted(base: np.ndarray, offset: np.ndarray) -> np.ndarray:
    m = np.array([[1, 0, offset[0]], [0, 1, offset[1]]], dtype=np.float64)
    return cv2.warpAffine(base, m, base.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _clip(n: int, seed: int = 0) -> list[np.ndarray]:
    base = _texture(seed=seed)
    return [_shifted(base, t * SHIFT) for t in range(n)]


P0 = np.array([[40.0, 50.0], [64.0, 64.0], [80.0, 45.0]], dtype=np.float32)


def test_propagate_follows_translation_and_applies_ratio_rule():
    frames = _clip(2)
    cur_xy = P0 + 30.0  # wrong current predictions
    cur_conf = np.array([0.1, 0.85, 0.1])  # joint 1: 0.85 / 0.9 = 0.94 >= 0.9 -> kept
    step = propagate(frames[0], frames[1], P0, np.array([0.9, 0.9, 0.0]), cur_xy, cur_conf)
    np.testing.assert_allclose(step.flow_xy[:2], P0[:2] + SHIFT, atol=0.3)
    np.testing.assert_array_equal(step.replaced, [True, False, False])  # joint 2: previous conf 0
    np.testing.assert_allclose(step.xy[0], P0[0] + SHIFT, atol=0.3)
    np.testing.assert_allclose(step.xy[1:], cur_xy[1:])
    np.testing.assert_allclose(step.conf, [0.9 * 0.9, 0.85, 0.1])
    np.testing.assert_allclose(step.flow_conf, [0.9, 0.9, 0.0])


def test_jump_over_15px_gives_zero_flow_confidence():
    base = _texture()
    far = _shifted(base, np.array([12.0, 12.0]))  # |d| = 17 px > 15 px, trackable with 2 pyramid levels
    step = propagate(base, far, P0[1:2], np.array([0.9]), P0[1:2], np.array([0.05]))
    assert np.linalg.norm(step.flow_xy[0] - P0[1]) > 15.0
    assert step.flow_conf[0] == 0.0 and not step.replaced[0]
    assert step.conf[0] == pytest.approx(0.05)


def test_sequence_follows_clip_and_is_cut_at_video_boundary():
    n = 5
    clip_a, clip_b = _clip(n, seed=1), _clip(n, seed=2)
    frames = clip_a + clip_b
    video_ids = ["a"] * n + ["b"] * n
    frame_idx = list(range(n)) * 2
    xy = np.repeat(P0[None] + 25.0, 2 * n, axis=0)  # every prediction wrong ...
    conf = np.full((2 * n, 3), 0.05)
    xy[0], conf[0] = P0, 0.95  # ... except frame 0 of video a
    xy[n], conf[n] = P0 + 5.0, 0.05  # video b starts with a low-confidence, different prediction
    xy_in, conf_in = xy.copy(), conf.copy()
    res = refine_sequence(xy, conf, video_ids, frame_idx, lambda i: frames[i])
    for t in range(1, n):
        np.testing.assert_allclose(res.xy[t], P0 + t * SHIFT, atol=0.5)
        np.testing.assert_allclose(res.conf[t], 0.95 * 0.9**t, rtol=1e-9)
        assert res.replaced[t].all()
    # video b's first frame has no predecessor: untouched even though it follows a's last frame
    assert res.predecessor[n] == -1
    np.testing.assert_array_equal(res.xy[n], xy_in[n])
    np.testing.assert_array_equal(res.conf[n], conf_in[n])
    assert np.isnan(res.flow_conf[n]).all() and not res.replaced[n].any()
    # inputs (including every previous frame's confidences) are not mutated
    np.testing.assert_array_equal(xy, xy_in)
    np.testing.assert_array_equal(conf, conf_in)


def test_previous_frame_confidence_not_mutated_by_propagate():
    frames = _clip(2)
    prev_conf = np.array([0.9, 0.9, 0.9])
    far_xy = P0.copy()
    prev_keep = prev_conf.copy()
    propagate(frames[0], frames[1], far_xy, prev_conf, P0, np.zeros(3))
    np.testing.assert_array_equal(prev_conf, prev_keep)
    np.testing.assert_array_equal(far_xy, P0)


def test_chain_order_sorts_frames_and_respects_gaps_and_tracks():
    vids = ["v", "v", "v", "w", "v", None, "v"]
    fidx = [2, 0, 1, 3, 5, 6, 6]
    pred = chain_order(vids, fidx)
    # v: frames 0 (i1), 1 (i2), 2 (i0), 5 (i4, gap 3 -> cut), 6 (i6)
    np.testing.assert_array_equal(pred, [2, -1, 1, -1, -1, -1, 4])
    assert chain_order(vids, fidx, max_gap=3)[4] == 0
    tracks = [0, 0, 1, 0, 0, 0, 0]
    assert chain_order(vids, fidx, tracks)[0] == -1  # frame 1 belongs to another track


def test_flow_params_reference_defaults():
    p = FlowParams()
    kw = p.lk_kwargs()
    assert kw["winSize"] == (15, 15) and kw["maxLevel"] == 2
    assert kw["criteria"][1:] == (10, 0.03)
    assert p.max_jump == 15.0 and p.ratio == 0.9
