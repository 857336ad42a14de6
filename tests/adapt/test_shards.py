"""Sharded pseudo-labelling: shard bounds, concat order, shard-count invariance, temporal step once.

A tiny untrained hourglass (16 channels, 64-px crops, its smallest input) on 6 generated 32-px
horse stills plus one 6-frame clip: the labels mean nothing, but they are deterministic functions
of the weights, the crops and the seeds, which is what sharding must preserve.
"""

from __future__ import annotations

import itertools
import json
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import synthetic
from animalpose.adapt.ccssl import CCSSLConfig, generate_pseudo_labels, run_ccssl
from animalpose.adapt.pseudolabel import PseudoLabelSet, batch_rng, finalize
from animalpose.adapt.shards import LabelRequest, cpu_state, label_shard, label_sharded, shard_bounds, sharded_labeler
from animalpose.config import parse_config
from animalpose.data.dataset import Normalization
from animalpose.data.readers import read_dataset
from animalpose.engine.build import make_codec, make_model
from animalpose.errors import DataError
from animalpose.keypoints import load_schema

BATCH = 3


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "horse"
    return synthetic.generate_dataset(out, "horse", "cad", n=6, size=32, seed=3, clips=1, frames=6)


def _cfg(target: Path, **ccssl) -> CCSSLConfig:
    raw = {
        "data": {"train": [str(target)], "target": [str(target)], "schema": "tigdog", "input_size": [64, 64],
                 "heatmap_size": [16, 16], "workers": 0},
        "model": {"name": "hourglass1", "channels": 16},
        "train": {"epochs": 1, "batch_size": 4, "device": "cpu"},
        "tracking": {"enabled": False},
        "ccssl": {"num_geometric": 2, "num_photometric": 1, "pseudo_batch_size": BATCH,
                  "flow_window": 5, "flow_levels": 0, **ccssl},
    }
    return parse_config(raw, CCSSLConfig)


@pytest.fixture(scope="module")
def request_all(target) -> LabelRequest:
    """The request run_ccssl would make for round 2: every target record, an untrained model's weights."""
    cfg = _cfg(target)
    schema = load_schema("tigdog")
    torch.manual_seed(0)
    model = make_model(cfg, schema)
    records = read_dataset(target, "auto", "tigdog").records
    assert len(records) == 12 and sum(r.frame_index is not None for r in records) == 6
    return LabelRequest(cfg, schema, cpu_state(model), records, Normalization(), padding=1.25, seed=7002,
                        round_index=2)


