"""multiview.confusion chosen on val: the mirror-mouse models of a `bench ccssl-real --mirror-val 41,60 --calibrate-on
half --screen supervised,control,ccssl` run (trained on img01-40; OUT given as the first argument), each model's
look-alike groups found on one half of the 20 val frames (img41-60, by name: odd / even) at each rate, and its
predictions mended with them scored on the other half, both ways: 3 seeds x 3 arms x 2 halves. Beside: raw, and
mended with the experiment config's named paws. Writes both_halves_val.json next to this file; prints the means.

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/multiview_auto/both_halves_val.py OUT
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from animalpose.config import ExperimentConfig, load_config
from animalpose.engine.multiview import found_correction, look_alike
from animalpose.keypoints import load_schema
from flows.benchmarks.ccssl_real import (
    PROJECTS,
    BenchSettings,
    keypoint_metrics,
    mirror_val_ranges,
    predict_original,
    prepare,
)
from flows.benchmarks.multiview_real import arm_checkpoint, fit_project_correction

RATES = (0.05, 0.1, 0.15, 0.2, 0.3)
torch.set_num_threads(1)
root = Path(sys.argv[1]) / "mirror-mouse"
cfg = load_config(PROJECTS["mirror-mouse"].experiment, ExperimentConfig)
schema, views = load_schema(cfg.data.schema_name), cfg.multiview.views
prep = prepare(BenchSettings(project="mirror-mouse", **mirror_val_ranges("41,60", "mirror-mouse")), root)
named = fit_project_correction(cfg, prep.train, schema)
names = sorted({Path(r.image).name for r in prep.val_records})
odd = set(names[0::2])
halves = {"odd": [r for r in prep.val_records if Path(r.image).name in odd],
          "even": [r for r in prep.val_records if Path(r.image).name not in odd]}
rows = {}
for seed in (0, 1, 2):
    for arm in ("supervised", "control", "ccssl"):
        ckpt = arm_checkpoint(root / f"seed_{seed}" / arm, screen=True)
        pred = {h: predict_original(ckpt, recs) for h, recs in halves.items()}
        truth = {h: np.stack([r.keypoints for r in recs]) for h, recs in halves.items()}
        for find, score in (("odd", "even"), ("even", "odd")):
            def err(p, t=truth[score]):
                return keypoint_metrics(p, t)["pixel_error"]
            row = {"raw": err(pred[score]), "named": err(named.apply(pred[score])), "groups": {}}
            for rate in RATES:
                found = look_alike(pred[find], truth[find], views, schema, rate)
                corr = found_correction(named.prior, found, views)
                row[str(rate)] = err(pred[score] if corr is None else corr.apply(pred[score]))
                row["groups"][str(rate)] = [g["parts"] for g in found["groups"]]
            rows[f"seed {seed} / {arm} / found on {find}, scored on {score}"] = row
means = {k: round(float(np.mean([r[k] for r in rows.values()])), 3) for k in ("raw", "named", *map(str, RATES))}
out = Path(__file__).with_name("both_halves_val.json")
out.write_text(json.dumps({"models": str(root), "rates": RATES, "mean_pixel_error": means, "rows": rows}, indent=1))
print(json.dumps(means))
