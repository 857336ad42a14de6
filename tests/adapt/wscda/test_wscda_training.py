"""WS-CDA network, the two min-max schemes, joint-space masking and discriminator accuracy."""

import math

import numpy as np
import pytest
import torch
from wscda_helpers import ConvExtractor, build_tiny_wscda

from animalpose.adapt.wscda.joint_space import build_joint_space
from animalpose.adapt.wscda.losses import WSCDALossWeights, domain_discrimination_loss, pose_loss, total_loss
from animalpose.adapt.wscda.training import (
    DomainAccuracy,
    WSCDABatch,
    alternating_step,
    evaluate_ddl,
    grl_step,
    make_optimizers,
    train_step,
)


def _toy_batch(num_joints=3, per_source=4, size=16, seed=0):
    """Separable toy: humans light up channel 0, source animals channel 1, target animals channel 2."""
    g = torch.Generator().manual_seed(seed)
    n = 3 * per_source
    images = 0.1 * torch.randn(n, 3, size, size, generator=g)
    for s in range(3):
        images[s * per_source : (s + 1) * per_source, s] += 1.0
    heatmaps = torch.rand(n, num_joints, size // 4, size // 4, generator=g)
    weights = torch.ones(n, num_joints)
    weights[2 * per_source :] = 0.0  # unlabelled target animals
    y = torch.tensor([0] * per_source + [1] * (2 * per_source))
    z = torch.tensor([0] * (2 * per_source) + [1] * per_source)
    return WSCDABatch(images, heatmaps, weights, y, z)


def test_network_shapes_and_parts():
    assert sum(p.numel() for p in ConvExtractor(3, 16, 2).parameters()) == 2768
    torch.manual_seed(0)
    model = build_tiny_wscda(num_joints=5, width=8, num_deconv=1)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.features.shape == (2, 8, 8, 8)
    assert torch.equal(out.adapted, out.features)  # the adapter starts as the identity
    assert [h.shape for h in out.heatmaps] == [(2, 5, 16, 16)]
    assert out.domain_logits.shape == (2, 2)
    assert out.domain_input is out.features
    assert model.predict(torch.randn(1, 3, 32, 32)).shape == (1, 5, 16, 16)
    n_pose = len(model.pose_parameters())
    n_disc = len(model.discriminator_parameters())
    assert n_pose + n_disc == len(list(model.parameters()))
    adapted = build_tiny_wscda(num_joints=5, width=8, discriminate_on="adapted")
    assert adapted(torch.randn(1, 3, 16, 16)).domain_input is not None
    with pytest.raises(ValueError, match="discriminate_on"):
        build_tiny_wscda(num_joints=5, discriminate_on="heatmaps")


def test_joint_space_masking_zeroes_gradients_of_missing_joints():
    js = build_joint_space("coco", "animalpose")
    torch.manual_seed(0)
    model = build_tiny_wscda(num_joints=js.num_joints, width=8)
    rng = np.random.default_rng(0)
    human_kp = np.concatenate([rng.uniform(0, 4, (17, 2)), np.full((17, 1), 2.0)], axis=1)
    animal_kp = np.concatenate([rng.uniform(0, 4, (20, 2)), np.full((20, 1), 2.0)], axis=1)
    weights = torch.from_numpy(
        np.stack([js.target_weights(human_kp, "human"), js.target_weights(animal_kp, "animal"), np.zeros(20)])
    ).float()
    y = torch.tensor([0, 1, 1])
    target = torch.rand(3, 20, 4, 4)
    out = model(torch.randn(3, 3, 16, 16), discriminate=False)
    heatmaps = out.heatmaps[0]
    heatmaps.retain_grad()
    loss = pose_loss(out.heatmaps, target, weights, y)
    loss.backward()
    grad = heatmaps.grad.abs().sum(dim=(2, 3))  # (N, J)
    missing = ~js.domain_mask("human")
    assert missing.sum() == 3
    assert (grad[0, torch.from_numpy(missing)] == 0).all()  # Throat, TailBase, Withers of the human
    assert (grad[0, torch.from_numpy(~missing)] > 0).all()
    assert (grad[1] > 0).all()  # the labelled animal supervises all 20
    assert (grad[2] == 0).all()  # the unlabelled target animal supervises none
    # the targets of masked joints do not change the loss
    target2 = target.clone()
    target2[0, torch.from_numpy(missing)] = 5.0
    target2[2] = -3.0
    with torch.no_grad():
        assert float(pose_loss(out.heatmaps, target2, weights, y)) == pytest.approx(float(loss))


def _double(batch):
    return WSCDABatch(batch.images.double(), batch.heatmaps.double(), batch.weights.double(), batch.y, batch.z)


@pytest.mark.parametrize("alpha", [-1.0, 1.0])
def test_alternating_moves_discriminator_and_extractor_losses_in_opposite_directions(alpha):
    # float64 so that the small first-order changes are far above rounding noise
    torch.manual_seed(0)
    model = build_tiny_wscda(num_joints=3, width=8, discriminator_hidden=16).double()
    batch = _double(_toy_batch())
    weights = WSCDALossWeights(alpha=alpha, beta=0.0)  # isolate the adversarial term
    pose_opt = torch.optim.Adam(model.pose_parameters(), lr=1e-2)
    disc_opt = torch.optim.SGD(model.discriminator_parameters(), lr=0.2)
    for _ in range(5):
        stats = alternating_step(model, batch, pose_opt, disc_opt, weights)
        after = evaluate_ddl(model, batch, weights)
        assert stats.l_ddl < stats.l_ddl_disc - 1e-4  # the discriminator's update lowered L_DDL
        if alpha < 0:  # the paper's α = −1: the extractor's update raised it
            assert after > stats.l_ddl + 1e-4
        else:  # control: with the sign flipped the extractor helps the discriminator instead
            assert after < stats.l_ddl - 1e-4
        assert stats.loss == pytest.approx(alpha * stats.l_ddl, rel=1e-9)
    assert all(p.requires_grad for p in model.discriminator.parameters())


def test_discriminator_alone_learns_the_separable_toy_and_extractor_alone_undoes_it():
    torch.manual_seed(0)
    model = build_tiny_wscda(num_joints=3, width=8, discriminator_hidden=16)
    batch = _toy_batch()
    weights = WSCDALossWeights(beta=0.0)
    frozen_pose = torch.optim.SGD(model.pose_parameters(), lr=0.0)
    disc_opt = torch.optim.Adam(model.discriminator_parameters(), lr=1e-2)
    start = evaluate_ddl(model, batch, weights)
    for _ in range(25):
        stats = alternating_step(model, batch, frozen_pose, disc_opt, weights)
    trained = evaluate_ddl(model, batch, weights)
    assert trained < 0.5 * start
    acc = DomainAccuracy()
    acc.update(model(batch.images).domain_logits, batch.y, batch.z)
    assert acc.rates()["human"] == 1.0 and acc.rates()["animal"] == 1.0
    assert stats.accuracy.total == {"human": 4, "animal": 8, "source": 4, "target": 4}
    pose_opt = torch.optim.Adam(model.pose_parameters(), lr=1e-2)
    frozen_disc = torch.optim.SGD(model.discriminator_parameters(), lr=0.0)
    for _ in range(15):
        alternating_step(model, batch, pose_opt, frozen_disc, weights)
    assert evaluate_ddl(model, batch, weights) > 2 * trained


def test_grl_step_gives_the_alternating_objective_gradients():
    torch.manual_seed(0)
    model = build_tiny_wscda(num_joints=3, width=8, discriminator_hidden=16)
    batch = _toy_batch()
    weights = WSCDALossWeights(alpha=-1.0, beta=500.0, w1=1.5, w2=2.0)
    # reference gradients: pose modules of α·L_DDL + β·L_pose, discriminator of L_DDL
    out = model(batch.images)
    l_ddl = domain_discrimination_loss(out.domain_logits[:, 0], out.domain_logits[:, 1], batch.y, batch.z, w1=1.5)
    l_pose = pose_loss(out.heatmaps, batch.heatmaps, batch.weights, batch.y, w2=2.0)
    ref_pose = torch.autograd.grad(total_loss(l_ddl, l_pose), model.pose_parameters(), retain_graph=True)
    ref_disc = torch.autograd.grad(l_ddl, model.discriminator_parameters())
    (opt,) = make_optimizers(model, "grl", lr=0.0)
    stats = grl_step(model, batch, opt, weights, grl_lambda=1.0)
    for p, g in zip(model.pose_parameters(), ref_pose, strict=True):
        assert torch.allclose(p.grad, g, atol=1e-5, rtol=1e-4)
    for p, g in zip(model.discriminator_parameters(), ref_disc, strict=True):
        assert torch.allclose(p.grad, g, atol=1e-6, rtol=1e-5)
    assert stats.loss == pytest.approx(float(total_loss(l_ddl, l_pose).detach()), rel=1e-5)
    assert stats.grl_lambda == 1.0
    # at progress 0 the DANN λ is 0: the extractor gets no adversarial gradient at all
    model.zero_grad()
    out = model(batch.images)
    l_pose = pose_loss(out.heatmaps, batch.heatmaps, batch.weights, batch.y, w2=2.0)
    ref_extractor = torch.autograd.grad(500.0 * l_pose, list(model.extractor.parameters()))
    stats = grl_step(model, batch, opt, weights, progress=0.0)
    assert stats.grl_lambda == 0.0
    for p, g in zip(model.extractor.parameters(), ref_extractor, strict=True):
        assert torch.allclose(p.grad, g, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="progress"):
        grl_step(model, batch, opt, weights)


@pytest.mark.parametrize("scheme", ["alternating", "grl"])
def test_both_schemes_fit_poses_with_paper_weights(scheme):
    torch.manual_seed(0)
    model = build_tiny_wscda(num_joints=3, width=8, discriminator_hidden=16)
    batch = _toy_batch()
    optimizers = make_optimizers(model, scheme, lr=3e-3)
    first = train_step(scheme, model, batch, optimizers, progress=0.0)
    for k in range(1, 15):
        last = train_step(scheme, model, batch, optimizers, progress=k / 14)
    assert last.l_pose < first.l_pose
    assert set(last.metrics()) >= {"loss", "l_ddl", "l_pose", "disc_acc/human", "disc_acc/target"}
    with pytest.raises(ValueError, match="scheme"):
        make_optimizers(model, "wgan")


def test_domain_accuracy_by_hand():
    acc = DomainAccuracy()
    # logits (ŷ, ẑ): human predicted human; human predicted animal; source animal predicted animal & source;
    # target animal predicted human (wrong) & target (right)
    logits = torch.tensor([[-1.0, 3.0], [2.0, 0.0], [0.5, -2.0], [-0.5, 1.0]])
    acc.update(logits, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1]))
    assert acc.rates() == {"human": 0.5, "animal": 0.5, "source": 1.0, "target": 1.0}
    other = DomainAccuracy()
    other.update(torch.tensor([[-2.0, -1.0]]), torch.tensor([0]), torch.tensor([0]))
    acc.merge(other)
    assert acc.rates()["human"] == pytest.approx(2 / 3)
    empty = DomainAccuracy()
    assert math.isnan(empty.rates()["target"]) and empty.metrics() == {}


