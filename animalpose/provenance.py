"""Provenance of a run: the code's git commit, content fingerprints of the data it read, and the machine.

:class:`animalpose.tracking.Tracker` tags every run with :func:`git_commit`; training, evaluation and
prediction tag theirs with :func:`data_tags` of their datasets, so two runs on different data never look
alike in the MLflow UI.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path

from animalpose.paths import REPO_ROOT


def git_commit(repo: Path = REPO_ROOT) -> str:
    """``<sha>`` (with ``-dirty`` when the tree has changes), or ``unknown`` outside a git checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, str | int | None]:
    """What a figure's floating-point result depends on beside code and seed: the CPU model, the kernels
    torch dispatches to on it (``cpu_capability``: e.g. AVX512 or AVX2) and the numeric libraries' versions.

    Results are bit-for-bit only on the same torch wheel *and* the same kind of CPU: oneDNN and MKL choose
    their convolution and matrix kernels by instruction set, and those round differently (the 2026-12-04
    generated-horse table was off by a point on seed 0 for that reason alone; BENCHMARKS.md). Benchmarks
    record this next to their timings so a later comparison can tell.
    """
    import cv2
    import numpy
    import torch

    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    return {"cpu": model or platform.processor() or None, "cpus": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "numpy": numpy.__version__, "opencv": cv2.__version__, "python": platform.python_version(),
            "commit": git_commit()}


def fingerprint(path: str | Path) -> str:
    """A short content fingerprint of a dataset file or folder.

    Files: SHA-256 of the whole content up to 64 MiB, else of size + first and last 4 MiB.
    Folders: SHA-256 over the sorted (relative path, size, file fingerprint of annotation-like
    files: .json .csv .yaml .txt .slp .h5 .mat) of every file; images count by name and size.
    Returns the first 16 hex digits, or ``missing`` when the path does not exist.
    """
    p = Path(path)
    if p.is_file():
        return _file_digest(p)[:16]
    if not p.is_dir():
        return "missing"
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        h.update(f"{f.relative_to(p)}\0{f.stat().st_size}\0".encode())
        if f.suffix.lower() in {".json", ".csv", ".yaml", ".yml", ".txt", ".slp", ".h5", ".mat"}:
            h.update(_file_digest(f).encode())
    return h.hexdigest()[:16]


def _file_digest(p: Path, whole_up_to: int = 64 << 20, edge: int = 4 << 20) -> str:
    h = hashlib.sha256()
    size = p.stat().st_size
    with p.open("rb") as fh:
        if size <= whole_up_to:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        else:
            h.update(str(size).encode())
            h.update(fh.read(edge))
            fh.seek(size - edge)
            h.update(fh.read(edge))
    return h.hexdigest()


def data_tags(paths: Iterable[str | Path], prefix: str = "data") -> dict[str, str]:
    """``{"data.fingerprint.<name>": <fingerprint>}`` for each path (name = file or folder name)."""
    tags = {}
    for i, path in enumerate(paths):
        name = Path(path).name or f"path{i}"
        key = f"{prefix}.fingerprint.{name}"
        if key in tags:
            key = f"{key}.{i}"
        tags[key] = fingerprint(path)
        tags[f"{prefix}.path.{name}"] = str(path)
    return tags
