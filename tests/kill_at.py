"""Run ``animalpose ARGS...`` and SIGKILL it at a chosen moment: the kill tests' helper (a script, not a test).

``KILL_AT`` (environment) says when:

- ``call:<module>:<attr>:<n>``: just before the n-th call of ``module.attr`` (``attr`` may be ``Class.method``),
  e.g. ``call:torch.optim:Adam.step:3`` inside the third optimiser step;
- ``write:<path suffix>:<n>``: in the middle of the n-th write of a checkpoint or JSON file whose path ends with
  the suffix: half of its bytes are in the temporary file beside it (what a kill during the write leaves), the
  file itself is not replaced.

Usage: ``KILL_AT=write:best.ckpt:1 python tests/kill_at.py train --config CFG --out OUT``.
"""


import importlib
import io
import os
import signal
import sys
from pathlib import Path


def die() -> None:
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def kill_at_call(module_name: str, attr: str, n: int) -> None:
    """SIGKILL just before the n-th call of ``module.attr`` (``attr``: a function or ``Class.method``)."""
    owner, name = importlib.import_module(module_name), attr
    if "." in attr:
        cls, name = attr.split(".")
        owner = getattr(owner, cls)
    real, count = getattr(owner, name), [0]

    def hooked(*args, **kwargs):
        count[0] += 1
        if count[0] == n:
            die()
        return real(*args, **kwargs)

    setattr(owner, name, hooked)


def kill_in_write(suffix: str, n: int) -> None:
    """SIGKILL half-way through the n-th checkpoint / JSON write to a path ending with ``suffix``."""
    import torch

    from animalpose import atomic
    from animalpose.adapt import diagnostics
    from animalpose.engine import checkpoint

    count = [0]

    def half_write(path, data: bytes) -> None:
        if Path(path).as_posix().endswith(suffix):
            count[0] += 1
            if count[0] == n:
                with atomic.atomic_path(path) as tmp, open(tmp, "wb") as fh:
                    fh.write(data[: len(data) // 2])
                    fh.flush()
                    os.fsync(fh.fileno())
                    die()

    real_save, real_json = checkpoint.atomic_torch_save, diagnostics.write_json

    def save(obj, path):
        buf = io.BytesIO()
        torch.save(obj, buf)
        half_write(path, buf.getvalue())
        return real_save(obj, path)

    def write_json(doc, path):
        half_write(path, b'{"rounds": [')
        return real_json(doc, path)

    checkpoint.atomic_torch_save = save
    diagnostics.write_json = write_json


if __name__ == "__main__":
    kind, *spec = os.environ["KILL_AT"].split(":")
    if kind == "call":
        kill_at_call(spec[0], spec[1], int(spec[2]))
    else:
        kill_in_write(spec[0], int(spec[1]))
    from animalpose.cli import main

    main(sys.argv[1:])
