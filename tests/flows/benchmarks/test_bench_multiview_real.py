"""`animalpose bench multiview-real`: the ccssl-real models scored raw and mended, by hand and end to end at toy size
on the real mirror-mouse frames."""

from __future__ import annotations

import json

import pytest

from animalpose.engine.evaluate import evaluate
from animalpose.errors import DataError
from animalpose.paths import REPO_ROOT
from flows.benchmarks import ccssl_real, multiview_real
from flows.benchmarks.ccssl_real import BenchSettings

REAL = REPO_ROOT.parent / "shared" / "data" / "real"
TINY = ("data.input_size=[64,64]", "data.heatmap_size=[16,16]", "model.channels=16", "train.epochs=1",
        "train.milestones=[]", "train.batch_size=4")
TINY_ADAPT = ("train.epochs=1", "ccssl.regenerate_every=1", "ccssl.keep_fractions=[0.2]", "ccssl.num_geometric=1",
              "ccssl.num_photometric=0", "ccssl.pseudo_batch_size=4", "ccssl.gallery=0")


def _scores(raw: float, mended: float) -> dict:
    m = {"pixel_error": raw, "pixel_error_median": raw, "pck@0.05": 0.5}
    return {"raw": m, "mended": {**m, "pixel_error": mended}}


def test_summarise_by_hand():
    per_seed = [{"seed": s, "arms": {"control": {"test": _scores(10 + s, 6 + s), "val": _scores(9, 5)},
                                     "ccssl": {"test": _scores(11, 5 + 2 * s), "val": _scores(9, 4)}}}
                for s in (0, 1)]
    rows = multiview_real.summarise(per_seed, ["control", "ccssl"])
    assert rows["control"]["raw_pixel_error"]["values"] == [10, 11]
    assert rows["control"]["mended_minus_raw"]["values"] == [-4, -4]
    assert rows["ccssl"]["mended_minus_raw"]["values"] == [-6, -4]
    assert rows["ccssl"]["mended_minus_control_mended"]["values"] == [-1, 0]  # (5 - 6, 7 - 7)
    assert "mended_minus_control_mended" not in rows["control"]
    assert rows["ccssl"]["val_mended_pixel_error"]["mean"] == 4


def test_an_unfinished_arm_is_named(tmp_path):
    (tmp_path / "ccssl").mkdir()
    with pytest.raises(DataError, match=r"ccssl: result\.json: the arm has not finished"):
        multiview_real.arm_checkpoint(tmp_path / "ccssl")


def test_plumbing_tiny_run(tmp_path):
    if not (REAL / "mirror-mouse").is_dir():
        pytest.skip(f"shared real data not found at {REAL}")
    settings = BenchSettings(train_range=("img01", "img04"), val_range=("img05", "img06"),
                             test_range=("img61", "img63"), frame_step=2, max_frames=4, overrides=TINY,
                             adapt_overrides=TINY_ADAPT)
    bench = ccssl_real.run_bench(tmp_path, [0], settings, ["supervised", "control"])
    result = multiview_real.run_bench(tmp_path, [0], ["supervised", "control"], settings)
    arms = result["per_seed"][0]["arms"]
    # raw: what ccssl-real reported for the same checkpoints
    sup = json.loads((tmp_path / "mirror-mouse" / "seed_0" / "supervised" / "result.json").read_text())
    assert arms["supervised"]["test"]["raw"]["pixel_error"] == pytest.approx(sup["metrics"]["pixel_error"])
    assert arms["control"]["test"]["raw"]["pixel_error"] == pytest.approx(
        bench["per_seed"][0]["arms"]["control"]["metrics"]["pixel_error"])
    # mended: what `evaluate` scores for the supervised model, which carries the same correction (the experiment
    # config's multiview section, fitted on the same training frames)
    test_json = tmp_path / "mirror-mouse" / "data" / "test.json"
    ckpt = tmp_path / "mirror-mouse" / "seed_0" / "supervised" / "last.ckpt"
    on = evaluate(ckpt, test_json, progress=False, allow_outside_root=True)
    off = evaluate(ckpt, test_json, progress=False, allow_outside_root=True, multiview=False)
    assert on["multiview"]
    assert arms["supervised"]["test"]["mended"]["pixel_error"] == pytest.approx(on["metrics"]["pixel_error_mean"])
    assert arms["supervised"]["test"]["raw"]["pixel_error"] == pytest.approx(off["metrics"]["pixel_error_mean"])
    assert result["reference_view"] == [1]
    # cached per arm: a rerun reads the scores back
    cache = tmp_path / "mirror-mouse" / "seed_0" / "control" / "multiview.json"
    stamp = cache.stat().st_mtime_ns
    again = multiview_real.run_bench(tmp_path, [0], ["supervised", "control"], settings)
    assert again["per_seed"] == result["per_seed"] and cache.stat().st_mtime_ns == stamp
    assert (tmp_path / "mirror-mouse" / "multiview_real_bench.json").is_file()