def _same(a: PseudoLabelSet, b: PseudoLabelSet) -> None:
    assert [r.image for r in a.records] == [r.image for r in b.records]
    assert [r.frame_index for r in a.records] == [r.frame_index for r in b.records]
    np.testing.assert_allclose(a.xy, b.xy, atol=1e-4)
    np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-6)
    np.testing.assert_allclose(a.matrices, b.matrices)
    assert set(a.components) == set(b.components)
    for k in a.components:
        np.testing.assert_allclose(a.components[k], b.components[k], atol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(a.replaced, b.replaced)
    np.testing.assert_allclose(a.flow_conf, b.flow_conf, atol=1e-6, equal_nan=True)
    assert (a.truth is None) == (b.truth is None)
    if a.truth is not None:
        np.testing.assert_array_equal(a.truth, b.truth)


def test_shard_bounds_cut_at_batch_boundaries():
    assert shard_bounds(10, 3, 3) == [(0, 6), (6, 9), (9, 10)]  # 4 batches: 2 + 1 + 1
    assert shard_bounds(12, 2, 3) == [(0, 6), (6, 12)]
    assert shard_bounds(12, 1, 5) == [(0, 12)]
    assert shard_bounds(4, 5, 2) == [(0, 2), (2, 4)]  # 2 batches: the 3 empty shards are left out
    assert shard_bounds(0, 3, 2) == []
    for n, s, b in [(11, 4, 3), (100, 7, 16), (5, 2, 1)]:
        bounds = shard_bounds(n, s, b)
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(e == s2 for (_, e), (s2, _) in itertools.pairwise(bounds))
        assert all(a % b == 0 for a, _ in bounds)
    with pytest.raises(ValueError):
        shard_bounds(5, 0, 2)


def test_request_split_knows_its_first_batch(request_all):
    parts = request_all.split(3)
    assert [len(p.records) for p in parts] == [6, 3, 3] and [p.first_batch for p in parts] == [0, 2, 3]
    assert [r.image for p in parts for r in p.records] == [r.image for r in request_all.records]
    # a shard split again keeps counting batches from the whole set's start
    assert [p.first_batch for p in parts[0].split(2)] == [0, 1]
    # seeds are per batch of the whole set: batch 2 of the set is batch 0 of the second shard
    assert batch_rng(7002, 2).random() == batch_rng(7002, 2).random() != batch_rng(7002, 3).random()


def _part(n: int, k: int, start: int, truth: bool = True) -> PseudoLabelSet:
    """A hand-made slice whose every value encodes its global record index."""
    idx = np.arange(start, start + n, dtype=np.float32)
    full = np.broadcast_to(idx[:, None], (n, k)).astype(np.float32)
    return PseudoLabelSet(records=[f"r{i}" for i in range(start, start + n)],
                          xy=np.stack([full, -full], -1), confidence=full / 100,
                          components={"peak": full, "spread_geo": full + 0.5},
                          matrices=np.broadcast_to(idx[:, None, None], (n, 2, 3)).copy(), input_size=(32, 32),
                          flow_conf=np.full((n, k), np.nan), replaced=np.zeros((n, k), bool),
                          weights=np.zeros((n, k), np.float32),
                          truth=np.broadcast_to(idx[:, None, None], (n, k, 3)).copy() if truth else None)


def test_concat_keeps_the_order_of_the_parts():
    parts = [_part(2, 4, 0), _part(0, 4, 2), _part(3, 4, 2), _part(1, 4, 5)]
    merged = PseudoLabelSet.concat(parts)
    assert merged.records == [f"r{i}" for i in range(6)] and len(merged) == 6
    np.testing.assert_array_equal(merged.xy[:, 0, 0], np.arange(6))
    np.testing.assert_array_equal(merged.xy[:, 3, 1], -np.arange(6))
    np.testing.assert_array_equal(merged.confidence[:, 1], np.arange(6, dtype=np.float32) / 100)
    np.testing.assert_array_equal(merged.components["spread_geo"][:, 2], np.arange(6) + 0.5)
    np.testing.assert_array_equal(merged.matrices[:, 1, 2], np.arange(6))
    np.testing.assert_array_equal(merged.truth[:, 0, 2], np.arange(6))
    assert merged.flow_conf.shape == (6, 4) and merged.weights.shape == (6, 4) and np.isnan(merged.threshold)
    assert PseudoLabelSet.concat([_part(1, 4, 0, truth=False), _part(2, 4, 1, truth=False)]).truth is None
    with pytest.raises(ValueError, match="some parts"):
        PseudoLabelSet.concat([_part(1, 4, 0), _part(1, 4, 1, truth=False)])
    with pytest.raises(ValueError, match="joint counts"):
        PseudoLabelSet.concat([_part(1, 4, 0), _part(1, 5, 1)])
    with pytest.raises(ValueError):
        PseudoLabelSet.concat([])


def test_one_and_three_shards_give_identical_pseudo_labels(request_all):
    one = label_sharded(request_all, 1)
    three = label_sharded(request_all, 3)
    assert len(one) == 12 and np.isfinite(one.xy).all() and one.truth is not None
    _same(one, three)
    # the same as the unsharded library path before its temporal step (a fresh in-process model)
    cfg, schema = request_all.cfg, request_all.schema
    model = make_model(cfg, schema)
    model.load_state_dict(request_all.state)
    direct = generate_pseudo_labels(model, request_all.records, schema, make_codec(cfg), Normalization(),
                                    cfg.ccssl.consistency("cpu"), None, torch.device("cpu"), batch_size=BATCH,
                                    padding=1.25, seed=7002)
    _same(one, direct)
    # and the views do depend on the seed (the check above is not vacuous)
    other = label_sharded(replace(request_all, seed=7003), 3)
    assert not np.allclose(other.xy, one.xy, atol=1e-3)


def test_temporal_refinement_once_after_merging_equals_unsharded(request_all):
    cfg, schema = request_all.cfg, request_all.schema
    flow = cfg.ccssl.flow()
    model = make_model(cfg, schema)
    model.load_state_dict(request_all.state)
    unsharded = generate_pseudo_labels(model, request_all.records, schema, make_codec(cfg), Normalization(),
                                       cfg.ccssl.consistency("cpu"), flow, torch.device("cpu"), batch_size=BATCH,
                                       padding=1.25, seed=7002)
    frames = np.array([r.frame_index is not None for r in unsharded.records])
    # the flow ran along the clip: every frame but the first has a predecessor, stills have none (a
    # regression: the stills' shared (None, None) key used to switch on per-instance tracks, one per frame)
    assert np.isfinite(unsharded.flow_conf[frames]).any(axis=1).sum() == 5
    assert np.isnan(unsharded.flow_conf[~frames]).all()
    merged = finalize(sharded_labeler(3)(request_all), flow)
    _same(merged, unsharded)
    # refining each shard on its own would cut the clip: a shard's first frame loses its predecessor
    per_shard = PseudoLabelSet.concat([finalize(label_shard(p), flow) for p in request_all.split(3)])
    assert np.isfinite(per_shard.flow_conf).any(axis=1).sum() < 5


def test_request_survives_pickling_and_bad_input_is_refused(request_all):
    """What a Dask worker receives: a pickled request; it labels the same as the original."""
    part = request_all.split(3)[1]
    again = pickle.loads(pickle.dumps(part))
    _same(label_shard(again), label_shard(part))
    unreadable = [replace(r, image=str(Path(r.image).with_name("missing.png"))) for r in request_all.records[:2]]
    empty = label_shard(replace(request_all, records=unreadable))
    assert len(empty) == 0 and empty.xy.shape == (0, 18, 2)
    with pytest.raises(DataError, match="no readable target image"):
        finalize(PseudoLabelSet.concat([empty]), None, where=unreadable[0].image)


def test_run_ccssl_with_a_sharded_labeler_keeps_the_same_pseudo_labels(target, tmp_path):
    """run_ccssl's LabelRequest (weights, records, normalisation, padding, seed) reproduces its in-process path."""
    cfg = _cfg(target)
    seen = []

    def labeler(request: LabelRequest) -> PseudoLabelSet:
        seen.append((request.round_index, request.seed, len(request.records), request.padding))
        return sharded_labeler(3)(pickle.loads(pickle.dumps(request)))

    run_ccssl(cfg, tmp_path / "local", progress=False)
    run_ccssl(cfg, tmp_path / "sharded", progress=False, labeler=labeler)
    assert seen == [(0, cfg.train.seed * 1000, 12, 1.25)]  # generated data: the synthetic crop padding
    docs = [json.loads((tmp_path / d / "round_0" / "pseudo_labels.json").read_text()) for d in ("local", "sharded")]
    for field in ("keypoints", "confidence", "flow_confidence", "weight"):
        a, b = (np.array([ann[field] for ann in doc["annotations"]], dtype=np.float64) for doc in docs)
        assert a.shape == b.shape == (12, 18 * 3 if field == "keypoints" else 18)
        np.testing.assert_allclose(b, a, atol=1e-4, equal_nan=True)
    assert 0 < np.array([ann["weight"] for ann in docs[0]["annotations"]]).sum() < 12 * 18
