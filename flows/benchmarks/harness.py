"""The benchmarks' harness: seeds, cached seed folders, mean ± std over seeds, timing, output.

- :func:`parse_seeds`: the ``--seeds`` option (comma- or space-separated integers, none repeated).
- :class:`SeedFolder`: one seed's folder. ``settings.json`` is written before the work
  starts and ``result.json`` atomically when it finished; a finished folder with the same settings is
  reused, an unfinished one resumes (the work underneath resumes from its own checkpoints), and a folder
  written with other settings is refused (DataError naming the file and the differing keys), never mixed
  into a table.
- :func:`claim_arm`: one arm's (one trained model's) settings file inside a seed folder, so that an
  interrupted arm resumes and a finished arm is never reused under other settings.
- :func:`stats` (mean and sample std over seeds) and :func:`paired` (the same of per-seed differences,
  treated minus control, which cancels what the seeds share).
- :class:`Stopwatch` and :func:`timed`: wall and process CPU seconds; :func:`load_average` (the machine
  is shared: every timing is read with it).
- :func:`echo_result`: the command's output, one JSON object with ``--json``, else the table.

Gap recovery is a metric: :func:`animalpose.evaluation.gap_recovery`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer

from animalpose.atomic import write_json_atomic, write_text_atomic
from animalpose.errors import DataError
from animalpose.paths import REPO_ROOT
from animalpose.provenance import machine

#: the ``--seeds`` option of every method benchmark
SEEDS_HELP = "Comma-separated seeds, e.g. 0,1,2."
# the real data sets beside the repository (../shared/data/real, SOURCES.md): the benches' default inputs
REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "real"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` (or ``"0 1 2"``) -> [0, 1, 2]; BadParameter on ``--seeds`` for no seed, a non-integer or a
    repeated seed (a repeated seed would count one run twice in the mean and std)."""
    try:
        seeds = [int(s) for s in text.replace(" ", ",").split(",") if s]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint="--seeds") from None
    if not seeds:
        raise typer.BadParameter("no seed given", param_hint="--seeds")
    if len(set(seeds)) != len(seeds):
        raise typer.BadParameter(f"duplicate seeds in {text!r}", param_hint="--seeds")
    return seeds


def key_values(given: Sequence[str] | None, hint: str) -> tuple[str, ...]:
    """A repeatable ``key=value`` option (config overrides) as a tuple; BadParameter on ``hint`` for an
    entry without ``=``."""
    bad = [a for a in given or [] if "=" not in a]
    if bad:
        raise typer.BadParameter(f"expected key=value, got {bad[0]!r}", param_hint=hint)
    return tuple(given or ())


# --------------------------------------------------------------------------------------------------
# statistics over seeds


def stats(values: Sequence[float | None], std_of_one: float | None = None) -> dict:
    """Mean and sample std (ddof 1) of the defined values: ``{"mean", "std", "n", "values"}``.

    ``n`` counts the defined values, ``values`` keeps all (None too). With no defined value the mean is
    None; with one the std is ``std_of_one`` (undefined, None, unless a table wants 0.0).
    """
    defined = np.array([v for v in values if v is not None], dtype=np.float64)
    n = len(defined)
    return {"mean": float(defined.mean()) if n else None,
            "std": float(defined.std(ddof=1)) if n > 1 else std_of_one,
            "n": n, "values": [None if v is None else float(v) for v in values]}


def paired(treated: Sequence[float], control: Sequence[float], std_of_one: float | None = None) -> dict:
    """:func:`stats` of the per-seed differences ``treated[i] - control[i]`` (same seeds, same order)."""
    if len(treated) != len(control):
        raise ValueError(f"paired differences need as many treated as control values ({len(treated)} vs "
                         f"{len(control)})")
    return stats([t - c for t, c in zip(treated, control, strict=True)], std_of_one)


# --------------------------------------------------------------------------------------------------
# one seed's folder


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; DataError naming the file when it is unreadable or not an object."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(str(path), "file", f"cannot read JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise DataError(str(path), "file", "expected a JSON object")
    return doc


