"""A CC-SSL reference checkpoint as an animalpose checkpoint, so ``evaluate`` and ``predict`` can run it.

The weights map as :mod:`animalpose.models.reference_weights` says. What the weights alone do not
carry is stated here from the reference's code (github.com/JitengMu/Learning-from-Synthetic-Animals,
commit 1ff5b529): 256×256 input crops, 64×64 heatmaps, Gaussian targets with σ = 1 (``train.py``
``--inp-res``/``--out-res``/``--sigma`` defaults), and an input normalisation that subtracts the
per-channel mean of RGB in [0, 1] and does *not* divide by the std (``pose/utils/transforms.py``
``color_normalize``); the mean is the synthetic dataset's (``data/synthetic_animal/<animal>_combineds5r5_
texture/mean.pth.tar``, ``real_animal_sp.py:_compute_mean``), so it is given here: as three numbers or as
that file (a weights-only dict with a ``mean`` tensor).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from animalpose.config import parse_config, to_dict
from animalpose.data.dataset import Normalization
from animalpose.engine.build import make_model
from animalpose.engine.checkpoint import save_checkpoint
from animalpose.errors import DataError
from animalpose.keypoints import load_schema
from animalpose.models.reference_weights import load_reference_hourglass
from animalpose.outputs import check_output_file


def read_reference_mean(path: str | os.PathLike) -> tuple[float, float, float]:
    """The ``mean`` (3,) of a reference ``mean.pth.tar``; DataError naming the file and field otherwise."""
    path = os.fspath(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # missing, corrupt, or pickled objects
        raise DataError(path, "mean", f"cannot read as a weights-only torch file: {exc}") from exc
    mean = obj.get("mean") if isinstance(obj, dict) else None
    if not isinstance(mean, torch.Tensor) or mean.numel() != 3:
        raise DataError(path, "mean", "expected a dict with a 3-element 'mean' tensor")
    return tuple(float(v) for v in mean.flatten())  # type: ignore[return-value]


def import_reference(checkpoint: str | os.PathLike, out: str | os.PathLike, *, model: str = "hourglass4",
                     schema: str = "tigdog", mean: Sequence[float]) -> Path:
    """Write ``out``, an animalpose checkpoint of the reference checkpoint's weights.

    Args:
        checkpoint: the reference's ``checkpoint.pth.tar`` / ``model_best.pth.tar`` (or a bare state dict).
        model: hourglass1, hourglass2, hourglass4 (the reference's published one) or hourglass8.
        schema: the keypoint schema its heatmap channels follow (TigDog's 18 joints for its horse and tiger).
        mean: the RGB mean it subtracts (std 1).

    Raises:
        DataError: naming the file and the first key that does not map (see :func:`load_reference_hourglass`).
        ConfigError: an unknown model or schema, or a model that is not a stacked hourglass.
        OutputError: naming ``out`` when it cannot be written (a folder, read-only, full), before any work;
            the checkpoint itself is written to a temporary file and renamed.
    """
    check_output_file(out, "OUT")  # before reading anything: a path that cannot be written is said first
    if len(mean) != 3:
        raise DataError(str(checkpoint), "mean", f"expected 3 numbers (R, G, B), got {len(mean)}")
    keypoints = load_schema(schema)
    cfg = parse_config({"data": {"schema": schema, "input_size": [256, 256], "heatmap_size": [64, 64],
                                 "normalisation": "dataset"},
                        "model": {"name": model}, "codec": {"kind": "gaussian", "sigma": 1.0}},
                       where=str(checkpoint))
    net = make_model(cfg, keypoints)
    load_reference_hourglass(net, checkpoint)
    return save_checkpoint(out, model=net.state_dict(), schema=keypoints, config=to_dict(cfg), epoch=0, step=0,
                           extra={"normalization": Normalization(tuple(mean), (1.0, 1.0, 1.0)).to_dict(),
                                  "imported_from": os.fspath(checkpoint)}, with_rng=False)
