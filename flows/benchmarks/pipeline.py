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

import json
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
    """``n_train`` generated 128-px horses (the quick preset's data) under ``folder``; their annotation file."""
    from synthetic.writers import generate_dataset

    ann = folder / "train" / "annotations" / "tigdog.json"
    if not ann.is_file():
        generate_dataset(folder / "train", "horse", "cad", n_train, 128, seed)
    return ann


def quick_config(train_file: Path, *overrides: str):
    """The quick preset on ``train_file`` for one epoch, tracking off."""
    from animalpose.config import load_config

    return load_config(PRESET, overrides=[f"data.train=[{train_file}]", "train.epochs=1", "train.milestones=[]",
                                          "tracking.enabled=false", *overrides])


def _ms_per(fn, n: int) -> float:
    """Process CPU milliseconds per call of ``fn(i)``, i < n (CPU time: what a stage costs, whatever else runs)."""
    t0 = time.process_time()
    for i in range(n):
        fn(i)
    return (time.process_time() - t0) * 1e3 / n


def stage_profile(folder: Path, n: int = 160, steps: int = 3) -> dict:
    """Milliseconds per sample of each stage of the quick preset's training sample, and of the network.

    The stages run the same library calls as ``TopDownDataset.__getitem__``, each over the ``n`` first
    samples (its inputs precomputed by the stage before), so each figure is that stage alone.
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
    samples = [ds[i] for i in range(n)]
    out["collate"] = _ms_per(lambda b: collate_skip(samples[b * BATCH:(b + 1) * BATCH]), n // BATCH) / BATCH
    out["whole_sample"] = _ms_per(lambda i: ds[i], n)
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


def bench_command(
    profile: bool = typer.Option(False, "--profile", help="Per-stage milliseconds per sample next to the network's."),
    data_dir: Path = typer.Option(Path(tempfile.gettempdir()) / "animalpose-pipeline-bench",
                                  help="Where the generated horses go (reused when there)."),
    samples: int = typer.Option(160, help="Samples profiled per stage."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The quick preset's data pipeline against its network: per-stage profile, whole epoch vs network alone."""
    r = stage_profile(data_dir, samples)
    if as_json:
        typer.echo(json.dumps(r))
        return
    net = r["ms_per_sample"]["network_step"]
    for k, v in r["ms_per_sample"].items():
        typer.echo(f"{k:>14}: {v:8.3f} ms/sample  ({100 * v / net:5.1f} % of the network step)")
    typer.echo(f"threads {r['threads']}, load average {r['load_average']}")
