"""The console's stage lines, the results artifact's markdown, the results table and the registry text,
the role names of the Prefect tasks, and the lean `animalpose ui` (fast; the smoke flow's own record is
checked in test_ccssl_record.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from flows import console
from flows.ccssl import _round_run_name, _shard_run_name, comparison_rows, registry_description, results_markdown
from flows.common import markdown_table
from flows.stack import free_port

SUMMARY = {"species": "horse", "preset": "smoke", "source_only": 0.40, "rounds": [0.45, 0.52], "oracle": 0.60,
           "gap_recovery": 0.6, "model_name": "ccssl-horse", "model_version": "3",
           "mlflow_run_url": "http://127.0.0.1:5000/#/experiments/1/runs/abc",
           "mlflow_ui": "animalpose ui --backend-store-uri sqlite:////tmp/m.db"}


def test_without_a_terminal_each_stage_prints_one_line(capsys, monkeypatch):
    monkeypatch.setattr(console, "_mode", None)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert console.mode() == "lines" and not console.live()
    assert console.configure(json_output=True) == "lines"
    with console.timed_stage("round-2") as line:
        line.headline = console.percent("target test PCK@0.05", 0.4567)
    with console.timed_stage("synth"):
        pass
    with pytest.raises(RuntimeError), console.timed_stage("oracle"):  # a failed stage prints no success line
        raise RuntimeError("boom")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert re.fullmatch(r"\d\d:\d\d:\d\d stage round-2: target test PCK@0\.05 45\.7 % \(0 s\)", err[0])
    assert err[1].endswith("stage synth: done (0 s)")


def test_a_terminal_gets_live_bars_unless_json(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(console, "_mode", None)
    assert console.live()
    assert console.configure(json_output=False) == "live" and console.live()
    assert console.configure(json_output=True) == "lines" and not console.live()


def test_quiet_by_default_verbose_keeps_info(monkeypatch):
    import logging

    for key in ("MLFLOW_LOGGING_LEVEL", "PREFECT_LOGGING_LEVEL"):
        monkeypatch.delenv(key, raising=False)
    console.configure()
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == os.environ["PREFECT_LOGGING_LEVEL"] == "WARNING"
    assert logging.getLogger("mlflow").level == logging.WARNING
    for key in ("MLFLOW_LOGGING_LEVEL", "PREFECT_LOGGING_LEVEL"):
        monkeypatch.delenv(key)
    console.configure(verbose=True)
    assert os.environ["PREFECT_LOGGING_LEVEL"] == "INFO" and logging.getLogger("mlflow").level == logging.INFO
    logging.getLogger("mlflow").setLevel(logging.NOTSET)


def test_results_markdown_has_no_mailto_link_and_renders_the_table():
    text = results_markdown(SUMMARY)
    assert "PCK\\@0.05" in text and not re.search(r"[A-Za-z0-9]@", text)
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "PCK@0.05 (crop) on target test" in html and "mailto" not in html  # the escape renders as "@"
    assert "<td>CC-SSL round 2</td>" in html and "<td>0.5200</td>" in html
    assert markdown_table(["a@b.c"], [["x|y"]]).splitlines()[0] == "| a\\@b.c |"


def test_results_table_and_registry_text():
    scores = {"source-only": {"target_test/pck_crop@0.05": 0.4, "target_test/AP": 0.1, "source_val/pck_crop@0.05": 0.8,
                              "target_test/pck_bbox@0.05": 0.3},
              "round-1": {"target_test/pck_crop@0.05": 0.5, "target_test/AP": 0.2, "source_val/pck_crop@0.05": 0.7}}
    rows = comparison_rows(scores)
    assert rows == {"source-only": {"target_test/pck_crop@0.05": 0.4, "target_test/AP": 0.1,
                                    "source_val/pck_crop@0.05": 0.8},
                    "round-1": {"target_test/pck_crop@0.05": 0.5, "target_test/AP": 0.2,
                                "source_val/pck_crop@0.05": 0.7}}

    def res(v):
        return {"target_test": {"metrics": {"pck_crop@0.05": v}}}

    text = registry_description("horse", "smoke", {"source-only": res(0.4), "round-1": res(0.45), "round-2": res(0.5),
                                                   "oracle": res(0.6)},
                                {"target_test": Path("/nonexistent/test"), "target_val": None}, 0.5)
    assert "the model after round-2" in text
    assert "source-only 40.0 %, round-1 45.0 %, round-2 50.0 %, oracle 60.0 %" in text
    assert "Gap recovery 50.0 %" in text and "target_test: /nonexistent/test (fingerprint missing)" in text
    assert "target_val" not in text


def test_task_runs_are_numbered_from_one():
    class Request:
        round_index, first_batch = 1, 4

    assert _round_run_name({"round_index": 0}) == "ccssl-round-1"
    assert _shard_run_name({"request": Request()}) == "pseudo-label-round-2-batch-4"


def test_ui_command_is_the_lean_server_on_the_project_store(monkeypatch, tmp_path):
    from flows.stack import StackError, ui_process

    monkeypatch.setenv("ANIMALPOSE_HOME", str(tmp_path))
    cmd, env = ui_process(None, "127.0.0.1", 5001)
    assert cmd[1:] == ["server", "--host", "127.0.0.1", "--port", "5001", "--workers", "1", "--backend-store-uri",
                       f"sqlite:///{tmp_path / 'mlflow.db'}", "--default-artifact-root", str(tmp_path / "mlartifacts")]
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    with pytest.raises(StackError, match="a tracking server, not a store"):
        ui_process("http://127.0.0.1:5000")


@pytest.mark.slow
def test_ui_starts_two_processes_and_serves_the_store(tmp_path):
    """The real server: healthy on 127.0.0.1, a process group of 2 (the server and its one worker)."""
    port = free_port()
    env = {**os.environ, "ANIMALPOSE_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "animalpose", "ui", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"no MLflow UI on port {port}")
        time.sleep(2)
        group = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(group) == 2, group
        assert (tmp_path / "mlflow.db").is_file()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
