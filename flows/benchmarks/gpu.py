"""`animalpose bench gpu --json`: the GPU figures of BENCHMARKS.md in one prepared command.

    animalpose bench gpu --json > gpu.json          # on a GPU: a few minutes (goal: under 8)
    animalpose bench gpu --json --device cpu        # the CPU fallback: tiny sizes, seconds (CI runs it)

For each network -- hourglass4 at 256 x 256 (the CC-SSL paper's setting, at its batch of 6 and at 32),
HRNet-W32 at 256 x 192 and the quick nets (hourglass_quick, pyranet_quick at 128 x 128, cpn_quick at
128 x 96) -- and for each precision mode:

- ``fp32``: float32 weights and activations, NCHW (cuDNN may use TF32 for convolutions: torch's default,
  recorded as ``tf32_convolutions``);
- ``bf16_cl``: autocast to bfloat16 with channels-last weights and inputs;

it reports the training images/s (forward + backward + RMSprop step on random input, median over the
timed steps after warm-up steps, cuDNN autotuning on), the model FLOP utilisation (MFU: 3 x 2 x the
forward multiply-adds of :func:`animalpose.flops.count_macs` per image x images/s, against the device's
dense peak for that precision from :data:`PEAK_TFLOPS`; None for a device not in the table and on a
CPU), the peak GPU memory of the mode, the pseudo-labelling images/s (the 7 views of the CC-SSL
consistency check, :func:`animalpose.adapt.pseudolabel.consistency_predict`, through the BN-folded
channels-last copy pseudo-labelling uses; in fp32 also with the reference's 5 views, and their cost ratio
``seven_over_five_views``) and, for
hourglass4 at the paper's batch, the extrapolated time of the paper's 100-epoch pretraining
(``--paper-images`` images per epoch, default 10,000 as rendered by ``animalpose synth --n 10000``;
give the size of your set) at the faster mode's rate. Pseudo-labelling takes 32 random crops, all their
views in one forward. A case that runs out of GPU memory is reported with an ``error`` and the others
still run. ``speedup`` is bf16_cl images/s over fp32.

Without CUDA (or with ``--device cpu``) the same code runs on tiny inputs (64 px, batch 2, one warm-up
and two timed steps) so that the command and its JSON are tested on every machine; its figures say
nothing about a GPU and carry ``"fallback": true``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import typer

#: dense (no sparsity) peak tensor throughput in TFLOP/s by device: (bf16, tf32, fp32 without tensor
#: cores), from NVIDIA's data sheets (H100/H200 SXM, H100 PCIe, A100, L40S, L4). The first entry whose
#: every substring is in ``torch.cuda.get_device_name()`` applies; order matters (PCIe before SXM).
PEAK_TFLOPS: tuple[tuple[tuple[str, ...], str, dict[str, float]], ...] = (
    (("H200",), "H200", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    (("H100", "PCIe"), "H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    (("H100",), "H100 SXM", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    (("A100",), "A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    (("L40S",), "L40S", {"bf16": 362.1, "tf32": 183.0, "fp32": 91.6}),
    (("L4",), "L4", {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3}),
)

#: the paper's pretraining: 100 epochs (configs/experiments/ccssl_paper.yaml)
PAPER_EPOCHS = 100


@dataclass(frozen=True)
class NetCase:
    """One network at one input size and batch. ``size`` is (H, W)."""

    model: str
    size: tuple[int, int]
    batch: int
    paper: bool = False  # the paper's setting: the 100-epoch extrapolation is made from it

    @property
    def label(self) -> str:
        return f"{self.model}@{self.size[0]}x{self.size[1]}/b{self.batch}"


GPU_CASES = (
    NetCase("hourglass4", (256, 256), 6, paper=True),
    NetCase("hourglass4", (256, 256), 32),
    NetCase("hrnet_w32", (256, 192), 32),
    NetCase("hourglass_quick", (128, 128), 64),
    NetCase("pyranet_quick", (128, 128), 64),
    NetCase("cpn_quick", (128, 96), 64),
)
CPU_CASES = tuple(NetCase(c.model, (64, 64), 2, paper=c.paper) for c in GPU_CASES if c.batch != 32 or
                  c.model != "hourglass4")


def device_peaks(name: str) -> tuple[str | None, dict[str, float] | None]:
    """(table name, {"bf16", "tf32", "fp32"} TFLOP/s) of a CUDA device name; (None, None) when unknown."""
    for parts, label, peaks in PEAK_TFLOPS:
        if all(p.lower() in name.lower() for p in parts):
            return label, peaks
    return None, None


def mfu(images_per_s: float, macs_per_image: int, peak_tflops: float | None) -> float | None:
    """Model FLOP utilisation of training: 6 FLOPs per forward multiply-add (forward 2, backward 4) per image,
    over the peak. None without a peak."""
    if not peak_tflops:
        return None
    return 6.0 * macs_per_image * images_per_s / (peak_tflops * 1e12)


def pretraining_hours(images_per_s: float, images: int, epochs: int = PAPER_EPOCHS) -> float:
    """Hours of ``epochs`` epochs of ``images`` images at ``images_per_s`` (training steps only)."""
    return epochs * images / images_per_s / 3600


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(step: Callable[[], None], device: torch.device, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _outputs(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, list | tuple) else [out]


def train_rate(case: NetCase, device: torch.device, mode: str, warmup: int, steps: int) -> dict:
    """Training images/s and peak memory of one case in one mode (``fp32`` or ``bf16_cl``)."""
    from animalpose.models.factory import build_model

    torch.manual_seed(0)
    model = build_model(case.model).to(device).train()
    channels_last = mode == "bf16_cl"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.RMSprop(model.parameters(), lr=2.5e-4)
    x = torch.randn(case.batch, 3, *case.size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode == "bf16_cl"):
            out = _outputs(model(x))
        # the MSE of each output against zero targets: the cost of the heatmap loss, shape-agnostic
        loss = sum(o.float().square().mean() for o in out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    sec = _median_seconds(step, device, warmup, steps)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"images_per_s": case.batch / sec, "step_s": sec, "peak_memory_mib": peak}


@torch.no_grad()
def pseudo_label_rate(case: NetCase, device: torch.device, mode: str, images: int, warmup: int, steps: int,
                      views: int = 7) -> float:
    """Pseudo-labelling images/s with the CC-SSL check's views: 7 (identity, 4 geometric, 2 photometric) or
    the reference's 5 (no photometric), through the BN-folded channels-last copy that run_ccssl uses
    (:func:`~animalpose.adapt.pseudolabel.view_model`; ``bf16_cl``: that copy under bf16 autocast), every view
    of the batch in one forward on a GPU."""
    from animalpose.adapt.ccssl import CPU_VIEW_BATCH
    from animalpose.adapt.pseudolabel import ConsistencyConfig, consistency_predict, view_model
    from animalpose.codecs import build_codec
    from animalpose.models.factory import build_model

    torch.manual_seed(0)
    fast = view_model(build_model(case.model).to(device), fast=True)
    h, w = case.size
    codec = build_codec("gaussian", (w, h), (w // 4, h // 4), 2.0)
    x = torch.rand(images, 3, h, w, device=device)
    chunk = views * images if device.type == "cuda" else CPU_VIEW_BATCH
    cfg = ConsistencyConfig(invariance=views == 7, max_batch=chunk)

    def fn(v: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode == "bf16_cl"):
            return fast(v).float()

    sec = _median_seconds(lambda: consistency_predict(fn, x, cfg, codec), device, warmup, steps)
    return images / sec


def _measure_case(case: NetCase, dev: torch.device, macs: int, peaks: dict[str, float] | None, tf32: bool,
                  warmup: int, steps: int, pseudo_images: int) -> dict:
    """Both modes of one case: ``{"fp32": {...}, "bf16_cl": {...}, "speedup"}``."""
    row: dict = {}
    for mode in ("fp32", "bf16_cl"):
        r = train_rate(case, dev, mode, warmup, steps)
        peak = None if peaks is None else peaks["bf16" if mode == "bf16_cl" else ("tf32" if tf32 else "fp32")]
        u = mfu(r["images_per_s"], macs, peak)
        pl_warmup, pl_steps = min(warmup, 2), max(1, steps // 4)
        row[mode] = {"train_images_per_s": round(r["images_per_s"], 2), "step_s": round(r["step_s"], 4),
                     "mfu": None if u is None else round(u, 4), "peak_tflops": peak,
                     "peak_memory_mib": None if r["peak_memory_mib"] is None else round(r["peak_memory_mib"]),
                     "pseudo_label_images_per_s": round(pseudo_label_rate(case, dev, mode, pseudo_images, pl_warmup,
                                                                          pl_steps), 2)}
        if mode == "fp32":  # the reference's 5 views beside the 7, on the path run_ccssl runs
            five = pseudo_label_rate(case, dev, mode, pseudo_images, pl_warmup, pl_steps, views=5)
            row[mode]["pseudo_label_5_views_images_per_s"] = round(five, 2)
            row[mode]["seven_over_five_views"] = round(five / row[mode]["pseudo_label_images_per_s"], 3)
    row["speedup"] = round(row["bf16_cl"]["train_images_per_s"] / row["fp32"]["train_images_per_s"], 3)
    return row


def run_gpu_bench(device: str = "auto", paper_images: int = 10_000, cases: tuple[NetCase, ...] | None = None,
                  warmup: int | None = None, steps: int | None = None, pseudo_images: int | None = None) -> dict:
    """Every case in both modes; see the module docstring. Returns the JSON document."""
    from animalpose.flops import count_macs
    from animalpose.models.factory import build_model

    t_start = time.perf_counter()
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    fallback = dev.type != "cuda"
    cases = cases or (CPU_CASES if fallback else GPU_CASES)
    warmup = warmup if warmup is not None else (1 if fallback else 5)
    steps = steps if steps is not None else (2 if fallback else 20)
    pseudo_images = pseudo_images or (2 if fallback else 32)
    if fallback:
        name, table_name, peaks = platform.processor() or platform.machine(), None, None
    else:
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(dev)
        table_name, peaks = device_peaks(name)
    tf32 = bool(torch.backends.cudnn.allow_tf32) and not fallback
    rows = []
    for case in cases:
        with torch.device("meta"):
            macs = count_macs(build_model(case.model), case.size)
        row: dict = {"case": case.label, "model": case.model, "input": list(case.size), "batch": case.batch,
                     "gmacs_per_image": round(macs / 1e9, 3), "paper_setting": case.paper}
        try:
            row.update(_measure_case(case, dev, macs, peaks, tf32, warmup, steps, pseudo_images))
        except torch.cuda.OutOfMemoryError as exc:  # one case too large for this device: the others still run
            row["error"] = f"out of memory: {str(exc).splitlines()[0]}"
            torch.cuda.empty_cache()
            rows.append(row)
            continue
        if case.paper:  # the fallback's tiny inputs say nothing about the paper's 256-px run
            best = max(row["fp32"]["train_images_per_s"], row["bf16_cl"]["train_images_per_s"])
            row["paper_pretraining_hours"] = None if fallback else round(pretraining_hours(best, paper_images), 2)
        rows.append(row)
    return {"bench": "gpu", "fallback": fallback, "device": str(dev), "device_name": name,
            "peak_table_entry": table_name, "tf32_convolutions": tf32, "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if not fallback else None,
            "threads": torch.get_num_threads(), "warmup": warmup, "steps": steps, "pseudo_images": pseudo_images,
            "paper_epochs": PAPER_EPOCHS, "paper_images": paper_images, "cases": rows,
            "seconds": round(time.perf_counter() - t_start, 1), "load_avg_1m": round(os.getloadavg()[0], 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def bench_command(
    device: str = typer.Option("auto", help="auto (CUDA when present, else the CPU fallback), cuda, cuda:N, cpu."),
    paper_images: int = typer.Option(10_000, min=1, help="Images per epoch of the extrapolated 100-epoch "
                                                         "pretraining (the size of your synthetic set)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Training and pseudo-labelling speed on one GPU: fp32, bf16 + channels-last, MFU, memory.

    Without CUDA, a CPU fallback on tiny inputs that runs in seconds (its figures are not GPU figures)."""
    r = run_gpu_bench(device, paper_images)
    if as_json:
        typer.echo(json.dumps(r))
        return
    typer.echo(f"{r['device_name']} ({r['peak_table_entry'] or 'no peak in the table'}), torch {r['torch']}"
               + (" — CPU fallback, tiny sizes: not GPU figures" if r["fallback"] else ""))
    typer.echo(f"{'case':<28} {'fp32 img/s':>10} {'bf16+CL':>9} {'x':>6} {'MFU fp32':>9} {'MFU bf16':>9} "
               f"{'mem MiB':>8} {'PL img/s':>9}")
    for c in r["cases"]:
        if "error" in c:
            typer.echo(f"{c['case']:<28} {c['error']}")
            continue
        f, b = c["fp32"], c["bf16_cl"]

        def pct(v):
            return "—" if v is None else f"{100 * v:.1f}%"

        typer.echo(f"{c['case']:<28} {f['train_images_per_s']:>10.1f} {b['train_images_per_s']:>9.1f} "
                   f"{c['speedup']:>6.2f} {pct(f['mfu']):>9} {pct(b['mfu']):>9} {b['peak_memory_mib']!s:>8} "
                   f"{b['pseudo_label_images_per_s']:>9.1f}")
        if c.get("paper_pretraining_hours") is not None:
            typer.echo(f"  paper's pretraining ({PAPER_EPOCHS} epochs x {r['paper_images']} images): "
                       f"{c['paper_pretraining_hours']:.1f} h")
    typer.echo(f"{r['seconds']:.0f} s")
