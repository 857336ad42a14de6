"""WS-CDA losses (Cao et al., "Cross-Domain Adaptation for Animal Pose Estimation", ICCV 2019, sec. 4).

For a batch of N samples with domain labels y (0 = human, 1 = animal) and z (0 = source, i.e. a
labelled animal species, 1 = target, an unlabelled species; meaningful only where y = 1), and the
discriminator's sigmoid outputs ŷ, ẑ:

    L_DDL  = −w1 Σ_i [y log ŷ + (1−y) log(1−ŷ)] − Σ_i y [z log ẑ + (1−z) log(1−ẑ)]
    L_pose = Σ_i [w2 · y · L_A + (1−y) · L_H]
    L      = α · L_DDL + β · L_pose,   α = −1, β = 500.

The discriminator minimises L_DDL; the feature extractor, the domain adaptation network and the keypoint
estimator minimise L (so, with α < 0, they maximise the discriminator's loss while fitting poses).

Choices the paper leaves open, made here:

- **Reduction.** The paper writes plain sums over the batch. ``reduction="sum"`` reproduces that;
  the default ``"mean"`` divides *every* term of both losses by the batch size N. Because both losses
  are divided by the same N the balance α·L_DDL : β·L_pose is exactly the paper's; only the overall
  scale (i.e. the effective learning rate) stops growing with the batch size.
- **L_A and L_H** are the same heatmap MSE over the joint keypoint space (see ``joint_space``):
  per sample, ``(1/J) Σ_j w_j · mean_pixels (H_pred − H_gt)²``, with w_j the per-sample target weight
  (0 for joints the sample's domain lacks or the sample leaves unlabelled). Dividing by all J joints
  (not by the number of labelled ones) follows the common mmpose/SimpleBaseline convention, so a
  masked joint contributes exactly nothing, neither to the value nor to the gradient. With several
  stacked predictions (hourglass intermediate supervision) the per-sample losses of the stages add up.
- **Unlabelled target animals** (y = 1, z = 1) have all-zero target weights, so their L_A is 0: they
  enter only L_DDL. Labelled animals of the source species (y = 1, z = 0) give L_A; humans give L_H.
- **w1, w2** default to 1 (no value is fixed by the formula); both are configurable. w1 weighs the
  human/animal term against the source/target term; w2 weighs animal pose against human pose.
- The discriminator outputs logits; ``log ŷ`` and ``log(1−ŷ)`` are computed from them with the
  numerically stable ``binary_cross_entropy_with_logits`` (identical values, no log(0)).

**Three-way option** (not in the paper; ``wscda.discriminator: three_way``): when generated animals join
the labelled source, a third output ŝ tells synthetic (s = 1, rendered) from real (s = 0, photographed)
for every sample, humans included, and L_DDL gains ``−w3 Σ_i [s log ŝ + (1−s) log(1−ŝ)]``. The pose
modules then also push rendered and photographed features together; the paper's two terms are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from animalpose.errors import ConfigError

PAPER_ALPHA = -1.0
PAPER_BETA = 500.0
REDUCTIONS = ("mean", "sum")


@dataclass(frozen=True)
class WSCDALossWeights:
    """Weights of the WS-CDA objective (defaults: the paper's α = −1, β = 500; w1 = w2 = 1).

    Attributes:
        alpha: weight of L_DDL in the extractor/estimator objective (negative: adversarial).
        beta: weight of L_pose.
        w1: weight of the human/animal term inside L_DDL.
        w2: weight of animal pose losses inside L_pose.
        reduction: ``"mean"`` (divide by the batch size) or ``"sum"`` (the paper's plain sums).
        w3: weight of the synthetic/real term inside L_DDL (three-way discriminator only).
    """

    alpha: float = PAPER_ALPHA
    beta: float = PAPER_BETA
    w1: float = 1.0
    w2: float = 1.0
    reduction: str = "mean"
    w3: float = 1.0

    def __post_init__(self) -> None:
        if self.reduction not in REDUCTIONS:
            raise ConfigError("<wscda>", "loss.reduction", f"expected one of {REDUCTIONS}, got {self.reduction!r}")
        for name in ("w1", "w2", "w3", "beta"):
            if getattr(self, name) < 0:
                raise ConfigError("<wscda>", f"loss.{name}", f"must be >= 0, got {getattr(self, name)}")


def _reduce(per_sample: Tensor, reduction: str) -> Tensor:
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "mean":
        return per_sample.sum() / max(per_sample.shape[0], 1)
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def domain_discrimination_terms(y_logit: Tensor, z_logit: Tensor, y: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample cross-entropies of the two discriminator outputs.

    Args:
        y_logit, z_logit: (N,) logits of ŷ (animal) and ẑ (target).
        y, z: (N,) labels in {0, 1} (z ignored where y = 0).

    Returns:
        ((N,), (N,)): −[y log ŷ + (1−y) log(1−ŷ)] and −y [z log ẑ + (1−z) log(1−ẑ)].
    """
    y = y.to(y_logit.dtype)
    z = z.to(z_logit.dtype)
    human_animal = F.binary_cross_entropy_with_logits(y_logit, y, reduction="none")
    source_target = y * F.binary_cross_entropy_with_logits(z_logit, z, reduction="none")
    return human_animal, source_target


def domain_discrimination_loss(
    y_logit: Tensor, z_logit: Tensor, y: Tensor, z: Tensor, *, w1: float = 1.0, reduction: str = "mean",
    s_logit: Tensor | None = None, s: Tensor | None = None, w3: float = 1.0,
) -> Tensor:
    """L_DDL = −w1 Σ [y log ŷ + (1−y) log(1−ŷ)] − Σ y [z log ẑ + (1−z) log(1−ẑ)] (scalar).

    Shapes as in :func:`domain_discrimination_terms`; ``reduction="mean"`` divides the sums by N. With
    ``s_logit`` (N,) and ``s`` (N,) in {0 real, 1 synthetic} (the three-way discriminator) the sum gains
    −w3 Σ [s log ŝ + (1−s) log(1−ŝ)].
    """
    human_animal, source_target = domain_discrimination_terms(y_logit, z_logit, y, z)
    per_sample = w1 * human_animal + source_target
    if (s_logit is None) != (s is None):
        raise ValueError("the synthetic/real term needs both its logits and its labels")
    if s_logit is not None:
        per_sample = per_sample + w3 * F.binary_cross_entropy_with_logits(s_logit, s.to(s_logit.dtype),
                                                                            reduction="none")
    return _reduce(per_sample, reduction)


def per_sample_heatmap_mse(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Masked heatmap MSE of each sample: (1/J) Σ_j w_j · mean_{h,w} (pred − target)².

    Args:
        pred, target: (N, J, h, w) heatmaps.
        weight: (N, J) per-sample joint weights (0 masks a joint out completely).

    Returns:
        (N,) losses.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if weight.shape != pred.shape[:2]:
        raise ValueError(f"weights {tuple(weight.shape)} do not match heatmaps {tuple(pred.shape)}")
    per_joint = (pred - target).pow(2).mean(dim=(2, 3))  # (N, J)
    return (weight.to(per_joint.dtype) * per_joint).mean(dim=1)


def pose_loss(
    pred: Tensor | Sequence[Tensor],
    target: Tensor,
    weight: Tensor,
    y: Tensor,
    *,
    w2: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """L_pose = Σ [w2 · y · L_A + (1−y) · L_H] (scalar).

    Args:
        pred: (N, J, h, w) heatmaps, or a list of them (stacked stages; their losses add up).
        target: (N, J, h, w) target heatmaps in the joint space.
        weight: (N, J) target weights (domain mask × labelled); all zero for unlabelled samples.
        y: (N,) domain labels, 0 = human (L_H), 1 = animal (L_A).
    """
    stages = [pred] if isinstance(pred, Tensor) else list(pred)
    if not stages:
        raise ValueError("no heatmaps given")
    per_sample = sum(per_sample_heatmap_mse(p, target, weight) for p in stages)
    y = y.to(per_sample.dtype)
    return _reduce(w2 * y * per_sample + (1.0 - y) * per_sample, reduction)


def total_loss(l_ddl: Tensor, l_pose: Tensor, *, alpha: float = PAPER_ALPHA, beta: float = PAPER_BETA) -> Tensor:
    """L = α · L_DDL + β · L_pose, the objective of the extractor, adapter and estimator."""
    return alpha * l_ddl + beta * l_pose
