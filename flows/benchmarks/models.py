"""`animalpose bench models`: forward and training-step images per second of the pose networks.

For each (model, input size) of :data:`CASES` and each execution mode:

- forward: eval mode under ``torch.inference_mode``, a batch of ``batch`` images;
- train: one training step in train mode (BatchNorm on batch statistics): forward, the loss the model
  carries (``model.loss``: heatmap MSE over every stack; CPN: L2 on GlobalNet + OHKM on RefineNet; MSPN/RSN:
  coarse-to-fine targets at random coordinates),
  backward and an RMSprop update (lr 2.5e-4, the CC-SSL optimiser), gradients cleared with ``set_to_none``.

The modes of one case are timed side by side: every mode is built and called once (its ``setup``
time: for ``compile`` modes the compilation), then ``warmup`` untimed rounds, then ``repeats`` rounds
that call each mode in turn, so a change of machine load hits every mode alike. The median is
reported as images/s and ms per image (wall clock) and as process CPU time per image (steadier on a
shared machine), and each train row carries its speed-up over ``plain`` of the same run.

Modes (:data:`MODES`): ``plain`` (float32, NCHW: the CC-SSL reference's execution), ``channels_last``
(NHWC weights and inputs), ``bf16`` (autocast bfloat16, float32 parameters), ``channels_last+bf16``,
``fused`` (forward only: BN folded into the preceding convs, channels-last) and the training paths
``channels_last+pointwise`` (1×1 convs as matrix products, :func:`pointwise_convs_as_linear`),
``channels_last+compile`` and ``channels_last+pointwise+compile`` (``torch.compile`` of the model,
train only). The compile modes take minutes to compile on a small CPU, so they run only when named
(:data:`DEFAULT_MODES` leaves them out). The trained parameters are the same in every mode.

Side by side with SimpleBaseline-50: when ``simplebaseline50`` is among the cases, every other row of the same
mode gets its forward and training-step cost as a ratio to SimpleBaseline-50's in the same run
(:func:`baseline_ratios`; CPU time per image, steadier on a shared machine, and wall clock). ``--size HxW``
measures every case at one input size (a small one keeps a run short on a loaded CPU).

Anchor (issue 5): the CC-SSL reference hourglass4 at 256×256 on a 2-core CPU took 135–176 ms per image
forward (batch 1) and 0.43–0.50 s per image forward+backward; :func:`anchor_ratios` compares.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import typer

from animalpose.models.factory import build_model
from animalpose.models.speed import Autocast, compile_model, fold_batchnorm, pointwise_convs_as_linear, to_channels_last
from flows.benchmarks.harness import load_average, timed

CASES: list[tuple[str, tuple[int, int]]] = [
    ("hourglass4", (256, 256)),
    ("hourglass_quick", (128, 128)),
    ("simplebaseline50", (256, 192)),
    ("cpn50", (256, 192)),
    ("mspn_2stg", (256, 192)),
    ("rsn18", (256, 192)),
    ("lpn50", (256, 192)),
    ("grmi_resnet50", (256, 192)),
    ("hrnet_w32", (256, 192)),
]
#: the model every other is compared with when it is in the run (:func:`baseline_ratios`)
BASELINE = "simplebaseline50"
DEFAULT_MODES: tuple[str, ...] = ("plain", "channels_last", "bf16", "channels_last+bf16", "fused",
                                  "channels_last+pointwise")
COMPILE_MODES: tuple[str, ...] = ("channels_last+compile", "channels_last+pointwise+compile")
MODES: tuple[str, ...] = DEFAULT_MODES + COMPILE_MODES
TRAIN_LR = 2.5e-4
ANCHOR = {"model": "hourglass4", "forward_ms_per_image": (135.0, 176.0), "train_s_per_image": (0.43, 0.50)}


@dataclass
class _Runner:
    """One mode of one case, built and called once (``setup_*``: the first call, compilation included)."""

    mode: str
    params: int
    forward: Callable[[], None] | None
    train: Callable[[], None] | None
    setup_s: float = 0.0
    setup_cpu_s: float = 0.0
    times: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: {"forward": [], "train": []})


def _build(name: str, input_size: tuple[int, int], mode: str, batch: int) -> _Runner:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    torch.manual_seed(0)
    model = build_model(name, input_size=input_size)
    k, (h, w) = model.num_joints, input_size
    parts = set(mode.split("+"))
    x = torch.randn(batch, 3, h, w)
    maps = k * getattr(model.net, "channels_per_joint", 1)  # G-RMI: heatmaps + x- and y-offsets
    target = torch.rand(batch, maps, h // model.stride, w // model.stride)
    weight = torch.ones(batch, k)
    grid = torch.tensor([w // model.stride - 1, h // model.stride - 1], dtype=torch.float32)
    coords = torch.rand(batch, k, 2) * grid if model.needs_coords else None  # (x, y) heatmap px
    if "channels_last" in parts or mode == "fused":
        to_channels_last(model)
        x = x.contiguous(memory_format=torch.channels_last)
    if "pointwise" in parts:
        pointwise_convs_as_linear(model)
    params = sum(p.numel() for p in model.parameters())
    runner = Autocast(model, torch.bfloat16) if "bf16" in parts else model

    forward = None
    if "compile" not in parts:
        fwd_model = to_channels_last(fold_batchnorm(model)) if mode == "fused" else runner

        def forward() -> None:
            fwd_model.eval()
            with torch.inference_mode():
                fwd_model(x)

    train = None
    if mode != "fused":
        step_model = compile_model(runner) if "compile" in parts else runner
        optimizer = torch.optim.RMSprop(model.parameters(), lr=TRAIN_LR)

        def train() -> None:
            model.train()
            optimizer.zero_grad(set_to_none=True)
            model.loss(step_model(x), target, weight, coords).backward()
            optimizer.step()

    r = _Runner(mode, params, forward, train)
    if train is not None:  # the first training call compiles (compile modes)
        r.setup_s, r.setup_cpu_s = timed(train)
    if forward is not None:
        forward()
    return r


def _median(times: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def measure_modes(
    name: str, input_size: tuple[int, int], modes: tuple[str, ...], batch: int = 2, repeats: int = 3, warmup: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Time ``modes`` of one model side by side (rounds calling each mode in turn); one row per mode.

    ``forward_*`` is None for compile modes, ``train_*`` None for ``fused``; ``train_speedup_vs_plain``
    (wall, CPU) is set when ``plain`` is among ``modes``.
    """
    runners = []
    for mode in modes:
        if progress:
            progress(f"{name} {input_size[0]}x{input_size[1]} {mode} (build{', compile' if 'compile' in mode else ''})")
        runners.append(_build(name, input_size, mode, batch))
    for rnd in range(warmup + repeats):
        for r in runners:
            for kind in ("forward", "train"):
                fn = getattr(r, kind)
                if fn is not None:
                    t = timed(fn)
                    if rnd >= warmup:
                        r.times[kind].append(t)
    h, w = input_size
    rows = []
    for r in runners:
        row: dict[str, Any] = {"model": name, "input_size": [h, w], "mode": r.mode, "batch": batch, "params": r.params,
                               "forward_images_per_s": None, "forward_ms_per_image": None,
                               "forward_cpu_ms_per_image": None, "train_images_per_s": None,
                               "train_s_per_image": None, "train_cpu_s_per_image": None,
                               "train_setup_s": None, "train_setup_cpu_s": None}
        if r.forward is not None:
            f_wall, f_cpu = _median(r.times["forward"])
            row.update(forward_images_per_s=batch / f_wall, forward_ms_per_image=1000 * f_wall / batch,
                       forward_cpu_ms_per_image=1000 * f_cpu / batch)
        if r.train is not None:
            t_wall, t_cpu = _median(r.times["train"])
            row.update(train_images_per_s=batch / t_wall, train_s_per_image=t_wall / batch,
                       train_cpu_s_per_image=t_cpu / batch, train_setup_s=r.setup_s, train_setup_cpu_s=r.setup_cpu_s)
        rows.append(row)
    plain = next((row for row in rows if row["mode"] == "plain"), None)
    for row in rows:
        if plain is not None and row["train_s_per_image"] is not None:
            row["train_speedup_vs_plain"] = {
                "wall": plain["train_s_per_image"] / row["train_s_per_image"],
                "cpu": plain["train_cpu_s_per_image"] / row["train_cpu_s_per_image"],
            }
    return rows


