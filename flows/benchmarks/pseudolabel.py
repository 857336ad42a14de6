"""`animalpose bench pseudolabel`: CC-SSL pseudo-labelling images/s against plain inference of the same model.

Issue 7's speed goal: the consistency machinery (view warps, inverse warps of the heatmaps, decoding of
every view, aggregation, optical flow along the clips and the percentile selection) adds at most 25 %
over the forward passes that the V consistency views need (V = 1 + geometric + flip + photometric).

On one generated target set (``photo`` horses: stills plus video clips, so the temporal step runs) and
one freshly initialised model (the quick CC-SSL hourglass: one stack, 64 channels), this times, side by
side and interleaved over ``repeats`` rounds (the order of the modes rotates each round; medians of wall
clock and of process CPU time), the same records with the same batches:

end to end (each mode reads and crops the images as pseudo-labelling does: a
:class:`~animalpose.data.dataset.TopDownDataset` without augmentation in a DataLoader):

- ``inference``: one forward pass per image;
- ``forward_views``: the forward passes of all V views alone (the batch repeated V times, sent in
  chunks of ``max_batch`` as :func:`~animalpose.adapt.pseudolabel.consistency_predict` sends them);
- ``pseudo_label``: the step exactly as :func:`~animalpose.adapt.ccssl.run_ccssl` runs it in process:
  :func:`~animalpose.adapt.ccssl.generate_pseudo_labels` (label_records + finalize with the temporal
  refinement) then :func:`~animalpose.adapt.ccssl.select` at the round-0 percentile;

machinery only (the crops are loaded once, before any timing; the flow still decodes its full frames,
which is part of its cost):

- ``inference_pre``, ``forward_views_pre``, ``pseudo_label_pre`` (the same views, assembly, temporal
  refinement and selection on the preloaded batches: :func:`label_preloaded`, which gives the same
  labels as the end-to-end step);

and, as a breakdown, ``load`` (reading and cropping alone) and ``temporal_select`` (finalize + select
on the pre-temporal labels).

Every mode runs the network as pseudo-labelling does (:attr:`Setup.view_fn`: the BN-folded channels-last
copy of :func:`~animalpose.adapt.pseudolabel.view_model`; ``Setup.fast = False`` for the plain network).

``overhead`` = pseudo_label / forward_views − 1 (end to end) and ``machinery_overhead`` = the same on
preloaded crops; both from wall-clock medians, their ``cpu_`` twins from process CPU time.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import typer
from torch.utils.data import DataLoader

from animalpose.adapt.ccssl import CCSSLConfig, _read_target, generate_pseudo_labels, keep_percentile, select
from animalpose.adapt.pseudolabel import (
    ConsistencyConfig,
    PseudoLabelSet,
    batch_rng,
    consistency_predict,
    finalize,
    view_model,
)
from animalpose.adapt.temporal import FlowParams
from animalpose.codecs import Codec
from animalpose.config import load_config
from animalpose.data.dataset import Normalization, TopDownDataset, collate_skip
from animalpose.data.flip import flip_permutation_or_none
from animalpose.data.records import PoseRecord
from animalpose.data.transforms import crop_to_original
from animalpose.engine.build import build_data, make_codec, make_model
from animalpose.errors import ConfigError
from animalpose.keypoints import KeypointSchema
from animalpose.paths import REPO_ROOT
from flows.benchmarks.harness import load_average, timed

REPO = REPO_ROOT
QUICK_CONFIG = REPO / "configs" / "adapt" / "ccssl_quick.yaml"
GOAL_OVERHEAD = 0.25
MODES = ("inference", "forward_views", "pseudo_label", "inference_pre", "forward_views_pre", "pseudo_label_pre",
         "load", "temporal_select")


@dataclass
class Setup:
    """Everything one pseudo-labelling round needs, as :func:`~animalpose.adapt.ccssl.run_ccssl` builds it."""

    cfg: CCSSLConfig
    model: torch.nn.Module
    schema: KeypointSchema
    codec: Codec
    normalization: Normalization
    records: list[PoseRecord]
    padding: float
    consistency: ConsistencyConfig
    flow: FlowParams | None
    percentile: float
    seed: int
    device: torch.device
    fast: bool = True  # the views through a BN-folded channels-last copy, as label_records runs them

    @property
    def view_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The model as pseudo-labelling runs it: (B, 3, H, W) -> final heatmaps."""
        return view_model(self.model, self.fast)

    @property
    def batch_size(self) -> int:
        return self.cfg.ccssl.pseudo_batch_size

    @property
    def views(self) -> int:
        c = self.consistency
        return 1 + c.num_geometric + int(c.flip) + c.photometric_views


