"""Learning-rate schedules, optimiser choice, EMA and the epoch sampler, against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from animalpose.config import parse_config
from animalpose.engine.distributed import EpochSampler
from animalpose.engine.trainer import ModelEMA, build_optimizer, lr_factor


def test_step_schedule_of_the_ccssl_paper():
    cfg = parse_config({"train": {"schedule": "step", "milestones": [60, 90], "gamma": 0.1, "epochs": 100}})
    spe = 10
    assert lr_factor(0, cfg, spe) == 1.0
    assert lr_factor(599, cfg, spe) == 1.0  # still epoch 59
    assert lr_factor(600, cfg, spe) == pytest.approx(0.1)  # epoch 60
    assert lr_factor(900, cfg, spe) == pytest.approx(0.01)  # epoch 90


def test_cosine_with_warmup():
    cfg = parse_config({"train": {"schedule": "cosine", "warmup_steps": 10, "epochs": 2}})
    spe = 55  # 110 steps: 10 warm-up + 100 cosine
    assert lr_factor(0, cfg, spe) == pytest.approx(0.1)
    assert lr_factor(4, cfg, spe) == pytest.approx(0.5)
    assert lr_factor(10, cfg, spe) == pytest.approx(1.0)
    assert lr_factor(60, cfg, spe) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(110, cfg, spe) == pytest.approx(0.0, abs=1e-12)


def test_linear_decay_with_warmup_from_a_tenth_as_mspn_and_rsn_on_mpii():
    # lib/utils/solver.py of the MSPN/RSN release: 0.1 + 0.9 i / w during the warm-up, then 1 - (i - w) / (T - w)
    cfg = parse_config({"train": {"schedule": "linear", "warmup_steps": 10, "warmup_factor": 0.1, "epochs": 2}})
    spe = 55  # 110 steps: 10 warm-up + 100 linear
    assert lr_factor(0, cfg, spe) == pytest.approx(0.1 + 0.9 * 1 / 10)  # ours counts the step being taken
    assert lr_factor(9, cfg, spe) == pytest.approx(1.0)
    assert lr_factor(10, cfg, spe) == pytest.approx(1.0)
    assert lr_factor(35, cfg, spe) == pytest.approx(0.75)
    assert lr_factor(60, cfg, spe) == pytest.approx(0.5)
    assert lr_factor(110, cfg, spe) == pytest.approx(0.0, abs=1e-12)
    # warmup_factor 0 keeps every earlier schedule as it was
    plain = parse_config({"train": {"schedule": "cosine", "warmup_steps": 10, "epochs": 2}})
    assert lr_factor(4, plain, spe) == pytest.approx(0.5)


def test_optimisers_of_the_references():
    params = [torch.nn.Parameter(torch.zeros(2))]
    hg = parse_config({"train": {"optimizer": "rmsprop", "lr": 2.5e-4}})
    opt = build_optimizer(hg, params)
    assert isinstance(opt, torch.optim.RMSprop) and opt.param_groups[0]["lr"] == 2.5e-4
    sb = parse_config({"train": {"optimizer": "adam", "lr": 1e-3}})
    assert isinstance(build_optimizer(sb, params), torch.optim.Adam)


def test_ema_moves_towards_weights():
    m = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(0.0)
    ema = ModelEMA(m, decay=0.9)
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema.update(m)
    assert ema.module.weight.item() == pytest.approx(0.1)
    ema.update(m)
    assert ema.module.weight.item() == pytest.approx(0.19)


def test_epoch_sampler_is_a_function_of_seed_and_epoch_and_splits_ranks():
    s = EpochSampler(10, seed=3)
    s.set_epoch(2)
    order = list(s)
    assert sorted(order) == list(range(10))
    s.set_epoch(2, start=4)
    assert list(s) == order[4:] and len(s) == 6
    s.set_epoch(3)
    assert list(s) != order
    ranks = [EpochSampler(10, seed=3, rank=r, world_size=3) for r in range(3)]
    for r in ranks:
        r.set_epoch(2)
    parts = [list(r) for r in ranks]
    assert all(len(p) == 4 for p in parts)  # ceil(10 / 3), padded by wrapping
    assert {i for p in parts for i in p} == set(range(10))


def test_iterative_training_restarts_the_schedule_every_cycle():
    """LPN's iterative training (train.cycles): the step schedule of 10 epochs, ×0.1 at 6, run twice."""
    cfg = parse_config({"train": {"schedule": "step", "milestones": [6], "epochs": 10, "cycles": 2}})
    spe = 5
    assert [lr_factor(s, cfg, spe) for s in (0, 29, 30, 49)] == pytest.approx([1.0, 1.0, 0.1, 0.1])
    assert [lr_factor(s, cfg, spe) for s in (50, 79, 80, 99)] == pytest.approx([1.0, 1.0, 0.1, 0.1])
    one = parse_config({"train": {"schedule": "step", "milestones": [6], "epochs": 10}})
    assert lr_factor(50, one, spe) == pytest.approx(0.1)  # one cycle: no restart
