"""`animalpose bench multiview-real`: the multi-view correction (:mod:`animalpose.engine.multiview`) on the real
mirror-mouse frames, for the models of an `animalpose bench ccssl-real --project mirror-mouse` run.

Each (seed, arm)'s final checkpoint (the supervised model's ``last.ckpt``, an adapted arm's last round) is scored
on the labelled val and test frames twice: as the network predicts (what ``ccssl-real`` reports) and mended with
the views' subspace fitted on the same training labels as the model (``OUT/mirror-mouse/data/train.json``) under
the ``multiview:`` section of the project's experiment config (configs/experiments/mirror_mouse.yaml: the four
paws, the bottom view as reference). Nothing is trained: a checkpoint trained before ``multiview:`` existed is
mended the way a model trained with it mends itself (``evaluate``, ``predict``). Per (seed, arm) the scores are
cached in ``<arm folder>/multiview.json`` (keyed by the checkpoint's size and time and the correction's settings);
the summary is ``OUT/mirror-mouse/multiview_real_bench.json``: raw and mended mean ± std over seeds, the paired
mended − raw difference per arm and each arm's mended error against the mended control.

``--correct auto`` mends as ``multiview.correct: auto`` does (:func:`animalpose.engine.train.mend_found_groups`):
each (seed, arm)'s own model's raw predictions on the val frames (with ``--calibrate-on half``, the calibration half
alone, so that the other half is scored on frames the search never read) name the groups it swaps in at least
``--confusion`` of them and the view to keep (:func:`~animalpose.engine.multiview.look_alike`), on the same views'
subspace; cached apart (``multiview_auto.json``, with the groups found), summary
``multiview_real_{bench,screen}_auto.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import typer

from animalpose.atomic import write_json_atomic
from animalpose.config import ExperimentConfig, load_config, to_dict
from animalpose.data.readers import read_dataset
from animalpose.data.records import PoseRecord
from animalpose.engine.multiview import MultiviewCorrection, found_correction, look_alike, multiview_correction
from animalpose.errors import DataError
from animalpose.keypoints import KeypointSchema, load_schema
from flows.benchmarks.ccssl_real import (
    PROJECTS,
    BenchSettings,
    check_calibrate_on,
    keypoint_metrics,
    mirror_val_ranges,
    predict_original,
    prepare,
)
from flows.benchmarks.harness import SEEDS_HELP, Stopwatch, echo_result, paired, parse_seeds, read_json, stats

PROJECT = "mirror-mouse"
DEFAULT_ARMS = ("supervised", "control", "ccssl")
#: how ``--correct`` mends: the experiment config's named groups, or each model's own found on val
CORRECT = ("named", "auto")


def arm_checkpoint(folder: Path, screen: bool = False) -> Path:
    """The checkpoint a ``ccssl-real`` arm folder's result scores: ``last.ckpt`` of the supervised arm, the last
    round's of an adapted one, after a full run (``result.json``) or a ``screen`` (``screen.json``); DataError
    naming the folder when the arm has not finished."""
    if (folder / "last.ckpt").is_file():
        return folder / "last.ckpt"
    name = "screen.json" if screen else "result.json"
    result = folder / name
    if not result.is_file():
        raise DataError(str(folder), name, "the arm has not finished (run `animalpose bench ccssl-real` "
                                           f"{'--screen ' if screen else ''}with the same --out first)")
    rounds = read_json(result).get("rounds") or []
    ckpt = folder / "run" / f"round_{len(rounds) - 1}.ckpt"
    if not rounds or not ckpt.is_file():
        raise DataError(str(folder), "run", f"no checkpoint of the last round ({ckpt.name})")
    return ckpt


def fit_project_correction(cfg: ExperimentConfig, train_json: Path, schema: KeypointSchema) -> MultiviewCorrection:
    """The experiment config's ``multiview:`` correction fitted on the labelled frames of ``train_json``."""
    if not cfg.multiview.correct:
        raise DataError("<config>", "multiview.correct", "the project's experiment config mends nothing")
    records = [r for r in read_dataset(train_json, "coco", schema).records if (r.keypoints[:, 2] > 0).any()]
    return multiview_correction(cfg, records, schema)


