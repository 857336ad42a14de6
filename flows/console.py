"""What a person watching a flow sees: a line per finished stage, live bars in a terminal, no log noise.

Two modes (:func:`configure`, else chosen from the terminal):

- ``live`` (stderr is a terminal, no ``--json``): the stages' own progress bars run (training: one bar
  per epoch with loss, images/s and ETA; pseudo-labelling: one bar over the target images), and each
  finished stage prints its line.
- ``lines`` (``--json``, or output to a file or a pipe): no bars; each finished stage prints exactly
  one line (``stage_line``), e.g. ``12:03:04 stage round-2: target test PCK@0.05 45.0 % (31 s)``.

Every stage line also goes to the Prefect run logger at INFO, so a deployment run shows each stage's
headline metric in the Prefect UI. MLflow's and Prefect's own INFO lines are off unless ``verbose``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Literal

Mode = Literal["live", "lines"]
_mode: Mode | None = None

log = logging.getLogger("animalpose.stages")


def configure(*, json_output: bool = False, verbose: bool = False) -> Mode:
    """Choose the console mode for this process and set the log levels; returns the mode.

    ``verbose`` keeps MLflow's and Prefect's INFO lines; otherwise both log at WARNING (values the
    user set in ``MLFLOW_LOGGING_LEVEL`` / ``PREFECT_LOGGING_LEVEL`` win).
    """
    global _mode
    _mode = "lines" if json_output or not sys.stderr.isatty() else "live"
    level = "INFO" if verbose else "WARNING"
    for key in ("MLFLOW_LOGGING_LEVEL", "PREFECT_LOGGING_LEVEL"):
        os.environ.setdefault(key, level)
    for name in ("mlflow", "alembic"):  # mlflow may be imported already; alembic logs the store's migrations
        logging.getLogger(name).setLevel(os.environ["MLFLOW_LOGGING_LEVEL"])
    return _mode


def mode() -> Mode:
    """The configured mode, else ``live`` on a terminal and ``lines`` otherwise."""
    return _mode or ("live" if sys.stderr.isatty() else "lines")


def live() -> bool:
    """Whether stages show their progress bars (the ``progress`` argument of the library calls)."""
    return mode() == "live"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (a test's capture, a redirected stream)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _handler() -> None:
    if not log.handlers:
        h = _StderrHandler()
        h.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(h)
        log.setLevel(logging.INFO)
        log.propagate = False  # not twice through a root handler a host application configured


def stage_line(name: str, headline: str | None, seconds: float) -> str:
    """``stage <name>: <headline> (<seconds> s)``: the one line a finished stage prints."""
    return f"stage {name}: {headline or 'done'} ({seconds:.0f} s)"


def percent(label: str, value: float | None) -> str:
    """``<label> 45.0 %`` for a fraction (``n/a`` for None), the way the console shows every score."""
    return f"{label} {'n/a' if value is None else f'{100 * value:.1f} %'}"


def report(line: str) -> None:
    """Print ``line`` on the console and send it to the Prefect run logger (inside a flow or task run)."""
    _handler()
    log.info(line)
    try:
        from prefect.exceptions import MissingContextError
        from prefect.logging import get_run_logger

        get_run_logger().info(line)
    except (ImportError, MissingContextError):
        pass


class StageTimer:
    """The headline of a running stage; set ``headline`` before the block ends."""

    def __init__(self, name: str):
        self.name, self.headline, self.t0 = name, None, time.perf_counter()


@contextlib.contextmanager
def timed_stage(name: str) -> Iterator[StageTimer]:
    """Report ``stage_line`` when the block finishes (nothing when it raises: the failure is reported)."""
    timer = StageTimer(name)
    yield timer
    report(stage_line(name, timer.headline, time.perf_counter() - timer.t0))
