"""WS-CDA on datasets: adversarial training from three sources, then PPLO rounds (Cao et al., ICCV 2019).

``run_wscda(cfg, out_dir)``:

1. read the labelled humans (``wscda.human``, schema ``wscda.human_schema``) and lift them into the joint
   keypoint space; keep ``wscda.labelled_per_species`` labelled animals of each species of
   ``data.train``; read the unlabelled target animals ``data.target`` (cropped with the padding rule of
   their own dataset: ``data.bbox_padding_synthetic`` for generated data, like the labelled animals);
2. build the WS-CDA network around the factory model ``model.name`` (SimpleBaseline-style) with a
   linear, foldable domain adaptation network, optionally initialised from ``wscda.init_checkpoint``
   (tensors whose names and shapes match: a human model gives its backbone and deconvolutions);
3. train ``wscda.epochs`` epochs of ``wscda.steps_per_epoch`` mixed batches (ratio ``wscda.ratio``) with
   the selected min-max scheme; fold the adapter back and write ``wscda.ckpt``, an ordinary engine
   checkpoint of the animal schema (``animalpose evaluate`` reads it);
4. PPLO: for each of ``wscda.pplo_rounds`` rounds predict the target crops, keep the most confident
   joints under the shared progressive schedule (``wscda.keep_fractions``), and continue WS-CDA training
   for ``wscda.pplo_epochs`` epochs with the target animals now supervised by their pseudo-labels;
   write ``round_<r>.ckpt``.

Resumable: ``state.json`` lists the finished stages and each stage's training resumes from its own
checkpoint. Tracking: one MLflow parent run, nested runs ``wscda`` and ``pplo round <r>`` with the
per-epoch losses and the discriminator's per-domain accuracy. ``data.val`` (and ``wscda.target_val``)
are only *reported* (PCK@0.05/0.1 after every stage), never used to select.

Limitation: the joint keypoint space must equal the animal schema (true for ``coco`` → ``animalpose``,
where every COCO joint has an Animal-Pose counterpart), because the exported checkpoint predicts the
animal schema.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import AfterValidator, Field
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from animalpose.adapt.selection import RoundSchedule, keep_fractions_validator
from animalpose.adapt.wscda.joint_space import build_joint_space
from animalpose.adapt.wscda.loop import WSCDAFitConfig, fit_wscda
from animalpose.adapt.wscda.losses import WSCDALossWeights
from animalpose.adapt.wscda.mixing import MixedBatchSampler, select_few_labelled
from animalpose.adapt.wscda.network import export_pose_network, wscda_from_pose_network
from animalpose.adapt.wscda.pplo import make_pseudo_labels, pseudo_label_quality
from animalpose.adapt.wscda.training import WSCDABatch
from animalpose.atomic import write_json_atomic
from animalpose.config import ExistingPath, ExperimentConfig, ResolvedPath, Section, to_dict
from animalpose.data.augment import build_augmenter
from animalpose.data.dataset import TopDownDataset, collate_skip
from animalpose.data.readers import read_dataset
from animalpose.data.records import PoseRecord
from animalpose.data.transforms import crop_to_original
from animalpose.data.validate import validate_dataset
from animalpose.engine.build import (
    augment_overrides,
    build_data,
    crop_padding,
    load_records,
    make_codec,
    make_model,
    pick_device,
)
from animalpose.engine.checkpoint import load_checkpoint, save_checkpoint
from animalpose.engine.inference import final_heatmaps
from animalpose.engine.trainer import seed_everything
from animalpose.errors import ConfigError, DataError
from animalpose.evaluation import crop_distances, pck_from_distances
from animalpose.keypoints import KeypointSchema
from animalpose.tracking import Tracker

PCK_ALPHAS = (0.05, 0.1)


class WSCDASection(Section):
    """The ``wscda:`` section (defaults: the paper's α = −1, β = 500; choices documented in ``losses``)."""

    human: list[ExistingPath] = Field(default_factory=list)
    human_schema: str = "coco"
    labelled_per_species: int = Field(default=10, ge=1)
    ratio: list[float] = Field(default_factory=lambda: [2.0, 1.0, 1.0], min_length=3, max_length=3)
    scheme: Literal["alternating", "grl"] = "alternating"
    alpha: float = -1.0
    beta: float = Field(default=500.0, ge=0)
    w1: float = Field(default=1.0, ge=0)
    w2: float = Field(default=1.0, ge=0)
    reduction: Literal["mean", "sum"] = "mean"
    discriminator_lr: float | None = Field(default=None, gt=0)
    discriminator_hidden: int = Field(default=256, ge=1)
    discriminate_on: Literal["features", "adapted"] = "features"
    epochs: int | None = Field(default=None, ge=1)
    steps_per_epoch: int = Field(default=100, ge=1)
    init_checkpoint: ExistingPath | None = None
    pplo_rounds: int = Field(default=0, ge=0)
    pplo_epochs: int = Field(default=1, ge=1)
    keep_fractions: Annotated[list[float], AfterValidator(keep_fractions_validator)] = Field(
        default_factory=lambda: [0.2, 0.4, 0.6, 0.8])
    target_val: list[ExistingPath] = Field(default_factory=list)
    out_dir: ResolvedPath | None = None

    def loss_weights(self) -> WSCDALossWeights:
        return WSCDALossWeights(self.alpha, self.beta, self.w1, self.w2, self.reduction)


class WSCDAConfig(ExperimentConfig):
    """An experiment config plus ``wscda``; ``data.train`` = labelled animals, ``data.target`` = unlabelled."""

    wscda: WSCDASection = Field(default_factory=WSCDASection)


@dataclass
class WSCDAResult:
    out_dir: Path
    rounds: list[dict] = field(default_factory=list)
    wscda: dict = field(default_factory=dict)
    last_checkpoint: Path | None = None


class _Tagged(Dataset):
    """A top-down dataset whose samples carry domain labels; ``labelled=False`` zeroes the target weights."""

    def __init__(self, base: TopDownDataset, y: int, z: int, labelled: bool):
        self.base, self.y, self.z, self.labelled = base, y, z, labelled

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict | None:
        sample = self.base[index]
        if sample is None:
            return None
        if not self.labelled:
            sample["target_weight"] = torch.zeros_like(sample["target_weight"])
        sample["y"], sample["z"] = self.y, self.z
        return sample


def _species(record: PoseRecord) -> str:
    factors = record.meta.get("factors") or {}
    return str(record.meta.get("species") or factors.get("species") or record.meta.get("category") or "animal")


def _read_unlabelled(paths, schema: KeypointSchema, cfg: ExperimentConfig,
                     ) -> tuple[list[PoseRecord], np.ndarray | None, float]:
    """Target records with their keypoints removed, the removed keypoints when any were labelled, and the
    crop padding: ``data.bbox_padding_synthetic`` for generated target data (as for the labelled animals
    and the reported validation sets, so all crops of generated data match), else ``bbox_padding_real``."""
    records: list[PoseRecord] = []
    padding = cfg.data.bbox_padding_real
    for path in paths:
        ds = read_dataset(path, "auto", schema.name)
        padding = crop_padding(ds, cfg)
        records.extend(validate_dataset(ds, None, skip_bad=cfg.data.skip_bad, require_instances=False).records)
    if not records:
        raise ConfigError("<config>", "data.target", "no unlabelled target data given")
    truth = None
    if all(r.num_joints == schema.num_joints for r in records):
        kp = np.stack([r.keypoints for r in records]).astype(np.float32)
        truth = kp if (kp[..., 2] > 0).any() else None
    blank = np.zeros((schema.num_joints, 3), np.float32)
    return [replace(r, keypoints=blank.copy()) for r in records], truth, padding


def _load_matching(net: torch.nn.Module, path: Path) -> int:
    """Copy the checkpoint tensors whose names and shapes match ``net``'s; returns how many."""
    ckpt = load_checkpoint(path)
    weights = ckpt.get("ema") or ckpt["model"]
    own = net.state_dict()
    keep = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if not keep:
        raise DataError(str(path), "model", "no tensor of this checkpoint fits the WS-CDA model")
    net.load_state_dict(keep, strict=False)
    return len(keep)


@torch.no_grad()
def _pck(model: torch.nn.Module, dataset: TopDownDataset, device, batch_size: int) -> dict[str, float]:
    model.eval()
    dists = []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_skip):
        if "image" in batch:
            hm = final_heatmaps(model, batch["image"].to(device))
            dists.append(crop_distances(hm.cpu().numpy(), batch["target"].numpy()))
    if not dists:
        return {}
    d = np.concatenate(dists)
    return {f"pck@{a}": float(pck_from_distances(d, a).mean) for a in PCK_ALPHAS}


