"""The round task's context goes to Dask workers without its MLflow tracker, and still names the round's task run.

Prefect's Dask client pickles the submitting context with every task; the round task's tracker parameter
(an open MLflow run) cannot be pickled, so :func:`flows.ccssl._shippable_task_run` submits from a copy of
the task run's context without it (the 2-worker round itself: tests/flows/test_ccssl_dask.py, slow).
"""

from __future__ import annotations

import threading

import cloudpickle
import pytest
from prefect import flow, task
from prefect.context import TaskRunContext, serialize_context

from flows.ccssl import _shippable_task_run


def _pickles(context: dict) -> bool:
    try:
        cloudpickle.dumps(context)
    except TypeError:
        return False
    return True


@task
def round_like(tracker, round_index: int) -> dict:
    own = TaskRunContext.get()
    shipped = _shippable_task_run(serialize_context)
    return {"plain": _pickles(serialize_context()), "shipped": _pickles(shipped),
            "parameters": shipped["task_run_context"]["parameters"],
            "same_run": shipped["task_run_context"]["task_run"]["id"] == own.task_run.id,
            "restored": TaskRunContext.get() is own and "tracker" in own.parameters}


@flow
def one_round() -> dict:
    return round_like(threading.Lock(), 3)  # a lock: as unpicklable as an open MLflow run


def test_the_shipped_context_drops_the_tracker_and_keeps_the_task_run(prefect_harness):
    seen = one_round()
    assert seen["plain"] is False  # what Prefect would ship on its own
    assert seen["shipped"] is True and seen["parameters"] == {"round_index": 3}
    assert seen["same_run"] and seen["restored"]


def test_outside_a_task_run_the_call_runs_as_it_is():
    assert _shippable_task_run(lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(ZeroDivisionError):
        _shippable_task_run(lambda: 1 / 0)