def make_target(root: str | Path, n: int, size: int, clip_frames: int = 16, seed: int = 0) -> tuple[Path, int]:
    """A generated ``photo`` horse target of ``n`` images, about half of them frames of clips.

    Returns (annotation file, number of clips). ``n // 2 // clip_frames`` clips of ``clip_frames``
    frames and the rest stills; reused when already generated with the same settings.
    Raises ConfigError when ``n`` < 2 · ``clip_frames`` (no clip would fit) or ``clip_frames`` < 2.
    """
    from synthetic import generate_dataset

    if clip_frames < 2:
        raise ConfigError("<bench pseudolabel>", "clip_frames", f"must be >= 2, got {clip_frames}")
    clips = n // 2 // clip_frames
    if clips < 1:
        raise ConfigError("<bench pseudolabel>", "n", f"needs at least 2 x clip_frames = {2 * clip_frames} images, "
                                                       f"got {n}")
    stills = n - clips * clip_frames
    out = Path(root) / f"horse_photo_n{n}_s{size}_c{clips}x{clip_frames}_seed{seed}"
    generate_dataset(out, "horse", "photo", stills, size, seed, clips=clips, frames=clip_frames)
    return out / "annotations" / "tigdog.json", clips


def build_setup(target: Path, size: int, *, model_seed: int = 0, overrides: tuple[str, ...] = ()) -> Setup:
    """The quick CC-SSL preset at ``size`` px (heatmaps ``size / 4``) on ``target``, fresh weights (``model_seed``)."""
    if size % 4 or size < 32:
        raise ConfigError("<bench pseudolabel>", "size", f"must be a multiple of 4 and >= 32, got {size}")
    hm = size // 4
    cfg = load_config(QUICK_CONFIG, CCSSLConfig, [
        f"data.train=[{target}]", f"data.target=[{target}]", "data.val=[]", f"data.input_size=[{size},{size}]",
        f"data.heatmap_size=[{hm},{hm}]", "data.workers=0", "train.device=cpu", "tracking.enabled=false",
        *overrides])
    data = build_data(cfg)
    torch.manual_seed(model_seed)
    model = make_model(cfg, data.schema).eval()
    records, pad = _read_target(cfg.data.target, data.schema, cfg)
    c = cfg.ccssl
    return Setup(cfg, model, data.schema, make_codec(cfg), data.normalization, records, pad, c.consistency("cpu"),
                 c.flow() if c.temporal else None, keep_percentile(cfg, 0), cfg.train.seed * 1000,
                 torch.device("cpu"))


def _loader(s: Setup) -> DataLoader:
    """The crops as :func:`~animalpose.adapt.pseudolabel.label_records` reads them."""
    ds = TopDownDataset(list(s.records), s.schema, s.codec, None, padding=s.padding, normalization=s.normalization)
    return DataLoader(ds, batch_size=s.batch_size, shuffle=False, num_workers=0, collate_fn=collate_skip)


def preload(s: Setup) -> list[dict]:
    """Every readable batch of the loader: {"image": (B, 3, H, W), "index": (B,), "matrix": (B, 2, 3)}."""
    return [{"image": b["image"], "index": b["meta"]["index"].numpy(), "matrix": b["meta"]["matrix"].numpy()}
            for b in _loader(s) if "image" in b]


