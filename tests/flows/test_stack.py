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
