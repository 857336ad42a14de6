"""One-off check behind BENCHMARKS.md's "Lightning Pose's terms from the first step" (issue 23): what a term arm
trained from scratch (``bench ccssl-real --terms-from-scratch``) predicts, beside the supervised model of its seed,
on the unlabelled video frames and on val (never test). One JSON line per model: the prediction's step between
consecutive kept frames (px), each joint's spread across the frames relative to the frame's size, the skeleton's
spread (mean distance of the joints to their centroid, px; the val labels' beside it), the mean heatmap maximum and
the val pixel error.

    OMP_NUM_THREADS=1 PYTHONPATH=. python docs/results/ccssl_real/mirror_mouse_terms_scratch/collapse_check.py \
        OUT/mirror-mouse SEED ARM_FOLDER...
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from animalpose.data.readers import read_dataset
from flows.benchmarks.ccssl_real import predict_original


def main(root: Path, seed: int, arms: list[str]) -> None:
    torch.set_num_threads(1)
    frames = sorted(read_dataset(root / "data" / "video_frames.json", "coco").records, key=lambda r: r.frame_index)
    val = read_dataset(root / "data" / "val.json", "coco").records
    gt = np.stack([r.keypoints for r in val])
    labelled = gt[..., 2] > 0
    size = max(frames[0].bbox[2:])
    label_spread = np.mean([np.linalg.norm(k[m, :2] - k[m, :2].mean(0), axis=-1).mean()
                            for k, m in zip(gt, labelled, strict=True)])
    models = {"supervised": root / f"seed_{seed}" / "supervised" / "last.ckpt"}
    models.update({a: root / f"seed_{seed}" / a / "run" / "round_0.ckpt" for a in arms})
    for name, ckpt in models.items():
        p = predict_original(ckpt, frames)
        step = np.linalg.norm(np.diff(p[:, :, :2], axis=0), axis=-1)
        spread = np.linalg.norm(p[:, :, :2] - p[:, :, :2].mean(1, keepdims=True), axis=-1).mean()
        pv = predict_original(ckpt, val)
        err = np.linalg.norm(pv[..., :2] - gt[..., :2], axis=-1)[labelled]
        print(json.dumps({"seed": seed, "model": name, "video_step_px_median": round(float(np.median(step)), 2),
                          "joint_spread_over_frames": round(float(p[:, :, :2].std(0).mean() / size), 4),
                          "skeleton_spread_px": round(float(spread), 2),
                          "val_label_skeleton_spread_px": round(float(label_spread), 2),
                          "heatmap_max_mean": round(float(p[..., 2].mean()), 3),
                          "val_px": round(float(err.mean()), 2)}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
