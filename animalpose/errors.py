"""Errors that name the file and the field, so bad input is found without a debugger."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Problem:
    """One problem found in a dataset or config: which file, which field, what is wrong."""

    file: str
    field: str
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"

    def to_dict(self) -> dict:
        return {"file": self.file, "field": self.field, "message": self.message, "severity": self.severity}


class AnimalposeError(Exception):
    """Base class of every error the library raises on purpose."""


class _Located:
    """An error carrying a :class:`Problem`: ``file`` and ``field`` read from it."""

    problem: Problem

    @property
    def file(self) -> str:
        return self.problem.file

    @property
    def field(self) -> str:
        return self.problem.field


class DataError(_Located, AnimalposeError, ValueError):
    """Bad input data: ``file`` and ``field`` say where."""

    def __init__(self, file: str, field: str, message: str):
        self.problem = Problem(str(file), field, message)
        super().__init__(str(self.problem))


class ConfigError(DataError):
    """A configuration file or override that does not validate."""


class OutputError(_Located, AnimalposeError, OSError):
    """An output that cannot be written: ``file`` is the path, ``field`` the option that named it."""

    def __init__(self, file: str, field: str, reason: str):
        self.problem = Problem(str(file), field, reason)
        self.reason = reason
        Exception.__init__(self, f"cannot write {file} ({field}): {reason}")

    def __str__(self) -> str:
        return self.args[0]


def missing_file_reason(path, what: str = "file") -> str:
    """Why ``path`` cannot be read as a file: "is a folder; a file is needed here" or "<what> not found"."""
    from pathlib import Path

    if Path(path).is_dir():
        return "is a folder; a file is needed here"
    return f"{what} not found"
