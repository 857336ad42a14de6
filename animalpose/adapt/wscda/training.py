"""One WS-CDA training step, in either of two selectable min-max schemes, and discriminator accuracy.

The objective (Cao et al., ICCV 2019; see ``losses``) is a min-max game: the discriminator minimises
L_DDL; the extractor, domain adaptation network and keypoint estimator minimise
L = α·L_DDL + β·L_pose with α = −1, i.e. they fit poses while *maximising* the discriminator's loss.

- ``"alternating"`` (:func:`alternating_step`): one forward pass of the extractor; the discriminator
  takes an optimiser step on L_DDL of the detached features; then, with the just-updated
  discriminator frozen, the pose modules take an optimiser step on α·L_DDL + β·L_pose. Two optimisers.
- ``"grl"`` (:func:`grl_step`): a gradient reversal layer of scale ``−α·λ`` sits in front of the
  discriminator and a single backward pass of L_DDL + β·L_pose gives the discriminator ∇L_DDL and the
  pose modules α·λ·∇L_DDL + β·∇L_pose. λ follows the DANN schedule (``grl.dann_lambda``) of the training
  progress, so at λ = 1 the pose modules' gradient is exactly that of α·L_DDL + β·L_pose (the two
  schemes then differ only in that the alternating one uses the discriminator after its update).
  One optimiser over all parameters.

Both return :class:`StepStats`; :class:`DomainAccuracy` counts the discriminator's per-domain accuracy
(human / animal from ŷ, source / target from ẑ on animals only; with the three-way discriminator also
synthetic / real from ŝ), which should drift to chance as the features align.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from animalpose.adapt.wscda.grl import dann_lambda
from animalpose.adapt.wscda.losses import WSCDALossWeights, domain_discrimination_loss, pose_loss, total_loss
from animalpose.adapt.wscda.network import WSCDANetwork

SCHEMES = ("alternating", "grl")
ACCURACY_DOMAINS = ("human", "animal", "source", "target")
#: the domains of the three-way discriminator's ŝ output, reported only where it exists
SYNTHETIC_DOMAINS = ("synthetic", "real")


@dataclass
class WSCDABatch:
    """A mixed batch in the joint keypoint space.

    Attributes:
        images: (N, 3, H, W) float images.
        heatmaps: (N, J, h, w) target heatmaps (anything for unlabelled samples: their weights are 0).
        weights: (N, J) target weights (domain mask × labelled).
        y: (N,) 0 = human, 1 = animal.
        z: (N,) 0 = source (labelled animal species), 1 = target (unlabelled species); ignored for humans.
        s: (N,) 0 = real, 1 = synthetic (generated); read by the three-way discriminator only (None: unknown).
    """

    images: Tensor
    heatmaps: Tensor
    weights: Tensor
    y: Tensor
    z: Tensor
    s: Tensor | None = None

    def to(self, device: torch.device | str) -> WSCDABatch:
        return WSCDABatch(*(None if t is None else t.to(device)
                            for t in (self.images, self.heatmaps, self.weights, self.y, self.z, self.s)))


@dataclass
class DomainAccuracy:
    """Running per-domain accuracy of the discriminator (a prediction is "animal"/"target"/"synthetic" when
    p >= 0.5).

    ``correct[d] / total[d]`` for d in human, animal (from ŷ), source, target (from ẑ, animals only) and,
    when the logits have a third column ŝ, synthetic and real.
    """

    # synthetic / real join the counts when a three-way discriminator is first counted
    correct: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ACCURACY_DOMAINS, 0))
    total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ACCURACY_DOMAINS, 0))

    @torch.no_grad()
    def update(self, logits: Tensor, y: Tensor, z: Tensor, s: Tensor | None = None) -> None:
        """Count one batch: ``logits`` (N, 2) or (N, 3), ``y``, ``z`` and (with three columns) ``s`` (N,)."""
        pred_animal = logits[:, 0] >= 0
        pred_target = logits[:, 1] >= 0
        y = y.bool()
        z = z.bool()
        groups = {
            "human": (~y, ~pred_animal),
            "animal": (y, pred_animal),
            "source": (y & ~z, ~pred_target),
            "target": (y & z, pred_target),
        }
        if logits.shape[1] > 2:
            if s is None:
                raise ValueError("a three-way discriminator's accuracy needs the synthetic labels s")
            pred_synthetic, s = logits[:, 2] >= 0, s.bool()
            groups.update({"synthetic": (s, pred_synthetic), "real": (~s, ~pred_synthetic)})
        for name, (members, right) in groups.items():
            self.total[name] = self.total.get(name, 0) + int(members.sum())
            self.correct[name] = self.correct.get(name, 0) + int((members & right).sum())

    def rates(self) -> dict[str, float]:
        """Accuracy per domain; NaN for a domain with no samples counted (synthetic / real: left out unless
        a three-way discriminator was counted)."""
        return {d: self.correct[d] / self.total[d] if self.total[d] else math.nan for d in self.total}

    def metrics(self, prefix: str = "disc_acc/") -> dict[str, float]:
        """Rates keyed ``prefix + domain`` for logging, NaN domains left out."""
        return {prefix + d: r for d, r in self.rates().items() if not math.isnan(r)}

    def merge(self, other: DomainAccuracy) -> None:
        for d in other.total:
            self.correct[d] = self.correct.get(d, 0) + other.correct[d]
            self.total[d] = self.total.get(d, 0) + other.total[d]


@dataclass
class StepStats:
    """What one step measured (all on the batch, before the step's own updates unless stated).

    Attributes:
        loss: L = α·L_DDL + β·L_pose (the paper's objective of the pose modules).
        l_ddl: L_DDL seen by the pose modules (alternating: after the discriminator's update).
        l_ddl_disc: L_DDL the discriminator minimised this step (before its update).
        l_pose: L_pose.
        grl_lambda: DANN λ used (GRL scheme), None for the alternating scheme.
        accuracy: the discriminator's per-domain accuracy on this batch (before its update).
    """

    loss: float
    l_ddl: float
    l_ddl_disc: float
    l_pose: float
    grl_lambda: float | None
    accuracy: DomainAccuracy

    def metrics(self) -> dict[str, float]:
        out = {"loss": self.loss, "l_ddl": self.l_ddl, "l_ddl_disc": self.l_ddl_disc, "l_pose": self.l_pose}
        if self.grl_lambda is not None:
            out["grl_lambda"] = self.grl_lambda
        out.update(self.accuracy.metrics())
        return out


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Temporarily stop gradients into ``module``'s parameters (restores each flag afterwards)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _ddl(logits: Tensor, batch: WSCDABatch, weights: WSCDALossWeights) -> Tensor:
    three_way = logits.shape[1] > 2
    if three_way and batch.s is None:
        raise ValueError("a three-way discriminator needs the batch's synthetic labels (WSCDABatch.s)")
    return domain_discrimination_loss(
        logits[:, 0], logits[:, 1], batch.y, batch.z, w1=weights.w1, reduction=weights.reduction,
        s_logit=logits[:, 2] if three_way else None, s=batch.s if three_way else None, w3=weights.w3,
    )


def _pose(heatmaps: list[Tensor], batch: WSCDABatch, weights: WSCDALossWeights) -> Tensor:
    return pose_loss(heatmaps, batch.heatmaps, batch.weights, batch.y, w2=weights.w2, reduction=weights.reduction)


def alternating_step(
    model: WSCDANetwork,
    batch: WSCDABatch,
    pose_optimizer: torch.optim.Optimizer,
    discriminator_optimizer: torch.optim.Optimizer,
    weights: WSCDALossWeights | None = None,
) -> StepStats:
    """Alternating min-max: discriminator step on L_DDL, then pose-modules step on α·L_DDL + β·L_pose.

    ``pose_optimizer`` must hold the extractor, adapter and estimator parameters
    (``model.pose_parameters()``), ``discriminator_optimizer`` the discriminator's.
    """
    weights = weights or WSCDALossWeights()
    out = model(batch.images, discriminate=False)

    # 1. The discriminator minimises L_DDL on detached features.
    discriminator_optimizer.zero_grad(set_to_none=True)
    logits_d = model.discriminate(out.domain_input.detach())
    l_ddl_disc = _ddl(logits_d, batch, weights)
    l_ddl_disc.backward()
    discriminator_optimizer.step()
    accuracy = DomainAccuracy()
    accuracy.update(logits_d.detach(), batch.y, batch.z, batch.s)

    # 2. Extractor + adapter + estimator minimise α·L_DDL + β·L_pose against the updated, frozen discriminator.
    pose_optimizer.zero_grad(set_to_none=True)
    with _frozen(model.discriminator):
        l_ddl = _ddl(model.discriminate(out.domain_input), batch, weights)
    l_pose = _pose(out.heatmaps, batch, weights)
    loss = total_loss(l_ddl, l_pose, alpha=weights.alpha, beta=weights.beta)
    if loss.requires_grad:
        loss.backward()
        pose_optimizer.step()
    return StepStats(
        float(loss.detach()), float(l_ddl.detach()), float(l_ddl_disc.detach()), float(l_pose.detach()), None, accuracy
    )


def grl_step(
    model: WSCDANetwork,
    batch: WSCDABatch,
    optimizer: torch.optim.Optimizer,
    weights: WSCDALossWeights | None = None,
    *,
    progress: float | None = None,
    grl_lambda: float | None = None,
) -> StepStats:
    """Gradient-reversal min-max: one backward pass of L_DDL + β·L_pose through a GRL of scale −α·λ.

    λ is ``grl_lambda`` when given, else ``dann_lambda(progress)`` (``progress`` in [0, 1]).
    ``optimizer`` holds all of the model's parameters.
    """
    weights = weights or WSCDALossWeights()
    if grl_lambda is None:
        if progress is None:
            raise ValueError("grl_step needs the training progress (or an explicit grl_lambda)")
        grl_lambda = dann_lambda(progress)
    optimizer.zero_grad(set_to_none=True)
    out = model(batch.images, grl_lambda=-weights.alpha * grl_lambda)
    l_ddl = _ddl(out.domain_logits, batch, weights)
    l_pose = _pose(out.heatmaps, batch, weights)
    (l_ddl + weights.beta * l_pose).backward()
    optimizer.step()
    accuracy = DomainAccuracy()
    accuracy.update(out.domain_logits.detach(), batch.y, batch.z, batch.s)
    loss = total_loss(l_ddl.detach(), l_pose.detach(), alpha=weights.alpha, beta=weights.beta)
    l_ddl, l_pose = float(l_ddl.detach()), float(l_pose.detach())
    return StepStats(float(loss), l_ddl, l_ddl, l_pose, grl_lambda, accuracy)


@torch.no_grad()
def evaluate_ddl(model: WSCDANetwork, batch: WSCDABatch, weights: WSCDALossWeights | None = None) -> float:
    """L_DDL of ``batch`` under the current model, without updating anything (modes left as they are)."""
    weights = weights or WSCDALossWeights()
    return float(_ddl(model(batch.images).domain_logits, batch, weights))


def make_optimizers(
    model: WSCDANetwork, scheme: str, *, lr: float = 1e-3, discriminator_lr: float | None = None
) -> list[torch.optim.Optimizer]:
    """Adam optimisers for a scheme: [pose, discriminator] for ``"alternating"``, [all] for ``"grl"``."""
    discriminator_lr = lr if discriminator_lr is None else discriminator_lr
    if scheme == "alternating":
        return [
            torch.optim.Adam(model.pose_parameters(), lr=lr),
            torch.optim.Adam(model.discriminator_parameters(), lr=discriminator_lr),
        ]
    if scheme == "grl":
        return [
            torch.optim.Adam(
                [
                    {"params": model.pose_parameters(), "lr": lr},
                    {"params": model.discriminator_parameters(), "lr": discriminator_lr},
                ]
            )
        ]
    raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")


def train_step(
    scheme: str,
    model: WSCDANetwork,
    batch: WSCDABatch,
    optimizers: list[torch.optim.Optimizer],
    weights: WSCDALossWeights | None = None,
    *,
    progress: float = 1.0,
) -> StepStats:
    """One step of ``scheme`` with the optimisers :func:`make_optimizers` built for it."""
    if scheme == "alternating":
        return alternating_step(model, batch, optimizers[0], optimizers[1], weights)
    if scheme == "grl":
        return grl_step(model, batch, optimizers[0], weights, progress=progress)
    raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
