"""`animalpose bench ccssl-real`: metrics and summary by hand, and the plumbing end to end at toy size."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from animalpose.paths import REPO_ROOT
from flows.benchmarks.ccssl_real import (
    METRICS,
    BenchSettings,
    control_config,
    format_table,
    keypoint_metrics,
    run_bench,
    summarise,
)

REAL = REPO_ROOT.parent / "shared" / "data" / "real" / "mirror-mouse"
TINY = ("data.input_size=[64,64]", "data.heatmap_size=[16,16]", "model.channels=16", "train.epochs=1",
        "train.milestones=[]", "train.batch_size=4")
TINY_ADAPT = ("train.epochs=2", "ccssl.regenerate_every=1", "ccssl.keep_fractions=[0.2,0.4]",
              "ccssl.num_geometric=1", "ccssl.num_photometric=1", "ccssl.pseudo_batch_size=4", "ccssl.gallery=0")


def test_keypoint_metrics_by_hand():
    gt = np.array([[[0, 0, 2], [100, 0, 2], [0, 50, 0]]], float)  # normaliser: labelled extent 100 px
    pred = np.array([[[3, 4], [106, 8], [500, 500]]], float)  # errors 5, 10; the unlabelled joint ignored
    m = keypoint_metrics(pred, gt)
    assert m["pixel_error"] == pytest.approx(7.5) and m["pixel_error_median"] == pytest.approx(7.5)
    assert m["pck@0.05"] == pytest.approx(0.5)  # 5 <= 0.05 * 100, 10 > 5
    assert m["pck@0.1"] == pytest.approx(1.0)
    assert m["joints"] == 2 and m["normaliser_px"] == pytest.approx(100.0)
    with pytest.raises(ValueError):
        keypoint_metrics(pred, gt * [1, 1, 0])


def _seed(seed, sup, cont, rounds):
    row = lambda v: {m: v for m in METRICS}  # noqa: E731
    return {"seed": seed, "supervised": row(sup), "continued": row(cont[-1]),
            "continued_rounds": [{"round": r, **row(v)} for r, v in enumerate(cont)],
            "ccssl": [{"round": r, "kept": k, "candidates": 100, "kept_by_flow": 1, **row(v)}
                      for r, (k, v) in enumerate(rounds)]}


def test_summarise_by_hand():
    s = summarise([_seed(0, 10.0, [9.5, 9.0], [(20, 8.0), (40, 7.0)]),
                   _seed(1, 12.0, [11.5, 11.0], [(22, 9.0), (42, 10.0)])])
    assert list(s["rows"]) == ["supervised", "continued round 0", "continued round 1", "ccssl round 0",
                               "ccssl round 1"]
    sup = s["rows"]["supervised"]["pixel_error"]
    assert sup["mean"] == pytest.approx(11.0) and sup["std"] == pytest.approx(math.sqrt(2.0))  # ddof 1
    assert s["kept"][1]["kept"]["mean"] == pytest.approx(41.0) and s["kept"][0]["candidates"] == 100
    assert s["ccssl_minus_continued"]["round 0"]["pixel_error"]["values"] == [-1.5, -2.5]
    d = s["ccssl_minus_continued"]["round 1"]["pixel_error"]
    assert d["values"] == [-2.0, -1.0] and d["mean"] == pytest.approx(-1.5)
    assert s["last_round_minus_supervised"]["pck@0.1"]["values"] == [-3.0, -2.0]
    table = format_table({"summary": s})
    assert "| ccssl round 1 | 8.50 ± 2.12 |" in table and "after round 1" in table


def test_control_is_lambda_zero_without_views():
    from animalpose.adapt.ccssl import CCSSLConfig

    cfg = CCSSLConfig.model_validate({"ccssl": {"lambda_target": 10.0, "num_geometric": 4}})
    c = control_config(cfg).ccssl
    assert (c.lambda_target, c.temporal, c.num_geometric, c.invariance) == (0.0, False, 0, False)
    assert cfg.ccssl.lambda_target == 10.0  # the original is untouched


def _finite(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def test_plumbing_tiny_run(tmp_path, monkeypatch):
    if not REAL.is_dir():
        pytest.skip(f"shared real data not found at {REAL}")
    monkeypatch.chdir(tmp_path)  # a relative --out (frame paths in the cache must still resolve)
    from animalpose.adapt.ccssl import CCSSLTrainer

    streams = []  # (source augmentation, target augmentation) of each CC-SSL round
    set_target = CCSSLTrainer.set_target

    def spy(self, dataset):
        streams.append((self.train_set.augment.config, dataset.augment.config))
        set_target(self, dataset)

    monkeypatch.setattr(CCSSLTrainer, "set_target", spy)
    settings = BenchSettings(train_range=("img01", "img04"), test_range=("img61", "img63"), frame_step=2,
                             max_frames=6, overrides=TINY, adapt_overrides=TINY_ADAPT)
    result = run_bench(Path("."), [0], settings)
    assert (result["train_images"], result["test_images"], result["target_frames"]) == (4, 3, 6)
    frames = json.loads((tmp_path / "data" / "video_frames.json").read_text())
    assert [im["frame_index"] for im in frames["images"]] == [0, 2, 4, 6, 8, 10]
    assert {im["video_id"] for im in frames["images"]} == {"test_vid"}
    seed = result["per_seed"][0]
    assert [r["round"] for r in seed["ccssl"]] == [0, 1]
    assert 0 < seed["ccssl"][0]["kept"] < seed["ccssl"][1]["kept"] <= seed["ccssl"][1]["candidates"] == 6 * 17
    assert [r["round"] for r in seed["continued_rounds"]] == [0, 1]
    assert seed["continued_rounds"][-1] == {"round": 1, **seed["continued"]}
    for row in (seed["supervised"], seed["continued"], *seed["continued_rounds"], *seed["ccssl"]):
        assert all(_finite(row[m]) for m in METRICS)
        assert row["pixel_error"] > 0 and row["pixel_error_median"] > 0 and 0 <= row["pck@0.05"] <= row["pck@0.1"] <= 1
        assert row["joints"] == sum(int((np.asarray(a["keypoints"]).reshape(-1, 3)[:, 2] > 0).sum())
                                    for a in json.loads((tmp_path / "data" / "test.json").read_text())["annotations"])
    for arm in ("supervised", "continued", "ccssl"):
        assert seed["times"][arm]["cpu_s"] > 0
    # the pseudo-labelled stream is augmented like the labelled one: the config's scale ±15 % and rotation
    # ±20 degrees (σ = 0.15, 10), not the hourglass preset's defaults (σ = 0.25, 30; the bug of the first run)
    assert len(streams) == 4  # control and CC-SSL, two rounds each
    for src, tgt in streams:
        assert tgt == src and (tgt.scale_sigma, tgt.rotation_sigma, tgt.flip_prob) == pytest.approx((0.15, 10.0, 0.0))
    assert set(result["summary"]["rows"]) == {"supervised", "continued round 0", "continued round 1",
                                              "ccssl round 0", "ccssl round 1"}
    assert json.loads((tmp_path / "ccssl_real_bench.json").read_text())["seeds"] == [0]
    # the bench's PCK agrees with `animalpose evaluate` (same checkpoint, same test file)
    from animalpose.engine.evaluate import evaluate

    ev = evaluate(tmp_path / "seed_0" / "supervised" / "last.ckpt", tmp_path / "data" / "test.json", device="cpu",
                  progress=False, allow_outside_root=True)  # the subset points at the DLC project's images
    assert ev["metrics"]["pck_bbox@0.1"] == pytest.approx(seed["supervised"]["pck@0.1"])
    # a rerun with the same settings reuses the finished seed
    again = run_bench(tmp_path, [0], settings)
    assert again["per_seed"][0] == seed and again["cpu_seconds"] < result["cpu_seconds"]
    from dataclasses import replace

    from animalpose.errors import DataError

    (tmp_path / "seed_0" / "result.json").unlink()
    with pytest.raises(DataError, match="other settings"):
        run_bench(tmp_path, [0], replace(settings, frame_step=3))


def test_command_rejects_bad_options_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from animalpose.cli import app

    runner = CliRunner()
    out = tmp_path / "never"
    for args, hint in ((["--seeds", "a"], "--seeds"), (["--frame-step", "0"], "--frame-step"),
                       (["--adapt", "ccssl.lambda_target"], "--adapt"), (["--set", "train.epochs"], "--set")):
        result = runner.invoke(app, ["bench", "ccssl-real", "--out", str(out), *args])
        assert result.exit_code == 2 and hint in result.output
    assert not out.exists()


def test_command_passes_set_and_adapt_overrides(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import flows.benchmarks.ccssl_real as bench
    from animalpose.cli import app

    seen = {}

    def fake_run_bench(out, seeds, settings, *, progress=False):
        seen.update(out=out, seeds=seeds, settings=settings)
        raise RuntimeError("stop before any work")

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    result = CliRunner().invoke(app, ["bench", "ccssl-real", "--out", str(tmp_path), "--seeds", "1,2", "--set",
                                      "train.epochs=60", "--adapt", "train.epochs=9", "--adapt", "ccssl.gallery=0"])
    assert isinstance(result.exception, RuntimeError)
    assert seen["seeds"] == [1, 2] and seen["settings"].overrides == ("train.epochs=60",)
    assert seen["settings"].adapt_overrides == ("train.epochs=9", "ccssl.gallery=0")
