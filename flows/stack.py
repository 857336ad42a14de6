"""The local stack: a Prefect server and a lean MLflow server on 127.0.0.1, started and stopped together.

Both run as their own process groups, so stopping them ends every worker they spawned. Their PIDs
and ports go to a state file (written atomically) that ``animalpose serve --stop`` reads. Telemetry
is off for both; MLflow runs one worker without its job executor (the default starts 15 processes
and 2.3 GB).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from animalpose.data.watch import write_json_atomic
from animalpose.errors import AnimalposeError

QUIET_ENV = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


class StackError(AnimalposeError):
    """A server of the local stack failed to start or to answer its health check."""


@dataclass
class StackState:
    host: str
    prefect_port: int
    mlflow_port: int
    prefect_pid: int
    mlflow_pid: int
    home: str
    serve_pid: int | None = None  # the `animalpose serve` process serving the deployments (stopped first)

    @property
    def prefect_api_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}/api"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


def wait_healthy(url: str, proc: subprocess.Popen, name: str, log: Path, timeout: float) -> None:
    """Poll ``url`` until it answers 200; fail early if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise StackError(f"{name} exited with code {proc.returncode} before it was healthy; log {log}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise StackError(f"{name} did not answer {url} within {timeout:.0f} s; log {log}")


def _spawn(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("ab")
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def start_stack(
    home: Path,
    host: str = "127.0.0.1",
    prefect_port: int = 4200,
    mlflow_port: int = 5000,
    timeout: float = 120.0,
) -> StackState:
    """Start both servers, wait for their health checks, record the state file; return the state."""
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    state_file = home / "stack.json"
    if state_file.exists() and _alive(load_state(state_file)):
        raise StackError(
            f"a stack is already running (state file {state_file}); stop it with `animalpose serve --stop`"
        )
    for name, port in (("prefect", prefect_port), ("mlflow", mlflow_port)):
        if port_in_use(host, port):
            raise StackError(f"{name} port {host}:{port} is already in use; choose another with --{name}-port")

    env = {**os.environ, **QUIET_ENV, "PREFECT_HOME": str(home / "prefect")}
    env.pop("PREFECT_API_URL", None)  # the server itself must not point at another server
    bindir = Path(sys.executable).parent
    prefect = _spawn(
        [str(bindir / "prefect"), "server", "start", "--host", host, "--port", str(prefect_port)],
        env,
        home / "logs" / "prefect.log",
    )
    mlflow = _spawn(
        [
            str(bindir / "mlflow"),
            "server",
            "--host",
            host,
            "--port",
            str(mlflow_port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{home / 'mlflow.db'}",
            "--default-artifact-root",
            str(home / "mlartifacts"),
        ],
        env,
        home / "logs" / "mlflow.log",
    )
    state = StackState(host, prefect_port, mlflow_port, prefect.pid, mlflow.pid, str(home))
    write_json_atomic(state_file, asdict(state))
    try:
        wait_healthy(
            f"http://{host}:{prefect_port}/api/health",
            prefect,
            "prefect server",
            home / "logs" / "prefect.log",
            timeout,
        )
        wait_healthy(
            f"http://{host}:{mlflow_port}/health", mlflow, "mlflow server", home / "logs" / "mlflow.log", timeout
        )
    except BaseException:
        stop_stack(home)
        raise
    return state


def load_state(state_file: Path) -> StackState:
    try:
        return StackState(**json.loads(Path(state_file).read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise StackError(f"{state_file}: unreadable stack state: {exc}") from exc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive(state: StackState) -> bool:
    return _pid_alive(state.prefect_pid) or _pid_alive(state.mlflow_pid)


def _stop_group(pid: int, grace: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        try:  # reap our own child so it does not linger as a zombie
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def record_serve_pid(home: Path, pid: int) -> None:
    """Note in the state file the process serving the deployments, so that `serve --stop` ends it too."""
    state_file = Path(home).resolve() / "stack.json"
    state = load_state(state_file)
    state.serve_pid = int(pid)
    write_json_atomic(state_file, asdict(state))


def _stop_process(pid: int, grace: float) -> None:
    """SIGTERM ``pid`` and wait until it is gone (at most ``grace`` s; it ends its own children)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _pid_alive(pid):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)


def stop_stack(home: Path, grace: float = 15.0) -> bool:
    """Stop the serving process and both servers recorded under ``home``; False when nothing was recorded.

    The serving process goes first (it would otherwise print connection errors once the servers are
    gone); it is skipped when it is this process or its supervisor (stopping from inside `serve`)."""
    state_file = Path(home).resolve() / "stack.json"
    try:
        state = load_state(state_file)
    except StackError:  # no state file (never started, or another stop got there first)
        return False
    if state.serve_pid and state.serve_pid not in (os.getpid(), os.getppid()):
        _stop_process(state.serve_pid, grace)
    for pid in (state.prefect_pid, state.mlflow_pid):
        _stop_group(pid, grace)
    state_file.unlink(missing_ok=True)
    return True
