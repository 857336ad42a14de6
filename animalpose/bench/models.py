"""`animalpose bench models`: forward and forward+backward images per second of the pose networks.

For each (model, input size) of :data:`CASES` and each execution mode of :data:`MODES`:

- forward: eval mode under ``torch.inference_mode``, a batch of ``batch`` images;
- train: train mode, forward + :func:`animalpose.losses.heatmap_mse` over every stack + backward (the
  work of a training step minus the optimiser update, which is negligible next to it).

Each is timed ``repeats`` times after ``warmup`` untimed calls; the median is reported as images/s and
ms per image (wall clock), and as process CPU time per image (steadier on a shared machine).
Modes: ``plain`` (float32, NCHW), ``channels_last`` (NHWC weights and inputs), ``bf16`` (autocast
bfloat16, float32 parameters), ``channels_last+bf16``, and, forward only, ``fused`` (float32, BN folded
into the preceding convs, channels-last). The trained parameters are the same in every mode (folding
makes an inference copy).

Anchor (issue 5): the CC-SSL reference hourglass4 at 256×256 on a 2-core CPU took 135–176 ms per image
forward (batch 1) and 0.43–0.50 s per image forward+backward; :func:`anchor_ratios` compares.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from animalpose.losses import heatmap_mse
from animalpose.models.factory import build_model
from animalpose.models.speed import Autocast, fold_batchnorm, to_channels_last

CASES: list[tuple[str, tuple[int, int]]] = [
    ("hourglass4", (256, 256)),
    ("hourglass_quick", (128, 128)),
    ("simplebaseline50", (256, 192)),
    ("hrnet_w32", (256, 192)),
]
MODES: tuple[str, ...] = ("plain", "channels_last", "bf16", "channels_last+bf16", "fused")
ANCHOR = {"model": "hourglass4", "forward_ms_per_image": (135.0, 176.0), "train_s_per_image": (0.43, 0.50)}


def _median_seconds(fn: Callable[[], Any], repeats: int, warmup: int) -> tuple[float, float]:
    """Median wall-clock and median process CPU seconds of ``repeats`` calls after ``warmup`` calls.

    On a shared machine the CPU time (all threads of this process) is the steadier figure: with one
    thread it is close to the wall time the call would take on an idle core."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def measure_case(
    name: str, input_size: tuple[int, int], mode: str, batch: int = 2, repeats: int = 3, warmup: int = 1
) -> dict[str, Any]:
    """Time one model in one mode; returns a row of the report (``train_*`` is None for ``fused``)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    torch.manual_seed(0)
    model = build_model(name, input_size=input_size)
    k = model.num_joints
    h, w = input_size
    channels_last = "channels_last" in mode or mode == "fused"
    x = torch.randn(batch, 3, h, w)
    target = torch.rand(batch, k, h // model.stride, w // model.stride)
    weight = torch.ones(batch, k)
    if channels_last:
        to_channels_last(model)
        x = x.contiguous(memory_format=torch.channels_last)
    runner = Autocast(model, torch.bfloat16) if "bf16" in mode else model

    fwd_model = fold_batchnorm(model) if mode == "fused" else runner
    fwd_model.eval()
    if mode == "fused":
        to_channels_last(fwd_model)

    def forward() -> None:
        with torch.inference_mode():
            fwd_model(x)

    forward_s, forward_cpu = _median_seconds(forward, repeats, warmup)

    train_s = train_cpu = None
    if mode != "fused":
        runner.train()

        def train_step() -> None:
            model.zero_grad(set_to_none=True)
            heatmap_mse(runner(x), target, weight).backward()

        train_s, train_cpu = _median_seconds(train_step, repeats, warmup)
    params = sum(p.numel() for p in model.parameters())
    return {
        "model": name,
        "input_size": [h, w],
        "mode": mode,
        "batch": batch,
        "params": params,
        "forward_images_per_s": batch / forward_s,
        "forward_ms_per_image": 1000 * forward_s / batch,
        "train_images_per_s": None if train_s is None else batch / train_s,
        "train_s_per_image": None if train_s is None else train_s / batch,
        "forward_cpu_ms_per_image": 1000 * forward_cpu / batch,
        "train_cpu_s_per_image": None if train_cpu is None else train_cpu / batch,
    }


def anchor_ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Speed-up of hourglass4 over the CC-SSL reference anchor (>1 = we are faster), per mode, as a
    [min, max] range: min against the reference's fastest figure, max against its slowest."""
    out: dict[str, Any] = {"reference": ANCHOR}
    fast_f, slow_f = ANCHOR["forward_ms_per_image"]
    fast_t, slow_t = ANCHOR["train_s_per_image"]
    for row in rows:
        if row["model"] != ANCHOR["model"]:
            continue
        entry = {"forward_speedup": [fast_f / row["forward_ms_per_image"], slow_f / row["forward_ms_per_image"]]}
        if row["train_s_per_image"] is not None:
            entry["train_speedup"] = [fast_t / row["train_s_per_image"], slow_t / row["train_s_per_image"]]
        out[row["mode"]] = entry
    return out


def run_models_benchmark(
    cases: list[tuple[str, tuple[int, int]]] | None = None,
    modes: tuple[str, ...] = MODES,
    batch: int = 2,
    repeats: int = 3,
    warmup: int = 1,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every case in every mode; one JSON-ready object with environment, rows and anchor ratios."""
    if threads:
        torch.set_num_threads(threads)
    rows = []
    for name, size in cases or CASES:
        for mode in modes:
            if progress:
                progress(f"{name} {size[0]}x{size[1]} {mode}")
            rows.append(measure_case(name, size, mode, batch, repeats, warmup))
    return {
        "benchmark": "models",
        "torch": torch.__version__,
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "batch": batch,
        "repeats": repeats,
        "warmup": warmup,
        "results": rows,
        "anchor": anchor_ratios(rows),
    }


def format_table(report: dict[str, Any]) -> str:
    lines = [
        f"torch {report['torch']}, {report['threads']} threads, batch {report['batch']}, "
        f"median of {report['repeats']}, load average {report['load_average']}",
        f"{'model':<17}{'input':>9}  {'mode':<19}{'fwd img/s':>10}{'fwd ms/img':>11}{'train img/s':>12}"
        f"{'train s/img':>12}{'fwd cpu ms':>11}{'train cpu s':>12}",
    ]
    for r in report["results"]:
        train = (
            f"{r['train_images_per_s']:>12.2f}{r['train_s_per_image']:>12.3f}"
            if r["train_images_per_s"] is not None
            else f"{'-':>12}{'-':>12}"
        )
        size = f"{r['input_size'][0]}x{r['input_size'][1]}"
        lines.append(
            f"{r['model']:<17}{size:>9}  {r['mode']:<19}{r['forward_images_per_s']:>10.2f}"
            f"{r['forward_ms_per_image']:>11.1f}{train}{r.get('forward_cpu_ms_per_image', float('nan')):>11.1f}"
            + (f"{r['train_cpu_s_per_image']:>12.3f}" if r.get("train_cpu_s_per_image") is not None else f"{'-':>12}")
        )
    anchor = report["anchor"]
    for mode, entry in anchor.items():
        if mode == "reference":
            continue
        lo, hi = entry["forward_speedup"]
        text = f"hourglass4 {mode}: forward {lo:.2f}-{hi:.2f}x"
        if "train_speedup" in entry:
            lo, hi = entry["train_speedup"]
            text += f", train {lo:.2f}-{hi:.2f}x"
        lines.append(text + " the CC-SSL reference (135-176 ms/img forward, 0.43-0.50 s/img train)")
    return "\n".join(lines)