def measure_case(
    name: str, input_size: tuple[int, int], mode: str, batch: int = 2, repeats: int = 3, warmup: int = 1
) -> dict[str, Any]:
    """Time one model in one mode; returns a row of the report (see :func:`measure_modes`)."""
    return measure_modes(name, input_size, (mode,), batch, repeats, warmup)[0]


def anchor_ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Speed-up of hourglass4 over the CC-SSL reference anchor (>1 = we are faster), per mode, as a
    [min, max] range: min against the reference's fastest figure, max against its slowest."""
    out: dict[str, Any] = {"reference": ANCHOR}
    fast_f, slow_f = ANCHOR["forward_ms_per_image"]
    fast_t, slow_t = ANCHOR["train_s_per_image"]
    for row in rows:
        if row["model"] != ANCHOR["model"]:
            continue
        entry = {}
        if row.get("forward_ms_per_image") is not None:
            entry["forward_speedup"] = [fast_f / row["forward_ms_per_image"], slow_f / row["forward_ms_per_image"]]
        if row.get("train_s_per_image") is not None:
            entry["train_speedup"] = [fast_t / row["train_s_per_image"], slow_t / row["train_s_per_image"]]
        out[row["mode"]] = entry
    return out


def baseline_ratios(rows: list[dict[str, Any]], baseline: str = BASELINE) -> dict[str, Any]:
    """Cost per image of each model relative to ``baseline`` in the same mode and run (>1 = costlier):
    ``{model: {mode: {"forward_cpu", "forward_wall", "train_cpu", "train_wall"}}}``; empty without a baseline row."""
    base = {r["mode"]: r for r in rows if r["model"] == baseline}
    out: dict[str, Any] = {}
    keys = {"forward_cpu": "forward_cpu_ms_per_image", "forward_wall": "forward_ms_per_image",
            "train_cpu": "train_cpu_s_per_image", "train_wall": "train_s_per_image"}
    for row in rows:
        b = base.get(row["mode"])
        if b is None or row["model"] == baseline:
            continue
        out.setdefault(row["model"], {})[row["mode"]] = {
            name: (row[key] / b[key] if row.get(key) is not None and b.get(key) else None)
            for name, key in keys.items()}
    return out


