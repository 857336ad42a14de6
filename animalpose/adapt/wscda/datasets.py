"""The datasets and per-dataset passes of WS-CDA on real files (used by :mod:`animalpose.adapt.wscda.run`).

- :class:`Tagged`: a top-down dataset whose samples carry the domain labels (y, z, s);
- :func:`read_unlabelled`: the target animals with their labels removed (kept aside as truth);
- :func:`load_matching`: a partial initialisation from a checkpoint (e.g. a human model);
- :func:`report_pck`, :func:`predict_crops`: evaluation and prediction passes over plain crops;
  :func:`consistency_predict_crops`: the prediction pass of PPLO's ``consistency`` filter (CC-SSL's views).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from animalpose.adapt.pseudolabel import ConsistencyConfig, label_records
from animalpose.codecs.base import Codec
from animalpose.config import ExperimentConfig
from animalpose.data.dataset import Normalization, TopDownDataset, collate_skip
from animalpose.data.readers import read_dataset
from animalpose.data.records import PoseRecord
from animalpose.data.validate import validate_dataset, validation_options
from animalpose.engine.build import crop_padding, is_generated_record, with_padding
from animalpose.engine.checkpoint import load_checkpoint
from animalpose.engine.inference import final_heatmaps
from animalpose.errors import ConfigError, DataError
from animalpose.evaluation import crop_distances, pck_from_distances
from animalpose.keypoints import KeypointSchema

PCK_ALPHAS = (0.05, 0.1)


class Tagged(Dataset):
    """A top-down dataset whose samples carry domain labels; ``labelled=False`` zeroes the target weights.

    ``y`` (0 human / 1 animal) and ``z`` (0 source / 1 target) are the stream's; ``s`` (1 synthetic / 0 real,
    read by the three-way discriminator) is each record's own (:func:`~animalpose.engine.build.
    is_generated_record`), since one stream may mix generated and photographed animals."""

    def __init__(self, base: TopDownDataset, y: int, z: int, labelled: bool):
        self.base, self.y, self.z, self.labelled = base, y, z, labelled
        self.synthetic = np.array([is_generated_record(r) for r in base.records], dtype=bool)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict | None:
        sample = self.base[index]
        if not sample:  # an image that did not decode (SkippedSample)
            return sample
        if not self.labelled:
            sample["target_weight"] = torch.zeros_like(sample["target_weight"])
        sample["y"], sample["z"], sample["s"] = self.y, self.z, int(self.synthetic[index])
        return sample


def species_of(record: PoseRecord) -> str:
    """The species a record names (generated data: ``factors.species``), for the per-species few labelled."""
    factors = record.meta.get("factors") or {}
    return str(record.meta.get("species") or factors.get("species") or record.meta.get("category") or "animal")


def read_unlabelled(paths: list[Path], schema: KeypointSchema, cfg: ExperimentConfig,
                     ) -> tuple[list[PoseRecord], np.ndarray | None, float]:
    """Target records with their keypoints removed, the removed keypoints when any were labelled, and the
    crop padding of the last file. Each record carries its own file's padding (``PoseRecord.padding``):
    ``data.bbox_padding_synthetic`` for generated target data (as for the labelled animals and the reported
    validation sets, so all crops of generated data match), else ``bbox_padding_real``."""
    records: list[PoseRecord] = []
    padding = cfg.data.bbox_padding_real
    for path in paths:
        ds = read_dataset(path, "auto", schema.name)
        padding = crop_padding(ds, cfg)
        checked = validate_dataset(ds, None, require_instances=False, **validation_options(cfg.data))
        records.extend(with_padding(checked.records, padding))
    if not records:
        raise ConfigError("<config>", "data.target", "no unlabelled target data given")
    truth = None
    if all(r.num_joints == schema.num_joints for r in records):
        kp = np.stack([r.keypoints for r in records]).astype(np.float32)
        truth = kp if (kp[..., 2] > 0).any() else None
    blank = np.zeros((schema.num_joints, 3), np.float32)
    return [replace(r, keypoints=blank.copy()) for r in records], truth, padding


def stream_crops(streams: dict[str, list[PoseRecord]]) -> dict[str, list[float]]:
    """The crop paddings of each training stream ({name: records}), as a run records them: sorted distinct
    ``PoseRecord.padding`` values per stream (e.g. labelled animals [1.25, 1.5] for generated horses beside
    photographed cows)."""
    return {name: sorted({float(r.padding) for r in recs if r.padding is not None}) for name, recs in streams.items()}


def source_crops(cfg: ExperimentConfig) -> dict[str, list[float]]:
    """:func:`stream_crops` of a WS-CDA config's streams from its files alone (no training, no network): each
    file of ``wscda.human``, ``data.train`` and ``data.target`` read and given its crop padding
    (:func:`~animalpose.engine.build.crop_padding`), as :class:`~animalpose.adapt.wscda.run.WSCDARun` crops
    their records."""
    streams = {"human": (cfg.wscda.human, cfg.wscda.human_schema), "animals": (cfg.data.train, cfg.data.schema_name),
               "target": (cfg.data.target, cfg.data.schema_name)}
    return {name: sorted({crop_padding(read_dataset(p, "auto", schema), cfg) for p in paths})
            for name, (paths, schema) in streams.items()}


def crops_mismatch(recorded: dict | None, current: dict[str, list[float]]) -> str | None:
    """Why a run whose crops were ``recorded`` (:func:`stream_crops`) cannot go on with ``current``; None when
    they agree. ``recorded`` None is a run from before per-source crop padding, when every stream was cropped
    at one padding (its last file's): it agrees only where each stream of ``current`` has a single padding
    (a stream that mixes generated and photographed files was cropped otherwise then)."""
    if recorded is None:
        mixed = {k: v for k, v in current.items() if len(v) > 1}
        if not mixed:
            return None
        return (f"recorded before per-source crop padding, when each stream was cropped at its last file's "
                f"padding; the streams {mixed} now crop each file at its own")
    if recorded != current:
        return f"cropped with paddings {recorded}, now {current}"
    return None


def load_matching(net: torch.nn.Module, path: Path) -> int:
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
def report_pck(model: torch.nn.Module, dataset: TopDownDataset, device: torch.device | str,
               batch_size: int) -> dict[str, float]:
    """``pck@0.05`` and ``pck@0.1`` (crop PCK, mean over joints) of ``model`` on ``dataset``; {} if unreadable."""
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
def predict_crops(model: torch.nn.Module, dataset: TopDownDataset, codec: Codec, device: torch.device | str,
                  batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decoded predictions of the readable crops of ``dataset``, in order:
    (coords (N, K, 2) crop px, confidence (N, K), matrices (N, 2, 3), dataset indices (N,))."""
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


@torch.no_grad()
def consistency_predict_crops(model: torch.nn.Module, records: list[PoseRecord], schema: KeypointSchema,
                              codec: Codec, normalization: Normalization, consistency: ConsistencyConfig,
                              device: torch.device | str, *, batch_size: int, padding: float,
                              seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`predict_crops` through CC-SSL's consistency check: the pseudo-labels and confidences of
    :func:`~animalpose.adapt.pseudolabel.label_records` (every geometric and photometric view of each crop,
    mapped back and averaged; views of batch b drawn from ``(seed, b)``), the crops cut as
    :func:`predict_crops`' (``padding``, the codec's grid, ``normalization``, no augmentation).

    Returns (coords (N, K, 2) crop px, confidence (N, K), matrices (N, 2, 3), indices into ``records`` (N,))
    of the readable records, in order."""
    labels = label_records(model, records, schema, codec, normalization, consistency, torch.device(device),
                           batch_size=batch_size, padding=padding, seed=seed, truth=False)
    if not len(labels):
        raise DataError("<target>", "image", "no readable target image")
    position = {id(r): i for i, r in enumerate(records)}  # label_records keeps the record objects it read
    idx = np.array([position[id(r)] for r in labels.records], dtype=np.int64)
    return labels.crop_xy, labels.confidence, labels.matrices, idx
