"""End to end on generated data: does WS-CDA beat (b) "few labelled animals only" on the target species?

The setting is seed 0 of the WS-CDA benchmark at its quick budget (``animalpose bench wscda``,
:class:`flows.benchmarks.wscda.BenchSettings` defaults): 300 labelled generated humans, 5 labelled
``photo`` horses, 150 unlabelled ``photo`` dogs (the target), 80 held-out labelled dogs for evaluation;
SimpleBaseline-18 at 128 × 128 (32 × 32 heatmaps), one torch thread. (b) draws only the 5 horses (α = 0)
from scratch for 3 × 50 steps of batch 8; (c) is WS-CDA with the paper's α = −1, β = 500 and the preset's
2 : 1 : 1 mixing for the same steps, starting, as in the paper, from the human-only model (a), pretrained
for 6 × 50 steps on the humans, which ``run_seed`` trains first. Metric: the issue's, crop PCK@0.05 on the
17 joints humans and animals share. Threshold: WS-CDA must beat (b) by at least ``MARGIN`` = 0.01 (one
point of PCK@0.05).

Measured (torch 2.14.1, 4 Dec 2026; BENCHMARKS.md): seed 0 gives (b) 0.065 and (c) 0.089, so the test
passes by 0.024 (392 s here); over seeds 0 / 1 / 2, c − b = +0.024 / +0.092 / +0.053. At PCK@0.1 seed 0's
lead is only +0.007 (0.246 against 0.252), below this margin: the test keeps the issue's metric, at which
32 × 32 heatmaps leave 1.6 cells of tolerance. What the test does *not* show: that the adversarial term
is what wins. (c) has had the human model's 300 steps and (b) has not; against the same batches at α = 0
or the human model fine-tuned on the horses, (c)'s lead is within the seed noise (BENCHMARKS.md).

History: until 4 Dec 2026 the benchmark ran at 64 × 64 crops (16 × 16 heatmaps, where PCK@0.05 means
the exact cell) with a human model of 3 × 50 steps, and WS-CDA did not beat (b): seed 0 (b) 0.238, (c)
0.164 PCK@0.1 on this torch build (c − b = −0.074 / +0.072 / +0.001 over seeds 0-2); the test was a
strict xfail at PCK@0.1.
"""

from dataclasses import replace

import pytest

MARGIN = 0.01


@pytest.mark.slow
@pytest.mark.timeout(3600)  # about 410 s of CPU (a, b, c); allow for a loaded shared 2-core box
def test_wscda_improves_on_few_labelled_animals(tmp_path):
    pytest.importorskip("synthetic")
    torch = pytest.importorskip("torch")
    from flows.benchmarks.wscda import BenchSettings, run_seed

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_seed(tmp_path, 0, replace(BenchSettings(), pplo_rounds=0, control=False), rows=("b", "c"))
    finally:
        torch.set_num_threads(threads)
    b, c = result.rows["b"]["pck@0.05"], result.rows["c"]["pck@0.05"]
    assert c >= b + MARGIN, f"WS-CDA {c:.3f} vs few labelled animals {b:.3f} (PCK@0.05, common joints)"
