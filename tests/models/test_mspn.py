"""MSPN: parameter counts computed term by term from the architecture (no published figure), compute, the
stage/level output layout, cross-stage aggregation, and the coarse-to-fine loss the model carries."""

from __future__ import annotations

import pytest
import torch

from animalpose.flops import count_macs, count_parameters
from animalpose.losses import CoarseToFineLoss, gaussian_heatmaps, heatmap_mse, kernel_sigma, ohkm_mse
from animalpose.models.factory import build_model, model_info
from animalpose.models.mspn import MSPN, mspn, mspn_quick
from animalpose.models.multistage import coarse_to_fine_loss

K = 17
BODY_50 = 25_557_032 - (2048 * 1000 + 1000) - (3 * 64 * 49 + 2 * 64)  # torchvision ResNet-50 less fc and stem
STEM = 3 * 64 * 49 + 2 * 64


def bn(c: int) -> int:
    return 2 * c


def upsampling_path(channels: tuple[int, ...], u: int, gen_skip: bool, cross: int = 64) -> int:
    """in_skip per level, up_conv below the coarsest; with gen_skip the two cross-stage convs per level and
    the cross conv U→64 (all 1×1, bias-free, BN)."""
    total = sum(c * u + bn(u) for c in channels) + (len(channels) - 1) * (u * u + bn(u))
    if gen_skip:
        total += sum(c * c + bn(c) + u * c + bn(c) for c in channels) + u * cross + bn(cross)
    return total


def predictions(u: int, k: int, levels: int = 4) -> int:
    return levels * (u * u + bn(u) + 9 * u * k + bn(k))


def test_mspn_parameter_counts_by_hand(meta):
    c50 = (256, 512, 1024, 2048)
    with meta:
        two, four = mspn(K, 2), mspn(K, 4)
    assert count_parameters(two.stem) == STEM
    assert count_parameters(two.stages[0].down) == BODY_50 == 23_498_496
    assert count_parameters(two.stages[0].up) == upsampling_path(c50, 256, True) == 7_768_704
    assert count_parameters(two.stages[1].up) == upsampling_path(c50, 256, False) == 1_183_232
    per_stage = BODY_50 + upsampling_path(c50, 256, True) + predictions(256, K)
    last = BODY_50 + upsampling_path(c50, 256, False) + predictions(256, K)
    assert count_parameters(two) == STEM + per_stage + last == 56_800_464
    assert count_parameters(four) == STEM + 3 * per_stage + last == 120_176_864  # stated in mspn.py


def test_mspn_quick_parameter_count(meta):
    with meta:
        quick = mspn_quick(K)
    body_18 = 11_689_512 - (512 * 1000 + 1000) - STEM
    c18 = (64, 128, 256, 512)
    expected = (STEM + 2 * body_18 + upsampling_path(c18, 64, True) + upsampling_path(c18, 64, False)
                + 2 * predictions(64, K))
    assert count_parameters(quick) == expected == 23_022_800


def test_mspn_compute_grows_by_one_stage_each():
    """No published GFLOPs for these variants (docstring); ours: 11.26 / 17.45 / 23.64 G at 256×192."""
    got = [model_info(n)["gflops"] for n in ("mspn_2stg", "mspn_3stg", "mspn_4stg")]
    assert got == pytest.approx([11.263, 17.453, 23.643], abs=0.001)
    assert got[2] - got[1] == pytest.approx(got[1] - got[0], abs=0.001)
    with torch.device("meta"):
        one = mspn(K, 1)
    # the single-stage module: the ResNet-50 trunk's 4.0 G plus the upsampling path and predictions
    assert count_macs(one, (256, 192)) / 1e9 == pytest.approx(5.073, abs=0.001)


def test_forward_four_levels_per_stage_at_stride_4():
    net = mspn_quick(5).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64, 96))
    assert [tuple(o.shape) for o in out] == [(2, 5, 16, 24)] * 8


def test_cross_stage_aggregation_reaches_the_second_stage():
    """The second stage's outputs depend on the first stage's skip convs; the first stage's do not."""
    net = mspn_quick(3).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = net(x)
        net.stages[0].up[0].out_skip1[1].bias.add_(1.0)  # BN shift of the coarsest encoder skip
        after = net(x)
    assert all(torch.equal(a, b) for a, b in zip(before[:4], after[:4], strict=True))
    assert not torch.allclose(before[-1], after[-1])


def test_kernel_sigmas_are_opencv_s():
    assert [round(kernel_sigma(k), 3) for k in (15, 11, 9, 7, 5)] == [2.6, 2.0, 1.7, 1.4, 1.1]
    with pytest.raises(ValueError, match="odd"):
        kernel_sigma(4)


