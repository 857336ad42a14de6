"""End to end: CC-SSL on generated horses (source 'cad' style → target 'photo' style) improves target PCK.

Seeded and small so that it runs on a CPU in a few minutes (marked slow): 64-px crops, a one-stack
hourglass, a short source-only training, then three CC-SSL rounds. The target labels are used only to
report (target-val PCK and pseudo-label precision), never to train or select.

Stated threshold: target PCK@0.1 after the last round exceeds the source-only model's by at least
3 points. Part of that gain comes from the extra source epochs the adaptation also trains on; the
controlled comparison (same epochs with λ = 0) is a benchmark, not this test.
"""

from __future__ import annotations

import pytest
import torch

from animalpose.adapt.ccssl import CCSSLConfig, run_ccssl
from animalpose.config import parse_config

SIZE = 64
MIN_GAIN = 0.03  # absolute PCK@0.1 points


@pytest.mark.slow
def test_ccssl_improves_target_pck_over_source_only(tmp_path):
    from synthetic import generate_dataset

    torch.set_num_threads(2)
    src = generate_dataset(tmp_path / "src", "horse", "cad", 64, SIZE, seed=0)
    sval = generate_dataset(tmp_path / "sval", "horse", "cad", 16, SIZE, seed=1)
    tgt = generate_dataset(tmp_path / "tgt", "horse", "photo", 64, SIZE, seed=2)
    tval = generate_dataset(tmp_path / "tval", "horse", "photo", 32, SIZE, seed=3)
    raw = {
        "data": {"train": [str(src / "annotations/tigdog.json")], "val": [str(sval / "annotations/tigdog.json")],
                 "target": [str(tgt / "annotations/tigdog.json")], "schema": "tigdog",
                 "input_size": [SIZE, SIZE], "heatmap_size": [SIZE // 4, SIZE // 4], "workers": 0},
        "model": {"name": "hourglass1", "channels": 64},
        "codec": {"sigma": 1.0},
        "augment": {"preset": "hourglass"},
        "train": {"epochs": 6, "batch_size": 8, "device": "cpu", "optimizer": "adam", "lr": 2e-3,
                  "flip_test": False, "seed": 0, "deterministic": True},
        "tracking": {"enabled": False},
        "ccssl": {"source_epochs": 10, "regenerate_every": 2, "keep_fractions": [0.2, 0.4, 0.6],
                  "target_val": [str(tval / "annotations/tigdog.json")], "pseudo_batch_size": 16, "gallery": 0},
    }
    res = run_ccssl(parse_config(raw, CCSSLConfig), tmp_path / "run", progress=False)
    before = res.source_only["pck@0.1"]
    after = res.rounds[-1]["target/pck@0.1"]
    assert len(res.rounds) == 3
    assert after >= before + MIN_GAIN, f"target PCK@0.1 {before:.3f} -> {after:.3f}"
