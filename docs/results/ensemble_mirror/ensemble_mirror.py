"""An ensemble of three seeds on the real mirror-mouse test frames (stills: no smoothing), raw and mended by the rig.

The three models of one arm of `animalpose bench ccssl-real --project mirror-mouse --seeds 0,1,2 --out OUT` (OUT the
first argument; the arm the second, default `supervised`: the 180-epoch supervised models) predict the usual split's
val (img51-60) and test frames (img61-90), crops and no flip test as the bench scores. Per seed: raw, and mended with
the experiment config's named paws (`bench multiview-real`'s correction, fitted on the train frames). The ensemble:
the members' median (:func:`animalpose.engine.ensemble.ensemble_pose`, what `predict` writes for several
checkpoints), raw and mended the same way. Mean pixel error in original pixels. Nothing is chosen here. Writes
ensemble_mirror[_ARM].json next to this file.

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/ensemble_mirror/ensemble_mirror.py OUT [ARM]
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from animalpose.config import ExperimentConfig, load_config
from animalpose.engine.ensemble import ensemble_pose
from animalpose.keypoints import load_schema
from flows.benchmarks.ccssl_real import PROJECTS, BenchSettings, keypoint_metrics, predict_original, prepare
from flows.benchmarks.multiview_real import arm_checkpoint, fit_project_correction

SEEDS = (0, 1, 2)
torch.set_num_threads(1)
root = Path(sys.argv[1]) / "mirror-mouse"
arm = sys.argv[2] if len(sys.argv) > 2 else "supervised"
cfg = load_config(PROJECTS["mirror-mouse"].experiment, ExperimentConfig)
schema = load_schema(cfg.data.schema_name)
prep = prepare(BenchSettings(project="mirror-mouse"), root)
named = fit_project_correction(cfg, prep.train, schema)
summary = {}
for split, records in (("val", prep.val_records), ("test", prep.test_records)):
    gt = np.stack([r.keypoints for r in records])
    members = np.stack([predict_original(arm_checkpoint(root / f"seed_{s}" / arm), records) for s in SEEDS])
    median = ensemble_pose(members)[0]
    single = {"raw": [keypoint_metrics(m, gt)["pixel_error"] for m in members],
              "mended": [keypoint_metrics(named.apply(m), gt)["pixel_error"] for m in members]}
    summary[split] = {
        **{f"single {k}": {"per_seed": [round(v, 3) for v in vs], "mean": round(float(np.mean(vs)), 3),
                           "sd": round(float(np.std(vs, ddof=1)), 3)} for k, vs in single.items()},
        "ensemble raw": round(keypoint_metrics(median, gt)["pixel_error"], 3),
        "ensemble mended": round(keypoint_metrics(named.apply(median), gt)["pixel_error"], 3),
        "ensemble of the mended members": round(keypoint_metrics(
            ensemble_pose(np.stack([named.apply(m) for m in members]))[0], gt)["pixel_error"], 3),
        "frames": len(records)}
out = Path(__file__).with_name("ensemble_mirror.json" if arm == "supervised" else f"ensemble_mirror_{arm}.json")
out.write_text(json.dumps({"models": str(root), "arm": arm, "seeds": SEEDS, "split": prep.split,
                           "summary": summary}, indent=1))
print(json.dumps(summary, indent=1))
