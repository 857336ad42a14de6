"""`animalpose bench pipeline`: does the quick preset's data pipeline keep up with its network?

    animalpose bench pipeline --profile      # where a sample's time goes, stage by stage
    animalpose bench pipeline                # whole epoch vs network alone, old and new path, interleaved

``--profile`` times, in this process and on the quick preset's generated horses, each stage of one
training sample as :class:`animalpose.data.dataset.TopDownDataset` runs it (decode, the augmentation's
geometry, the warp, the photometric step, normalisation, heatmap encoding, collation) next to the
network's share of one training step (forward, loss, backward, Adam) per image: the ratio of the two is
what a pipeline that runs in the trainer's process (``data.workers: 0``) costs the epoch.

Run with ``OMP_NUM_THREADS=1`` for stable ratios; every figure here shares the machine with whatever else
runs, so read them as ratios within one run, with the load average printed beside them.
"""

from __future__ import annotations

import io
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import typer

from animalpose.paths import REPO_ROOT
from flows.benchmarks.harness import load_average

BATCH = 16
PRESET = REPO_ROOT / "configs" / "presets" / "quick.yaml"


def quick_data(folder: Path, n_train: int, seed: int = 0) -> Path:
    """``n_train`` generated 128-px horses (the quick preset's data) in ``folder/train<n_train>`` (reused when
    there); their annotation file."""
    from synthetic.writers import generate_dataset

    sub = folder / f"train{n_train}"
    ann = sub / "annotations" / "tigdog.json"
    if not ann.is_file():
        generate_dataset(sub, "horse", "cad", n_train, 128, seed)
    return ann


def quick_config(train_file: Path, *overrides: str):
    """The quick preset on ``train_file`` for one epoch, tracking off."""
    from animalpose.config import load_config

    return load_config(PRESET, overrides=[f"data.train=[{train_file}]", "train.epochs=1", "train.milestones=[]",
                                          "tracking.enabled=false", *overrides])


def quick_trainer(ann: Path, images: int, out: Path, *overrides: str):
    """A CPU :class:`~animalpose.engine.trainer.Trainer` of :func:`quick_config` over the first ``images`` records
    of ``ann``, writing to ``out``, without progress bars."""
    import torch

    from animalpose.engine.build import build_data, make_model
    from animalpose.engine.trainer import Trainer

    cfg = quick_config(ann, *overrides)
    data = build_data(cfg)
    data.train.records = data.train.records[:images]
    return Trainer(cfg, make_model(cfg, data.schema), data.schema, data.train, {}, out,
                   device=torch.device("cpu"), progress=False)


def _ms_per(fn, n: int) -> float:
    """Process CPU milliseconds per call of ``fn(i)``, i < n (CPU time: what a stage costs, whatever else runs)."""
    t0 = time.process_time()
    for i in range(n):
        fn(i)
    return (time.process_time() - t0) * 1e3 / n


