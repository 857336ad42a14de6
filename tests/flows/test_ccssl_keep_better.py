"""The ccssl flow applies `adapt ccssl`'s keep-the-better rule (animalpose.adapt.control) when the target has
labelled held-out frames: the smoke preset's generated target-val set. One round, no oracle."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from animalpose.adapt import control
from flows.ccssl import ccssl_flow
from flows.presets import PRESET_DIR as PRESETS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def test_smoke_flow_keeps_the_better_of_ccssl_and_its_control(prefect_harness, tmp_path, data_home, monkeypatch,
                                                               read_artifact):
    preset = tmp_path / "smoke.yaml"
    preset.write_text((PRESETS / "smoke.yaml").read_text().replace("../", f"{PRESETS.parent}/"))
    calls = []
    real = control.keep_better

    def spy(run, result, control_ckpt, **kw):
        calls.append(kw)
        return real(run, result, control_ckpt, **kw)

    monkeypatch.setattr(control, "keep_better", spy)  # the CLI's function, called by the flow's task
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    kwargs = {"species": "horse", "preset": str(preset), "rounds": 1, "oracle": False, "tracking_uri": uri,
              "out_dir": tmp_path / "out", "register_as": "ccssl-keep"}
    summary = ccssl_flow(**kwargs)

    d = summary["keep_better"]
    (call,) = calls
    assert call["register"] is False  # the flow registers the kept model itself
    (val,) = call["paths"]
    # decided on the labelled target-val set, never on the test set the rounds report on
    assert "-photo-target-val-" in Path(val).parent.parent.name and Path(val).name == "tigdog.json"
    assert d["val"] == [str(val)]
    a, c = d["adapted"]["score"], d["control"]["score"]
    assert d["metric"] == "pixel_error_mean"
    s = d["source"]["score"]  # the source-only model both arms started from is the third candidate
    assert d["source"]["checkpoint"].startswith(str(tmp_path / "out"))
    assert d["kept"] == min((s, 0, "source"), (c, 1, "control"), (a, 2, "adapted"))[2]
    assert d["margin"] == pytest.approx(c - a)
    final = Path(d["final"])
    assert summary["checkpoint"] == str(final) == str(tmp_path / "out" / "ccssl" / "final.ckpt")
    assert filecmp.cmp(final, d[d["kept"]]["checkpoint"], shallow=False)
    assert d["control"]["checkpoint"].startswith(str(tmp_path / "out" / "ccssl" / "control"))
    on_disk = json.loads((tmp_path / "out" / "ccssl" / "keep_better.json").read_text())
    assert on_disk["kept"] == d["kept"] and on_disk["sentence"] == d["sentence"]
    assert 0.0 <= summary["control"] <= 1.0

    client = MlflowClient(uri)
    parent = client.get_run(summary["mlflow_run_id"])
    assert parent.data.tags["kept"] == d["kept"]
    assert parent.data.metrics["keep/adapted_pixel_error_mean"] == pytest.approx(a)
    assert parent.data.metrics["keep/control_pixel_error_mean"] == pytest.approx(c)
    assert parent.data.metrics["keep/source_pixel_error_mean"] == pytest.approx(s)
    stages = {r.info.run_name: r for r in client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")}
    st = stages["control"]
    assert (st.data.tags["stage"], st.data.tags["round"]) == ("control", "1")
    assert st.data.metrics["target_test/pck_crop_at_0.05"] == pytest.approx(summary["control"])
    assert st.data.metrics["keep/margin_pixel_error_mean"] == pytest.approx(c - a)
    (mv,) = client.search_model_versions("name='ccssl-keep'")
    assert mv.tags["kept"] == d["kept"] and d["sentence"] in mv.description
    art = read_artifact("ccssl-horse").data
    assert "supervised control (λ = 0)" in art and "Keep the better: " in art

    # control off: the last round is the result, as before
    off = ccssl_flow(**{**kwargs, "register_as": "ccssl-keep-off"}, control=False)
    assert off["keep_better"] is None and off["control"] is None
    assert off["checkpoint"] == str(tmp_path / "out" / "ccssl" / "round_0.ckpt")
    assert len(calls) == 1
