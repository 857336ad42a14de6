"""The per-round report of the pseudo-labels' error on the labelled calibration frames (issue 23): by hand, then
through a round (summary, MLflow metrics, the views' re-assignment) and its defaults."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from animalpose.adapt.ccssl import CCSSLConfig, CCSSLRun
from animalpose.adapt.label_report import describe, label_report, most_biased
from animalpose.config import parse_config
from animalpose.errors import ConfigError


def _case():
    """2 frames, 3 joints; joint 2 never labelled, joint 1 labelled in frame 0 only."""
    truth = np.zeros((2, 3, 3))
    truth[..., 2] = 2
    truth[1, 1, 2] = 0
    truth[:, 2, 2] = 0
    xy = np.zeros((2, 3, 2))
    xy[:, 0] = [[3, 4], [-6, 8]]  # errors 5 and 10, offsets (3, 4) and (-6, 8)
    xy[0, 1] = [0, 2]  # error 2, offset (0, 2)
    xy[1, 1] = [90, 90]  # not labelled: not counted
    conf = np.array([[0.9, 0.2, 0.9], [0.4, 0.9, 0.9]])
    return xy, truth, conf


def test_label_report_by_hand():
    xy, truth, conf = _case()
    r = label_report(xy, truth, conf, 0.5, ["a", "b", "c"])
    assert r["label_instances"] == 3
    assert r["label_px"] == pytest.approx(17 / 3) and r["label_px_median"] == pytest.approx(5.0)
    # only frame 0's joint a reaches the threshold among the labelled (b in frame 1 is confident but unlabelled)
    assert r["label_px_confident"] == pytest.approx(5.0) and r["confident_share"] == pytest.approx(1 / 3)
    assert r["label_px_per_joint"] == {"a": 7.5, "b": 2.0, "c": None}
    assert r["label_bias_px"] == {"a": [-1.5, 6.0], "b": [0.0, 2.0], "c": None}
    none = label_report(xy, truth, conf, float("nan"), ["a", "b", "c"])
    assert np.isnan(none["label_px_confident"]) and none["confident_share"] == 0.0
    # the most biased first, and only biases of at least min_pixels: |(-1.5, 6)| = 6.18, |(0, 2)| = 2
    assert most_biased(r) == [("a", -1.5, 6.0), ("b", 0.0, 2.0)]
    assert most_biased(r, min_pixels=3.0) == [("a", -1.5, 6.0)]
    line = describe(r, 2)
    assert "2 calibration frames" in line and "5.67 px" in line and "a (-1.5, +6.0) px" in line


def test_label_report_refuses_what_it_cannot_measure():
    xy, truth, conf = _case()
    with pytest.raises(ValueError, match="must match"):
        label_report(xy[:, :2], truth, conf, 0.5, ["a", "b", "c"])
    with pytest.raises(ValueError, match="must match"):
        label_report(xy, truth, conf, 0.5, ["a", "b"])
    truth[..., 2] = 0
    with pytest.raises(ValueError, match="no labelled joint"):
        label_report(xy, truth, conf, 0.5, ["a", "b", "c"])


def test_a_round_reports_its_labels_on_the_calibration_frames(dots_config, tmp_path):
    """On by default with data.val: the round's summary and metrics carry the report, and its figures are those of
    the calibration frames labelled by the round's model (recomputed here from the run's own labelling)."""
    run = CCSSLRun(dots_config(keep_fractions=[0.5, 0.5]), tmp_path / "run", progress=False)
    m = run.round(0)
    s = json.loads((tmp_path / "run" / "round_0" / "summary.json").read_text())
    lab = run._labelled_labels(0)
    want = label_report(lab.xy, lab.truth, lab.confidence, m["pseudo/threshold"], run.schema.joints)
    assert m["pseudo/calibration_label_px"] == pytest.approx(want["label_px"])
    assert m["pseudo/calibration_label_px_confident"] == pytest.approx(want["label_px_confident"])
    assert m["pseudo/calibration_label_instances"] == 4 * 17  # data.val: 4 images x 17 labelled dots
    assert s["calibration_label_px_per_joint"] == want["label_px_per_joint"]
    assert s["calibration_label_bias_px"] == want["label_bias_px"]
    assert 0.0 < m["pseudo/calibration_confident_share"] < 1.0


def test_label_report_switches(dots_config, tmp_path):
    assert dots_config().ccssl.label_report is None
    assert dots_config(label_report=True).ccssl.as_control().label_report is False
    off = CCSSLRun(dots_config(label_report=False), tmp_path / "off", progress=False)
    assert "pseudo/calibration_label_px" not in off.round(0)
    doc = dots_config().model_dump(mode="json")
    doc["data"]["val"] = []
    assert not CCSSLRun(parse_config(doc, CCSSLConfig), tmp_path / "none", progress=False)._reports_labels()
    doc["ccssl"]["label_report"] = True
    with pytest.raises(ConfigError, match=r"ccssl\.label_report.*calibration_data or data\.val"):
        parse_config(doc, CCSSLConfig)


def test_label_padding_crops_for_labelling_only(dots_config, tmp_path, monkeypatch):
    """ccssl.label_padding: the video's and the calibration frames' labels are made on crops at that padding (the
    labelling crops' scale is the data's / label_padding of the plain ones), their points come back in original
    pixels, and the target stream crops the pseudo-labelled frames at the data's own padding again."""
    import animalpose.adapt.ccssl as ccssl_module

    seen = []  # (padding argument, the records' own paddings) of every labelling call
    real = ccssl_module.generate_pseudo_labels

    def spy(model, records, *args, padding, **kw):
        seen.append((padding, {r.padding for r in records}))
        return real(model, records, *args, padding=padding, **kw)

    monkeypatch.setattr(ccssl_module, "generate_pseudo_labels", spy)
    plain = CCSSLRun(dots_config(), tmp_path / "plain", progress=False)
    plain.prepare()
    padded = CCSSLRun(dots_config(label_padding=1.6), tmp_path / "padded", progress=False)
    padded.prepare()
    a, b = plain._pseudo_labels(0), padded._pseudo_labels(0)
    data_pad = plain.pad
    assert seen[-2][0] == data_pad and seen[-1] == (1.6, {1.6})
    # the crop's scale (pixels per original pixel) shrinks by data padding / label padding
    np.testing.assert_allclose(b.matrices[:, 0, 0], a.matrices[:, 0, 0] * data_pad / 1.6, rtol=1e-5)
    assert np.abs(b.xy - a.xy).max() > 0 and np.isfinite(b.xy).all()  # original pixels, from other crops
    padded._labelled_labels(0)
    assert seen[-1] == (1.6, {1.6})  # the calibration frames likewise
    kept = padded._target_set(replace(b, weights=np.ones_like(b.weights)), 0)
    assert {r.padding for r in kept.records} == {data_pad}  # trained at the data's padding
    assert data_pad != 1.6
    assert dots_config(label_padding=1.6).ccssl.as_control().label_padding is None
    with pytest.raises(ConfigError, match="label_padding"):
        dots_config(label_padding=0.9)
