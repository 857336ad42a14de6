"""Selection schedules and percentile thresholding (CC-SSL reference formula, PPLO rounds)."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.adapt.selection import (
    RoundSchedule,
    reference_percentile,
    select_by_percentile,
    select_top_fraction,
)
from animalpose.errors import ConfigError


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [(0, 0.8), (10, 0.6), (20, 0.4), (30, 0.2), (50, 0.2), (5, 0.7), (29, 0.22), (31, 0.2)],
)
def test_reference_percentile_matches_formula(epoch, expected):
    # p = 1 - 0.02 * (epoch + 10), floored at 0.2 (Mu et al. 2020 reference code)
    assert reference_percentile(epoch) == pytest.approx(expected, abs=1e-12)


def test_reference_percentile_rejects_negative_epoch():
    with pytest.raises(ValueError):
        reference_percentile(-1)


def test_round_schedule_default_and_repeat():
    s = RoundSchedule()
    assert [s.keep_fraction(r) for r in range(6)] == [0.2, 0.4, 0.6, 0.8, 0.8, 0.8]
    assert s.percentile(0) == pytest.approx(0.8)
    assert s.percentile(3) == pytest.approx(0.2)


def test_round_schedule_from_reference_epochs():
    # rounds every 10 epochs of 60: 20/40/60/80/80/80 % kept
    s = RoundSchedule.from_reference([0, 10, 20, 30, 40, 50])
    assert s.keep_fractions == (0.2, 0.4, 0.6, 0.8, 0.8, 0.8)


@pytest.mark.parametrize("bad", [(), (0.0,), (0.5, 1.2), (0.6, 0.4)])
def test_round_schedule_validates(bad):
    with pytest.raises(ConfigError):
        RoundSchedule(bad)


def test_select_by_percentile_keeps_top_fraction():
    conf = np.arange(20, dtype=np.float64).reshape(4, 5) / 19.0  # 20 distinct values
    sel = select_by_percentile(conf, 0.8)
    # quantile 0.8 of 0..19 (linear) = 15.2 -> values 16..19 kept
    assert sel.num_kept == 4
    assert sel.threshold == pytest.approx(15.2 / 19.0)
    assert set(np.flatnonzero(sel.weights.ravel())) == {16, 17, 18, 19}
    assert sel.weights.dtype == np.float32
    assert set(np.unique(sel.weights)) <= {0.0, 1.0}


def test_select_respects_valid_mask_and_nan():
    conf = np.array([[0.9, 0.1, np.nan], [0.5, 0.95, 0.3]])
    valid = np.array([[True, True, True], [True, False, True]])
    sel = select_top_fraction(conf, 0.5, valid)
    # eligible: 0.9, 0.1, 0.5, 0.3 -> median 0.4 -> keep 0.9 and 0.5; masked 0.95 never kept
    assert sel.num_eligible == 4
    np.testing.assert_array_equal(sel.weights, [[1, 0, 0], [1, 0, 0]])
    assert sel.coverage == pytest.approx(0.5)


def test_select_with_nothing_eligible():
    sel = select_by_percentile(np.full((2, 3), np.nan), 0.5)
    assert sel.num_kept == 0 and sel.threshold == float("inf")
    assert not sel.weights.any()


def test_select_more_as_percentile_falls():
    rng = np.random.default_rng(0)
    conf = rng.random((50, 18))
    kept = [select_by_percentile(conf, reference_percentile(e)).num_kept for e in (0, 10, 20, 30)]
    assert kept == sorted(kept)
    assert kept[0] == pytest.approx(0.2 * conf.size, abs=1)
    assert kept[3] == pytest.approx(0.8 * conf.size, abs=1)


def test_collapsed_pair_mask_hand_cases():
    from animalpose.adapt.selection import collapsed_pair_mask

    # joints: 0 left, 1 right (a pair), 2 unpaired; instance 0's pair coincides (1 px apart), instance 1's not
    xy = np.array([[[10, 10], [11, 10], [10, 10]], [[10, 10], [30, 10], [10, 10]]], dtype=float)
    conf = np.array([[0.3, 0.5, 0.9], [0.1, 0.2, 0.9]])
    pairs = [(0, 1)]
    assert collapsed_pair_mask(xy, conf, pairs, 2.0, "keep").all()
    lower = collapsed_pair_mask(xy, conf, pairs, 2.0, "drop_lower")
    np.testing.assert_array_equal(lower, [[False, True, True], [True, True, True]])
    both = collapsed_pair_mask(xy, conf, pairs, 2.0, "drop_both")
    np.testing.assert_array_equal(both, [[False, False, True], [True, True, True]])
    # a tie drops the pair's second (right) joint; a distance at the limit is not collapsed
    tie = collapsed_pair_mask(xy, np.full((2, 3), 0.5), pairs, 2.0, "drop_lower")
    np.testing.assert_array_equal(tie[0], [True, False, True])
    assert collapsed_pair_mask(xy, conf, pairs, 1.0, "drop_both").all()
    with pytest.raises(ValueError, match="drop_lower"):
        collapsed_pair_mask(xy, conf, pairs, 2.0, "swap")


def test_selection_ranks_only_the_joints_the_pair_rule_leaves():
    from animalpose.adapt.selection import collapsed_pair_mask

    xy = np.array([[[10, 10], [10, 10], [50, 50], [80, 80]]], dtype=float)  # pair (0, 1) collapsed
    conf = np.array([[0.9, 0.8, 0.7, 0.6]])
    eligible = collapsed_pair_mask(xy, conf, [(0, 1)], 2.0, "drop_lower")
    sel = select_top_fraction(conf, 0.5, eligible)  # top half of the 3 eligible joints: 0.9, 0.7
    np.testing.assert_array_equal(sel.weights, [[1, 0, 1, 0]])
    assert sel.num_eligible == 3
