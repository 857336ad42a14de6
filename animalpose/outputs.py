"""Output paths: checked before work starts, written so that a kill leaves the old or the new, never half.

- :func:`check_output_dir` / :func:`check_output_file`: the path can be a folder / a file (not the other
  kind), its folder exists or can be made, a file can be created in it, and the file system has room.
  Each failure is an :class:`~animalpose.errors.OutputError` naming the path and the option
  ("cannot write OUT (--out): read-only file system").
- :func:`output_errors`: turns an ``OSError`` raised while writing (disk full, permission lost
  mid-run) into the same clear error.
- :func:`staged_folder`: a hidden folder beside the outputs; on success each file in it is renamed
  into place (``os.replace``, atomic per file), on failure it is removed, so a failed run adds nothing
  half-written. Stagings of killed runs (their process gone) are removed on the next start.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from animalpose.errors import OutputError

__all__ = ["MIN_FREE_BYTES", "check_output_dir", "check_output_file", "describe_os_error", "output_errors",
           "staged_folder"]

MIN_FREE_BYTES = 1 << 20  # below 1 MiB free nothing useful can be written (a checkpoint is megabytes)

_REASONS = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted (immutable or protected file?)",
    errno.ENOSPC: "no space left on device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOTDIR: "a path component is a file, not a folder",
    errno.EISDIR: "is a folder, a file is needed",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "file name too long",
}


def describe_os_error(exc: OSError) -> str:
    """A short reason for an OSError ("read-only file system", "no space left on device (disk full)")."""
    return _REASONS.get(exc.errno, exc.strerror or str(exc))


def _existing_ancestor(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_writable(folder: Path, target: Path, field: str) -> None:
    """Create, write one byte to and remove a file in ``folder`` (``os.access`` misses read-only mounts
    and immutable folders)."""
    probe = folder / f".write-probe.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0")
        finally:
            os.close(fd)
    except OSError as exc:
        raise OutputError(str(target), field, describe_os_error(exc)) from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass


def _check_room(folder: Path, target: Path, field: str, min_free: int) -> None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < min_free:
        raise OutputError(str(target), field, f"no space left on device (disk full: {free} bytes free, "
                                              f"at least {min_free} needed)")


def check_output_dir(path: str | Path, field: str = "--out", *, create: bool = True,
                     min_free: int = MIN_FREE_BYTES) -> Path:
    """Check that ``path`` is (or can become) a writable folder with room; ``create`` makes it. Returns it.

    Raises OutputError naming ``path`` and ``field``: a file where the folder should be (or above it),
    a folder that cannot be made, a read-only / immutable / full file system, no permission.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(str(path), field, "exists and is a file; a folder is needed here")
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise OutputError(str(path), field, f"{ancestor} is a file, not a folder")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(str(path), field, f"cannot create the folder: {describe_os_error(exc)}") from None
        folder = path
    else:
        folder = path if path.is_dir() else ancestor
    _probe_writable(folder, path, field)
    _check_room(folder, path, field, min_free)
    return path


def check_output_file(path: str | Path, field: str = "--out", *, min_free: int = MIN_FREE_BYTES) -> Path:
    """Check that a file can be written at ``path`` (its folder made if needed). Returns ``path``.

    Raises OutputError naming ``path`` and ``field``: a folder where the file should be, a file where its
    folder should be, a read-only / immutable / full file system, no permission.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(str(path), field, "is a folder; a file name is needed here")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(str(path), field, f"{parent} is a file, not a folder")
    try:
        check_output_dir(parent, field, min_free=min_free)
    except OutputError as exc:  # name the file the user gave, not its folder
        raise OutputError(str(path), field, exc.reason) from None
    return path


@contextmanager
def output_errors(path: str | Path, field: str = "--out") -> Iterator[None]:
    """Turn an OSError raised inside the block (disk full, permission lost) into an OutputError."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        where = exc.filename or path
        raise OutputError(str(where), field, describe_os_error(exc)) from exc


def pid_alive(pid: int, *, group: bool = False) -> bool:
    """Whether process ``pid`` exists, or with ``group`` any process of process group ``pid`` (one of another
    user counts as alive)."""
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_stagings(folder: Path, prefix: str) -> list[Path]:
    """Remove ``<folder>/.<prefix>.<pid>.<hex>`` stagings whose process is gone (killed runs)."""
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.glob(f".{prefix}.*.*"):
        parts = p.name.split(".")
        if len(parts) == 4 and parts[2].isdigit() and p.is_dir() and not pid_alive(int(parts[2])):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


@contextmanager
def staged_folder(out: Path, prefix: str) -> Iterator[Path]:
    """Yield ``out/.<prefix>.<pid>.<hex>/``; on success move every file in it to the same place under ``out``.

    Each file lands by ``os.replace`` (atomic per file: an earlier output of that name is either kept
    whole or replaced whole). On any exception the staging folder is removed and nothing under ``out``
    changes.
    """
    out = Path(out)
    remove_dead_stagings(out, prefix)
    stage = out / f".{prefix}.{os.getpid()}.{secrets.token_hex(4)}"
    stage.mkdir(parents=True)
    try:
        yield stage
        for src in sorted(p for p in stage.rglob("*") if p.is_file()):
            dst = out / src.relative_to(stage)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
