"""Engine benchmarks for BENCHMARKS.md: training images/s, epoch time, peak memory, predict frames/s.

    animalpose bench train-step --model hourglass4 --size 256 --batch 6 --steps 5
    animalpose bench quick-epoch --data-dir /tmp/quick   # generates 400+100 horses
    animalpose bench predict --video ../shared/data/real/sleap-clip/clip.mp4

Each prints one JSON line with the median of the timed repetitions, the peak resident memory of the
process (``ru_maxrss``) and the 1-minute load average (the machine is shared: read numbers with it).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
import typer

from animalpose.paths import REPO_ROOT


def _env() -> dict:
    return {"threads": torch.get_num_threads(), "load_avg_1m": os.getloadavg()[0],
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "device": "cuda" if torch.cuda.is_available() else "cpu", "torch": str(torch.__version__)}


def train_step(model_name: str, size: int, batch: int, steps: int, warmup: int = 1, amp: bool = False,
               channels_last: bool = False, optimizer: str = "rmsprop") -> dict:
    """Forward + backward + optimiser step on random input (the network's share of training), with the loss
    the model carries (``model.loss``: heatmap MSE, CPN's OHKM, MSPN's coarse-to-fine targets, DSNT...)."""
    from animalpose.models.factory import build_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(model_name, 18).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = (torch.optim.RMSprop if optimizer == "rmsprop" else torch.optim.Adam)(model.parameters(), lr=2.5e-4)
    x = torch.randn(batch, 3, size, size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    h = size // 4
    target = torch.rand(batch, 18, h, h, device=device)
    weight = torch.ones(batch, 18, device=device)
    coords = torch.rand(batch, 18, 2, device=device) * (h - 1) if model.needs_coords else None
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16,
                            enabled=amp):
            out = model(x)
        loss = model.loss([o.float() for o in out], target, weight, coords)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"bench": "train-step", "model": model_name, "input": size, "batch": batch, "steps": steps,
            "amp": amp, "channels_last": channels_last, "median_step_s": med, "images_per_s": batch / med,
            **_env()}


def quick_epoch(data_dir: Path, epochs: int = 1, n_train: int = 400, n_val: int = 100) -> dict:
    """The quick preset (configs/presets/quick.yaml) on generated horses: seconds per epoch, images/s."""
    from animalpose.config import load_config
    from animalpose.engine.train import train
    from animalpose.threads import loader_workers
    from synthetic.writers import generate_dataset

    generate_dataset(data_dir / "train", "horse", "cad", n_train, 128, 0)
    generate_dataset(data_dir / "val", "horse", "cad", n_val, 128, 1)
    preset = REPO_ROOT / "configs" / "presets" / "quick.yaml"
    cfg = load_config(preset, overrides=[f"data.train=[{data_dir / 'train/annotations/tigdog.json'}]",
                                         f"data.val=[{data_dir / 'val/annotations/tigdog.json'}]",
                                         f"train.epochs={epochs}", "train.milestones=[]",
                                         "tracking.enabled=false"])
    t0 = time.perf_counter()
    result = train(cfg, out_dir=data_dir / "run", progress=False)
    wall = time.perf_counter() - t0
    per_epoch = [h["train/epoch_seconds"] for h in result.history]
    return {"bench": "quick-epoch", "train_images": n_train, "val_images": n_val, "epochs": epochs,
            "median_epoch_train_s": statistics.median(per_epoch),
            "median_images_per_s": statistics.median(h["train/images_per_s"] for h in result.history),
            "wall_s_including_validation_and_setup": wall, "workers": loader_workers(cfg.data.workers, "cpu"),
            **_env()}


def predict_fps(video: Path, model_name: str = "hourglass_quick", size: int = 128, video_scale: float = 0.5) -> dict:
    """`predict` on a video with an (untrained) model of the given kind: frames per second end to end."""
    from animalpose.config import parse_config, to_dict
    from animalpose.engine.build import make_model
    from animalpose.engine.checkpoint import save_checkpoint
    from animalpose.engine.predict import predict
    from animalpose.keypoints import load_schema

    schema = load_schema("tigdog")
    cfg = parse_config({"data": {"schema": "tigdog", "input_size": [size, size], "heatmap_size": [size // 4] * 2},
                        "model": {"name": model_name}, "train": {"device": "cpu"}})
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_checkpoint(Path(tmp) / "m.ckpt", model=make_model(cfg, schema).state_dict(), schema=schema,
                               config=to_dict(cfg), epoch=0, step=0)
        res = predict(ckpt, [video], Path(tmp) / "out", video_scale=video_scale, progress=False)
    return {"bench": "predict", "video": str(video), "model": model_name, "input": size, "frames": res["frames"],
            "seconds": res["seconds"], "fps": res["fps"], "video_scale": video_scale, **_env()}


def train_step_command(
    model: str = typer.Option("hourglass4", help="Model name (animalpose models list)."),
    size: int = typer.Option(256, help="Input side."),
    batch: int = typer.Option(6, help="Images per step."),
    steps: int = typer.Option(5, help="Timed steps (median reported)."),
    amp: bool = typer.Option(False, "--amp", help="Mixed precision (float16 on CUDA, bfloat16 on CPU)."),
    channels_last: bool = typer.Option(False, "--channels-last", help="channels_last memory format."),
) -> None:
    """Forward + backward + optimiser step on random input: images/s of the network's share of training."""
    typer.echo(json.dumps(train_step(model, size, batch, steps, amp=amp, channels_last=channels_last)))


def quick_epoch_command(
    data_dir: Path = typer.Option(Path(tempfile.gettempdir()) / "animalpose-quick-bench",
                                  help="Where the 400 + 100 generated horses and the run go."),
    epochs: int = typer.Option(1, help="Training epochs."),
) -> None:
    """The quick preset end to end on generated horses: seconds per epoch, images/s."""
    typer.echo(json.dumps(quick_epoch(data_dir, epochs)))


def predict_command(
    video: Path = typer.Option(..., help="Video to run predict on."),
    model: str = typer.Option("hourglass_quick", help="Model name (untrained weights: speed only)."),
    size: int = typer.Option(128, help="Input side."),
    video_scale: float = typer.Option(0.5, help="Scale of the labelled output video."),
) -> None:
    """`predict` on a video: frames per second end to end."""
    typer.echo(json.dumps(predict_fps(video, model, size, video_scale)))
