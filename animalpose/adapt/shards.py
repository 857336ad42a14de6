"""Sharded pseudo-labelling: the consistency step of a CC-SSL round split over worker processes.

A round's pseudo-labels are made in two steps (:mod:`animalpose.adapt.pseudolabel`): the
equivariance / invariance views of every target crop, which are independent per batch of crops, then
the temporal refinement, which chains the frames of a video and needs the whole set. Only the first
step shards. :func:`animalpose.adapt.ccssl.run_ccssl` packs what a worker needs into a picklable
:class:`LabelRequest` (the config, the model's weights on the CPU, the target records, the
normalisation and crop padding, the round's seed) and hands it to a *labeler*, a callable
``LabelRequest -> PseudoLabelSet`` returning the pre-temporal labels of all its records in order.
:func:`label_sharded` is the labeler for any ``map``-like executor (the built-in ``map``, a process
pool, a Dask client or a Prefect task runner in ``flows/ccssl.py``); each shard runs
:func:`label_shard` in its worker, which rebuilds the model from the config and the weights.

Shards are cut at multiples of the pseudo-label batch size (:func:`shard_bounds`), and each batch
draws its random views from ``(round seed, batch position in the whole set)``, so the merged labels
are the same for any number of shards (and the same as unsharded ``generate_pseudo_labels``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import torch

from animalpose.adapt.pseudolabel import PseudoLabelSet, label_records
from animalpose.data.dataset import Normalization
from animalpose.data.records import PoseRecord
from animalpose.engine.build import make_codec, make_model, pick_device
from animalpose.keypoints import KeypointSchema

Labeler = Callable[["LabelRequest"], PseudoLabelSet]


def shard_bounds(n: int, shards: int, batch_size: int) -> list[tuple[int, int]]:
    """Record ranges [start, end) of at most ``shards`` near-equal shards, cut at multiples of ``batch_size``.

    The ``ceil(n / batch_size)`` batches are split as evenly as possible (the first shards get one
    more); shards that would be empty are left out, so fewer ranges come back when there are fewer
    batches than shards. Example: ``shard_bounds(10, 3, 3) == [(0, 6), (6, 9), (9, 10)]``.
    """
    if shards < 1 or batch_size < 1 or n < 0:
        raise ValueError(f"need shards >= 1, batch_size >= 1 and n >= 0, got {shards}, {batch_size}, {n}")
    batches = math.ceil(n / batch_size)
    base, extra = divmod(batches, shards)
    out, start = [], 0
    for i in range(shards):
        count = base + (i < extra)
        if count:
            out.append((start * batch_size, min((start + count) * batch_size, n)))
        start += count
    return out


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``model``'s state dict (picklable, independent of later training)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@dataclass
class LabelRequest:
    """Everything a worker process needs to pseudo-label some target records for one round.

    Attributes:
        cfg: the round's ``CCSSLConfig`` (model, codec, input size, ``ccssl`` view settings,
            ``ccssl.pseudo_batch_size``, ``train.device``).
        schema: the keypoint schema of the model and the records.
        state: the model's weights (the EMA model's when the trainer keeps one), on the CPU.
        records: the target records to label (``PoseRecord``), in order.
        normalization: the image normalisation the model was trained with.
        padding: crop padding of the target (the source's rule, see ``ccssl._read_target``).
        seed: the round's seed (``train.seed * 1000 + round``).
        round_index: the round (for logging and task names only).
        first_batch: position of ``records[0]`` in the whole set, in batches of
            ``ccssl.pseudo_batch_size`` (0 for a whole set; set by :meth:`split`).
    """

    cfg: object
    schema: KeypointSchema
    state: dict[str, torch.Tensor]
    records: list[PoseRecord]
    normalization: Normalization
    padding: float
    seed: int
    round_index: int = 0
    first_batch: int = 0

    @property
    def batch_size(self) -> int:
        return int(self.cfg.ccssl.pseudo_batch_size)

    def split(self, shards: int) -> list[LabelRequest]:
        """At most ``shards`` requests over consecutive record ranges (:func:`shard_bounds`), each
        knowing its first batch's position so that its random views match the unsharded pass."""
        bs = self.batch_size
        return [replace(self, records=self.records[a:b], first_batch=self.first_batch + a // bs)
                for a, b in shard_bounds(len(self.records), shards, bs)]


def label_shard(request: LabelRequest) -> PseudoLabelSet:
    """Pre-temporal pseudo-labels of ``request.records`` (runs in a worker process).

    Rebuilds the codec and model from ``request.cfg``, loads ``request.state`` and runs
    :func:`animalpose.adapt.pseudolabel.label_records` on ``cfg.train.device`` with in-process data
    loading (worker processes are often daemons, which cannot start loader processes).
    """
    cfg, schema = request.cfg, request.schema
    codec = make_codec(cfg)
    model = make_model(cfg, schema)
    model.load_state_dict(request.state)
    device = pick_device(cfg.train.device)
    model.to(device)
    return label_records(model, request.records, schema, codec, request.normalization, cfg.ccssl.consistency(device),
                         device, batch_size=request.batch_size, padding=request.padding,
                         seed=request.seed, truth=cfg.ccssl.target_truth, workers=0,
                         first_batch=request.first_batch)


def label_sharded(request: LabelRequest, shards: int,
                  map_fn: Callable[[Callable, Iterable], Iterable[PseudoLabelSet]] = map) -> PseudoLabelSet:
    """Split ``request`` into ``shards``, label each with :func:`label_shard` through ``map_fn``
    (e.g. ``map``, ``ProcessPoolExecutor.map``), and concatenate the results in record order."""
    return PseudoLabelSet.concat(list(map_fn(label_shard, request.split(shards))))


def sharded_labeler(shards: int, map_fn: Callable[[Callable, Iterable], Iterable[PseudoLabelSet]] = map) -> Labeler:
    """A ``run_ccssl`` labeler that shards every round's request ``shards`` ways through ``map_fn``."""
    return lambda request: label_sharded(request, shards, map_fn)
