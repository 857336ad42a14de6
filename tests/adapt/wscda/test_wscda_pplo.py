"""PPLO: progressive pseudo-labels through the shared selection code, round loop, diagnostics."""

import numpy as np
import pytest
import torch

from animalpose.adapt.selection import RoundSchedule
from animalpose.adapt.wscda.pplo import heatmap_peaks, make_pseudo_labels, pseudo_label_quality, run_pplo

CONF = np.array([[0.9, 0.1, 0.5], [0.3, 0.8, 0.7]])
COORDS = np.arange(12, dtype=np.float64).reshape(2, 3, 2)


def test_rounds_admit_more_joints_by_hand():
    # sorted confidences 0.1 0.3 0.5 0.7 0.8 0.9; the threshold is the (1 − keep) quantile (linear):
    #   round 0, keep 0.2: position 0.8·5 = 4 -> 0.8, kept {0.9, 0.8}
    #   round 1, keep 0.4: position 0.6·5 = 3 -> 0.7, kept {0.9, 0.8, 0.7}
    #   round 3, keep 0.8: position 0.2·5 = 1 -> 0.3, kept all but 0.1
    expected = {
        0: [[1, 0, 0], [0, 1, 0]],
        1: [[1, 0, 0], [0, 1, 1]],
        3: [[1, 0, 1], [1, 1, 1]],
        9: [[1, 0, 1], [1, 1, 1]],  # rounds past the schedule keep its last fraction
    }
    for r, kept in expected.items():
        labels = make_pseudo_labels(COORDS, CONF, r)
        assert labels.weights.tolist() == kept
        assert labels.keypoints[..., 2].tolist() == (2 * np.array(kept)).tolist()
        k = np.array(kept, dtype=bool)
        np.testing.assert_array_equal(labels.keypoints[k, :2], COORDS[k])
        np.testing.assert_array_equal(labels.keypoints[~k, :2], 0.0)
    assert make_pseudo_labels(COORDS, CONF, 0).selection.threshold == pytest.approx(0.8)


def test_valid_mask_and_custom_schedule():
    valid = np.array([[False, True, True], [True, True, True]])
    labels = make_pseudo_labels(COORDS, CONF, 0, RoundSchedule((0.5,)), valid)
    # valid confidences 0.1 0.5 0.3 0.8 0.7 -> sorted 0.1 0.3 0.5 0.7 0.8, median 0.5 -> kept 0.5, 0.8, 0.7
    assert labels.weights.tolist() == [[0, 0, 1], [0, 1, 1]]
    with pytest.raises(ValueError, match="expected coords"):
        make_pseudo_labels(COORDS[:, :2], CONF, 0)


def test_pseudo_label_quality_by_hand():
    labels = make_pseudo_labels(COORDS, CONF, 1)  # kept (0,0), (1,1), (1,2)
    truth = np.concatenate([COORDS, np.full((2, 3, 1), 2.0)], axis=-1)
    truth[1, 1, :2] += [3.0, 4.0]  # kept joint 5 px off
    truth[0, 1, 2] = 0.0  # unknown joint: left out of every count
    # kept with truth 3; correct within 2 px: 2 -> precision 2/3; coverage 3/5; recall 2/5
    q = pseudo_label_quality(labels, truth, 2.0)
    assert q == pytest.approx({"precision": 2 / 3, "coverage": 0.6, "recall": 0.4})
    # per-instance threshold: 6 px for the second instance makes the 5 px joint correct
    assert pseudo_label_quality(labels, truth, np.array([2.0, 6.0]))["precision"] == pytest.approx(1.0)


def test_heatmap_peaks():
    hm = torch.zeros(1, 2, 3, 4)
    hm[0, 0, 2, 1] = 0.7
    hm[0, 1, 0, 3] = 0.4
    coords, conf = heatmap_peaks(hm)
    assert coords.tolist() == [[[1.0, 2.0], [3.0, 0.0]]]
    assert conf[0].tolist() == pytest.approx([0.7, 0.4])


def test_run_pplo_rounds_resume_and_diagnostics():
    truth = np.concatenate([COORDS, np.full((2, 3, 1), 2.0)], axis=-1)
    state = {"noise": 3.0}
    seen = []

    def predict():
        # a model whose error shrinks each time it is retrained; confidence falls with error
        err = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]) * state["noise"] / 3.0
        return COORDS + err[..., None] / np.sqrt(2), 1.0 / (1.0 + err)

    def train(labels):
        seen.append(labels.round_index)
        state["noise"] /= 2
        return float(labels.weights.sum())

    logged = []
    rounds = run_pplo(predict, train, 4, truth=truth, threshold=1.5, on_round=logged.append)
    assert [r.round_index for r in rounds] == seen == [0, 1, 2, 3]
    assert logged == rounds
    kept = [r.train_result for r in rounds]
    assert kept == sorted(kept) and kept[0] < kept[-1]
    assert [r.quality["coverage"] for r in rounds] == pytest.approx([2 / 6, 3 / 6, 4 / 6, 5 / 6])
    assert all(r.quality["precision"] == 1.0 for r in rounds)
    resumed = run_pplo(predict, train, 4, start_round=3)
    assert [r.round_index for r in resumed] == [3] and resumed[0].quality == {}
    with pytest.raises(ValueError, match="together"):
        run_pplo(predict, train, 2, truth=truth)
