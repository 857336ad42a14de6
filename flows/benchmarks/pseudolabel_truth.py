"""How far each round's pseudo-labels are from the truth, where the "unlabelled" frames have labels (the SLEAP clip).

The SLEAP clip labels every frame, so the bench's unlabelled target (its labels dropped before CC-SSL sees it) can be
scored afterwards: each round's ``round_<r>/pseudo_labels.json``
(:func:`animalpose.adapt.diagnostics.pseudo_label_coco`: the pseudo-labels in original pixels, ``v = 2`` where the
round kept the joint, ``record`` the index into the target)
against the same target records with their labels. What the network is taught, not what it predicts: the kept
joints' error is the noise in its targets, the share kept is how much of the video it learns from. Read from the run
folders after the fact, so a finished (cached) run is scored without training again.

A diagnostic, never a criterion: the clip's test frames are among its unlabelled frames (every 15th frame of the
range whose every 5th is the target), so a setting chosen by this figure would be chosen on test labels. Settings are
chosen on the lab val (``--sleap-val``), which no target frame touches.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from animalpose.data.records import PoseRecord
from animalpose.errors import DataError


def round_truth_errors(run_dir: Path, truth: list[PoseRecord]) -> list[dict]:
    """Per round of a CC-SSL run folder, its pseudo-labels against ``truth`` (the target records, in the target's
    order, with their labels); [] when the run wrote no pseudo-labels.

    Each row: ``round``; ``joints`` (labelled target joints), ``kept`` (of them, the kept ones) and ``kept_share``;
    ``kept_mean_px`` / ``kept_median_px`` and ``all_mean_px`` / ``all_median_px`` (original pixels, labelled joints
    only; NaN where none); ``kept_within_5px`` (share of the kept joints within 5 px of the truth).

    Raises DataError (naming the file and field) when an annotation's record is not the truth record of the same
    frame: the run was made from another target.
    """
    rows = []
    r = 0
    while (path := Path(run_dir) / f"round_{r}" / "pseudo_labels.json").is_file():
        doc = json.loads(path.read_text())
        frames = {img["id"]: img.get("frame_index") for img in doc["images"]}
        kept_err, all_err = [], []
        labelled = kept = 0
        for n, ann in enumerate(doc["annotations"]):
            i = int(ann["record"])
            if not 0 <= i < len(truth) or frames.get(ann["image_id"]) != truth[i].frame_index:
                raise DataError(str(path), f"annotations[{n}].record",
                                f"record {i} is not the truth's frame {frames.get(ann['image_id'])} (another target?)")
            kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
            gt = truth[i].keypoints
            has = gt[:, 2] > 0
            d = np.linalg.norm(kp[:, :2] - gt[:, :2], axis=1)
            take = has & (kp[:, 2] > 0)
            labelled += int(has.sum())
            kept += int(take.sum())
            all_err.extend(d[has])
            kept_err.extend(d[take])
        kept_err, all_err = np.asarray(kept_err), np.asarray(all_err)

        def stat(fn, x):
            return float(fn(x)) if len(x) else float("nan")

        rows.append({"round": r, "joints": labelled, "kept": kept, "kept_share": kept / labelled if labelled else 0.0,
                     "kept_mean_px": stat(np.mean, kept_err), "kept_median_px": stat(np.median, kept_err),
                     "kept_within_5px": stat(np.mean, kept_err <= 5.0),
                     "all_mean_px": stat(np.mean, all_err), "all_median_px": stat(np.median, all_err)})
        r += 1
    return rows
