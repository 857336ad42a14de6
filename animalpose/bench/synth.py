"""`animalpose bench synth`: images per second of the synthetic generator, one process, 256 x 256.

Measures :func:`synthetic.render_scene` (render, label, shade, camera effects; no disk I/O) for
``cad`` and ``photo`` stills and for clip frames, after a warm-up, and the same plus image encoding
(PNG for cad, JPEG for photo: a dataset writer's work per image). Reports wall-clock and
process-CPU rates: on a shared machine the CPU rate is what one uncontended core would give.
"""

from __future__ import annotations

import json
import os
import time

import typer


def measure(n: int = 200, size: int = 256, species: str = "horse", clip_frames: int = 16) -> dict:
    """{"images_per_second": {style: wall rate}, "cpu_images_per_second": {...}, ...}."""
    import cv2

    from synthetic.scene import render_clip, render_scene
    from synthetic.styles import StyleConfig
    from synthetic.writers import default_format, encode_image

    cv2.setNumThreads(1)
    wall, cpu, enc_wall, enc_cpu = {}, {}, {}, {}
    for name in ("cad", "photo"):
        style = StyleConfig.make(name)
        fmt = default_format(style)
        for s in range(5):
            render_scene(species, style, 10_000 + s, size)
        t0, c0 = time.perf_counter(), time.process_time()
        for s in range(n):
            render_scene(species, style, s, size)
        wall[name], cpu[name] = n / (time.perf_counter() - t0), n / (time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        for s in range(n):
            encode_image(render_scene(species, style, s, size).image, fmt)
        enc_wall[name], enc_cpu[name] = n / (time.perf_counter() - t0), n / (time.process_time() - c0)
    style = StyleConfig.make("cad")
    clips = max(1, n // clip_frames)
    t0, c0 = time.perf_counter(), time.process_time()
    for s in range(clips):
        render_clip(species, style, s, size, clip_frames)
    frames = clips * clip_frames
    wall["clip"], cpu["clip"] = frames / (time.perf_counter() - t0), frames / (time.process_time() - c0)
    return {
        "images_per_second": {k: round(v, 1) for k, v in wall.items()},
        "cpu_images_per_second": {k: round(v, 1) for k, v in cpu.items()},
        "with_encoding": {"images_per_second": {k: round(v, 1) for k, v in enc_wall.items()},
                          "cpu_images_per_second": {k: round(v, 1) for k, v in enc_cpu.items()}},
        "size": size, "species": species, "n": n, "clip_frames": clip_frames,
        "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
    }


def bench_command(
    n: int = typer.Option(200, help="Images per style."),
    size: int = typer.Option(256, help="Image side."),
    species: str = typer.Option("horse", help="Template."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Images per second per process of the synthetic generator (cad, photo stills; clips)."""
    result = measure(n, size, species)
    if as_json:
        typer.echo(json.dumps(result))
        return
    wall, cpu = result["images_per_second"], result["cpu_images_per_second"]
    enc_wall, enc_cpu = result["with_encoding"]["images_per_second"], result["with_encoding"]["cpu_images_per_second"]
    for key in ("cad", "photo", "clip"):
        line = f"{key:>6}: {wall[key]:8.1f} img/s wall {cpu[key]:8.1f} img/s cpu"
        if key in enc_wall:
            line += f"   + encoding: {enc_wall[key]:7.1f} wall {enc_cpu[key]:7.1f} cpu"
        typer.echo(f"{line}   ({size}x{size}, {species})")
    typer.echo(f"load average {result['load_average']} on {result['cpus']} cpus")
