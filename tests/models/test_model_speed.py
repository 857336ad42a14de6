"""Speed paths give the plain path's outputs: BN folding, channels-last, bf16 autocast, torch.compile."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch
from torch import nn

from animalpose.models.cpn import CPN
from animalpose.models.factory import build_model
from animalpose.models.heads import PoseModel
from animalpose.models.hourglass import HourglassNet
from animalpose.models.hrnet import HRNet, HRNetConfig
from animalpose.models.mspn import MSPN
from animalpose.models.pyranet import PyraNet
from animalpose.models.rsn import RSN
from animalpose.models.simple_baseline import SimpleBaseline
from animalpose.models.speed import (
    Autocast,
    PointwiseConv2d,
    compile_model,
    fold_batchnorm,
    optimize_for_inference,
    pointwise_convs_as_linear,
    to_channels_last,
)


def _tiny(kind: str) -> PoseModel:
    nets = {
        "hourglass": lambda: HourglassNet(4, num_stacks=2, num_feats=8, depth=2, stem_channels=4),
        "pyranet": lambda: PyraNet(4, num_stacks=2, num_feats=8, depth=2, stem_channels=4),
        "simplebaseline": lambda: SimpleBaseline(4, depth=18, deconv_channels=8),
        "hrnet": lambda: HRNet(4, HRNetConfig(width=4, num_modules=(1, 1, 1), num_blocks=1, stem_blocks=1)),
        "cpn": lambda: CPN(4, depth=18, channels=16, refine_planes=8),
        "mspn": lambda: MSPN(4, num_stages=2, depth=18, unit_channels=16),
        "rsn": lambda: RSN(4, blocks=(1, 1, 1, 1), unit_channels=16),
    }
    model = PoseModel(kind, nets[kind](), nn.Identity(), (64, 64))
    model.head.codec = "heatmap"
    # non-trivial BN statistics and affine parameters, so folding has something to fold
    with torch.no_grad():
        model.train()
        for _ in range(2):
            model(torch.randn(2, 3, 64, 64) * 2 + 0.5)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return model.eval()


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("kind", ["hourglass", "pyranet", "simplebaseline", "hrnet", "cpn", "mspn", "rsn"])
def test_batchnorm_folding_matches_and_removes_post_conv_bns(kind):
    model = _tiny(kind)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        folded = fold_batchnorm(model)
        out = folded(x)
    assert len(out) == len(ref)
    assert all(_rel_err(o, r) < 1e-4 for o, r in zip(out, ref, strict=True))
    count = lambda m: sum(isinstance(q, nn.BatchNorm2d) for q in m.modules())  # noqa: E731
    assert count(folded) < count(model)
    if kind in ("simplebaseline", "hrnet"):  # every BN follows a conv there
        assert count(folded) == 0
    assert sum(p.numel() for p in folded.parameters()) < sum(p.numel() for p in model.parameters())
    assert folded.num_joints == 4 and folded.head_codec == "heatmap" and count(model) > 0  # original untouched


@pytest.mark.parametrize("kind", ["hourglass", "hrnet"])
def test_channels_last_matches(kind):
    model = _tiny(kind)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)[-1]
        cl_model = to_channels_last(copy.deepcopy(model))
        out = cl_model(x.contiguous(memory_format=torch.channels_last))[-1]
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert _rel_err(out, ref) < 1e-5


def test_bf16_autocast_matches_within_bf16_tolerance_and_keeps_float32_params():
    model = _tiny("hourglass")
    x = torch.randn(2, 3, 64, 64)
    wrapped = Autocast(model, torch.bfloat16)
    with torch.no_grad():
        ref = model(x)
        out = wrapped(x)
    assert all(o.dtype == torch.float32 for o in out)
    assert all(_rel_err(o, r) < 0.05 for o, r in zip(out, ref, strict=True))
    assert wrapped.num_joints == 4 and wrapped.stride == 4
    assert all(p.dtype == torch.float32 for p in wrapped.parameters())


def test_bf16_training_step_gives_float32_gradients():
    model = _tiny("simplebaseline").train()
    out = Autocast(model, torch.bfloat16)(torch.randn(2, 3, 64, 64))
    out[-1].square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_optimize_for_inference_real_model():
    model = build_model("simplebaseline18", 3, deconv_channels=16).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)[-1]
        fast = optimize_for_inference(model)
        out = fast(x.contiguous(memory_format=torch.channels_last))[-1]
    assert _rel_err(out, ref) < 1e-4


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="inductor needs a compiler")
def test_torch_compile_matches():
    model = _tiny("hourglass")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)[-1]
        out = compile_model(model)(x)[-1]
    assert _rel_err(out, ref) < 1e-4


def test_pointwise_conv_as_linear_equals_hand_computed_channel_mix_and_conv_gradients():
    conv = nn.Conv2d(3, 2, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]]).view(2, 3, 1, 1))
        conv.bias.copy_(torch.tensor([0.25, -1.0]))
    ref = copy.deepcopy(conv)
    pointwise_convs_as_linear(conv)
    assert isinstance(conv, PointwiseConv2d) and set(conv.state_dict()) == {"weight", "bias"}
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    out = conv(x)
    # pixel (n=0, y=0, x=1): channels (1, 5, 9) -> 1 + 10 - 9 + 0.25 = 2.25 and 0.5 + 27 - 1 = 26.5
    assert out[0, :, 0, 1].tolist() == [2.25, 26.5]
    assert out.shape == (2, 2, 2, 2) and out.is_contiguous(memory_format=torch.channels_last)
    g = torch.randn(2, 2, 2, 2)
    (out * g).sum().backward()
    x_ref = x.detach().clone().requires_grad_(True)
    (ref(x_ref) * g).sum().backward()
    torch.testing.assert_close(out, ref(x_ref))
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(conv.weight.grad, ref.weight.grad)
    torch.testing.assert_close(conv.bias.grad, ref.bias.grad)
    # NCHW input takes the ordinary convolution: same result
    torch.testing.assert_close(conv(x.detach().contiguous()), ref(x.detach()))


def test_pointwise_conversion_touches_only_1x1_stride1_convs_and_keeps_parameters():
    model = _tiny("hourglass")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    pointwise_convs_as_linear(model)
    converted = [m for m in convs if type(m) is PointwiseConv2d]
    assert converted and all(m.kernel_size == (1, 1) for m in converted)
    assert all(type(m) is nn.Conv2d and m.kernel_size != (1, 1) for m in convs if m not in converted)
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    # BN folding (fx tracing) still works on a converted model and matches it
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)[-1]
        assert _rel_err(fold_batchnorm(model)(x)[-1], ref) < 1e-4


def _train_steps(model: nn.Module, forward, x: torch.Tensor, steps: int = 3) -> tuple[list[float], dict]:
    """``steps`` SGD steps of the CC-SSL loss; returns the losses and the final parameters. (SGD, not RMSprop:
    RMSprop's first step moves every weight by about lr·sign(grad), so rounding noise in near-zero gradients
    would show as real differences.)"""
    from animalpose.losses import heatmap_mse

    target = torch.rand(x.shape[0], 4, x.shape[2] // 4, x.shape[3] // 4, generator=torch.Generator().manual_seed(1))
    weight = torch.ones(x.shape[0], 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.002)
    model.train()
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = heatmap_mse(forward(x), target, weight)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _grads(model: nn.Module, x: torch.Tensor, forward=None) -> dict[str, torch.Tensor]:
    """Gradients of ``model``'s parameters after one backward of the CC-SSL loss of ``forward(x)``."""
    from animalpose.losses import heatmap_mse

    target = torch.rand(x.shape[0], 4, x.shape[2] // 4, x.shape[3] // 4, generator=torch.Generator().manual_seed(1))
    model.train()
    model.zero_grad(set_to_none=True)
    heatmap_mse((model if forward is None else forward)(x), target, torch.ones(x.shape[0], 4)).backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def assert_grads_close(grads: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], tol: float = 1e-4) -> None:
    """Every gradient within ``tol`` × the largest gradient of the model. (Per tensor would be meaningless
    here: a conv bias feeding a training-mode BN has an exactly-zero true gradient, so only rounding noise.)"""
    scale = max(g.abs().max().item() for g in ref.values())
    assert grads.keys() == ref.keys()
    for k, g in ref.items():
        assert (grads[k] - g).abs().max().item() <= tol * scale, k


