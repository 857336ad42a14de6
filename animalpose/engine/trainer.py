"""The training loop: optimisers and schedules of the references, AMP, EMA, flip-test validation,
best-model selection, early stopping, exact resume, DDP, checkpoints and MLflow tracking.

Defaults follow the papers: RMSprop lr 2.5e-4 for the stacked hourglass (Newell et al. 2016; CC-SSL),
Adam lr 1e-3 for SimpleBaseline (Xiao et al. 2018) and HRNet (Sun et al. 2019). Every stage output
of the network is supervised (intermediate supervision). The loss is the one the model declares
(``model.loss``, :class:`animalpose.models.heads.PoseModel`): heatmap MSE, DSNT, integral L1, CPN's
L2 + OHKM; a bare network without ``loss`` is trained with heatmap MSE.

Iterative training (LPN, Zhang et al., arXiv 1911.10346; ``train.cycles`` = C > 1): the run is C cycles of
``train.epochs`` epochs; each cycle starts from the weights the previous one ended with, with the optimiser
state (Adam moments, momentum) cleared and the learning-rate schedule started again. Best-model selection
and early stopping span the whole run.

Exact resume: the sample order of epoch ``e`` depends only on ``seed + e`` (:class:`EpochSampler`),
augmentation on (seed, epoch, index) (the dataset), so a run restarted from a checkpoint written at
step ``s`` replays epoch ``e`` from sample ``s_e × batch`` with every RNG state restored. On the CPU
in deterministic mode the resumed run ends with bit-identical weights.

Speed paths of the step (``train.channels_last``, ``amp``, ``pointwise_linear``, ``compile``): the
training forward ``train_forward`` is ``torch.compile(model)`` when ``compile`` is on, sharing the
parameters of ``model``, which checkpoints, EMA and validation keep using (no ``_orig_mod.`` keys).
"""

from __future__ import annotations

import copy
import math
import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from animalpose.config import ExperimentConfig, to_dict
from animalpose.data.dataset import SkippedImages, TopDownDataset, collate_skip
from animalpose.data.flip import flip_heatmaps, flip_permutation_or_none
from animalpose.engine.checkpoint import (
    check_architecture,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
    set_rng_state,
    strip_ddp_prefix,
)
from animalpose.engine.distributed import DistInfo, EpochSampler, all_reduce_sum
from animalpose.engine.inference import flip_shift_for, unwrap
from animalpose.evaluation import crop_distances, pck_from_distances
from animalpose.keypoints import KeypointSchema
from animalpose.models.speed import compile_model, pointwise_convs_as_linear
from animalpose.threads import loader_workers
from animalpose.tracking import Tracker

# the fewest images a training step takes: BatchNorm cannot train on one value per channel (a batch of one
# at a 1x1 bottleneck, e.g. a 64-px hourglass, raises), so a batch left with one image is not trained on
MIN_TRAIN_BATCH = 2


def build_optimizer(cfg: ExperimentConfig, params) -> torch.optim.Optimizer:
    """``train.optimizer`` with ``train.lr`` / ``weight_decay`` / ``momentum`` (RMSprop: PyTorch defaults
    alpha 0.99, eps 1e-8, as in pytorch-pose; Adam: betas 0.9, 0.999)."""
    t = cfg.train
    if t.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)


def lr_factor(step: int, cfg: ExperimentConfig, steps_per_epoch: int) -> float:
    """Multiplier of the base lr after ``step`` optimiser steps.

    Linear warm-up over ``train.warmup_steps`` from ``train.warmup_factor``, then ``step``: × gamma at each
    milestone epoch passed, ``cosine``: 0.5 (1 + cos(π t)) or ``linear``: 1 − t, with t the fraction of
    post-warm-up steps done (``linear`` with ``warmup_factor`` 0.1 is the lr_lambda of MSPN/RSN's released
    code, ``lib/utils/solver.py``; ours counts the step being taken, one warm-up step ahead of its). With
    ``train.cycles`` > 1 (LPN's iterative training) the schedule starts again, warm-up included, every
    ``train.epochs`` epochs.
    """
    t = cfg.train
    if t.cycles > 1:
        step %= t.epochs * max(1, steps_per_epoch)
    ramp = min(1.0, (step + 1) / t.warmup_steps) if t.warmup_steps > 0 else 1.0
    warm = t.warmup_factor + (1.0 - t.warmup_factor) * ramp
    if t.schedule == "step":
        epoch = step // max(1, steps_per_epoch)
        return warm * t.gamma ** sum(epoch >= m for m in t.milestones)
    total = max(1, t.epochs * steps_per_epoch - t.warmup_steps)
    frac = min(1.0, max(0.0, (step - t.warmup_steps) / total))
    if t.schedule == "linear":
        return warm * (1.0 - frac)
    return warm * 0.5 * (1.0 + math.cos(math.pi * frac))


