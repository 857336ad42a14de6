"""kill -9 of `animalpose train` at 10 random moments and inside the best.ckpt and last.ckpt writes: the resume
ends bit-identical, with its best checkpoint and no temporary file left (issue 26, the kill checks)."""

from __future__ import annotations

import os
import random
import shutil
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


def _cli(args: list[str], kill_at: str | None = None) -> subprocess.Popen:
    """`animalpose train ARGS`; with ``kill_at``, under tests/kill_at.py, which SIGKILLs it at that moment."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "animalpose", "train", *args]
    if kill_at is not None:
        cmd = [sys.executable, str(ROOT / "tests" / "kill_at.py"), "train", *args]
        env["KILL_AT"] = kill_at
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


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


def _check_resume(cfg: Path, ref: Path, out: Path, moment: str) -> None:
    """Run the command again (``--resume`` when last.ckpt exists): bit-identical to the uninterrupted run, with its
    best.ckpt, no temporary file left."""
    args = ["--config", str(cfg), "--out", str(out), "--no-progress"]
    if (out / "last.ckpt").is_file():
        args.append("--resume")
    again = _cli(args)
    assert again.wait(timeout=900) == 0, again.stderr.read()[-2000:]
    a, b = _weights(ref / "last.ckpt"), _weights(out / "last.ckpt")
    assert all(torch.equal(a[k], b[k]) for k in a), f"{moment}: weights differ after the kill"
    assert load_checkpoint(out / "last.ckpt")["step"] == 18
    assert (out / "best.ckpt").is_file()
    assert all(torch.equal(x, y) for x, y in zip(_weights(ref / "best.ckpt").values(),
                                                 _weights(out / "best.ckpt").values(), strict=True))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("seed", range(10))
def test_kill_9_at_a_random_moment_then_resume_is_bit_identical(seed, reference, tmp_path):
    cfg, ref, duration = reference
    out = tmp_path / "out"
    # a random moment of the run: inside a step, a validation, a last.ckpt or best.ckpt write, the figures
    delay = random.Random(seed).uniform(0.02, 0.9) * duration
    for _ in range(4):  # the machine's load changes the run's pace: a run that ended first is run again, sooner
        shutil.rmtree(out, ignore_errors=True)
        proc = _cli(["--config", str(cfg), "--out", str(out), "--no-progress"])
        _wait_started(proc, out)
        time.sleep(delay)
        if proc.poll() is None:
            break
        delay /= 2
    else:
        pytest.fail("the run always ended before the kill (the test would check nothing)")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _check_resume(cfg, ref, out, f"seed {seed}")


# writes: last.ckpt at steps 2, 4, 6 and after epoch 1's validation (the 4th), ...; best.ckpt after each
# epoch that improves (the 1st always does)
WRITES = ["write:best.ckpt:1", "write:last.ckpt:2", "write:last.ckpt:4"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("kill_at", WRITES)
def test_kill_9_inside_a_checkpoint_write_then_resume_is_bit_identical(kill_at, reference, tmp_path):
    """Hit exactly, not by timing: half of the file's bytes are in its temporary file when the process dies."""
    cfg, ref, _ = reference
    out = tmp_path / "out"
    proc = _cli(["--config", str(cfg), "--out", str(out), "--no-progress"], kill_at)
    assert proc.wait(timeout=900) == -signal.SIGKILL, proc.stderr.read()[-2000:]
    name = kill_at.split(":")[1]
    assert [p.name for p in out.glob(f".{name.split('.')[0]}.*.ckpt")], "no partial temporary file: no kill inside"
    _check_resume(cfg, ref, out, kill_at)
