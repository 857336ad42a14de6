"""One-off check behind BENCHMARKS.md's "what the temporal term does" (issue 23): round-3 checkpoints of a screen's
arms on the unlabelled frames and on val (never test). Per model, one JSON line: the prediction's step between
consecutive kept frames of one animal (px; and the hinge mean max(0, d - 20)), each joint's spread across frames
relative to its crop box, the skeleton's spread (mean distance of the joints to their centroid, px), the mean
heatmap maximum, and the val pixel error.

    OMP_NUM_THREADS=1 PYTHONPATH=. python docs/results/ccssl_real/screens/collapse_check.py OUT/<project> ARM_FOLDER...
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from animalpose.data.readers import read_dataset
from flows.benchmarks.ccssl_real import predict_original


def main(root: Path, arms: list[str]) -> None:
    torch.set_num_threads(1)
    frames = read_dataset(root / "data" / "video_frames.json", "coco").records
    val = read_dataset(root / "data" / "val.json", "coco").records
    gt = np.stack([r.keypoints for r in val])
    track = np.array([str(r.instance_id) for r in frames])
    if len(set(track)) == len(track):  # one animal per frame (mirror-mouse): one sequence
        track[:] = "0"
    order = np.array([r.frame_index for r in frames])
    boxes = np.array([r.bbox for r in frames])
    centre = boxes[:, :2] + boxes[:, 2:] / 2
    models = {"supervised": root / "seed_0" / "supervised" / "last.ckpt"}
    models.update({a: root / "seed_0" / a / "run" / "round_2.ckpt" for a in arms})
    for name, ckpt in models.items():
        p = predict_original(ckpt, frames)
        steps = []
        for t in np.unique(track):
            idx = np.where(track == t)[0]
            idx = idx[np.argsort(order[idx])]
            steps.append(np.linalg.norm(np.diff(p[idx, :, :2], axis=0), axis=-1))
        d = np.concatenate(steps)
        rel = (p[:, :, :2] - centre[:, None]) / boxes[:, 2:].max(1)[:, None, None]
        spread = np.linalg.norm(p[:, :, :2] - p[:, :, :2].mean(1, keepdims=True), axis=-1).mean()
        pv = predict_original(ckpt, val)
        err = np.linalg.norm(pv[..., :2] - gt[..., :2], axis=-1)[gt[..., 2] > 0]
        print(json.dumps({"model": name, "video_step_px_mean": round(float(d.mean()), 2),
                          "video_step_px_median": round(float(np.median(d)), 2),
                          "hinge_eps20_mean": round(float(np.maximum(d - 20, 0).mean()), 3),
                          "rel_pos_std_over_frames": round(float(rel.std(0).mean()), 4),
                          "skeleton_spread_px": round(float(spread), 2),
                          "heatmap_max_mean": round(float(p[..., 2].mean()), 3),
                          "val_px": round(float(err.mean()), 2)}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
