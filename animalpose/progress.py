"""Progress bars that suit where stderr goes: a live bar on a terminal, a plain line now and then in a log file.

A run on a cluster or under ``nohup`` writes stderr to a file. tqdm's bar redraws itself with carriage returns up
to ten times a second, which a log file keeps as one ever-growing line. Off a terminal the bar here redraws at
most every :data:`LOG_INTERVAL_S` seconds, each state on its own line, without cursor movements.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

LOG_INTERVAL_S = 30.0


class LineStream:
    """A text stream that turns tqdm's redraws into whole lines: carriage returns become line ends, and blank
    clearing writes and cursor movements (escape sequences) are dropped."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        for piece in text.replace("\r", "\n").split("\n"):
            line = piece.rstrip()
            if line and not line.startswith("\x1b"):
                self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False


def progress_bar(iterable: Any = None, **kwargs: Any):
    """``tqdm(iterable, **kwargs)`` on ``kwargs["file"]`` (default stderr): as given on a terminal (with
    ``dynamic_ncols``), else through :class:`LineStream` with ``delay`` and ``mininterval`` :data:`LOG_INTERVAL_S` and a
    fixed width of 100 ASCII columns."""
    from tqdm import tqdm

    stream = kwargs.pop("file", None) or sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        kwargs.setdefault("dynamic_ncols", True)
        return tqdm(iterable, file=stream, **kwargs)
    kwargs.pop("dynamic_ncols", None)
    kwargs.update(mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S, delay=LOG_INTERVAL_S, ncols=100,
                  ascii=True)
    return tqdm(iterable, file=LineStream(stream), **kwargs)