def test_a_screen_is_scored_on_val_alone_and_on_the_half_no_rule_read(tmp_path):
    """multiview-real --screen on a ccssl-real --screen run with val halved: val only (no test scores), the
    scored half's frames, raw as ccssl-real's screen reported it; the table names each arm against the control."""
    if not (REAL / "mirror-mouse").is_dir():
        pytest.skip(f"shared real data not found at {REAL}")
    settings = BenchSettings(train_range=("img01", "img04"), val_range=("img05", "img08"),
                             test_range=("img61", "img62"), frame_step=2, max_frames=4, overrides=TINY,
                             adapt_overrides=TINY_ADAPT, calibrate_on="half")
    screen = ccssl_real.run_bench(tmp_path, [0], settings, ["supervised", "control"], screen=True)
    with pytest.raises(DataError, match=r"control: result\.json: the arm has not finished"):
        multiview_real.run_bench(tmp_path, [0], ["supervised", "control"], settings)  # not a full run
    result = multiview_real.run_bench(tmp_path, [0], ["supervised", "control"], settings, screen=True)
    arms = result["per_seed"][0]["arms"]
    assert set(arms["control"]) == {"val"} and result["scored"] == "val"
    assert arms["control"]["val"]["raw"]["pixel_error"] == pytest.approx(
        screen["per_seed"][0]["arms"]["control"]["val"]["pixel_error"])
    assert arms["control"]["val"]["raw"]["joints"] == screen["per_seed"][0]["arms"]["control"]["val"]["joints"]
    assert (tmp_path / "mirror-mouse" / "multiview_real_screen.json").is_file()
    assert (tmp_path / "mirror-mouse" / "seed_0" / "control" / "multiview_screen.json").is_file()
    table = multiview_real.format_table(result)
    assert "| control |" in table and "mended − control's" in table


def test_auto_mends_each_model_with_the_groups_it_swaps_on_the_calibration_half(tmp_path):
    """--correct auto: each arm's groups come from its own raw predictions on the calibration half (the frames
    no score reads); mended = the found correction applied to the raw predictions, cached apart from the named
    groups' scores."""
    if not (REAL / "mirror-mouse").is_dir():
        pytest.skip(f"shared real data not found at {REAL}")
    import numpy as np

    from animalpose.data.readers import read_dataset
    from animalpose.engine.multiview import found_correction, look_alike

    settings = BenchSettings(train_range=("img01", "img04"), val_range=("img05", "img08"),
                             test_range=("img61", "img62"), frame_step=2, max_frames=4, overrides=TINY,
                             adapt_overrides=TINY_ADAPT, calibrate_on="half")
    ccssl_real.run_bench(tmp_path, [0], settings, ["supervised"], screen=True)
    with pytest.raises(ValueError, match="correct"):
        multiview_real.run_bench(tmp_path, [0], ["supervised"], settings, screen=True, correct="some")
    result = multiview_real.run_bench(tmp_path, [0], ["supervised"], settings, screen=True, correct="auto",
                                      confusion=0.05)
    root = tmp_path / "mirror-mouse"
    assert (result["correct"], result["confusion"], result["found_on_frames"]) == ("auto", 0.05, 2)
    sup = result["per_seed"][0]["arms"]["supervised"]
    # by hand: the arm's raw predictions on the calibration half, its look-alike groups, the correction applied
    ckpt = root / "seed_0" / "supervised" / "last.ckpt"
    cfg = multiview_real.load_config(multiview_real.PROJECTS["mirror-mouse"].experiment)
    cfg_mv, schema = cfg.multiview, multiview_real.load_schema(cfg.data.schema_name)
    calib = read_dataset(root / "data" / "val_calibration.json", "coco", schema).records
    found = look_alike(ccssl_real.predict_original(ckpt, calib), np.stack([r.keypoints for r in calib]),
                       cfg_mv.views, schema, 0.05)
    assert sup["found"] == found
    prep = ccssl_real.prepare(settings, root)
    named = multiview_real.fit_project_correction(cfg, prep.train, schema)
    corr = found_correction(named.prior, found, cfg_mv.views)
    pred = ccssl_real.predict_original(ckpt, prep.val_records)
    gt = np.stack([r.keypoints for r in prep.val_records])
    mended = corr.apply(pred) if corr is not None else pred
    assert sup["val"]["mended"]["pixel_error"] == pytest.approx(
        ccssl_real.keypoint_metrics(mended, gt)["pixel_error"])
    assert (root / "seed_0" / "supervised" / "multiview_auto_screen.json").is_file()
    assert (root / "multiview_real_screen_auto.json").is_file()
    assert not (root / "seed_0" / "supervised" / "multiview_screen.json").exists()
