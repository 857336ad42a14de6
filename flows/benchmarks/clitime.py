"""`animalpose bench cli`: how long the command takes to answer, against the interpreter starting.

    animalpose bench cli --repeats 7 --json

Runs ``python -c pass`` and ``python -m animalpose --help`` (and the other commands given) in fresh
processes, interleaved, ``repeats`` times each, and reports the median wall seconds of each and its ratio
to ``python -c pass`` (the floor: what any Python command costs on this machine now). The ratio is the
figure to compare across machines and loads; the seconds are read with the load average.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import typer

from animalpose.paths import REPO_ROOT

#: the commands timed by default (arguments after ``python -m animalpose``)
DEFAULT_COMMANDS = ("--help", "--version", "schemas list")


def _run(argv: list[str], root: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(root)}
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return wall


def cli_times(commands: tuple[str, ...] = DEFAULT_COMMANDS, repeats: int = 5, checkouts: tuple[Path, ...] = ()) -> dict:
    """Median wall seconds of ``python -c pass`` and of each ``python -m animalpose <command>``, interleaved.

    ``checkouts``: other source trees (e.g. an older commit unpacked with ``git archive``) whose
    ``animalpose`` is timed in the same rounds, keyed ``<path>: <command>``, for before/after ratios.

    Returns ``{"python_s", "commands": {command: {"median_s", "ratio", "times"}}, "repeats", "load_average"}``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    base = [sys.executable, "-c", "pass"]
    roots = {"": REPO_ROOT, **{f"{Path(p).resolve()}: ": Path(p).resolve() for p in checkouts}}
    argvs = {f"{tag}{c}": ([sys.executable, "-m", "animalpose", *c.split()], root)
             for tag, root in roots.items() for c in commands}
    load_before = [round(v, 2) for v in os.getloadavg()]
    floor: list[float] = []
    times: dict[str, list[float]] = {c: [] for c in argvs}
    for _ in range(repeats):
        floor.append(_run(base, REPO_ROOT))
        for c, (argv, root) in argvs.items():
            times[c].append(_run(argv, root))
    python_s = statistics.median(floor)
    return {"bench": "cli", "python_s": round(python_s, 4), "repeats": repeats,
            "commands": {c: {"median_s": round(statistics.median(t), 3),
                             "ratio": round(statistics.median(t) / python_s, 1),
                             "times": [round(x, 3) for x in t]} for c, t in times.items()},
            "load_average": {"before": load_before, "after": [round(v, 2) for v in os.getloadavg()]},
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "python": sys.version.split()[0]}


def bench_command(
    command: list[str] = typer.Option(list(DEFAULT_COMMANDS), "--command",
                                      help="Arguments after `animalpose` to time (repeatable)."),
    repeats: int = typer.Option(5, min=1, help="Runs of each (median reported), interleaved."),
    checkout: list[Path] = typer.Option([], "--checkout", exists=True, file_okay=False,
                                        help="Another source tree to time in the same rounds (repeatable), e.g. "
                                             "`git archive <commit> | tar -x -C DIR`."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Wall time of `animalpose --help` as a ratio to `python -c pass`."""
    r = cli_times(tuple(command), repeats, tuple(checkout))
    if as_json:
        typer.echo(json.dumps(r))
        return
    typer.echo(f"python -c pass: {r['python_s']:.3f} s (median of {repeats}; load {r['load_average']['before'][0]})")
    for c, v in r["commands"].items():
        typer.echo(f"animalpose {c}: {v['median_s']:.3f} s = {v['ratio']:.1f}x")
