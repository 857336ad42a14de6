"""The WS-CDA training loop: epochs of :mod:`~animalpose.adapt.wscda.training` steps, per-epoch metrics
(losses and the discriminator's per-domain accuracy), atomic weights-only checkpoints and resume.

The loop knows nothing of datasets: ``batches(epoch)`` returns that epoch's batches (e.g. a DataLoader
over :class:`~animalpose.adapt.wscda.mixing.MixedBatchSampler` after ``set_epoch(epoch)``), so a resumed
run sees the same batches as an uninterrupted one. The DANN progress of the GRL scheme is the fraction
of all steps done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.progress import Progress

from animalpose.adapt.wscda.losses import WSCDALossWeights
from animalpose.adapt.wscda.network import WSCDANetwork
from animalpose.adapt.wscda.training import SCHEMES, DomainAccuracy, WSCDABatch, make_optimizers, train_step
from animalpose.engine.checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from animalpose.errors import ConfigError
from animalpose.keypoints import KeypointSchema


@dataclass(frozen=True)
class WSCDAFitConfig:
    """How to train.

    Attributes:
        scheme: ``"alternating"`` or ``"grl"``.
        epochs: number of epochs.
        steps_per_epoch: batches per epoch (for the DANN progress).
        lr: Adam learning rate of the extractor, adapter and estimator.
        discriminator_lr: Adam learning rate of the discriminator (default: ``lr``).
        loss: the objective's weights (paper defaults α = −1, β = 500).
    """

    scheme: str = "alternating"
    epochs: int = 1
    steps_per_epoch: int = 1
    lr: float = 1e-3
    discriminator_lr: float | None = None
    loss: WSCDALossWeights = field(default_factory=WSCDALossWeights)

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ConfigError("<wscda>", "scheme", f"expected one of {SCHEMES}, got {self.scheme!r}")
        for name in ("epochs", "steps_per_epoch"):
            if getattr(self, name) < 1:
                raise ConfigError("<wscda>", name, f"must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError("<wscda>", "lr", f"must be positive, got {self.lr}")


def _epoch_metrics(stats: list, accuracy: DomainAccuracy) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in ("loss", "l_ddl", "l_ddl_disc", "l_pose"):
        out[key] = sum(getattr(s, key) for s in stats) / max(len(stats), 1)
    if stats and stats[-1].grl_lambda is not None:
        out["grl_lambda"] = stats[-1].grl_lambda
    out.update(accuracy.metrics())
    return out


def fit_wscda(
    model: WSCDANetwork,
    batches: Callable[[int], Iterable[WSCDABatch]],
    cfg: WSCDAFitConfig,
    *,
    schema: KeypointSchema,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    config: Mapping | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train ``model`` for ``cfg.epochs`` epochs; returns the metrics of each epoch run.

    Args:
        model: the WS-CDA network (moved to ``device``).
        batches: epoch -> that epoch's batches (``cfg.steps_per_epoch`` of them).
        schema: the joint-space schema, stored in checkpoints.
        checkpoint: file written atomically after every epoch (weights only, with optimiser and RNG states).
        resume: continue from ``checkpoint`` when it exists (its completed epochs are skipped).
        config: the resolved configuration, stored in the checkpoint.
        on_epoch: called with (epoch, metrics) after each epoch (MLflow logging).
    """
    model.to(device)
    optimizers = make_optimizers(model, cfg.scheme, lr=cfg.lr, discriminator_lr=cfg.discriminator_lr)
    start = 0
    if resume and checkpoint is not None and Path(checkpoint).is_file():
        ckpt = load_checkpoint(checkpoint, schema=schema, map_location=device)
        model.load_state_dict(ckpt["model"])
        for opt, state in zip(optimizers, ckpt["optimizer"]["states"], strict=True):
            opt.load_state_dict(state)
        if ckpt.get("rng"):
            set_rng_state(ckpt["rng"])
        start = int(ckpt["epoch"])
    total_steps = cfg.epochs * cfg.steps_per_epoch
    history = []
    model.train()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"WS-CDA ({cfg.scheme})", total=total_steps, completed=start * cfg.steps_per_epoch)
        for epoch in range(start, cfg.epochs):
            accuracy = DomainAccuracy()
            stats = []
            for k, batch in enumerate(batches(epoch)):
                done = epoch * cfg.steps_per_epoch + k
                step = train_step(
                    cfg.scheme, model, batch.to(device), optimizers, cfg.loss, progress=min(1.0, done / total_steps)
                )
                stats.append(step)
                accuracy.merge(step.accuracy)
                bar.advance(task)
            metrics = _epoch_metrics(stats, accuracy)
            history.append(metrics)
            if checkpoint is not None:
                save_checkpoint(
                    checkpoint,
                    model=model.state_dict(),
                    schema=schema,
                    config=dict(config or {}),
                    epoch=epoch + 1,
                    step=(epoch + 1) * cfg.steps_per_epoch,
                    optimizer={"states": [opt.state_dict() for opt in optimizers]},
                    metrics=metrics,
                    extra={"scheme": cfg.scheme},
                )
            if on_epoch is not None:
                on_epoch(epoch, metrics)
    return history
