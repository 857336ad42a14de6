"""A real full disk (issue 26): the command runs with its output on a small tmpfs, mounted in a private mount
namespace (``unshare -m``) that disappears with the command. Skipped, saying why, where the machine does not
allow mounting."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MOUNT = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-Urm"]
# mount a tmpfs of $1 at $2, run the rest, then list what is left on the tmpfs (it goes with the namespace)
SCRIPT = 'mount -t tmpfs -o size="$1" tmpfs "$2" || exit 97; shift 2; "$@"; rc=$?; echo "left:"; ls -A "$OUT"; exit $rc'


@pytest.fixture(scope="module")
def can_mount(tmp_path_factory) -> None:
    where = tmp_path_factory.mktemp("probe")
    if shutil.which("unshare") is None:
        pytest.skip("no unshare command: cannot mount a small tmpfs here")
    probe = subprocess.run([*MOUNT, "sh", "-c", SCRIPT, "sh", "64k", str(where), "true"], capture_output=True,
                           text=True, env={**os.environ, "OUT": str(where)})
    if probe.returncode != 0:
        pytest.skip(f"this machine does not let tests mount a tmpfs: {probe.stderr.strip()[-300:]}")


def _on_tmpfs(size: str, mount: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    mount.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OUT": str(out)}
    return subprocess.run([*MOUNT, "sh", "-c", SCRIPT, "sh", size, str(mount), sys.executable, "-m", "animalpose",
                           *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_train_on_a_disk_that_fills_up_is_one_clear_line_and_leaves_no_temporary_file(can_mount, dots, tmp_path):
    """2 MiB: the up-front check passes (1 MiB is the floor), the first checkpoint (several MB with Adam's
    state) fills the disk half-way through its write."""
    raw = {"data": {"train": [str(dots["train"])], "val": [str(dots["val"])], "schema": "coco",
                    "input_size": [64, 64], "heatmap_size": [16, 16], "workers": 0},
           "model": {"name": "hourglass1", "channels": 32}, "codec": {"sigma": 1.0},
           "train": {"epochs": 1, "batch_size": 4, "device": "cpu", "optimizer": "adam", "lr": 1e-3,
                     "checkpoint_every_steps": 1},
           "tracking": {"enabled": False}}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    disk = tmp_path / "disk"
    out = disk / "run"
    res = _on_tmpfs("2m", disk, out, "train", "--config", str(cfg), "--out", str(out), "--no-progress")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: cannot write {out / 'last.ckpt'} (checkpoint): ")
    assert "no space left on device" in line or "disk full" in line
    left = res.stdout.split("left:", 1)[1].split()
    assert not [name for name in left if name.startswith(".")], left  # no partial temporary checkpoint


def test_data_split_onto_a_full_disk_is_refused_before_reading(can_mount, dots, tmp_path):
    disk = tmp_path / "disk"
    res = _on_tmpfs("256k", disk, disk, "data", "split", str(dots["train"]), "--out", str(disk / "splits"),
                    "--by", "frame")
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith(f"error: cannot write {disk / 'splits'} (--out): no space left on device (disk full: ")
    assert res.stdout.split("left:", 1)[1].split() == []  # not even the folder was made
