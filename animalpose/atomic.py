"""Atomic file writes: write a temporary file beside the target, then ``os.replace`` it over the target.

A reader sees either the previous file or the complete new one, never a half-written file; if the
writer fails, the target is left untouched and the temporary file is removed.

    with atomic_path("out/figure.png") as tmp:   # tmp: out/.figure.<random>.png
        cv2.imwrite(str(tmp), image)              # writers that pick the format by suffix still work

The temporary file is created empty (``O_EXCL``) with the permissions an ordinary ``open(path, "w")``
would give (0o666 minus the umask), in the target's folder (``os.replace`` is atomic only within
one file system), named ``.<stem>.<random><suffix>`` so it keeps the target's suffix.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "remove_temporaries", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]

# the name _create_temp gives: .<stem>.<8 hex><suffix>
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{8}(\.[^.]+)")


def _create_temp(path: Path) -> Path:
    """Create an empty, new file ``<folder>/.<stem>.<random><suffix>`` and return its path."""
    suffix = path.suffix or ".tmp"
    for _ in range(100):
        tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path, *, fsync: bool = False, mkdir: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same folder, same suffix); on success rename it over ``path``.

    fsync: flush the temporary file's contents to disk before the rename (for files that must survive
        a power cut, e.g. checkpoints).
    mkdir: create the target's folder first.

    On any exception inside the block (KeyboardInterrupt included) the temporary file is removed,
    ``path`` is left as it was, and the exception propagates.
    """
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path)
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path`` as a Path."""
    path = Path(path)
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return path


def write_text_atomic(path: str | Path, text: str, *, encoding: str | None = None, newline: str | None = None,
                      fsync: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically (``encoding``/``newline`` as for ``open``); returns ``path``."""
    path = Path(path)
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, "w", encoding=encoding, newline=newline) as fh:
        fh.write(text)
    return path


def write_json_atomic(path: str | Path, data: Any, *, fsync: bool = False, **dumps_kwargs: Any) -> Path:
    """``json.dumps(data, **dumps_kwargs)`` written to ``path`` atomically (no newline added); returns ``path``.

    The document is serialised before the temporary file is created, so a value JSON cannot encode
    raises without touching the folder.
    """
    text = json.dumps(data, **dumps_kwargs)
    return write_text_atomic(path, text, fsync=fsync)


def remove_temporaries(folder: str | Path, *, suffix: str | None = None, recursive: bool = False) -> list[Path]:
    """Delete the temporary files killed writers left in ``folder`` (names ``.<stem>.<8 hex><suffix>``, only
    with ``suffix`` when given; in every subfolder too with ``recursive``); returns what was removed.

    Call it only where no other process is writing into ``folder``: a live writer's temporary file has
    the same name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.rglob(".*") if recursive else folder.iterdir():
        m = _TEMP_NAME.fullmatch(p.name)
        if m and (suffix is None or m.group(1) == suffix) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