def run_models_benchmark(
    cases: list[tuple[str, tuple[int, int]]] | None = None,
    modes: tuple[str, ...] = DEFAULT_MODES,
    batch: int = 2,
    repeats: int = 3,
    warmup: int = 1,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every case in every mode (the modes of a case side by side); one JSON-ready object with
    environment, rows and anchor ratios. ``load_average`` is read before and after the run."""
    if threads:
        torch.set_num_threads(threads)
    load_before = load_average()
    rows = []
    for name, size in cases or CASES:
        rows += measure_modes(name, size, tuple(modes), batch, repeats, warmup, progress)
    return {
        "benchmark": "models",
        "torch": torch.__version__,
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average": load_before,
        "load_average_after": load_average(),
        "batch": batch,
        "repeats": repeats,
        "warmup": warmup,
        "results": rows,
        "anchor": anchor_ratios(rows),
        "vs_" + BASELINE: baseline_ratios(rows),
    }


def _cell(value: float | None, width: int, fmt: str) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{fmt}}"


def format_table(report: dict[str, Any]) -> str:
    lines = [
        f"torch {report['torch']}, {report['threads']} threads, batch {report['batch']}, "
        f"median of {report['repeats']}, load average {report['load_average']}",
        f"{'model':<17}{'input':>9}  {'mode':<32}{'fwd img/s':>10}{'fwd ms/img':>11}{'train img/s':>12}"
        f"{'train s/img':>12}{'fwd cpu ms':>11}{'train cpu s':>12}{'vs plain':>10}{'setup s':>9}",
    ]
    for r in report["results"]:
        size = f"{r['input_size'][0]}x{r['input_size'][1]}"
        speedup = (r.get("train_speedup_vs_plain") or {}).get("cpu")
        lines.append(
            f"{r['model']:<17}{size:>9}  {r['mode']:<32}"
            + _cell(r.get("forward_images_per_s"), 10, ".2f")
            + _cell(r.get("forward_ms_per_image"), 11, ".1f")
            + _cell(r.get("train_images_per_s"), 12, ".2f")
            + _cell(r.get("train_s_per_image"), 12, ".3f")
            + _cell(r.get("forward_cpu_ms_per_image"), 11, ".1f")
            + _cell(r.get("train_cpu_s_per_image"), 12, ".3f")
            + (f"{speedup:>9.2f}x" if speedup is not None else f"{'-':>10}")
            + _cell(r.get("train_setup_s"), 9, ".1f")
        )
    lines.append("vs plain: train CPU-time speed-up over plain in the same run; setup: first training call "
                 "(compilation for compile modes)")
    for model, by_mode in (report.get("vs_" + BASELINE) or {}).items():
        for mode, r in by_mode.items():
            parts = [f"{what} {r[what + '_cpu']:.2f}x" for what in ("forward", "train") if r[what + "_cpu"] is not None]
            lines.append(f"{model} {mode}: {', '.join(parts)} SimpleBaseline-50's CPU time per image")
    anchor = report["anchor"]
    for mode, entry in anchor.items():
        if mode == "reference":
            continue
        parts = []
        if "forward_speedup" in entry:
            lo, hi = entry["forward_speedup"]
            parts.append(f"forward {lo:.2f}-{hi:.2f}x")
        if "train_speedup" in entry:
            lo, hi = entry["train_speedup"]
            parts.append(f"train {lo:.2f}-{hi:.2f}x")
        lines.append(f"hourglass4 {mode}: {', '.join(parts)} the CC-SSL reference "
                     "(135-176 ms/img forward, 0.43-0.50 s/img train)")
    return "\n".join(lines)


def bench_command(
    batch: int = typer.Option(2, help="Images per call."),
    repeats: int = typer.Option(3, help="Timed calls per measurement (median reported)."),
    warmup: int = typer.Option(1, help="Untimed calls first."),
    threads: int = typer.Option(0, help="torch threads (0: torch's default)."),
    model: list[str] = typer.Option(None, "--model", help="Only these models (repeatable)."),
    mode: list[str] = typer.Option(
        None,
        "--mode",
        help="Only these modes (repeatable): plain, channels_last, bf16, channels_last+bf16, fused, "
        "channels_last+pointwise; named only: channels_last+compile, channels_last+pointwise+compile.",
    ),
    size: str = typer.Option("", "--size", help="Measure every model at this input size HxW (e.g. 128x96)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Forward and forward+backward images/s of the pose networks, side by side with SimpleBaseline-50."""
    cases = [c for c in CASES if not model or c[0] in model]
    if size:
        try:
            h, w = (int(v) for v in size.lower().split("x"))
        except ValueError as exc:
            raise typer.BadParameter(f"--size must be HxW, got {size!r}") from exc
        cases = [(name, (h, w)) for name, _ in cases]
    if model and len(cases) != len(set(model)):
        raise typer.BadParameter(f"--model must be among {[c[0] for c in CASES]}")
    modes = tuple(mode) if mode else DEFAULT_MODES
    if any(m not in MODES for m in modes):
        raise typer.BadParameter(f"--mode must be among {list(MODES)}")
    report = run_models_benchmark(
        cases,
        modes,
        batch,
        repeats,
        warmup,
        threads or None,
        progress=lambda s: typer.echo(f"measuring {s} ...", err=True),
    )
    typer.echo(json.dumps(report) if as_json else format_table(report))
