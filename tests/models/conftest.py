"""Fixtures for the model tests: meta-device building (no memory, no compute), seeding, one thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def meta():
    """Build modules under ``with meta:`` to get shapes and counts without allocating weights."""
    return torch.device("meta")


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seeded, single-threaded (small convs on a shared 2-core machine run far faster on one thread)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
