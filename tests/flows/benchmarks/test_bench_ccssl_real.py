"""`animalpose bench ccssl-real`: metrics, arms and summary by hand, the SLEAP split, and the plumbing end to end at
toy size on both real projects (one seed, a few arms, cached per arm)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from animalpose.paths import REPO_ROOT
from flows.benchmarks.ccssl_real import (
    LIGHTNING_POSE_WEIGHT,
    METRICS,
    PROJECTS,
    BenchSettings,
    arm_config,
    check_arms,
    control_config,
    default_arms,
    format_table,
    keypoint_metrics,
    run_bench,
    summarise,
)
from flows.benchmarks.ccssl_real_data import SleapSplit, sleap_frames

REAL = REPO_ROOT.parent / "shared" / "data" / "real"
TINY = ("data.input_size=[64,64]", "data.heatmap_size=[16,16]", "model.channels=16", "train.epochs=1",
        "train.milestones=[]", "train.batch_size=4")
TINY_ADAPT = ("train.epochs=2", "ccssl.regenerate_every=1", "ccssl.keep_fractions=[0.2,0.4]",
              "ccssl.num_geometric=1", "ccssl.num_photometric=1", "ccssl.pseudo_batch_size=4", "ccssl.gallery=0",
              "ccssl.temporal_loss_clip=3")


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


def _seed(seed, values: dict[str, float]):
    return {"seed": seed, "arms": {a: {"metrics": {m: v for m in METRICS}} for a, v in values.items()}}


def test_summarise_pairs_every_arm_with_the_control_by_hand():
    s = summarise([_seed(0, {"supervised": 10.0, "control": 9.0, "pca": 8.0}),
                   _seed(1, {"supervised": 12.0, "control": 11.0, "pca": 11.5})])
    assert list(s["rows"]) == ["supervised", "control", "pca"]
    sup = s["rows"]["supervised"]["pixel_error"]
    assert sup["mean"] == pytest.approx(11.0) and sup["std"] == pytest.approx(math.sqrt(2.0))  # ddof 1
    d = s["minus_control"]["pca"]["pixel_error"]
    assert d["values"] == [-1.0, 0.5] and d["mean"] == pytest.approx(-0.25)
    assert s["minus_control"]["supervised"]["pck@0.1"]["values"] == [1.0, 1.0]
    assert "control" not in s["minus_control"]
    table = format_table({"summary": s})
    assert "| pca | 9.75 ± 2.47 |" in table
    assert "pca minus control (λ=0), paired per seed: pixel error -0.25 ± 1.06 px (per seed -1.00, +0.50)" in table
    assert s["val_rows"] == {}  # rows without val figures (none here) get no val row, and a '-' cell
    assert table.splitlines()[2].endswith("| - |")
    with_val = [_seed(0, {"control": 9.0}), _seed(1, {"control": 11.0})]
    for seed, v in zip(with_val, (4.0, 6.0), strict=True):
        seed["arms"]["control"]["val"] = {m: v for m in METRICS}
    s_val = summarise(with_val)
    assert s_val["val_rows"]["control"]["pixel_error"]["mean"] == pytest.approx(5.0)
    assert format_table({"summary": s_val}).splitlines()[2].endswith("| 5.00 ± 1.41 |")
    # without the control there is nothing to pair with
    assert summarise([_seed(0, {"supervised": 1.0, "pca": 2.0})])["minus_control"] == {}


def test_arms_turn_on_their_terms_and_nothing_else():
    from animalpose.adapt.ccssl import CCSSLConfig

    cfg = CCSSLConfig.model_validate({"ccssl": {"lambda_target": 10.0, "num_geometric": 4,
                                                "temporal_loss_weight": 0.5}})
    c = control_config(cfg).ccssl
    assert (c.lambda_target, c.temporal, c.num_geometric, c.invariance) == (0.0, False, 0, False)
    assert (c.temporal_loss_weight, c.pca_loss_weight, c.multiview_loss_weight) == (0.0, 0.0, 0.0)
    assert cfg.ccssl.lambda_target == 10.0  # the original is untouched
    settings = BenchSettings(weights=(("temporal", 1.0), ("pca", 2.0), ("multiview", 3.0)))
    weights = {arm: (lambda x: (x.lambda_target, x.temporal_loss_weight, x.pca_loss_weight, x.multiview_loss_weight))(
        arm_config(cfg, arm, settings).ccssl) for arm in ("control", "temporal", "pca", "multiview", "combined",
                                                          "ccssl")}
    assert weights == {"control": (0.0, 0.0, 0.0, 0.0), "temporal": (0.0, 1.0, 0.0, 0.0),
                       "pca": (0.0, 0.0, 2.0, 0.0), "multiview": (0.0, 0.0, 0.0, 3.0),
                       "combined": (0.0, 1.0, 2.0, 3.0), "ccssl": (10.0, 0.0, 0.0, 0.0)}
    # the SLEAP clip has one view: its combination leaves the multi-view term out, and the arm is refused
    sleap = replace(settings, project="sleap")
    assert arm_config(cfg, "combined", sleap).ccssl.multiview_loss_weight == 0.0
    assert default_arms(PROJECTS["sleap"]) == ("supervised", "control", "temporal", "pca", "combined", "ccssl")
    with pytest.raises(ValueError, match=r"\['multiview'\] do not apply to project 'sleap'"):
        check_arms(["multiview"], PROJECTS["sleap"])
    with pytest.raises(ValueError, match="unknown arm"):
        check_arms(["pseudo"], PROJECTS["mirror-mouse"])
    assert check_arms(["ccssl", "supervised"], PROJECTS["mirror-mouse"]) == ("supervised", "ccssl")
    # Lightning Pose's log_weight 5
    assert LIGHTNING_POSE_WEIGHT == pytest.approx(1 / (2 * math.e ** 5), rel=1e-4)


def test_an_arm_is_keyed_by_what_it_depends_on():
    base = BenchSettings()
    other = replace(base, weights=(("temporal", 1.0),), adapt_overrides=("ccssl.lambda_target=1",))
    assert base.arm_key("supervised") == other.arm_key("supervised")  # the adaptation does not touch it
    assert base.arm_key("pca")["terms"] == {"pca_loss_weight": 0.000457}  # the rescaled default
    assert base.arm_key("temporal") != replace(base, weights=other.weights).arm_key("temporal")
    assert base.arm_key("pca") == replace(base, weights=other.weights).arm_key("pca")
    assert base.arm_key("control") != other.arm_key("control")  # adapt overrides
    assert base.arm_key("combined")["terms"].keys() == {"temporal_loss_weight", "pca_loss_weight",
                                                        "multiview_loss_weight"}


def test_the_sleap_split_keeps_train_val_and_test_apart_in_time():
    train, val, video, test = sleap_frames(SleapSplit(val=(620, 720, 10)), 5, None, "clip.slp")
    assert (train[0], train[-1], len(train)) == (0, 570, 20)
    assert (val[0], val[-1], len(val)) == (620, 710, 10)  # inside the gap: no train, video or test frame
    assert (video[0], video[-1], len(video)) == (750, 1495, 150)
    assert (test[0], test[-1], len(test)) == (750, 1485, 50)
    assert set(test) <= set(video) and max(train) < min(val) and max(val) < min(video)
    assert len(sleap_frames(SleapSplit(), 5, 16, "clip.slp")[2]) == 16
    from animalpose.errors import DataError

    with pytest.raises(DataError, match=r"clip\.slp.*train must end before val"):
        sleap_frames(SleapSplit(train=(0, 650, 30), val=(620, 720, 10)), 5, None, "clip.slp")
    with pytest.raises(DataError, match=r"clip\.slp.*share frames \[750, 760, 770\].*val must end before"):
        sleap_frames(SleapSplit(val=(620, 800, 10)), 5, None, "clip.slp")


def test_the_labs_sleap_val_lies_between_the_unlabelled_and_test_frames():
    from animalpose.errors import DataError

    train, val, video, test = sleap_frames(SleapSplit(), 5, None, "clip.slp")  # the default
    assert (val[0], val[1], val[-1], len(val)) == (757, 787, 1477, 25)
    assert not set(val) & (set(video) | set(test)) and max(train) < min(val)
    # every val frame is 2 frames from the nearest unlabelled frame and 7 from the nearest test frame
    assert {min(abs(v - f) for f in video) for v in val} == {2}
    assert {min(abs(v - t) for t in test) for v in val} == {7}
    with pytest.raises(DataError, match=r"clip\.slp.*share frames \[760, 790, 820\]"):
        sleap_frames(SleapSplit(val=(760, 1500, 30)), 5, None, "clip.slp")  # 760 is an unlabelled frame
    with pytest.raises(DataError, match=r"share frames \[765, 795, 825\]"):
        sleap_frames(SleapSplit(val=(765, 1500, 30)), 4, None, "clip.slp")  # test frames that step 4 does not hit
    with pytest.raises(DataError, match="val must end before the video starts, or lie inside it"):
        sleap_frames(SleapSplit(val=(743, 1500, 30)), 5, None, "clip.slp")  # starts before the video


def test_sleap_test_frames_apart_from_the_unlabelled_video():
    """--sleap-video 750,1125 --sleap-test 1125,1500: the adaptation's video and the frames it is scored on do not
    overlap in time; the val between them; the default split's cache key does not change."""
    from animalpose.errors import DataError

    split = SleapSplit(val=(1127, 1500, 30), video=(750, 1125), test=(1125, 1500))
    _, val, video, test = sleap_frames(split, 5, None, "clip.slp")
    assert (video[0], video[-1], len(video)) == (750, 1120, 75)
    assert (test[0], test[-1], len(test)) == (1125, 1485, 25) and max(video) < min(test)
    assert not set(val) & (set(video) | set(test))
    with pytest.raises(DataError, match=r"clip\.slp.*train must end before both start"):
        sleap_frames(SleapSplit(val=(620, 720, 10), test=(500, 900)), 5, None, "clip.slp")
    assert "test" not in BenchSettings(project="sleap").key()["sleap_split"]  # the caches before the option
    assert BenchSettings(project="sleap", sleap_split=split).key()["sleap_split"]["test"] == [1125, 1500]