@torch.no_grad()
def _predict_crops(model, dataset: TopDownDataset, codec, device, batch_size: int):
    """(coords (N, K, 2) crop px, confidence (N, K), matrices (N, 2, 3), dataset indices (N,))."""
    model.eval()
    coords, conf, mats, idx = [], [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_skip):
        if "image" not in batch:
            continue
        c, m = codec.decode(final_heatmaps(model, batch["image"].to(device)))
        coords.append(c)
        conf.append(m)
        mats.append(batch["meta"]["matrix"].numpy())
        idx.append(batch["meta"]["index"].numpy())
    if not idx:
        raise DataError("<target>", "image", "no readable target image")
    return np.concatenate(coords), np.concatenate(conf), np.concatenate(mats), np.concatenate(idx)


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def run_wscda(cfg: WSCDAConfig, out_dir: str | Path | None = None, *, tracker: Tracker | None = None,
              progress: bool = True) -> WSCDAResult:
    """Run (or resume) WS-CDA and its PPLO rounds; returns the stage metrics and the last checkpoint."""
    w = cfg.wscda
    out = Path(out_dir or w.out_dir or "runs/wscda")
    out.mkdir(parents=True, exist_ok=True)
    if not w.human:
        raise ConfigError("<config>", "wscda.human", "no labelled human data given")
    if not cfg.model.name.startswith("simplebaseline"):
        raise ConfigError("<config>", "model.name", f"WS-CDA splits a SimpleBaseline-style network "
                                                    f"(simplebaseline18..152), got {cfg.model.name}")
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    device = pick_device(cfg.train.device)
    data = build_data(cfg)
    schema, norm, codec = data.schema, data.normalization, make_codec(cfg)
    space = build_joint_space(w.human_schema, schema.name)
    if space.joints != schema.joints:
        raise ConfigError("<config>", "wscda.human_schema",
                          f"{w.human_schema} joints without a {schema.name} counterpart would need extra heatmap "
                          f"channels ({', '.join(space.joints[schema.num_joints:])}); not supported")
    udp = cfg.codec.kind == "udp"
    # one augmenter for every stream (humans, few labelled animals, target, pseudo-labels): the preset with
    # the config's own ranges, as in the engine
    augment = None if cfg.augment.preset == "none" else build_augmenter(
        cfg.augment.preset, schema, tuple(cfg.data.input_size), udp=udp, **augment_overrides(cfg))

    animals = data.train.records
    few = [animals[i] for i in select_few_labelled([_species(r) for r in animals], w.labelled_per_species,
                                                   cfg.train.seed, where="wscda.labelled_per_species")]
    human_records, _, human_pad = load_records(list(w.human), cfg, w.human_schema)
    humans = [replace(r, keypoints=space.lift(r.keypoints, "human").astype(np.float32), schema=schema.name)
              for r in human_records]
    target_records, target_truth, pad_target = _read_unlabelled(cfg.data.target, schema, cfg)
    pad_animal = data.train.padding

    def topdown(records, aug, pad, seed):
        return TopDownDataset(records, schema, codec, aug, padding=pad, udp=udp, normalization=norm, seed=seed)

    human_set = topdown(humans, augment, human_pad, cfg.train.seed)
    few_set = topdown(few, augment, pad_animal, cfg.train.seed + 1)
    target_plain = topdown(target_records, None, pad_target, cfg.train.seed)
    report_sets = dict(data.val)
    for path in w.target_val:
        recs, _, vpad = load_records([path], cfg, schema.name)
        report_sets[f"target_val/{Path(path).stem}"] = topdown(recs, None, vpad, cfg.train.seed)

    pose = make_model(cfg, schema)
    for name in ("backbone", "deconv_layers", "final_layer"):
        if not hasattr(pose.net, name):
            raise ConfigError("<config>", "model.name", f"WS-CDA splits a SimpleBaseline-style network "
                                                        f"(simplebaseline18..152); {cfg.model.name} has no {name}")
    if w.init_checkpoint is not None:
        n = _load_matching(pose, w.init_checkpoint)
        _log(f"initialised {n} tensors from {w.init_checkpoint}", progress)
    model = wscda_from_pose_network(pose.net, discriminator_hidden=w.discriminator_hidden,
                                    discriminate_on=w.discriminate_on, adapter="linear")
    weights = w.loss_weights()
    batch_size = cfg.train.batch_size
    config_dict = to_dict(cfg)
    extra = {"normalization": {"mean": list(norm.mean), "std": list(norm.std)}, "method": "wscda"}

    state_path = out / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"stages": [], "rounds": []}
    own = tracker is None and cfg.tracking.enabled
    if own:
        tracker = Tracker(cfg.tracking.experiment, "wscda", uri=cfg.tracking.uri,
                          resume_run_id=state.get("run_id")).start()
        state["run_id"] = tracker.run_id
    tracker = tracker or Tracker(enabled=False)

    def save_state() -> None:
        write_json_atomic(state_path, state, indent=2)

    def train_stage(name: str, target_set: Dataset, epochs: int, child: Tracker) -> list[dict]:
        sets = [_Tagged(human_set, 0, 0, True), _Tagged(few_set, 1, 0, True), target_set]
        sampler = MixedBatchSampler([len(s) for s in sets], batch_size, w.ratio, w.steps_per_epoch,
                                    seed=cfg.train.seed, where="wscda.ratio")
        loader = DataLoader(ConcatDataset(sets), batch_sampler=sampler, collate_fn=collate_skip,
                            num_workers=cfg.data.workers)

        def batches(epoch: int):
            sampler.set_epoch(epoch)
            for s in (human_set, few_set, target_set.base):
                s.set_epoch(epoch)
            for b in loader:
                if "image" in b:
                    yield WSCDABatch(b["image"], b["target"], b["target_weight"], b["y"], b["z"])

        fit = WSCDAFitConfig(w.scheme, epochs, w.steps_per_epoch, cfg.train.lr, w.discriminator_lr, weights)
        return fit_wscda(model, batches, fit, schema=schema, checkpoint=out / f"{name}.train.ckpt", resume=True,
                         config=config_dict, device=device, progress=progress,
                         on_epoch=lambda e, m: child.log_metrics(m, step=e))

    def finish_stage(name: str, history: list[dict], child: Tracker, step: int) -> tuple[dict, Path]:
        export_pose_network(model, pose.net)
        metrics = {f"train/{k}": v for k, v in (history[-1] if history else {}).items()}
        for set_name, ds in report_sets.items():
            metrics.update({f"{set_name}/{k}": v for k, v in _pck(pose, ds, device, batch_size).items()})
        ckpt = save_checkpoint(out / f"{name}.ckpt", model=pose.state_dict(), schema=schema, config=config_dict,
                               epoch=step, step=step, metrics=metrics, extra=extra)
        child.log_metrics(metrics, step=step)
        return metrics, ckpt

    try:
        if not state.get("params_logged"):
            tracker.log_params(_flat(config_dict))
            state["params_logged"] = True
        last = None
        if "wscda" not in state["stages"]:
            _log(f"WS-CDA: {len(humans)} humans, {len(few)} labelled animals, {len(target_records)} target", progress)
            child = tracker.child("wscda")
            epochs = w.epochs or cfg.train.epochs
            history = train_stage("wscda", _Tagged(topdown(target_records, augment, pad_target, cfg.train.seed + 2),
                                                   1, 1, False), epochs, child)
            state["wscda"], last = finish_stage("wscda", history, child, epochs)
            child.end()
            state["stages"].append("wscda")
            save_state()
        else:  # resume: the last finished stage's full WS-CDA state (discriminator included), folded again
            done = f"round_{len(state['rounds']) - 1}" if state["rounds"] else "wscda"
            model.load_state_dict(load_checkpoint(out / f"{done}.train.ckpt", schema=schema)["model"])
            export_pose_network(model, pose.net)
            last = out / f"{done}.ckpt"
            _log(f"resuming after stage {done}", progress)
        schedule = RoundSchedule(tuple(w.keep_fractions))
        for r in range(len(state["rounds"]), w.pplo_rounds):
            child = tracker.child(f"pplo round {r}", tags={"round": str(r)})
            coords, conf, mats, idx = _predict_crops(pose, target_plain, codec, device, batch_size)
            labels = make_pseudo_labels(coords, conf, r, schedule)
            summary = {"round": r, "kept": labels.selection.num_kept, "coverage": labels.selection.coverage,
                       "threshold": labels.selection.threshold}
            if target_truth is not None:
                truth = target_truth[idx].astype(np.float64)
                crop_truth = np.concatenate([np.einsum("nkj,nij->nki", truth[..., :2], mats[:, :, :2])
                                             + mats[:, None, :, 2], truth[..., 2:]], axis=-1)
                q = pseudo_label_quality(labels, crop_truth, 0.05 * cfg.data.input_size[0])
                summary.update({f"pseudo/{k}": v for k, v in q.items()})
            xy = crop_to_original(labels.keypoints[..., :2], mats)
            pseudo = [replace(target_records[i], keypoints=np.concatenate([xy[n], labels.keypoints[n, :, 2:]], -1)
                              .astype(np.float32)) for n, i in enumerate(idx)]
            _log(f"PPLO round {r}: kept {summary['kept']} joints ({100 * summary['coverage']:.0f}%)", progress)
            target_set = _Tagged(topdown(pseudo, augment, pad_target, cfg.train.seed + 10 + r), 1, 1, True)
            history = train_stage(f"round_{r}", target_set, w.pplo_epochs, child)
            metrics, last = finish_stage(f"round_{r}", history, child, r)
            child.log_metrics({k: v for k, v in summary.items() if isinstance(v, int | float)}, step=r)
            child.end()
            state["rounds"].append({**summary, **metrics})
            tracker.log_metrics({k: v for k, v in state["rounds"][-1].items() if isinstance(v, int | float)}, step=r)
            save_state()
        if state["rounds"]:
            last = out / f"round_{len(state['rounds']) - 1}.ckpt"
        tracker.log_dict(state, "wscda_state.json")
    except BaseException:
        if own:
            tracker.end("FAILED")
        raise
    if own:
        tracker.end()
    return WSCDAResult(out, state["rounds"], state.get("wscda", {}), last)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
