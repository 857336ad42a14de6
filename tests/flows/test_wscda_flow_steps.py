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
    assert set(children(stages["pplo-round-2"])) == {"pplo round 1"}

    # a third round: the two finished steps are not trained again, only round 2 is
    stamps = {name: (folder / name).stat().st_mtime_ns for name in ("wscda.ckpt", "round_0.ckpt", "round_1.ckpt")}
    more = wscda_flow(species="horse", preset="smoke", rounds=3, tracking_uri=uri, out_dir=tmp_path / "out")
    assert more["rounds"][:2] == out["rounds"] and len(more["rounds"]) == 3
    assert {name: (folder / name).stat().st_mtime_ns for name in stamps} == stamps
    assert (folder / "round_2.ckpt").is_file()
