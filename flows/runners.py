"""Task runners: threads on one machine, or a Dask cluster for the work that shards.

Two stages shard naturally: synthetic generation (independent shard datasets, a sub-flow with
the runner chosen here: :func:`with_runner`) and pseudo-labelling (independent slices of the target
images: the ``ccssl-round`` task enters :func:`task_runner` itself and submits one task per slice,
see :func:`flows.ccssl.dask_labeler`). The runner:

- ``dask_workers == 0``: Prefect's thread pool in this process.
- ``dask_workers > 0`` and no address: a temporary local Dask cluster of that many single-threaded
  worker processes (``prefect-dask``), started for the sub-flow (or the round's pseudo-labelling)
  and closed after it.
- ``dask_address``: an existing Dask scheduler (e.g. ``tcp://gpu-box:8786``), for more machines.
"""

from __future__ import annotations

import os

from prefect import Flow
from prefect.task_runners import ThreadPoolTaskRunner


def task_runner(dask_workers: int = 0, dask_address: str | None = None):
    """The runner for a sharded sub-flow (see the module docstring)."""
    if dask_address or dask_workers > 0:
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": dask_workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
                "host": "127.0.0.1",
            }
        )
    return ThreadPoolTaskRunner(max_workers=max(1, min(4, os.cpu_count() or 1)))


def with_runner(sub_flow: Flow, dask_workers: int = 0, dask_address: str | None = None) -> Flow:
    """``sub_flow`` with the runner chosen by :func:`task_runner`."""
    return sub_flow.with_options(task_runner=task_runner(dask_workers, dask_address))
