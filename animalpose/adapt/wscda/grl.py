"""Gradient reversal layer and the DANN adaptation schedule.

The gradient reversal layer (Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation",
ICML 2015; Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 2016) is the identity
in the forward pass and multiplies the incoming gradient by ``-lambda`` in the backward pass. Placed
between a feature extractor and a domain discriminator, one backward pass of the discriminator loss
trains the discriminator to *minimise* it and the extractor to *maximise* it (scaled by lambda).

DANN ramps lambda from 0 to 1 over training so that the noisy discriminator of the first steps does
not disturb the features: ``lambda(p) = 2 / (1 + exp(-gamma * p)) - 1`` with ``gamma = 10`` and ``p``
the training progress in [0, 1] (Ganin et al. 2016, section 5.2.2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

DANN_GAMMA = 10.0


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, lambd: float) -> Tensor:
        ctx.lambd = lambd
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.lambd * grad, None


def grad_reverse(x: Tensor, lambd: float = 1.0) -> Tensor:
    """Identity on ``x`` (any shape) whose backward pass returns ``-lambd * grad``."""
    return _GradReverse.apply(x, float(lambd))


class GradientReversal(nn.Module):
    """Module form of :func:`grad_reverse`; set ``lambd`` between steps to follow a schedule."""

    def __init__(self, lambd: float = 1.0):
        super().__init__()
        self.lambd = float(lambd)

    def forward(self, x: Tensor) -> Tensor:
        return grad_reverse(x, self.lambd)

    def extra_repr(self) -> str:
        return f"lambd={self.lambd}"


def dann_lambda(progress: float, gamma: float = DANN_GAMMA) -> float:
    """DANN schedule ``2 / (1 + exp(-gamma * progress)) - 1`` (Ganin et al. 2016, eq. in sec. 5.2.2).

    ``progress`` is the fraction of training done, in [0, 1]: lambda(0) = 0, lambda(0.5) ≈ 0.98661,
    lambda(1) ≈ 0.99991 with gamma = 10.
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must lie in [0, 1], got {progress}")
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0
