"""CC-SSL rounds: pseudo-label the target, keep the consistent joints, train on source + target, repeat.

Mu et al., "Learning from Synthetic Animals" (CVPR 2020), Alg. 1, as its reference code runs it:

1. start from a model trained on the synthetic source (``ccssl.source_checkpoint``, or
   ``ccssl.source_epochs`` of source-only training first);
2. every ``regenerate_every`` epochs (reference: 10 of 60), predict on every unlabelled target crop
   with the equivariance / invariance views (:mod:`animalpose.adapt.pseudolabel`), refine video frames
   with optical flow (:mod:`animalpose.adapt.temporal`) and keep the most confident joints
   (:mod:`animalpose.adapt.selection`; the kept fraction grows 20 → 40 → 60 → 80%);
3. train on ``L_source + λ · L_target`` (λ = 10), one source and one target batch per step, the
   model and optimiser continued, not reinitialised.

Model selection: by default the best epoch is chosen on the *source* validation set
(``train.select_on: source-val``), so no target label is ever used. ``train.select_on: target-val``
selects on ``ccssl.target_val`` instead, which is what the reference did (it picked its best epoch
on labelled real validation images): that leaks target labels and is offered only to reproduce
published numbers. Labelled target data is otherwise used only to *report* (pseudo-label precision,
target PCK), never to train or select.

Resumable at round granularity: after each round the trainer state goes to ``round_<r>.ckpt`` and
``state.json`` records the finished rounds; a rerun with the same output folder continues after the
last finished round. Tracking: one MLflow parent run, one nested run per round.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import AfterValidator, Field, model_validator
from torch.utils.data import DataLoader

from animalpose.adapt import diagnostics as diag
from animalpose.adapt.pseudolabel import ConsistencyConfig, PseudoLabelSet, finalize, label_records
from animalpose.adapt.selection import (
    RoundSchedule,
    keep_fractions_validator,
    reference_percentile,
    select_by_percentile,
)
from animalpose.adapt.shards import Labeler, LabelRequest, cpu_state
from animalpose.adapt.temporal import FlowParams
from animalpose.config import ExistingPath, ExperimentConfig, ResolvedPath, Section, _KeyedError, to_dict
from animalpose.data.augment import build_augmenter
from animalpose.data.dataset import Normalization, TopDownDataset, collate_skip
from animalpose.data.flip import flip_permutation_or_none
from animalpose.data.readers import read_dataset
from animalpose.data.records import PoseRecord
from animalpose.data.validate import validate_dataset
from animalpose.engine.build import augment_overrides, build_data, crop_padding, make_codec, make_model, pick_device
from animalpose.engine.checkpoint import load_checkpoint
from animalpose.engine.inference import final_heatmaps, flip_shift_for, unwrap
from animalpose.engine.trainer import Trainer, seed_everything
from animalpose.errors import ConfigError, DataError
from animalpose.evaluation import crop_distances, pck_from_distances
from animalpose.keypoints import KeypointSchema
from animalpose.tracking import Tracker

TARGET_VAL = "target-val"


# Views × images per pseudo-labelling forward pass on a CPU: the quick network's 128-px views ran at
# 19 ms/image in chunks of 8 against 37 ms/image in chunks of 64 (activations outgrow the caches;
# BENCHMARKS.md, CC-SSL pseudo-labelling speed). On a GPU larger chunks keep it busy.
CPU_VIEW_BATCH = 8


class CCSSLSection(Section):
    """The ``ccssl:`` section (defaults: the reference, invariance on, selection on source data)."""

    source_checkpoint: ExistingPath | None = None
    source_epochs: int = Field(default=0, ge=0)
    regenerate_every: int = Field(default=10, ge=1)
    lambda_target: float = Field(default=10.0, ge=0)
    # learning rate of the adaptation rounds (None: train.lr, as the reference, which continues at its
    # pretraining rate). Source-only training (source_epochs) always uses train.lr.
    lr: float | None = Field(default=None, gt=0)
    schedule: Literal["rounds", "reference"] = "rounds"
    keep_fractions: Annotated[list[float], AfterValidator(keep_fractions_validator)] = Field(
        default_factory=lambda: [0.2, 0.4, 0.6, 0.8])
    num_geometric: int = Field(default=4, ge=0)
    scale_sigma: float = Field(default=0.25, ge=0, lt=1)
    rotation_sigma: float = Field(default=30.0, ge=0)
    flip: bool = False
    invariance: bool = True
    num_photometric: int = Field(default=2, ge=0)
    confidence: Literal["peak", "peak_agreement"] = "peak"
    agreement_sigma: float = Field(default=2.0, gt=0)
    temporal: bool = True
    flow_window: int = Field(default=15, ge=3)
    flow_levels: int = Field(default=2, ge=0)
    flow_max_jump: float = Field(default=15.0, gt=0)
    flow_ratio: float = Field(default=0.9, gt=0, le=1)
    flow_max_gap: int = Field(default=1, ge=1)
    target_val: list[ExistingPath] = Field(default_factory=list)
    target_truth: bool = True
    pseudo_batch_size: int = Field(default=16, ge=1)
    # views x images per forward pass while pseudo-labelling; None: CPU_VIEW_BATCH on a CPU, else
    # 4 x pseudo_batch_size. Results do not depend on it beyond float rounding.
    view_batch: int | None = Field(default=None, ge=1)
    gallery: int = Field(default=8, ge=0)
    out_dir: ResolvedPath | None = None

    @model_validator(mode="after")
    def _schedule_uses_keep_fractions(self) -> CCSSLSection:
        if self.schedule == "reference" and "keep_fractions" in self.model_fields_set:
            raise _KeyedError("keep_fractions", "not used by schedule 'reference' (its kept fraction follows "
                              "the epoch); remove it or set schedule: rounds")
        return self

    def view_chunk(self, device: str | torch.device) -> int:
        """Views × images per forward pass on ``device`` (``view_batch`` or the device's default)."""
        if self.view_batch is not None:
            return self.view_batch
        return CPU_VIEW_BATCH if torch.device(device).type == "cpu" else 4 * self.pseudo_batch_size

    def consistency(self, device: str | torch.device) -> ConsistencyConfig:
        """The consistency check's settings for pseudo-labelling on ``device``."""
        return ConsistencyConfig(num_geometric=self.num_geometric, scale_sigma=self.scale_sigma,
                                 rotation_sigma=self.rotation_sigma, flip=self.flip, invariance=self.invariance,
                                 num_photometric=self.num_photometric, agreement_sigma=self.agreement_sigma,
                                 confidence=self.confidence, max_batch=self.view_chunk(device))

    def flow(self) -> FlowParams:
        return FlowParams(win_size=self.flow_window, max_level=self.flow_levels, max_jump=self.flow_max_jump,
                          ratio=self.flow_ratio, max_gap=self.flow_max_gap)


class CCSSLConfig(ExperimentConfig):
    """An experiment config plus the ``ccssl`` section; ``data.target`` is the unlabelled target."""

    ccssl: CCSSLSection = Field(default_factory=CCSSLSection)


def num_rounds(cfg: CCSSLConfig) -> int:
    return math.ceil(cfg.train.epochs / cfg.ccssl.regenerate_every)


def keep_percentile(cfg: CCSSLConfig, round_index: int) -> float:
    """The selection percentile p of a round (threshold = p-quantile of all joint confidences)."""
    c = cfg.ccssl
    if c.schedule == "reference":
        return reference_percentile(round_index * c.regenerate_every)
    return RoundSchedule(tuple(c.keep_fractions)).percentile(round_index)


# --------------------------------------------------------------------------------------------------
# pseudo-labelling


@torch.no_grad()
def generate_pseudo_labels(model: torch.nn.Module, records: list[PoseRecord], schema: KeypointSchema, codec,
                           normalization: Normalization, consistency: ConsistencyConfig,
                           flow: FlowParams | None, device: torch.device, *, batch_size: int = 16,
                           padding: float = 1.5, udp: bool = False, seed: int = 0, truth: bool = True,
                           workers: int = 0) -> PseudoLabelSet:
    """Pseudo-labels with their evidence for every readable target record (unselected: weights 0).

    The consistency views of every batch (:func:`~animalpose.adapt.pseudolabel.label_records`, the
    step that :mod:`animalpose.adapt.shards` splits over workers), then, on the whole set, the
    temporal refinement of video frames with ``flow`` (None: no temporal step;
    :func:`~animalpose.adapt.pseudolabel.finalize`). ``truth`` keeps the records' own labels, where
    they have any, for diagnostics only.
    """
    labels = label_records(model, records, schema, codec, normalization, consistency, device,
                           batch_size=batch_size, padding=padding, udp=udp, seed=seed, truth=truth, workers=workers)
    return finalize(labels, flow, where=records[0].image if records else "<target>")


def select(labels: PseudoLabelSet, percentile: float) -> PseudoLabelSet:
    """A copy of ``labels`` with ``weights`` / ``threshold`` from the percentile selection."""
    sel = select_by_percentile(labels.confidence, percentile)
    return replace(labels, weights=sel.weights, threshold=sel.threshold)


# --------------------------------------------------------------------------------------------------
# training


class CCSSLTrainer(Trainer):
    """The engine's trainer with a second, pseudo-labelled target stream: each step draws one source
    and one target batch and minimises ``L_source + λ · L_target`` (λ = ``lambda_target``)."""

    def __init__(self, *args, lambda_target: float = 10.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.lambda_target = float(lambda_target)
        self.target_set: TopDownDataset | None = None
        self._target_iter: Iterator[dict] | None = None

    def set_target(self, dataset: TopDownDataset | None) -> None:
        self.target_set = dataset

    def _target_batches(self) -> Iterator[dict]:
        """Endless full target batches: each pass is a fresh permutation cut to whole batches (a set
        smaller than one batch is repeated to fill it), so no training batch ever holds a single image
        (BatchNorm cannot train on one value per channel, e.g. at a 64-px hourglass's 1×1 bottleneck)."""
        ds, sub, bs = self.target_set, 0, self.cfg.train.batch_size
        while True:
            ds.set_epoch(self.epoch * 1000 + sub)
            order = np.random.default_rng((self.cfg.train.seed, self.epoch, sub)).permutation(len(ds)).tolist()
            n = len(order)
            order = order[: n - n % bs] if n >= bs else (order * -(-bs // n))[:bs]
            yield from self._loader(ds, order, bs)
            sub += 1

    def train_epoch(self) -> dict:
        use = self.target_set is not None and len(self.target_set) > 0 and self.lambda_target > 0
        self._target_iter = self._target_batches() if use else None
        try:
            return super().train_epoch()
        finally:
            self._target_iter = None

    def _forward_loss(self, batch: dict) -> tuple[torch.Tensor, list[torch.Tensor]]:
        loss, outputs = super()._forward_loss(batch)
        if self._target_iter is not None:
            tb = next(self._target_iter)
            if "image" in tb:
                t_loss, _ = super()._forward_loss(tb)
                loss = loss + self.lambda_target * t_loss
        return loss, outputs

    def fit_until(self, end_epoch: int):
        """Train up to ``end_epoch`` (exclusive of later epochs); the lr schedule keeps the full config."""
        full = self.cfg
        self.cfg = full.model_copy(update={"train": full.train.model_copy(update={"epochs": end_epoch})})
        try:
            return self.fit()
        finally:
            self.cfg = full


@torch.no_grad()
def evaluate_pck(model: torch.nn.Module, dataset: TopDownDataset, device: torch.device, batch_size: int,
                 flip_perm=None, flip_shift: bool = False) -> dict:
    """PCK@0.05 / 0.1 (crop) of ``model`` on a labelled dataset."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_skip)
    dists = []
    for batch in loader:
        if "image" not in batch:
            continue
        hm = final_heatmaps(model, batch["image"].to(device), flip_perm, flip_shift)
        dists.append(crop_distances(hm.cpu().numpy(), batch["target"].numpy()))
    d = np.concatenate(dists) if dists else np.zeros((0, dataset.schema.num_joints))
    return {f"pck@{a}": pck_from_distances(d, a).mean for a in (0.05, 0.1)}


@dataclass
class CCSSLResult:
    out_dir: Path
    rounds: list[dict] = field(default_factory=list)
    source_only: dict = field(default_factory=dict)
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None


def _read_target(paths, schema: KeypointSchema, cfg: ExperimentConfig) -> tuple[list[PoseRecord], float]:
    """The target records and their crop padding, by the same rule as the source's (``crop_padding``).

    Generated target domains (e.g. ``photo`` horses) are synthetic: cropping them with the real-data
    padding (1.5) while the source was trained at 1.25 shrank the animal by 17 % in every target crop.
    """
    records: list[PoseRecord] = []
    padding = cfg.data.bbox_padding_real
    for path in paths:
        ds = read_dataset(path, "auto", schema.name)
        padding = crop_padding(ds, cfg)
        # unlabelled target: no joint-count rule, but NaN, visibility, boxes and images are checked
        for r in validate_dataset(ds, None, skip_bad=cfg.data.skip_bad, require_instances=False).records:
            if r.num_joints != schema.num_joints:
                r = replace(r, keypoints=np.zeros((schema.num_joints, 3), np.float32))
            records.append(r)
    if not records:
        raise ConfigError("<config>", "data.target", "no unlabelled target data given")
    return records, padding


def _write_state(path: Path, state: dict) -> None:
    diag.write_json(state, path)


def _gallery(labels: PseudoLabelSet, n: int, schema: KeypointSchema, normalization: Normalization, codec,
             padding: float, udp: bool):
    """Gallery figure of ``n`` evenly spaced target crops (None when ``n`` is 0)."""
    if n <= 0:
        return None
    idx = np.unique(np.linspace(0, len(labels) - 1, min(n, len(labels))).round().astype(int))
    ds = TopDownDataset([labels.records[i] for i in idx], schema, codec, None, padding=padding, udp=udp,
                        normalization=normalization)
    crops = [normalization.denormalize(ds[j]["image"]) for j in range(len(idx))]
    truth = None
    if labels.truth is not None:
        m = labels.matrices[idx]
        t = labels.truth[idx].astype(np.float64)
        txy = np.einsum("nkj,nij->nki", t[..., :2], m[:, :, :2]) + m[:, None, :, 2]
        truth = np.concatenate([txy, t[..., 2:]], -1)
    kept = labels.weights[idx] > 0
    return diag.gallery_figure(crops, labels.crop_xy[idx], kept, truth,
                               title="accepted (green) / rejected (red) pseudo-labels")


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def run_ccssl(cfg: CCSSLConfig, out_dir: str | Path | None = None, *, tracker: Tracker | None = None,
              progress: bool = True, labeler: Labeler | None = None) -> CCSSLResult:
    """Run (or resume) CC-SSL adaptation; returns per-round metrics and the checkpoints.

    ``labeler`` replaces the in-process consistency step of each round's pseudo-labelling: it gets a
    picklable :class:`~animalpose.adapt.shards.LabelRequest` (config, CPU weights, all target
    records, normalisation, padding, round seed) and returns the pre-temporal labels of all records
    in order, e.g. :func:`~animalpose.adapt.shards.sharded_labeler` over worker processes; the
    temporal refinement and the selection still run here on the merged set. None: in process.

    Writes into ``out_dir`` (default ``ccssl.out_dir``): ``source/`` (source-only training when
    asked), ``train/`` (the trainer's best/last checkpoints), ``round_<r>/`` (pseudo_labels.json,
    summary.json, curves.png, gallery.png), ``round_<r>.ckpt`` and ``state.json``.
    """
    c = cfg.ccssl
    out = Path(out_dir or c.out_dir or "runs/ccssl")
    out.mkdir(parents=True, exist_ok=True)
    if cfg.train.select_on == TARGET_VAL and not c.target_val:
        raise ConfigError("<config>", "train.select_on", "target-val selection needs ccssl.target_val")
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    device = pick_device(cfg.train.device)
    data = build_data(cfg)
    schema, codec, norm = data.schema, make_codec(cfg), data.normalization
    udp = cfg.codec.kind == "udp"
    target_records, pad = _read_target(cfg.data.target, schema, cfg)
    target_val, tv_pad = {}, pad
    for path in c.target_val:
        tv_ds = read_dataset(path, "auto", schema.name)
        tv_pad = crop_padding(tv_ds, cfg)
        checked = validate_dataset(tv_ds, schema, skip_bad=cfg.data.skip_bad)
        recs = [r for r in checked.records if (r.keypoints[:, 2] > 0).any()]
        if not recs:
            raise DataError(str(path), "annotations", "target validation data has no labels")
        target_val[path] = recs
    tv_set = TopDownDataset([r for rs in target_val.values() for r in rs], schema, codec, None, padding=tv_pad,
                            udp=udp, normalization=norm) if target_val else None
    val_sets = dict(data.val)
    if cfg.train.select_on == TARGET_VAL:
        val_sets[TARGET_VAL] = tv_set
    flip_perm = flip_permutation_or_none(schema) if cfg.train.flip_test else None
    flip_shift = flip_shift_for(cfg.model.name, cfg.codec.kind)
    state_path = out / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"rounds": [], "source_only": {}}

    own = tracker is None and cfg.tracking.enabled
    if own:
        tracker = Tracker(cfg.tracking.experiment, "ccssl", uri=cfg.tracking.uri,
                          resume_run_id=state.get("run_id")).start()
        state["run_id"] = tracker.run_id
    tracker = tracker or Tracker(enabled=False)
    try:
        model = make_model(cfg, schema)
        if c.source_checkpoint is not None:
            ckpt = load_checkpoint(c.source_checkpoint, schema=schema)
            model.load_state_dict(ckpt.get("ema") or ckpt["model"])
        elif c.source_epochs > 0:
            src_dir = out / "source"
            if not state.get("source_trained"):
                _log(f"source-only training for {c.source_epochs} epochs", progress)
                src_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(
                    update={"epochs": c.source_epochs, "milestones": []})})
                child = tracker.child("source-only")
                Trainer(src_cfg, model, schema, data.train, dict(data.val), src_dir, device=device, tracker=child,
                        progress=progress).fit()
                child.end()
                state["source_trained"] = True
                _write_state(state_path, state)
            best = src_dir / "best.ckpt"
            ckpt = load_checkpoint(best if best.is_file() else src_dir / "last.ckpt", schema=schema)
            model.load_state_dict(ckpt.get("ema") or ckpt["model"])
        round_cfg = cfg if c.lr is None else cfg.model_copy(
            update={"train": cfg.train.model_copy(update={"lr": c.lr})})
        trainer = CCSSLTrainer(round_cfg, model, schema, data.train, val_sets, out / "train", device=device,
                               tracker=None, progress=progress, lambda_target=c.lambda_target)
        done = len(state["rounds"])
        if not done and not state.get("params_logged"):  # MLflow params are write-once: log them once
            tracker.log_params(_flat(to_dict(cfg)))
            state["params_logged"] = True
        if done:
            trainer.resume(out / f"round_{done - 1}.ckpt")
            _log(f"resuming after round {done - 1} (epoch {trainer.epoch})", progress)
        else:
            state["source_only"] = _target_metrics(trainer, tv_set, device, cfg, flip_perm, flip_shift)
            tracker.log_metrics({f"source_only/{k}": v for k, v in state["source_only"].items()})
        consistency, flow = c.consistency(device), c.flow() if c.temporal else None
        for r in range(done, num_rounds(cfg)):
            start, end = r * c.regenerate_every, min((r + 1) * c.regenerate_every, cfg.train.epochs)
            child = tracker.child(f"round {r}", tags={"round": str(r)})
            model_now = trainer.ema.module if trainer.ema is not None else unwrap(trainer.model)
            if labeler is None:
                labels = generate_pseudo_labels(model_now, target_records, schema, codec, norm, consistency, flow,
                                                device, batch_size=c.pseudo_batch_size, padding=pad, udp=udp,
                                                seed=cfg.train.seed * 1000 + r, truth=c.target_truth,
                                                workers=cfg.data.workers)
            else:
                request = LabelRequest(cfg, schema, cpu_state(model_now), target_records, norm, pad,
                                       seed=cfg.train.seed * 1000 + r, round_index=r)
                labels = finalize(labeler(request), flow, where=target_records[0].image)
            labels = select(labels, keep_percentile(cfg, r))
            summary = _report(labels, r, out / f"round_{r}", schema, norm, codec, pad, udp, child, c.gallery)
            _log(f"round {r}: kept {summary['num_kept']}/{summary['num_joints']} joints"
                 + (f", precision@0.05 {100 * summary['precision@0.05']:.1f}%" if "precision@0.05" in summary
                    else ""), progress)
            augment = None if cfg.augment.preset == "none" else build_augmenter(
                cfg.augment.preset, schema, tuple(cfg.data.input_size), udp=udp, **augment_overrides(cfg))
            pseudo = [p for p in labels.to_records() if (p.keypoints[:, 2] > 0).any()]  # skip all-rejected
            trainer.set_target(TopDownDataset(pseudo, schema, codec, augment, padding=pad, udp=udp,
                                              normalization=norm, seed=cfg.train.seed + r + 1) if pseudo else None)
            trainer.tracker = child
            trainer.fit_until(end)
            trainer.tracker = None
            metrics = {"round": r, "epochs": [start, end], **{f"pseudo/{k}": v for k, v in summary.items()
                                                               if not isinstance(v, dict | list)}}
            metrics.update({f"target/{k}": v for k, v in
                            _target_metrics(trainer, tv_set, device, cfg, flip_perm, flip_shift).items()})
            metrics.update({k: v for k, v in (trainer.history[-1] if trainer.history else {}).items()
                            if k.startswith("val/")})
            child.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)}, step=end)
            child.end()
            tracker.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)}, step=r)
            trainer.save(out / f"round_{r}.ckpt", {k: v for k, v in metrics.items() if isinstance(v, int | float)})
            state["rounds"].append(metrics)
            _write_state(state_path, state)
        tracker.log_dict(state, "ccssl_state.json")
    except BaseException:
        if own:
            tracker.end("FAILED")
        raise
    if own:
        tracker.end()
    best = out / "train" / "best.ckpt"
    last = out / f"round_{len(state['rounds']) - 1}.ckpt" if state["rounds"] else None
    return CCSSLResult(out, state["rounds"], state["source_only"], best if best.is_file() else None, last)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _target_metrics(trainer: Trainer, tv_set, device, cfg, flip_perm, flip_shift) -> dict:
    """Target-val PCK of the current model (reporting only), {} without labelled target data."""
    if tv_set is None:
        return {}
    module = trainer.ema.module if trainer.ema is not None else unwrap(trainer.model)
    return evaluate_pck(module, tv_set, device, cfg.train.batch_size, flip_perm, flip_shift)


def _report(labels: PseudoLabelSet, r: int, folder: Path, schema, norm, codec, pad, udp, tracker: Tracker,
            gallery: int) -> dict:
    """Write and log one round's diagnostics; returns the summary."""
    from animalpose.plots import save_figure

    folder.mkdir(parents=True, exist_ok=True)
    summary = diag.summarize(labels)
    diag.write_json(diag.pseudo_label_coco(labels, schema, r), folder / "pseudo_labels.json")
    diag.write_json(summary, folder / "summary.json")
    tracker.log_artifact(folder / "pseudo_labels.json", "pseudo_labels")
    tracker.log_dict(summary, "pseudo_labels/summary.json")
    fig = diag.curves_figure(summary, f"round {r}: precision vs coverage per check")
    if fig is not None:
        save_figure(fig, folder / "curves.png")
        tracker.log_figure(fig, "pseudo_labels/curves.png")
    g = _gallery(labels, gallery, schema, norm, codec, pad, udp)
    if g is not None:
        save_figure(g, folder / "gallery.png")
        tracker.log_figure(g, "pseudo_labels/gallery.png")
    tracker.log_metrics({f"pseudo/{k}": v for k, v in summary.items() if isinstance(v, int | float)}, step=r)
    return summary
