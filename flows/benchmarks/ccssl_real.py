"""`animalpose bench ccssl-real`: does CC-SSL on unlabelled real video help a supervised mouse model?

The "Real target" benchmark of issue 7 on ``../shared/data/real/mirror-mouse`` (Lightning Pose example
data, Warren et al., eLife 2021): 90 labelled 396x406 frames, 17 joints (some empty), and an unlabelled
994-frame video of the same rig at 250 fps. Per seed:

1. **supervised**: ``configs/experiments/mirror_mouse.yaml`` trained by the engine on img01–img60;
2. **continued (λ = 0)**: the supervised model trained on, with the CC-SSL trainer, for as many epochs
   as the CC-SSL rounds, with no target loss (λ = 0) and no consistency views. This is the control: it
   gets the same extra epochs, optimiser restart and lr as CC-SSL, so any gain of (3) over (2) comes
   from the video, not from more training;
3. **CC-SSL**: ``configs/adapt/ccssl_mirror_mouse.yaml`` from the supervised checkpoint on every
   ``frame_step``-th video frame, temporal check on (``flow_max_gap`` = ``frame_step``), evaluated
   after each round.

Every model is evaluated on img61–img90 (never used for training or selection; each arm keeps its last
epoch): mean and median pixel error in the original 396x406 frame over the labelled joints, and PCK@α
with the library's ``bbox`` normaliser (:func:`animalpose.evaluation.pck_bbox`: α × the longer side
of the box around the frame's labelled joints; on these test frames 350–380 px, mean 365, so
PCK@0.05 ≈ 18 px and PCK@0.1 ≈ 37 px).

Data preparation (in ``OUT/data``, never in the shared folder): the two label subsets as COCO JSON
(:func:`animalpose.data.subset.write_subset`), and the chosen video frames decoded once, in order,
to PNG with a COCO JSON that keeps their ``video_id`` / ``frame_index`` (so the temporal check still
chains them). Reason: random access into this mp4 costs ~0.1 s a frame (a seek decodes from the last
key frame) against ~1.6 ms reading on, and the CC-SSL target stream draws frames in random order.

Results per seed go to ``OUT/seed_<s>/result.json``; a rerun with the same ``OUT`` and settings reuses
finished seeds, a finished (or resumes an interrupted) supervised run, and run_ccssl resumes after its
last finished round; a seed folder written with other settings is an error. The summary is mean ± std
(ddof 1) over seeds.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import typer

from animalpose.adapt.ccssl import CCSSLConfig, run_ccssl
from animalpose.atomic import atomic_path, write_json_atomic
from animalpose.config import ExperimentConfig, load_config
from animalpose.data.coco_writer import write_coco
from animalpose.data.images import read_image
from animalpose.data.readers import read_dataset, read_video
from animalpose.data.records import PoseRecord
from animalpose.data.subset import write_subset
from animalpose.engine.checkpoint import load_checkpoint
from animalpose.engine.train import train
from animalpose.errors import DataError
from animalpose.evaluation import bbox_normalisers, pck_bbox
from animalpose.keypoints import CONFIG_ROOT
from flows.benchmarks.harness import (
    REAL_DATA,
    SEEDS_HELP,
    SeedFolder,
    Stopwatch,
    echo_result,
    key_values,
    paired,
    parse_seeds,
    stats,
)
from flows.benchmarks.inference import Loaded, crop_outputs

SCHEMA = "mirror_mouse"
DEFAULT_DATA = REAL_DATA / "mirror-mouse"
EXPERIMENT = CONFIG_ROOT / "experiments" / "mirror_mouse.yaml"
ADAPT = CONFIG_ROOT / "adapt" / "ccssl_mirror_mouse.yaml"
METRICS = ("pixel_error", "pixel_error_median", "pck@0.05", "pck@0.1")


@dataclass(frozen=True)
class BenchSettings:
    """What the benchmark runs. ``overrides`` (``key=value``) go to both configs, ``adapt_overrides`` to
    the CC-SSL config only (after the bench's own data/seed/tracking overrides)."""

    data: Path = DEFAULT_DATA
    train_range: tuple[str, str] = ("img01", "img60")
    test_range: tuple[str, str] = ("img61", "img90")
    frame_step: int = 6
    max_frames: int | None = None
    experiment: Path = EXPERIMENT
    adapt: Path = ADAPT
    overrides: tuple[str, ...] = ()
    adapt_overrides: tuple[str, ...] = ()

    def key(self) -> dict:
        """The settings as plain JSON (stored with each seed's result; a mismatch reruns the seed)."""
        return json.loads(json.dumps(asdict(self), default=str))


@dataclass
class Prepared:
    train: Path
    test: Path
    frames: Path
    num_train: int
    num_test: int
    num_frames: int
    test_records: list[PoseRecord] = field(repr=False, default_factory=list)


# --------------------------------------------------------------------------------------------------
# data


def write_frame_cache(video: Path, out: Path, step: int, max_frames: int | None = None) -> tuple[Path, int]:
    """Every ``step``-th frame of ``video`` (at most ``max_frames``) as PNG plus ``video_frames.json``.

    The frames are decoded once, in order. Records keep ``video_id`` (the video's stem) and the
    original ``frame_index``, carry the whole frame as their box, and 17 unlabelled joints. Reuses an
    existing cache written with the same video, step and frame limit. Returns (json path, frames).
    """
    out = out.resolve()  # absolute image paths: write_coco keeps relative ones as they are
    out.mkdir(parents=True, exist_ok=True)
    path = out / "video_frames.json"
    info = {"video": str(video), "step": step, "max_frames": max_frames}
    if path.is_file():
        doc = json.loads(path.read_text())
        if {k: doc.get("info", {}).get(k) for k in info} == info:
            return path, len(doc["images"])
    ds = read_video(video, SCHEMA)
    chosen = [r for r in ds.records if r.frame_index % step == 0][:max_frames]
    if not chosen:
        raise DataError(str(video), "frames", "no frame to cache")
    wanted = {r.frame_index for r in chosen}
    records = []
    for f in range(chosen[-1].frame_index + 1):  # read on without seeking
        frame = read_image(video, f)
        if f not in wanted:
            continue
        png = out / "frames" / f"{video.stem}_{f:06d}.png"
        with atomic_path(png) as tmp:
            if not cv2.imwrite(str(tmp), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
                raise DataError(str(png), "image", "cannot write frame")
        h, w = frame.shape[:2]
        records.append(PoseRecord(image=str(png), keypoints=np.zeros((17, 3), np.float32), schema=SCHEMA,
                                  bbox=(0.0, 0.0, float(w), float(h)), image_size=(w, h), video_id=video.stem,
                                  frame_index=f))
    write_coco(records, path, SCHEMA, info=info)
    return path, len(records)


def prepare(settings: BenchSettings, out: Path) -> Prepared:
    """The train / test label subsets and the video frame cache under ``out/data``."""
    ds = read_dataset(settings.data, "dlc", SCHEMA)
    where = str(ds.source)
    folder = out / "data"
    train_path, n_train = write_subset(ds.records, folder / "train.json", SCHEMA, *settings.train_range, where=where)
    test_path, n_test = write_subset(ds.records, folder / "test.json", SCHEMA, *settings.test_range, where=where)
    if not ds.videos:
        raise DataError(where, "videos", "no unlabelled video beside the labels")
    video = Path(sorted(ds.videos)[0])
    frames, n_frames = write_frame_cache(video, folder, settings.frame_step, settings.max_frames)
    test_records = read_dataset(test_path, "coco", SCHEMA).records
    return Prepared(train_path, test_path, frames, n_train, n_test, n_frames, test_records)


# --------------------------------------------------------------------------------------------------
# evaluation


def predict_original(checkpoint: Path, records: list[PoseRecord], batch_size: int = 16) -> np.ndarray:
    """(N, K, 3) predictions (x, y in original-image pixels, heatmap maximum) of a checkpoint's model
    on plain crops of ``records`` (the crop padding of its config; no flip test: the schema has no pairs)."""
    loaded = Loaded.from_checkpoint(checkpoint)
    return crop_outputs(loaded, records, loaded.cfg.data.bbox_padding_real, batch_size).keypoints


def keypoint_metrics(pred: np.ndarray, gt: np.ndarray) -> dict:
    """Pixel error (mean, median over labelled joints) and PCK@0.05/0.1 with the bbox normaliser.

    Args:
        pred: (N, K, 2+) predicted x, y; gt: (N, K, 3) ground truth, visibility 0 = not evaluated.
    """
    gt = np.asarray(gt, dtype=np.float64)
    err = np.linalg.norm(np.asarray(pred, dtype=np.float64)[..., :2] - gt[..., :2], axis=-1)
    valid = gt[..., 2] > 0
    if not valid.any():
        raise ValueError("no labelled joint to evaluate")
    e = err[valid]
    return {"pixel_error": float(e.mean()), "pixel_error_median": float(np.median(e)),
            "pck@0.05": pck_bbox(pred, gt, 0.05).mean, "pck@0.1": pck_bbox(pred, gt, 0.1).mean,
            "joints": int(valid.sum()), "normaliser_px": float(np.nanmean(bbox_normalisers(gt)))}


def evaluate_checkpoint(checkpoint: Path, records: list[PoseRecord]) -> dict:
    pred = predict_original(checkpoint, records)
    return keypoint_metrics(pred, np.stack([r.keypoints for r in records]))


# --------------------------------------------------------------------------------------------------
# one seed


def _configs(settings: BenchSettings, prep: Prepared, seed: int, source: Path | None):
    # the label subsets point at the DLC project's images, outside the subsets' own folder
    common = [f"data.train=[{prep.train}]", "data.val=[]", f"train.seed={seed}", "tracking.enabled=false",
              "data.allow_outside_root=true"]
    sup = load_config(settings.experiment, ExperimentConfig, [*common, *settings.overrides])
    if source is None:
        return sup, None
    ada = load_config(settings.adapt, CCSSLConfig, [*common, f"data.target=[{prep.frames}]",
                                                    f"ccssl.source_checkpoint={source}",
                                                    f"ccssl.flow_max_gap={settings.frame_step}",
                                                    *settings.overrides, *settings.adapt_overrides])
    return sup, ada


def control_config(cfg: CCSSLConfig) -> CCSSLConfig:
    """The λ = 0 continuation: same epochs/rounds/lr, no target loss, no consistency views or flow."""
    c = cfg.ccssl.model_copy(update={"lambda_target": 0.0, "temporal": False, "num_geometric": 0,
                                     "invariance": False, "gallery": 0})
    return cfg.model_copy(update={"ccssl": c})


def run_seed(seed: int, settings: BenchSettings, prep: Prepared, out: Path, *, progress: bool = False) -> dict:
    """Supervised, continued (λ = 0) and CC-SSL for one seed; the metrics, kept counts and times."""
    cache = SeedFolder(out / f"seed_{seed}", settings.key(), bare_marker=True)
    folder = cache.folder
    old = cache.finished()
    if old is not None:
        if "continued_rounds" not in old:  # results written before the per-round control existed
            old["continued_rounds"] = _round_metrics(folder / "continued", len(old["ccssl"]), prep)
            cache.save(old)
        return old
    cache.start()
    clock = Stopwatch()
    sup_cfg, _ = _configs(settings, prep, seed, None)
    sup_dir = folder / "supervised"
    source = sup_dir / "last.ckpt"
    if not source.is_file() or load_checkpoint(source)["epoch"] < sup_cfg.train.epochs:  # else: finished before
        train(sup_cfg, out_dir=sup_dir, progress=progress, resume=source.is_file())
    times = {"supervised": clock.lap()}
    supervised = evaluate_checkpoint(source, prep.test_records)
    _, ada_cfg = _configs(settings, prep, seed, source)
    ctrl = run_ccssl(control_config(ada_cfg), folder / "continued", progress=progress)
    times["continued"] = clock.lap()
    continued = evaluate_checkpoint(ctrl.last_checkpoint, prep.test_records)
    continued_rounds = _round_metrics(ctrl.out_dir, len(ctrl.rounds), prep)
    res = run_ccssl(ada_cfg, folder / "ccssl", progress=progress)
    times["ccssl"] = clock.lap()
    rounds = []
    for r, m in enumerate(res.rounds):
        ckpt = res.out_dir / f"round_{r}.ckpt"
        rounds.append({"round": r, "epochs": m["epochs"], "kept": m.get("pseudo/num_kept"),
                       "candidates": m.get("pseudo/num_joints"), "kept_by_flow": m.get("pseudo/num_temporal"),
                       "threshold": m.get("pseudo/threshold"), **evaluate_checkpoint(ckpt, prep.test_records)})
    times["evaluation"] = clock.lap()
    return cache.save({"seed": seed, "settings": settings.key(), "supervised": supervised, "continued": continued,
                       "continued_rounds": continued_rounds, "ccssl": rounds, "times": times,
                       "epochs": {"supervised": sup_cfg.train.epochs, "adaptation": ada_cfg.train.epochs}})


def _round_metrics(run_dir: Path, n: int, prep: Prepared) -> list[dict]:
    """Test metrics of ``run_dir/round_<r>.ckpt`` for r < n (the model at the end of each round)."""
    return [{"round": r, **evaluate_checkpoint(run_dir / f"round_{r}.ckpt", prep.test_records)} for r in range(n)]


# --------------------------------------------------------------------------------------------------
# summary


def rows_of(seed_result: dict) -> dict[str, dict]:
    """Row name -> metrics of one seed: supervised, continued (λ = 0) round r, ccssl round r."""
    rows = {"supervised": seed_result["supervised"]}
    for r in seed_result["continued_rounds"]:
        rows[f"continued round {r['round']}"] = r
    for r in seed_result["ccssl"]:
        rows[f"ccssl round {r['round']}"] = r
    return rows


def summarise(per_seed: list[dict]) -> dict:
    """Mean ± std over seeds per row and metric, the kept counts per round, and the paired differences
    CC-SSL round r minus the λ = 0 control after the same epochs (negative pixel error = CC-SSL better).

    The std of one seed shows as 0 in this table (:func:`flows.benchmarks.harness.stats`'s ``std_of_one``).
    """
    per_row = [rows_of(s) for s in per_seed]
    names = list(per_row[0])

    def column(row: str, key: str) -> list[float]:
        return [r[row][key] for r in per_row]

    rows = {n: {m: stats(column(n, m), std_of_one=0.0) for m in METRICS} for n in names}
    kept = [{"round": r["round"], "kept": stats(column(f"ccssl round {r['round']}", "kept"), std_of_one=0.0),
             "candidates": r["candidates"],
             "kept_by_flow": stats(column(f"ccssl round {r['round']}", "kept_by_flow"), std_of_one=0.0)}
            for r in per_seed[0]["ccssl"]]
    last = names[-1]
    diff = {f"round {r}": {m: paired(column(f"ccssl round {r}", m), column(f"continued round {r}", m), std_of_one=0.0)
                           for m in METRICS} for r in (x["round"] for x in per_seed[0]["ccssl"])}
    diff_sup = {m: paired(column(last, m), column("supervised", m), std_of_one=0.0) for m in METRICS}
    return {"rows": rows, "kept": kept, "ccssl_minus_continued": diff,
            "last_round_minus_supervised": diff_sup, "last_row": last}


def format_table(result: dict) -> str:
    s = result["summary"]
    head = "| model | pixel error (px) | median px | PCK@0.05 | PCK@0.1 |"
    lines = [head, "|" + "---|" * 5]
    for name, row in s["rows"].items():
        cells = [f"{row[m]['mean']:.2f} ± {row[m]['std']:.2f}" if m.startswith("pixel")
                 else f"{row[m]['mean']:.3f} ± {row[m]['std']:.3f}" for m in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    for k in s["kept"]:
        lines.append(f"round {k['round']}: kept {k['kept']['mean']:.1f} ± {k['kept']['std']:.1f} of "
                     f"{k['candidates']} joint pseudo-labels ({k['kept_by_flow']['mean']:.1f} from the flow)")
    for name, d in s["ccssl_minus_continued"].items():
        lines.append(f"ccssl minus continued (λ=0) after {name}, paired per seed: pixel error "
                     f"{d['pixel_error']['mean']:+.2f} ± {d['pixel_error']['std']:.2f} px, PCK@0.05 "
                     f"{d['pck@0.05']['mean']:+.3f} ± {d['pck@0.05']['std']:.3f}, PCK@0.1 "
                     f"{d['pck@0.1']['mean']:+.3f} ± {d['pck@0.1']['std']:.3f}")
    return "\n".join(lines)


def run_bench(out: Path, seeds: list[int], settings: BenchSettings | None = None, *,
              progress: bool = False) -> dict:
    """Prepare the data, run every seed, summarise; writes ``out/ccssl_real_bench.json`` atomically."""
    settings = settings or BenchSettings()
    out = Path(out).resolve()
    clock = Stopwatch()
    prep = prepare(settings, out)
    per_seed = []
    for seed in seeds:
        if progress:
            print(f"seed {seed}", file=sys.stderr, flush=True)
        per_seed.append(run_seed(seed, settings, prep, out, progress=progress))
    result = {
        "benchmark": "ccssl-real", "dataset": str(settings.data), "schema": SCHEMA,
        "train_images": prep.num_train, "test_images": prep.num_test, "target_frames": prep.num_frames,
        "frame_step": settings.frame_step, "seeds": list(seeds),
        "normaliser": "pck_bbox: alpha x longer side of the box around the frame's labelled joints "
                      "(original pixels)",
        "per_seed": per_seed, "summary": summarise(per_seed),
        **clock.total(), "threads": torch.get_num_threads(),
    }
    write_json_atomic(out / "ccssl_real_bench.json", result, indent=2)
    return result


def bench_command(
    seeds: str = typer.Option("0,1,2", "--seeds", help=SEEDS_HELP),
    out: Path = typer.Option(Path("runs/bench/ccssl_real"), help="Output folder (subsets, frames, runs, JSON)."),
    data: Path = typer.Option(DEFAULT_DATA, help="The mirror-mouse folder (CollectedData.csv, videos/)."),
    frame_step: int = typer.Option(BenchSettings.frame_step, help="Use every N-th video frame."),
    max_frames: int = typer.Option(0, help="At most this many video frames (0: all chosen)."),
    threads: int = typer.Option(1, help="torch threads."),
    overrides: list[str] = typer.Option(None, "--set", help="Override of both configs key=value (repeatable, "
                                        "before --adapt), e.g. --set train.epochs=60 --adapt train.epochs=9."),
    adapt: list[str] = typer.Option(None, "--adapt", help="CC-SSL config override key=value (repeatable), "
                                    "e.g. --adapt ccssl.lambda_target=1; use a new --out for other settings."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    progress: bool = typer.Option(False, help="Show training progress."),
) -> None:
    """Mirror-mouse: supervised on img01-60 vs + CC-SSL on the unlabelled video; test on img61-90."""
    seed_list = parse_seeds(seeds)
    if frame_step < 1:
        raise typer.BadParameter("must be >= 1", param_hint="--frame-step")
    overrides, adapt = key_values(overrides, "--set"), key_values(adapt, "--adapt")
    torch.set_num_threads(threads)
    settings = BenchSettings(data=data, frame_step=frame_step, max_frames=max_frames or None,
                             overrides=overrides, adapt_overrides=adapt)
    result = run_bench(out, seed_list, settings, progress=progress)
    echo_result(result, as_json, format_table(result),
                f"{len(seed_list)} seeds, {result['target_frames']} video frames (every {frame_step}th), "
                f"{result['wall_seconds']} s wall, {result['cpu_seconds']} s CPU, {result['threads']} thread(s), "
                f"load average {result['load_average']}")
