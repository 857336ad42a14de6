"""The three-way discriminator (issue 29 item 2): generated animals as an extra labelled source, with a third
output ŝ telling synthetic from real. Domain labels per record by hand, L_DDL's extra term and the per-domain
accuracy by hand, a training step, and the config switch (the paper's two outputs by default)."""

import math

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate
from wscda_helpers import ConvExtractor, build_tiny_wscda

from animalpose.adapt.wscda.datasets import Tagged
from animalpose.adapt.wscda.losses import WSCDALossWeights, domain_discrimination_loss
from animalpose.adapt.wscda.network import DomainDiscriminator
from animalpose.adapt.wscda.training import DomainAccuracy, WSCDABatch, alternating_step, grl_step
from animalpose.data.records import PoseRecord

K = 20


def _record(meta: dict) -> PoseRecord:
    return PoseRecord(image="x.png", keypoints=np.zeros((K, 3), np.float32), schema="animalpose", meta=meta)


class _Base:
    """The part of a TopDownDataset that :class:`Tagged` reads: its records and its samples."""

    def __init__(self, records):
        self.records = records

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        return {"image": torch.zeros(3, 8, 8), "target": torch.zeros(K, 2, 2), "target_weight": torch.ones(K)}


GENERATED = {"factors": {"species": "horse"}}  # what our generator's COCO files carry per instance
CCSSL_RENDER = {"animal": "horse", "synthetic": True}  # what the CC-SSL render reader sets
REAL = {"category": "cow"}  # an Animal-Pose photograph


def test_each_domain_gets_its_labels_by_hand():
    # the streams of the synthetic_3way arm: generated humans; cows (real), generated and CC-SSL-rendered horses
    # as labelled animals; real horses unlabelled
    streams = [Tagged(_Base([_record(GENERATED)]), 0, 0, True),
               Tagged(_Base([_record(REAL), _record(GENERATED), _record(CCSSL_RENDER)]), 1, 0, True),
               Tagged(_Base([_record(REAL)]), 1, 1, False)]
    samples = [s[i] for s in streams for i in range(len(s))]
    got = [(d["y"], d["z"], d["s"]) for d in samples]
    assert got == [(0, 0, 1),  # generated human: human, (source), synthetic
                   (1, 0, 0),  # photographed cow: animal, source, real
                   (1, 0, 1),  # generated horse: animal, source, synthetic
                   (1, 0, 1),  # CC-SSL render: animal, source, synthetic
                   (1, 1, 0)]  # photographed target horse: animal, target, real
    assert samples[-1]["target_weight"].sum() == 0  # the target stays unlabelled
    batch = default_collate(samples)
    assert batch["s"].tolist() == [1, 0, 1, 1, 0] and batch["y"].tolist() == [0, 1, 1, 1, 1]


def test_the_synthetic_term_of_l_ddl_by_hand():
    y, z, s = torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 0, 1]), torch.tensor([1, 1, 0, 0])
    zeros = torch.zeros(4)  # every sigmoid at 0.5: each cross-entropy is log 2
    two_way = domain_discrimination_loss(zeros, zeros, y, z, w1=1.0)
    # per sample w1·log2 + y·log2: (1 + 2 + 2 + 2) log 2 / 4
    assert float(two_way) == pytest.approx(7 * math.log(2) / 4)
    three_way = domain_discrimination_loss(zeros, zeros, y, z, w1=1.0, s_logit=zeros, s=s, w3=2.0)
    assert float(three_way) == pytest.approx((7 + 4 * 2) * math.log(2) / 4)  # + w3·log 2 for every sample
    # a confident right ŝ adds (almost) nothing; a confident wrong one adds about w3·|logit| per sample
    right = torch.tensor([20.0, 20.0, -20.0, -20.0])
    assert float(domain_discrimination_loss(zeros, zeros, y, z, s_logit=right, s=s)) == pytest.approx(
        float(two_way), abs=1e-6)
    assert float(domain_discrimination_loss(zeros, zeros, y, z, s_logit=-right, s=s, w3=0.5)) == pytest.approx(
        float(two_way) + 0.5 * 20.0, abs=1e-6)
    with pytest.raises(ValueError, match="both"):
        domain_discrimination_loss(zeros, zeros, y, z, s_logit=zeros)


