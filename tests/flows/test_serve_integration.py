"""`animalpose serve` + `prefect deployment run ccssl/horse` on the smoke preset, as a user would do it.

Starts the local stack (Prefect server, lean MLflow server) and the deployments in a subprocess,
runs the deployment from the Prefect CLI with ``--watch``, checks the run completed and reached the
MLflow server, then stops everything with Ctrl-C (SIGINT) and checks the ports are free again.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.stack import free_port, port_in_use

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

BIN = Path(sys.executable).parent


def wait_for(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}; log:\n{log.read_text()[-3000:]}")


def test_serve_then_run_the_ccssl_horse_deployment(tmp_path):
    pp, mp = free_port(), free_port()
    env = {**os.environ, "ANIMALPOSE_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect-client"),
           "PREFECT_LOCAL_STORAGE_PATH": str(tmp_path / "results"), "DO_NOT_TRACK": "true",
           "MLFLOW_DISABLE_TELEMETRY": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    log = tmp_path / "serve.log"
    api = f"http://127.0.0.1:{pp}/api"
    with log.open("wb") as out:
        serve = subprocess.Popen([str(BIN / "animalpose"), "serve", "--home", str(tmp_path / "stack"),
                                  "--prefect-port", str(pp), "--mlflow-port", str(mp)],
                                 env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    client_env = {**env, "PREFECT_API_URL": api}
    try:
        def deployment_ready() -> bool:
            r = subprocess.run([str(BIN / "prefect"), "deployment", "inspect", "ccssl/horse"], env=client_env,
                               capture_output=True, text=True)
            return r.returncode == 0
        wait_for(lambda: "Serving deployments" in log.read_text() and deployment_ready(), 300, "the deployments", log)
        run = subprocess.run([str(BIN / "prefect"), "deployment", "run", "ccssl/horse", "-p", 'preset="smoke"',
                              "--watch", "--watch-timeout", "1500"], env=client_env, capture_output=True, text=True,
                             timeout=1600)
        assert run.returncode == 0, run.stdout + run.stderr + log.read_text()[-3000:]
        assert "Completed" in run.stdout + run.stderr

        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{mp}")
        (mv,) = client.search_model_versions("name='ccssl-horse'")
        parent = client.get_run(mv.run_id)
        assert parent.info.status == "FINISHED" and parent.data.tags["animalpose.flow"] == "ccssl-horse"
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
    assert "stack stopped" in log.read_text()
    assert not (tmp_path / "stack" / "stack.json").exists()
    assert not port_in_use("127.0.0.1", pp) and not port_in_use("127.0.0.1", mp)
