"""Telemetry is turned off by our entry points, never by importing the library.

Each check runs in a fresh interpreter whose environment holds none of the variables (nor the CI markers
under which MLflow keeps quiet by itself), so what it sees is what our code set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from animalpose.paths import REPO_ROOT
from animalpose.telemetry import MLFLOW_CLIENT_DEFAULTS, TELEMETRY_OFF

CI_MARKERS = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS")


def _run(code: str, tmp_path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in {*TELEMETRY_OFF, *MLFLOW_CLIENT_DEFAULTS, *CI_MARKERS}}
    env.update(PYTHONPATH=str(REPO_ROOT), ANIMALPOSE_HOME=str(tmp_path), OMP_NUM_THREADS="1", **extra)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


SHOW = "import json, os; print(json.dumps({k: os.environ.get(k) for k in %r}))" % [
    *TELEMETRY_OFF, *MLFLOW_CLIENT_DEFAULTS]


def test_importing_tracking_changes_no_environment_and_starting_a_tracker_turns_telemetry_off(tmp_path):
    seen = _run(
        "import json, os\n"
        "before = dict(os.environ)\n"
        "import animalpose.tracking, animalpose.provenance, animalpose.config\n"
        "unchanged = dict(os.environ) == before\n"
        # a server that is not there: the start imports MLflow, fails at once and carries on untracked
        "t = animalpose.tracking.Tracker('telemetry-test', uri='http://127.0.0.1:9', system_metrics=False).start()\n"
        "from mlflow.telemetry.client import get_telemetry_client\n"
        "print(json.dumps({'unchanged': unchanged, 'started': t._shared.failed,\n"
        "                  'client': get_telemetry_client() is not None,\n"
        "                  **{k: os.environ.get(k) for k in %r}}))" % [*TELEMETRY_OFF, *MLFLOW_CLIENT_DEFAULTS],
        tmp_path)
    assert seen.pop("unchanged") and seen.pop("started")
    assert seen.pop("client") is False  # MLflow's telemetry client was never created
    assert seen == {**TELEMETRY_OFF, **MLFLOW_CLIENT_DEFAULTS}


def test_a_value_the_user_set_for_the_client_is_kept_and_telemetry_is_off_whatever_they_set(tmp_path):
    seen = _run("from animalpose.telemetry import telemetry_off; telemetry_off(); " + SHOW, tmp_path,
                MLFLOW_HTTP_REQUEST_TIMEOUT="60", DO_NOT_TRACK="false")
    assert seen["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "60" and seen["DO_NOT_TRACK"] == "true"


def test_the_cli_turns_telemetry_off(tmp_path):
    seen = _run("import os\nbefore = os.environ.get('DO_NOT_TRACK')\n"
                "from animalpose.cli import app\n"
                "from typer.testing import CliRunner\n"
                "assert CliRunner().invoke(app, ['schemas', 'list']).exit_code == 0\n" + SHOW, tmp_path)
    assert seen == {**TELEMETRY_OFF, **MLFLOW_CLIENT_DEFAULTS}


def test_the_flows_turn_mlflow_and_prefect_telemetry_off_before_either_is_imported(tmp_path):
    seen = _run(
        "import json, os\n"
        "import flows.evaluate\n"  # imports Prefect at the top, MLflow in its functions
        "import mlflow\n"
        "from mlflow.telemetry.client import get_telemetry_client\n"
        "from prefect.analytics import is_telemetry_enabled\n"
        "print(json.dumps({'mlflow': get_telemetry_client() is not None, 'prefect': is_telemetry_enabled()}))",
        tmp_path)
    assert seen == {"mlflow": False, "prefect": False}
