"""Fixtures for engine tests: a tiny dot dataset (COCO JSON) and a tiny model configuration.

The dot dataset draws each of the 17 COCO joints as a small disc of its own colour on a noisy
background; it is for plumbing tests (resume, DDP, tracking, CLI), not for accuracy.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from animalpose.config import parse_config
from animalpose.data.coco_writer import write_coco
from animalpose.data.records import PoseRecord

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"
COLOURS = np.array([[(37 * k) % 256, (91 * k + 60) % 256, (151 * k + 120) % 256] for k in range(17)], np.uint8)


def write_dot_dataset(out: Path, n: int, seed: int, size: int = 64, name: str = "dots") -> Path:
    """``n`` images with 17 coloured dots each; returns the COCO JSON path."""
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        img = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
        kp = np.zeros((17, 3), np.float32)
        kp[:, :2] = rng.uniform(6, size - 6, size=(17, 2))
        kp[:, 2] = 2
        for k in range(17):
            cv2.circle(img, (int(kp[k, 0]), int(kp[k, 1])), 2, tuple(int(c) for c in COLOURS[k]), -1)
        path = out / "images" / f"{name}_{i:04d}.png"
        cv2.imwrite(str(path), img[:, :, ::-1])
        records.append(PoseRecord(str(path), kp, "coco", bbox=(0.0, 0.0, float(size), float(size)),
                                  image_size=(size, size), image_id=i + 1))
    return write_coco(records, out / "annotations" / f"{name}.json", "coco")


@pytest.fixture(scope="session")
def dots(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dots")
    return {"train": write_dot_dataset(root, 24, 0, name="train"), "val": write_dot_dataset(root, 8, 1, name="val")}


def tiny_config(train_json: Path, val_json: Path | None, **sections):
    """A 1-stack, 32-channel hourglass at 64 px input, batch 4, on the CPU, no workers."""
    raw = {
        "data": {"train": [str(train_json)], "val": [str(val_json)] if val_json else [], "schema": "coco",
                 "input_size": [64, 64], "heatmap_size": [16, 16], "workers": 0},
        "model": {"name": "hourglass1", "channels": 32},
        "codec": {"sigma": 1.0},
        "augment": {"preset": "hourglass"},
        "train": {"epochs": 2, "batch_size": 4, "device": "cpu", "optimizer": "adam", "lr": 1e-3,
                  "checkpoint_every_steps": 1000, "deterministic": True},
        "tracking": {"enabled": False, "experiment": "test"},
    }
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    return parse_config(raw)


@pytest.fixture(scope="session")
def trained(dots, tmp_path_factory) -> Path:
    """best.ckpt of a tiny model trained for one epoch on the dot dataset."""
    from animalpose.engine.train import train

    out = tmp_path_factory.mktemp("trained")
    torch.set_num_threads(1)
    cfg = tiny_config(dots["train"], dots["val"], train={"epochs": 1})
    result = train(cfg, out_dir=out, progress=False)
    return result.best_checkpoint


@pytest.fixture(name="tiny_config")
def _tiny_config_fixture():
    return tiny_config


def perturbed_copy(checkpoint: Path, out: Path, scale: float = 0.05, seed: int = 0) -> Path:
    """Another member for an ensemble: ``checkpoint`` with noise of ``scale`` times each weight tensor's spread
    added to its weights (and EMA weights)."""
    ckpt = torch.load(checkpoint, weights_only=False, map_location="cpu")
    g = torch.Generator().manual_seed(seed)
    for weights in (ckpt["model"], ckpt.get("ema") or {}):
        for name, w in weights.items():
            if w.is_floating_point() and w.numel() > 1 and "running" not in name:
                w.add_(scale * w.std() * torch.randn(w.shape, generator=g))
    torch.save(ckpt, out)
    return out


@pytest.fixture(name="perturbed")
def _perturbed_fixture():
    return perturbed_copy
