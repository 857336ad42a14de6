"""`animalpose bench pipeline`: the per-stage profile and the interleaved whole-epoch / network-alone run."""

from __future__ import annotations

import pytest

import flows.benchmarks.pipeline as bench


@pytest.mark.slow
def test_side_by_side_and_profile_on_a_tiny_quick_epoch(tmp_path):
    r = bench.side_by_side(tmp_path, images=16, repeats=2, old_workers=1)
    assert r["threads"] == 1 and r["workers"] == 0  # the test session's plan: 1 thread, no worker
    assert r["image_cache"] is True and (r["old_workers"], r["old_threads"]) == (1, 1)
    for arm in ("network", "epoch", "epoch_old"):
        assert len(r["per_repeat_images_per_s"][arm]) == 2
        assert r["images_per_s"][arm] > 0 and r["images_per_cpu_s"][arm] > 0
    ips = r["images_per_s"]
    assert r["ratio"] == pytest.approx(ips["epoch"] / ips["network"], rel=0.02)
    assert r["ratio_old"] == pytest.approx(ips["epoch_old"] / ips["network"], rel=0.02)

    p = bench.stage_profile(tmp_path, n=16, steps=1)  # reuses the 16 generated horses
    ms = p["ms_per_sample"]
    stages = ("decode", "geometry", "warp", "keypoints", "photometric", "normalise", "encode", "collate",
              "whole_sample_uncached")
    assert all(ms[s] >= 0 for s in stages) and ms["network_step"] > 0
    assert ms["data_total"] == pytest.approx(ms["whole_sample"] + ms["collate"], abs=2e-3)
    assert p["data_share_of_network"] == pytest.approx(ms["data_total"] / ms["network_step"], rel=0.02, abs=1e-3)
