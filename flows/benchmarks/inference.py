"""A checkpoint's outputs on plain crops of labelled records: the one inference loop behind the method
benchmarks' evaluations (``ccssl-real`` scores original-image pixels, ``wscda`` crop PCK).

No augmentation and no flip test (the benchmarks' schemas and settings do not use one), batches in
record order, on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from animalpose.config import ExperimentConfig
from animalpose.data.dataset import Normalization, TopDownDataset, collate_skip
from animalpose.data.records import PoseRecord
from animalpose.data.transforms import crop_to_original
from animalpose.engine.build import make_codec
from animalpose.engine.evaluate import load_model
from animalpose.engine.inference import final_heatmaps
from animalpose.errors import DataError
from animalpose.keypoints import KeypointSchema


@dataclass(frozen=True)
class Loaded:
    """A checkpoint's model with what its evaluation needs (:func:`animalpose.engine.evaluate.load_model`)."""

    model: torch.nn.Module
    schema: KeypointSchema
    cfg: ExperimentConfig
    normalization: Normalization

    @classmethod
    def from_checkpoint(cls, checkpoint: Path) -> Loaded:
        model, schema, cfg, norm, _ = load_model(checkpoint, "cpu")
        return cls(model, schema, cfg, norm)


@dataclass(frozen=True)
class CropOutputs:
    """Per readable crop, in record order.

    Attributes:
        heatmaps: (N, K, h, w) predicted heatmaps of the last stage.
        targets: (N, K, h, w) the ground-truth heatmaps of the same crops.
        keypoints: (N, K, 3) predicted x, y in original-image pixels, and the heatmap maximum.
    """

    heatmaps: np.ndarray
    targets: np.ndarray
    keypoints: np.ndarray


@torch.no_grad()
def crop_outputs(loaded: Loaded, records: Sequence[PoseRecord], padding: float, batch_size: int = 16,
                 skip_unreadable: bool = False) -> CropOutputs:
    """Run ``loaded``'s model on the crops of ``records`` (box × ``padding``).

    An unreadable image is a DataError naming it, unless ``skip_unreadable`` (then its crop is left out).
    """
    codec = make_codec(loaded.cfg)
    ds = TopDownDataset(list(records), loaded.schema, codec, None, padding=padding, normalization=loaded.normalization)
    heatmaps, targets, keypoints = [], [], []
    for batch in DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate_skip):
        if batch["skipped"] and not skip_unreadable:
            raise DataError(str(records[0].image), "image", "an evaluation image could not be read")
        if "image" not in batch:  # every crop of the batch was unreadable
            continue
        hm = final_heatmaps(loaded.model, batch["image"], None, False).cpu()
        coords, maxvals = codec.decode(hm)
        heatmaps.append(hm.numpy())
        targets.append(batch["target"].numpy())
        keypoints.append(np.concatenate([crop_to_original(coords, batch["meta"]["matrix"].numpy()),
                                         maxvals[..., None]], -1))
    if not heatmaps:
        raise DataError(str(records[0].image) if records else "records", "image", "no readable crop to evaluate")
    return CropOutputs(np.concatenate(heatmaps), np.concatenate(targets), np.concatenate(keypoints))
