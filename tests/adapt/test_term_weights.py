"""Lightning Pose's unsupervised-term weights carried over to our heatmap loss (animalpose.adapt.term_weights):
the energies by hand on a 3x3 map, their continuous limits, and the balance they keep against the real losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from animalpose.adapt.term_weights import (
    LIGHTNING_POSE_SIGMA,
    balanced_weight,
    heatmap_energy,
    lightning_pose_heatmap_energy,
    lightning_pose_weight,
)
from animalpose.codecs.base import render_gaussians
from animalpose.losses import heatmap_mse


def test_lightning_pose_weight_is_one_over_two_exp_log_weight():
    assert lightning_pose_weight(0.0) == 0.5  # its heatmap loss's weight (log_weight 0)
    assert lightning_pose_weight() == pytest.approx(0.0033689735, rel=1e-8)  # the default log_weight 5
    assert lightning_pose_weight(3.0) == pytest.approx(1 / (2 * math.e**3))


def test_energies_by_hand_on_a_3x3_map():
    # sigma 1 centred on the middle pixel of a 3x3 map: G = 1 in the centre, e^-1/2 on the 4 edges, e^-1 in the
    # 4 corners (separable: (e^-1/2, 1, e^-1/2) outer itself)
    sum_g = (1 + 2 * math.exp(-0.5)) ** 2  # 4.897640
    sum_g2 = (1 + 2 * math.exp(-1.0)) ** 2  # 3.012859
    assert heatmap_energy(1.0, (3, 3)) == pytest.approx(sum_g2 / 9, rel=1e-6)  # mean over the 9 pixels
    assert heatmap_energy(1.0, (3, 3)) == pytest.approx(0.334762, rel=1e-5)
    assert lightning_pose_heatmap_energy(1.0, (3, 3)) == pytest.approx(sum_g2 / sum_g**2, rel=1e-6)
    assert lightning_pose_heatmap_energy(1.0, (3, 3)) == pytest.approx(0.125605, rel=1e-5)


def test_energies_match_their_continuous_limits_and_the_bench_weight():
    # E_ours ~ pi sigma^2 / (h w), E_LP ~ 1 / (4 pi sigma_LP^2) for a Gaussian well inside the map
    assert heatmap_energy(1.5, (32, 32)) == pytest.approx(math.pi * 1.5**2 / 1024, rel=1e-3)
    assert lightning_pose_heatmap_energy() == pytest.approx(1 / (4 * math.pi * LIGHTNING_POSE_SIGMA**2), rel=1e-3)
    ratio = balanced_weight(1.0, 1.5, (32, 32))
    assert ratio == pytest.approx(4 * math.pi**2 * 1.5**2 * 1.25**2 / 1024, rel=2e-3)  # 0.1355
    # Lightning Pose's default 0.003369 is 0.000457 on both bench projects' maps (sigma 1.5, 32x32)
    assert balanced_weight(lightning_pose_weight(), 1.5, (32, 32)) == pytest.approx(0.000457, abs=5e-7)
    # a map with 4x the pixels spreads the same Gaussian's cost over 4x as many: a 4x smaller weight
    assert balanced_weight(1.0, 1.5, (64, 64)) == pytest.approx(ratio / 4, rel=1e-6)


def test_the_weight_keeps_the_balance_against_each_librarys_heatmap_loss():
    # A joint predicted as an all-zero map costs 0.5 E under both losses: ours (heatmap_mse, peak-1 target) and
    # Lightning Pose's (0.5 x h x w x mean of the squared error of unit-sum maps, its HeatmapMSELoss with weight
    # 1 / (2 e^0)). The converted weight is in the same proportion to it as Lightning Pose's weight to theirs.
    g = render_gaussians(np.array([[16.0, 16.0]]), (32, 32), 1.5)  # the codec's target of peak 1
    ours = float(heatmap_mse([torch.zeros(1, 1, 32, 32)], torch.from_numpy(g)[None], torch.ones(1, 1)))
    assert ours == pytest.approx(0.5 * heatmap_energy(1.5, (32, 32)), rel=1e-5)
    lp_map = render_gaussians(np.array([[32.0, 32.0]]), (64, 64), LIGHTNING_POSE_SIGMA, radius=-1)[0]
    lp_map = lp_map / lp_map.sum()
    theirs = 0.5 * 64 * 64 * float(np.mean(lp_map**2))
    assert theirs == pytest.approx(0.5 * lightning_pose_heatmap_energy(), rel=1e-5)
    w_lp = lightning_pose_weight()
    assert balanced_weight(w_lp, 1.5, (32, 32)) / ours == pytest.approx(w_lp / theirs, rel=1e-5)
