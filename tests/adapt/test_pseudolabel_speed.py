"""`animalpose bench pseudolabel`: the timed paths are the ones CC-SSL runs, and the figures are consistent.

No timing is asserted (speed is measured by the benchmark); these check what is timed and how the
reported numbers relate to each other, on 8 generated 64-px horses (4 stills, one 4-frame clip) and
a small quick-preset hourglass.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from animalpose.adapt.ccssl import keep_percentile
from animalpose.errors import ConfigError
from flows.benchmarks import pseudolabel as pl

SMALL = ("model.channels=8", "ccssl.num_geometric=1", "ccssl.num_photometric=1", "ccssl.pseudo_batch_size=4")


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return pl.make_target(tmp_path_factory.mktemp("plspeed"), 8, 64, clip_frames=4)[0]


@pytest.fixture(scope="module")
def setup(target):
    return pl.build_setup(target, 64, overrides=SMALL)


class _Counting(torch.nn.Module):
    """Delegates to ``inner`` and counts the images it is given."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner, self.seen = inner, 0

    def forward(self, x):
        self.seen += x.shape[0]
        return self.inner(x)


def test_setup_is_the_round_run_ccssl_makes(setup):
    cfg = setup.cfg
    assert setup.consistency == cfg.ccssl.consistency("cpu") and setup.flow == cfg.ccssl.flow()
    assert setup.percentile == pytest.approx(keep_percentile(cfg, 0)) == pytest.approx(0.8)
    assert setup.seed == cfg.train.seed * 1000  # run_ccssl's round-0 seed
    assert setup.views == 1 + 1 + 0 + 1 and setup.flow is not None
    assert cfg.model.name == "hourglass1" and tuple(cfg.data.input_size) == (64, 64)
    assert len(setup.records) == 8 and sum(r.video_id is not None for r in setup.records) == 4
    flipped = replace(setup, consistency=replace(setup.consistency, flip=True, invariance=False))
    assert flipped.views == 1 + 1 + 1 + 0


def test_preloaded_path_gives_the_labels_of_generate_and_select(setup):
    ref = pl.pseudo_label_step(setup)
    pre = pl.pseudo_label_preloaded(setup, pl.preload(setup))
    assert [r.image for r in pre.records] == [r.image for r in ref.records]
    for name in ("xy", "confidence", "weights", "replaced", "matrices"):
        np.testing.assert_allclose(getattr(pre, name), getattr(ref, name), rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(np.isnan(pre.flow_conf), np.isnan(ref.flow_conf))
    assert pre.threshold == pytest.approx(ref.threshold)
    assert set(pre.components) == set(ref.components)
    # the temporal step ran: frames 1..3 of the clip have a flow confidence, the stills and frame 0 none
    chained = [r.video_id is not None and r.frame_index > 0 for r in ref.records]
    assert np.isfinite(ref.flow_conf).all(1).tolist() == chained
    # the round-0 selection keeps the top 20% of the 8 x 18 joint confidences (ties kept)
    assert (ref.weights > 0).sum() == pytest.approx(0.2 * ref.weights.size, abs=2)


def test_every_mode_runs_the_forward_work_it_claims(setup):
    """Plain inference sees each image once; the V-view forwards and both pseudo-label paths V times (the
    plain model: a BN-folded copy would not count)."""
    counted = replace(setup, model=_Counting(setup.model), fast=False)
    batches = pl.preload(counted)
    runners = pl._runners(counted, batches, pl.label_preloaded(counted, batches))
    seen = {}
    for mode in pl.MODES:
        counted.model.seen = 0
        runners[mode]()
        seen[mode] = counted.model.seen
    v = setup.views
    assert seen == {"inference": 8, "forward_views": 8 * v, "pseudo_label": 8 * v, "inference_pre": 8,
                    "forward_views_pre": 8 * v, "pseudo_label_pre": 8 * v, "load": 0, "temporal_select": 0}


def test_summary_rates_and_overheads_by_hand():
    sec = {m: {"wall": 1.0, "cpu": 0.5} for m in pl.MODES}
    sec["forward_views"] = {"wall": 4.0, "cpu": 2.0}
    sec["pseudo_label"] = {"wall": 5.0, "cpu": 3.0}
    sec["forward_views_pre"] = {"wall": 2.0, "cpu": 2.0}
    sec["pseudo_label_pre"] = {"wall": 2.2, "cpu": 2.5}
    s = pl.summarise(sec, 10)
    assert s["inference_img_s"] == 10.0 and s["forward_views_img_s"] == 2.5 and s["pseudo_label_img_s"] == 2.0
    assert s["overhead"] == pytest.approx(0.25) and s["cpu_overhead"] == pytest.approx(0.5)
    assert s["machinery_overhead"] == pytest.approx(0.1) and s["cpu_machinery_overhead"] == pytest.approx(0.25)
    assert s["pseudo_label_vs_inference"] == pytest.approx(5.0) and s["cpu_inference_img_s"] == 20.0


def test_benchmark_figures_are_consistent(setup):
    r = pl.run_benchmark(setup, repeats=2, warmup=0)
    assert r["images"] == 8 and r["views"] == 3 and r["clips"] == 1 and r["frames"] == 4 and r["temporal"]
    sec = r["seconds"]
    for mode in pl.MODES:
        walls = sorted(w for w, _ in r["all_repeats"][mode])
        assert len(walls) == 2 and sec[mode]["wall"] == pytest.approx(sum(walls) / 2, abs=1e-4)
    assert r["overhead"] == pytest.approx(sec["pseudo_label"]["wall"] / sec["forward_views"]["wall"] - 1)
    assert r["cpu_machinery_overhead"] == pytest.approx(
        sec["pseudo_label_pre"]["cpu"] / sec["forward_views_pre"]["cpu"] - 1)
    assert r["inference_img_s"] == pytest.approx(8 / sec["inference"]["wall"])
    assert r["kept"] == int((pl.pseudo_label_step(setup).weights > 0).sum())
    assert len(r["load_average"]["before"]) == 3 and r["threads"] == 1


def test_target_needs_room_for_a_clip(tmp_path):
    with pytest.raises(ConfigError, match="n"):
        pl.make_target(tmp_path, 6, 64, clip_frames=4)
    with pytest.raises(ConfigError, match="size"):
        pl.build_setup(tmp_path / "x.json", 66)


def test_cli_prints_one_json_object_last(target, monkeypatch):
    from typer.testing import CliRunner

    from animalpose.cli import app

    monkeypatch.setattr(pl, "build_setup", functools.partial(pl.build_setup, overrides=SMALL))
    args = ["--n", "8", "--size", "64", "--clip-frames", "4", "--repeats", "1", "--warmup", "0", "--threads", "1",
            "--data-dir", str(target.parents[2]), "--json"]
    res = CliRunner().invoke(app, ["bench", "pseudolabel", *args])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    for key in ("inference_img_s", "forward_views_img_s", "pseudo_label_img_s", "overhead", "views",
                "machinery_overhead", "load_average"):
        assert key in doc
    assert doc["views"] == 3 and math.isfinite(doc["overhead"]) and doc["images"] == 8


def test_fast_views_keep_the_round_labels(setup):
    """label_records through the BN-folded channels-last copy (the default) selects the same joints as the
    plain network, with the same labels within float rounding."""
    fast, plain = pl.pseudo_label_step(setup), pl.pseudo_label_step(replace(setup, fast=False))
    np.testing.assert_allclose(fast.xy, plain.xy, atol=1e-3)
    np.testing.assert_allclose(fast.confidence, plain.confidence, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(fast.weights, plain.weights)
