"""`animalpose bench pseudolabel-views`: what the two photometric views cost, side by side.

    OMP_NUM_THREADS=1 animalpose bench pseudolabel-views --images 32 --repeats 5 --json

The CC-SSL reference labels with 5 views (identity + 4 geometric); the paper's invariance check adds 2
photometric views (7). Issue 30's goal: 7 views cost at most 1.2x of 5. On the quick CC-SSL network
(configs/adapt/ccssl_quick.yaml: a one-stack hourglass, 64 channels, fresh weights) at ``--size`` px, this
times :func:`~animalpose.adapt.pseudolabel.consistency_predict` over ``--images`` random crops in batches
of ``--batch`` (each batch its own seeded views, as :func:`~animalpose.adapt.pseudolabel.label_records`
draws them) in four modes, interleaved over ``--repeats`` rounds (the order rotates; medians of wall and
process CPU seconds):

- ``5_plain`` / ``7_plain``: the network as it is (what pseudo-labelling ran before issue 30);
- ``5_fast`` / ``7_fast``: through :func:`~animalpose.adapt.pseudolabel.view_model`'s BN-folded,
  channels-last copy (what it runs now; built once per round, its one-off cost is ``fold_seconds``).

The views go to the network in the device's chunks (``ccssl.view_batch`` default: 8 images on a CPU, all
views of a batch on a GPU). Ratios: ``seven_over_five`` per path, ``seven_fast_over_five_plain`` (7 views
now against 5 views before) and ``fast_speedup`` (plain / fast at 7 views); ``max_coord_difference`` is the
largest distance in crop pixels between the fast and plain labels of the same views.
"""

from __future__ import annotations

import json
import os
import statistics
import time

import numpy as np
import torch
import typer

from animalpose.adapt.ccssl import CPU_VIEW_BATCH
from animalpose.adapt.pseudolabel import ConsistencyConfig, batch_rng, consistency_predict, view_model

MODES = ("5_plain", "5_fast", "7_plain", "7_fast")


def _quick_model(size: int, device: torch.device) -> torch.nn.Module:
    from animalpose.config import parse_config
    from animalpose.engine.build import make_model
    from animalpose.keypoints import load_schema

    cfg = parse_config({"data": {"schema": "tigdog", "input_size": [size, size], "heatmap_size": [size // 4] * 2},
                        "model": {"name": "hourglass1", "channels": 64}, "train": {"device": "cpu"}})
    torch.manual_seed(0)
    return make_model(cfg, load_schema("tigdog")).to(device).eval()


def measure_views(size: int = 128, images: int = 32, batch: int = 16, repeats: int = 5, device: str = "cpu") -> dict:
    """The four modes side by side (see the module docstring); returns the JSON document."""
    from animalpose.codecs import build_codec

    dev = torch.device(device)
    model = _quick_model(size, dev)
    codec = build_codec("gaussian", (size, size), (size // 4, size // 4), 1.0)
    torch.manual_seed(1)
    crops = torch.rand(images, 3, size, size, device=dev)
    t0 = time.perf_counter()
    fns = {"plain": view_model(model, fast=False), "fast": view_model(model, fast=True)}
    fold_seconds = time.perf_counter() - t0

    def config(views: int) -> ConsistencyConfig:
        chunk = CPU_VIEW_BATCH if dev.type == "cpu" else views * batch
        return ConsistencyConfig(num_geometric=4, invariance=views == 7, num_photometric=2, max_batch=chunk)

    def run(views: int, path: str) -> np.ndarray:
        coords = []
        with torch.no_grad():
            for b, chunk in enumerate(torch.split(crops, batch)):
                out = consistency_predict(fns[path], chunk, config(views), codec, batch_rng(0, b))
                coords.append(out.coords)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return np.concatenate(coords)

    labels = {m: run(int(m[0]), m[2:]) for m in MODES}  # warm-up, and the labels compared below
    times: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
    for r in range(repeats):
        for m in MODES[r % len(MODES):] + MODES[:r % len(MODES)]:
            w, c = time.perf_counter(), time.process_time()
            run(int(m[0]), m[2:])
            times[m].append((time.perf_counter() - w, time.process_time() - c))
    wall = {m: statistics.median(t[0] for t in times[m]) for m in MODES}
    cpu = {m: statistics.median(t[1] for t in times[m]) for m in MODES}

    def ratios(t: dict[str, float]) -> dict[str, float]:
        return {"seven_over_five_plain": round(t["7_plain"] / t["5_plain"], 3),
                "seven_over_five_fast": round(t["7_fast"] / t["5_fast"], 3),
                "seven_fast_over_five_plain": round(t["7_fast"] / t["5_plain"], 3),
                "fast_speedup": round(t["7_plain"] / t["7_fast"], 3)}

    diff = max(float(np.abs(labels[f"{v}_fast"] - labels[f"{v}_plain"]).max()) for v in (5, 7))
    return {"bench": "pseudolabel-views", "device": str(dev), "size": size, "images": images, "batch": batch,
            "repeats": repeats, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "wall_s": {m: round(v, 4) for m, v in wall.items()}, "cpu_s": {m: round(v, 4) for m, v in cpu.items()},
            "images_per_s": {m: round(images / v, 2) for m, v in wall.items()},
            "ratios": ratios(wall), "cpu_ratios": ratios(cpu), "fold_seconds": round(fold_seconds, 3),
            "max_coord_difference": diff, "load_avg_1m": round(os.getloadavg()[0], 2)}


def bench_command(
    size: int = typer.Option(128, help="Crop side (a multiple of 64)."),
    images: int = typer.Option(32, min=1, help="Random crops labelled per mode and round."),
    batch: int = typer.Option(16, min=1, help="Images per pseudo-labelling batch (ccssl.pseudo_batch_size)."),
    repeats: int = typer.Option(5, min=1, help="Interleaved rounds (medians)."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Pseudo-labelling with 7 views against 5, plain and BN-folded channels-last, side by side."""
    r = measure_views(size, images, batch, repeats, device)
    if as_json:
        typer.echo(json.dumps(r))
        return
    for m in MODES:
        typer.echo(f"{m:<8} {r['images_per_s'][m]:>8.2f} img/s  ({r['wall_s'][m]:.3f} s wall, "
                   f"{r['cpu_s'][m]:.3f} s CPU)")
    typer.echo(f"ratios (wall): {r['ratios']}; (CPU): {r['cpu_ratios']}; labels differ by <= "
               f"{r['max_coord_difference']:.2g} px; load {r['load_avg_1m']}")
