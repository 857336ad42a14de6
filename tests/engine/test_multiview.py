"""A multi-view model mends its predictions with the views' subspace (animalpose.engine.multiview): by hand, through
the checkpoint, in evaluate and in predict."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from animalpose.config import parse_config
from animalpose.engine.checkpoint import load_checkpoint
from animalpose.engine.evaluate import evaluate
from animalpose.engine.multiview import MultiviewCorrection, fit_correction, look_alike
from animalpose.engine.predict import Predictor
from animalpose.errors import ConfigError
from animalpose.keypoints import KeypointSchema

OFF = np.array([0.0, 100.0])  # view 1 sees every part this much lower
SCHEMA = KeypointSchema("rig", ("a_top", "b_top", "c_top", "a_bot", "b_bot", "c_bot", "tail"), ())
VIEWS = [["a_top", "a_bot"], ["b_top", "b_bot"], ["c_top", "c_bot"]]


def _labels() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    kps = []
    for _ in range(12):
        kp = np.zeros((7, 3))
        kp[:3, :2] = rng.uniform(0, 80, (3, 2))
        kp[3:6, :2] = kp[:3, :2] + OFF
        kp[:, 2] = 2
        kps.append(kp)
    return kps


def test_the_correction_reassigns_and_projects_by_hand():
    corr = fit_correction(VIEWS, [["a_bot", "b_top", "c_top"]], 1, _labels(), SCHEMA, components=2)
    assert corr.groups == ((0, 1, 2),) and corr.reference == (1,)
    top = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 30.0]])
    pred = np.zeros((1, 7, 3))
    pred[0, 3:6, :2] = top + OFF  # the bottom view right
    pred[0, :3, :2] = top[[1, 0, 2]] + [[2.0, 0.0], [0.0, 3.0], [0.0, 0.0]]  # a and b swapped on top, and off
    pred[0, :, 2] = np.arange(7) / 10  # likelihoods
    pred[0, 6] = [7.0, 8.0, 0.6]
    out = corr.apply(pred)
    # the top view's a and b exchange (with their likelihoods), then lie exactly above the bottom view's points
    np.testing.assert_allclose(out[0, :3, :2], top, atol=1e-3)
    assert out[0, :3, 2].tolist() == pytest.approx([0.1, 0.0, 0.2])
    np.testing.assert_array_equal(out[0, 3:], pred[0, 3:])  # the reference view and the tail as predicted
    assert pred[0, 0, 0] == 52.0  # the input is left alone
    # the checkpoint's plain copy mends the same way
    again = MultiviewCorrection.from_dict(corr.to_dict())
    np.testing.assert_allclose(again.apply(pred), out, atol=1e-6)
    assert corr.apply(pred[:0]).shape == (0, 7, 3)


def _swapped_on_top() -> tuple[np.ndarray, np.ndarray]:
    """(pred, truth) of two frames: in frame 0 the top view's a and b predicted at each other's label, c far from
    both; the bottom view right."""
    truth = np.zeros((2, 7, 3))
    truth[:, :3, :2] = [[0, 0], [10, 0], [100, 100]]
    truth[:, 3:6, :2] = truth[:, :3, :2] + OFF
    truth[:, :6, 2] = 2
    pred = truth.copy()
    pred[0, [0, 1], :2] = truth[0, [1, 0], :2]
    return pred, truth


def test_look_alike_names_the_swapped_parts_and_the_view_to_keep_by_hand():
    """Two frames; in frame 0 the top view's a and b are predicted at each other's label (both ways: a rate of
    (1 + 1) / (2 · 2) = 0.5), c is far from both; the bottom view is right. The group a, b is 10 px off in each of
    frame 0's top points, so 5 px on average in the top view and 0 in the bottom: the reference to name is 1."""
    pred, truth = _swapped_on_top()
    got = look_alike(pred, truth, VIEWS, SCHEMA)
    assert got == {"min_rate": 0.15, "frames": 2, "pairs": {"a_top / b_top": 0.5},
                   "groups": [{"parts": ["a_top", "b_top"], "view_error_px": [5.0, 0.0], "reference": 1}]}
    assert look_alike(pred, truth, VIEWS, SCHEMA, min_rate=0.6)["groups"] == []


def test_settings_that_cannot_work_are_named():
    kps = _labels()
    with pytest.raises(ConfigError, match=r"multiview\.views.*\['nose'\]"):
        fit_correction([["nose", "a_bot"]], [], 1, kps, SCHEMA)
    with pytest.raises(ConfigError, match=r"multiview\.correct.*\['tail'\]"):
        fit_correction(VIEWS, [["a_top", "tail"]], 1, kps, SCHEMA)
    with pytest.raises(ConfigError, match=r"multiview\.correct.*>= 2 body parts"):
        fit_correction(VIEWS, [["a_top", "a_bot"]], 1, kps, SCHEMA)
    with pytest.raises(ConfigError, match=r"multiview\.reference.*0\.\.1"):
        fit_correction(VIEWS, [["a_top", "b_top"]], 2, kps, SCHEMA)
    with pytest.raises(ConfigError, match=r"multiview\.views.*data\.train.*samples"):
        fit_correction(VIEWS, [["a_top", "b_top"]], 1, kps[:1], SCHEMA)
    with pytest.raises(ConfigError, match=r"multiview\.correct.*multiview\.views"):
        parse_config({"multiview": {"correct": [["a_top", "b_top"]]}})


