"""`animalpose bench contention`: the demo's pretraining beside busy neighbours, old thread plan against new.

    OMP_NUM_THREADS= animalpose bench contention --busy 0,1,2 --images 256 --json

Issue 30's measurement: on a 2-core machine with one busy neighbour, the demo's pretraining (the quick
preset: a one-stack hourglass on generated 128-px horses, batch 16) should take at most 1.5x its
quiet-box time. For each number of busy neighbours (processes running ``while True: pass``), this runs one
epoch of ``images`` generated horses through :meth:`Trainer.train_epoch` in a fresh process per plan:

- ``new``: the thread plan of :mod:`animalpose.threads` (torch threads + loader workers = the free cores
  the 1-minute load leaves; a CPU trainer takes no loader worker on 2-3 free cores; decoded images cached);
- ``old``: the settings before issue 30 on the same code: torch's default threads (one per core), the
  quick preset's former ``data.workers: 2``, no image cache.

Each arm is a fresh process, so its plan reads the load as a user's command would. The plan reads the
1-minute load average, which lags: a run started right after another job ended still sees that job. So
before each arm the bench waits until the load average rounds to the number of busy neighbours (up to
``--settle`` seconds; the load each arm started under is reported), which is the situation the plan is
for: neighbours that have been running for a while. The order of the two arms alternates per level.

Leave ``OMP_NUM_THREADS`` unset (it would override both plans); the figures are wall seconds of one epoch
and their ratios to the same plan's quiet figure, all from one run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

from animalpose.paths import REPO_ROOT
from flows.benchmarks.harness import load_average
from flows.benchmarks.pipeline import quick_data, quick_trainer

OLD_WORKERS = 2  # configs/presets/quick.yaml before 9587eb8
BUSY_LOOP = "while True:\n    pass"


def run_epoch(ann: Path, plan: str, images: int, out: Path) -> dict:
    """One training epoch of the quick preset over the first ``images`` records of ``ann`` under ``plan``
    (``new`` or ``old``) in this process; wall and CPU seconds, the threads and workers it ran with."""
    import io

    import torch

    from animalpose.threads import configure_threads, loader_workers

    load_at_start = os.getloadavg()[0]
    if plan == "new":
        configure_threads(None)
        workers = loader_workers(None, "cpu")
        overrides = [f"data.workers={workers}"]
    elif plan == "old":
        configure_threads(os.cpu_count() or 1, OLD_WORKERS, stream=io.StringIO())
        workers = OLD_WORKERS
        overrides = [f"data.workers={workers}", "data.cache_mb=0"]
    else:
        raise ValueError(f"plan must be 'new' or 'old', got {plan!r}")
    threads = torch.get_num_threads()
    trainer = quick_trainer(ann, images, out, *overrides)
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train_epoch()
    wall = time.perf_counter() - t0
    return {"plan": plan, "seconds": round(wall, 2), "cpu_seconds": round(time.process_time() - c0, 2),
            "images_per_s": round(len(trainer.train_set) / wall, 2), "threads": threads, "workers": workers,
            "load_at_start": round(load_at_start, 2)}


def _settle(busy: int, limit_s: float) -> float:
    """Wait until the 1-minute load rounds to ``busy`` (at most ``limit_s``); the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s and int(os.getloadavg()[0] + 0.5) != busy:
        time.sleep(5)
    return round(time.monotonic() - t0, 1)


def _child(ann: Path, plan: str, images: int, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    code = ("import json, sys; from pathlib import Path; from flows.benchmarks.contention import run_epoch; "
            "print(json.dumps(run_epoch(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))))")
    proc = subprocess.run([sys.executable, "-c", code, str(ann), plan, str(images), str(out)], env=env,
                          cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the {plan} arm failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def contention(folder: Path, busy_levels: list[int], images: int = 256, settle_s: float = 240.0) -> dict:
    """Both plans at each number of busy neighbours; seconds per epoch and ratios to the quiet level."""
    ann = quick_data(folder, images)
    levels = []
    for i, busy in enumerate(busy_levels):
        loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)]
        try:
            arms = {}
            for plan in (["new", "old"] if i % 2 == 0 else ["old", "new"]):
                waited = _settle(busy, settle_s)
                arms[plan] = _child(ann, plan, images, folder / f"runs_{plan}_{busy}")
                arms[plan]["settle_s"] = waited
        finally:
            for p in loops:
                p.kill()
                p.wait()
        levels.append({"busy": busy, **arms})
    quiet = next((lv for lv in levels if lv["busy"] == 0), None)
    for lv in levels:
        for plan in ("new", "old"):
            if quiet is not None:
                lv[plan]["over_quiet_same_plan"] = round(lv[plan]["seconds"] / quiet[plan]["seconds"], 2)
                lv[plan]["over_quiet_new"] = round(lv[plan]["seconds"] / quiet["new"]["seconds"], 2)
        lv["old_over_new"] = round(lv["old"]["seconds"] / lv["new"]["seconds"], 2)
    return {"bench": "contention", "images": images, "levels": levels, "cpus": os.cpu_count(),
            "load_average_end": load_average()}


def bench_command(
    busy: str = typer.Option("0,1,2", help="Numbers of busy-looping neighbours, comma-separated."),
    images: int = typer.Option(256, min=16, help="Generated horses in the timed epoch."),
    settle: float = typer.Option(240.0, min=0, help="Seconds to wait at most for the load to reach each level."),
    data_dir: Path = typer.Option(Path(tempfile.gettempdir()) / "animalpose-pipeline-bench",
                                  help="Where the generated horses go (reused when there)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The demo's pretraining epoch beside 0, 1, 2 busy neighbours: the new thread plan against the old."""
    try:
        levels = [int(b) for b in busy.replace(" ", ",").split(",") if b]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {busy!r}", param_hint="--busy") from None
    if not levels or min(levels) < 0:
        raise typer.BadParameter(f"expected one or more counts >= 0, got {busy!r}", param_hint="--busy")
    r = contention(data_dir, levels, images, settle)
    if as_json:
        typer.echo(json.dumps(r))
        return
    for lv in r["levels"]:
        for plan in ("new", "old"):
            a = lv[plan]
            typer.echo(f"busy {lv['busy']} {plan:>3}: {a['seconds']:7.1f} s  {a['threads']} threads "
                       f"{a['workers']} workers  load {a['load_at_start']}  x quiet {a.get('over_quiet_same_plan')}")