def stage_profile(folder: Path, n: int = 160, steps: int = 3) -> dict:
    """Milliseconds per sample of each stage of the quick preset's training sample, and of the network.

    The stages run the same library calls as ``TopDownDataset.__getitem__``, each over the ``n`` first
    samples (its inputs precomputed by the stage before), so each figure is that stage alone;
    ``whole_sample`` is ``dataset[i]`` with its decoded images in memory, ``whole_sample_uncached`` without,
    ``data_total`` the cached sample and its share of collation.
    """
    import torch

    from animalpose.data import transforms as T
    from animalpose.data.dataset import collate_skip
    from animalpose.data.images import read_image
    from animalpose.engine.build import build_data, make_model
    from animalpose.engine.trainer import build_optimizer

    cfg = quick_config(quick_data(folder, max(n, BATCH)))
    ds = build_data(cfg).train
    aug, codec, norm = ds.augment, ds.codec, ds.normalization
    recs = ds.records[:n]
    n = len(recs)
    rngs = [np.random.default_rng((0, 0, i)) for i in range(n)]
    images: list = [None] * n
    out: dict[str, float] = {}
    out["decode"] = _ms_per(lambda i: images.__setitem__(i, read_image(recs[i].image, recs[i].frame_index)), n)
    cs = [ds.center_scale(r, im.shape) for r, im in zip(recs, images, strict=True)]
    geo: list = [None] * n
    out["geometry"] = _ms_per(lambda i: geo.__setitem__(
        i, aug.sample_matrix(recs[i].keypoints, cs[i][0], cs[i][1], rngs[i])), n)
    crops: list = [None] * n
    out["warp"] = _ms_per(lambda i: crops.__setitem__(
        i, T.warp_image(images[i], geo[i][0], ds.input_size, border_value=geo[i][2])), n)
    kps: list = [None] * n
    out["keypoints"] = _ms_per(lambda i: kps.__setitem__(
        i, T.transform_points(recs[i].keypoints.astype(np.float32), geo[i][0])), n)
    out["photometric"] = _ms_per(lambda i: crops.__setitem__(i, aug.photometric(crops[i], rngs[i])), n)
    out["normalise"] = _ms_per(lambda i: norm(crops[i]), n)
    out["encode"] = _ms_per(lambda i: codec.encode(kps[i]), n)
    samples = [ds[i] for i in range(n)]  # fills the image cache
    out["collate"] = _ms_per(lambda b: collate_skip(samples[b * BATCH:(b + 1) * BATCH]), n // BATCH) / BATCH
    out["whole_sample"] = _ms_per(lambda i: ds[i], n)  # decoded images from memory (data.cache_mb)
    cache, ds.image_cache = ds.image_cache, None
    out["whole_sample_uncached"] = _ms_per(lambda i: ds[i], n)
    ds.image_cache = cache
    out["data_total"] = out["whole_sample"] + out["collate"]

    model = make_model(cfg, ds.schema).train()
    opt = build_optimizer(cfg, model.parameters())
    batch = collate_skip(samples[:BATCH])

    def step(_):
        outs = model(batch["image"])
        loss = model.loss([o.float() for o in outs], batch["target"], batch["target_weight"], None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(0)
    out["network_step"] = _ms_per(step, steps) / BATCH
    return {"bench": "pipeline-profile", "samples": n, "ms_per_sample": {k: round(v, 3) for k, v in out.items()},
            "data_share_of_network": round(out["data_total"] / out["network_step"], 3),
            "threads": torch.get_num_threads(), "load_average": load_average()}


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its reaped children (the epoch's loader workers, joined at its end)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def side_by_side(folder: Path, images: int = 128, repeats: int = 3, old_workers: int = 2,
                 threads: int | None = None, old_threads: int | None = None) -> dict:
    """Network alone, the whole epoch now, and the whole epoch on the old path, interleaved, in one process.

    - ``network``: forward, the model's loss, backward and Adam on one fixed batch of 16 (what the quick
      preset's trainer does per step, without data), ``images / 16`` steps;
    - ``epoch``: :meth:`Trainer.train_epoch` over ``images`` generated horses with the quick preset, the
      loader workers this machine's plan gives a CPU trainer and the decoded-image cache;
    - ``epoch_old``: the same epoch with ``old_workers`` loader workers (2: the setting of the 4.6 images/s
      figure in BENCHMARKS.md) and no image cache, at ``old_threads`` torch threads (default: the others'; 1
      with ``old_workers=1`` on 2 cores is the plan before CPU trainers took no worker there).

    The others run at the same torch threads (``threads``, else ``OMP_NUM_THREADS``, else the plan's for a CPU
    trainer); the order rotates each repeat so that a change in the machine's load falls on every arm.
    Returns medians of wall images/s and of images per CPU second (this process and its workers).
    """
    import torch

    from animalpose.engine.build import make_model
    from animalpose.engine.trainer import Trainer
    from animalpose.threads import configure_threads, loader_workers

    configure_threads(threads)
    workers = loader_workers(None, "cpu")
    n_threads = torch.get_num_threads()
    # fixed from here (said once above): the old arm's workers must not move the threads
    configure_threads(n_threads, workers, stream=io.StringIO())
    ann = quick_data(folder, images)
    out = folder / "runs"

    new = quick_trainer(ann, images, out, f"data.workers={workers}")
    old = quick_trainer(ann, images, out, f"data.workers={old_workers}", "data.cache_mb=0")
    model = make_model(new.cfg, new.schema).train()
    opt = torch.optim.Adam(model.parameters(), lr=new.cfg.train.lr)
    x = torch.randn(BATCH, 3, 128, 128)
    target, weight = torch.rand(BATCH, 18, 32, 32), torch.ones(BATCH, 18)

    def net_step() -> None:
        outs = model(x)
        loss = model.loss([o.float() for o in outs], target, weight, None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def network() -> int:
        for _ in range(max(1, images // BATCH)):
            net_step()
        return max(1, images // BATCH) * BATCH

    def epoch(tr: Trainer, r: int, arm_threads: int):
        def run() -> int:
            tr.epoch, tr.step, tr.epoch_acc = r, r * tr.steps_per_epoch, [0.0, 0, 0.0, 0.0]
            torch.set_num_threads(arm_threads)
            try:
                tr.train_epoch()
            finally:
                torch.set_num_threads(n_threads)
            return len(tr.train_set)

        return run

    net_step()  # warm-up: first-call allocations
    rates: dict[str, list[tuple[float, float]]] = {"network": [], "epoch": [], "epoch_old": []}
    for r in range(repeats):
        arms = [("network", network), ("epoch", epoch(new, r, n_threads)),
                ("epoch_old", epoch(old, r, old_threads or n_threads))]
        for name, fn in arms[r % 3:] + arms[:r % 3]:
            t0, c0 = time.perf_counter(), _cpu_seconds()
            n = fn()
            rates[name].append((n / (time.perf_counter() - t0), n / max(_cpu_seconds() - c0, 1e-9)))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in rates.items()}
    return {
        "bench": "pipeline", "images": images, "repeats": repeats, "threads": n_threads,
        "workers": workers, "old_workers": old_workers, "old_threads": old_threads or n_threads,
        "image_cache": new.train_set.image_cache is not None,
        "images_per_s": {k: round(w, 2) for k, (w, _) in med.items()},
        "images_per_cpu_s": {k: round(c, 2) for k, (_, c) in med.items()},
        "ratio": round(med["epoch"][0] / med["network"][0], 3),
        "ratio_old": round(med["epoch_old"][0] / med["network"][0], 3),
        "ratio_cpu": round(med["epoch"][1] / med["network"][1], 3),
        "ratio_cpu_old": round(med["epoch_old"][1] / med["network"][1], 3),
        "per_repeat_images_per_s": {k: [round(w, 2) for w, _ in v] for k, v in rates.items()},
        "cpus": os.cpu_count(), "load_average": load_average(),
    }


def bench_command(
    profile: bool = typer.Option(False, "--profile", help="Per-stage CPU ms per sample next to the network's."),
    data_dir: Path = typer.Option(Path(tempfile.gettempdir()) / "animalpose-pipeline-bench",
                                  help="Where the generated horses go (reused when there)."),
    images: int = typer.Option(128, min=16, help="Training images per timed epoch (and profiled samples)."),
    repeats: int = typer.Option(3, min=1, help="Interleaved repeats of each arm (medians reported)."),
    old_workers: int = typer.Option(2, min=0, help="Loader workers of the old path's arm."),
    threads: int = typer.Option(None, min=1, help="Torch threads of the network and the epoch (default: "
                                                  "OMP_NUM_THREADS, else the plan's for a CPU trainer)."),
    old_threads: int = typer.Option(None, min=1, help="Torch threads of the old path's epoch (default: --threads)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The quick preset's data pipeline against its network: per-stage profile, whole epoch vs network alone."""
    if profile:
        r = stage_profile(data_dir, images)
        if as_json:
            typer.echo(json.dumps(r))
            return
        net = r["ms_per_sample"]["network_step"]
        for k, v in r["ms_per_sample"].items():
            typer.echo(f"{k:>21}: {v:8.3f} ms/sample  ({100 * v / net:5.1f} % of the network step)")
        typer.echo(f"threads {r['threads']}, load average {r['load_average']}")
        return
    r = side_by_side(data_dir, images, repeats, old_workers, threads, old_threads)
    if as_json:
        typer.echo(json.dumps(r))
        return
    ips, cps = r["images_per_s"], r["images_per_cpu_s"]
    typer.echo(f"{'':>10} {'images/s':>9} {'per CPU s':>10}   ({r['threads']} torch threads)")
    typer.echo(f"{'network':>10} {ips['network']:9.2f} {cps['network']:10.2f}")
    typer.echo(f"{'epoch':>10} {ips['epoch']:9.2f} {cps['epoch']:10.2f}   {r['workers']} workers, image cache; "
               f"ratio {r['ratio']:.2f} (CPU {r['ratio_cpu']:.2f})")
    typer.echo(f"{'epoch_old':>10} {ips['epoch_old']:9.2f} {cps['epoch_old']:10.2f}   {r['old_workers']} workers, "
               f"{r['old_threads']} threads, no cache; ratio {r['ratio_old']:.2f} (CPU {r['ratio_cpu_old']:.2f})")
    typer.echo(f"load average {r['load_average']} on {r['cpus']} cpus")
