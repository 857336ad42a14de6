"""Keep-the-better's val margins with their paired standard error (adapt/control.py paired_margin_se), beside the
same margins on test, for the usual mirror-mouse split's 180-epoch supervised models, their control and `init`'s rig
template's CC-SSL (raw output, no flip test). Paths are those of the session that ran them (/work/bench_out).

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/ccssl_real/init_rig/keep_better_se.py > keep_better_se.txt
"""

from pathlib import Path

import torch

from animalpose.adapt.control import paired_margin_se
from animalpose.engine.evaluate import evaluate
from flows.benchmarks.multiview_real import arm_checkpoint

BENCH = Path("/work/bench_out")
DATA = BENCH / "s40_mm" / "mirror-mouse" / "data"
torch.set_num_threads(1)
for seed in (0, 1, 2):
    ck = {"supervised": BENCH / "s41_sup" / f"seed_{seed}" / "last.ckpt",
          "control": arm_checkpoint(BENCH / "s40_mm" / "mirror-mouse" / f"seed_{seed}" / "control"),
          "adapted": arm_checkpoint(BENCH / "s48_mm_auto" / "mirror-mouse" / f"seed_{seed}" / "ccssl")}
    for split in ("val", "test"):
        r = {k: evaluate(c, DATA / f"{split}.json", flip=False, device="cpu", progress=False, allow_outside_root=True,
                         per_instance=True, multiview=False) for k, c in ck.items()}
        sc = {k: round(v["metrics"]["pixel_error_mean"], 2) for k, v in r.items()}
        for ref in ("control", "supervised"):
            se = paired_margin_se([r[ref]["per_instance"]], [r["adapted"]["per_instance"]])
            print(seed, split, f"{ref} - adapted = {sc[ref] - sc['adapted']:+.2f} ± {se:.2f}", sc, flush=True)
