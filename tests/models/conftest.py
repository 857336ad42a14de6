"""Fixtures for the model tests: meta-device building (no memory, no compute), seeding (one thread for every
test: tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def meta():
    """Build modules under ``with meta:`` to get shapes and counts without allocating weights."""
    return torch.device("meta")


@pytest.fixture(autouse=True)
def _seed():
    """Every model test starts from torch's seed 0."""
    torch.manual_seed(0)
