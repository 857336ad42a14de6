"""The body-part pairs each supervised model swaps on the calibration half of the 20-frame val (img41, 43, ..., 59):
`animalpose.adapt.view_assignment.confusion_rates` of the models' plain predictions, every pair above 0 per view.

Usage (from the repository root): python docs/results/ccssl_real/init_rig/confusion_rates_val.py OUT, with OUT a
`bench ccssl-real --mirror-val 41,60` folder holding those models (seed_S/supervised/last.ckpt).
"""

import sys
from pathlib import Path

import numpy as np

from animalpose.adapt.view_assignment import confusion_rates
from flows.benchmarks.ccssl_real import BenchSettings, predict_original, prepare
from flows.benchmarks.inference import Loaded

out = Path(sys.argv[1])
prep = prepare(BenchSettings(project="mirror-mouse", train_range=("img01", "img40"), val_range=("img41", "img60")), out)
records = prep.val_records[0::2]  # the calibration half
truth = np.stack([r.keypoints for r in records])
for seed in (0, 1, 2):
    ckpt = out / "mirror-mouse" / f"seed_{seed}" / "supervised" / "last.ckpt"
    loaded = Loaded.from_checkpoint(ckpt)
    names = loaded.schema.joints
    views = np.array([[names.index(j) for j in row] for row in loaded.cfg.multiview.views])
    rates = confusion_rates(predict_original(ckpt, records)[..., :2], truth, views)
    print(f"seed {seed} ({len(records)} frames: {', '.join(Path(r.image).stem for r in records)})")
    for v in range(views.shape[1]):
        pairs = [f"{names[views[p, v]]}-{names[views[q, v]]} {rates[v, p, q]:.2f}"
                 for p in range(len(views)) for q in range(p + 1, len(views)) if rates[v, p, q] > 0]
        print(f"  view {v}: {', '.join(pairs) or 'none'}")