@torch.no_grad()
def _forward(s: Setup, images: torch.Tensor, views: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``views`` copies of ``images`` through ``fn`` (:attr:`Setup.view_fn`) in the chunks pseudo-labelling uses."""
    x = images.to(s.device)
    if views > 1:
        x = x.repeat(views, 1, 1, 1)  # view-major, as consistency_predict stacks its views
        for chunk in torch.split(x, s.consistency.max_batch):
            fn(chunk)
    else:
        fn(x)


@torch.no_grad()
def label_preloaded(s: Setup, batches: list[dict]) -> PseudoLabelSet:
    """Pre-temporal pseudo-labels of preloaded ``batches``: the views and assembly of
    :func:`~animalpose.adapt.pseudolabel.label_records` without its image loading (same labels)."""
    flip_perm = flip_permutation_or_none(s.schema) if s.consistency.flip else None
    cons = replace(s.consistency, flip=s.consistency.flip and flip_perm is not None)
    coords, conf, comps = [], [], []
    fn = s.view_fn
    for b, batch in enumerate(batches):
        out = consistency_predict(fn, batch["image"].to(s.device), cons, s.codec,
                                  batch_rng(s.seed, b), flip_perm, s.normalization.mean, s.normalization.std)
        coords.append(out.coords)
        conf.append(out.confidence)
        comps.append(out.components)
    order = np.concatenate([b["index"] for b in batches])
    recs = [s.records[i] for i in order]
    n, k = len(recs), s.schema.num_joints
    matrices = np.concatenate([b["matrix"] for b in batches])
    xy = crop_to_original(np.concatenate(coords), matrices).astype(np.float32)
    components = {name: np.concatenate([c[name] for c in comps]) for name in comps[0]}
    truth = np.stack([r.keypoints for r in recs]).astype(np.float32)
    return PseudoLabelSet(recs, xy, np.concatenate(conf).astype(np.float32), components, matrices,
                          tuple(s.codec.input_size), np.full((n, k), np.nan), np.zeros((n, k), dtype=bool),
                          np.zeros((n, k), np.float32), truth=truth)


def pseudo_label_step(s: Setup) -> PseudoLabelSet:
    """One round's pseudo-labels exactly as ``run_ccssl`` makes them in process (generate, then select)."""
    labels = generate_pseudo_labels(s.model, s.records, s.schema, s.codec, s.normalization, s.consistency, s.flow,
                                    s.device, batch_size=s.batch_size, padding=s.padding, seed=s.seed,
                                    truth=s.cfg.ccssl.target_truth, workers=0, fast=s.fast)
    return select(labels, s.percentile)


def pseudo_label_preloaded(s: Setup, batches: list[dict]) -> PseudoLabelSet:
    """:func:`pseudo_label_step` on preloaded crops (finalize and select as run_ccssl, same labels)."""
    return select(finalize(label_preloaded(s, batches), s.flow, where=s.records[0].image), s.percentile)


def _runners(s: Setup, batches: list[dict], pre_temporal: PseudoLabelSet) -> dict[str, Callable[[], object]]:
    v = s.views
    fn = s.view_fn  # built once here; the pseudo_label modes build theirs per call, as a round does

    def over_loader(views: int) -> Callable[[], None]:
        def run() -> None:
            for b in _loader(s):
                if "image" in b:
                    _forward(s, b["image"], views, fn)
        return run

    def over_preloaded(views: int) -> Callable[[], None]:
        def run() -> None:
            for b in batches:
                _forward(s, b["image"], views, fn)
        return run

    def load() -> None:
        for _ in _loader(s):
            pass

    return {
        "inference": over_loader(1),
        "forward_views": over_loader(v),
        "pseudo_label": lambda: pseudo_label_step(s),
        "inference_pre": over_preloaded(1),
        "forward_views_pre": over_preloaded(v),
        "pseudo_label_pre": lambda: pseudo_label_preloaded(s, batches),
        "load": load,
        "temporal_select": lambda: select(finalize(pre_temporal, s.flow, where=s.records[0].image), s.percentile),
    }


def summarise(seconds: dict[str, dict[str, float]], n: int) -> dict:
    """Rates and overheads from median seconds per mode ({mode: {"wall": s, "cpu": s}}) for ``n`` images."""
    out: dict = {}
    for prefix, key in (("", "wall"), ("cpu_", "cpu")):
        t = {m: seconds[m][key] for m in seconds}
        for m in ("inference", "forward_views", "pseudo_label"):
            out[f"{prefix}{m}_img_s"] = n / t[m]
            out[f"{prefix}{m}_pre_img_s"] = n / t[f"{m}_pre"]
        out[f"{prefix}load_img_s"] = n / t["load"]
        out[f"{prefix}temporal_select_img_s"] = n / t["temporal_select"]
        out[f"{prefix}overhead"] = t["pseudo_label"] / t["forward_views"] - 1.0
        out[f"{prefix}machinery_overhead"] = t["pseudo_label_pre"] / t["forward_views_pre"] - 1.0
        out[f"{prefix}pseudo_label_vs_inference"] = t["pseudo_label"] / t["inference"]
    return out


def run_benchmark(setup: Setup, repeats: int = 5, warmup: int = 1,
                  progress: Callable[[str], None] | None = None) -> dict:
    """Time every mode of :data:`MODES` on ``setup``, interleaved over ``repeats`` rounds; medians.

    Returns a JSON-ready dict: ``images``, ``views``, the rates (``*_img_s``, wall; ``cpu_*``, process
    CPU), ``overhead`` / ``machinery_overhead`` (and ``cpu_`` twins), ``seconds`` (median wall/cpu
    per mode), ``all_repeats``, ``kept`` (joints selected), ``load_average`` (before, after).
    """
    if repeats < 1 or warmup < 0:
        raise ConfigError("<bench pseudolabel>", "repeats", f"repeats must be >= 1 and warmup >= 0, got "
                                                             f"{repeats}, {warmup}")
    load_before = load_average()
    batches = preload(setup)
    n = sum(len(b["index"]) for b in batches)
    runners = _runners(setup, batches, label_preloaded(setup, batches))
    for _ in range(warmup):
        for fn in runners.values():
            fn()
    times: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
    for r in range(repeats):
        if progress:
            progress(f"round {r + 1}/{repeats}")
        order = MODES[r % len(MODES):] + MODES[:r % len(MODES)]
        for m in order:
            times[m].append(timed(runners[m]))
    seconds = {m: {"wall": statistics.median(t[0] for t in ts), "cpu": statistics.median(t[1] for t in ts)}
               for m, ts in times.items()}
    labels = pseudo_label_step(setup)
    clips = {r.video_id for r in setup.records if r.video_id is not None}
    return {
        "images": n, "views": setup.views, "num_geometric": setup.consistency.num_geometric,
        "flip": setup.consistency.flip, "photometric": setup.consistency.photometric_views,
        "temporal": setup.flow is not None, "clips": len(clips),
        "frames": sum(r.video_id is not None for r in setup.records), "size": list(setup.codec.input_size),
        "batch_size": setup.batch_size, "max_batch": setup.consistency.max_batch, "percentile": setup.percentile,
        "kept": int((labels.weights > 0).sum()), "replaced": int(labels.replaced.sum()),
        **summarise(seconds, n), "goal_overhead": GOAL_OVERHEAD, "seconds": seconds,
        "all_repeats": {m: [[round(w, 4), round(c, 4)] for w, c in ts] for m, ts in times.items()},
        "repeats": repeats, "warmup": warmup, "threads": torch.get_num_threads(),
        "load_average": {"before": load_before, "after": load_average()},
        "cpus": os.cpu_count(),
    }


def measure(n: int = 256, size: int = 128, repeats: int = 5, threads: int = 1, clip_frames: int = 16,
            data_dir: str | Path | None = None, warmup: int = 1,
            progress: Callable[[str], None] | None = None) -> dict:
    """Generate the target (in ``data_dir``, else a temporary folder), build the setup and run the benchmark."""
    import cv2

    if threads > 0:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(data_dir) if data_dir else Path(tmp)
        target, _ = make_target(root, n, size, clip_frames)
        return run_benchmark(build_setup(target, size), repeats, warmup, progress)


def bench_command(
    n: int = typer.Option(256, help="Target images (about half of them frames of clips)."),
    size: int = typer.Option(128, help="Image and crop side (heatmaps size/4)."),
    repeats: int = typer.Option(5, help="Interleaved timed rounds (medians reported)."),
    threads: int = typer.Option(1, help="torch and OpenCV threads (0: their defaults)."),
    clip_frames: int = typer.Option(16, help="Frames per generated clip."),
    data_dir: Path = typer.Option(None, help="Keep the generated target here (default: a temporary folder)."),
    warmup: int = typer.Option(1, help="Untimed rounds of every mode first."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Pseudo-labelling images/s against plain inference and the V-view forward passes (overhead goal 25%)."""
    r = measure(n, size, repeats, threads, clip_frames, data_dir, warmup,
                progress=lambda s: typer.echo(f"measuring {s} ...", err=True))
    if as_json:
        typer.echo(json.dumps(r))
        return
    typer.echo(f"{r['images']} images ({r['frames']} frames of {r['clips']} clips), {r['size'][0]} px, "
               f"V = {r['views']} views, {r['repeats']} rounds, {r['threads']} thread(s)")
    for label, key in (("inference", "inference"), ("forward of V views", "forward_views"),
                       ("pseudo-labelling", "pseudo_label")):
        typer.echo(f"{label:>20}: {r[f'{key}_img_s']:8.2f} img/s wall {r[f'cpu_{key}_img_s']:8.2f} cpu   "
                   f"preloaded: {r[f'{key}_pre_img_s']:8.2f} wall {r[f'cpu_{key}_pre_img_s']:8.2f} cpu")
    typer.echo(f"{'load+crop alone':>20}: {r['load_img_s']:8.2f} img/s   temporal+select alone: "
               f"{r['temporal_select_img_s']:8.2f} img/s")
    typer.echo(f"overhead over the V-view forwards: end to end {100 * r['overhead']:.1f}% "
               f"(cpu {100 * r['cpu_overhead']:.1f}%), machinery only {100 * r['machinery_overhead']:.1f}% "
               f"(cpu {100 * r['cpu_machinery_overhead']:.1f}%); goal <= {100 * GOAL_OVERHEAD:.0f}%")
    typer.echo(f"load average {r['load_average']} on {r['cpus']} cpus")
