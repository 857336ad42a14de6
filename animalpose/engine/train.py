"""``train(cfg)``: everything around the loop — data, model, tracking, resume, figures, registration.

Order of work: the configuration is already validated; datasets are read and checked, the resume
checkpoint (if any) is opened and checked against the schema, and only then does training start.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import torch

from animalpose.atomic import write_text_atomic
from animalpose.config import ExperimentConfig, flatten, to_dict
from animalpose.data.validate import SkipReport
from animalpose.engine.build import DataBundle, build_data, make_codec, make_model, pick_device
from animalpose.engine.checkpoint import atomic_torch_save, check_architecture, load_checkpoint, to_plain
from animalpose.engine.distributed import init_distributed, shutdown_distributed
from animalpose.engine.inference import original_predictions, unwrap
from animalpose.engine.multiview import found_correction, look_alike, multiview_correction, multiview_prior
from animalpose.engine.trainer import Trainer, TrainResult, seed_everything
from animalpose.errors import ConfigError, DataError
from animalpose.evaluation import per_joint_table
from animalpose.jsonout import dumps
from animalpose.outputs import check_output_dir
from animalpose.paths import data_home
from animalpose.provenance import data_tags
from animalpose.tracking import Tracker


def default_out_dir(cfg: ExperimentConfig, name: str) -> Path:
    """``<data home>/runs/<experiment>/<name>``: stable, so ``--resume`` finds the last checkpoint."""
    return data_home() / "runs" / cfg.tracking.experiment / name


def _write_json(path: Path, data) -> None:
    write_text_atomic(path, dumps(data, indent=2))  # strict JSON: a NaN score is null


def checkpoint_extra(cfg: ExperimentConfig, data: DataBundle, source: dict | None = None) -> dict:
    """What every checkpoint of a model trained on ``data`` carries besides its weights (supervised training
    and CC-SSL's rounds alike): the images' normalisation (``evaluate`` and ``predict`` read it) and, for a
    multi-view rig, the views' subspace of the labels and the groups it mends (:mod:`animalpose.engine.multiview`).

    ``multiview.correct: auto``: the groups are found when training ends (:func:`mend_found_groups`); a model
    adapted from a ``source`` checkpoint's weights (``source``: its ``extra``) carries the correction found for the
    source, so that keep-the-better scores the source, the control and the adapted model mended alike. Either way
    the views are checked now, not after training."""
    extra = {"normalization": data.normalization.to_dict()}
    m = cfg.multiview
    if m.correct == "auto":
        multiview_prior(cfg, data.train.records, data.schema)
        for key in ("multiview", "multiview_found"):
            if key in (source or {}):
                extra[key] = source[key]
    elif m.correct:
        extra["multiview"] = multiview_correction(cfg, data.train.records, data.schema).to_dict()
    return extra


def mend_found_groups(cfg: ExperimentConfig, data: DataBundle, trainer: Trainer, result: TrainResult,
                      progress: bool = True) -> dict[str, dict]:
    """``multiview.correct: auto`` at the end of training: for best.ckpt and last.ckpt, each model's raw
    predictions on ``data.val`` (every file, pooled; flip-tested as validation is) name the body parts it swaps
    (:func:`~animalpose.engine.multiview.look_alike`, ``multiview.confusion``), and the checkpoint is rewritten
    (atomically) to mend them (:func:`~animalpose.engine.multiview.found_correction`) or, when none are found,
    to mend nothing: ``extra["multiview_found"]`` keeps what was found either way. One console line per
    checkpoint, also when nothing is mended. Returns ``{checkpoint name: look_alike}``."""
    m, schema = cfg.multiview, data.schema
    prior = multiview_prior(cfg, data.train.records, schema)
    module = copy.deepcopy(unwrap(trainer.model))
    out = {}
    for path in dict.fromkeys(p for p in (result.best_checkpoint, result.last_checkpoint) if p and p.is_file()):
        ckpt = load_checkpoint(path, schema=schema)
        module.load_state_dict(ckpt.get("ema") or ckpt["model"])
        pred, truth = original_predictions(module, trainer.val_sets.values(), trainer.device, trainer.flip_perm,
                                           trainer.flip_shift)
        found = to_plain(look_alike(pred, truth, m.views, schema, m.confusion))
        correction = found_correction(prior, found, m.views)
        extra = {k: v for k, v in (ckpt.get("extra") or {}).items() if k != "multiview"}
        extra["multiview_found"] = found
        if correction is not None:
            extra["multiview"] = correction.to_dict()
        atomic_torch_save({**ckpt, "extra": extra}, path)
        out[path.name] = found
        if correction is None:
            print(f"multiview.correct auto: {path.name}'s model swaps no two body parts in >= {m.confusion:g} of "
                  f"the {found['frames']} val frames in any view: its predictions are not mended", file=sys.stderr,
                  flush=True)
        elif progress:
            said = "; ".join(f"{', '.join(g['parts'])} (from view {g['reference']})" for g in found["groups"]
                             if g["reference"] is not None)
            print(f"multiview.correct auto: {path.name} mends {said}, found on {found['frames']} val frames",
                  file=sys.stderr, flush=True)
    return out


def train(cfg: ExperimentConfig, *, out_dir: str | Path | None = None, name: str = "run", resume: bool = False,
          progress: bool = True, halt_after_steps: int | None = None, register_as: str | None = None) -> TrainResult:
    """Train the model of ``cfg`` on its data; checkpoints go to ``out_dir`` (see :func:`default_out_dir`).

    Args:
        resume: continue from ``out_dir/last.ckpt`` (model, optimiser, schedule, RNG, MLflow run).
        halt_after_steps: test hook that stops after that many steps without saving (simulates a kill).
        register_as: registered-model name for the best checkpoint (default ``<experiment>-<model>``).

    Raises:
        DataError / ConfigError naming the file, before any training, for bad data or a bad checkpoint.
    """
    device = pick_device(cfg.train.device)
    dist = init_distributed(device)
    if device.type == "cuda" and dist.enabled:
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    out = Path(out_dir) if out_dir is not None else default_out_dir(cfg, name)
    if dist.is_main:  # before any data is read: a folder that cannot take a checkpoint stops the run now
        check_output_dir(out, "--out", create=False)  # nothing is created before the data checks pass
    try:
        seed_everything(cfg.train.seed, cfg.train.deterministic)
        data = build_data(cfg)
        if cfg.multiview.correct == "auto" and not data.val:
            raise ConfigError("<config>", "multiview.correct", "auto finds the look-alike body parts on the labelled "
                              "frames of data.val, and there are none: give data.val or name the groups")
        last = out / "last.ckpt"
        run_id = None
        if resume:
            if not last.is_file():
                raise DataError(str(last), "checkpoint", "--resume: no checkpoint to resume from")
            ckpt = load_checkpoint(last, schema=data.schema)
            check_architecture(ckpt, to_dict(cfg)["model"], str(last))  # before the MLflow run resumes
            run_id = (ckpt.get("extra") or {}).get("run_id")
            del ckpt
        # a fresh start over a killed run's folder: that run never closed its MLflow run
        stale_run = None if resume or not dist.is_main else _run_id_of(last)
        model = make_model(cfg, data.schema)
        tracker = None
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            tracker = Tracker(cfg.tracking.experiment, name, uri=cfg.tracking.uri, enabled=cfg.tracking.enabled,
                              tags={"stage": "train", "schema": data.schema.name, "model": cfg.model.name,
                                    **data_tags(data.sources)},
                              resume_run_id=run_id).start()
            if not resume:
                tracker.log_params(flatten(cfg))
            if stale_run and tracker.close_if_running(stale_run, "KILLED"):
                print(f"marked MLflow run {stale_run} of the previous, killed run in {out} as KILLED",
                      file=sys.stderr, flush=True)
            log_skipped(tracker, data.skipped)
        trainer = Trainer(cfg, model, data.schema, data.train, data.val, out, device=device, tracker=tracker,
                          dist=dist, progress=progress, halt_after_steps=halt_after_steps,
                          extra=checkpoint_extra(cfg, data))
        if resume:
            trainer.resume(last)
            if tracker is not None and tracker.resume_missed:  # a new run in another store: give it the record
                tracker.log_params(flatten(cfg))
                for epoch_metrics in trainer.history:
                    tracker.log_metrics(trainer.tracked(epoch_metrics), step=int(epoch_metrics["epoch"]))
        try:
            result = trainer.fit()
        except KeyboardInterrupt:
            if dist.is_main:
                trainer.save(last)
                print(f"interrupted: saved {last}; continue with --resume", file=sys.stderr)
            if tracker:
                tracker.end("KILLED")
            raise
        except BaseException:
            if tracker:  # not left RUNNING
                tracker.end("FAILED")
            raise
        result.data_skipped = data.skipped.to_dict()
        log_skipped_images(tracker, result.images_skipped)
        if dist.is_main and not result.halted:
            found = mend_found_groups(cfg, data, trainer, result, progress) if cfg.multiview.correct == "auto" else None
            _finish(cfg, trainer, result, tracker, register_as, found)
        if tracker:
            tracker.end("FINISHED")
        return result
    finally:
        shutdown_distributed()


def _run_id_of(checkpoint: Path) -> str | None:
    """The MLflow run id recorded in a checkpoint, None when there is none or it does not load."""
    if not checkpoint.is_file():
        return None
    try:
        return (load_checkpoint(checkpoint).get("extra") or {}).get("run_id")
    except DataError:
        return None


def log_skipped(tracker: Tracker | None, skipped: SkipReport) -> None:
    """Record in MLflow what ``data.skip_bad`` dropped (nothing is logged when nothing was dropped)."""
    if tracker is None or not skipped.problems:
        return
    tracker.log_metrics({"data/skipped_records": float(skipped.records)})
    tracker.log_dict(skipped.to_dict(), "data/skipped.json")


def log_skipped_images(tracker: Tracker | None, images: list[dict]) -> None:
    """Record in MLflow the images skipped because they did not decode: the metric ``data/skipped_images``
    (0 included, so a clean run says so) and, when there are any, the list as ``data/skipped_images.json``."""
    if tracker is None:
        return
    tracker.log_metrics({"data/skipped_images": float(len(images))})
    if images:
        tracker.log_dict({"count": len(images), "images": images}, "data/skipped_images.json")


def _finish(cfg: ExperimentConfig, trainer: Trainer, result: TrainResult, tracker: Tracker | None,
            register_as: str | None, found: dict | None = None) -> None:
    """Per-joint table, figures, the best checkpoint as an artifact and a registered model version; ``found``:
    what ``multiview.correct: auto`` found per checkpoint (:func:`mend_found_groups`), into the summary and MLflow."""
    from animalpose import plots

    out = result.out_dir
    schema = trainer.schema
    summary = {"best_score": result.best_score, "selection": trainer.select_key, "epochs": len(result.history),
               "images_per_s": result.images_per_second, "history": result.history,
               "data_skipped": result.data_skipped, "images_skipped": result.images_skipped}
    if found is not None:
        summary["multiview_found"] = found
        if tracker and tracker.active:
            tracker.log_dict(found, "multiview/found.json")
    if trainer.last_per_joint is not None:
        summary["per_joint_pck@0.05"] = per_joint_table(schema, trainer.last_per_joint)
    _write_json(out / "summary.json", summary)
    figures = {}
    series = {k: [(h["epoch"], h[k]) for h in result.history if k in h and h[k] == h[k]]
              for k in ("train/loss", "val/loss", "val/pck@0.05")}
    figures["learning_curves.png"] = plots.learning_curve_figure(series)
    if trainer.last_per_joint is not None:
        figures["per_joint_pck.png"] = plots.per_joint_figure(per_joint_table(schema, trainer.last_per_joint),
                                                              "validation PCK@0.05 (crop) per joint")
    pictures = _prediction_pictures(cfg, trainer)
    if pictures is not None:
        figures["predictions.png"], figures["heatmaps.png"] = pictures
    for fname, fig in figures.items():
        plots.save_figure(fig, out / "plots" / fname)
        if tracker:
            tracker.log_figure(fig, f"plots/{fname}")
    if tracker and tracker.active:
        if trainer.last_per_joint is not None:
            tracker.log_table(per_joint_table(schema, trainer.last_per_joint), "tables/val_pck_per_joint.json")
        best = result.best_checkpoint or result.last_checkpoint
        tracker.log_artifact(best, "model")
        tracker.log_artifact(out / "summary.json")
        name = register_as or f"{cfg.tracking.experiment}-{cfg.model.name}"
        version = tracker.register_model(f"model/{best.name}", name, tags={"schema": schema.name},
                                         description=version_description(cfg, trainer, result))
        if version:
            tracker.set_tags({"registered_model": f"{name}/{version}"})


def version_description(cfg: ExperimentConfig, trainer: Trainer, result: TrainResult) -> str:
    """The registry text of a trained model: its validation scores and the data behind them."""
    last = result.history[-1] if result.history else {}
    scores = ", ".join(f"{k.removeprefix('val/').replace('pck@', 'PCK@')} {100 * v:.1f} %" for k, v in last.items()
                       if k.startswith("val/") and "pck@" in k and v == v)
    selection = (f"best epoch by {trainer.select_key} = {100 * result.best_score:.1f} %"
                 if trainer.select_key and result.best_score is not None else "last epoch kept")
    return (f"{cfg.model.name} ({trainer.schema.name}), {len(result.history)} epochs; {selection}. "
            f"Last epoch on validation: {scores or 'no validation set'}. "
            f"Trained on: {', '.join(str(p) for p in cfg.data.train)}. "
            f"Validated on: {', '.join(str(p) for p in cfg.data.val) or 'none'}.")


@torch.no_grad()
def _prediction_pictures(cfg: ExperimentConfig, trainer: Trainer, n: int = 8):
    """(prediction grid, heatmaps of the first crop) on a fixed set of validation crops (the first ``n``)."""
    from animalpose import plots
    from animalpose.engine.inference import final_heatmaps, unwrap

    if not trainer.val_sets:
        return None
    ds = next(iter(trainer.val_sets.values()))
    samples = [s for s in (ds[i] for i in range(min(n, len(ds)))) if s]  # skipped images are falsy
    if not samples:
        return None
    module = trainer.ema.module if trainer.ema is not None else unwrap(trainer.model)
    module.eval()
    images = torch.stack([s["image"] for s in samples]).to(trainer.device)
    hm = final_heatmaps(module, images, trainer.flip_perm, trainer.flip_shift)
    codec = make_codec(cfg)
    coords, maxvals = codec.decode(hm.cpu())
    hm = torch.as_tensor(codec.score_maps(hm.cpu().numpy()))  # one map per joint (G-RMI: its Hough maps)
    crops = [ds.normalization.denormalize(s["image"]) for s in samples]
    preds = [np.concatenate([c, m[:, None]], 1) for c, m in zip(coords, maxvals, strict=True)]
    gts = [s["meta"]["crop_keypoints"].numpy() for s in samples]
    grid = plots.prediction_grid_figure(crops, preds, gts, trainer.schema.skeleton,
                                        title="validation predictions (rings: ground truth)")
    return grid, plots.heatmap_figure(crops[0], hm[0].cpu().numpy(), trainer.schema.joints)
