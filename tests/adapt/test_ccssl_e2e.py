"""End to end: CC-SSL on generated horses (source 'cad' style → target 'photo' style) improves target PCK.

Seeded and small so that it runs on a CPU in about 4–5 minutes with one thread (marked slow): 64-px
crops, a one-stack hourglass (64 channels, 16×16 heatmaps, σ = 2), Adam 2e-3, 12 source-only epochs on
384 cad horses, then three CC-SSL rounds of 2 epochs on 128 unlabelled photo horses. The target labels
are used only to report (target-val PCK and pseudo-label precision), never to train or select.

The test checks the preconditions before the claim, so a failure says which one broke:
1. the source-only model is competent on its own domain (cad validation PCK@0.1 ≥ MIN_SOURCE_PCK);
2. there is a domain gap (target PCK@0.1 of the source-only model below its source PCK@0.1 by ≥ MIN_GAP);
3. CC-SSL improves target PCK@0.1 over source-only by ≥ MIN_GAIN.

Measured (seed 0, shared 2-core CPU, 2026-11-22): (1) 0.687 (selected epoch 10 of 12); (2) target
0.464; (3) FAILS: λ = 10 gives 0.381 / 0.337 / 0.342 after rounds 1–3; λ = 1 gives 0.448 / 0.483 /
0.460; the λ = 0 control (same extra source epochs, no target term) 0.453 / 0.463 / 0.467. The kept
pseudo-labels are barely better than the rejected ones (precision@0.05 in crop pixels 0.225 for the
top 20 % vs 0.167 for all), so at this scale self-training on them hurts (λ = 10) or does nothing.
MIN_GAIN is the issue's requirement and is not lowered to make the test pass.
"""

from __future__ import annotations

import pytest
import torch

from animalpose.adapt.ccssl import CCSSLConfig, run_ccssl
from animalpose.config import parse_config

SIZE = 64
MIN_GAIN = 0.03  # absolute PCK@0.1 points: CC-SSL over source-only on the target
MIN_SOURCE_PCK = 0.5  # source-only PCK@0.1 on its own (cad) validation set
MIN_GAP = 0.1  # source-domain minus target-domain PCK@0.1 of the source-only model


def ccssl_config(tmp_path, lambda_target: float = 10.0) -> CCSSLConfig:
    from synthetic import generate_dataset

    src = generate_dataset(tmp_path / "src", "horse", "cad", 384, SIZE, seed=0)
    sval = generate_dataset(tmp_path / "sval", "horse", "cad", 32, SIZE, seed=1)
    tgt = generate_dataset(tmp_path / "tgt", "horse", "photo", 128, SIZE, seed=2)
    tval = generate_dataset(tmp_path / "tval", "horse", "photo", 48, SIZE, seed=3)
    raw = {
        "data": {"train": [str(src / "annotations/tigdog.json")], "val": [str(sval / "annotations/tigdog.json")],
                 "target": [str(tgt / "annotations/tigdog.json")], "schema": "tigdog",
                 "input_size": [SIZE, SIZE], "heatmap_size": [SIZE // 4, SIZE // 4], "workers": 0},
        "model": {"name": "hourglass1", "channels": 64},
        "codec": {"sigma": 2.0},
        "augment": {"preset": "hourglass"},
        "train": {"epochs": 6, "batch_size": 8, "device": "cpu", "optimizer": "adam", "lr": 2e-3,
                  "milestones": [], "flip_test": False, "seed": 0, "deterministic": True},
        "tracking": {"enabled": False},
        "ccssl": {"source_epochs": 12, "regenerate_every": 2, "keep_fractions": [0.2, 0.4, 0.6],
                  "lambda_target": lambda_target, "target_val": [str(tval / "annotations/tigdog.json")],
                  "pseudo_batch_size": 16, "gallery": 0},
    }
    return parse_config(raw, CCSSLConfig)


@pytest.fixture
def one_thread():
    # One intra-op thread: on a shared 2-core machine two threads per process oversubscribe the cores
    # and training ran 20x slower (2.4 vs 46 images/s measured for this network).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="known gap (issue 7): at the quick CPU budget the kept pseudo-labels are barely better than "
    "the rejected ones (22.5% vs 16.7% correct at 0.05) and CC-SSL lowers target PCK@0.1 (0.464 -> 0.342); "
    "the competence and domain-gap preconditions pass. strict: an unexpected pass fails, so the marker "
    "must be removed the day CC-SSL helps.",
)
def test_ccssl_improves_target_pck_over_source_only(tmp_path, one_thread):
    from animalpose.engine.checkpoint import load_checkpoint

    res = run_ccssl(ccssl_config(tmp_path), tmp_path / "run", progress=False)
    source_pck = load_checkpoint(tmp_path / "run" / "source" / "best.ckpt")["metrics"]["val/pck@0.1"]
    before = res.source_only["pck@0.1"]
    after = res.rounds[-1]["target/pck@0.1"]
    print("source val", source_pck, "source-only on target", res.source_only,
          "rounds", [(r["target/pck@0.1"], r.get("pseudo/precision@0.05")) for r in res.rounds])
    assert len(res.rounds) == 3
    assert source_pck >= MIN_SOURCE_PCK, f"source-only model not competent on its domain: {source_pck:.3f}"
    assert source_pck - before >= MIN_GAP, f"no domain gap: source {source_pck:.3f}, target {before:.3f}"
    assert after >= before + MIN_GAIN, f"target PCK@0.1 {before:.3f} -> {after:.3f}"