def test_accuracy_counts_synthetic_and_real_only_for_a_three_way_discriminator():
    y, z, s = torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 0, 1]), torch.tensor([1, 1, 0, 0])
    logits = torch.tensor([[-1.0, 0.0, 2.0],    # human right; says synthetic: right
                           [1.0, -1.0, -2.0],   # generated horse: animal, source right; says real: wrong
                           [1.0, 1.0, -0.5],    # real cow: animal right, target wrong; real: right
                           [-1.0, 1.0, -3.0]])  # real target: animal wrong, target right; real: right
    acc = DomainAccuracy()
    acc.update(logits, y, z, s)
    assert acc.rates() == {"human": 1.0, "animal": 2 / 3, "source": 0.5, "target": 1.0, "synthetic": 0.5,
                           "real": 1.0}
    two = DomainAccuracy()
    two.update(logits[:, :2], y, z)
    assert set(two.metrics()) == {f"disc_acc/{d}" for d in ("human", "animal", "source", "target")}
    two.merge(acc)
    assert two.rates()["synthetic"] == 0.5 and two.total["human"] == 2
    with pytest.raises(ValueError, match="synthetic labels"):
        DomainAccuracy().update(logits, y, z)


def _batch(with_s: bool = True) -> WSCDABatch:
    torch.manual_seed(1)
    n = 8
    images = torch.rand(n, 3, 16, 16)
    images[4:] += 0.5  # the "synthetic" half looks different, so ŝ has something to learn
    return WSCDABatch(images, torch.rand(n, 3, 4, 4), torch.ones(n, 3), torch.tensor([0, 1, 1, 1] * 2),
                      torch.tensor([0, 0, 1, 1] * 2), torch.tensor([0] * 4 + [1] * 4) if with_s else None)


def test_a_three_way_network_trains_its_third_output_in_both_schemes():
    torch.manual_seed(0)
    model = build_tiny_wscda(num_joints=3, width=8, discriminator_hidden=16)
    model.discriminator = DomainDiscriminator(8, hidden=16, outputs=3)
    assert model(_batch().images).domain_logits.shape == (8, 3)
    weights = WSCDALossWeights(beta=0.0)
    disc_opt = torch.optim.Adam(model.discriminator_parameters(), lr=1e-2)
    frozen = torch.optim.SGD(model.pose_parameters(), lr=0.0)
    first = alternating_step(model, _batch(), frozen, disc_opt, weights)
    for _ in range(80):
        stats = alternating_step(model, _batch(), frozen, disc_opt, weights)
    assert stats.l_ddl_disc < 0.25 * first.l_ddl_disc
    assert stats.accuracy.rates()["synthetic"] == 1.0 == stats.accuracy.rates()["real"]
    assert {"disc_acc/synthetic", "disc_acc/real"} <= set(stats.metrics())
    opt = torch.optim.Adam(list(model.parameters()), lr=1e-3)
    assert "disc_acc/synthetic" in grl_step(model, _batch(), opt, weights, grl_lambda=1.0).metrics()
    with pytest.raises(ValueError, match="synthetic labels"):
        alternating_step(model, _batch(with_s=False), frozen, disc_opt, weights)


def test_the_discriminator_has_the_papers_two_outputs_by_default():
    from animalpose.adapt.wscda.run import WSCDASection

    features = ConvExtractor(3, 8, 2)(torch.rand(2, 3, 16, 16))
    assert DomainDiscriminator(8).outputs == 2 and DomainDiscriminator(8)(features).shape == (2, 2)
    with pytest.raises(ValueError, match="outputs"):
        DomainDiscriminator(8, outputs=4)
    section = WSCDASection()
    assert section.discriminator == "two_way" and section.pplo_filter == "confidence"
    assert section.loss_weights().w3 == 1.0
