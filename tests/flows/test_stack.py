import json
import socket

import pytest

from flows.stack import StackError, free_port, port_in_use, start_stack, stop_stack


def test_stack_starts_healthy_and_stops_cleanly(tmp_path):
    pp, mp = free_port(), free_port()
    store = tmp_path / "project" / "mlflow.db"
    state = start_stack(tmp_path, prefect_port=pp, mlflow_port=mp, store_uri=f"sqlite:///{store}")
    try:
        assert store.is_file()  # the server serves the store it was given (the project's by default)
        recorded = json.loads((tmp_path / "stack.json").read_text())
        assert recorded["prefect_port"] == pp and recorded["mlflow_port"] == mp
        assert port_in_use("127.0.0.1", pp) and port_in_use("127.0.0.1", mp)
        assert state.prefect_api_url == f"http://127.0.0.1:{pp}/api"
        with pytest.raises(StackError, match="already running"):
            start_stack(tmp_path, prefect_port=free_port(), mlflow_port=free_port())
    finally:
        assert stop_stack(tmp_path)
    assert not port_in_use("127.0.0.1", pp) and not port_in_use("127.0.0.1", mp)
    assert not (tmp_path / "stack.json").exists()
    assert stop_stack(tmp_path) is False


def test_busy_port_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        with pytest.raises(StackError, match=f"prefect port 127.0.0.1:{busy} is already in use"):
            start_stack(tmp_path, prefect_port=busy, mlflow_port=free_port())
    assert not (tmp_path / "stack.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_serve_stop_ends_the_serving_process_and_both_servers_quietly(tmp_path):
    """`serve` records its own pid beside the servers'; a second `serve` is refused while it runs; stopping
    (what `serve --stop` does) ends the serving process and both server groups within 15 s, no traceback."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    pp, mp = free_port(), free_port()
    home = tmp_path / "stack"
    env = {**os.environ, "ANIMALPOSE_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    root = Path(__file__).resolve().parents[2]
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "animalpose", "serve", "--home", str(home)]
    with log.open("wb") as out:
        serve = subprocess.Popen([*cmd, "--prefect-port", str(pp), "--mlflow-port", str(mp), "--no-deployments"],
                                 env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while "Servers are up" not in log.read_text() and serve.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "Servers are up" in log.read_text(), log.read_text()[-3000:]
        assert "waiting for the Prefect server" in log.read_text()  # it says what it waits for
        deadline = time.monotonic() + 10
        while json.loads((home / "stack.json").read_text()).get("serve_pid") != serve.pid:
            assert time.monotonic() < deadline, "serve never recorded its pid"
            time.sleep(0.2)
        state = json.loads((home / "stack.json").read_text())
        assert (tmp_path / "home" / "mlflow.db").is_file()  # the project's store, not one of its own
        second = subprocess.run([*cmd, "--prefect-port", str(free_port()), "--mlflow-port", str(free_port())],
                                env=env, cwd=root, capture_output=True, text=True, timeout=120)
        assert second.returncode != 0 and "already running" in second.stdout + second.stderr
        t0 = time.monotonic()
        assert stop_stack(home)
        serve.wait(timeout=5)
        assert time.monotonic() - t0 < 15
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
    text = log.read_text()
    assert "stack stopped" in text and "Traceback" not in text, text[-3000:]
    for pid in (state["prefect_pid"], state["mlflow_pid"]):
        assert subprocess.run(["pgrep", "-g", str(pid)], capture_output=True).stdout == b""
    assert not port_in_use("127.0.0.1", pp) and not port_in_use("127.0.0.1", mp)
