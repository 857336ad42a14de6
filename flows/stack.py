"""The local stack: a Prefect server and a lean MLflow server on 127.0.0.1, started and stopped together.

The MLflow server serves the project's own store (:func:`animalpose.tracking.default_tracking_uri`,
``<data home>/mlflow.db`` with artifacts beside it), the store ``animalpose demo`` and the CLI write
to: a deployment run after the demo adds to the same record, and the UI shows both.

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
from animalpose.outputs import pid_alive
from animalpose.telemetry import TELEMETRY_OFF

QUIET_ENV = {
    **TELEMETRY_OFF,
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
    serve_pid: int = 0  # the `animalpose serve` process serving the deployments (0: none recorded)

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


def mlflow_server_command(store_uri: str, host: str, port: int) -> list[str]:
    """``mlflow server`` on ``store_uri`` with one worker; artifacts of a SQLite store live beside its
    database (``<db dir>/mlartifacts``, where :class:`~animalpose.tracking.Tracker` puts them too). Run
    it with :data:`QUIET_ENV` (no job executor: 2 processes instead of 10)."""
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", host, "--port", str(port),
           "--workers", "1", "--backend-store-uri", store_uri]
    if store_uri.startswith("sqlite:///"):
        cmd += ["--default-artifact-root", str(Path(store_uri[len("sqlite:///"):]).parent / "mlartifacts")]
    return cmd


def ui_process(store_uri: str | None, host: str = "127.0.0.1", port: int = 5000) -> tuple[list[str], dict[str, str]]:
    """The lean MLflow UI's command line and environment for ``store_uri`` (None: the project's store,
    :func:`animalpose.tracking.default_tracking_uri`; ``$MLFLOW_TRACKING_URI`` is not consulted, since it
    may name a server rather than a store). ``mlflow ui`` with its defaults is 10 processes and about
    1.35 GB; one worker without the job executor is 2 processes and about 530 MB."""
    from animalpose.tracking import default_tracking_uri

    uri = store_uri or default_tracking_uri()
    if uri.startswith(("http://", "https://")):
        raise StackError(f"{uri} is a tracking server, not a store: open it in a browser")
    return mlflow_server_command(uri, host, port), {**os.environ, **QUIET_ENV}


def start_stack(
    home: Path,
    host: str = "127.0.0.1",
    prefect_port: int = 4200,
    mlflow_port: int = 5000,
    timeout: float = 120.0,
    store_uri: str | None = None,
    say=None,
) -> StackState:
    """Start both servers, wait for their health checks, record the state file; return the state.

    ``store_uri``: the MLflow store the server serves (default: the project's,
    :func:`animalpose.tracking.default_tracking_uri`). ``say(text)``: told what the start waits for."""
    from animalpose.tracking import default_tracking_uri

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
    store_uri = store_uri or default_tracking_uri()
    if store_uri.startswith("sqlite:///"):
        Path(store_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow = _spawn(mlflow_server_command(store_uri, host, mlflow_port), env,
                    home / "logs" / "mlflow.log")
    state = StackState(host, prefect_port, mlflow_port, prefect.pid, mlflow.pid, str(home))
    write_json_atomic(state_file, asdict(state))
    say = say or (lambda text: None)
    try:
        t0 = time.monotonic()
        # both start at once; the MLflow server is usually ready first, so it is waited for first
        say(f"starting the MLflow server on {host}:{mlflow_port} (store: {store_uri}) and the Prefect server "
            f"on {host}:{prefect_port} (logs: {home / 'logs'})")
        wait_healthy(
            f"http://{host}:{mlflow_port}/health", mlflow, "mlflow server", home / "logs" / "mlflow.log", timeout
        )
        say(f"MLflow server ready ({time.monotonic() - t0:.0f} s); waiting for the Prefect server")
        wait_healthy(
            f"http://{host}:{prefect_port}/api/health",
            prefect,
            "prefect server",
            home / "logs" / "prefect.log",
            timeout,
        )
        say(f"Prefect server ready ({time.monotonic() - t0:.0f} s)")
    except BaseException:
        stop_stack(home)
        raise
    return state


def load_state(state_file: Path) -> StackState:
    try:
        return StackState(**json.loads(Path(state_file).read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise StackError(f"{state_file}: unreadable stack state: {exc}") from exc


def _alive(state: StackState) -> bool:
    return pid_alive(state.prefect_pid) or pid_alive(state.mlflow_pid)


def _group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    try:  # reap our own child so it does not linger as a zombie
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return False


def _stop_groups(pids: list[int], grace: float) -> None:
    """SIGTERM every process group in ``pids`` at once, SIGKILL what is left ``grace`` seconds later: the
    servers shut down side by side, so stopping both takes the slower one's time, not the sum (on 2 loaded
    cores the Prefect server took 3 s and the MLflow server over 5 s)."""
    live = []
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
            live.append(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        live = [pid for pid in live if not _group_gone(pid)]
        if live:
            time.sleep(0.2)
    for pid in live:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def record_serving(home: Path, pid: int) -> None:
    """Record ``pid`` as the process serving the deployments of the stack under ``home``."""
    state_file = Path(home).resolve() / "stack.json"
    state = load_state(state_file)
    state.serve_pid = pid
    write_json_atomic(state_file, asdict(state))


def _stop_serving(pid: int, grace: float) -> None:
    """Ask the serving process to stop (SIGTERM: it stops its runner, then the servers, and exits); SIGKILL
    when it is still there after ``grace`` seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid) or _is_zombie(pid):
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def stop_stack(home: Path, grace: float = 5.0, serve_grace: float = 16.0) -> bool:
    """Stop what the stack under ``home`` runs: the serving process first (from another process; its
    runner must not outlive the API it talks to), then both servers. Returns False when nothing was
    recorded.

    The serving process recorded is the one the user started: under :mod:`animalpose.cli.supervise` the
    supervisor, which passes the stop on to `serve` and kills its group after 15 s, so ``serve_grace``
    waits longer than that before a SIGKILL (which would leave that group to itself); it returns as soon as
    the process is gone."""
    state_file = Path(home).resolve() / "stack.json"
    try:
        state = load_state(state_file)
    except StackError:  # no state file (never started, or another stop got there first)
        return False
    # not this process, nor its supervisor (the stop from inside a supervised `serve`'s clean-up)
    if state.serve_pid and state.serve_pid not in (os.getpid(), os.getppid()) and pid_alive(state.serve_pid):
        _stop_serving(state.serve_pid, serve_grace)
    _stop_groups([state.prefect_pid, state.mlflow_pid], grace)
    state_file.unlink(missing_ok=True)
    return True