def target_coords(batch: dict, codec, device: torch.device) -> torch.Tensor | None:
    """The batch's crop keypoints in heatmap pixels (N, K, 2), for coordinate losses (DSNT, integral);
    None when the batch carries none (e.g. pseudo-label batches)."""
    crop_kp = batch.get("meta", {}).get("crop_keypoints")
    if crop_kp is None:
        return None
    scale = torch.as_tensor(codec.scale, dtype=torch.float32)
    # unlabelled joints (weight 0) may hold NaN, which a zero weight would not cancel
    return torch.nan_to_num(crop_kp[..., :2].float() * scale).to(device, non_blocking=True)


class ModelEMA:
    """Exponential moving average of parameters (buffers copied): ``ema = d · ema + (1 - d) · w``."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(unwrap(model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        src = unwrap(model).state_dict()
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point and k in dict(self.module.named_parameters()):
                v.mul_(self.decay).add_(src[k].detach(), alpha=1 - self.decay)
            else:
                v.copy_(src[k])


@dataclass
class TrainResult:
    out_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    best_score: float | None
    history: list[dict] = field(default_factory=list)
    run_id: str | None = None
    images_per_second: float = float("nan")
    stopped_early: bool = False
    halted: bool = False
    data_skipped: dict = field(default_factory=dict)  # SkipReport.to_dict() of the records data.skip_bad dropped
    # images that passed validation but did not decode when read (SkippedSample.to_dict()), each once
    images_skipped: list[dict] = field(default_factory=list)


class Trainer:
    """Trains ``model`` on ``train_set``, validating on ``val_sets`` every epoch.

    Args:
        cfg: the resolved experiment configuration.
        model: the network (built on the CPU; moved to the configured device here).
        schema: keypoint schema of the data and the head.
        train_set: augmented training samples; val_sets: name → plain-crop validation samples.
        out_dir: where ``last.ckpt`` and ``best.ckpt`` are written.
        tracker: MLflow run (rank 0), or None.
        dist: process-group information (rank, world size).
        halt_after_steps: test hook: stop after this many global steps *without* saving (a kill).
        extra: plain-typed metadata stored in every checkpoint (e.g. normalisation).
    """

    def __init__(self, cfg: ExperimentConfig, model: nn.Module, schema: KeypointSchema, train_set: TopDownDataset,
                 val_sets: dict[str, TopDownDataset], out_dir: Path, *, device: torch.device,
                 tracker: Tracker | None = None, dist: DistInfo | None = None, progress: bool = True,
                 halt_after_steps: int | None = None, extra: dict | None = None, log_every: int = 10):
        from animalpose.losses import HeatmapMSELoss

        self.cfg, self.schema, self.out_dir = cfg, schema, Path(out_dir)
        self.device, self.dist = device, dist or DistInfo()
        self.tracker = tracker if self.dist.is_main else None
        self.train_set, self.val_sets = train_set, val_sets
        self.loss_fn = getattr(model, "loss", HeatmapMSELoss())  # the loss the model declares (PoseModel.loss)
        # the target coordinates are built only for a loss that reads them (DSNT, integral, coarse-to-fine)
        self.needs_coords = bool(getattr(model, "needs_coords", False))
        self.progress = progress and self.dist.is_main
        self.halt_after_steps = halt_after_steps
        self.extra = dict(extra or {})
        self.log_every = log_every
        self.skipped_images = SkippedImages()  # on this rank; kept in the checkpoints, so a resume keeps them
        t = cfg.train
        self.channels_last = t.channels_last
        model = model.to(device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if t.pointwise_linear:
            pointwise_convs_as_linear(model)
        self.model = model
        if self.dist.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        # the training forward: compiled (sharing self.model's parameters) or self.model itself; state,
        # EMA and validation always use self.model
        self.train_forward = (compile_model(self.model, mode=None if t.compile_mode == "default" else t.compile_mode)
                              if t.compile else self.model)
        self.optimizer = build_optimizer(cfg, self.model.parameters())
        per_rank = -(-len(train_set) // self.dist.world_size)
        self.steps_per_epoch = max(1, -(-per_rank // t.batch_size))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, cfg, self.steps_per_epoch))
        self.amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler(device.type, enabled=t.amp and device.type == "cuda")
        self.ema = ModelEMA(self.model, t.ema_decay) if t.ema else None
        self.sampler = EpochSampler(len(train_set), shuffle=True, seed=t.seed, rank=self.dist.rank,
                                    world_size=self.dist.world_size)
        self.flip_perm = flip_permutation_or_none(schema) if t.flip_test else None
        self.flip_shift = flip_shift_for(cfg.model.name, train_set.codec)
        self.epoch, self.step, self.best_score, self.bad_epochs = 0, 0, None, 0
        self.total_epochs = t.epochs * t.cycles
        # {"score": s} while an improved epoch's best.ckpt is not on disk (its write was interrupted):
        # recorded in last.ckpt so that resume rebuilds best.ckpt from those very weights
        self.pending_best: dict | None = None
        self._warned_short = False
        self.history: list[dict] = []
        self.last_per_joint: np.ndarray | None = None
        self.epoch_acc: list = [0.0, 0, 0.0, 0.0]  # loss sum, images, compute s, wall s of the current epoch
        self.select_key = self._selection_key()
        if self.dist.is_main:  # a kill during a checkpoint write leaves its temporary file behind
            remove_stale_temporaries(self.out_dir)

    # -- checkpoints -------------------------------------------------------------------------------

    def _selection_key(self) -> str | None:
        sel = self.cfg.train.select_on
        if not self.val_sets or sel in ("none", "last"):
            return None
        if sel == "source-val":
            return "val/pck@0.05"
        if sel not in self.val_sets:
            from animalpose.errors import ConfigError

            raise ConfigError("<config>", "train.select_on", f"no validation set named {sel!r} "
                                                             f"(have: source-val, {', '.join(self.val_sets)})")
        return f"val/{sel}/pck@0.05"

    def state(self) -> dict:
        return {
            "model": strip_ddp_prefix(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema else None,
        }

    def save(self, path: Path, metrics: dict | None = None) -> Path:
        s = self.state()
        return save_checkpoint(path, model=s["model"], schema=self.schema, config=to_dict(self.cfg),
                               epoch=self.epoch, step=self.step, optimizer=s["optimizer"],
                               scheduler=s["scheduler"], scaler=s["scaler"], ema=s["ema"], metrics=metrics,
                               extra={**self.extra, "best_score": self.best_score, "bad_epochs": self.bad_epochs,
                                      "pending_best": self.pending_best,
                                      "history": self.history, "epoch_acc": self.epoch_acc,
                                      "skipped_images": self.skipped_images.to_list(),
                                      "run_id": self.tracker.run_id if self.tracker else None})

    def resume(self, path: Path) -> None:
        """Restore everything from ``path`` (model, optimiser, schedule, scaler, EMA, counters, RNG)."""
        path = Path(path)
        ckpt = load_checkpoint(path, schema=self.schema, map_location=self.device)
        check_architecture(ckpt, to_dict(self.cfg)["model"], str(path))
        try:
            unwrap(self.model).load_state_dict(ckpt["model"])
        except RuntimeError as exc:  # shapes differ although the stored config agrees (edited by hand?)
            from animalpose.errors import DataError

            raise DataError(str(path), "model", f"weights do not fit {self.cfg.model.name}: "
                                                f"{str(exc).splitlines()[0]}") from exc
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and ckpt.get("ema"):
            self.ema.module.load_state_dict(ckpt["ema"])
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        extra = ckpt.get("extra") or {}
        self.best_score, self.bad_epochs = extra.get("best_score"), int(extra.get("bad_epochs") or 0)
        self.history = list(extra.get("history") or [])
        self.epoch_acc = list(extra.get("epoch_acc") or [0.0, 0, 0.0, 0.0])
        self.skipped_images = SkippedImages(extra.get("skipped_images"))
        if ckpt.get("rng"):
            set_rng_state(ckpt["rng"])
        if self.dist.is_main:
            remove_stale_temporaries(path.parent)
        best = self.out_dir / "best.ckpt"
        pending = extra.get("pending_best")
        if pending is not None:  # the run was stopped while writing best.ckpt: these weights are the best
            self.best_score, self.bad_epochs = pending.get("score"), 0
            if self.dist.is_main:
                self.save(best, ckpt.get("metrics"))
        elif self.best_score is not None and not best.is_file():
            # written by a version that saved last before best and was killed in between: the best
            # weights are gone; forget their score so that the next validated epoch writes best.ckpt
            if self.dist.is_main:
                print(f"warning: {best} is missing although {path} records best score {self.best_score:.4g}; "
                      "the next epoch's weights will be kept as best", file=sys.stderr, flush=True)
            self.best_score = None

    # -- loops -------------------------------------------------------------------------------------

    def _loader(self, dataset, sampler, batch_size: int) -> DataLoader:
        workers = loader_workers(self.cfg.data.workers, self.device)
        if workers > 0 and isinstance(dataset, TopDownDataset):
            dataset.fill_cache()  # decoded here once: the workers forked below share it, not decode again
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                          collate_fn=collate_skip, generator=torch.Generator().manual_seed(self.cfg.train.seed),
                          persistent_workers=False, pin_memory=self.device.type == "cuda")

    def _forward_loss(self, batch: dict, loss_fn=None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The loss of one batch (``loss_fn``: a :class:`~animalpose.losses.PoseLoss` in place of the model's)
        and the stage outputs."""
        images = batch["image"].to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        target = batch["target"].to(self.device, non_blocking=True)
        weight = batch["target_weight"].to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.cfg.train.amp):
            outputs = self.train_forward(images)
        outputs = [o.float() for o in outputs]
        coords = target_coords(batch, self.train_set.codec, self.device) if self.needs_coords else None
        return (self.loss_fn if loss_fn is None else loss_fn)(outputs, target, weight, coords), outputs

    def train_epoch(self) -> dict:
        """One epoch (or its remainder after a resume). Returns mean loss and images/s."""
        t = self.cfg.train
        done_in_epoch = self.step - self.epoch * self.steps_per_epoch
        self.sampler.set_epoch(self.epoch, start=done_in_epoch * t.batch_size)
        self.train_set.set_epoch(self.epoch)
        loader = self._loader(self.train_set, self.sampler, t.batch_size)
        self.model.train()
        bar = None
        if self.progress:
            from animalpose.progress import progress_bar

            bar = progress_bar(total=self.steps_per_epoch, initial=done_in_epoch,
                               desc=f"epoch {self.epoch + 1}/{self.total_epochs}", leave=False)
        if done_in_epoch == 0:
            self.epoch_acc = [0.0, 0, 0.0, 0.0]
            if self.epoch > 0 and self.epoch % t.epochs == 0:  # a new cycle of iterative training
                self.optimizer.state.clear()
        # carried over a mid-epoch resume, so epoch means are exact
        loss_sum, n_images, busy, wall_before = self.epoch_acc
        t_start = time.perf_counter()
        for batch in loader:
            self.skipped_images.add(batch)
            if not self._trainable(batch):
                # every sample unreadable, or one left (BatchNorm cannot train on one value per channel): no
                # update, but the step counts, so an epoch stays steps_per_epoch steps long (the schedule and
                # the mid-epoch resume position depend on it)
                self._drop_step(batch)
                if bar is not None:
                    bar.update(1)
                if self.halt_after_steps is not None and self.step >= self.halt_after_steps:
                    break
                if self.step % t.checkpoint_every_steps == 0 and self.dist.is_main:
                    self.save(self.out_dir / "last.ckpt")
                continue
            t0 = time.perf_counter()
            loss, _ = self._forward_loss(batch)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if t.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.model)
            self.step += 1
            busy += time.perf_counter() - t0
            bs = batch["image"].shape[0]
            loss_value = loss.item()
            loss_sum += loss_value * bs
            n_images += bs
            self.epoch_acc = [loss_sum, n_images, busy, wall_before + time.perf_counter() - t_start]
            ips = n_images * self.dist.world_size / max(wall_before + time.perf_counter() - t_start, 1e-9)
            if bar is not None:
                # drawn by the update (a set_postfix that redraws would draw every step into a log file)
                bar.set_postfix(loss=f"{loss_value:.3g}", img_s=f"{ips:.1f}", refresh=False)
                bar.update(1)
            if self.tracker and self.step % self.log_every == 0:
                self.tracker.log_metrics({"train/loss_step": loss_value, "train/lr": self.scheduler.get_last_lr()[0],
                                          "train/images_per_s": ips}, step=self.step)
            if self.halt_after_steps is not None and self.step >= self.halt_after_steps:
                break
            if self.step % t.checkpoint_every_steps == 0 and self.dist.is_main:
                self.save(self.out_dir / "last.ckpt")
        if bar is not None:
            bar.close()
        totals = all_reduce_sum(torch.tensor([loss_sum, float(n_images)], dtype=torch.float64), self.dist)
        wall = wall_before + time.perf_counter() - t_start
        return {"train/loss": float(totals[0] / max(totals[1], 1)),
                "train/images_per_s": float(n_images * self.dist.world_size / max(wall, 1e-9)),
                "train/compute_images_per_s": float(n_images * self.dist.world_size / max(busy, 1e-9)),
                "train/epoch_seconds": wall}

    def _trainable(self, batch: dict) -> bool:
        """Whether ``batch`` holds at least :data:`MIN_TRAIN_BATCH` images (on every rank: under DDP the ranks
        must agree, or the ones that train would wait for the others' gradients forever)."""
        ok = batch["image"].shape[0] >= MIN_TRAIN_BATCH if "image" in batch else False
        if self.dist.enabled:
            short = all_reduce_sum(torch.tensor([0.0 if ok else 1.0], device=self.device), self.dist)
            ok = float(short[0]) == 0.0
        return ok

    def _drop_step(self, batch: dict) -> None:
        """A step without an update (see :meth:`train_epoch`): the counters and the schedule advance, loudly."""
        n = batch["image"].shape[0] if "image" in batch else 0
        if batch.get("skipped") or not self._warned_short:  # the epoch's short last batch: said once
            self._warned_short |= not batch.get("skipped")
            why = f"{batch['skipped']} image(s) skipped as undecodable, " if batch.get("skipped") else ""
            print(f"warning: step {self.step + 1} (epoch {self.epoch + 1}): {why}{n} image(s) left in the batch"
                  f"{' here or on another rank' if self.dist.enabled else ''}; a training step needs "
                  f"{MIN_TRAIN_BATCH} (BatchNorm): no update this step", file=sys.stderr, flush=True)
        with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()": intended here
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.step()
        self.step += 1

    @torch.no_grad()
    def validate(self) -> dict:
        """Loss and PCK@0.05/0.1 (crop, flip-tested) per validation set and pooled (``val/...``)."""
        module = self.ema.module if self.ema is not None else unwrap(self.model)
        module.eval()
        metrics: dict[str, float] = {}
        pooled = {0.05: None, 0.1: None}
        pooled_loss = torch.zeros(2, dtype=torch.float64)
        for name, ds in self.val_sets.items():
            indices = list(range(self.dist.rank, len(ds), self.dist.world_size))
            loader = self._loader(ds, indices, self.cfg.train.batch_size)
            dists, loss_sum, n = [], 0.0, 0
            for batch in loader:
                self.skipped_images.add(batch)
                if "image" not in batch:
                    continue
                images = batch["image"].to(self.device)
                target = batch["target"].to(self.device)
                weight = batch["target_weight"].to(self.device)
                if self.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                outputs = [o.float() for o in module(images)]
                coords = target_coords(batch, ds.codec, self.device) if self.needs_coords else None
                loss = self.loss_fn(outputs, target, weight, coords)
                hm = outputs[-1]
                if self.flip_perm is not None:  # flip test: average with the mirrored input's maps
                    flipped = module(images.flip(-1))[-1].float()
                    hm = 0.5 * (hm + flip_heatmaps(flipped, self.flip_perm, shift=self.flip_shift))
                # the codec's joint score maps (G-RMI: Hough maps of its heatmaps + offsets; others: the maps)
                dists.append(crop_distances(ds.codec.score_maps(hm.cpu().numpy()),
                                            ds.codec.score_maps(target.cpu().numpy(), target=True)))
                loss_sum += float(loss) * len(images)
                n += len(images)
            d = np.concatenate(dists) if dists else np.zeros((0, self.schema.num_joints))
            lt = all_reduce_sum(torch.tensor([loss_sum, float(n)], dtype=torch.float64), self.dist)
            pooled_loss += lt
            metrics[f"val/{name}/loss"] = float(lt[0] / max(lt[1], 1))
            for a in pooled:
                r = pck_from_distances(d, a)
                c = all_reduce_sum(torch.from_numpy(np.stack([r.correct, r.total]).astype(np.float64)), self.dist)
                metrics[f"val/{name}/pck@{a}"] = float(c[0].sum() / c[1].sum()) if c[1].sum() > 0 else float("nan")
                pooled[a] = c if pooled[a] is None else pooled[a] + c
        if self.val_sets:
            metrics["val/loss"] = float(pooled_loss[0] / max(pooled_loss[1], 1))
            for a, c in pooled.items():
                metrics[f"val/pck@{a}"] = float(c[0].sum() / c[1].sum()) if c[1].sum() > 0 else float("nan")
            c = pooled[0.05].numpy()
            self.last_per_joint = np.where(c[1] > 0, c[0] / np.maximum(c[1], 1), np.nan)
        return metrics

    def fit(self, until: int | None = None) -> TrainResult:
        """Train until ``train.epochs`` × ``train.cycles`` (or early stopping / the halt hook); returns where
        things are.

        ``until``: stop after that epoch instead (at most the total), e.g. at the end of a
        CC-SSL round; the lr schedule always spans the whole ``train.epochs``, so training in pieces
        (``fit(until=2)``, then ``fit(until=4)``) takes the same steps as ``fit()`` to epoch 4.
        """
        t = self.cfg.train
        end = self.total_epochs if until is None else min(until, self.total_epochs)
        best_path = self.out_dir / "best.ckpt"
        last_path = self.out_dir / "last.ckpt"
        stopped_early = halted = False
        ips = []
        while self.epoch < end:
            train_metrics = self.train_epoch()
            if self.halt_after_steps is not None and self.step >= self.halt_after_steps:
                halted = True
                break
            ips.append(train_metrics["train/images_per_s"])
            val_metrics = self.validate()
            self.epoch += 1
            metrics = {**train_metrics, **val_metrics, "epoch": self.epoch}
            improved = False
            before = (self.best_score, self.bad_epochs)
            if self.select_key is not None:
                score = val_metrics.get(self.select_key, float("nan"))
                if score == score and (self.best_score is None or score > self.best_score):
                    self.best_score, self.bad_epochs, improved = score, 0, True
                else:
                    self.bad_epochs += 1
            else:
                improved = True
            self.history.append(metrics)
            if self.dist.is_main:
                # best before last: last.ckpt records the improved best_score, so were it written first, a
                # kill before best.ckpt landed would lose the best weights for good (no later epoch beats it)
                if improved:
                    self._save_best(best_path, metrics, before)
                self.save(last_path, metrics)
                if self.tracker:
                    self.tracker.log_metrics(self.tracked(metrics), step=self.epoch)
                self._print_epoch(metrics, improved)
            if t.early_stop_patience is not None and self.bad_epochs >= t.early_stop_patience:
                stopped_early = True
                break
        return TrainResult(self.out_dir, last_path, best_path if best_path.is_file() else None, self.best_score,
                           self.history, self.tracker.run_id if self.tracker else None,
                           float(np.median(ips)) if ips else float("nan"), stopped_early, halted,
                           images_skipped=self.skipped_images.to_list())

    def tracked(self, metrics: dict) -> dict:
        """The epoch metrics worth a line in MLflow: with one validation set its named copies
        (``val/<file stem>/...``, the stem holding a dataset hash) repeat the pooled ``val/...`` ones."""
        if len(self.val_sets) != 1:
            return metrics
        (name,) = self.val_sets
        return {k: v for k, v in metrics.items() if not k.startswith(f"val/{name}/")}

    def _save_best(self, path: Path, metrics: dict, before: tuple[float | None, int]) -> None:
        """Write best.ckpt; if that fails (Ctrl-C, full disk), roll the best score back so that a last.ckpt
        saved afterwards (the interrupt handler's) does not claim a best that is not on disk, and mark the
        weights as a pending best that :meth:`resume` writes out."""
        pending = {"score": self.best_score}
        try:
            self.save(path, metrics)
        except BaseException:
            self.best_score, self.bad_epochs = before
            self.pending_best = pending
            raise

    def _print_epoch(self, m: dict, improved: bool) -> None:
        if not self.progress:
            return
        parts = [f"epoch {int(m['epoch'])}/{self.total_epochs}", f"loss {m['train/loss']:.4g}",
                 f"{m['train/images_per_s']:.1f} img/s"]
        if "val/pck@0.05" in m:
            parts.append(f"val PCK@0.05 {100 * m['val/pck@0.05']:.1f}%")
        print("  ".join(parts) + ("  *best*" if improved and self.select_key else ""), file=sys.stderr, flush=True)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - libraries that use the global RNG must be seeded too
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
