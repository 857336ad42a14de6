"""`animalpose bench synth`: images per second of the synthetic generator, one process, 256 x 256.

Measures :func:`synthetic.render_scene` (render, label, shade, camera effects; no disk I/O) for
``cad`` and ``photo`` stills and for clip frames, after a warm-up, and the same plus image encoding
(PNG for cad, JPEG for photo: a dataset writer's work per image). Reports wall-clock and
process-CPU rates: on a shared machine the CPU rate is what one uncontended core would give.

``--baseline REV`` times the generator of git revision REV side by side with the working tree's on the
same scenes (:func:`compare`): the two run interleaved in one process, so a busy machine slows both alike
and their ratio stays meaningful.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

from animalpose.errors import ConfigError
from animalpose.paths import REPO_ROOT
from flows.benchmarks.harness import load_average

REPO = REPO_ROOT


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
        "load_average": load_average(), "cpus": os.cpu_count(),
    }


def baseline_package(rev: str, dest: Path) -> str:
    """Write ``synthetic/`` of git revision ``rev`` to ``dest/<name>`` as an importable package; returns <name>.

    Its own imports of ``synthetic`` are renamed, so it loads beside the working tree's package.
    Raises ConfigError when git does not know ``rev``.
    """
    def git(*args: str) -> str:
        res = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        if res.returncode != 0:
            raise ConfigError("--baseline", "baseline", f"git {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout

    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}").strip()
    name = f"synthetic_{sha[:10]}"
    pattern = re.compile(r"\b(from|import) synthetic\b")
    for path in git("ls-tree", "-r", "--name-only", sha, "synthetic/").split():
        if not path.endswith((".py", ".yaml")):
            continue
        text = git("show", f"{sha}:{path}")
        if path.endswith(".py"):
            text = pattern.sub(rf"\1 {name}", text)
        out = dest / name / Path(path).relative_to("synthetic")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return name


def compare(rev: str, n: int = 100, repeats: int = 3, size: int = 256, species: str = "horse",
            clip_frames: int = 16) -> dict:
    """Process-CPU images per second of the working tree's generator and of revision ``rev`` on the same
    seeds (cad and photo stills, cad clips), interleaved over ``repeats`` rounds; medians and their ratio."""
    import cv2

    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        name = baseline_package(rev, Path(tmp))
        sys.path.insert(0, tmp)
        try:
            impls = {"current": "synthetic", "baseline": name}
            mods = {k: (importlib.import_module(f"{m}.scene"), importlib.import_module(f"{m}.styles"))
                    for k, m in impls.items()}
        finally:
            sys.path.remove(tmp)
        rates: dict = {k: {s: [] for s in ("cad", "photo", "clip")} for k in impls}
        for scene, styles in mods.values():  # warm-up (template loading, caches)
            for style in ("cad", "photo"):
                for s in range(3):
                    scene.render_scene(species, styles.StyleConfig.make(style), 10_000 + s, size)
        clips = max(1, n // clip_frames)
        for _ in range(repeats):
            for key, (scene, styles) in mods.items():
                for style in ("cad", "photo"):
                    cfg = styles.StyleConfig.make(style)
                    c0 = time.process_time()
                    for s in range(n):
                        scene.render_scene(species, cfg, s, size)
                    rates[key][style].append(n / (time.process_time() - c0))
                cfg = styles.StyleConfig.make("cad")
                c0 = time.process_time()
                for s in range(clips):
                    scene.render_clip(species, cfg, s, size, clip_frames)
                rates[key]["clip"].append(clips * clip_frames / (time.process_time() - c0))
        for key in list(sys.modules):
            if key == name or key.startswith(name + "."):
                del sys.modules[key]
    med = {k: {s: round(statistics.median(v), 1) for s, v in r.items()} for k, r in rates.items()}
    return {
        "baseline": rev, "cpu_images_per_second": med["current"], "baseline_cpu_images_per_second": med["baseline"],
        "ratio": {s: round(med["current"][s] / med["baseline"][s], 3) for s in med["current"]},
        "all_repeats": {k: {s: [round(x, 1) for x in v] for s, v in r.items()} for k, r in rates.items()},
        "size": size, "species": species, "n": n, "repeats": repeats, "clip_frames": clip_frames,
        "load_average": load_average(), "cpus": os.cpu_count(),
    }


def bench_command(
    n: int = typer.Option(200, help="Images per style."),
    size: int = typer.Option(256, help="Image side."),
    species: str = typer.Option("horse", help="Template."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    baseline: str = typer.Option("", help="Git revision to time side by side with the working tree (CPU time)."),
    repeats: int = typer.Option(3, help="Interleaved rounds with --baseline (medians reported)."),
) -> None:
    """Images per second per process of the synthetic generator (cad, photo stills; clips)."""
    if baseline:
        result = compare(baseline, n, repeats, size, species)
        if as_json:
            typer.echo(json.dumps(result))
            return
        cur, base, ratio = result["cpu_images_per_second"], result["baseline_cpu_images_per_second"], result["ratio"]
        for key in ("cad", "photo", "clip"):
            typer.echo(f"{key:>6}: {cur[key]:8.1f} img/s cpu   {baseline}: {base[key]:8.1f}   ratio {ratio[key]:.3f}")
        typer.echo(f"load average {result['load_average']} on {result['cpus']} cpus")
        return
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
