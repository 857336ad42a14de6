"""Progress bars (animalpose.progress): live on a terminal, whole lines now and then in a log file."""

from __future__ import annotations

import io
import time

from animalpose import progress
from animalpose.progress import LOG_INTERVAL_S, LineStream, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_the_bar_writes_whole_lines_rarely(monkeypatch):
    log = io.StringIO()
    bar = progress_bar(range(5), desc="epoch 1/2", file=log, leave=True)
    assert bar.mininterval == bar.delay == LOG_INTERVAL_S and bar.ncols == 100
    assert list(bar) == [0, 1, 2, 3, 4]
    bar.close()
    assert log.getvalue() == ""  # a pass shorter than the interval leaves no line
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.2)
    bar = progress_bar(total=6, desc="predict", file=log, leave=True)
    for _ in range(6):
        time.sleep(0.1)
        bar.update(1)
    bar.close()
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text and text.endswith("\n")
    lines = text.splitlines()
    # a line at most every 0.2 s (at most one an update, however slow the machine), and the last state's at the end
    assert 2 <= len(lines) <= 7 and all(line.startswith("predict: ") for line in lines) and "6/6" in lines[-1]


def test_on_a_terminal_the_bar_is_tqdms_own():
    tty = _Terminal()
    bar = progress_bar(total=3, file=tty, leave=False)
    assert bar.mininterval < 1 and bar.dynamic_ncols
    bar.update(3)
    bar.close()
    assert "\r" in tty.getvalue()


def test_line_stream_drops_clearing_writes_and_cursor_moves():
    out = io.StringIO()
    stream = LineStream(out)
    redraw = "\rpredict: 10%|#    | 1/10\r          \r\x1b[A"
    assert stream.write(redraw) == len(redraw)  # what tqdm is told was written
    stream.write("\rpredict: 20%|##   | 2/10")
    assert out.getvalue() == "predict: 10%|#    | 1/10\npredict: 20%|##   | 2/10\n"
    assert not stream.isatty()
