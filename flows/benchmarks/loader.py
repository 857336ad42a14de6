"""`animalpose bench loader`: can the data loader feed the quick model's CPU training?

Measures, in one run on one machine:

- samples per second of :func:`animalpose.data.dataset.build_loader` with the ``strong``
  augmentation preset (the most expensive one) at 256×256 and at the quick preset's 128×128 input,
  with the default worker count, after the workers have started and warmed up;
- samples per second of training steps (forward, MSE on every stack, backward, Adam step) of the
  quick model ``hourglass_quick`` (:mod:`animalpose.models.factory`) at 128×128, batch 16, on
  in-memory batches, with torch's default thread count.

The figure is ``ratio`` = loader (128×128) / training; the goal is at least 3, so that the trainer
never waits for data. Images are the real fixtures (Horse-10 PNGs and ATRW JPEGs) when found, else
random JPEGs written to a temporary folder; keypoints are 18 TigDog joints drawn inside each box.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import typer

from flows.benchmarks.harness import REAL_DATA, load_average

QUICK_INPUT = 128
BATCH = 16
DEFAULT_FIXTURES = REAL_DATA / "mmpose-tests"


def _fixture_images(root: Path) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(image path, bbox) of the COCO fixtures under ``root`` (horse10, atrw)."""
    out = []
    for sub in ("horse10", "atrw"):
        for path in sorted((root / sub).glob("*.json")):
            data = json.loads(path.read_text())
            files = {im["id"]: im["file_name"] for im in data["images"]}
            for ann in data["annotations"]:
                out.append((str(root / sub / files[ann["image_id"]]), tuple(float(v) for v in ann["bbox"])))
    return out


def _random_images(folder: Path, n: int = 6) -> list[tuple[str, tuple[float, float, float, float]]]:
    import cv2

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (0, 0), 3)
        path = folder / f"bench_{i}.jpg"
        cv2.imwrite(str(path), img)
        out.append((str(path), (120.0, 80.0, 400.0, 300.0)))
    return out


def _records(images, copies: int):
    from animalpose.data.records import PoseRecord

    rng = np.random.default_rng(1)
    records = []
    for _ in range(copies):
        for path, (x, y, w, h) in images:
            kp = np.stack([rng.uniform(x, x + w, 18), rng.uniform(y, y + h, 18), np.full(18, 2.0)], 1)
            records.append(PoseRecord(path, kp, "tigdog", bbox=(x, y, w, h)))
    return records


def measure_loader(records, size: int, batches: int, workers: int | None) -> tuple[float, int]:
    """Samples/s of the ``strong`` preset at size×size (after two warm-up batches) and the worker count."""
    from animalpose.codecs import build_codec
    from animalpose.data.augment import build_augmenter
    from animalpose.data.dataset import TopDownDataset, build_loader, default_num_workers
    from animalpose.keypoints import load_schema

    schema = load_schema("tigdog")
    codec = build_codec("gaussian", size, size // 4, 2.0 * size / 256)
    data = TopDownDataset(records, schema, codec, augment=build_augmenter("strong", schema, (size, size)))
    n_workers = default_num_workers() if workers is None else workers
    loader = build_loader(data, batch_size=BATCH, shuffle=True, num_workers=n_workers, drop_last=True)
    it = iter(loader)

    def next_batch():
        nonlocal it
        try:
            return next(it)
        except StopIteration:  # a new epoch: the persistent workers go on
            it = iter(loader)
            return next(it)

    for _ in range(2):
        next_batch()
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += next_batch()["image"].shape[0]
    rate = n / (time.perf_counter() - t0)
    return rate, n_workers


def measure_training(steps: int) -> tuple[float, str]:
    """Training samples/s of the quick model at 128×128, batch 16 (after two warm-up steps)."""
    import torch

    try:
        from animalpose.models.factory import hourglass_quick

        model, name = hourglass_quick(18), "hourglass_quick"
    except ImportError:  # the models package is not there: a stand-in of similar shape, said in the output
        model, name = _stand_in(), "stand-in (animalpose.models.factory.hourglass_quick missing)"
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(BATCH, 3, QUICK_INPUT, QUICK_INPUT)
    model.train()

    def step() -> None:
        outs = model(x)
        outs = outs if isinstance(outs, list | tuple) else [outs]
        loss = sum(((o - torch.zeros_like(o)) ** 2).mean() for o in outs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * BATCH / (time.perf_counter() - t0), name


def _stand_in():
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 128, 3, 2, 1), nn.BatchNorm2d(128), nn.ReLU(),
        nn.Conv2d(128, 128, 3, 1, 1), nn.BatchNorm2d(128), nn.ReLU(),
        nn.Conv2d(128, 18, 1),
    )


def measure(batches: int = 12, steps: int = 4, workers: int | None = None, data: Path | None = None) -> dict:
    root = data or DEFAULT_FIXTURES
    with tempfile.TemporaryDirectory() as tmp:
        images = _fixture_images(root) if root.is_dir() else []
        source = str(root) if images else "random 640x480 JPEGs"
        if not images:
            images = _random_images(Path(tmp))
        records = _records(images, copies=max(1, (BATCH * (batches + 3)) // len(images) + 1))
        loader_256, n_workers = measure_loader(records, 256, batches, workers)
        loader_128, _ = measure_loader(records, QUICK_INPUT, batches, workers)
    train, model = measure_training(steps)
    return {
        "loader_samples_per_second": round(loader_128, 1),
        "loader_samples_per_second_256": round(loader_256, 1),
        "train_samples_per_second": round(train, 1),
        "ratio": round(loader_128 / train, 2),
        "ratio_256": round(loader_256 / train, 2),
        "preset": "strong",
        "input_size": QUICK_INPUT,
        "batch_size": BATCH,
        "workers": n_workers,
        "model": model,
        "images": source,
        "cpus": os.cpu_count(),
        "load_average": load_average(),
    }


def bench_command(
    batches: int = typer.Option(12, help="Timed loader batches per size (16 samples each)."),
    steps: int = typer.Option(4, help="Timed training steps (batch 16)."),
    workers: int = typer.Option(None, help="Loader workers (default: animalpose's default worker count)."),
    data: Path = typer.Option(None, help="Folder with horse10/ and atrw/ COCO fixtures."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Loader samples/s (strong preset, 256² and 128²) next to the quick model's training samples/s."""
    r = measure(batches, steps, workers, data)
    if as_json:
        typer.echo(json.dumps(r))
        return
    typer.echo(f"loader (strong, {r['workers']} workers)  256x256: {r['loader_samples_per_second_256']:7.1f} samples/s")
    typer.echo(f"loader (strong, {r['workers']} workers)  128x128: {r['loader_samples_per_second']:7.1f} samples/s")
    typer.echo(f"training {r['model']} 128x128 batch {BATCH}: {r['train_samples_per_second']:7.1f} samples/s")
    typer.echo(f"ratio loader/training: {r['ratio']:.2f} at 128x128 ({r['ratio_256']:.2f} at 256x256); goal >= 3")
    typer.echo(f"images: {r['images']}; load average {r['load_average']} on {r['cpus']} cpus")
