"""Fixtures of the data tests: the shared real-data folder and tiny image/video builders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


@pytest.fixture
def real() -> Path:
    """../shared/data/real beside the checkout (CI has it); skip with the reason when it is absent."""
    if not REAL.is_dir():
        pytest.skip(f"shared real-data fixtures not found at {REAL}")
    return REAL


@pytest.fixture
def write_image():
    """write_image(path, width, height, value=0) -> path: a tiny solid image (PNG/JPEG by suffix)."""

    def _write(path: Path, width: int = 32, height: int = 24, value: int = 0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), np.full((height, width, 3), value, np.uint8))
        return path

    return _write


@pytest.fixture
def write_video():
    """write_video(path, frames, width, height) -> path: an mp4 whose frame i is grey level 20*i."""

    def _write(path: Path, frames: int = 10, width: int = 32, height: int = 24) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (width, height))
        assert out.isOpened()
        for i in range(frames):
            out.write(np.full((height, width, 3), (20 * i) % 256, np.uint8))
        out.release()
        return path

    return _write
