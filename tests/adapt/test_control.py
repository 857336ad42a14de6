"""The keep-the-better rule: CC-SSL beside its supervised control (λ = 0, same epochs), both scored on the
labelled val frames, the better kept as final.ckpt (animalpose.adapt.control). Tiny generated dots."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from animalpose.adapt.ccssl import CCSSLConfig
from animalpose.adapt.control import choose, run_ccssl_with_control
from animalpose.config import parse_config
from animalpose.data.coco_writer import write_coco
from animalpose.data.records import PoseRecord
from animalpose.engine.evaluate import evaluate
from animalpose.errors import ConfigError

SIZE = 64


def _dots(out: Path, name: str, n: int, seed: int, generated: bool = False) -> Path:
    """``n`` 64-px images of 17 coloured dots (COCO joints) at random places, as a COCO file; ``generated``
    marks them as our generator's output (records carry generator ``factors``)."""
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    colours = [((37 * k) % 256, (91 * k + 60) % 256, (151 * k + 120) % 256) for k in range(17)]
    records = []
    for i in range(n):
        kp = np.zeros((17, 3), np.float32)
        kp[:, :2], kp[:, 2] = rng.uniform(8, SIZE - 8, size=(17, 2)), 2
        img = rng.integers(0, 60, size=(SIZE, SIZE, 3), dtype=np.uint8)
        for k in range(17):
            cv2.circle(img, (round(kp[k, 0]), round(kp[k, 1])), 2, colours[k], -1)
        path = out / "images" / f"{name}_{i:03d}.png"
        cv2.imwrite(str(path), img)
        records.append(PoseRecord(str(path), kp, "coco", bbox=(0.0, 0.0, float(SIZE), float(SIZE)),
                                  image_size=(SIZE, SIZE), image_id=i + 1,
                                  meta={"factors": {"seed": i}} if generated else {}))
    return write_coco(records, out / "annotations" / f"{name}.json", "coco")


