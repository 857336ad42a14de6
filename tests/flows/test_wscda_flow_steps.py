"""The wscda flow runs one task per WS-CDA step (slow: it trains real networks on the smoke preset)."""

import json

import pytest
from mlflow import MlflowClient

from flows.wscda import wscda_flow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def test_wscda_flow_one_stage_per_step_and_a_longer_rerun_resumes(prefect_harness, tmp_path, data_home):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    folder = tmp_path / "out" / "wscda"
    out = wscda_flow(species="horse", preset="smoke", rounds=2, tracking_uri=uri, out_dir=tmp_path / "out")
    state = json.loads((folder / "state.json").read_text())
    assert len(out["rounds"]) == 2 and out["rounds"] == state["rounds"]

    client = MlflowClient(tracking_uri=uri)

    def children(run_id):
        return {r.info.run_name: r.info.run_id for r in client.search_runs(
            [client.get_run(run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")}

    stages = children(out["mlflow_run_id"])
    assert {"synth", "wscda", "pplo-round-1", "pplo-round-2", "evaluate", "register"} <= set(stages)
    # each step's own nested run (per-epoch losses) sits under the stage whose task ran it
    assert set(children(stages["wscda"])) == {"wscda"}
    assert set(children(stages["pplo-round-2"])) == {"pplo round 2"}  # rounds numbered from 1 at both levels
    # every step's model on target test: tagged, scored, and drawn on the same fixed test horses
    for name, tags in {"wscda": ("wscda", "0"), "pplo-round-1": ("round", "1"), "pplo-round-2": ("round", "2")}.items():
        run = client.get_run(stages[name])
        assert (run.data.tags["stage"], run.data.tags["round"]) == tags, name
        assert 0.0 <= run.data.metrics["target_test/pck_crop_at_0.05"] <= 1.0, name
        assert {a.path for a in client.list_artifacts(run.info.run_id, "pictures")} == {
            "pictures/target_test_gallery.png", "pictures/target_test_pck_per_joint.png"}, name
        assert [a.path for a in client.list_artifacts(run.info.run_id, "tables")] == [
            "tables/target_test_pck_per_joint.json"], name
    final = client.get_run(stages["pplo-round-2"]).data.metrics["target_test/pck_crop_at_0.05"]
    assert final == pytest.approx(client.get_run(out["mlflow_run_id"]).data.metrics["pck_crop_at_0.05"])

    # a third round: the two finished steps are not trained again, only round 2 is
    stamps = {name: (folder / name).stat().st_mtime_ns for name in ("wscda.ckpt", "round_0.ckpt", "round_1.ckpt")}
    more = wscda_flow(species="horse", preset="smoke", rounds=3, tracking_uri=uri, out_dir=tmp_path / "out")
    assert more["rounds"][:2] == out["rounds"] and len(more["rounds"]) == 3
    assert {name: (folder / name).stat().st_mtime_ns for name in stamps} == stamps
    assert (folder / "round_2.ckpt").is_file()
