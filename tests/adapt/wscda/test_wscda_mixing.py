"""Three-source batch mixing for WS-CDA: ratio, determinism, few labelled animals per species."""

import numpy as np
import pytest

from animalpose.adapt.wscda.mixing import (
    DOMAIN_LABELS,
    MixedBatchSampler,
    allocate_slots,
    select_few_labelled,
)
from animalpose.errors import ConfigError

SIZES = (50, 6, 30)  # humans, few labelled animals, unlabelled target animals


def _counts(sampler):
    counts = np.zeros((len(sampler), 3), dtype=int)
    for b, batch in enumerate(sampler):
        for i in batch:
            counts[b, ["human", "labelled_animal", "target_animal"].index(sampler.source_of(i)[0])] += 1
    return counts


def test_ratio_per_batch_and_over_the_epoch():
    sampler = MixedBatchSampler(SIZES, batch_size=8, ratio=(2, 1, 1), num_batches=25, seed=3)
    counts = _counts(sampler)
    assert len(sampler) == 25
    # 2:1:1 of 8 is exactly 4, 2, 2 in every batch
    assert (counts == [4, 2, 2]).all()
    # an uneven ratio 5:1:2 of batch 7 (4.375, 0.875, 1.75): each batch within ±2, totals within ±1
    sampler = MixedBatchSampler(SIZES, batch_size=7, ratio=(5, 1, 2), num_batches=40, seed=3)
    counts = _counts(sampler)
    expected = 7 * np.array([5, 1, 2]) / 8
    assert (np.abs(counts - expected) < 2).all()
    assert (np.abs(counts.sum(0) - 40 * expected) < 1).all()
    assert (counts.sum(1) == 7).all()


def test_smooth_round_robin_stays_within_one_slot_of_the_exact_share():
    rng = np.random.default_rng(0)
    for _ in range(50):
        ratio = rng.random(3) * rng.integers(0, 2, 3) + np.array([1e-3, 0, 0])
        r = ratio / ratio.sum()
        slots = allocate_slots(ratio, 200)
        running = np.cumsum(np.eye(3)[slots], axis=0)
        exact = np.arange(1, 201)[:, None] * r
        assert np.abs(running - exact).max() < 1.0
        assert set(np.flatnonzero(r == 0)).isdisjoint(slots)


def test_deterministic_for_a_seed_and_epoch():
    a = list(MixedBatchSampler(SIZES, 8, (2, 1, 1), 10, seed=7))
    b = list(MixedBatchSampler(SIZES, 8, (2, 1, 1), 10, seed=7))
    c = list(MixedBatchSampler(SIZES, 8, (2, 1, 1), 10, seed=8))
    assert a == b
    assert a != c
    sampler = MixedBatchSampler(SIZES, 8, (2, 1, 1), 10, seed=7)
    sampler.set_epoch(1)
    assert list(sampler) != a
    sampler.set_epoch(0)
    assert list(sampler) == a


def test_within_a_source_every_sample_before_any_repeat():
    sampler = MixedBatchSampler(SIZES, 8, (2, 1, 1), 15, seed=1)
    drawn = {"human": [], "labelled_animal": [], "target_animal": []}
    for batch in sampler:
        for i in batch:
            name, local = sampler.source_of(i)
            drawn[name].append(local)
    # 30 labelled-animal draws from 6 samples: 5 full permutations
    few = np.array(drawn["labelled_animal"]).reshape(5, 6)
    assert all(sorted(row) == list(range(6)) for row in few)
    assert sorted(drawn["target_animal"]) == list(range(30))
    assert len(set(drawn["human"])) == 50 and len(drawn["human"]) == 60


def test_zero_ratio_source_is_never_drawn_and_labels():
    sampler = MixedBatchSampler((10, 4, 0), 4, (0, 1, 0), 5, seed=0)
    indices = [i for batch in sampler for i in batch]
    assert all(sampler.source_of(i)[0] == "labelled_animal" for i in indices)
    sampler = MixedBatchSampler(SIZES, 4, (1, 1, 1), 1)
    y, z = sampler.domain_labels([0, 49, 50, 55, 56, 85])
    assert y.tolist() == [0, 0, 1, 1, 1, 1]
    assert z.tolist() == [0, 0, 0, 0, 1, 1]
    assert DOMAIN_LABELS["target_animal"] == (1, 1)
    with pytest.raises(IndexError):
        sampler.source_of(86)


def test_bad_configuration_names_the_field():
    with pytest.raises(ConfigError, match=r"mixing\.ratio"):
        MixedBatchSampler(SIZES, 8, (1, -1, 1), 3, where="cfg.yaml")
    with pytest.raises(ConfigError, match=r"cfg\.yaml: mixing\.ratio"):
        MixedBatchSampler((10, 0, 5), 8, (1, 1, 1), 3, where="cfg.yaml")
    with pytest.raises(ConfigError, match=r"mixing\.ratio"):
        MixedBatchSampler(SIZES, 8, (1, 1), 3)
    with pytest.raises(ConfigError, match=r"mixing\.batch_size"):
        MixedBatchSampler(SIZES, 0, (1, 1, 1), 3)


def test_select_few_labelled_per_species():
    species = ["horse"] * 10 + ["dog"] * 4 + ["cow"] * 3
    idx = select_few_labelled(species, 3, seed=5)
    assert len(idx) == 9
    assert sorted(species[i] for i in idx) == ["cow"] * 3 + ["dog"] * 3 + ["horse"] * 3
    assert np.array_equal(idx, select_few_labelled(species, 3, seed=5))
    assert not np.array_equal(idx, select_few_labelled(species, 3, seed=6))
    table = select_few_labelled(species, {"horse": 2, "dog": 1}, seed=0)
    assert sorted(species[i] for i in table) == ["dog", "horse", "horse"]
    with pytest.raises(ConfigError, match=r"labelled_per_species\.cow"):
        select_few_labelled(species, 4, where="cfg.yaml")
    with pytest.raises(ConfigError, match="no labelled records"):
        select_few_labelled(species, {"cat": 1})