def portable(value: object) -> object:
    """Settings as they compare across checkouts: a shipped config file (an absolute ``.../configs/...yaml``)
    by its path from the checkout, any other absolute path with its symlinks resolved; dicts and lists
    element-wise. A cache made in one clone or worktree is then resumed from another."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable(v) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        parts = Path(value).parts
        if value.endswith((".yaml", ".yml")) and "configs" in parts:
            last = len(parts) - 1 - parts[::-1].index("configs")
            return "/".join(parts[last:])
        return os.path.realpath(value)
    return value


def check_settings(path: Path, found: object, wanted: dict) -> None:
    """Refuse ``found`` settings (read from ``path``) that differ from ``wanted`` (paths compared as
    :func:`portable`): DataError naming the file and each differing key."""
    if found == wanted or portable(found) == portable(wanted):
        return
    if not isinstance(found, dict):
        raise DataError(str(path), "settings", "missing or not an object; use another --out or remove the folder")
    diff = ", ".join(f"{k}: {found.get(k)!r} there, {wanted[k]!r} now" for k in wanted if found.get(k) != wanted[k])
    extra = [k for k in found if k not in wanted]
    if extra:
        diff = ", ".join(filter(None, [diff, f"unknown keys {extra}"]))
    raise DataError(str(path), "settings", f"this seed was run with other settings ({diff}); use another --out "
                                           f"or remove {path.parent}")


def claim_prepared(marker: Path, source: dict, *, adopt: bool = False) -> None:
    """Before prepared files beside ``marker`` are reused: check that ``marker`` names the same ``source``
    (e.g. the release and the subset they were read from; DataError naming the file and each differing
    key), or write it. ``adopt``: the folder holds files written before markers existed; they are taken as
    they are and no marker is written."""
    if marker.is_file():
        check_settings(marker, read_json(marker), source)
    elif not adopt:
        write_json_atomic(marker, source, indent=2)


@dataclass(frozen=True)
class SeedFolder:
    """``folder/settings.json`` (before the work) and ``folder/result.json`` (after; ``result_name``), keyed by
    ``settings``.

    ``result.json`` holds the result with the settings under ``"settings"``. ``settings.json`` holds
    ``{"settings": settings}``, or the settings themselves when ``bare_marker`` (the layout of the
    ``ccssl-real`` benchmark's folders, kept so that their caches stay valid).
    """

    folder: Path
    settings: dict
    bare_marker: bool = False
    result_name: str = "result.json"  # another name keeps a second scoring of the same work beside the first

    @property
    def result_path(self) -> Path:
        return self.folder / self.result_name

    @property
    def marker_path(self) -> Path:
        return self.folder / "settings.json"

    def finished(self) -> dict | None:
        """The finished result with these settings, or None when the seed has not finished; DataError when
        it finished with other settings."""
        if not self.result_path.is_file():
            return None
        doc = read_json(self.result_path)
        check_settings(self.result_path, doc.get("settings"), self.settings)
        return doc

    def start(self) -> bool:
        """Before the work: write ``settings.json``, or check the one an interrupted run left (DataError for
        other settings). True when resuming an interrupted run."""
        if self.marker_path.is_file():
            doc = read_json(self.marker_path)
            check_settings(self.marker_path, doc if self.bare_marker else doc.get("settings"), self.settings)
            return True
        write_json_atomic(self.marker_path, self.settings if self.bare_marker else {"settings": self.settings},
                          indent=2)
        return False

    def save(self, result: dict) -> dict:
        """Write ``result`` (with the settings) atomically as ``result.json``; returns what was written."""
        doc = {**result, "settings": self.settings}
        write_json_atomic(self.result_path, doc, indent=2)
        return doc


def claim_arm(config: Path, text: str, finished: bool, arm: str) -> None:
    """Before an arm runs: write its settings ``text`` (e.g. the run's YAML config) to ``config``.

    Unchanged settings are left alone (the arm resumes, or is reused when ``finished``); changed settings
    replace those of an unfinished arm (it had not produced a result), but an arm that ``finished`` with
    other settings is refused (DataError naming the file): resuming it would silently reuse the other run.
    """
    if config.is_file() and config.read_text() == text:
        return
    if finished:
        raise DataError(str(config), arm, f"this row was trained with other settings; remove "
                                          f"{config.with_suffix('')} or use another --out")
    write_text_atomic(config, text)


# --------------------------------------------------------------------------------------------------
# timing


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded (the machine is shared: timings are read with it)."""
    return [round(v, 2) for v in os.getloadavg()]


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call. The CPU time counts all threads of this process; with one
    thread it is close to the wall time the call would take on an idle core."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


class Stopwatch:
    """Wall and process CPU seconds since the start or the last :meth:`lap`, and the load before and after."""

    def __init__(self) -> None:
        self.load_before = load_average()
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        self.wall0, self.cpu0 = self.wall, self.cpu

    def lap(self, digits: int = 2) -> dict[str, float]:
        """``{"wall_s", "cpu_s"}`` since the last lap."""
        w, c = time.perf_counter(), time.process_time()
        out = {"wall_s": round(w - self.wall, digits), "cpu_s": round(c - self.cpu, digits)}
        self.wall, self.cpu = w, c
        return out

    def total(self) -> dict:
        """``{"wall_seconds", "cpu_seconds", "load_average": {"before", "after"}, "machine"}`` since the start
        (``machine``: :func:`animalpose.provenance.machine`, what the figures' rounding depends on)."""
        return {"wall_seconds": round(time.perf_counter() - self.wall0, 1),
                "cpu_seconds": round(time.process_time() - self.cpu0, 1),
                "load_average": {"before": self.load_before, "after": load_average()}, "machine": machine()}


def echo_result(result: dict, as_json: bool, *lines: str) -> None:
    """Print ``result`` as one JSON object (``--json``: machine-read), otherwise ``lines`` (table, timings)."""
    if as_json:
        typer.echo(json.dumps(result))
        return
    for line in lines:
        typer.echo(line)