def score_arm(folder: Path, records: dict[str, list], correction: MultiviewCorrection, key: dict,
              screen: bool = False, found_on: list[PoseRecord] | None = None, confusion: float | None = None,
              schema: KeypointSchema | None = None) -> dict:
    """``{"val"|"test": {"raw": metrics, "mended": metrics}}`` of the arm in ``folder`` (cached, module docstring;
    a ``screen``: val alone, its own cache). ``found_on``: ``--correct auto``, the labelled frames on which the
    arm's model finds its own groups (at rate ``confusion``) to mend on ``correction``'s subspace; then
    ``"found"`` holds what it found."""
    ckpt = arm_checkpoint(folder, screen)
    stat = ckpt.stat()
    key = {**key, "checkpoint": ckpt.name, "checkpoint_bytes": stat.st_size, "checkpoint_mtime_ns": stat.st_mtime_ns}
    auto = "_auto" if found_on is not None else ""
    cache = folder / (f"multiview{auto}_screen.json" if screen else f"multiview{auto}.json")
    if cache.is_file():
        doc = read_json(cache)
        if doc.get("settings") == key:
            return doc["scores"]
    scores = {}
    if found_on is not None:
        views = [[schema.joints[k] for k in row] for row in correction.prior.views]
        found = look_alike(predict_original(ckpt, found_on), np.stack([r.keypoints for r in found_on]), views, schema,
                           confusion)
        scores["found"] = found
        correction = found_correction(correction.prior, found, views)
    for split, recs in records.items():
        pred = predict_original(ckpt, recs)
        gt = np.stack([r.keypoints for r in recs])
        mended = pred if correction is None else correction.apply(pred)  # None: auto found no group to mend
        scores[split] = {"raw": keypoint_metrics(pred, gt), "mended": keypoint_metrics(mended, gt)}
    write_json_atomic(cache, {"settings": key, "scores": scores}, indent=2)
    return scores


def summarise(per_seed: list[dict], arms: Sequence[str], split: str = "test") -> dict:
    """Mean ± std per arm of the raw and mended pixel error (and PCK@0.05) on ``split`` (test; val for a screen),
    the paired mended − raw difference, each arm's mended error against the mended control (paired per seed), and
    beside test the val errors."""
    def col(arm: str, kind: str, metric: str = "pixel_error", on: str = split) -> list[float]:
        return [s["arms"][arm][on][kind][metric] for s in per_seed]

    rows = {}
    for arm in arms:
        rows[arm] = {f"{kind}_{metric}": stats(col(arm, kind, metric), 0.0) for kind in ("raw", "mended")
                     for metric in ("pixel_error", "pixel_error_median", "pck@0.05")}
        if split == "test":
            rows[arm]["val_raw_pixel_error"] = stats(col(arm, "raw", on="val"), 0.0)
            rows[arm]["val_mended_pixel_error"] = stats(col(arm, "mended", on="val"), 0.0)
        rows[arm]["mended_minus_raw"] = paired(col(arm, "mended"), col(arm, "raw"), 0.0)
        if "control" in arms and arm != "control":
            rows[arm]["mended_minus_control_mended"] = paired(col(arm, "mended"), col("control", "mended"), 0.0)
    return rows


def run_bench(out: Path, seeds: list[int], arms: Sequence[str] = DEFAULT_ARMS,
              settings: BenchSettings | None = None, screen: bool = False, correct: str = "named",
              confusion: float | None = None) -> dict:
    """Score every (seed, arm) of ``out``'s mirror-mouse ``ccssl-real`` run raw and mended (module docstring);
    ``settings``: the ccssl-real run's (default: its defaults), for its split, data and val halving; ``screen``: the
    arms of a ``ccssl-real --screen`` run, on val alone (``multiview_real_screen.json``); ``correct``: ``named``
    (the experiment config's groups) or ``auto`` (each model's own, found on val at rate ``confusion``, default
    the config's ``multiview.confusion``)."""
    if correct not in CORRECT:
        raise ValueError(f"correct: {correct!r} is not one of {', '.join(CORRECT)}")
    clock = Stopwatch()
    settings = settings or BenchSettings(project=PROJECT)
    if settings.project != PROJECT:
        raise ValueError(f"multiview-real scores the {PROJECT} project, not {settings.project}")
    root = Path(out).resolve() / PROJECT
    spec = PROJECTS[PROJECT]
    prep = prepare(settings, root)  # the split of ccssl-real's default settings, reused where it was written
    cfg = load_config(spec.experiment, ExperimentConfig)
    schema = load_schema(cfg.data.schema_name)
    correction = fit_project_correction(cfg, prep.train, schema)
    key = {"multiview": to_dict(cfg)["multiview"], "train": str(prep.train)}
    records = {"val": prep.val_records} if screen else {"val": prep.val_records, "test": prep.test_records}
    found_on = None
    if correct == "auto":
        confusion = cfg.multiview.confusion if confusion is None else confusion
        found_on = ([r for r in read_dataset(prep.calibration, "coco", schema).records
                     if (r.keypoints[:, 2] > 0).any()] if prep.calibration else prep.val_records)
        key.update(correct="auto", confusion=confusion, found_on=str(prep.calibration or prep.val))
    per_seed = []
    for seed in seeds:
        per_seed.append({"seed": seed, "arms": {
            arm: score_arm(root / f"seed_{seed}" / arm, records, correction, key, screen, found_on, confusion, schema)
            for arm in arms}})
    result = {"benchmark": "multiview-real", "project": PROJECT, "split": prep.split, "seeds": list(seeds),
              "arms": list(arms), "multiview": key["multiview"], "scored": "val" if screen else "test",
              "correct": correct, **({"confusion": confusion, "found_on": key["found_on"],
                                      "found_on_frames": len(found_on)} if found_on is not None else {}),
              "reference_view": list(correction.reference), "epsilon_px": correction.prior.epsilon,
              "per_seed": per_seed, "summary": summarise(per_seed, arms, "val" if screen else "test"),
              **clock.total(), "threads": torch.get_num_threads()}
    name = f"multiview_real_{'screen' if screen else 'bench'}{'_auto' if found_on is not None else ''}.json"
    write_json_atomic(root / name, result, indent=2)
    return result