@pytest.fixture(scope="module")
def dots(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("control_dots")
    return {"train": _dots(root, "train", 12, 0), "val": _dots(root, "val", 6, 1),
            "target": _dots(root, "target", 8, 2), "synthetic_val": _dots(root, "sval", 4, 3, generated=True)}


def _config(dots, **data) -> CCSSLConfig:
    raw = {
        "data": {"train": [str(dots["train"])], "val": [str(dots["val"])], "target": [str(dots["target"])],
                 "schema": "coco", "input_size": [SIZE, SIZE], "heatmap_size": [16, 16], "workers": 0, **data},
        "model": {"name": "hourglass1", "channels": 16},
        "codec": {"sigma": 1.0},
        "augment": {"preset": "none"},
        "train": {"epochs": 2, "batch_size": 4, "device": "cpu", "lr": 2e-3, "deterministic": True,
                  "flip_test": False, "select_on": "last"},
        "tracking": {"enabled": False},
        "ccssl": {"source_epochs": 1, "regenerate_every": 1, "num_geometric": 1, "num_photometric": 0,
                  "temporal": False, "pseudo_batch_size": 8, "gallery": 0, "lambda_target": 5.0},
    }
    return parse_config(raw, CCSSLConfig)


def test_the_rule_by_hand():
    assert choose(10.0, 12.0) == ("adapted", 2.0, pytest.approx(2.0 / 12.0))
    assert choose(12.0, 10.0) == ("control", -2.0, pytest.approx(-0.2))
    assert choose(10.0, 10.0)[0] == "control"  # a tie keeps the control: the adaptation has to earn its place
    # the model both started from is kept when neither arm beats it, and wins ties (it trained least)
    assert choose(10.0, 12.0, 9.0) == ("source", 2.0, pytest.approx(2.0 / 12.0))
    assert choose(10.0, 12.0, 10.5)[0] == "adapted" and choose(12.0, 10.0, 11.0)[0] == "control"
    assert choose(10.0, 10.0, 10.0)[0] == "source" and choose(10.0, 12.0, 10.0)[0] == "source"


def test_the_margins_paired_standard_error_by_hand():
    """Three frames of 2 labelled joints: summed differences 2, 0, 4 -> per-joint differences 1, 0, 2, mean 1,
    sample sd 1, standard error 1 / sqrt(3). Unequal joints: the ratio's linearisation. Two files: the mean of the
    files' margins, their errors added."""
    from animalpose.adapt.control import paired_margin_se

    def frames(sums, joints):
        return {"image": [f"{i}.png" for i in range(len(sums))], "pixel_error_sum": sums, "joints": joints}

    a = frames([1.0, 5.0, 2.0], [2, 2, 2])
    c = frames([3.0, 5.0, 6.0], [2, 2, 2])
    assert paired_margin_se([c], [a]) == pytest.approx(1 / np.sqrt(3))
    # joints 1, 2, 3; differences 1, 0, 6: D = 7 / 6, residuals 1 - 7/6, -7/3, 6 - 7/2
    u, v = frames([0.0, 0.0, 0.0], [1, 2, 3]), frames([1.0, 0.0, 6.0], [1, 2, 3])
    r = np.array([1 - 7 / 6, -7 / 3, 6 - 3.5])
    assert paired_margin_se([v], [u]) == pytest.approx(np.sqrt(1.5 * (r ** 2).sum() / 36))
    assert paired_margin_se([c, v], [a, u]) == pytest.approx(np.sqrt(1 / 3 + 1.5 * (r ** 2).sum() / 36) / 2)
    assert paired_margin_se([frames([1.0], [2])], [frames([0.0], [2])]) is None  # one frame: no spread to measure
    with pytest.raises(ValueError, match="different frames"):
        paired_margin_se([c], [frames([1.0, 5.0], [2, 2])])


def test_both_arms_are_reported_and_the_better_on_val_is_kept(dots, tmp_path):
    raw = _config(dots).model_dump(mode="json")  # as a rig: every checkpoint mends the left eye and ear
    raw["multiview"] = {"views": [["left_eye", "right_eye"], ["left_ear", "right_ear"],
                                  ["left_shoulder", "right_shoulder"]], "components": 2,
                        "correct": [["left_eye", "left_ear"]], "reference": 1}
    cfg = parse_config(raw, CCSSLConfig)
    _, kept = run_ccssl_with_control(cfg, tmp_path, progress=False)
    report = json.loads((tmp_path / "keep_better.json").read_text())
    a, c, s = report["adapted"], report["control"], report["source"]
    assert report["metric"] == "pixel_error_mean" and report["val"] == [str(dots["val"])]
    # each arm delivers its trainer's best.ckpt (train.select_on: last -> the last epoch's weights); the third
    # candidate is the source-only model both started from
    assert a["checkpoint"] == str(tmp_path / "train" / "best.ckpt")
    assert c["checkpoint"] == str(tmp_path / "control" / "best.ckpt")
    assert s["checkpoint"] == str(tmp_path / "source" / "best.ckpt")
    assert a["score"] != c["score"]  # two different models (the control saw no pseudo-label)
    better = min((s["score"], 0, "source"), (c["score"], 1, "control"), (a["score"], 2, "adapted"))[2]
    assert report["kept"] == kept.kept == better
    assert report["margin"] == pytest.approx(c["score"] - a["score"])
    # the margin's paired standard error, from the two arms' per-frame errors on the same val frames
    per = [evaluate(ckpt, dots["val"], flip=False, device="cpu", progress=False, per_instance=True)
           for ckpt in (c["checkpoint"], a["checkpoint"])]
    for res in per:  # the frames' summed errors and joints make the file's mean
        inst = res["per_instance"]
        assert sum(inst["pixel_error_sum"]) / sum(inst["joints"]) == pytest.approx(res["metrics"]["pixel_error_mean"])
    from animalpose.adapt.control import paired_margin_se

    assert report["frames"] == 6 and report["margin_se"] == pytest.approx(
        paired_margin_se([per[0]["per_instance"]], [per[1]["per_instance"]]))
    assert f"over the 6 val frames: {report['margin_se']:.2f} px" in report["sentence"]
    assert ("do not tell the two arms apart" in report["sentence"]) == (abs(report["margin"])
                                                                       < 2 * report["margin_se"])
    assert "instances" not in a and "instances" not in report["source"]
    assert {"adapted": "kept the adapted model", "control": "kept the supervised control",
            "source": "kept the model the adaptation started from"}[better] in report["sentence"]
    # final.ckpt is the kept model's file, and scoring it again gives the kept score
    final = tmp_path / "final.ckpt"
    assert final.read_bytes() == Path(report[better]["checkpoint"]).read_bytes()
    again = evaluate(final, dots["val"], flip=False, device="cpu", progress=False)["metrics"]["pixel_error_mean"]
    assert again == pytest.approx(min(a["score"], c["score"], s["score"]), rel=1e-5)
    # the control trained the same epochs from the same source model, at the same learning rate
    ctrl = torch.load(tmp_path / "control" / "last.ckpt", weights_only=False, map_location="cpu")
    ada = torch.load(tmp_path / "round_1.ckpt", weights_only=False, map_location="cpu")
    assert ctrl["epoch"] == ada["epoch"] == 2
    # ... and carries the same extras, so keep_better scores the three alike (a rig's control mended too)
    for key in ("normalization", "multiview"):
        assert ctrl["extra"][key] == ada["extra"][key], key
    assert evaluate(tmp_path / "control" / "best.ckpt", dots["val"], flip=False, device="cpu",
                    progress=False)["multiview"]
    assert ctrl["optimizer"]["param_groups"][0]["lr"] == ada["optimizer"]["param_groups"][0]["lr"]
    # a rerun finds both arms finished and decides the same
    _, again_kept = run_ccssl_with_control(cfg, tmp_path, progress=False)
    assert again_kept.kept == kept.kept and again_kept.margin == pytest.approx(kept.margin)


def test_the_starting_model_is_kept_when_neither_arm_beats_it(dots, tmp_path, monkeypatch):
    import animalpose.adapt.control as control

    cfg = _config(dots)
    cfg.train.epochs = 1
    real = control._score

    def source_best(checkpoint, paths, cfg):  # both arms made the model worse on val
        out = real(checkpoint, paths, cfg)
        return {**out, "score": out["score"] + (0.0 if "source" in Path(checkpoint).parts else 100.0)}

    monkeypatch.setattr(control, "_score", source_best)
    _, kept = run_ccssl_with_control(cfg, tmp_path, progress=False)
    report = json.loads((tmp_path / "keep_better.json").read_text())
    assert kept.kept == report["kept"] == "source"
    assert report["sentence"].startswith("kept the model the adaptation started from")
    assert (tmp_path / "final.ckpt").read_bytes() == Path(report["source"]["checkpoint"]).read_bytes()


def test_no_held_out_frames_is_an_error_before_training_and_the_control_can_be_turned_off(dots, tmp_path):
    with pytest.raises(ConfigError, match=r"data\.val.*--no-control"):
        run_ccssl_with_control(_config(dots, val=[]), tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()
    # a generated val set is not the target domain: it cannot decide either
    with pytest.raises(ConfigError, match=r"data\.val is synthetic"):
        run_ccssl_with_control(_config(dots, val=[str(dots["synthetic_val"])]), tmp_path / "s", progress=False)
    cfg = _config(dots, val=[])
    cfg.ccssl.control = False
    cfg.train.epochs = 1
    result, kept = run_ccssl_with_control(cfg, tmp_path / "b", progress=False)
    assert kept is None and len(result.rounds) == 1 and not (tmp_path / "b" / "final.ckpt").exists()


def test_a_starting_model_that_cannot_be_scored_is_left_out_loudly(dots, tmp_path, monkeypatch, capsys):
    import animalpose.adapt.control as control
    from animalpose.errors import DataError

    cfg = _config(dots)
    cfg.train.epochs = 1
    real = control._score

    def broken_source(checkpoint, paths, cfg):
        if "source" in Path(checkpoint).parts:
            raise DataError(str(checkpoint), "config", "no config in this checkpoint")
        return real(checkpoint, paths, cfg)

    monkeypatch.setattr(control, "_score", broken_source)
    _, kept = run_ccssl_with_control(cfg, tmp_path, progress=False)
    report = json.loads((tmp_path / "keep_better.json").read_text())
    assert kept.kept in ("adapted", "control") and report["source"] is None
    assert "no config in this checkpoint" in report["source_error"]
    assert "starting model is left out" in capsys.readouterr().err


def test_a_rig_source_trained_with_auto_groups_hands_its_correction_to_both_arms(dots, tmp_path):
    """``multiview.correct: auto``: the source model, trained with `train`, found its groups on val; the adapted
    rounds and the control carry that correction (found for the source, not refitted), so keep-the-better scores
    the three mended alike. A source trained inside the run found none: the rounds mend nothing, loudly."""
    from animalpose.config import ExperimentConfig
    from animalpose.engine.checkpoint import load_checkpoint
    from animalpose.engine.train import train

    raw = _config(dots).model_dump(mode="json")
    raw["multiview"] = {"views": [["left_eye", "right_eye"], ["left_ear", "right_ear"],
                                  ["left_shoulder", "right_shoulder"]], "components": 2, "correct": "auto",
                        "confusion": 0.02}
    source = train(parse_config({k: v for k, v in raw.items() if k != "ccssl"}, ExperimentConfig),
                   out_dir=tmp_path / "source", progress=False).last_checkpoint
    found = load_checkpoint(source)["extra"]
    assert found["multiview_found"]["groups"], "a two-epoch model swaps some dots at rate 0.02"
    raw["ccssl"] = {**raw["ccssl"], "source_checkpoint": str(source), "source_epochs": 0}
    raw["train"]["epochs"] = 1
    run_ccssl_with_control(parse_config(raw, CCSSLConfig), tmp_path / "run", progress=False)
    for path in (tmp_path / "run" / "round_0.ckpt", tmp_path / "run" / "control" / "last.ckpt"):
        extra = load_checkpoint(path)["extra"]
        assert extra["multiview"] == found["multiview"] and extra["multiview_found"] == found["multiview_found"]
    report = json.loads((tmp_path / "run" / "keep_better.json").read_text())
    for arm in ("adapted", "control", "source"):
        assert evaluate(report[arm]["checkpoint"], dots["val"], flip=False, device="cpu", progress=False)["multiview"]


def test_auto_groups_of_a_source_trained_in_the_run_are_found_on_val_and_carried(dots, tmp_path, capsys):
    """A source trained inside the run finds its groups on data.val as `train` would, and its checkpoints carry
    the run's extras (normalisation included); without val there is nothing to find them on: nothing is mended,
    loudly."""
    from animalpose.adapt.ccssl import run_ccssl
    from animalpose.engine.checkpoint import load_checkpoint

    raw = _config(dots).model_dump(mode="json")
    raw["multiview"] = {"views": [["left_eye", "right_eye"], ["left_ear", "right_ear"],
                                  ["left_shoulder", "right_shoulder"]], "components": 2, "correct": "auto",
                        "confusion": 0.02}
    raw["train"]["epochs"] = 1
    raw["ccssl"]["control"] = False
    run_ccssl(parse_config(raw, CCSSLConfig), tmp_path / "a", progress=False)
    source = load_checkpoint(tmp_path / "a" / "source" / "last.ckpt")["extra"]
    assert "normalization" in source and source["multiview_found"]["frames"] == 6
    assert source["multiview_found"]["groups"], "a one-epoch model swaps some dots at rate 0.02"
    rounds = load_checkpoint(tmp_path / "a" / "round_0.ckpt")["extra"]
    assert rounds["multiview"] == source["multiview"]
    raw["data"]["val"] = []
    run_ccssl(parse_config(raw, CCSSLConfig), tmp_path / "b", progress=False)
    assert "multiview" not in load_checkpoint(tmp_path / "b" / "round_0.ckpt")["extra"]
    assert "the rounds' models mend nothing" in capsys.readouterr().err
