"""Detect new target data in a watched folder, for scheduled retraining.

A :class:`TargetWatcher` fingerprints every image or video under a folder (path, size, modification
time and a hash of the first and last 64 KiB, so a renamed or re-encoded file is noticed without
reading whole videos) and remembers, in an atomically written JSON state file, what it has already
adapted on. ``new_files()`` lists what has arrived or changed since; ``mark_seen()`` records a batch
once the retraining run that used it has finished, so a crashed run sees the same files again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from animalpose import atomic
from animalpose.data.records import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from animalpose.errors import DataError

_EDGE = 64 * 1024


def file_fingerprint(path: Path) -> str:
    """A content fingerprint: size plus a SHA-256 of the first and last 64 KiB."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(_EDGE))
        if size > _EDGE:
            f.seek(max(size - _EDGE, _EDGE))
            h.update(f.read(_EDGE))
    return h.hexdigest()[:32]


def write_json_atomic(path: Path, data) -> None:
    """Write JSON (indent 1, sorted keys) through a temporary file in the same folder, then rename."""
    atomic.write_json_atomic(path, data, indent=1, sort_keys=True)


@dataclass
class TargetWatcher:
    """Watches ``folder`` for target images and videos; ``state_file`` holds what was already used."""

    folder: Path
    state_file: Path

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.state_file = Path(self.state_file)

    def scan(self) -> dict[str, str]:
        """Relative path -> fingerprint of every image or video under the folder."""
        if not self.folder.is_dir():
            raise DataError(str(self.folder), "target_folder", "watched folder does not exist")
        suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
        found = {}
        for path in sorted(self.folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in suffixes and not path.name.startswith("."):
                found[path.relative_to(self.folder).as_posix()] = file_fingerprint(path)
        return found

    def seen(self) -> dict[str, str]:
        if not self.state_file.exists():
            return {}
        try:
            data = json.loads(self.state_file.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(str(self.state_file), "<json>", f"malformed watcher state: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("seen"), dict):
            raise DataError(str(self.state_file), "seen", "expected an object mapping paths to fingerprints")
        return data["seen"]

    def new_files(self) -> list[str]:
        """Relative paths that are new or whose content changed since they were marked seen."""
        seen = self.seen()
        return [p for p, fp in self.scan().items() if seen.get(p) != fp]

    def mark_seen(self, files: list[str]) -> None:
        current = self.scan()
        seen = self.seen()
        for p in files:
            if p not in current:
                raise DataError(str(self.folder / p), "path", "not in the watched folder: cannot mark it")
            seen[p] = current[p]
        write_json_atomic(self.state_file, {"folder": str(self.folder), "seen": seen})

    def dataset_fingerprint(self) -> str:
        """One hash of the folder's current content (for MLflow tags and task cache keys)."""
        h = hashlib.sha256()
        for p, fp in self.scan().items():
            h.update(f"{p}:{fp}\n".encode())
        return h.hexdigest()[:16]
