"""How many torch threads and loader workers this process runs: as many as the cores it may use hold.

A torch step with more intra-op threads than free cores does not slow down gracefully: every
parallel region waits for its slowest thread, and a thread that shares a core with another job is
descheduled for whole time slices. On 2 cores beside one busy process, 2 threads ran a training step
20x slower than 1 (issue 30). So by default the runnable threads of this process (torch intra-op
threads + loader worker processes) never exceed the cores that are free:

- **usable cores** = the CPUs this process may run on (``os.sched_getaffinity``: taskset, cgroup
  cpusets, Slurm), not the machine's count;
- **busy cores** = the 1-minute load average, scaled to the usable cores when the process may use only
  part of the machine (the load counts the whole machine), rounded (a core half busy counts as busy);
- **free cores** = usable - busy, at least 1;
- **loader workers** = half the free cores (at most 8), none when only one core is free;
- **torch threads** = the free cores the workers leave.

Loops that run the network on the CPU (the trainer, CC-SSL, WS-CDA: :func:`loader_workers` with a CPU
device) take fewer workers: one per :data:`CORES_PER_CPU_WORKER` free cores (none on 2 or 3), the rest as
torch threads. There the network costs ~50x what the data path does (quick preset, ``animalpose bench
pipeline --profile``: ~70 ms against ~1.3 ms of CPU per image), so a core is worth more as an intra-op
thread than as a worker that idles 98 % of the time: on 2 quiet cores, 2 threads with the data in the
trainer's process ran at 97 % of the network alone, 1 thread + 1 worker at 55 % (BENCHMARKS.md,
``animalpose bench pipeline`` on a quiet box).

``--threads N`` (train, evaluate, predict, adapt, demo), ``OMP_NUM_THREADS`` and ``data.workers`` in a
config override the choice; a choice that puts more runnable threads than free cores is kept but
warned about. When the load makes the plan smaller than on a quiet machine, or exceeds the usable cores,
one line on stderr says so and what is used.

:func:`plan_threads` is the pure policy (tested with a fake affinity and load); :func:`configure_threads`
reads the machine, applies the plan to torch once per process and prints the warning;
:func:`loader_workers` resolves ``data.workers`` (None = the plan's).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TextIO

#: loader workers beyond this rarely help a single GPU and each holds a copy of the dataset
MAX_WORKERS = 8
#: free cores per loader worker when the network runs on the CPU (see the module docstring)
CORES_PER_CPU_WORKER = 4


@dataclass(frozen=True)
class ThreadPlan:
    """Threads and workers for one process.

    Attributes:
        cores: CPUs this process may run on.
        load: the load average attributed to those CPUs.
        free: cores left after the busy ones (>= 1).
        threads: torch intra-op threads.
        workers: DataLoader worker processes where a config leaves ``data.workers`` unset.
        quiet_threads, quiet_workers: what the same request gets on an idle machine.
        warning: one line for stderr, or None.
    """

    cores: int
    load: float
    free: int
    threads: int
    workers: int
    quiet_threads: int
    quiet_workers: int
    warning: str | None = None
    auto_threads: bool = True  # threads chosen here (no --threads / OMP_NUM_THREADS): may be rebalanced

    @property
    def runnable(self) -> int:
        """Threads + worker processes this process keeps busy at once."""
        return self.threads + self.workers


def _split(free: int, threads: int | None, workers: int | None, max_workers: int) -> tuple[int, int]:
    if workers is None:
        if threads is None:
            workers = 0 if free < 2 else min(max_workers, free // 2)
        else:
            workers = min(max_workers, max(0, free - threads))
    if threads is None:
        threads = max(1, free - workers)
    return threads, workers


def plan_threads(cores: int, load: float, *, total_cores: int | None = None, threads: int | None = None,
                 workers: int | None = None, max_workers: int = MAX_WORKERS) -> ThreadPlan:
    """The threads / workers plan for ``cores`` usable CPUs under a 1-minute ``load`` average.

    Args:
        cores: CPUs this process may run on (``len(os.sched_getaffinity(0))``), >= 1.
        load: the machine's 1-minute load average (``os.getloadavg()[0]``), >= 0.
        total_cores: CPUs of the whole machine (default ``cores``); the load is spread over them, so only
            ``load * cores / total_cores`` of it falls on this process's CPUs.
        threads, workers: explicit requests (``--threads``, ``data.workers``); None chooses.
        max_workers: cap on the chosen workers.

    Returns:
        a :class:`ThreadPlan`; with neither request, ``threads + workers == free <= cores``.

    Raises:
        ValueError: cores < 1, load < 0, threads < 1 or workers < 0.
    """
    if cores < 1:
        raise ValueError(f"cores must be >= 1, got {cores}")
    if load < 0:
        raise ValueError(f"load must be >= 0, got {load}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    total = max(cores, total_cores or cores)
    share = load * cores / total
    busy = min(cores, int(share + 0.5))
    free = max(1, cores - busy)
    t, w = _split(free, threads, workers, max_workers)
    qt, qw = _split(cores, threads, workers, max_workers)
    warning = None
    if t + w > free:
        what = "free cores" if busy else "cores"
        warning = (f"{t} torch thread{'s' * (t != 1)} + {w} loader worker{'s' * (w != 1)} on {free} free "
                   f"core{'s' * (free != 1)} (load {load:.1f}, {cores} usable): the machine has fewer {what} "
                   f"than runnable threads, so expect slow steps; --threads / data.workers lower it")
    elif (t, w) != (qt, qw) or share > cores:  # fewer than on an idle machine, or more jobs than cores
        instead = f" instead of {qt} and {qw}" if (t, w) != (qt, qw) else " (expect slower steps)"
        warning = (f"the machine is busy (load {load:.1f} on {cores} usable core{'s' * (cores != 1)}): using "
                   f"{t} torch thread{'s' * (t != 1)} and {w} loader worker{'s' * (w != 1)}{instead}; "
                   f"--threads / data.workers override")
    return ThreadPlan(cores, round(share, 2), free, t, w, qt, qw, warning, auto_threads=threads is None)


def usable_cores() -> int:
    """CPUs this process may run on (its affinity), else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def machine_load() -> float:
    """The 1-minute load average (0 where the platform has none)."""
    try:
        return max(0.0, os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def _env_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) >= 1 else None