def test_wscda_around_a_pretrained_simple_baseline_predicts_what_it_did():
    simple_baseline = pytest.importorskip("animalpose.models.simple_baseline")
    from animalpose.adapt.wscda.network import wscda_from_pose_network

    torch.manual_seed(0)
    net = simple_baseline.simple_baseline(num_joints=20, depth=18, deconv_channels=32).eval()
    model = wscda_from_pose_network(net, discriminator_hidden=16).eval()
    x = torch.randn(1, 3, 64, 64)
    out = model(x)
    assert torch.allclose(out.heatmaps[0], net(x)[0])
    assert out.features.shape == (1, 512, 2, 2) and out.domain_logits.shape == (1, 2)
    assert model.extractor is net.backbone
    with pytest.raises(ValueError, match="SimpleBaseline-style"):
        wscda_from_pose_network(torch.nn.Linear(2, 2))


def test_which_listed_models_wscda_can_split():
    """The run asks the architecture, not its name: every SimpleBaseline splits, no other family does."""
    from animalpose.adapt.wscda.network import splits_for_wscda
    from animalpose.models.factory import MODELS

    with torch.device("meta"):
        splittable = {name for name, spec in MODELS.items() if splits_for_wscda(spec.factory())}
    assert splittable == {f"simplebaseline{d}" for d in (18, 34, 50, 101, 152)}