def _finite(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _labelled(path: Path) -> int:
    return sum(int((np.asarray(a["keypoints"]).reshape(-1, 3)[:, 2] > 0).sum())
               for a in json.loads(path.read_text())["annotations"])


def _check_rows(seed: dict, data: Path) -> None:
    """Every arm's test (``metrics``) and val rows: finite, over the labelled joints of test.json / val.json."""
    for arm, res in seed["arms"].items():
        for row, split in ((res["metrics"], "test"), (res["val"], "val")):
            assert all(_finite(row[m]) for m in METRICS), arm
            assert row["pixel_error"] > 0 and 0 <= row["pck@0.05"] <= row["pck@0.1"] <= 1
            assert row["joints"] == _labelled(data / f"{split}.json") > 0
        assert res["times"]["train"]["cpu_s"] > 0


def test_plumbing_mirror_mouse_tiny_run(tmp_path, monkeypatch):
    if not (REAL / "mirror-mouse").is_dir():
        pytest.skip(f"shared real data not found at {REAL}")
    monkeypatch.chdir(tmp_path)  # a relative --out (frame paths in the cache must still resolve)
    from animalpose.adapt.ccssl import CCSSLTrainer

    terms = {}  # arm folder -> the unsupervised terms its trainer got
    prepare_terms = CCSSLTrainer.set_multiview_loss

    def spy(self, term):
        terms[self.out_dir.parent.parent.name] = (self.clips is not None, self.pose_pca is not None, term is not None)
        prepare_terms(self, term)

    monkeypatch.setattr(CCSSLTrainer, "set_multiview_loss", spy)
    streams = []  # (source augmentation, target augmentation) of each round
    set_target = CCSSLTrainer.set_target

    def spy_target(self, dataset):
        streams.append((self.train_set.augment.config, dataset.augment.config))
        set_target(self, dataset)

    monkeypatch.setattr(CCSSLTrainer, "set_target", spy_target)
    settings = BenchSettings(train_range=("img01", "img04"), val_range=("img05", "img06"),
                             test_range=("img61", "img63"), frame_step=2, max_frames=6, overrides=TINY,
                             adapt_overrides=TINY_ADAPT)
    result = run_bench(Path("."), [0], settings, ["control", "multiview"])
    assert (result["train_instances"], result["val_instances"], result["test_instances"],
            result["target_frames"]) == (4, 2, 3, 6)
    assert result["arms"] == ["control", "multiview"]
    folder = tmp_path / "mirror-mouse"
    frames = json.loads((folder / "data" / "video_frames.json").read_text())
    assert [im["frame_index"] for im in frames["images"]] == [0, 2, 4, 6, 8, 10]
    seed = result["per_seed"][0]
    assert list(seed["arms"]) == ["control", "multiview"]
    # the supervised model is the start of both (trained once, its own cached arm), the multi-view term is on in
    # its arm only, with the config's 7 top/bottom pairs
    assert (folder / "seed_0" / "supervised" / "settings.json").is_file()
    mv = f"multiview_w{settings.term_weights['multiview']:g}"
    assert terms == {"control": (False, False, False), mv: (False, False, True)}
    assert [r["round"] for r in seed["arms"]["multiview"]["rounds"]] == [0, 1]
    _check_rows(seed, folder / "data")
    assert set(result["summary"]["minus_control"]) == {"multiview"}
    # the (pseudo-labelled) target stream is augmented like the labelled one: the config's scale ±15 % and rotation
    # ±20 degrees (σ = 0.15, 10), not the hourglass preset's defaults (σ = 0.25, 30; the bug of the first run)
    assert len(streams) == 4  # two arms, two rounds each
    for src, tgt in streams:
        assert tgt == src and (tgt.scale_sigma, tgt.rotation_sigma, tgt.flip_prob) == pytest.approx((0.15, 10.0, 0.0))
    assert json.loads((folder / "ccssl_real_bench.json").read_text())["seeds"] == [0]
    # a rerun reuses every finished arm and adds a new one without retraining the others
    again = run_bench(Path("."), [0], settings, ["supervised", "control", "multiview"])
    assert again["per_seed"][0]["arms"]["multiview"] == seed["arms"]["multiview"]
    assert again["cpu_seconds"] < result["cpu_seconds"]
    # an arm that finished with other settings is refused, not mixed into the table
    from animalpose.errors import DataError

    (folder / "seed_0" / "control" / "result.json").unlink()
    with pytest.raises(DataError, match="other settings"):
        run_bench(Path("."), [0], replace(settings, adapt_overrides=(*TINY_ADAPT, "ccssl.lr=0.01")), ["control"])


def test_plumbing_sleap_tiny_run(tmp_path):
    if not (REAL / "sleap-clip").is_dir():
        pytest.skip(f"shared real data not found at {REAL}")
    settings = BenchSettings(project="sleap", sleap_split=SleapSplit((0, 40, 10), (45, 55, 5), (60, 100), 10),
                             frame_step=2, overrides=TINY, adapt_overrides=TINY_ADAPT)
    result = run_bench(tmp_path, [0], settings, ["supervised", "temporal"])
    # 4 train frames, 4 test frames and 20 unlabelled frames, two flies in each
    # and 2 val frames (45, 50), in the gap
    assert (result["train_instances"], result["val_instances"], result["test_instances"],
            result["target_frames"]) == (8, 4, 8, 40)
    data = tmp_path / "sleap" / "data"
    target = json.loads((data / "video_frames.json").read_text())
    assert sorted({im["frame_index"] for im in target["images"]}) == list(range(60, 100, 2))
    assert {a["track_id"] for a in target["annotations"]} == {0, 1}
    assert all(a["num_keypoints"] == 0 and a["bbox"][2] > 0 for a in target["annotations"])  # labels dropped
    train = json.loads((data / "train.json").read_text())
    assert sorted({im["frame_index"] for im in train["images"]}) == [0, 10, 20, 30]
    seed = result["per_seed"][0]
    _check_rows(seed, data)
    assert result["split"].startswith("train: every 10-th frame of 0-39 (4 frames); val: every 5-th frame of 45-54")
    val = json.loads((data / "val.json").read_text())
    assert sorted({im["frame_index"] for im in val["images"]}) == [45, 50]
    assert seed["arms"]["temporal"]["epochs"] == 2
    # every frame of the clip is labelled: each round's pseudo-labels are scored against the dropped labels
    truth = result["pseudo_labels_vs_truth"]["temporal"]["0"]
    assert [r["round"] for r in truth] == list(range(len(seed["arms"]["temporal"]["rounds"])))
    assert len({r["joints"] for r in truth}) == 1 and 0 < truth[0]["joints"] <= 40 * 13  # 40 flies, 13 nodes
    assert all(r["all_mean_px"] >= 0 and 0 <= r["kept_share"] <= 1 for r in truth)
    # the bench's numbers agree with `animalpose evaluate` without flip test (same checkpoint, same test file, the
    # clip's own schema)
    from animalpose.engine.evaluate import evaluate

    ev = evaluate(tmp_path / "sleap" / "seed_0" / "supervised" / "last.ckpt", data / "test.json", device="cpu",
                  progress=False, allow_outside_root=True, flip=False)["metrics"]
    mine = seed["arms"]["supervised"]["metrics"]
    assert (ev["pixel_error_mean"], ev["pixel_error_median"], ev["pck_bbox@0.1"]) == pytest.approx(
        (mine["pixel_error"], mine["pixel_error_median"], mine["pck@0.1"]), rel=1e-5)


def test_command_rejects_bad_options_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from animalpose.cli import app

    runner = CliRunner()
    out = tmp_path / "never"
    for args, hint in ((["--seeds", "a"], "--seeds"), (["--frame-step", "-1"], "--frame-step"),
                       (["--project", "dlc"], "--project"), (["--arms", "control,pseudo"], "--arms"),
                       (["--project", "sleap", "--arms", "multiview"], "--arms"),
                       (["--pca-weight", "0"], "--pca-weight"),
                       (["--adapt", "ccssl.lambda_target"], "--adapt"), (["--set", "train.epochs"], "--set"),
                       (["--sleap-val", "757,1500,30"], "--sleap-val"),  # mirror-mouse has no SLEAP split
                       (["--project", "sleap", "--sleap-val", "757,1500"], "--sleap-val"),
                       (["--project", "sleap", "--mirror-val", "41,60"], "--mirror-val"),
                       (["--mirror-val", "41,61"], "--mirror-val"),  # img61 is a test frame
                       (["--mirror-val", "1,10"], "--mirror-val"), (["--mirror-val", "41"], "--mirror-val"),
                       (["--calibrate-on", "test"], "--calibrate-on"),
                       (["--sleap-test", "1125,1500"], "--sleap-test"),  # mirror-mouse
                       (["--project", "sleap", "--sleap-video", "750"], "--sleap-video"),
                       (["--held-out-unlabelled", "--val-unlabelled"], "--val-unlabelled")):
        result = runner.invoke(app, ["bench", "ccssl-real", "--out", str(out), *args])
        assert result.exit_code == 2 and hint in result.output, args
    assert not out.exists()


def test_command_passes_its_options(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import flows.benchmarks.ccssl_real as bench
    from animalpose.cli import app

    seen = {}

    def fake_run_bench(out, seeds, settings, arms, *, progress=False, screen=False):
        seen.update(out=out, seeds=seeds, settings=settings, arms=arms, screen=screen)
        raise RuntimeError("stop before any work")

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    result = CliRunner().invoke(app, ["bench", "ccssl-real", "--out", str(tmp_path), "--seeds", "1,2", "--set",
                                      "train.epochs=60", "--adapt", "train.epochs=9", "--adapt", "ccssl.gallery=0",
                                      "--project", "sleap", "--arms", "pca, control", "--temporal-weight", "0.1",
                                      "--sleap-val", "620,720,10"])
    assert isinstance(result.exception, RuntimeError)
    s = seen["settings"]
    assert seen["seeds"] == [1, 2] and s.overrides == ("train.epochs=60",) and s.project == "sleap"
    assert s.adapt_overrides == ("train.epochs=9", "ccssl.gallery=0") and seen["arms"] == ("control", "pca")
    assert s.term_weights == {"temporal": 0.1, "pca": 0.000457, "multiview": 0.000457}
    assert s.step == 5  # the SLEAP clip's default frame step
    assert s.sleap_split.val == (620, 720, 10) and s.sleap_split.video == (750, 1500) and s.sleap_split.test is None
    assert s.key()["sleap_split"]["val"] == [620, 720, 10]  # a new val is a new cache key
    assert s.calibrate_on == "val"
    result = CliRunner().invoke(app, ["bench", "ccssl-real", "--out", str(tmp_path), "--mirror-val", "41,60",
                                      "--calibrate-on", "half"])
    assert isinstance(result.exception, RuntimeError)
    s = seen["settings"]
    assert (s.train_range, s.val_range, s.test_range) == (("img01", "img40"), ("img41", "img60"), ("img61", "img90"))
    assert s.calibrate_on == "half"
    assert s.key()["val_range"] == ["img41", "img60"]  # likewise for mirror-mouse
    assert not s.held_out_unlabelled  # off unless asked for
    result = CliRunner().invoke(app, ["bench", "ccssl-real", "--out", str(tmp_path), "--held-out-unlabelled"])
    assert isinstance(result.exception, RuntimeError) and seen["settings"].held_out_unlabelled
    result = CliRunner().invoke(app, ["bench", "ccssl-real", "--out", str(tmp_path), "--project", "sleap",
                                      "--sleap-val", "1127,1500,30", "--sleap-video", "750,1125", "--sleap-test",
                                      "1125,1500"])
    assert isinstance(result.exception, RuntimeError)
    s = seen["settings"].sleap_split
    assert (s.val, s.video, s.test) == ((1127, 1500, 30), (750, 1125), (1125, 1500))


def test_mirror_mouse_labelled_subsets_must_be_disjoint(tmp_path):
    if not (REAL / "mirror-mouse").is_dir():
        pytest.skip(f"shared real data not found at {REAL}")
    from animalpose.errors import DataError
    from flows.benchmarks.ccssl_real_data import prepare_mirror

    with pytest.raises(DataError, match=r"CollectedData\.csv.*train .* and val .* share images \['img50'\]"):
        prepare_mirror(REAL / "mirror-mouse", tmp_path, ("img01", "img50"), ("img50", "img60"), ("img61", "img90"),
                       6, 2)
    assert not (tmp_path / "data").exists()  # refused before anything is written
    # the defaults: img01-img50 train, img51-img60 val, img61-img90 test
    s = BenchSettings()
    assert (s.train_range, s.val_range, s.test_range) == (("img01", "img50"), ("img51", "img60"), ("img61", "img90"))


def test_arm_folders_name_their_weights():
    s = BenchSettings(weights=(("temporal", 0.001),))
    assert s.term_weights == {"temporal": 0.001, "pca": 0.000457, "multiview": 0.000457}
    assert [s.arm_folder(a) for a in ("supervised", "control", "temporal", "pca", "combined", "ccssl")] == [
        "supervised", "control", "temporal_w0.001", "pca_w0.000457", "combined_w0.001_0.000457_0.000457", "ccssl"]
    assert replace(s, project="sleap").arm_folder("combined") == "combined_w0.001_0.000457"


def test_screen_scores_val_alone_and_a_full_run_reuses_its_training(tmp_path, monkeypatch):
    if not (REAL / "sleap-clip").is_dir():
        pytest.skip(f"shared real data not found at {REAL}")
    import flows.benchmarks.ccssl_real as bench

    scored = []  # (number of records) of every evaluation
    evaluate = bench.evaluate_checkpoint
    monkeypatch.setattr(bench, "evaluate_checkpoint", lambda ckpt, recs: scored.append(len(recs)) or evaluate(ckpt,
                                                                                                               recs))
    settings = BenchSettings(project="sleap", sleap_split=SleapSplit((0, 40, 10), (45, 55, 5), (60, 100), 10),
                             frame_step=2, overrides=TINY, adapt_overrides=TINY_ADAPT,
                             weights=(("temporal", 0.01),))
    screen = run_bench(tmp_path, [0], settings, ["temporal"], screen=True)
    n_val, n_test = screen["val_instances"], screen["test_instances"]
    assert (n_val, n_test) == (4, 8) and scored == [n_val, n_val]  # two rounds, val alone
    folder = tmp_path / "sleap" / "seed_0" / "temporal_w0.01"
    arm = screen["per_seed"][0]["arms"]["temporal"]
    assert "metrics" not in arm and all("pixel_error" not in r for r in arm["rounds"])  # no test figure
    assert _finite(arm["val"]["pixel_error"]) and arm["terms"] == {"temporal_loss_weight": 0.01}
    assert (folder / "screen.json").is_file() and not (folder / "result.json").exists()
    assert not (tmp_path / "sleap" / "seed_0" / "supervised" / "result.json").exists()  # trained, not scored
    assert (tmp_path / "sleap" / "ccssl_real_screen.json").is_file()
    assert "| 0 | temporal | temporal 0.01 |" in bench.format_screen(screen)
    # the full run takes the trained rounds as they are: the same val figures, and test beside them
    scored.clear()
    full = run_bench(tmp_path, [0], settings, ["temporal"])
    arm_full = full["per_seed"][0]["arms"]["temporal"]
    assert arm_full["val"] == arm["val"] and sorted(scored) == [n_val, n_val, n_test, n_test]
    assert arm_full["times"]["train"]["cpu_s"] < 0.5 * arm["times"]["train"]["cpu_s"]
    assert full["summary"]["val_rows"]["temporal"]["pixel_error"]["mean"] == pytest.approx(arm["val"]["pixel_error"])


def test_an_edited_template_is_another_setting(tmp_path, monkeypatch):
    """An arm's key holds the digests of its configs' contents: editing the adapt template changes the adapted arms'
    keys (a cached arm of the old template is refused, not reused) and leaves the supervised arm's; editing the
    experiment (the base) changes both; the same files in another folder keep their digests."""
    import shutil

    import flows.benchmarks.ccssl_real as bench

    def project(root):
        (root / "experiments").mkdir(parents=True)
        (root / "adapt").mkdir()
        (root / "experiments" / "e.yaml").write_text("train:\n  lr: 0.002\n")
        (root / "adapt" / "a.yaml").write_text("base: ../experiments/e.yaml\nccssl:\n  lambda_target: 1.0\n")
        return replace(PROJECTS["mirror-mouse"], experiment=root / "experiments" / "e.yaml",
                       adapt=root / "adapt" / "a.yaml")

    monkeypatch.setattr(bench, "default_weight", lambda p: 0.5)  # the toy experiment is not a full config
    spec = project(tmp_path / "one")
    monkeypatch.setitem(PROJECTS, "mirror-mouse", spec)

    def keys():
        bench._digest.cache_clear()
        s = BenchSettings()
        return s.arm_key("supervised"), s.arm_key("ccssl")

    sup, ada = keys()
    spec.adapt.write_text("base: ../experiments/e.yaml\nccssl:\n  lambda_target: 2.0\n")
    sup2, ada2 = keys()
    assert sup2 == sup and ada2 != ada and ada2["adapt_sha"] != ada["adapt_sha"]
    spec.experiment.write_text("train:\n  lr: 0.001\n")
    sup3, ada3 = keys()
    assert sup3 != sup2 and ada3 != ada2
    moved = tmp_path / "two"
    shutil.copytree(tmp_path / "one", moved)
    other = replace(spec, experiment=moved / "experiments" / "e.yaml", adapt=moved / "adapt" / "a.yaml")
    monkeypatch.setitem(PROJECTS, "mirror-mouse", other)
    sup4, ada4 = keys()
    assert (sup4["experiment_sha"], ada4["adapt_sha"]) == (sup3["experiment_sha"], ada3["adapt_sha"])


def test_the_screen_table_shows_each_rounds_val_labels():
    """A CC-SSL arm's rounds carry their val frames' pseudo-label error (the round's label report); the screen
    table shows it beside the model's val error per round, and '-' for an arm without pseudo-labels."""
    import flows.benchmarks.ccssl_real as bench

    val = {"pixel_error": 7.5, "pixel_error_median": 5.25, "pck@0.05": 0.9}
    rounds = [{"val": {"pixel_error": 8.0}, "label_px": 9.814}, {"val": {"pixel_error": 7.5}, "label_px": 9.0}]
    result = {"per_seed": [{"seed": 1, "arms": {"ccssl": {"val": val, "rounds": rounds},
                                                 "control": {"val": val, "rounds": [{"val": {"pixel_error": 7.9}}]}}}]}
    lines = bench.format_screen(result).splitlines()
    assert lines[2] == "| 1 | ccssl | - | 7.50 | 5.25 | 0.900 | 8.00 / 7.50 | 9.81 / 9.00 |"
    assert lines[3] == "| 1 | control | - | 7.50 | 5.25 | 0.900 | 7.90 | - |"


def test_calibrating_on_half_of_val_is_a_setting_of_the_adapted_arms_only():
    base = BenchSettings()
    half = replace(base, calibrate_on="half")
    assert "calibrate_on" not in base.key()  # the caches written before the option stay valid
    assert half.key()["calibrate_on"] == "half"
    assert base.arm_key("supervised") == half.arm_key("supervised")  # one supervised model for both
    assert base.arm_key("ccssl") != half.arm_key("ccssl") and base.arm_key("control") != half.arm_key("control")


def test_half_of_val_calibrates_and_the_other_half_is_scored(tmp_path):
    """Mirror-mouse frames img05-img08 as val: img05 and img07 calibrate (their own COCO file, which the adapted
    arms' config names), img06 and img08 are scored; the supervised model trained for the whole-val scoring is
    reused, its halved-val figures in their own file; a halved SLEAP val keeps both flies of a frame together."""
    if not (REAL / "mirror-mouse").is_dir() or not (REAL / "sleap-clip").is_dir():
        pytest.skip(f"shared real data not found at {REAL}")
    import flows.benchmarks.ccssl_real as bench

    settings = BenchSettings(train_range=("img01", "img04"), val_range=("img05", "img08"),
                             test_range=("img61", "img62"), frame_step=2, max_frames=4, overrides=TINY,
                             adapt_overrides=(*TINY_ADAPT, "ccssl.joint_gate=0.2"))
    whole = run_bench(tmp_path, [0], settings, ["supervised"], screen=True)
    trained = tmp_path / "mirror-mouse" / "seed_0" / "supervised" / "last.ckpt"
    stamp = (trained.stat().st_mtime_ns, trained.read_bytes())
    half_settings = replace(settings, calibrate_on="half")
    halved = run_bench(tmp_path, [0], half_settings, ["supervised"], screen=True)
    assert (whole["val_instances"], halved["val_instances"], halved["calibration_instances"]) == (4, 2, 2)
    assert halved["split"].endswith("val halved: its frames img05.png, img07.png calibrate the rules, the others "
                                    "are scored")
    folder = tmp_path / "mirror-mouse" / "seed_0" / "supervised"
    assert (folder / "screen.json").is_file() and (folder / "screen_half.json").is_file()
    assert (trained.stat().st_mtime_ns, trained.read_bytes()) == stamp  # scored again, not retrained
    prep = bench.prepare(half_settings, tmp_path / "mirror-mouse")
    assert sorted(Path(r.image).name for r in prep.val_records) == ["img06.png", "img08.png"]
    calib = json.loads(prep.calibration.read_text())
    assert sorted(Path(im["file_name"]).name for im in calib["images"]) == ["img05.png", "img07.png"]
    assert len(calib["annotations"]) == 2 and calib["categories"]
    cfg = bench.adapt_config(half_settings, prep, 0, folder / "last.ckpt")
    assert [str(p) for p in cfg.ccssl.calibration_data] == [str(prep.calibration)]
    assert [str(p) for p in bench.adapt_config(settings, bench.prepare(settings, tmp_path / "mirror-mouse"), 0,
                                               folder / "last.ckpt").ccssl.calibration_data] == [str(prep.val)]
    sleap = bench.prepare(BenchSettings(project="sleap", sleap_split=SleapSplit((0, 40, 10), (45, 60, 5), (60, 100),
                                                                                10), frame_step=2,
                                        calibrate_on="half"), tmp_path / "sleap")
    calib = json.loads(sleap.calibration.read_text())
    frames = {im["id"]: im["frame_index"] for im in calib["images"]}
    assert sorted(frames.values()) == [45, 55] and len(calib["annotations"]) == 4  # two flies a frame
    assert sorted({r.frame_index for r in sleap.val_records}) == [50] and len(sleap.val_records) == 2


def test_halving_a_val_of_one_frame_is_refused_naming_the_file(tmp_path):
    from animalpose.errors import DataError
    from flows.benchmarks.ccssl_real_data import Prepared, split_calibration

    val = tmp_path / "val.json"
    val.write_text(json.dumps({"images": [{"id": 1, "file_name": "a/img05.png"}], "annotations": [],
                               "categories": []}))
    prep = Prepared(tmp_path / "train.json", val, tmp_path / "test.json", tmp_path / "frames.json", 1, 1, 1, 1, "")
    with pytest.raises(DataError, match=r"val\.json.*images.*1 val frame\(s\).*at least 2"):
        split_calibration(prep)
    assert not (tmp_path / "val_calibration.json").exists()


def test_held_out_frames_are_a_setting_of_the_adapted_arms_only():
    base = BenchSettings()
    held = replace(base, held_out_unlabelled=True)
    assert "held_out_unlabelled" not in base.key()  # the caches written before the option stay valid
    assert held.key()["held_out_unlabelled"] is True
    # one supervised model and one control (lambda 0: it never trains on the target) for both
    assert base.arm_key("supervised") == held.arm_key("supervised")
    assert base.arm_key("control") == held.arm_key("control")
    assert base.arm_key("ccssl") != held.arm_key("ccssl") and base.arm_key("pca") != held.arm_key("pca")
    val_only = replace(base, val_unlabelled=True)
    assert val_only.key()["val_unlabelled"] is True and "held_out_unlabelled" not in val_only.key()
    assert val_only.arm_key("control") == base.arm_key("control")
    assert val_only.arm_key("ccssl") not in (base.arm_key("ccssl"), held.arm_key("ccssl"))


def test_held_out_frames_join_the_target_without_their_labels(tmp_path):
    """Mirror-mouse: the val and test images, labels dropped, are a second target file that the adapted arms'
    config names after the video's frames; the SLEAP clip: its test flies are already video frames, so only the val
    flies are added, and the target's truth (for the pseudo-labels' scoring) follows in the same order."""
    if not (REAL / "mirror-mouse").is_dir() or not (REAL / "sleap-clip").is_dir():
        pytest.skip(f"shared real data not found at {REAL}")
    import flows.benchmarks.ccssl_real as bench

    settings = BenchSettings(train_range=("img01", "img04"), val_range=("img05", "img08"),
                             test_range=("img61", "img63"), frame_step=2, max_frames=4, held_out_unlabelled=True)
    prep = bench.prepare(settings, tmp_path / "mirror-mouse")
    doc = json.loads(prep.held_out.read_text())
    assert sorted(Path(im["file_name"]).name for im in doc["images"]) == [
        "img05.png", "img06.png", "img07.png", "img08.png", "img61.png", "img62.png", "img63.png"]
    assert prep.num_held_out == 7 and all(a["num_keypoints"] == 0 for a in doc["annotations"])
    assert all(v == 0 for a in doc["annotations"] for v in a["keypoints"])
    assert prep.val_records and all(r.keypoints[:, 2].any() for r in prep.val_records)  # val is still scored
    (tmp_path / "last.ckpt").write_bytes(b"")  # the config checks that the file exists, nothing more
    cfg = bench.adapt_config(settings, prep, 0, tmp_path / "last.ckpt")
    assert [str(p) for p in cfg.data.target] == [str(prep.frames), str(prep.held_out)]
    assert prep.target_truth == []  # the mirror-mouse video has no labels
    assert "the val and test frames' images (labels dropped) join the unlabelled target" in prep.split
    plain = bench.prepare(replace(settings, held_out_unlabelled=False), tmp_path / "mirror-mouse")
    assert plain.held_out is None and plain.targets == [plain.frames]
    # the val frames alone: the test frames stay unseen
    val_only = bench.prepare(replace(settings, held_out_unlabelled=False, val_unlabelled=True),
                             tmp_path / "mirror-mouse")
    doc = json.loads(val_only.held_out.read_text())
    assert sorted(Path(im["file_name"]).name for im in doc["images"]) == [
        "img05.png", "img06.png", "img07.png", "img08.png"]
    assert val_only.split.endswith("the val frames' images (labels dropped) join the unlabelled target")

    sleap = bench.prepare(BenchSettings(project="sleap", sleap_split=SleapSplit((0, 40, 10), (45, 60, 5), (60, 100),
                                                                                10), frame_step=2,
                                        held_out_unlabelled=True), tmp_path / "sleap")
    added = json.loads(sleap.held_out.read_text())
    assert sorted({im["frame_index"] for im in added["images"]}) == [45, 50, 55]  # test frames 60, 70, ... are in
    assert sleap.num_held_out == 6 and len(sleap.target_truth) == sleap.num_frames + 6
    assert [r.frame_index for r in sleap.target_truth[-6:]] == [45, 45, 50, 50, 55, 55]
    assert all(r.keypoints[:, 2].any() for r in sleap.target_truth[-6:])  # the truth keeps its labels


def test_the_control_is_the_same_with_held_out_frames_and_ccssl_labels_them(tmp_path):
    """What lets the two settings share one control: at lambda 0 with no term the target never reaches training, so
    the control trained beside held-out frames is the control trained without them, to the last digit; the CC-SSL
    arm pseudo-labels the held-out frames beside the video's (its candidates: every target instance's joints)."""
    if not (REAL / "mirror-mouse").is_dir():
        pytest.skip(f"shared real data not found at {REAL}")
    settings = BenchSettings(train_range=("img01", "img04"), val_range=("img05", "img06"),
                             test_range=("img61", "img63"), frame_step=2, max_frames=6, overrides=TINY,
                             adapt_overrides=TINY_ADAPT)
    plain = run_bench(tmp_path / "plain", [0], settings, ["control"])
    held = run_bench(tmp_path / "held", [0], replace(settings, held_out_unlabelled=True), ["control", "ccssl"])
    assert held["target_frames"] == 6 + 2 + 3  # the video's frames, val and test
    ctrl = [r["per_seed"][0]["arms"]["control"] for r in (plain, held)]
    assert ctrl[0]["metrics"] == ctrl[1]["metrics"] and ctrl[0]["val"] == ctrl[1]["val"]
    ccssl = held["per_seed"][0]["arms"]["ccssl"]
    assert {r["candidates"] for r in ccssl["rounds"]} == {11 * 17}  # 11 target instances, 17 joints each


def test_terms_from_scratch_is_a_setting_of_the_term_arms_only():
    base = BenchSettings()
    scratch = replace(base, terms_from_scratch=True)
    assert "terms_from_scratch" not in base.key() and scratch.key()["terms_from_scratch"] is True
    for arm in ("supervised", "control", "ccssl"):  # they start from the supervised model either way: shared
        assert base.arm_key(arm) == scratch.arm_key(arm) and base.arm_folder(arm) == scratch.arm_folder(arm)
    assert base.arm_key("multiview") != scratch.arm_key("multiview")
    assert scratch.arm_folder("pca") == "pca_scratch_w0.000457" and base.arm_folder("pca") == "pca_w0.000457"


def test_a_term_arm_from_scratch_trains_the_supervised_schedule_on_a_fresh_network(tmp_path, monkeypatch):
    """Lightning Pose's semi-supervised training: no source checkpoint, the supervised arm's epochs (one round),
    rate and milestones, the term on from the first step (its ramp as --adapt sets it); the supervised arm is its
    control and is shared with the fine-tuning arms."""
    if not (REAL / "mirror-mouse").is_dir():
        pytest.skip(f"shared real data not found at {REAL}")
    import flows.benchmarks.ccssl_real as bench

    seen = {}
    real_run = bench.run_ccssl

    def spy(cfg, out, **kw):
        seen[out.parent.name] = cfg
        return real_run(cfg, out, **kw)

    monkeypatch.setattr(bench, "run_ccssl", spy)
    tiny = ("data.input_size=[64,64]", "data.heatmap_size=[16,16]", "model.channels=16", "train.epochs=3",
            "train.milestones=[1]", "train.batch_size=4", "train.lr=0.001")
    settings = BenchSettings(train_range=("img01", "img04"), val_range=("img05", "img06"),
                             test_range=("img61", "img63"), frame_step=2, max_frames=6, overrides=tiny,
                             adapt_overrides=(*TINY_ADAPT, "ccssl.term_anneal_epochs=2"), terms_from_scratch=True)
    result = run_bench(tmp_path, [0], settings, ["supervised", "multiview"])
    cfg = seen["multiview_scratch_w0.000457"]
    assert cfg.ccssl.source_checkpoint is None and cfg.ccssl.source_epochs == 0 and cfg.ccssl.lr is None
    assert (cfg.train.epochs, cfg.train.milestones, cfg.train.lr) == (3, [1], 0.001)  # the supervised schedule
    assert cfg.ccssl.multiview_loss_weight == pytest.approx(0.000457) and cfg.ccssl.lambda_target == 0
    assert cfg.ccssl.term_anneal_epochs == 2
    arm = result["per_seed"][0]["arms"]["multiview"]
    assert arm["epochs"] == 3 and [r["epochs"] for r in arm["rounds"]] == [[0, 3]]  # one round over all of it
    assert result["arm_folders"]["multiview"] == "multiview_scratch_w0.000457"
    assert not (tmp_path / "mirror-mouse" / "seed_0" / "multiview_scratch_w0.000457" / "run" / "source").exists()


def test_the_scratch_path_without_terms_is_the_supervised_model_to_the_last_digit(tmp_path):
    """What makes the supervised arm the scratch term arms' equal-budget control: the same run from scratch with
    the terms off (lambda 0) trains the same weights as the engine's supervised training, bit for bit, so the terms
    are the only difference."""
    if not (REAL / "mirror-mouse").is_dir():
        pytest.skip(f"shared real data not found at {REAL}")
    import torch

    from animalpose.adapt.ccssl import run_ccssl
    from animalpose.engine.checkpoint import load_checkpoint
    from animalpose.engine.train import train
    from flows.benchmarks.ccssl_real import adapt_config, from_scratch, prepare, supervised_config

    tiny = ("data.input_size=[64,64]", "data.heatmap_size=[16,16]", "model.channels=16", "train.epochs=2",
            "train.milestones=[1]", "train.batch_size=4", "train.lr=0.001", "tracking.enabled=false")
    settings = BenchSettings(train_range=("img01", "img08"), val_range=("img09", "img10"),
                             test_range=("img61", "img63"), frame_step=2, max_frames=6, overrides=tiny,
                             terms_from_scratch=True)
    out = tmp_path / "mirror-mouse"
    prep = prepare(settings, out)
    sup = supervised_config(settings, prep, 0)
    train(sup, out_dir=out / "supervised", progress=False)
    cfg = from_scratch(control_config(adapt_config(settings, prep, 0, out / "supervised" / "last.ckpt")), sup)
    run = run_ccssl(cfg, out / "scratch", progress=False)
    a = load_checkpoint(out / "supervised" / "last.ckpt")["model"]
    b = load_checkpoint(run.out_dir / "round_0.ckpt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], torch.zeros_like(a[k])) for k in a)
