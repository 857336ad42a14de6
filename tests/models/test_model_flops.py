"""MAC counting convention: multiply-adds of convolutions and matrix products, by hand."""

from __future__ import annotations

import torch
from torch import nn

from animalpose.flops import count_macs, count_parameters


def test_conv_macs_by_hand():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, stride=2), nn.BatchNorm2d(8), nn.ReLU())
    # output 8×16×12 positions, each 3·3·3 multiply-adds
    assert count_macs(net, (32, 24)) == 8 * 16 * 12 * 27


def test_transposed_conv_counts_input_positions():
    net = nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1, bias=False)
    stem = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), net)
    assert count_macs(stem, (5, 7)) == 5 * 7 * 3 * 4 + 5 * 7 * 4 * 2 * 16


def test_meta_model_counts_without_compute_and_params():
    with torch.device("meta"):
        net = nn.Sequential(nn.Conv2d(3, 16, 1), nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
    assert count_macs(net, (4, 4), batch=2) == 2 * (16 * 16 * 3 + 256 * 10)
    assert count_parameters(net) == 16 * 3 + 16 + 2560 + 10