COCO_VIEWS = [["left_eye", "right_eye"], ["left_ear", "right_ear"], ["left_shoulder", "right_shoulder"]]


@pytest.fixture
def multiview_model(dots, tmp_path_factory, tiny_config):
    """A tiny model of the dots trained with the dots' left and right eyes, ears and shoulders as two views."""
    from animalpose.engine.train import train

    cfg = tiny_config(dots["train"], dots["val"], train={"epochs": 1},
                      multiview={"views": COCO_VIEWS, "components": 1,
                                 "correct": [["left_eye", "left_ear", "left_shoulder"]], "reference": 0})
    return train(cfg, out_dir=tmp_path_factory.mktemp("multiview"), progress=False).last_checkpoint


def test_a_multiview_model_carries_its_correction_and_applies_it(multiview_model, dots, tmp_path):
    corr = MultiviewCorrection.from_checkpoint(load_checkpoint(multiview_model))
    assert corr is not None and corr.reference == (0,) and corr.groups == ((0, 1, 2),)
    assert np.asarray(corr.prior.views).tolist() == [[1, 2], [3, 4], [5, 6]]
    frame = cv2.cvtColor(cv2.imread(str(dots["val"].parent.parent / "images" / "val_0000.png")),
                         cv2.COLOR_BGR2RGB)
    raw = Predictor(multiview_model, device="cpu", multiview=False)([(frame, None)])
    mended = Predictor(multiview_model, device="cpu")([(frame, None)])
    np.testing.assert_allclose(mended, corr.apply(raw), atol=1e-4)
    assert np.abs(mended[..., :2] - raw[..., :2]).max() > 0.5  # the right-side points moved
    # predict's result names the groups it mended (none with --no-multiview)
    from animalpose.engine.predict import predict

    image = dots["val"].parent.parent / "images" / "val_0000.png"
    for on, groups in ((True, [["left_eye", "left_ear", "left_shoulder"]]), (False, [])):
        done = predict(multiview_model, [image], tmp_path / str(on), device="cpu", progress=False, multiview=on)
        assert done["multiview_groups"] == groups
    on, off = (evaluate(multiview_model, dots["val"], progress=False, multiview=m) for m in (True, False))
    assert on["multiview"] and not off["multiview"]
    # what the raw output swaps, the same whether or not the predictions are then mended
    assert on["look_alike"] == off["look_alike"] and on["look_alike"]["frames"] == on["instances"]
    assert set(on["look_alike"]) == {"min_rate", "frames", "pairs", "groups"}
    # the CLI names each group and the settings that would mend it
    from typer.testing import CliRunner

    from animalpose.cli import app

    shown = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(multiview_model), "--data", str(dots["val"]),
                                     "--no-tracking"])
    assert shown.exit_code == 0, shown.output
    lines = [line for line in shown.stdout.splitlines() if line.startswith("look-alike parts")]
    assert len(lines) == len(on["look_alike"]["groups"])
    for line, group in zip(lines, on["look_alike"]["groups"], strict=True):
        assert f"multiview.correct: [[{', '.join(group['parts'])}]], multiview.reference: {group['reference']}" in line
    assert on["metrics"]["pixel_error_mean"] != off["metrics"]["pixel_error_mean"]
    assert on["metrics"]["pck_crop@0.05"] == off["metrics"]["pck_crop@0.05"]  # the heatmaps' score is unchanged


def test_the_groups_look_alike_finds_make_the_correction_by_hand():
    """The hand case above: a and b swapped on top in frame 0, the bottom view right. The found group mends a
    prediction as the named group with reference 1 does; nothing found, nothing to mend."""
    from animalpose.engine.multiview import found_correction

    pred, truth = _swapped_on_top()
    named = fit_correction(VIEWS, [["a_top", "b_top"]], 1, _labels(), SCHEMA, components=2)
    corr = found_correction(named.prior, look_alike(pred, truth, VIEWS, SCHEMA), VIEWS)
    assert corr.groups == ((0, 1),) and corr.reference == (1,) and corr.group_names(SCHEMA) == [["a_top", "b_top"]]
    np.testing.assert_allclose(corr.apply(pred), named.apply(pred))
    assert found_correction(named.prior, look_alike(pred, truth, VIEWS, SCHEMA, min_rate=0.6), VIEWS) is None
    # a group none of whose points is labelled in any view has no view to keep: it is left out
    unlabelled = {"groups": [{"parts": ["a_top", "b_top"], "view_error_px": [None, None], "reference": None}]}
    assert found_correction(named.prior, unlabelled, VIEWS) is None


