"""kill -9 of `animalpose adapt ccssl` at chosen moments: rerunning the same command ends bit-identical to an
uninterrupted run, with its best checkpoints and no temporary file left (issue 26, the kill checks).

The run is small (16 source images, 12 target video frames, 2 rounds of 1 epoch, then the supervised
control), and the moments are hit exactly, not by timing: the command runs under tests/kill_at.py, which
sends it SIGKILL at the chosen call of a function or in the middle of a chosen file write.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from animalpose.engine.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]

# (moment, KILL_AT): 4 optimiser steps per epoch (16 images, batch 4): steps 1-4 source-only training,
# 5-8 round 1, 9-12 round 2, 13-20 the control; 2 pseudo-labelling batches per round (12 frames, 6 a batch);
# round 2 does not beat round 1 on source-val, so train/best.ckpt is written once
MOMENTS = [
    ("source-only training, step 3", "call:torch.optim:Adam.step:3"),
    ("pseudo-labelling of round 1, second batch", "call:animalpose.adapt.pseudolabel:consistency_predict:2"),
    ("round 1 training, step 2", "call:torch.optim:Adam.step:6"),
    ("inside round 1's best.ckpt write", "write:train/best.ckpt:1"),
    ("inside the round_0.ckpt write", "write:round_0.ckpt:1"),
    ("between rounds: round 1 recorded, round 2 not begun", "call:animalpose.adapt.ccssl:CCSSLRun.round:2"),
    ("pseudo-labelling of round 2, first batch", "call:animalpose.adapt.pseudolabel:consistency_predict:3"),
    ("inside the state.json write after round 2", "write:state.json:3"),
    ("the control's training, step 5", "call:torch.optim:Adam.step:17"),
    ("inside the control's best.ckpt write", "write:control/best.ckpt:1"),
    ("keeping the better: the adapted arm scored, the control not", "call:animalpose.adapt.control:_score:2"),
]


def _config(dots: dict[str, Path], root: Path) -> Path:
    """The CC-SSL plumbing tests' setting (tests/adapt/test_ccssl.py) through the command line."""
    raw = {
        "data": {"train": [str(dots["train"])], "val": [str(dots["val"])], "target": [str(dots["target"])],
                 "schema": "coco", "input_size": [64, 64], "heatmap_size": [16, 16], "workers": 0},
        "model": {"name": "hourglass1", "channels": 32},
        "codec": {"sigma": 1.0},
        "augment": {"preset": "hourglass"},
        "train": {"epochs": 2, "batch_size": 4, "device": "cpu", "optimizer": "adam", "lr": 1e-3,
                  "deterministic": True, "flip_test": False, "checkpoint_every_steps": 2},
        "tracking": {"enabled": False},
        "ccssl": {"source_epochs": 1, "regenerate_every": 1, "num_geometric": 2, "num_photometric": 1,
                  "pseudo_batch_size": 6, "gallery": 2, "target_val": [str(dots["target_val"])]},
    }
    path = root / "ccssl.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _run(cfg: Path, out: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    args = ["--config", str(cfg), "--out", str(out), "--no-progress", "--threads", "1"]
    if kill_at is None:
        cmd = [sys.executable, "-m", "animalpose", "adapt", "ccssl", *args]
    else:
        cmd = [sys.executable, str(ROOT / "tests" / "kill_at.py"), "adapt", "ccssl", *args]
        env["KILL_AT"] = kill_at
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


# what an uninterrupted run delivers: the last round, the adapted arm's best, the control's, the kept one
CHECKPOINTS = ["round_1.ckpt", "train/best.ckpt", "source/best.ckpt", "control/best.ckpt", "control/last.ckpt",
               "final.ckpt"]


@pytest.fixture(scope="module")
def reference(dots, tmp_path_factory):
    root = tmp_path_factory.mktemp("ccssl-kill")
    cfg = _config(dots, root)
    done = _run(cfg, root / "reference")
    assert done.returncode == 0, done.stderr[-3000:]
    return cfg, root / "reference"


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize(("moment", "kill_at"), MOMENTS, ids=[m for m, _ in MOMENTS])
def test_kill_9_then_rerun_is_bit_identical(moment, kill_at, reference, tmp_path):
    cfg, ref = reference
    out = tmp_path / "out"
    killed = _run(cfg, out, kill_at)
    assert killed.returncode == -signal.SIGKILL, f"{moment}: the kill point was never reached\n{killed.stderr[-3000:]}"
    assert not (out / "final.ckpt").is_file()
    again = _run(cfg, out)
    assert again.returncode == 0, again.stderr[-3000:]
    for name in CHECKPOINTS:
        assert (out / name).is_file(), f"{moment}: {name} missing after the rerun"
        assert _same_weights(ref / name, out / name), f"{moment}: {name} differs from the uninterrupted run"
    left = [str(p.relative_to(out)) for p in out.rglob(".*")]
    assert not left, f"{moment}: temporary files left: {left}"
