"""`animalpose evaluate --checkpoint CKPT [--checkpoint CKPT2 ...] --data PATH [--protocol reference] [--json]`.

Animal-Pose release, horse test split, a TigDog-schema checkpoint scored on the shared joints::

    animalpose evaluate --checkpoint best.ckpt --data animal-pose/keypoints.json --category horse \
        --split-file animal-pose/splits.json --split test --mapping auto --json

A number to set beside the CC-SSL reference's published PCK: ``--protocol reference`` (no flip test,
batches of 6, the reference's batch-averaged PCK@0.05 as ``pck_crop@0.05_ref_b6``).
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from animalpose.cli.options import threads_option
from animalpose.jsonout import dumps

app = typer.Typer(help="Evaluate a checkpoint on a labelled dataset (PCK crop/bbox, PCKh, OKS AP).")


@app.callback(invoke_without_command=True, context_settings={"allow_interspersed_args": True})
def evaluate(
    checkpoint: list[Path] = typer.Option(..., "--checkpoint", help="A checkpoint written by `animalpose train`; "
                                          "several: their ensemble (the members' median per keypoint, as predict "
                                          "writes it), scored in original pixels beside each member."),
    data: Path = typer.Option(..., "--data", help="Labelled dataset (COCO JSON, folder, DLC csv, ...)."),
    format: str = typer.Option("auto", help="Dataset format (auto, coco, animalpose-release, tigdog, ccssl, mpii, "
                                             "dlc, slp)."),
    split: str = typer.Option(None, help="Keep only this split of the dataset (of --split-file when given)."),
    category: list[str] = typer.Option([], "--category", help="Keep this species (repeatable), e.g. horse."),
    split_file: Path | None = typer.Option(None, "--split-file", exists=True, dir_okay=False,
                                           help="{species: {split: [image ids]}} (Animal-Pose splits.json)."),
    mapping: str | None = typer.Option(None, "--mapping", help="Score a dataset of another schema on the joints "
                                       "a table maps: 'auto' (configs/keypoints/mappings) or a table's path."),
    protocol: str = typer.Option("default", help="default: flip test, batch 16, pooled PCK. reference: the CC-SSL "
                                 "reference's evaluation/test.py (no flip, batch 6, every instance kept, its "
                                 "batch-averaged PCK as pck_crop@0.05_ref_b<batch>)."),
    flip: bool | None = typer.Option(None, "--flip/--no-flip", help="Flip test (default: the protocol's)."),
    batch_size: int | None = typer.Option(None, help="Evaluation batch size (default: the protocol's, 16 or 6)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (metrics, per_joint, ...); a metric with "
                                 "nothing to score (NaN) is null."),
    tracking: bool = typer.Option(False, help="Record the evaluation as an MLflow run."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip records that fail validation (NaN, bad "
                                  "visibility, empty box, missing image, ...) and report them, instead of stopping."),
    allow_outside_root: bool = typer.Option(False, "--allow-outside-root", help="Read images whose paths resolve "
                                            "outside the dataset's image root (.., absolute, symbolic links; e.g. "
                                            "a `data subset` file)."),
    multiview: bool = typer.Option(True, help="A multi-view model (trained with multiview.correct) mends its "
                                   "predictions with the views' geometry before scoring; --no-multiview scores "
                                   "the raw network output."),
    threads: int = threads_option(),
) -> None:
    """Print every metric and the per-joint PCK@0.05 (crop) table."""
    from animalpose.threads import configure_threads

    configure_threads(threads)
    from animalpose.engine.evaluate import evaluate as run_eval
    from animalpose.engine.evaluate_ensemble import evaluate_ensemble

    options = {"format": format, "split": split, "batch_size": batch_size, "flip": flip, "protocol": protocol,
               "device": device, "progress": not as_json, "categories": category or None, "split_file": split_file,
               "mapping": mapping, "skip_bad": skip_bad, "allow_outside_root": allow_outside_root,
               "multiview": multiview}
    ensemble = len(checkpoint) > 1
    result = evaluate_ensemble(checkpoint, data, **options) if ensemble else run_eval(checkpoint[0], data, **options)
    name = checkpoint[0].stem if not ensemble else f"{checkpoint[0].stem}-ensemble-of-{len(checkpoint)}"
    if tracking:
        from animalpose.provenance import data_tags
        from animalpose.tracking import Tracker

        with Tracker("evaluate", f"{name}@{data.name}",
                     tags={"stage": "evaluate", "checkpoint": ",".join(map(str, checkpoint)), "protocol": protocol,
                           **data_tags([data])}) as tr:
            tr.log_metrics(result["metrics"])
            if result["skipped"]["records"] or result["skipped"]["problems"]:
                tr.log_metrics({"data/skipped_records": float(result["skipped"]["records"])})
                tr.log_dict(result["skipped"], "data/skipped.json")
            for name, table in result["per_joint_tables"].items():
                tr.log_table(table, f"tables/{name.replace('@', '_at_')}.json")
    if as_json:
        typer.echo(dumps(result))
        return
    from animalpose.evaluation import format_table

    if "common_joints" in result:
        typer.echo(f"scored on {len(result['common_joints'])} joints shared with {result['dataset_schema']}: "
                   + ", ".join(f"{k}={v}" if k != v else k for k, v in result["common_joints"].items()))
    if result["multiview"]:
        groups = "; ".join(", ".join(g) for g in result["multiview_groups"])
        typer.echo(f"predictions mended with the model's multi-view geometry: {groups} (--no-multiview: raw)")
    for group in result.get("look_alike", {}).get("groups", []):
        errors = ", ".join(f"view {v} {e:.2f} px" for v, e in enumerate(group["view_error_px"]) if e is not None)
        typer.echo(f"look-alike parts (swapped in >= {result['look_alike']['min_rate']:g} of these frames in some "
                   f"view): {', '.join(group['parts'])}; their error by view: {errors} (to mend them: "
                   f"multiview.correct: [[{', '.join(group['parts'])}]], multiview.reference: {group['reference']}; "
                   "or multiview.correct: auto)")
    if ensemble:
        members = ", ".join(f"{Path(m['checkpoint']).parent.name}/{Path(m['checkpoint']).name} "
                            f"{m['pixel_error_mean']:.2f} px" for m in result["ensemble"]["members"])
        typer.echo(f"ensemble of {len(checkpoint)}: {result['metrics']['pixel_error_mean']:.2f} px mean pixel error; "
                   f"its members alone: {members}; their spread: {result['ensemble']['spread_px_mean']:.2f} px")
    for k, v in result["metrics"].items():
        typer.echo(f"{k:<24} {v:.4f}" if isinstance(v, float) and math.isfinite(v) else f"{k:<24} n/a")
    typer.echo(format_table(result["per_joint"], "PCK@0.05 (bbox)" if ensemble else "PCK@0.05 (crop)"))
    if result["skipped"]["records"]:
        typer.echo(f"skipped {result['skipped']['records']} bad records (--skip-bad) from "
                   f"{', '.join(result['skipped']['files'])}", err=True)
