"""Forward passes shared by validation, evaluation and prediction: final heatmaps, with flip test."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from animalpose.codecs import Codec
from animalpose.data.dataset import TopDownDataset, collate_skip
from animalpose.data.flip import flip_heatmaps
from animalpose.data.transforms import crop_to_original
from animalpose.models.factory import MODELS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel / compiled wrappers."""
    return getattr(model, "module", model)


def flip_shift_for(model_name: str, codec: Codec | str) -> bool:
    """Whether flipped heatmaps are shifted one pixel when averaged.

    The MSRA/SimpleBaseline/HRNet code shifts (its heatmap grid is not symmetric about the mirror
    axis); UDP needs no shift; the CC-SSL hourglass code (pytorch-pose ``flip_back``) does not shift.
    The model's side is its :class:`~animalpose.models.factory.ModelSpec` ``flip_shift``; the codec's
    is ``codec.udp`` (a ``codec.kind`` string is still accepted).
    """
    udp = codec == "udp" if isinstance(codec, str) else codec.udp
    return not udp and MODELS[model_name].flip_shift


@torch.no_grad()
def final_heatmaps(model: nn.Module, images: torch.Tensor, flip_permutation: np.ndarray | None = None,
                   flip_shift: bool = False, channels_last: bool = False) -> torch.Tensor:
    """Heatmaps of the last stage, averaged with the mirrored input's when ``flip_permutation`` is given.

    Args:
        images: (N, 3, H, W) normalised input crops.
        flip_permutation: (K,) joint permutation of a horizontal flip, or None for no flip test.

    Returns:
        (N, K, h, w) float32.
    """
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    out = model(images)[-1].float()
    if flip_permutation is not None:
        flipped = model(images.flip(-1))[-1].float()
        out = 0.5 * (out + flip_heatmaps(flipped, flip_permutation, shift=flip_shift))
    return out


@torch.no_grad()
def original_predictions(model: nn.Module, datasets: Iterable[TopDownDataset], device: torch.device,
                         flip_permutation: np.ndarray | None = None, flip_shift: bool = False,
                         batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The model's decoded keypoints on every instance of labelled crop ``datasets``, in original-image pixels,
    and their labels: ((N, K, 3) x, y, heatmap maximum; (N, K, 3) x, y, visibility). An image that does not
    decode is left out of both (the datasets' own check has already refused unreadable files)."""
    model.eval()
    preds, truths = [], []
    for ds in datasets:
        for batch in DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0, collate_fn=collate_skip):
            if "image" not in batch:
                continue
            hm = final_heatmaps(model, batch["image"].to(device), flip_permutation, flip_shift).cpu()
            coords, maxvals = ds.codec.decode(hm)
            orig = crop_to_original(coords, batch["meta"]["matrix"].numpy())
            preds.append(np.concatenate([orig, maxvals[..., None]], -1))
            truths.append(batch["meta"]["keypoints"].numpy())
    if not preds:
        return np.zeros((0, 0, 3)), np.zeros((0, 0, 3))
    return np.concatenate(preds), np.concatenate(truths)


def normalise(images: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32 normalised."""
    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (t - m) / s