def machine_plan(threads: int | None = None, workers: int | None = None) -> ThreadPlan:
    """:func:`plan_threads` for this process now (``OMP_NUM_THREADS`` counts as a thread request)."""
    return plan_threads(usable_cores(), machine_load(), total_cores=os.cpu_count(),
                        threads=threads if threads is not None else _env_threads(), workers=workers)


_current: ThreadPlan | None = None


def configure_threads(threads: int | None = None, workers: int | None = None, *,
                      stream: TextIO | None = None) -> ThreadPlan:
    """Choose this process's plan, set torch's intra-op threads to it, warn on ``stream`` when needed.

    Called by each command and flow entry point. A second call without a request (a flow run by a
    command that already chose) keeps the first plan and prints nothing. ``stream`` None: the current
    ``sys.stderr``.
    """
    global _current
    if _current is not None and threads is None and workers is None:
        return _current
    import torch

    plan = machine_plan(threads, workers)
    if torch.get_num_threads() != plan.threads:
        torch.set_num_threads(plan.threads)
    if plan.warning:
        print(f"warning: {plan.warning}", file=stream or sys.stderr, flush=True)
    _current = plan
    return plan


def cpu_workers(free: int, max_workers: int = MAX_WORKERS) -> int:
    """Loader workers for a network that runs on the CPU with ``free`` free cores: one per
    :data:`CORES_PER_CPU_WORKER` (0 on up to 3 free cores), at most ``max_workers``."""
    return min(max_workers, max(0, free) // CORES_PER_CPU_WORKER)


def _on_cpu(device) -> bool:
    return device is not None and getattr(device, "type", str(device).split(":")[0]) == "cpu"


def loader_workers(configured: int | None, device=None) -> int:
    """``data.workers`` when a config sets it, else the plan's workers (the current one, or one for now).

    ``device`` (a ``torch.device`` or its name) is where the loader's batches are consumed: on the CPU, with
    torch threads chosen here, the workers are :func:`cpu_workers` of the free cores and the cores they
    leave go to torch threads (with ``--threads`` / ``OMP_NUM_THREADS`` set, the plan's workers fill the
    cores the threads leave, as before). None: the plan's workers.

    A config that sets another number of workers than the current plan's moves the difference to or from
    torch's threads when they were chosen here (``data.workers: 0`` on 2 free cores: 2 threads, not 1 and an
    idle core); a setting that then puts more runnable threads than free cores is warned about.
    """
    global _current
    if configured is None:
        plan = _current or machine_plan()
        if not (_on_cpu(device) and plan.auto_threads):
            return plan.workers
        wanted = cpu_workers(plan.free)
        if _current is None:  # nobody chose threads for this process: say how many workers, touch nothing
            return wanted
        configured = wanted
    if _current is not None and _current.auto_threads and configured != _current.workers:
        plan = plan_threads(_current.cores, _current.load, workers=configured)
        if plan.threads != _current.threads:
            import torch

            torch.set_num_threads(plan.threads)
        if plan.warning and plan.runnable > plan.free:
            print(f"warning: {plan.warning}", file=sys.stderr, flush=True)
        _current = plan
    return configured
