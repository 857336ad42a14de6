"""An ensemble of three seeds and Lightning Pose's ensemble Kalman smoother on the real SLEAP clip.

The three models of one arm of `animalpose bench ccssl-real --project sleap --seeds 0,1,2 --out OUT` (OUT the first
argument; the arm the second, default `supervised`: the 180-epoch supervised models, each seed's last.ckpt; or
`control` / `ccssl`: the checkpoint the bench scores, its last round's) predict every frame
of both flies' tracks in frames 750-1499 (the bench's test range; crops around each fly's labelled keypoints, as
the bench crops its test frames; no flip test, as the bench scores). Then, per fly track:

- each model alone: raw, Savitzky-Golay and the constant-velocity Kalman smoother (`predict --smooth`'s defaults);
- the ensemble: the members' median (raw), the median through the same Kalman smoother, and EKS (the median
  weighed by the members' spread, the smoothing parameter chosen per keypoint by likelihood; no label is read).

Scored by mean pixel error (original pixels) on the bench's test frames (every 15th of 750-1499) and on all 750.
No setting is chosen here: every smoother runs at its default. Writes ensemble_eks[_ARM].json next to this file
(no suffix for the supervised arm).

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/ensemble_sleap/ensemble_eks.py OUT [ARM]
"""

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from animalpose.data.readers import read_dataset
from animalpose.engine.ensemble import eks_smooth, ensemble_pose
from animalpose.engine.smoothing import SmoothingConfig, smooth_track
from flows.benchmarks.ccssl_real import keypoint_metrics, predict_original
from flows.benchmarks.ccssl_real_data import SLEAP_SPLIT, decode_frames
from flows.benchmarks.multiview_real import arm_checkpoint

SEEDS = (0, 1, 2)
torch.set_num_threads(1)
root = Path(sys.argv[1]) / "sleap"
arm = sys.argv[2] if len(sys.argv) > 2 else "supervised"
slp = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "real" / "sleap-clip" / "clip.slp"
ds = read_dataset(slp.resolve(), "slp")
start, stop = SLEAP_SPLIT.video
frames = list(range(start, stop))
test_frames = set(range(start, stop, SLEAP_SPLIT.test_step))
video = Path({r.image for r in ds.records}.pop())
pngs = decode_frames(video, frames, root / "data" / "frames")
records = []
for r in ds.records:
    box = r.keypoint_box() if start <= r.frame_index < stop else None
    if box is not None:
        records.append(replace(r, image=str(pngs[r.frame_index]), bbox=box))
truth = np.stack([r.keypoints for r in records])
tracks = sorted({r.instance_id for r in records})
t0 = time.perf_counter()
members = np.stack([predict_original(arm_checkpoint(root / f"seed_{s}" / arm), records) for s in SEEDS])
predict_s = time.perf_counter() - t0


def per_track(poses: np.ndarray, smooth) -> np.ndarray:
    """Each fly's (N, K, 3) predictions laid out on its frames, smoothed by ``smooth(track, variance_track)``,
    and put back in ``records``' order."""
    out = poses.copy()
    for tr in tracks:
        idx = [i for i, r in enumerate(records) if r.instance_id == tr]
        order = sorted(idx, key=lambda i: records[i].frame_index)
        at = np.array([records[i].frame_index - start for i in order])
        track = np.full((len(frames), *poses.shape[1:]), np.nan)
        track[at] = poses[order]
        out[order] = smooth(track)[at]
    return out


def scores(pred: np.ndarray) -> dict:
    on_test = np.array([r.frame_index in test_frames for r in records])
    return {"test": keypoint_metrics(pred[on_test], truth[on_test]), "all": keypoint_metrics(pred, truth)}


savgol, kalman = SmoothingConfig("savgol"), SmoothingConfig("kalman")
rows: dict[str, list[dict]] = {"single": [], "single + savgol": [], "single + kalman": []}
for m in members:
    rows["single"].append(scores(m))
    rows["single + savgol"].append(scores(per_track(m, lambda t: smooth_track(t, savgol))))
    rows["single + kalman"].append(scores(per_track(m, lambda t: smooth_track(t, kalman))))
median, var = ensemble_pose(members)
both = np.concatenate([median, var], -1)  # smoothed together so that a track's variance stays beside its poses
chosen = []


def eks(track: np.ndarray) -> np.ndarray:
    smoothed, s = eks_smooth(track[..., :3], track[..., 3:])
    chosen.append(s.tolist())
    return np.concatenate([smoothed, track[..., 3:]], -1)


ensemble = {"ensemble median": scores(median),
            "ensemble median + kalman": scores(per_track(median, lambda t: smooth_track(t, kalman))),
            "ensemble + EKS": scores(per_track(both, eks)[..., :3])}


def mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"  # sample sd, as the bench's tables


summary = {}
for name, per_seed in rows.items():
    summary[name] = {part: {"per_seed": [round(s[part]["pixel_error"], 3) for s in per_seed],
                            "mean": mean_sd([s[part]["pixel_error"] for s in per_seed]),
                            "median_px": mean_sd([s[part]["pixel_error_median"] for s in per_seed]),
                            "pck@0.05": mean_sd([s[part]["pck@0.05"] for s in per_seed])} for part in ("test", "all")}
for name, s in ensemble.items():
    summary[name] = {part: {"mean": round(s[part]["pixel_error"], 3),
                            "median_px": round(s[part]["pixel_error_median"], 3),
                            "pck@0.05": round(s[part]["pck@0.05"], 3)} for part in ("test", "all")}
out = Path(__file__).with_name("ensemble_eks.json" if arm == "supervised" else f"ensemble_eks_{arm}.json")
out.write_text(json.dumps({"models": str(root), "arm": arm, "seeds": SEEDS, "frames": [start, stop],
                           "test_step": SLEAP_SPLIT.test_step, "instances": len(records),
                           "test_instances": int(sum(r.frame_index in test_frames for r in records)),
                           "predict_seconds_3_models": round(predict_s, 1), "eks_smoothing_chosen": chosen,
                           "summary": summary}, indent=1))
print(json.dumps(summary, indent=1))
