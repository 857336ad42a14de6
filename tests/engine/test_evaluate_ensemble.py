"""`evaluate` with several checkpoints (animalpose.engine.evaluate_ensemble): the members' median scored in original
pixels, against a hand computation from each member's own predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from animalpose.cli import app
from animalpose.engine.evaluate import evaluate
from animalpose.engine.evaluate_ensemble import evaluate_ensemble
from animalpose.errors import ConfigError


def test_an_ensemble_of_one_model_twice_scores_as_the_model(trained, dots):
    one = evaluate(trained, dots["val"], progress=False)
    two = evaluate_ensemble([trained, trained], dots["val"], progress=False)
    for k in ("pixel_error_mean", "pixel_error_median", "pixel_error_rmse", "pck_bbox@0.05", "pck_bbox@0.1"):
        assert two["metrics"][k] == pytest.approx(one["metrics"][k], abs=1e-9)
    assert "pck_crop@0.05" not in two["metrics"] and two["ensemble"]["spread_px_mean"] == 0
    assert two["instances"] == one["instances"]


def test_the_ensemble_is_scored_on_its_members_median(trained, perturbed, dots, tmp_path):
    members = [trained, perturbed(trained, tmp_path / "b.ckpt", scale=0.2, seed=1),
               perturbed(trained, tmp_path / "c.ckpt", scale=0.2, seed=2)]
    alone = [evaluate(m, dots["val"], progress=False, keep_predictions=True) for m in members]
    res = evaluate_ensemble(members, dots["val"], progress=False)
    preds = np.stack([a["predictions"]["pred"][..., :2] for a in alone])
    gt = alone[0]["predictions"]["gt"]
    median = np.median(preds, axis=0)
    seen = gt[..., 2] > 0
    err = np.linalg.norm(median - gt[..., :2], axis=-1)[seen]
    assert res["metrics"]["pixel_error_mean"] == pytest.approx(err.mean())
    assert res["metrics"]["pixel_error_median"] == pytest.approx(np.median(err))
    spread = np.sqrt(((preds - preds.mean(0)) ** 2).sum(-1).mean(0))[seen]
    assert res["ensemble"]["spread_px_mean"] == pytest.approx(spread.mean()) and spread.mean() > 0.5
    assert [m["pixel_error_mean"] for m in res["ensemble"]["members"]] == \
        pytest.approx([a["metrics"]["pixel_error_mean"] for a in alone])
    # PCK bbox: the same rule, on the median
    assert 0 <= res["metrics"]["pck_bbox@0.05"] <= res["metrics"]["pck_bbox@0.1"] <= 1


def test_what_an_ensemble_cannot_be_scored_on_is_refused(trained, dots):
    with pytest.raises(ConfigError, match="two or more"):
        evaluate_ensemble([trained], dots["val"], progress=False)
    with pytest.raises(ConfigError, match="reference protocol"):
        evaluate_ensemble([trained, trained], dots["val"], protocol="reference", progress=False)
    with pytest.raises(ConfigError, match="examples"):
        evaluate_ensemble([trained, trained], dots["val"], examples=2, progress=False)


def test_evaluate_command_takes_several_checkpoints(trained, dots):
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(trained), "--checkpoint", str(trained), "--data",
                                   str(dots["val"]), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(out["checkpoint"]) == 2 and len(out["ensemble"]["members"]) == 2
    text = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(trained), "--checkpoint", str(trained), "--data",
                                    str(dots["val"])])
    assert text.exit_code == 0, text.output
    assert "ensemble of 2:" in text.output and "PCK@0.05 (bbox)" in text.output