def test_channels_last_pointwise_training_matches_plain_training():
    plain = _tiny("hourglass")
    fast = pointwise_convs_as_linear(to_channels_last(copy.deepcopy(plain)))
    cl_only = to_channels_last(copy.deepcopy(plain))
    x = torch.randn(2, 3, 64, 64)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    ref_grads = _grads(plain, x)
    # pointwise-as-linear changes nothing beyond rounding next to the channels-last path it runs in
    assert_grads_close(_grads(fast, x_cl), _grads(cl_only, x_cl), tol=1e-5)
    # NCHW vs NHWC (oneDNN) rounding, amplified through the train-mode BNs of this tiny, badly conditioned net:
    # the plain channels_last path (no pointwise) drifts by the same 3% of the gradient scale in the stem conv
    assert_grads_close(_grads(fast, x_cl), ref_grads, tol=5e-2)
    ref_losses, _ = _train_steps(plain, plain, x)
    cl_losses, _ = _train_steps(cl_only, cl_only, x_cl)
    losses, _ = _train_steps(fast, fast, x_cl)
    assert ref_losses[-1] < ref_losses[0]  # the steps do train
    assert losses == pytest.approx(cl_losses, rel=1e-5)
    assert losses == pytest.approx(ref_losses, rel=1e-2)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="inductor needs a compiler")
def test_compiled_channels_last_pointwise_training_step_matches_eager():
    plain = _tiny("hourglass")
    fast = pointwise_convs_as_linear(to_channels_last(copy.deepcopy(plain)))
    compiled = compile_model(fast)
    x = torch.randn(2, 3, 64, 64)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    # the compiled NHWC step matches the plain NCHW step closely (closer than eager NHWC does, see above)
    assert_grads_close(_grads(fast, x_cl, compiled), _grads(plain, x), tol=1e-3)
    ref_losses, _ = _train_steps(plain, plain, x)
    losses, _ = _train_steps(fast, compiled, x_cl)
    assert losses == pytest.approx(ref_losses, rel=1e-2)