class _TinySimpleBaseline(torch.nn.Module):
    """The SimpleBaseline layout (backbone, deconv_layers, final_layer) at toy size."""

    def __init__(self, num_deconv):
        super().__init__()
        self.num_joints = 4
        self.backbone = ConvExtractor(3, 8, 2)
        layers = []
        for _ in range(num_deconv):
            layers += [torch.nn.ConvTranspose2d(8, 8, 4, 2, 1, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU()]
        self.deconv_layers = torch.nn.Sequential(*layers)
        self.final_layer = torch.nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return [self.final_layer(self.deconv_layers(self.backbone(x)))]


@pytest.mark.parametrize("num_deconv", [0, 2])
def test_linear_adapter_folds_back_into_the_pose_network(num_deconv):
    from animalpose.adapt.wscda.network import LinearAdapter, export_pose_network, wscda_from_pose_network

    torch.manual_seed(0)
    net = _TinySimpleBaseline(num_deconv)
    model = wscda_from_pose_network(net, discriminator_hidden=8, adapter="linear")
    assert isinstance(model.adapter, LinearAdapter)
    with torch.no_grad():
        model.adapter.proj.weight.normal_(0, 0.3)  # as if trained
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    expected = model.predict(x)
    assert not torch.allclose(net(x)[0], expected, atol=1e-3)  # the adapter matters
    keys = set(net.state_dict())
    out = export_pose_network(model, net)
    assert out is net and set(net.state_dict()) == keys
    assert torch.allclose(net(x)[0], expected, atol=1e-5)
    assert torch.allclose(model.predict(x), expected, atol=1e-5)
    residual = wscda_from_pose_network(_TinySimpleBaseline(1), discriminator_hidden=8)
    with pytest.raises(ValueError, match="cannot be folded"):
        export_pose_network(residual, _TinySimpleBaseline(1))
