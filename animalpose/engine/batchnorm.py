"""BatchNorm modes for forward passes that are not the labelled batch's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def running_statistics(model: nn.Module) -> Iterator[None]:
    """Within the block, every BatchNorm layer of ``model`` that is training normalises with its running
    statistics and leaves them unchanged (as at evaluation); gradients still reach every weight, the BatchNorm
    affines included. Other layers keep their mode (dropout stays on).

    Why: an unsupervised term's forward pass on a clip of near-identical consecutive video frames normalises each
    layer by that clip's own statistics, so the term reads predictions of a different function than the one
    evaluated (BENCHMARKS.md, issue 23: 7-9 px apart on the SLEAP clip, 15-16 px on mirror-mouse), and it would also
    pull the running statistics towards the clip. Measured, the cure is worse: with the running statistics the
    terms' gradients reach the weights unnormalised and both real projects' terms collapse further (BENCHMARKS.md),
    so ``ccssl.term_batchnorm`` keeps ``batch`` by default."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for m in layers:
        m.eval()
    try:
        yield
    finally:
        for m in layers:
            m.train()
