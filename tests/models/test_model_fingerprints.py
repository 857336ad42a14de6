"""Seeded fingerprints of the stacked-hourglass, PyraNet and HRNet variants.

For each variant, built after ``torch.manual_seed(0)``: the parameter count, a hash of the state-dict
names and shapes (what checkpoints and the CC-SSL reference import rely on), a hash of the initial
weights and buffers, and (for small variants) a hash of the eval-mode output on a seeded input. The
values were recorded from the code as it was before the shared stacked-hourglass base and the HRNet
stage rewrite (issue 28), so a refactor that renames a parameter, changes the order in which modules
draw their initial weights, or changes the computation fails here.

Names and counts hold on any torch build. Weight hashes are bitwise and checked on the torch release they were
recorded with (seeded initialisation draws the same numbers on any CPU). Output hashes also depend on the CPU's
float kernels (an AMD EPYC and an Intel Xeon, both AVX-512, differ in the last bits for three of the five
variants), so they are checked on the CPU they were recorded on; everywhere the output's mean, standard deviation
and largest magnitude are checked against values recorded on the other machine, to 1e-3 of the spread: any change
of the computation moves them far more, a different kernel's rounding far less.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import NamedTuple

import pytest
import torch
from torch import nn

from animalpose.models import factory
from animalpose.models.hourglass import HourglassNet
from animalpose.models.hrnet import HRNet, HRNetConfig
from animalpose.models.pyranet import PyraNet

RECORDED_WITH = "2.14.1"
RECORDED_ON = "Intel(R) Xeon(R) Processor"  # the CPU (provenance.machine()["cpu"]) of the output hashes

# (mean, std, max |y|) of each checked variant's output, recorded with torch 2.14.1 on an AMD EPYC
OUTPUT_STATS = {
    "hourglass_quick": (1.411901e-02, 3.995905e-01, 9.992599e-01),
    "hourglass_tiny": (-2.105566e-01, 3.260775e-01, 8.324363e-01),
    "pyranet_quick": (3.346723e+00, 4.081634e+03, 1.562668e+04),
    "pyranet_tiny": (2.220810e+01, 9.404261e+01, 4.314173e+02),
    "hrnet_tiny": (5.089020e-12, 1.979806e-11, 7.497410e-11),
}


class Recorded(NamedTuple):
    build: Callable[[], nn.Module]
    input_hw: tuple[int, int] | None  # None: no forward check (full-size variants)
    params: int
    names: str  # state-dict names and shapes
    weights: str
    output: str | None = None


VARIANTS: dict[str, Recorded] = {
    "hourglass1": Recorded(factory.hourglass1, None, 3_587_474, "44b665e39d35d4f9", "d362c751242fd6c1"),
    "hourglass2": Recorded(factory.hourglass2, None, 6_732_452, "89ebe4905501bc3c", "5b9de40e7ddcaf56"),
    "hourglass4": Recorded(factory.hourglass4, None, 13_022_408, "d839e9c38bb06224", "17fc30786c423a23"),
    "hourglass8": Recorded(factory.hourglass8, None, 25_602_320, "98c1271946718292", "70b1d3681d9937b6"),
    "hourglass_quick": Recorded(
        factory.hourglass_quick, (128, 128), 1_701_220, "bd327dc5594e7dca", "3ff94b57c171cd44", "88d8174ddd4de5b5"
    ),
    "hourglass_tiny": Recorded(
        lambda: HourglassNet(5, num_stacks=2, num_feats=8, depth=2, stem_channels=4),
        (64, 48), 18_786, "57a95d8fd2e71dc7", "4a75dd50c41c1912", "4d1af53d133c712f",
    ),
    "pyranet4": Recorded(factory.pyranet4, None, 16_884_168, "3bb913b57096bb2c", "13d1029a8685396f"),
    "pyranet8": Recorded(factory.pyranet8, None, 33_325_840, "fe296e55fc92d4b6", "7d2353d77d031c64"),
    "pyranet_quick": Recorded(
        factory.pyranet_quick_net, (128, 128), 2_191_524, "29686c74a7f121c5", "2a4541ba91421718", "72f3f713f0f1cd5d"
    ),
    "pyranet_tiny": Recorded(
        lambda: PyraNet(5, num_stacks=2, num_feats=8, depth=2, stem_channels=4),
        (64, 48), 23_938, "8a9873dc934015c9", "32a145f179b44004", "6706d7c21560261d",
    ),
    "hrnet_w32": Recorded(factory.hrnet_w32, None, 28_536_113, "dcdc28ab35db79a5", "87f88c44d43cfb7f"),
    "hrnet_w48": Recorded(factory.hrnet_w48, None, 63_595_745, "00ed2c77dd9cd588", "9ea26aa0d584871a"),
    "hrnet_tiny": Recorded(
        lambda: HRNet(5, HRNetConfig(width=8, num_modules=(1, 1, 1), num_blocks=1, stem_blocks=1)),
        (64, 64), 333_197, "2389e999d2ecf1d9", "0a56841865ef4ad1", "dc78f9b5c9d95b81",
    ),
}


def _digest(tensors: Iterable[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _names_digest(net: nn.Module) -> str:
    text = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in net.state_dict().items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _build(name: str) -> nn.Module:
    torch.manual_seed(0)
    return VARIANTS[name].build()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_parameter_count_and_state_dict_names_unchanged(name):
    net, recorded = _build(name), VARIANTS[name]
    assert sum(p.numel() for p in net.parameters()) == recorded.params
    assert _names_digest(net) == recorded.names


@pytest.mark.skipif(
    not torch.__version__.startswith(RECORDED_WITH), reason=f"bitwise hashes recorded with torch {RECORDED_WITH}"
)
@pytest.mark.parametrize("name", list(VARIANTS))
def test_seeded_weights_and_outputs_bitwise_unchanged(name):
    from animalpose.provenance import machine

    net, recorded = _build(name).eval(), VARIANTS[name]
    assert _digest(net.state_dict().values()) == recorded.weights
    if recorded.input_hw is not None:
        x = torch.randn(2, 3, *recorded.input_hw)  # drawn right after the build, as when recorded
        with torch.no_grad():
            y = net(x)
        mean, std, peak = OUTPUT_STATS[name]
        flat = torch.cat([t.flatten() for t in (y if isinstance(y, list | tuple) else [y])]).double()
        assert abs(flat.mean().item() - mean) <= 1e-3 * std
        assert (flat.std().item(), flat.abs().max().item()) == pytest.approx((std, peak), rel=1e-3)
        if machine()["cpu"] == RECORDED_ON:
            assert _digest(y) == recorded.output
