"""``evaluate(checkpoint, data)``: every metric of :mod:`animalpose.evaluation` on a labelled dataset.

The checkpoint is opened first (a corrupt file or a checkpoint of another schema is a DataError
naming it), then the dataset is read and validated (:mod:`animalpose.data.validate`: a bad record
is a DataError unless ``skip_bad``), then the model runs.

Two protocols:

- ``"default"``: flip test, batches of 16, instances without any labelled joint left out before
  batching; the PCKs are pooled over every valid joint (the headline).
- ``"reference"``: what the CC-SSL reference's ``evaluation/test.py`` does to print its published
  numbers: no flip test (its ``--flip`` is off there, and its flip path would crash: ``flip_back`` is
  called with one argument and defined with two), batches of ``--test-batch`` = 6 in dataset order,
  every instance kept, the last stack's heatmaps scored batch by batch with the reference's PCK
  (:mod:`animalpose.evaluation_reference`), which adds ``pck_crop@0.05_ref_b<batch>`` and the per-joint
  table ``pck_crop@0.05_ref``. Only this protocol's number is set beside the reference's.

Metrics (fractions in [0, 1]):

- ``pck_crop@α`` for α in 0.05, 0.1, 0.2 (CC-SSL definition, pooled);
- ``pck_bbox@α`` for α in 0.05, 0.1, 0.2 in original-image pixels;
- ``pixel_error_mean`` / ``_median`` / ``_rmse``: the distance to the label in original-image pixels
  over the labelled joints (what DeepLabCut and Lightning Pose report; per joint in ``per_joint_tables``);
- ``pckh@0.5`` when the schema has ``head_top`` and ``upper_neck`` (MPII) — head box when known,
  else the head-top–neck distance (:func:`animalpose.evaluation.head_sizes`);
- ``AP``, ``AP50``, ... ``AR`` (OKS, pycocotools) when the schema has sigmas; instance score = mean
  of the joints' heatmap maxima.

``per_joint`` is PCK@0.05 (crop) by joint name; ``per_joint_tables`` holds the other per-joint metrics.

A dataset of another schema than the checkpoint's is scored only through an explicit joint table
(``mapping="auto"``: ``configs/keypoints/mappings/<a>__<b>.yaml`` in either direction, or a table's
path): its labels are moved into the checkpoint's joints, the joints the table leaves out are not
scored, and the result lists the scored ``common_joints`` (checkpoint joint -> dataset joint). PCK
bbox keeps the instance's size from all its own labelled joints; OKS AP is left out (its sigmas and
areas are defined over a schema's full joint set).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from animalpose.config import ExperimentConfig, parse_config
from animalpose.data.dataset import Normalization, SkippedImages, TopDownDataset, collate_skip
from animalpose.data.flip import flip_permutation_or_none
from animalpose.data.readers import dataset_schema, read_dataset
from animalpose.data.transforms import crop_to_original
from animalpose.data.validate import SkipReport, validate_dataset
from animalpose.engine.build import crop_padding, make_codec, make_model, pick_device
from animalpose.engine.checkpoint import load_checkpoint, schema_of
from animalpose.engine.inference import final_heatmaps, flip_shift_for
from animalpose.engine.multiview import MultiviewCorrection, look_alike
from animalpose.engine.pictures import examples_of
from animalpose.errors import ConfigError, DataError, Problem
from animalpose.evaluation import (
    bbox_normalisers,
    crop_distances,
    head_sizes,
    oks_ap,
    pck_bbox,
    pck_from_distances,
    pckh,
    per_joint_table,
    pixel_errors,
)
from animalpose.evaluation_reference import REFERENCE_TEST_BATCH, ReferencePCKMeter
from animalpose.keypoints import KeypointSchema, SchemaMapping, load_mapping, load_schema, mapping_from_file
from animalpose.threads import loader_workers

ALPHAS = (0.05, 0.1, 0.2)
PROTOCOLS = ("default", "reference")
DEFAULT_BATCH = 16


def protocol_settings(protocol: str, flip: bool | None, batch_size: int | None) -> tuple[bool, int]:
    """(flip, batch size) of ``protocol``, with the caller's explicit choices where the protocol allows them.

    Raises:
        ConfigError: an unknown protocol, flip test asked of the reference protocol, or a batch size < 1.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError("<evaluate>", "protocol", f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if protocol == "reference" and flip:
        raise ConfigError("<evaluate>", "flip", "the reference protocol does not flip-test (its evaluation/test.py "
                                                "runs without --flip)")
    if batch_size is not None and batch_size < 1:
        raise ConfigError("<evaluate>", "batch_size", f"expected a positive integer, got {batch_size}")
    if protocol == "reference":
        return False, batch_size or REFERENCE_TEST_BATCH
    return (True if flip is None else flip), batch_size or DEFAULT_BATCH


def config_from_checkpoint(ckpt: dict, where: str) -> ExperimentConfig:
    """The training configuration stored in a checkpoint, without its dataset paths (they may be gone)."""
    raw = dict(ckpt.get("config") or {})
    raw["data"] = {**raw.get("data", {}), "train": [], "val": [], "target": []}
    raw["model"] = {**raw.get("model", {}), "pretrained": None}
    raw = {k: v for k, v in raw.items() if k in ExperimentConfig.model_fields}  # method sections (ccssl:, ...)
    return parse_config(raw, where=where)


def load_model(checkpoint: str | Path, device: torch.device | str = "cpu", ema: bool = True):
    """(model in eval mode, schema, config, normalisation, checkpoint dict) from a checkpoint file."""
    ckpt = load_checkpoint(checkpoint)
    schema = schema_of(ckpt)
    cfg = config_from_checkpoint(ckpt, str(checkpoint))
    model = make_model(cfg, schema)
    weights = ckpt["ema"] if ema and ckpt.get("ema") else ckpt["model"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise DataError(str(checkpoint), "model", f"weights do not fit {cfg.model.name}: "
                                                  f"{str(exc).splitlines()[0]}") from exc
    normalization = Normalization.from_dict((ckpt.get("extra") or {}).get("normalization"))
    device = torch.device(device) if isinstance(device, str) else device
    return model.to(device).eval(), schema, cfg, normalization, ckpt


def check_dataset_schema(dataset, schema: KeypointSchema, where: str) -> None:
    own = dataset_schema(dataset)
    if own is None or own.joints != schema.joints:
        name = "unlabelled" if own is None else f"{own.name!r} ({own.num_joints} joints)"
        hint = "" if own is None else "; pass --mapping auto (or a table) to score the joints both schemas share"
        raise DataError(where, "schema", f"dataset has schema {name}; the checkpoint predicts {schema.name!r} "
                                         f"({schema.num_joints} joints){hint}")


def resolve_mapping(mapping: str | Path, dataset: KeypointSchema, checkpoint: KeypointSchema,
                    where: str) -> SchemaMapping:
    """The table from the dataset's joints to the checkpoint's: ``"auto"`` (the configs/ table of the two
    schemas) or a table file, used in whichever direction it is written."""
    if str(mapping) == "auto":
        table = load_mapping(dataset.name, checkpoint.name)
        where_table = f"configs/keypoints/mappings ({dataset.name} <-> {checkpoint.name})"
    else:
        table = mapping_from_file(mapping)
        where_table = str(mapping)
        if (table.source, table.target) == (checkpoint.name, dataset.name):
            table = table.inverse()
        elif (table.source, table.target) != (dataset.name, checkpoint.name):
            raise DataError(where_table, "source/target", f"maps {table.source} -> {table.target}, not the "
                                                          f"dataset's {dataset.name} <-> the checkpoint's "
                                                          f"{checkpoint.name}")
    # the table indexes joints of the schemas in configs/; the data's and checkpoint's must be those
    for side, own in (("source", dataset), ("target", checkpoint)):
        if load_schema(getattr(table, side)).joints != own.joints:
            raise DataError(where if side == "source" else where_table, "schema",
                            f"the joints of {own.name!r} differ from configs/keypoints/{own.name}.yaml, "
                            f"which the table indexes")
    return table


@torch.no_grad()
def evaluate(checkpoint: str | Path, data: str | Path, *, format: str = "auto", split: str | None = None,
             batch_size: int | None = None, flip: bool | None = None, protocol: str = "default", device: str = "auto",
             workers: int | None = None, progress: bool = True, categories: Sequence[str] | None = None,
             split_file: str | Path | None = None, mapping: str | Path | None = None, skip_bad: bool = False,
             allow_outside_root: bool = False, examples: int = 0, multiview: bool = True,
             per_instance: bool = False, keep_predictions: bool = False) -> dict:
    """Evaluate ``checkpoint`` on the labelled dataset at ``data`` under ``protocol`` (module docstring).

    ``flip`` and ``batch_size`` default to the protocol's (flip test and 16; no flip and 6 for
    ``"reference"``, which refuses ``flip=True`` and takes another batch size as its ``--test-batch``).
    ``categories``/``split_file`` select species and images as in :func:`~animalpose.data.readers.read_dataset`;
    ``mapping`` admits a dataset of another schema (module docstring). ``skip_bad``: drop the records that
    fail validation (:mod:`animalpose.data.validate`) instead of stopping with a DataError; what was
    dropped is in the result's ``skipped``. ``allow_outside_root``: read images whose paths resolve outside the
    dataset's image root (refused otherwise). ``examples``: also return that many scored instances, evenly
    spaced over the dataset's order (:func:`~animalpose.engine.pictures.example_indices`: the same ones for
    every checkpoint), with their predictions, for a gallery (:func:`~animalpose.engine.pictures.gallery_figure`).
    ``workers``: loader workers (None: :func:`~animalpose.threads.loader_workers` for the device, as the trainer).
    ``multiview``: mend the predictions with the views' subspace the checkpoint carries
    (:mod:`animalpose.engine.multiview`, models trained with ``multiview.correct``; the original-pixel metrics, PCK
    bbox, pixel error and OKS, score the mended points, crop PCK the heatmaps); the result says whether it did.
    ``per_instance``: also each scored instance's summed pixel error and labelled-joint count, in the loader's order
    (the same for every checkpoint on the same data), for paired comparisons of two models.
    ``keep_predictions``: also ``"predictions"``, arrays in that order (``pred`` (N, K, 3) as scored, ``gt`` (N, K,
    3), ``boxes`` (N, 4), ``sizes`` (N,) or None, ``images``, and the checkpoint's ``schema``), to combine several
    models' (an ensemble:
    :mod:`animalpose.engine.evaluate_ensemble`); not JSON.

    Returns:
        ``{"metrics": {name: value}, "per_joint": {joint: PCK@0.05 crop}, "per_joint_tables": {...},
        "instances": n, "protocol": str, "flip": bool, "batch_size": int, "multiview": bool,
        "multiview_groups": [[body part, ...], ...] (the groups mended), "checkpoint": str,
        "data": str,
        "seconds": float, "skipped": {...}}``, plus ``"look_alike"`` for a multi-view rig's model (the parts its
        raw output swaps on these frames and each group's error per view: :func:`~animalpose.engine.multiview.
        look_alike`),
        ``"dataset_schema"`` and ``"common_joints"`` ({checkpoint joint: dataset joint}) when scored
        through a mapping, ``"per_instance"`` (``{"image", "pixel_error_sum", "joints"}``: lists) when asked for,
        and ``"examples"`` (:func:`~animalpose.engine.pictures.examples_of`) when asked for.
    """
    flip, batch_size = protocol_settings(protocol, flip, batch_size)
    reference = protocol == "reference"
    dev = pick_device(device)
    model, schema, cfg, norm, ckpt = load_model(checkpoint, dev)
    correction = MultiviewCorrection.from_checkpoint(ckpt) if multiview else None
    del ckpt
    ds = read_labelled(data, format, schema, split, categories=categories, split_file=split_file,
                       mapping=mapping)
    own_schema = dataset_schema(ds)
    checked = validate_dataset(ds, own_schema or schema, skip_bad=skip_bad, allow_outside_root=allow_outside_root)
    # the reference batches every instance of its test list; dropping unlabelled ones would change its batches
    records = [r for r in checked.records if reference or (r.keypoints[:, 2] > 0).any()]
    common: dict[str, str] | None = None
    if own_schema is not None and own_schema.joints != schema.joints:  # read_labelled checked the mapping is given
        assert mapping is not None
        table = resolve_mapping(mapping, own_schema, schema, str(data))
        common = {schema.joints[b]: own_schema.joints[a] for a, b in table.pairs}
        # the animal's size for PCK bbox comes from all its own labels, not only the shared joints
        own_size = {id(r): bbox_normalisers(r.keypoints[None], None if r.bbox is None else np.array([r.bbox]))[0]
                    for r in records}
        mapped = [replace(r, keypoints=table.apply(r.keypoints), schema=schema.name) for r in records]
        sizes_by_record = {id(m): own_size[id(r)] for m, r in zip(mapped, records, strict=True)}
        records = [m for m in mapped if reference or (m.keypoints[:, 2] > 0).any()]
    if not any((r.keypoints[:, 2] > 0).any() for r in records):
        raise DataError(str(data), "annotations", "no labelled instances to evaluate"
                        + (" on the joints both schemas share" if common is not None else ""))
    padding = crop_padding(ds, cfg)
    codec = make_codec(cfg)
    tds = TopDownDataset(records, schema, codec, None, padding=padding, normalization=norm)
    # workers as the trainer chooses them for this device (none on a CPU with up to 3 free cores; a GPU's
    # batches decoded ahead in workers); scores do not depend on the count: no shuffling, no random draw
    loader = DataLoader(tds, batch_size=batch_size, shuffle=False, num_workers=loader_workers(workers, dev),
                        collate_fn=collate_skip, pin_memory=dev.type == "cuda")
    perm = flip_permutation_or_none(schema) if flip else None
    shift = flip_shift_for(cfg.model.name, codec)
    dists, preds, gts, boxes, used, crops = [], [], [], [], [], []
    ref_meter = ReferencePCKMeter() if reference else None
    t0 = time.perf_counter()
    bar = None
    if progress:
        from animalpose.progress import progress_bar

        bar = progress_bar(total=len(records), desc="evaluate", unit="inst", leave=False)
    undecodable = 0
    failed = SkippedImages()
    for batch in loader:
        undecodable += int(batch["skipped"])
        failed.add(batch)
        if "image" not in batch:
            continue
        hm = final_heatmaps(model, batch["image"].to(dev), perm, shift).cpu()
        # argmax metrics read the codec's joint score maps (G-RMI: Hough maps; heatmap codecs: the maps)
        scores, target_scores = codec.score_maps(hm.numpy()), codec.score_maps(batch["target"].numpy(), target=True)
        dists.append(crop_distances(scores, target_scores))
        if ref_meter is not None:
            ref_meter.update(scores, target_scores)
        coords, maxvals = codec.decode(hm)
        orig = crop_to_original(coords, batch["meta"]["matrix"].numpy())
        preds.append(np.concatenate([orig, maxvals[..., None]], -1))
        gts.append(batch["meta"]["keypoints"].numpy())
        used.extend(int(i) for i in batch["meta"]["index"])
        crops.append(batch["meta"]["matrix"].numpy())
        if bar is not None:
            bar.update(len(hm))
    if bar is not None:
        bar.close()
    skipped = checked.skipped
    if undecodable:  # passed the header/end-marker check but did not decode: never a silent drop
        problems = [Problem(s["image"], "image" if s["frame_index"] is None else f"frame {s['frame_index']}",
                            s["reason"]) for s in failed.to_list()]
        files = sorted({p.file for p in problems})
        if not skip_bad:
            raise DataError(problems[0].file, "image", f"{undecodable} image(s) of {data} do not decode "
                                                       f"({', '.join(files[:5]) or 'see the log'}); --skip-bad "
                                                       "evaluates without them")
        skipped = SkipReport(skipped.records + undecodable, [*skipped.problems, *problems])
    if not dists:
        raise DataError(str(data), "image", "no image of the dataset decodes")
    d, pred, gt = np.concatenate(dists), np.concatenate(preds), np.concatenate(gts)
    # a rig's model: the parts it swaps in these frames, from its raw output (what multiview.correct would mend)
    alike = (look_alike(pred, gt, cfg.multiview.views, schema, cfg.multiview.confusion)
             if cfg.multiview.views and common is None else None)
    if correction is not None:
        pred = correction.apply(pred)
    recs = [records[i] for i in used]
    for r in recs:
        box = r.bbox if r.bbox is not None else (0, 0, *(r.image_size or (0, 0)))
        boxes.append(box)
    bbox_sizes = None if common is None else np.array([sizes_by_record[id(r)] for r in recs])
    metrics: dict[str, float] = {}
    tables: dict[str, dict[str, float]] = {}
    for a in ALPHAS:
        r = pck_from_distances(d, a)
        metrics[f"pck_crop@{a}"] = r.mean
        tables[f"pck_crop@{a}"] = per_joint_table(schema, r.per_joint)
        rb = pck_bbox(pred, gt, a, np.asarray(boxes, dtype=np.float64), normalisers=bbox_sizes)
        metrics[f"pck_bbox@{a}"] = rb.mean
        tables[f"pck_bbox@{a}"] = per_joint_table(schema, rb.per_joint)
    if ref_meter is not None:
        metrics[f"pck_crop@0.05_ref_b{batch_size}"] = ref_meter.value
        tables["pck_crop@0.05_ref"] = per_joint_table(schema, ref_meter.per_joint)
    px = pixel_errors(pred, gt)
    metrics.update({"pixel_error_mean": px.mean, "pixel_error_median": px.median, "pixel_error_rmse": px.rmse})
    tables["pixel_error_mean"] = per_joint_table(schema, px.per_joint_mean)
    if "head_top" in schema.joints and "upper_neck" in schema.joints:
        sizes, how = head_sizes(recs, schema)
        rh = pckh(pred, gt, sizes, 0.5)
        metrics["pckh@0.5"] = rh.mean
        tables["pckh@0.5"] = per_joint_table(schema, rh.per_joint)
        metrics_note = {"pckh_head_size": how}
    else:
        metrics_note = {}
    if common is not None:
        tables = {name: {j: t[j] for j in common} for name, t in tables.items()}
        metrics_note["oks"] = "left out: the dataset is scored on the joints both schemas share"
    elif schema.sigmas is not None:
        image_ids = {}
        for r in recs:
            if r.image_id is None:
                r.image_id = image_ids.setdefault((r.image, r.frame_index), len(image_ids) + 1)
        results = [{"image_id": r.image_id, "keypoints": p.reshape(-1).tolist(), "score": float(p[:, 2].mean())}
                   for r, p in zip(recs, pred, strict=True)]
        metrics.update(oks_ap(recs, results, schema, str(data)))
    result = {"metrics": metrics, "per_joint": tables["pck_crop@0.05"], "per_joint_tables": tables,
              "instances": len(recs), "protocol": protocol, "flip": flip, "batch_size": batch_size,
              "multiview": correction is not None,
              "multiview_groups": correction.group_names(schema) if correction is not None else [],
              "checkpoint": str(checkpoint), "data": str(data),
              "notes": metrics_note, "seconds": time.perf_counter() - t0, "skipped": skipped.to_dict()}
    if alike is not None:
        result["look_alike"] = alike
    if per_instance:
        seen = gt[..., 2] > 0
        dist = np.where(seen, np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1), 0.0)
        result["per_instance"] = {"image": [r.image for r in recs], "pixel_error_sum": dist.sum(1).tolist(),
                                  "joints": seen.sum(1).astype(int).tolist()}
    if keep_predictions:
        result["predictions"] = {"pred": pred, "gt": gt, "boxes": np.asarray(boxes, dtype=np.float64),
                                 "sizes": bbox_sizes, "images": [r.image for r in recs], "schema": schema}
    if examples > 0:
        result["examples"] = examples_of(recs, pred, gt, d, np.concatenate(crops), schema, examples,
                                         tuple(cfg.data.input_size))
    if common is not None:
        result.update(dataset_schema=own_schema.name, common_joints=common)
    return result


def read_labelled(data: str | Path, format: str, schema: KeypointSchema, split: str | None = None, *,
                  categories: Sequence[str] | None = None, split_file: str | Path | None = None,
                  mapping: str | Path | None = None):
    """Read ``data`` with its own schema; where the file does not say, with the checkpoint's. Then check
    that it is ``schema`` or, with a ``mapping``, at least labelled (the mapping is resolved by the caller)."""
    select = {"split": split, "categories": categories, "split_file": split_file}
    try:
        ds = read_dataset(data, format, None, **select)
    except DataError:
        from animalpose.keypoints import list_schemas

        if schema.name not in list_schemas():
            raise
        ds = read_dataset(data, format, schema.name, **select)
    if mapping is None or dataset_schema(ds) is None:
        check_dataset_schema(ds, schema, str(data))
    return ds
