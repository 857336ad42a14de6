"""A CC-SSL round whose pseudo-labelling runs as shard tasks on a local Dask cluster of 2 workers.

The same round (same source checkpoint, same data, same seeds) in process and on Dask must keep
the same joints at the same places: the shards are cut at batch boundaries and every batch draws
its views from the round seed and its position in the whole target set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from prefect import flow

import synthetic
from animalpose.adapt.ccssl import CCSSLSection
from animalpose.config import parse_config
from animalpose.engine.build import make_model
from animalpose.engine.checkpoint import save_checkpoint
from animalpose.keypoints import load_schema
from flows.ccssl import ccssl_round
from flows.common import parent_tracker, stage
from flows.presets import load_preset
from flows.pretrain import train_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SECTION = CCSSLSection(num_geometric=2, num_photometric=1, gallery=0, pseudo_batch_size=4, flow_levels=0)


@pytest.fixture
def round_inputs(tmp_path):
    """Tiny generated data (16 source stills; 8 target stills + a 4-frame clip) and an untrained source model."""
    data = tmp_path / "data"
    source = synthetic.generate_dataset(data / "source", "horse", "cad", n=16, size=64, seed=1)
    val = synthetic.generate_dataset(data / "val", "horse", "cad", n=4, size=64, seed=2)
    target = synthetic.generate_dataset(data / "target", "horse", "photo", n=8, size=64, seed=3, clips=1, frames=4)
    test = synthetic.generate_dataset(data / "test", "horse", "photo", n=4, size=64, seed=4)
    cfg_dict, where = train_config(load_preset("smoke"), [source], [val], epochs=1, model=None, tracking_uri=None,
                                   experiment="ccssl-dask-test", seed=0)
    cfg_dict["tracking"] = {**cfg_dict["tracking"], "enabled": False}
    cfg = parse_config(cfg_dict, where=where, base_dir=Path(where).parent)
    schema = load_schema(cfg.data.schema_name)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "source.ckpt", model=make_model(cfg, schema).state_dict(), schema=schema,
                           config=cfg_dict, epoch=0, step=0)
    return {"cfg_dict": cfg_dict, "where": where, "source_checkpoint": ckpt, "target": [target],
            "target_test": test}


@flow
def one_round(inputs: dict, out_dir: Path, dask_workers: int, tracking_uri: str) -> dict:
    """The round as ``ccssl_flow`` runs it: with an MLflow stage tracker (not picklable) as a task input."""
    parent = parent_tracker("ccssl-dask-test", "round", tracking_uri, {})
    try:
        with stage(parent, "round-1") as st:
            return ccssl_round(inputs["cfg_dict"], inputs["where"], inputs["source_checkpoint"], inputs["target"],
                               inputs["target_test"], out_dir, 0, 1, 1, section=SECTION, tracker=st,
                               dask_workers=dask_workers)
    finally:
        parent.end()


def _shard_task_runs(flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterName

    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="pseudo-label-round-1")))


def _labels(out_dir: Path) -> dict:
    return json.loads((out_dir / "round_0" / "pseudo_labels.json").read_text())


def test_round_pseudo_labelled_on_two_dask_workers_matches_in_process(prefect_harness, tmp_path, data_home,
                                                                      round_inputs):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    local = one_round(round_inputs, tmp_path / "local", 0, uri, return_state=True)
    sharded = one_round(round_inputs, tmp_path / "dask", 2, uri, return_state=True)
    assert local.is_completed() and sharded.is_completed()
    a, b = local.result()["metrics"], sharded.result()["metrics"]
    assert a["pseudo/num_joints"] == b["pseudo/num_joints"] == 12 * 18
    assert 0 < b["pseudo/num_kept"] == a["pseudo/num_kept"] < b["pseudo/num_joints"]

    # the kept joints themselves: same images, same places
    la, lb = _labels(tmp_path / "local"), _labels(tmp_path / "dask")
    assert [i["file_name"] for i in la["images"]] == [i["file_name"] for i in lb["images"]]
    for field in ("keypoints", "confidence", "flow_confidence"):
        va = np.array([ann[field] for ann in la["annotations"]], dtype=np.float64)
        vb = np.array([ann[field] for ann in lb["annotations"]], dtype=np.float64)
        assert va.shape == vb.shape and va.shape[0] == 12
        np.testing.assert_allclose(vb, va, atol=1e-3, equal_nan=True)

    # the Dask round really ran two shard tasks (batches 0-1 and 2 of 3), the in-process one none
    runs = _shard_task_runs(sharded.state_details.flow_run_id)
    assert sorted(r.name for r in runs) == ["pseudo-label-round-1-batch-0", "pseudo-label-round-1-batch-2"]
    assert all(r.state.is_completed() for r in runs)
    assert _shard_task_runs(local.state_details.flow_run_id) == []
