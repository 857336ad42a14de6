"""Fixtures for the CC-SSL tests: a tiny dot dataset (17 COCO joints as coloured discs; plumbing, not accuracy)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from animalpose.adapt.ccssl import CCSSLConfig
from animalpose.config import parse_config
from animalpose.data.coco_writer import write_coco
from animalpose.data.records import PoseRecord

COLOURS = np.array([[(37 * k) % 256, (91 * k + 60) % 256, (151 * k + 120) % 256] for k in range(17)], np.uint8)
DOT_SIZE = 64


def write_dots(out: Path, name: str, n: int, seed: int, videos: int = 0) -> Path:
    """``n`` images of 17 coloured dots (COCO joints); with ``videos`` > 0 they form that many clips
    in which every dot moves by (1, 0.5) px per frame."""
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    records, start = [], None
    per_video = n // videos if videos else 0
    for i in range(n):
        frame = i % per_video if videos else None
        if frame in (None, 0):
            start = rng.uniform(8, DOT_SIZE - 14, size=(17, 2))
            bg = rng.integers(0, 60, size=(DOT_SIZE, DOT_SIZE, 3), dtype=np.uint8)
        kp = np.zeros((17, 3), np.float32)
        kp[:, :2] = start + (0 if frame is None else frame * np.array([1.0, 0.5]))
        kp[:, 2] = 2
        img = bg.copy()
        for k in range(17):
            cv2.circle(img, (round(kp[k, 0]), round(kp[k, 1])), 2, tuple(int(c) for c in COLOURS[k]), -1)
        path = out / "images" / f"{name}_{i:04d}.png"
        cv2.imwrite(str(path), img[:, :, ::-1])
        records.append(PoseRecord(str(path), kp, "coco", bbox=(0.0, 0.0, float(DOT_SIZE), float(DOT_SIZE)),
                                  image_size=(DOT_SIZE, DOT_SIZE), image_id=i + 1,
                                  video_id=f"{name}_v{i // per_video}" if videos else None, frame_index=frame))
    return write_coco(records, out / "annotations" / f"{name}.json", "coco")


@pytest.fixture(scope="module")
def dots(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ccssl_dots")
    return {"train": write_dots(root, "train", 16, 0), "val": write_dots(root, "val", 4, 1),
            "target": write_dots(root, "target", 12, 2, videos=2), "target_val": write_dots(root, "tval", 4, 3)}


@pytest.fixture
def dots_config(dots):
    """``dots_config(**ccssl)``: a 2-epoch CC-SSL config on the dots (train, val, target clips), one round an
    epoch, ``ccssl`` keys on top (the safer-pseudo-label and view-assignment tests)."""

    def make(**ccssl) -> CCSSLConfig:
        return parse_config({
            "data": {"train": [str(dots["train"])], "val": [str(dots["val"])], "target": [str(dots["target"])],
                     "schema": "coco", "input_size": [DOT_SIZE, DOT_SIZE], "heatmap_size": [16, 16], "workers": 0},
            "model": {"name": "hourglass1", "channels": 16},
            "augment": {"preset": "none"},
            "train": {"epochs": 2, "batch_size": 4, "device": "cpu", "lr": 1e-3, "flip_test": False},
            "tracking": {"enabled": False},
            "ccssl": {"source_epochs": 1, "regenerate_every": 1, "num_geometric": 1, "num_photometric": 0,
                      "pseudo_batch_size": 6, "gallery": 0, "control": False, **ccssl},
        }, CCSSLConfig)

    return make


def write_dot_clip(out: Path, rng: np.random.Generator, positions: np.ndarray) -> str:
    """One clip (video ``v``, frame_index 0..n-1) of 17 coloured dots at ``positions`` (n, 17, 2) over a
    background drawn from ``rng``; the COCO file's path."""
    (out / "images").mkdir(parents=True)
    bg = rng.integers(0, 60, size=(DOT_SIZE, DOT_SIZE, 3), dtype=np.uint8)
    records = []
    for f, xy in enumerate(positions):
        kp = np.zeros((17, 3), np.float32)
        kp[:, :2], kp[:, 2] = xy, 2
        img = bg.copy()
        for k in range(17):
            cv2.circle(img, (round(kp[k, 0]), round(kp[k, 1])), 2, ((37 * k) % 256, (91 * k + 60) % 256, 200), -1)
        path = out / "images" / f"f{f:03d}.png"
        cv2.imwrite(str(path), img)
        records.append(PoseRecord(str(path), kp, "coco", bbox=(0.0, 0.0, DOT_SIZE, DOT_SIZE),
                                  image_size=(DOT_SIZE, DOT_SIZE), image_id=f + 1, video_id="v", frame_index=f))
    return str(write_coco(records, out / "annotations" / "clip.json", "coco"))


def clip_config(clip: str, **ccssl) -> CCSSLConfig:
    """A one-epoch CC-SSL config on ``clip`` as source and target (a one-stack hourglass of 16 channels, no
    augmentation, λ = 0, no control): the unsupervised terms' plumbing, ``ccssl`` keys on top."""
    return parse_config({
        "data": {"train": [clip], "target": [clip], "schema": "coco", "input_size": [DOT_SIZE, DOT_SIZE],
                 "heatmap_size": [16, 16], "workers": 0},
        "model": {"name": "hourglass1", "channels": 16},
        "augment": {"preset": "none"},
        "train": {"epochs": 1, "batch_size": 4, "device": "cpu", "flip_test": False, "select_on": "last"},
        "tracking": {"enabled": False},
        "ccssl": {"regenerate_every": 1, "num_geometric": 1, "num_photometric": 0, "temporal": False,
                  "gallery": 0, "lambda_target": 0.0, "control": False, **ccssl},
    }, CCSSLConfig)


@pytest.fixture
def dot_clip():
    """:func:`write_dot_clip`, for the tests of the unsupervised video terms."""
    return write_dot_clip


@pytest.fixture
def ccssl_clip_config():
    """:func:`clip_config`, for the tests of the unsupervised video terms."""
    return clip_config


def clip_step_losses(run, window: int, terms: tuple[str, ...]) -> tuple[list[float], float, float]:
    """On the prepared ``run``'s trainer in eval mode, with the clip fixed to its ``window``-th window: each of
    ``terms`` (trainer methods, e.g. ``"temporal_term"``) on that window, the step's total loss and its source
    part (the plain trainer's loss) on the first 4 training crops."""
    import torch

    from animalpose.engine.trainer import Trainer

    run.prepare()
    trainer = run.trainer
    trainer.model.eval()
    chosen = trainer.clips.windows[window]
    trainer.clips.windows = [chosen]
    with torch.no_grad():
        parts = [float(getattr(trainer, t)(chosen)) for t in terms]
        batch = torch.utils.data.default_collate([trainer.train_set[i] for i in range(4)])
        total = float(trainer._forward_loss(batch)[0])
        source = float(Trainer._forward_loss(trainer, batch)[0])
    return parts, total, source


@pytest.fixture
def step_losses():
    """:func:`clip_step_losses`, for the tests of the unsupervised video terms."""
    return clip_step_losses
