"""Faster execution of the same networks, same parameters, same outputs within tolerance.

- :func:`to_channels_last`: NHWC memory format for the weights (feed NHWC inputs too; the models keep
  it through every op); oneDNN/cuDNN convolutions are faster in NHWC.
- :class:`Autocast`: runs a model under ``torch.autocast`` (bf16 on CPU, bf16 or fp16 on CUDA) and
  returns float32 heatmaps; parameters stay float32, so training with it is mixed precision.
- :func:`compile_model`: ``torch.compile`` (inductor), optional. For training on the CPU inductor fuses
  the training-mode BatchNorm statistics, normalisation, ReLU and residual adds (and their backward)
  into a few vectorised loops around the oneDNN convolutions.
- :func:`pointwise_convs_as_linear`: every 1×1, stride-1, ungrouped ``Conv2d`` computes as a matrix
  product over channels (``F.linear`` on the NHWC view) when its input is channels-last; same
  parameters, same state dict, same maths. On the CPU with one thread PyTorch sends small-batch 1×1
  convolutions to its im2col fallback (``_slow_conv2d``), whose backward zero-fills and copies; the
  matrix product is faster there, and under ``torch.compile`` its bias and bias gradient fuse into
  the neighbouring loops.
- :func:`fold_batchnorm`: for inference, folds every BatchNorm that directly follows a conv or
  transposed conv into that conv's weights and bias (the network is traced with torch.fx). BNs that
  precede a conv through a ReLU (the pre-activation residuals of the hourglass) cannot be folded and stay.
- :func:`optimize_for_inference`: eval copy with BN folded and channels-last, optionally compiled.
"""

from __future__ import annotations

import copy

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convert ``model`` in place to channels-last memory format and return it."""
    return model.to(memory_format=torch.channels_last)


def default_autocast_dtype(device: torch.device | str) -> torch.dtype:
    """bf16 on CPU; bf16 on CUDA where supported, else fp16."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def _to_float(outputs):
    if isinstance(outputs, torch.Tensor):
        return outputs.float()
    if isinstance(outputs, list | tuple):
        return type(outputs)(_to_float(o) for o in outputs)
    return outputs


class Autocast(nn.Module):
    """Wrap ``model`` so its forward runs under autocast; outputs come back as float32.

    Attributes of the wrapped model (``num_joints``, ``stride``, ``head_codec``, ``readout``) are reachable
    on the wrapper. The wrapper adds no parameters; its state dict keys are prefixed ``model.``.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype | None = None):
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, x: torch.Tensor):
        dtype = self.dtype or default_autocast_dtype(x.device)
        with torch.autocast(device_type=x.device.type, dtype=dtype):
            outputs = self.model(x)
        return _to_float(outputs)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("model"), name)


def compile_model(model: nn.Module, mode: str | None = None, dynamic: bool = False) -> nn.Module:
    """``torch.compile(model)``; compilation happens at the first call (needs a C++ compiler on CPU)."""
    return torch.compile(model, mode=mode, dynamic=dynamic)


class PointwiseConv2d(nn.Conv2d):
    """A 1×1 stride-1 ``Conv2d`` that runs as ``F.linear`` over channels on channels-last input.

    (N, C_in, H, W) -> (N, C_out, H, W); with a channels-last input the NHWC view is contiguous, so
    ``F.linear(x.permute(0, 2, 3, 1), weight[:, :, 0, 0], bias)`` costs no copy and returns a
    channels-last result. Other inputs (NCHW) take the ordinary convolution. Parameters and state dict
    are those of the ``Conv2d`` it replaces.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or not x.is_contiguous(memory_format=torch.channels_last) or x.is_contiguous():
            return super().forward(x)
        out = F.linear(x.permute(0, 2, 3, 1), self.weight.flatten(1), self.bias)
        return out.permute(0, 3, 1, 2)


def _is_pointwise(m: nn.Module) -> bool:
    return (
        type(m) is nn.Conv2d
        and m.kernel_size == (1, 1)
        and m.stride == (1, 1)
        and m.dilation == (1, 1)
        and m.groups == 1
        and m.padding in ((0, 0), "valid")
        and m.padding_mode == "zeros"
    )


def pointwise_convs_as_linear(model: nn.Module) -> nn.Module:
    """Turn every plain 1×1 stride-1 ``Conv2d`` of ``model`` into a :class:`PointwiseConv2d`, in place
    (same parameter objects; only the class changes). Returns ``model``. Pair it with channels-last
    weights and inputs (:func:`to_channels_last`); NCHW inputs still take the convolution."""
    for m in model.modules():
        if _is_pointwise(m):
            m.__class__ = PointwiseConv2d
    return model


def _fold_graph(module: nn.Module) -> torch.fx.GraphModule:
    gm = torch.fx.symbolic_trace(module)
    modules = dict(gm.named_modules())
    call_sites: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            call_sites[node.target] = call_sites.get(node.target, 0) + 1
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        prev = node.args[0]
        if not isinstance(prev, torch.fx.Node) or prev.op != "call_module" or len(prev.users) != 1:
            continue
        conv = modules[prev.target]
        bn = modules[node.target]
        if not isinstance(conv, nn.Conv2d | nn.ConvTranspose2d) or call_sites[prev.target] != 1:
            continue
        if call_sites[node.target] != 1 or not bn.track_running_stats or bn.running_mean is None:
            continue
        fused = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
        parent_name, _, attr = prev.target.rpartition(".")
        parent = gm.get_submodule(parent_name) if parent_name else gm
        setattr(parent, attr, fused)
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Eval-mode copy of ``model`` with conv→BN pairs folded; the input model is untouched.

    For a :class:`~animalpose.models.heads.PoseModel` the copy keeps its head, name and attributes and
    only its ``net`` is replaced by the folded traced graph.
    """
    model = copy.deepcopy(model).eval()
    for m in model.modules():  # torch.fx traces nn.Conv2d as a leaf, not PointwiseConv2d's branch
        if type(m) is PointwiseConv2d:
            m.__class__ = nn.Conv2d
    if hasattr(model, "net") and hasattr(model, "head"):
        model.net = _FoldedNet(_fold_graph(model.net), model.net)
        return model
    return _fold_graph(model)


class _FoldedNet(nn.Module):
    """A folded GraphModule that still answers ``num_joints`` and ``stride`` like the original net."""

    def __init__(self, graph: torch.fx.GraphModule, original: nn.Module):
        super().__init__()
        self.graph_module = graph
        self.num_joints = original.num_joints
        self.stride = original.stride

    def forward(self, x: torch.Tensor):
        return self.graph_module(x)


def optimize_for_inference(
    model: nn.Module, channels_last: bool = True, fold_bn: bool = True, compile: bool = False
) -> nn.Module:
    """Eval-mode copy: BN folded, channels-last, optionally compiled. Feed it channels-last inputs
    (``x.contiguous(memory_format=torch.channels_last)``) for the full benefit."""
    out = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
    if channels_last:
        to_channels_last(out)
    return compile_model(out) if compile else out
