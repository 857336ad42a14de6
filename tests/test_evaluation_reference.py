"""The reference's PCK (evaluation_reference) against hand-computed values and against a re-derivation of
its rules written here with torch float32 tensors and plain loops (CC-SSL ``pose/utils/evaluation.py``
``get_preds`` / ``calc_dists`` / ``dist_acc`` / ``accuracy`` and ``evaluation/test.py``'s meter)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from animalpose.evaluation import pck_crop
from animalpose.evaluation_reference import (
    REFERENCE_TEST_BATCH,
    ReferencePCKMeter,
    pck_batch_averaged,
    reference_coords,
    reference_distances,
)


def rederived(pred: np.ndarray, gt: np.ndarray, batch: int, joints=None) -> tuple[float, np.ndarray]:
    """The reference's printed Acc and per-joint PCK, from its rules, in torch float32."""
    n_all, k, _, w = pred.shape
    js = list(range(k)) if joints is None else list(joints)
    meter_sum, meter_n = 0, 0
    score, count = np.zeros(len(js)), np.zeros(len(js))
    for s in range(0, n_all, batch):
        p, t = torch.from_numpy(pred[s:s + batch]), torch.from_numpy(gt[s:s + batch])
        b = p.shape[0]

        def coords(maps):
            out = torch.zeros(maps.shape[0], k, 2)
            for n in range(maps.shape[0]):
                for c in range(k):
                    v, i = maps[n, c].reshape(-1).max(0)
                    if v > 0:
                        out[n, c] = torch.tensor([int(i) % w + 1, int(i) // w + 1], dtype=torch.float32)
            return out

        pc, gc = coords(p), coords(t)
        norm = torch.ones(b) * w / 10
        acc = torch.zeros(len(js) + 1)
        total, cnt = 0, 0
        for i, j in enumerate(js):
            ds = [torch.dist(pc[n, j], gc[n, j]) / norm[n] for n in range(b) if gc[n, j, 0] > 1 and gc[n, j, 1] > 1]
            acc[i + 1] = sum(int(d < 0.5) for d in ds) / len(ds) if ds else -1
            if acc[i + 1] >= 0:
                total = total + acc[i + 1]
                cnt += 1
                score[i] += acc[i + 1].item()
                count[i] += 1
        if cnt:
            acc[0] = total / cnt
        meter_sum = meter_sum + acc[0] * b
        meter_n += b
    with np.errstate(invalid="ignore"):
        return float(meter_sum / meter_n), score / count


def _maps(points, size=64, empty=(), value=1.0):
    """(1, K, size, size) one-hot maps at integer 0-based (x, y); joints in ``empty`` are all zero."""
    hm = np.zeros((1, len(points), size, size), np.float32)
    for k, (x, y) in enumerate(points):
        if k not in empty:
            hm[0, k, y, x] = value
    return hm


def _gaussians(rng, n, k, size=64, p_invisible=0.2):
    """Ground-truth-like maps (sigma 1) at random integer points, some joints empty."""
    yy, xx = np.mgrid[0:size, 0:size]
    hm = np.zeros((n, k, size, size), np.float32)
    pts = rng.integers(0, size, (n, k, 2))
    for i in range(n):
        for j in range(k):
            if rng.random() >= p_invisible:
                hm[i, j] = np.exp(-((xx - pts[i, j, 0]) ** 2 + (yy - pts[i, j, 1]) ** 2) / 2)
    return hm


def _check_against_rederivation(pred, gt, batch=REFERENCE_TEST_BATCH, joints=None):
    want, want_joint = rederived(pred, gt, batch, joints)
    meter = ReferencePCKMeter(joints)
    for s in range(0, len(pred), batch):
        meter.update(pred[s:s + batch], gt[s:s + batch])
    assert meter.value == want  # bit for bit
    np.testing.assert_array_equal(meter.per_joint, want_joint)
    assert pck_batch_averaged(pred, gt, batch, joints) == want
    return want


def test_random_predictions_match_the_rederivation():
    rng = np.random.default_rng(0)
    gt = _gaussians(rng, 20, 18)
    pred = rng.normal(size=gt.shape).astype(np.float32)
    _check_against_rederivation(pred, gt)


def test_near_truth_predictions_match_the_rederivation_and_score_high():
    rng = np.random.default_rng(1)
    gt = _gaussians(rng, 18, 18)
    pred = (np.roll(gt, rng.integers(-3, 4), axis=-1) + 1e-3 * rng.normal(size=gt.shape)).astype(np.float32)
    got = _check_against_rederivation(pred, gt)
    assert 0.5 < got <= 1.0


def test_short_last_batch_weighs_by_its_size():
    # 7 samples at batch 6: the first batch all right (1.0 x 6), the last (one sample) all wrong (0 x 1)
    right, wrong = _maps([(20, 20), (30, 40)]), _maps([(50, 50), (5, 5)])
    gt = np.concatenate([right] * 7)
    pred = np.concatenate([right] * 6 + [wrong])
    assert pck_batch_averaged(pred, gt, 6) == pytest.approx(6 / 7, abs=1e-7)
    assert pck_batch_averaged(pred, gt, 4) == pytest.approx((4 * 1.0 + 3 * (2 / 3)) / 7, abs=1e-7)
    _check_against_rederivation(pred, gt, 6)
    _check_against_rederivation(pred, gt, 4)


def test_a_batch_with_every_joint_invisible_counts_zero():
    seen = _maps([(20, 20), (30, 40)])
    unseen = _maps([(20, 20), (30, 40)], empty=(0, 1))
    pred = np.concatenate([seen, seen])
    gt = np.concatenate([seen, unseen])
    # batch 1: sample 0, acc 1; batch 2: nothing valid, acc[0] stays 0 but the meter counts the sample
    assert pck_batch_averaged(pred, gt, 1) == 0.5
    assert pck_batch_averaged(pred, gt, 2) == 1.0
    assert pck_crop(pred, gt).mean == 1.0  # pooled: the unlabelled sample is not evaluated
    meter = ReferencePCKMeter()
    meter.update(pred[1:], gt[1:])
    assert meter.value == 0.0 and np.isnan(meter.per_joint).all()
    _check_against_rederivation(pred, gt, 1)


def test_exact_distances_on_64px_maps():
    # offsets (3, 0), (2, 2), (3, 1), (2, 3), (0, 4): 3, 2.83, 3.16 < 3.2 = 0.05 * 64; 3.61, 4 are not
    gt = _maps([(30, 30)] * 5)
    pred = _maps([(33, 30), (32, 32), (33, 31), (32, 33), (30, 34)])
    d = reference_distances(pred, gt)
    want = np.sqrt(np.array([9, 8, 10, 13, 16], np.float32)) / np.float32(6.4)
    np.testing.assert_array_equal(d[0], want)
    assert d.dtype == np.float32
    assert pck_batch_averaged(pred, gt) == pytest.approx(3 / 5, abs=1e-7)
    assert pck_crop(pred, gt).mean == pytest.approx(3 / 5)
    _check_against_rederivation(pred, gt)


def test_non_positive_map_maximum_zeroes_the_prediction():
    gt = _maps([(40, 40), (1, 1)])
    # joint 0: the map is negative everywhere, highest exactly on the truth: ours right, the reference
    # moves it to (0, 0) 1-based and counts it wrong. joint 1: a zero map; (0, 0) is 2.83 px from the
    # truth at 1-based (2, 2), so the reference counts it right (ours: argmax (0, 0) 0-based, 1.41 px).
    pred = np.full_like(gt, -1.0)
    pred[0, 0, 40, 40] = -0.5
    pred[0, 1] = 0.0
    np.testing.assert_array_equal(reference_coords(pred)[0], [[0, 0], [0, 0]])
    assert pck_crop(pred, gt).per_joint.tolist() == [1.0, 1.0]
    assert pck_batch_averaged(pred, gt) == 0.5
    _check_against_rederivation(pred, gt)
    # a share of non-positive maps among random ones
    rng = np.random.default_rng(2)
    gt = _gaussians(rng, 24, 18)
    pred = (gt + 0.05 * rng.normal(size=gt.shape)).astype(np.float32)
    neg = rng.random(gt.shape[:2]) < 0.3
    pred[neg] -= pred[neg].max(axis=(-1, -2), keepdims=True) + 0.01
    got = _check_against_rederivation(pred, gt)
    assert got < pck_crop(pred, gt).mean


def test_ground_truth_in_the_first_row_or_column_is_dropped():
    gt = _maps([(5, 0), (0, 5), (1, 1), (20, 20)])
    pred = _maps([(5, 0), (0, 5), (1, 1), (40, 40)])  # the first three exact, the last wrong
    d = reference_distances(pred, gt)
    assert np.isnan(d[0, :2]).all() and d[0, 2] == 0.0
    # reference: joints 2 (1.0) and 3 (0.0) -> 0.5; pooled: 3 of 4 right
    assert pck_batch_averaged(pred, gt) == 0.5
    assert pck_crop(pred, gt).mean == 0.75
    _check_against_rederivation(pred, gt)


def test_threshold_at_exactly_five_percent_of_an_80px_map_is_wrong_for_the_reference():
    # 0.05 * 80 = 4 px: the reference's 4 / 8 < 0.5 is false, our <= counts it
    gt = _maps([(40, 40), (40, 40), (40, 40), (40, 40)], size=80)
    pred = _maps([(44, 40), (40, 44), (43, 40), (40, 36)], size=80)
    assert reference_distances(pred, gt)[0].tolist() == [0.5, 0.5, 0.375, 0.5]
    assert pck_batch_averaged(pred, gt) == 0.25
    assert pck_crop(pred, gt).mean == 1.0
    _check_against_rederivation(pred, gt)


def test_joint_subset_and_per_joint_mean_over_batches_unweighted():
    # joint 0 right in batch 1 (2 samples), wrong in batch 2 (1 sample): per joint (1 + 0) / 2, not 2/3
    gt = np.concatenate([_maps([(20, 20), (30, 30)])] * 3)
    pred = np.concatenate([_maps([(20, 20), (50, 50)]), _maps([(20, 20), (30, 30)]), _maps([(50, 50), (30, 30)])])
    meter = ReferencePCKMeter()
    for s in (0, 2):
        meter.update(pred[s:s + 2], gt[s:s + 2])
    assert meter.per_joint.tolist() == [0.5, 0.75]
    assert meter.value == pytest.approx((2 * 0.75 + 1 * 0.5) / 3, abs=1e-7)
    only1 = ReferencePCKMeter([1])
    for s in (0, 2):
        only1.update(pred[s:s + 2], gt[s:s + 2])
    assert only1.value == pytest.approx((2 * 0.5 + 1 * 1.0) / 3, abs=1e-7)
    _check_against_rederivation(pred, gt, 2, [1])


def test_bad_shapes_are_errors():
    with pytest.raises(ValueError, match="differ"):
        reference_distances(np.zeros((1, 2, 8, 8)), np.zeros((1, 2, 8, 16)))
    with pytest.raises(ValueError, match="batch_size"):
        pck_batch_averaged(np.zeros((1, 2, 8, 8)), np.zeros((1, 2, 8, 8)), 0)


def test_joint_average_is_summed_in_float32_as_the_reference_does():
    # 14 joints whose fractions, summed in float32 in joint order (torch tensors in the reference), end
    # one ulp away from the float64 sum: the batch value must be the float32 one
    fractions = [(2, 7), (2, 3), (1, 3), (2, 7), (1, 3), (5, 6), (1, 3), (1, 5), (1, 6), (1, 6), (1, 6), (1, 3),
                 (1, 3), (1, 3)]
    d = np.full((7, len(fractions)), np.nan, np.float32)
    for j, (right, valid) in enumerate(fractions):
        d[:valid, j] = 1.0
        d[:right, j] = 0.0
    acc = torch.zeros(len(fractions) + 1)
    total = 0
    for i, (right, valid) in enumerate(fractions):
        acc[i + 1] = right / valid
        total = total + acc[i + 1]
    want = (total / len(fractions)).item()
    assert want != float(np.float32(sum(float(a) for a in acc[1:]) / len(fractions)))
    from animalpose.evaluation_reference import reference_batch_accuracy

    acc0, per_joint = reference_batch_accuracy(d)
    assert float(acc0) == want
    np.testing.assert_array_equal(per_joint, acc[1:].numpy())