def test_auto_settings_are_checked():
    assert parse_config({"multiview": {"views": VIEWS, "correct": "auto"}}).multiview.confusion == 0.1
    with pytest.raises(ConfigError, match=r"multiview\.correct.*multiview\.views"):
        parse_config({"multiview": {"correct": "auto"}})
    with pytest.raises(ConfigError, match=r"multiview\.correct"):
        parse_config({"multiview": {"views": VIEWS, "correct": "named"}})
    with pytest.raises(ConfigError, match=r"multiview\.confusion"):
        parse_config({"multiview": {"views": VIEWS, "correct": "auto", "confusion": 0}})


def test_auto_needs_val_frames_and_says_so_before_training(dots, tmp_path, tiny_config):
    from animalpose.engine.train import train

    cfg = tiny_config(dots["train"], None, train={"epochs": 1, "select_on": "last"},
                      multiview={"views": COCO_VIEWS, "components": 1, "correct": "auto"})
    with pytest.raises(ConfigError, match=r"multiview\.correct.*data\.val"):
        train(cfg, out_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "last.ckpt").exists()


def test_auto_finds_the_groups_of_each_checkpoint_on_val_and_mends_with_them(dots, tmp_path, tiny_config, capsys):
    """Two epochs: the model places the dots badly, so at a low rate it swaps some pairs on val. Each checkpoint
    records what its own raw predictions on val swap (the same look_alike evaluate reports for it, unmended and
    without flip as validation ran), mends exactly those groups, and says so on the console."""
    from animalpose.adapt.view_assignment import group_rows
    from animalpose.engine.train import train

    cfg = tiny_config(dots["train"], dots["val"], train={"epochs": 2, "flip_test": False, "select_on": "val"},
                      multiview={"views": COCO_VIEWS, "components": 1, "correct": "auto", "confusion": 0.02})
    result = train(cfg, out_dir=tmp_path, progress=True)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for path in {result.best_checkpoint, result.last_checkpoint}:
        extra = load_checkpoint(path)["extra"]
        found = extra["multiview_found"]
        raw = evaluate(path, dots["val"], flip=False, progress=False, multiview=False)
        theirs = raw["look_alike"]
        assert {k: found[k] for k in ("min_rate", "frames", "pairs")} == {k: theirs[k] for k in ("min_rate", "frames",
                                                                                                  "pairs")}
        assert [(g["parts"], g["reference"]) for g in found["groups"]] == [(g["parts"], g["reference"])
                                                                            for g in theirs["groups"]]
        for ours, other in zip(found["groups"], theirs["groups"], strict=True):
            assert ours["view_error_px"] == pytest.approx(other["view_error_px"], rel=1e-5)
        assert found["min_rate"] == 0.02 and found["frames"] == raw["instances"]
        assert summary["multiview_found"][path.name] == found
        assert found["groups"], "a one-epoch model swaps some dots at rate 0.02"
        corr = MultiviewCorrection.from_checkpoint({"extra": extra})
        assert [list(g) for g in corr.groups] == group_rows([g["parts"] for g in found["groups"]], COCO_VIEWS)
        assert list(corr.reference) == [g["reference"] for g in found["groups"]]
        mended = evaluate(path, dots["val"], flip=False, progress=False)
        assert mended["multiview"] and mended["multiview_groups"] == [g["parts"] for g in found["groups"]]
    # on stderr, beside the epoch lines: stdout keeps the CLI's JSON
    assert f"multiview.correct auto: {result.last_checkpoint.name} mends" in capsys.readouterr().err


def test_auto_that_finds_nothing_mends_nothing_and_says_so(dots, tmp_path, tiny_config, capsys):
    """With one body part in the views there is no pair to swap: the checkpoint records that nothing was found,
    carries no correction, and the console says its predictions are not mended."""
    from animalpose.engine.train import train

    cfg = tiny_config(dots["train"], dots["val"], train={"epochs": 1, "flip_test": False, "select_on": "last"},
                      multiview={"views": COCO_VIEWS[:1], "components": 1, "correct": "auto"})
    result = train(cfg, out_dir=tmp_path, progress=False)
    extra = load_checkpoint(result.last_checkpoint)["extra"]
    assert extra["multiview_found"]["groups"] == [] and "multiview" not in extra
    assert MultiviewCorrection.from_checkpoint({"extra": extra}) is None
    assert not evaluate(result.last_checkpoint, dots["val"], flip=False, progress=False)["multiview"]
    assert "its predictions are not mended" in capsys.readouterr().err
