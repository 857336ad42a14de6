"""`serve` and `demo` run supervised: a signal ends the command and every process it started within the grace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import animalpose.cli as cli
from flows import stack


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def _supervisor(tmp_path: Path, child_code: str, grace: float, ignore_sigint: bool = False) -> subprocess.Popen:
    child = tmp_path / "child.py"
    child.write_text(textwrap.dedent(child_code))
    module = Path(__file__).resolve().parents[2] / "animalpose" / "cli" / "supervise.py"
    # the module alone (standard library only), not the whole CLI: the test does not wait on its imports
    code = (f"import importlib.util, sys; spec = importlib.util.spec_from_file_location('supervise', {str(module)!r}); "
            f"m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            f"sys.exit(m.run_supervised([], grace={grace}, command=[sys.executable, {str(child)!r}]))")
    return subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                            stderr=subprocess.PIPE, text=True, preexec_fn=_ignore_sigint if ignore_sigint else None)


def _ignore_sigint() -> None:
    """What a shell does to a background job of a script (no job control)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_a_command_that_ignores_signals_is_killed_with_its_children_after_the_grace(tmp_path):
    """The `demo` hang of issue 26: the command ignores the signal; it and its worker still end."""
    pids = tmp_path / "pids.json"
    sup = _supervisor(tmp_path, f"""
        import json, signal, subprocess, sys, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        worker = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                   "signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)"])
        open({str(pids)!r}, "w").write(json.dumps([__import__("os").getpid(), worker.pid]))
        time.sleep(600)
    """, grace=2.0)
    _wait_for(pids)
    child, worker = json.loads(pids.read_text())
    t0 = time.monotonic()
    sup.send_signal(signal.SIGTERM)
    code = sup.wait(timeout=15)
    assert time.monotonic() - t0 < 15
    assert code == 137  # 128 + SIGKILL: the child had to be killed
    end = time.monotonic() + 5
    while (_alive(child) or _alive(worker)) and time.monotonic() < end:
        time.sleep(0.1)
    assert not _alive(child) and not _alive(worker)


def test_a_cooperating_command_cleans_up_and_its_exit_code_is_kept(tmp_path):
    pids, cleaned = tmp_path / "pids.json", tmp_path / "cleaned"
    sup = _supervisor(tmp_path, f"""
        import json, os, sys, time
        try:  # the pid file is written inside the try: the stop can only come after it (a loaded machine
            open({str(pids)!r}, "w").write(json.dumps([os.getpid()]))  # once saw it land before the try: 130)
            time.sleep(600)
        except KeyboardInterrupt:  # what Ctrl-C, SIGTERM and `serve --stop` arrive as
            open({str(cleaned)!r}, "w").write("yes")
            sys.exit(3)
    """, grace=10.0)
    _wait_for(pids)
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(timeout=15) == 3
    assert cleaned.read_text() == "yes"
    assert "Traceback" not in sup.stderr.read()


def test_a_command_started_with_sigint_ignored_still_hears_the_stop(tmp_path):
    """`animalpose serve &` in a script: the shell starts it with SIGINT ignored. The supervisor's child must
    still get the SIGINT as KeyboardInterrupt and clean up, not sit out the grace until the SIGKILL."""
    pids, cleaned = tmp_path / "pids.json", tmp_path / "cleaned"
    sup = _supervisor(tmp_path, f"""
        import json, os, sys, time
        open({str(pids)!r}, "w").write(json.dumps([os.getpid()]))
        try:
            time.sleep(600)
        except KeyboardInterrupt:
            open({str(cleaned)!r}, "w").write("yes")
            sys.exit(3)
    """, grace=10.0, ignore_sigint=True)
    _wait_for(pids)
    t0 = time.monotonic()
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(timeout=15) == 3  # not 137: killed after the grace
    assert time.monotonic() - t0 < 5 and cleaned.read_text() == "yes"


def _sleeper(own_session: bool = True) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=own_session)


def test_serve_stop_ends_the_serving_process_first_then_the_servers(tmp_path):
    prefect, mlflow, serving = _sleeper(), _sleeper(), _sleeper()
    state = stack.StackState("127.0.0.1", 1, 2, prefect.pid, mlflow.pid, str(tmp_path), serving.pid)
    (tmp_path / "stack.json").write_text(json.dumps(state.__dict__))
    t0 = time.monotonic()
    assert stack.stop_stack(tmp_path, grace=5) is True
    assert time.monotonic() - t0 < 15
    for p in (serving, prefect, mlflow):
        assert p.wait(timeout=5) is not None
    assert not (tmp_path / "stack.json").exists()
    assert stack.stop_stack(tmp_path) is False  # a second stop finds nothing and says so


