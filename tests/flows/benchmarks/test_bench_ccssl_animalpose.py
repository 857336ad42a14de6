"""`bench ccssl-animalpose` on a few real Animal-Pose horses at the smoke preset: plumbing, splits, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from animalpose.errors import DataError
from flows.benchmarks.ccssl_animalpose import ARMS, METRICS, BenchSettings, run_bench

RELEASE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "real" / "animal-pose"


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs torch on one thread (tests/conftest.py)."""


def test_every_arm_is_scored_on_the_real_test_split_and_a_rerun_resumes(tmp_path):
    if not RELEASE.is_dir():
        pytest.skip(f"real data not found at {RELEASE}")
    settings = BenchSettings(preset="smoke", data=RELEASE, max_images=12)
    result = run_bench(tmp_path, [0], settings)
    images = {s: {im["file_name"] for im in json.loads((tmp_path / "data" / f"horse_{s}.json").read_text())["images"]}
              for s in ("train", "val", "test")}
    assert all(Path(f).is_absolute() for f in images["test"])
    assert not images["train"] & images["test"] and not images["val"] & images["test"]
    splits = json.loads((RELEASE / "splits.json").read_text())["horse"]
    assert len(images["test"]) <= 12 and len(splits["test"]) == 180
    seed = result["per_seed"][0]
    for arm in ARMS:
        for split in ("test", "val"):
            scores = seed["arms"][arm][split]
            assert 0 < scores["instances"] and all(0.0 <= scores[m] <= 1.0 for m in METRICS if m in scores), arm
    assert len(seed["arms"]["ccssl"]["rounds"]) == 2 and seed["arms"]["ccssl"]["rounds"][0]["pseudo_coverage"] > 0
    oracle_cfg = torch.load(tmp_path / "seed_0" / "oracle" / "last.ckpt", weights_only=False)["config"]
    assert oracle_cfg["data"]["train"] == [str(tmp_path / "data" / "horse_train.json")]
    assert oracle_cfg["data"]["val"] == [str(tmp_path / "data" / "horse_val.json")]
    assert oracle_cfg["train"]["epochs"] == 1 + 2 * 1  # CC-SSL's whole budget
    src_cfg = torch.load(tmp_path / "seed_0" / "source_only" / "last.ckpt", weights_only=False)["config"]
    assert "animal-pose" not in json.dumps(src_cfg["data"])  # source-only sees no real image
    assert "ccssl_minus_control" in result["summary"]

    stamp = (tmp_path / "seed_0" / "oracle" / "last.ckpt").stat().st_mtime_ns
    again = run_bench(tmp_path, [0], settings)
    assert again["per_seed"] == result["per_seed"]
    assert (tmp_path / "seed_0" / "oracle" / "last.ckpt").stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match="other settings"):
        run_bench(tmp_path, [0], BenchSettings(preset="smoke", data=RELEASE, max_images=12,
                                               ccssl_overrides=("ccssl.lambda_target=2",)))
