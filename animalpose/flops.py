"""Counting a network's compute.

Convention: "GFLOPs" in this project are **multiply-adds** (10⁹ MACs), as in the HRNet and SimpleBaseline
papers' tables: one k×k conv producing an (h, w, c_out) map from c_in channels costs h·w·c_out·c_in·k²
(transposed convs: the input map's h·w). Only convolutions and matrix products are counted; BN, ReLU,
additions, pooling and resizing are ignored, as in those tables. torch's FlopCounterMode counts 2 FLOPs
per MAC, so its total is halved.

Counting runs the model once; on the ``meta`` device nothing is computed, so counting a model built under
``with torch.device("meta")`` is instant.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_macs(model: nn.Module, input_size: tuple[int, int], batch: int = 1) -> int:
    """Multiply-adds of one forward pass of ``model`` on a (batch, 3, H, W) input.

    The input is created on the device of the model's first parameter (``meta`` for a meta model).
    Runs in eval mode without gradients and restores the previous training flag.
    """
    return count_macs_and_outputs(model, input_size, batch)[0]


def count_macs_and_outputs(model: nn.Module, input_size: tuple[int, int], batch: int = 1) -> tuple[int, object]:
    """As :func:`count_macs`, also returning the model's outputs (one forward pass for both)."""
    h, w = input_size
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(batch, 3, h, w, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            outputs = model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2, outputs


def gflops(model: nn.Module, input_size: tuple[int, int]) -> float:
    """10⁹ multiply-adds per image (batch 1) at ``input_size`` (H, W)."""
    return count_macs(model, input_size) / 1e9


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (works on meta models)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
