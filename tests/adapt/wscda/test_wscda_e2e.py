"""End to end on generated data: does WS-CDA beat (b) "few labelled animals only" on the target species?

The setting is seed 0 of the WS-CDA benchmark at its quick budget (``animalpose bench wscda``,
:class:`animalpose.bench.wscda.BenchSettings` defaults): 300 labelled generated humans, 5 labelled
``photo`` horses, 150 unlabelled ``photo`` dogs (the target), 80 held-out labelled dogs for evaluation;
SimpleBaseline-18 at 64 × 64 from scratch, 3 × 50 steps of batch 8 for each model, one torch thread.
(b) draws only the 5 horses (α = 0); (c) is WS-CDA with the paper's α = −1, β = 500 and the preset's
2 : 1 : 1 mixing, starting, as in the paper, from the human-only model (a), which ``run_seed`` trains
first. Metric: crop PCK@0.1 on the 17 joints humans and animals share. Threshold: WS-CDA must beat (b)
by at least ``MARGIN`` = 0.01 (one point of PCK@0.1).

**Known gap, measured (strict xfail).** At this budget WS-CDA does *not* beat (b). On generator 1.1
(``animalpose bench wscda --seeds 0,1,2``, 3 Dec 2026), with (c) starting from (a): seed 0 gives (b)
0.247 and (c) 0.188 common-joint PCK@0.1 (c − b = −0.059 / +0.021 / −0.045 over seeds 0 / 1 / 2; means
0.243 and 0.216, BENCHMARKS.md). From scratch (the setting before 103ca02) seed 0's (c) was 0.134
(c − b = −0.113; means 0.243 and 0.150). Generator 1.0, from scratch, common-joint
PCK@0.1, seeds 0 / 1 / 2 (22 Nov 2026):

=============================================  =====  =====  =====
(b) few labelled animals only                  0.106  0.122  0.138
(c) WS-CDA                                     0.102  0.110  0.108
control: humans + few, same batches, α = 0     0.102  0.091  0.095
(e) oracle (target labels)                     0.186  0.175  0.204
=============================================  =====  =====  =====

So c − b = −0.004 / −0.012 / −0.030 there. Why, on 1.1: every model is far from converged (PCK@0.05 ≤
0.06 for all), the adversarial term helps (c − its α = 0 control = +0.013 / +0.047 / +0.073) but the
human model is no better a start for the 5 horses than random weights (fine-tuning it on them alone
gives 0.240 against (b)'s 0.243), so the humans' share of the batches is not paid back; giving the
animals half of each batch (1 : 2 : 1) did not change seed 0's (c). The discriminator does move towards
chance (seed 0, end of the WS-CDA stage: human/animal accuracy 0.70 / 0.59, source/target 0.70 / 0.65).
The indicative one-seed figure in BENCHMARKS.md (a tiny network trained 300 steps, where (b) overfits its
5 horses) showed the opposite sign; this test keeps the benchmark's setting and its honest outcome. When
it starts to pass (XPASS fails a strict xfail) the benchmark has changed: update the table above.
"""

from dataclasses import replace

import pytest

MARGIN = 0.01


@pytest.mark.slow
@pytest.mark.timeout(3600)  # about 190 s of CPU (a, b, c); 15 min wall on the shared 2-core box at load 8
@pytest.mark.xfail(strict=True, reason="WS-CDA does not beat few-labelled-animals-only at the quick CPU budget "
                                       "(c - b = -0.059 / +0.021 / -0.045 PCK@0.1 over seeds 0-2, generator 1.1)")
def test_wscda_improves_on_few_labelled_animals(tmp_path):
    pytest.importorskip("synthetic")
    torch = pytest.importorskip("torch")
    from animalpose.bench.wscda import BenchSettings, run_seed

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_seed(tmp_path, 0, replace(BenchSettings(), pplo_rounds=0, control=False), rows=("b", "c"))
    finally:
        torch.set_num_threads(threads)
    b, c = result.rows["b"]["pck@0.1"], result.rows["c"]["pck@0.1"]
    assert c >= b + MARGIN, f"WS-CDA {c:.3f} vs few labelled animals {b:.3f}"
