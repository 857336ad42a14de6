import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import flows.ccssl
from animalpose.cli import app

SUMMARY = {"species": "horse", "preset": "smoke", "source_only": 0.40, "rounds": [0.45, 0.52], "oracle": 0.60,
           "gap_recovery": 0.6, "model_name": "ccssl-horse", "model_version": "3", "checkpoint": "/x/round_1.ckpt",
           "mlflow_run_id": "abc123", "mlflow_run_url": "http://127.0.0.1:5000/#/experiments/1/runs/abc123",
           "tracking_uri": "sqlite:////tmp/m.db",
           "mlflow_ui": "mlflow ui --backend-store-uri sqlite:////tmp/m.db --host 127.0.0.1 --port 5000"}


def test_demo_prints_the_table_the_ui_command_and_a_json_last_line(monkeypatch):
    seen = {}

    def fake_flow(**kwargs):
        seen.update(kwargs)
        return SUMMARY

    monkeypatch.setattr(flows.ccssl, "ccssl_flow", fake_flow)
    result = CliRunner().invoke(app, ["demo", "--preset", "smoke", "--rounds", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert seen == {"species": "horse", "preset": "smoke", "rounds": 2}
    lines = result.output.strip().splitlines()
    out = json.loads(lines[-1])
    assert out["source_only"] == 0.40 and out["rounds"] == [0.45, 0.52] and out["oracle"] == 0.60
    assert out["gap_recovery"] == 0.6 and out["seconds"] >= 0 and out["peak_rss_mb"] > 0
    text = "\n".join(lines[:-1])
    for label, value in (("source-only", "40.0"), ("CC-SSL round 1", "45.0"), ("CC-SSL round 2", "52.0"),
                         ("oracle (target labels)", "60.0"), ("gap recovery", "60.0%")):
        assert any(label in line and value in line for line in lines), (label, text)
    assert "mlflow ui --backend-store-uri sqlite:////tmp/m.db" in text


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_demo_smoke_end_to_end(tmp_path):
    env = {**os.environ, "ANIMALPOSE_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_LOCAL_STORAGE_PATH": str(tmp_path / "results")}
    env.pop("PREFECT_API_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([str(Path(sys.executable).parent / "animalpose"), "demo", "--preset", "smoke", "--json"],
                          env=env, capture_output=True, text=True, timeout=1400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["rounds"]) == 2 and all(0 <= v <= 1 for v in [out["source_only"], *out["rounds"], out["oracle"]])
    assert out["tracking_uri"] == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    assert "mlflow ui --backend-store-uri" in proc.stdout
