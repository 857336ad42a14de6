"""Speed paths give the plain path's outputs: BN folding, channels-last, bf16 autocast, torch.compile."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch
from torch import nn

from animalpose.models.factory import build_model
from animalpose.models.heads import PoseModel
from animalpose.models.hourglass import HourglassNet
from animalpose.models.hrnet import HRNet, HRNetConfig
from animalpose.models.pyranet import PyraNet
from animalpose.models.simple_baseline import SimpleBaseline
from animalpose.models.speed import Autocast, compile_model, fold_batchnorm, optimize_for_inference, to_channels_last


def _tiny(kind: str) -> PoseModel:
    nets = {
        "hourglass": lambda: HourglassNet(4, num_stacks=2, num_feats=8, depth=2, stem_channels=4),
        "pyranet": lambda: PyraNet(4, num_stacks=2, num_feats=8, depth=2, stem_channels=4),
        "simplebaseline": lambda: SimpleBaseline(4, depth=18, deconv_channels=8),
        "hrnet": lambda: HRNet(4, HRNetConfig(width=4, num_modules=(1, 1, 1), num_blocks=1, stem_blocks=1)),
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


@pytest.mark.parametrize("kind", ["hourglass", "pyranet", "simplebaseline", "hrnet"])
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