def test_an_old_state_file_without_a_serving_process_still_stops(tmp_path):
    prefect, mlflow = _sleeper(), _sleeper()
    old = {"host": "127.0.0.1", "prefect_port": 1, "mlflow_port": 2, "prefect_pid": prefect.pid,
           "mlflow_pid": mlflow.pid, "home": str(tmp_path)}
    (tmp_path / "stack.json").write_text(json.dumps(old))
    assert stack.stop_stack(tmp_path, grace=5) is True
    assert prefect.wait(timeout=5) is not None and mlflow.wait(timeout=5) is not None


@pytest.mark.parametrize(("args", "supervised"), [(["demo", "--preset", "smoke"], True),
                                                   (["serve", "--home", "/x/stack"], True),
                                                   (["serve", "--stop"], False), (["demo", "--help"], False),
                                                   (["train", "--config", "c.yaml"], False)])
def test_main_runs_serve_and_demo_supervised(monkeypatch, args, supervised):
    seen = {}

    def fake(argv, on_exit=None):
        seen.update(argv=argv, on_exit=on_exit)
        return 0

    monkeypatch.delenv("ANIMALPOSE_SUPERVISED", raising=False)
    monkeypatch.setattr(cli, "run_supervised", fake)
    monkeypatch.setattr(cli, "app", lambda **kw: seen.update(app=kw["args"]))
    try:
        cli.main(args)
    except SystemExit as exc:
        assert exc.code == 0
    assert ("argv" in seen) == supervised and ("app" in seen) == (not supervised)
    if supervised and args[0] == "serve":
        assert seen["on_exit"] is not None
    monkeypatch.setenv("ANIMALPOSE_SUPERVISED", "1")  # inside the supervisor: the command itself runs
    seen.clear()
    cli.main(args)
    assert "app" in seen and "argv" not in seen


def _state(home, prefect, mlflow, serve_pid):
    state = stack.StackState("127.0.0.1", 1, 2, prefect.pid, mlflow.pid, str(home), serve_pid)
    (home / "stack.json").write_text(json.dumps(state.__dict__))


def test_a_refused_second_serve_leaves_the_running_stack_alone(tmp_path):
    """The supervisor of a second `serve` (refused: a stack runs) must not stop the first one's stack on
    its way out; the supervisor whose child started the stack does stop it."""
    from animalpose.cli import _own_stack_stopper

    prefect, mlflow, first = _sleeper(), _sleeper(), _sleeper()
    try:
        _state(tmp_path, prefect, mlflow, first.pid)  # the first serve's stack, recorded before we start
        _own_stack_stopper(tmp_path)()  # the second one's clean-up
        assert prefect.poll() is None and mlflow.poll() is None and (tmp_path / "stack.json").exists()
        _state(tmp_path, prefect, mlflow, os.getpid())  # a stack this supervisor's child recorded
        _own_stack_stopper(tmp_path)()
        assert prefect.wait(timeout=10) is not None and mlflow.wait(timeout=10) is not None
        assert not (tmp_path / "stack.json").exists()
    finally:
        for p in (prefect, mlflow, first):
            p.kill()
            p.wait()


def test_servers_started_by_a_child_that_died_before_recording_itself_are_stopped(tmp_path):
    from animalpose.cli import _own_stack_stopper

    prefect, mlflow = _sleeper(), _sleeper()
    try:
        stop = _own_stack_stopper(tmp_path)  # nothing recorded when the supervisor starts
        _state(tmp_path, prefect, mlflow, 0)  # the child started the servers, then died
        stop()
        assert prefect.wait(timeout=10) is not None and mlflow.wait(timeout=10) is not None
    finally:
        for p in (prefect, mlflow):
            p.kill()
            p.wait()


def test_the_servers_shut_down_side_by_side(tmp_path):
    """Both servers get SIGTERM at once: two that each take 1.5 s to exit are both gone in about 1.5 s, not
    one after the other (on 2 loaded cores the Prefect server took 3 s and the MLflow server over 5 s)."""
    slow = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: (time.sleep(1.5), sys.exit(0)))\n"
            "open(sys.argv[1], 'w').close()\n"
            "time.sleep(600)\n")
    ready = [tmp_path / "a", tmp_path / "b"]
    prefect, mlflow = (subprocess.Popen([sys.executable, "-c", slow, str(r)], start_new_session=True) for r in ready)
    for r in ready:
        _wait_for(r)
    _state(tmp_path, prefect, mlflow, 0)
    t0 = time.monotonic()
    assert stack.stop_stack(tmp_path, grace=5) is True
    took = time.monotonic() - t0
    assert prefect.wait(timeout=1) == 0 and mlflow.wait(timeout=1) == 0  # exited on their own, no SIGKILL
    assert 1.4 < took < 2.9
