"""kill -9 of `animalpose train` at random moments: the resume ends bit-identical, with its best
checkpoint and no temporary file left (issue 26, the kill checks)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from animalpose.engine.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def _cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "animalpose", "train", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _config(tmp_path: Path, dots) -> Path:
    """The engine tests' tiny model (conftest.tiny_config): 24 images, batch 4, 6 steps per epoch, 3 epochs;
    last.ckpt every 2 steps and at each epoch end."""
    raw = {"data": {"train": [str(dots["train"])], "val": [str(dots["val"])], "schema": "coco",
                    "input_size": [64, 64], "heatmap_size": [16, 16], "workers": 0},
           "model": {"name": "hourglass1", "channels": 32}, "codec": {"sigma": 1.0},
           "augment": {"preset": "hourglass"},
           "train": {"epochs": 3, "batch_size": 4, "device": "cpu", "optimizer": "adam", "lr": 1e-3,
                     "checkpoint_every_steps": 2, "deterministic": True},
           "tracking": {"enabled": False, "experiment": "kill"}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


@pytest.fixture(scope="module")
def reference(dots, tmp_path_factory):
    """An uninterrupted run through the same command line."""
    tmp = tmp_path_factory.mktemp("kill-reference")
    cfg = _config(tmp, dots)
    proc = _cli(["--config", str(cfg), "--out", str(tmp / "out"), "--no-progress"])
    started = _wait_started(proc, tmp / "out")
    assert proc.wait(timeout=900) == 0, proc.stderr.read()[-2000:]
    return cfg, tmp / "out", time.monotonic() - started  # how long the work takes once started


def _wait_started(proc: subprocess.Popen, out: Path) -> float:
    """When the run's output folder appears (data read and checked: the training begins)."""
    end = time.monotonic() + 600
    while not (out.is_dir() and any(out.iterdir())) and proc.poll() is None:
        assert time.monotonic() < end
        time.sleep(0.02)
    return time.monotonic()


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_9_at_a_random_moment_then_resume_is_bit_identical(seed, reference, tmp_path):
    cfg, ref, duration = reference
    out = tmp_path / "out"
    proc = _cli(["--config", str(cfg), "--out", str(out), "--no-progress"])
    _wait_started(proc, out)
    # a random moment of the run: inside a step, a validation, a last.ckpt or best.ckpt write, the figures
    time.sleep(random.Random(seed).uniform(0.02, 0.9) * duration)
    assert proc.poll() is None, "the run ended before the kill (the test would check nothing)"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    args = ["--config", str(cfg), "--out", str(out), "--no-progress"]
    if (out / "last.ckpt").is_file():
        args.append("--resume")
    again = _cli(args)
    assert again.wait(timeout=900) == 0, again.stderr.read()[-2000:]
    a, b = _weights(ref / "last.ckpt"), _weights(out / "last.ckpt")
    assert all(torch.equal(a[k], b[k]) for k in a), f"seed {seed}: weights differ after the kill"
    assert load_checkpoint(out / "last.ckpt")["step"] == 18
    assert (out / "best.ckpt").is_file()
    assert all(torch.equal(x, y) for x, y in zip(_weights(ref / "best.ckpt").values(),
                                                 _weights(out / "best.ckpt").values(), strict=True))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