def format_table(result: dict) -> str:
    if result.get("scored") == "val":  # a screen: val alone, and each arm against the control per seed
        lines = ["| arm | val px raw | val px mended | mended − raw | mended − control's, per seed |",
                 "|---|---|---|---|---|"]
        for arm, row in result["summary"].items():
            vs = row.get("mended_minus_control_mended")
            per = ", ".join(f"{v:+.2f}" for v in vs["values"]) if vs else "-"
            lines.append(f"| {arm} | {row['raw_pixel_error']['mean']:.2f} ± {row['raw_pixel_error']['std']:.2f} | "
                         f"{row['mended_pixel_error']['mean']:.2f} ± {row['mended_pixel_error']['std']:.2f} | "
                         f"{row['mended_minus_raw']['mean']:+.2f} | {per} |")
        return "\n".join(lines)
    lines = ["| arm | test px raw | test px mended | mended − raw | val px raw | val px mended | PCK@0.05 "
             "raw → mended |", "|---|---|---|---|---|---|---|"]
    for arm, row in result["summary"].items():
        def ms(s: dict) -> str:
            return f"{s['mean']:.2f} ± {s['std']:.2f}"
        lines.append(f"| {arm} | {ms(row['raw_pixel_error'])} | {ms(row['mended_pixel_error'])} | "
                     f"{ms(row['mended_minus_raw'])} | {ms(row['val_raw_pixel_error'])} | "
                     f"{ms(row['val_mended_pixel_error'])} | {row['raw_pck@0.05']['mean']:.3f} → "
                     f"{row['mended_pck@0.05']['mean']:.3f} |")
    return "\n".join(lines)


def bench_command(
    out: Path = typer.Option(Path("runs/bench/ccssl_real"), help="The `bench ccssl-real` output folder whose "
                                                                 "mirror-mouse models to score."),
    seeds: str = typer.Option("0,1,2", "--seeds", help=SEEDS_HELP),
    arms: str = typer.Option(",".join(DEFAULT_ARMS), help="Comma-separated arm folders of each seed."),
    mirror_val: str = typer.Option("", help="The ccssl-real run's --mirror-val FIRST,LAST (default 51,60)."),
    calibrate_on: str = typer.Option("val", help="The ccssl-real run's --calibrate-on (val or half: then only the "
                                     "frames no rule calibrated on are scored)."),
    screen: bool = typer.Option(False, "--screen", help="The arms of a ccssl-real --screen run: val alone."),
    correct: str = typer.Option("named", help="named: the experiment config's groups; auto: each model's own, the "
                                "parts it swaps on val (the calibration half with --calibrate-on half), as "
                                "multiview.correct: auto finds them."),
    confusion: float = typer.Option(None, help="--correct auto: the rate at which a pair counts as swapped "
                                    "(default: the config's multiview.confusion)."),
    threads: int = typer.Option(1, help="torch threads."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Mirror-mouse: the ccssl-real models' val and test pixel error raw and mended with the views' geometry."""
    torch.set_num_threads(threads)
    arm_list = [a.strip() for a in arms.split(",") if a.strip()]
    if not arm_list:
        raise typer.BadParameter("name at least one arm", param_hint="--arms")
    check_calibrate_on(calibrate_on)
    if correct not in CORRECT:
        raise typer.BadParameter(f"{correct!r}: choose {' or '.join(CORRECT)}", param_hint="--correct")
    if confusion is not None and not 0 < confusion <= 1:
        raise typer.BadParameter(f"{confusion}: a rate in (0, 1]", param_hint="--confusion")
    ranges = mirror_val_ranges(mirror_val, PROJECT) if mirror_val else {}
    settings = BenchSettings(project=PROJECT, calibrate_on=calibrate_on, **ranges)
    result = run_bench(out, parse_seeds(seeds), arm_list, settings, screen=screen, correct=correct,
                       confusion=confusion)
    mended = (f"each model's own groups, found on {result['found_on_frames']} val frames at rate "
              f"{result['confusion']:g}" if correct == "auto" else f"reference view {result['reference_view']}")
    echo_result(result, as_json, format_table(result),
                f"mirror-mouse: {result['split']}; mended with {mended}, epsilon {result['epsilon_px']:.1f} px; "
                f"{len(result['seeds'])} seeds, {result['wall_seconds']} s wall")
