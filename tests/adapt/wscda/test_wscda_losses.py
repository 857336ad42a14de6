"""L_DDL, L_pose and L = α·L_DDL + β·L_pose against values computed by hand (Cao et al., ICCV 2019)."""

import math

import pytest
import torch

from animalpose.adapt.wscda.losses import (
    PAPER_ALPHA,
    PAPER_BETA,
    WSCDALossWeights,
    domain_discrimination_loss,
    domain_discrimination_terms,
    per_sample_heatmap_mse,
    pose_loss,
    total_loss,
)
from animalpose.errors import ConfigError


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


# One sample for every (y, z): (0, 0) human, (0, 1) human (z must be ignored), (1, 0) source animal,
# (1, 1) target animal, with the discriminator's probabilities ŷ and ẑ.
Y = torch.tensor([0.0, 0.0, 1.0, 1.0])
Z = torch.tensor([0.0, 1.0, 0.0, 1.0])
P_Y = [0.2, 0.6, 0.9, 0.5]
P_Z = [0.7, 0.1, 0.25, 0.8]
Y_LOGIT = torch.tensor([_logit(p) for p in P_Y], dtype=torch.float64)
Z_LOGIT = torch.tensor([_logit(p) for p in P_Z], dtype=torch.float64)

# By hand, −[y log ŷ + (1−y) log(1−ŷ)]:
#   s0 (y=0): −ln(1−0.2) = −ln 0.8 = 0.2231435513
#   s1 (y=0): −ln(1−0.6) = −ln 0.4 = 0.9162907319
#   s2 (y=1): −ln 0.9             = 0.1053605157
#   s3 (y=1): −ln 0.5             = 0.6931471806      sum = 1.9379419795
# and −y [z log ẑ + (1−z) log(1−ẑ)]:
#   s0, s1 (y=0): 0 whatever ẑ and z
#   s2 (y=1, z=0): −ln(1−0.25) = −ln 0.75 = 0.2876820725
#   s3 (y=1, z=1): −ln 0.8               = 0.2231435513  sum = 0.5108256238
HUMAN_ANIMAL = [0.2231435513, 0.9162907319, 0.1053605157, 0.6931471806]
SOURCE_TARGET = [0.0, 0.0, 0.2876820725, 0.2231435513]


def test_ddl_terms_per_sample_by_hand():
    ha, st = domain_discrimination_terms(Y_LOGIT, Z_LOGIT, Y, Z)
    assert ha.tolist() == pytest.approx(HUMAN_ANIMAL, abs=1e-9)
    assert st.tolist() == pytest.approx(SOURCE_TARGET, abs=1e-9)


def test_ddl_sum_and_mean_by_hand():
    # w1 = 2: 2 · 1.9379419795 + 0.5108256238 = 4.3867095828; mean over N = 4: 1.0966773957
    l_sum = domain_discrimination_loss(Y_LOGIT, Z_LOGIT, Y, Z, w1=2.0, reduction="sum")
    l_mean = domain_discrimination_loss(Y_LOGIT, Z_LOGIT, Y, Z, w1=2.0, reduction="mean")
    assert float(l_sum) == pytest.approx(4.3867095828, abs=1e-8)
    assert float(l_mean) == pytest.approx(1.0966773957, abs=1e-8)
    # w1 = 1: 1.9379419795 + 0.5108256238 = 2.4487676033
    assert float(domain_discrimination_loss(Y_LOGIT, Z_LOGIT, Y, Z, reduction="sum")) == pytest.approx(
        2.4487676033, abs=1e-8
    )


def test_ddl_z_output_of_humans_gets_no_gradient():
    z_logit = Z_LOGIT.clone().requires_grad_(True)
    domain_discrimination_loss(Y_LOGIT, z_logit, Y, Z, reduction="sum").backward()
    assert z_logit.grad[:2].tolist() == [0.0, 0.0]
    # d/dlogit of BCE = p − label: s2 0.25 − 0 = 0.25, s3 0.8 − 1 = −0.2
    assert z_logit.grad[2:].tolist() == pytest.approx([0.25, -0.2], abs=1e-9)


def _pose_batch():
    """N = 4, J = 2, heatmaps 1×2; predictions all zero so each MSE is the mean of target²."""
    target = torch.tensor(
        [
            [[[1.0, 0.0]], [[0.5, 0.5]]],  # human: joint MSEs 0.5, 0.25
            [[[2.0, 0.0]], [[1.0, 1.0]]],  # human lacking joint 1: 2.0, (1.0 masked)
            [[[0.0, 1.0]], [[1.0, 1.0]]],  # labelled animal: 0.5, 1.0
            [[[3.0, 3.0]], [[3.0, 3.0]]],  # unlabelled target animal: 9, 9, all masked
        ]
    )
    weight = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    y = torch.tensor([0.0, 0.0, 1.0, 1.0])
    pred = torch.zeros_like(target)
    return pred, target, weight, y


def test_per_sample_heatmap_mse_by_hand():
    pred, target, weight, _ = _pose_batch()
    # (1/J) Σ_j w_j MSE_j: (0.5 + 0.25)/2 = 0.375; (2.0 + 0)/2 = 1.0; (0.5 + 1.0)/2 = 0.75; 0
    assert per_sample_heatmap_mse(pred, target, weight).tolist() == pytest.approx([0.375, 1.0, 0.75, 0.0])


def test_pose_loss_by_hand():
    pred, target, weight, y = _pose_batch()
    # w2 = 3: (1−0)·0.375 + (1−0)·1.0 + 3·1·0.75 + 3·1·0 = 3.625; mean over N = 4: 0.90625
    assert float(pose_loss(pred, target, weight, y, w2=3.0, reduction="sum")) == pytest.approx(3.625)
    assert float(pose_loss(pred, target, weight, y, w2=3.0, reduction="mean")) == pytest.approx(0.90625)
    # two stacked stages with the same prediction: the stage losses add up
    assert float(pose_loss([pred, pred], target, weight, y, w2=3.0, reduction="sum")) == pytest.approx(7.25)


def test_total_loss_with_paper_weights():
    assert (PAPER_ALPHA, PAPER_BETA) == (-1.0, 500.0)
    pred, target, weight, y = _pose_batch()
    l_ddl = domain_discrimination_loss(Y_LOGIT, Z_LOGIT, Y, Z, w1=2.0)  # 1.0966773957
    l_pose = pose_loss(pred, target, weight, y, w2=3.0)  # 0.90625
    # −1 · 1.0966773957 + 500 · 0.90625 = 453.125 − 1.0966773957 = 452.0283226043
    assert float(total_loss(l_ddl, l_pose)) == pytest.approx(452.0283226043, abs=1e-6)


def test_loss_weights_validate():
    assert WSCDALossWeights() == WSCDALossWeights(alpha=-1.0, beta=500.0, w1=1.0, w2=1.0, reduction="mean")
    with pytest.raises(ConfigError, match=r"loss\.reduction"):
        WSCDALossWeights(reduction="avg")
    with pytest.raises(ConfigError, match=r"loss\.w2"):
        WSCDALossWeights(w2=-1.0)


def test_pose_loss_rejects_mismatched_shapes():
    pred, target, weight, y = _pose_batch()
    with pytest.raises(ValueError, match="differ in shape"):
        pose_loss(pred[:, :1], target, weight, y)
    with pytest.raises(ValueError, match="weights"):
        pose_loss(pred, target, weight[:, :1], y)
