"""`serve` and `demo` stopped by SIGTERM (issue 26, the signal checks): no process of theirs is alive 15 s
later, and no traceback is printed. (`serve --stop`: tests/flows/test_stack.py; the supervisor with stand-in
commands: tests/cli/test_supervise.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from flows.stack import free_port, port_in_use

ROOT = Path(__file__).resolve().parents[2]
GRACE_S = 15.0


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "ANIMALPOSE_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_LOCAL_STORAGE_PATH": str(tmp_path / "results"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("PREFECT_API_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _tree(pid: int, groups: tuple[int, ...] = ()) -> set[int]:
    """``pid``, its descendants and every member of the process groups ``groups`` (servers run in their own)."""
    found = {pid}
    try:
        found |= {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        pass
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) in groups:
                found.add(p.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return found


def _alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (a zombie waiting to be reaped has ended)."""
    out = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.add(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _sigterm_and_wait(proc: subprocess.Popen, pids: set[int]) -> float:
    """SIGTERM to the process the user started; seconds until none of ``pids`` is alive (fails after 15 s)."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    while _alive(pids):
        assert time.monotonic() - t0 < GRACE_S, f"alive {GRACE_S:.0f} s after SIGTERM: " + ", ".join(
            " ".join(psutil.Process(p).cmdline()[:4]) for p in _alive(pids))
        time.sleep(0.2)
    proc.wait(timeout=5)
    return time.monotonic() - t0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigterm_ends_serve_and_both_servers_within_15_s(tmp_path):
    pp, mp = free_port(), free_port()
    home, log = tmp_path / "stack", tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "animalpose", "serve", "--home", str(home), "--prefect-port", str(pp),
           "--mlflow-port", str(mp), "--no-deployments"]
    with log.open("wb") as out:
        serve = subprocess.Popen(cmd, env=_env(tmp_path), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    pids: set[int] = set()
    try:
        deadline = time.monotonic() + 300
        while "Servers are up" not in log.read_text() and serve.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "Servers are up" in log.read_text(), log.read_text()[-3000:]
        state = json.loads((home / "stack.json").read_text())
        pids = _tree(serve.pid, (state["prefect_pid"], state["mlflow_pid"]))
        assert {state["prefect_pid"], state["mlflow_pid"]} <= pids and len(pids) >= 4  # supervisor, serve, 2 servers
        _sigterm_and_wait(serve, pids)
    finally:
        for pid in _alive(pids | {serve.pid}):
            os.kill(pid, signal.SIGKILL)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert not port_in_use("127.0.0.1", pp) and not port_in_use("127.0.0.1", mp)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigterm_ends_a_running_demo_within_15_s(tmp_path):
    """Killed in the middle of its flow (after the first stage has finished): the flow, its task and every
    process it started end within 15 s (before: the task crashed and the flow hung until SIGKILL)."""
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen([sys.executable, "-m", "animalpose", "demo", "--preset", "smoke", "--json"],
                                env=_env(tmp_path), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    pids: set[int] = set()
    try:
        deadline = time.monotonic() + 600
        while not log.read_text().strip() and demo.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert demo.poll() is None and log.read_text().strip(), log.read_text()[-3000:]
        pids = _tree(demo.pid)
        assert len(pids) >= 2  # the supervisor and the demo itself
        _sigterm_and_wait(demo, pids)
    finally:
        for pid in _alive(pids | {demo.pid}):
            os.kill(pid, signal.SIGKILL)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert demo.returncode != 0  # interrupted, not reported as a success
