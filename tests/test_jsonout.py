"""The --json serializer: numpy/torch scalars, NaN as null, paths; strict JSON out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from animalpose.jsonout import dumps, to_jsonable


def _strict(text: str):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


@dataclass
class _Row:
    name: str
    score: float


def test_every_value_kind_becomes_plain_json():
    value = {
        "f32": np.float32(0.25), "i64": np.int64(7), "bool": np.bool_(True), "arr": np.arange(3, dtype=np.int16),
        "t0": torch.tensor(1.5), "t1": torch.tensor([1, 2]), "nan": float("nan"), "inf": np.float64("inf"),
        "nan_t": torch.tensor(float("nan")), "path": Path("runs") / "a", "tuple": (1, 2.5), "set": {3, 1},
        "row": _Row("x", float("nan")), 4: "int key",
    }
    out = _strict(dumps(value))
    assert out == {"f32": 0.25, "i64": 7, "bool": True, "arr": [0, 1, 2], "t0": 1.5, "t1": [1, 2], "nan": None,
                   "inf": None, "nan_t": None, "path": "runs/a", "tuple": [1, 2.5], "set": [1, 3],
                   "row": {"name": "x", "score": None}, "4": "int key"}
    assert type(out["i64"]) is int and type(out["bool"]) is bool


def test_nan_inside_lists_and_nested_dicts_is_null():
    assert _strict(dumps({"per_joint": {"nose": float("nan"), "tail": 0.5}, "curve": [1.0, float("-inf")]})) == {
        "per_joint": {"nose": None, "tail": 0.5}, "curve": [1.0, None]}


def test_an_unknown_type_is_an_error_naming_it_not_a_silent_str():
    with pytest.raises(TypeError, match="cannot write a object as JSON"):
        to_jsonable({"x": object()})


def test_evaluate_json_is_strict_with_a_nan_metric(monkeypatch):
    """`evaluate --json` prints strict JSON when a metric is NaN (nothing to score)."""
    from typer.testing import CliRunner

    from animalpose.cli import app
    from animalpose.engine import evaluate as ev

    fake = {"metrics": {"pck_crop@0.05": float("nan"), "AP": np.float32(0.5)}, "per_joint": {"nose": float("nan")},
            "per_joint_tables": {}, "skipped": {"records": 0, "files": [], "problems": []}, "instances": np.int64(3)}
    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: fake)
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", "x.ckpt", "--data", "y.json", "--json"])
    assert res.exit_code == 0, res.output
    assert _strict(res.stdout) == {"metrics": {"pck_crop@0.05": None, "AP": 0.5}, "per_joint": {"nose": None},
                                   "per_joint_tables": {}, "skipped": {"records": 0, "files": [], "problems": []},
                                   "instances": 3}
