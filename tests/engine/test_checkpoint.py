"""Checkpoints: weights-only round trip, every RNG restored, atomic writes, clear errors for bad files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from animalpose.engine.checkpoint import (
    check_schema,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    schema_of,
    set_rng_state,
    strip_ddp_prefix,
    to_plain,
)
from animalpose.errors import DataError
from animalpose.keypoints import load_schema


def _save(path, schema_name="coco", **kw):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5)
    return save_checkpoint(path, model=model.state_dict(), schema=load_schema(schema_name),
                           config={"train": {"lr": 1e-3, "milestones": (60, 90)}}, epoch=3, step=42,
                           optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                           scaler=torch.amp.GradScaler("cpu", enabled=False).state_dict(), **kw), model, opt


def test_round_trip_loads_weights_only(tmp_path):
    path, model, opt = _save(tmp_path / "a.ckpt", metrics={"val/pck@0.05": np.float32(0.5)})
    raw = torch.load(path, weights_only=True)  # the design's requirement, literally
    assert raw["epoch"] == 3 and raw["step"] == 42
    ckpt = load_checkpoint(path, schema=load_schema("coco"))
    assert torch.equal(ckpt["model"]["weight"], model.state_dict()["weight"])
    assert ckpt["config"]["train"]["milestones"] == [60, 90]
    assert ckpt["metrics"] == {"val/pck@0.05": 0.5}
    assert schema_of(ckpt) == load_schema("coco")
    fresh = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    fresh.load_state_dict(ckpt["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temporary file


def test_rng_states_restore_every_generator():
    state = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    set_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    assert a == b


def test_corrupt_and_foreign_files_name_the_file(tmp_path):
    path, _, _ = _save(tmp_path / "good.ckpt")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"truncated\.ckpt") as err:
        load_checkpoint(truncated)
    assert err.value.field == "checkpoint"
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(DataError, match=r"garbage\.ckpt"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(DataError, match="not an animalpose checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(DataError, match="no such file"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_checkpoint_from_another_schema_is_refused(tmp_path):
    path, _, _ = _save(tmp_path / "mpii.ckpt", schema_name="mpii")
    with pytest.raises(DataError, match=r"mpii.ckpt: schema: checkpoint predicts schema 'mpii'.*expected 'coco'"):
        load_checkpoint(path, schema=load_schema("coco"))
    check_schema(load_checkpoint(path), load_schema("mpii"), str(path))


def test_to_plain_and_ddp_prefix():
    assert to_plain({"a": (1, np.int64(2)), 3: np.array([1.5])}) == {"a": [1, 2], 3: [1.5]}
    with pytest.raises(TypeError):
        to_plain(object())
    assert list(strip_ddp_prefix({"module.w": 1, "b": 2})) == ["w", "b"]