def test_model_carries_the_coarse_to_fine_schedule():
    with torch.device("meta"):
        model = build_model("mspn_2stg")
    loss = model.criterion
    assert isinstance(loss, CoarseToFineLoss) and loss.needs_coords and loss.topk == 8
    s = [round(v, 3) if v is not None else None for v in loss.sigmas]
    assert s == [2.6, 2.0, 1.7, 1.4, 2.0, 1.7, 1.4, None]  # kernels 15/11/9/7, last stage 11/9/7/(codec)
    assert loss.weights == (0.25, 0.25, 0.25, 1.0) * 2
    assert loss.ohkm == (False, False, False, True) * 2
    assert coarse_to_fine_loss(4).sigmas[-4:-1] == loss.sigmas[-4:-1]


def test_per_stage_targets_use_per_stage_sigma():
    """Each output's target is a Gaussian of its own σ at the target coordinates (peak 1 at an integer
    centre, exp(−1/2) one σ away), and the codec's target where σ is None."""
    loss = coarse_to_fine_loss(1)
    coords = torch.tensor([[[10.0, 6.0]]])
    codec_target = torch.full((1, 1, 16, 24), 0.5)
    targets = loss.targets(codec_target, coords)
    assert targets[-1] is codec_target
    for t, sigma in zip(targets[:-1], loss.sigmas[:-1], strict=True):
        assert t[0, 0, 6, 10] == pytest.approx(1.0)
        assert float(t[0, 0, 6, 12]) == pytest.approx(float(torch.exp(torch.tensor(-4 / (2 * sigma**2)))), rel=1e-5)
    widths = [float(t[0, 0, 6].sum()) for t in targets[:-1]]
    assert widths == sorted(widths, reverse=True)  # coarse to fine


def test_coarse_to_fine_loss_hand_computed():
    """Two levels, one joint out of two unlabelled: L = 0.25·MSE(P_0, G(σ_0)) + OHKM(P_1, codec target)."""
    loss = CoarseToFineLoss((1.5, None), (0.25, 1.0), (False, True), topk=1)
    coords = torch.tensor([[[3.0, 2.0], [float("nan"), 0.0]]]).nan_to_num()
    target = torch.rand(1, 2, 5, 6)
    weight = torch.tensor([[1.0, 0.0]])
    outputs = [torch.rand(1, 2, 5, 6), torch.rand(1, 2, 5, 6)]
    g = gaussian_heatmaps(coords, 5, 6, 1.5)
    expected = 0.25 * heatmap_mse(outputs[0], g, weight) + ohkm_mse(outputs[1], target, weight, 1)
    assert loss(outputs, target, weight, coords).item() == pytest.approx(expected.item())
    per_joint = 0.5 * ((outputs[1][0, 0] - target[0, 0]) ** 2).mean()
    assert ohkm_mse(outputs[1], target, weight, 1).item() == pytest.approx(per_joint.item())
    with pytest.raises(ValueError, match="coarse-to-fine"):
        loss(outputs, target, weight, None)
    with pytest.raises(ValueError, match="2 outputs"):
        loss(outputs[:1], target, weight, coords)


def test_pretrained_layout_is_torchvision_s(meta):
    with meta:
        net = mspn(K, 2)
    target, optional = net.pretrained_target()
    keys = set(target.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer4.2.conv3.weight"} <= keys
    assert optional == () and count_parameters(target) == STEM + BODY_50


def test_bad_arguments_rejected():
    with pytest.raises(ValueError, match="depth"):
        MSPN(K, depth=42)
    with pytest.raises(ValueError, match="num_stages"):
        MSPN(K, num_stages=0)


def test_coco_config_builds_mspn_4stg():
    from animalpose.config import load_config
    from animalpose.paths import REPO_ROOT

    cfg = load_config(REPO_ROOT / "configs" / "experiments" / "mspn_coco.yaml")
    assert cfg.model.name == "mspn_4stg" and tuple(cfg.data.input_size) == (192, 256)
    assert cfg.codec.sigma == pytest.approx(kernel_sigma(5))
    assert cfg.train.optimizer == "adam" and cfg.train.lr == pytest.approx(5e-3 * 32 / 256)  # mmpose, batch 256
    assert cfg.train.milestones == [170, 200] and cfg.train.warmup_steps == 500
    from animalpose.engine.build import make_model
    from animalpose.keypoints import load_schema

    with torch.device("meta"):
        model = make_model(cfg, load_schema("coco"))
        out = model(torch.zeros(1, 3, 256, 192))
    assert model.name == "mspn_4stg" and [tuple(o.shape) for o in out] == [(1, 17, 64, 48)] * 16


def test_imagenet_weights_load_into_the_stem_and_first_body(tmp_path):
    import torchvision

    from animalpose.models.weights import load_backbone_weights

    state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(state, tmp_path / "r18.pth")
    model = build_model("mspn_quick")
    report = load_backbone_weights(model, tmp_path / "r18.pth")
    assert report.unexpected == ["fc.weight", "fc.bias"] and report.missing == []
    net = model.net
    assert torch.equal(net.stem.conv1.weight, state["conv1.weight"])
    assert torch.equal(net.stages[0].down[3][1].conv2.weight, state["layer4.1.conv2.weight"])
    assert not torch.equal(net.stages[1].down[3][1].conv2.weight, state["layer4.1.conv2.weight"])
