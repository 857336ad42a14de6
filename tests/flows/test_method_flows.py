"""The wscda and human flows end to end on the smoke preset (slow: each trains real networks)."""

import pytest
from mlflow import MlflowClient

from flows.human import human_flow
from flows.wscda import wscda_flow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def test_wscda_flow_smoke(prefect_harness, tmp_path, data_home, read_artifact):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = wscda_flow(species="horse", preset="smoke", rounds=1, tracking_uri=uri, out_dir=tmp_path / "out")
    assert 0.0 <= out["pck"] <= 1.0 and len(out["rounds"]) == 1
    client = MlflowClient(tracking_uri=uri)
    (mv,) = client.search_model_versions("name='wscda-horse'")
    assert str(mv.version) == out["model_version"] and mv.run_id == out["mlflow_run_id"]
    assert "WS-CDA + 1 PPLO rounds" in read_artifact("wscda-horse").data


def test_human_flow_smoke(prefect_harness, tmp_path, data_home, read_artifact):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = human_flow(dataset="coco", preset="smoke", epochs=1, tracking_uri=uri, out_dir=tmp_path / "out")
    assert 0.0 <= out["metrics"]["pck_crop@0.05"] <= 1.0 and "AP" in out["metrics"]
    client = MlflowClient(tracking_uri=uri)
    assert client.search_model_versions("name='human-coco'")
    assert "pck_crop\\@0.05" in read_artifact("human-coco").data  # "@" escaped: no mailto link
