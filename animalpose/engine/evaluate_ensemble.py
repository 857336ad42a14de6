"""``evaluate_ensemble(checkpoints, data)``: an ensemble's metrics on a labelled dataset, beside its members'.

Each member is evaluated as :func:`animalpose.engine.evaluate.evaluate` evaluates one checkpoint (its own crop,
flip test and multi-view correction); the ensemble's prediction of an instance is, per keypoint, the members' median
x and y and mean likelihood (:func:`animalpose.engine.ensemble.ensemble_pose`, what ``predict`` writes for several
checkpoints). It is scored by the metrics defined in original-image pixels: the pixel error (mean, median, RMSE,
per joint) and PCK bbox. Left out, and said so in ``notes``: crop PCK (one network's heatmap distances; an ensemble
has no heatmap) and OKS AP (its instance score is one network's). ``protocol="reference"`` is refused for the
same reason.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from animalpose.engine.ensemble import ensemble_pose, merged_groups
from animalpose.engine.evaluate import ALPHAS, evaluate
from animalpose.errors import ConfigError, DataError
from animalpose.evaluation import pck_bbox, per_joint_table, pixel_errors


def evaluate_ensemble(checkpoints: Sequence[str | Path], data: str | Path, **options) -> dict:
    """Evaluate the ensemble of ``checkpoints`` (two or more, one schema) on ``data``.

    ``options`` are :func:`~animalpose.engine.evaluate.evaluate`'s (not ``examples``, ``per_instance`` or
    ``keep_predictions``).

    Returns:
        ``{"metrics": {pck_bbox@α, pixel_error_mean/_median/_rmse}, "per_joint": {joint: PCK@0.05 bbox},
        "per_joint_tables": {...}, "instances": n, "ensemble": {"members": [{"checkpoint", "pixel_error_mean",
        "pck_bbox@0.05"}, ...], "spread_px_mean": the members' mean RMS distance from their mean point over the
        labelled joints}, "checkpoint": [paths], "data", "protocol", "flip", "batch_size", "multiview",
        "multiview_groups", "notes", "seconds", "skipped"}`` (``skipped``: the first member's; every member reads
        the same records).
    """
    if len(checkpoints) < 2:
        raise ConfigError(str(checkpoints[0]) if checkpoints else "--checkpoint", "checkpoint",
                          "an ensemble needs two or more checkpoints")
    if options.get("protocol", "default") == "reference":
        raise ConfigError(str(checkpoints[0]), "protocol", "the reference protocol scores one network's heatmaps "
                          "(crop PCK); an ensemble has none: evaluate its members one at a time")
    for key in ("examples", "per_instance", "keep_predictions"):
        if options.pop(key, None):
            raise ConfigError(str(checkpoints[0]), key, f"{key} is not offered for an ensemble")
    t0 = time.perf_counter()
    members = [evaluate(c, data, keep_predictions=True, **options) for c in checkpoints]
    first = members[0]
    schema = first["predictions"]["schema"]  # the predictions' joints (a mapped dataset scores some of them)
    for path, m in zip(checkpoints[1:], members[1:], strict=True):
        if m["predictions"]["schema"].joints != schema.joints:
            raise ConfigError(str(path), "schema.joints", f"predicts other joints than {checkpoints[0]} "
                              "(an ensemble's members must predict the same joints in the same order)")
        if m["predictions"]["images"] != first["predictions"]["images"]:
            raise DataError(str(data), "images", f"{path} scored other instances than {checkpoints[0]} (an image "
                            "that decodes for one member and not another?)")
    pose, var = ensemble_pose(np.stack([m["predictions"]["pred"] for m in members]))
    kept = first["predictions"]
    gt, boxes, sizes = kept["gt"], kept["boxes"], kept["sizes"]
    metrics: dict[str, float] = {}
    tables: dict[str, dict[str, float]] = {}
    for a in ALPHAS:
        rb = pck_bbox(pose, gt, a, boxes, normalisers=sizes)
        metrics[f"pck_bbox@{a}"] = rb.mean
        tables[f"pck_bbox@{a}"] = per_joint_table(schema, rb.per_joint)
    px = pixel_errors(pose, gt)
    metrics.update({"pixel_error_mean": px.mean, "pixel_error_median": px.median, "pixel_error_rmse": px.rmse})
    tables["pixel_error_mean"] = per_joint_table(schema, px.per_joint_mean)
    if "common_joints" in first:  # scored through a mapping: the tables name the joints both schemas share
        tables = {name: {j: t[j] for j in first["common_joints"]} for name, t in tables.items()}
    labelled = gt[..., 2] > 0
    spread = np.sqrt(np.nan_to_num(var, nan=0.0).sum(-1))[labelled]
    notes = {**first["notes"], "ensemble": f"the median of {len(members)} members per keypoint; crop PCK (one "
             "network's heatmaps) and OKS AP (one network's instance score) are left out"}
    notes.pop("oks", None)
    result = {"metrics": metrics, "per_joint": tables["pck_bbox@0.05"], "per_joint_tables": tables,
              "instances": first["instances"],
              "ensemble": {"members": [{"checkpoint": str(c), "pixel_error_mean": m["metrics"]["pixel_error_mean"],
                                        "pck_bbox@0.05": m["metrics"]["pck_bbox@0.05"]}
                                       for c, m in zip(checkpoints, members, strict=True)],
                           "spread_px_mean": float(spread.mean()) if spread.size else float("nan")},
              "checkpoint": [str(c) for c in checkpoints], "data": str(data), "protocol": first["protocol"],
              "flip": first["flip"], "batch_size": first["batch_size"],
              "multiview": any(m["multiview"] for m in members),
              "multiview_groups": merged_groups([m["multiview_groups"] for m in members]), "notes": notes,
              "seconds": time.perf_counter() - t0, "skipped": first["skipped"]}
    for key in ("dataset_schema", "common_joints"):
        if key in first:
            result[key] = first[key]
    return result
