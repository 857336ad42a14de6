"""Long-running commands (`serve`, `demo`) run under a small supervisor so that they always stop.

The supervisor (the process the user started) runs the command itself as a child in its own process
group (``python -m animalpose ...`` with ``ANIMALPOSE_SUPERVISED=1``) and only waits for it:

- SIGTERM, SIGHUP or Ctrl-C (SIGINT) reaching the supervisor is passed to the child's whole group
  as SIGINT, so the command's own clean-up runs as for a Ctrl-C (Prefect's SIGTERM handling would
  crash the running task and report it instead);
- if the group is still alive ``GRACE_S`` seconds later, it is killed (SIGKILL), and the
  ``on_exit`` clean-up runs (`serve`: stop the servers recorded in the stack's state file, which
  live in process groups of their own).

So the command and every process it started end within ``GRACE_S`` seconds of the signal, whatever
the command was doing (a Prefect flow that crashes its task on SIGTERM and then waits on its
ephemeral API was the hang this replaces), and the supervisor exits with the child's code (or
128 + the signal). The supervisor prints nothing of its own on a normal exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from animalpose.outputs import pid_alive

SUPERVISED_ENV = "ANIMALPOSE_SUPERVISED"
GRACE_S = 15.0
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def is_supervised() -> bool:
    return os.environ.get(SUPERVISED_ENV) == "1"


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_supervised(argv: list[str], *, grace: float = GRACE_S, on_exit: Callable[[], None] | None = None,
                   command: list[str] | None = None) -> int:
    """Run ``animalpose <argv>`` (or ``command``) as a supervised child; return its exit code.

    ``grace``: seconds between the first forwarded signal and SIGKILL of the child's group.
    ``on_exit``: called once the child has ended (also after a kill), e.g. to stop servers it started.
    """
    cmd = command or [sys.executable, "-m", "animalpose", *argv]
    env = {**os.environ, SUPERVISED_ENV: "1"}
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # started as a background job of a script (the shell ignores SIGINT there): a child would inherit the
        # SIG_IGN, never hear the SIGINT that stops it, and be killed only after the grace (serve --stop: 25 s)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    child = subprocess.Popen(cmd, env=env, start_new_session=True)
    pgid = child.pid
    stopping = threading.Event()

    def kill_later() -> None:
        if child.poll() is None or pid_alive(pgid, group=True):
            _signal_group(pgid, signal.SIGKILL)

    def forward(signum, _frame) -> None:
        _signal_group(pgid, signal.SIGINT)
        if not stopping.is_set():
            stopping.set()
            timer = threading.Timer(grace, kill_later)
            timer.daemon = True
            timer.start()

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:  # a signal arrived between handler installs: forward it too
                forward(signal.SIGINT, None)
        if pid_alive(pgid, group=True):  # the command has exited; what it started (workers) gets the rest of the grace
            _signal_group(pgid, signal.SIGTERM)
            _wait_group(pgid, grace)
            _signal_group(pgid, signal.SIGKILL)
    finally:
        if on_exit is not None:
            on_exit()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code  # killed by a signal: the shell's convention (143, 137)


def _wait_group(pgid: int, timeout: float) -> None:
    """Wait until no process of group ``pgid`` is left (reaped or gone), at most ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and pid_alive(pgid, group=True):
        time.sleep(0.1)
