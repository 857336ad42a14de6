"""Prefect task results are persisted as JSON (issue 26): no pickle is written, none is read on a cache hit."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prefect.serializers import JSONSerializer

import flows.ccssl
import flows.evaluate
import flows.pretrain
import flows.synth
import flows.wscda

PERSISTED = {"pretrain": flows.pretrain.pretrain, "ccssl-round": flows.ccssl.ccssl_round,
             "evaluate": flows.evaluate.evaluate, "wscda": flows.wscda.wscda, "pplo-round": flows.wscda.pplo_round,
             "synth": flows.synth.synth}


@pytest.mark.parametrize("name", list(PERSISTED))
def test_every_persisted_task_uses_the_json_serializer(name):
    task = PERSISTED[name]
    assert task.persist_result is True
    assert isinstance(task.result_serializer, JSONSerializer) or task.result_serializer == "json"


def test_no_task_in_the_flows_persists_with_pickle():
    """Every task object of the flow modules that persists its result declares the JSON serializer."""
    from prefect import Task

    tasks = [obj for mod in (flows.ccssl, flows.evaluate, flows.pretrain, flows.synth, flows.wscda)
             for obj in vars(mod).values() if isinstance(obj, Task) and obj.persist_result]
    assert len(tasks) >= 6
    for t in tasks:
        assert isinstance(t.result_serializer, JSONSerializer) or t.result_serializer == "json", t.name


def test_typical_results_round_trip_through_json():
    value = {"checkpoint": "/runs/a/best.ckpt", "run_id": "abc", "metrics": {"pck": 0.25, "ap": float("nan")},
             "paths": [Path("/data/x"), Path("/data/y")], "folder": Path("/data/synth")}
    ser = JSONSerializer()
    blob = ser.dumps(value)
    assert blob.lstrip().startswith(b"{") and b"pickle" not in blob
    back = ser.loads(blob)
    assert back["paths"] == value["paths"] and back["folder"] == Path("/data/synth")
    assert back["metrics"]["pck"] == 0.25 and math.isnan(back["metrics"]["ap"])
