"""The ``retrain`` flow: scheduled retraining on newly arrived target data, behind a champion gate.

    new = detect_new_data(folder)                      # TargetWatcher: content fingerprints vs seen-state
    if not new: report "nothing new", stop             # no training, no new model version
    challenger = adapt(folder, start=models:/<name>@champion)   # the ccssl (or wscda) flow, registered
    decision = champion_gate(challenger, eval set)     # both scored on the same fixed evaluation set;
                                                       # alias `champion` moves only on a strict win
    mark_seen(new)                                     # only after success: a crash sees the files again
    artifact: which won, by how much

The deployments ``retrain/<method>-<species>`` run this flow on a weekly cron schedule (see
:mod:`flows.deployments`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from animalpose.data.watch import TargetWatcher
from animalpose.paths import data_home
from animalpose.registry import GateDecision, current_champion, promote_if_better
from animalpose.threads import configure_threads
from animalpose.tracking import resolve_uri
from flows.common import parent_tracker, publish, retry_transient, run_link, stage
from flows.evaluate import PCK, evaluate, resolve_checkpoint
from flows.presets import load_preset

Method = Literal["ccssl", "wscda"]


def default_folder(species: str) -> Path:
    """Where new target images or videos for ``species`` are dropped: ``<data home>/incoming/<species>``."""
    return data_home() / "incoming" / species


def default_state_file(method: str, species: str) -> Path:
    return data_home() / "watch" / f"{method}-{species}.json"


@task(name="detect-new-data", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5,
      retry_condition_fn=retry_transient)
def detect_new_data(folder: Path, state_file: Path) -> dict:
    """New or changed files in ``folder`` and the fingerprint of its whole content."""
    watcher = TargetWatcher(folder, state_file)
    return {"new": watcher.new_files(), "fingerprint": watcher.dataset_fingerprint()}


@task(name="prepare-target", cache_policy=NO_CACHE)
def prepare_target(folder: Path, out_dir: Path, schema: str) -> list[Path]:
    """The watched folder as readable unlabelled target data: its videos, and its images as one COCO file.

    Images become unlabelled records (zero keypoints, the whole image as the box) written with the
    library's COCO writer to ``out_dir/annotations/target.json`` with absolute image paths.
    """
    import numpy as np

    from animalpose.data.coco_writer import write_coco
    from animalpose.data.images import probe_image_size
    from animalpose.data.records import IMAGE_SUFFIXES, VIDEO_SUFFIXES, PoseRecord
    from animalpose.keypoints import load_schema

    sch = load_schema(schema)
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith("."))
    videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
    records = []
    for p in files:
        if p.suffix.lower() in IMAGE_SUFFIXES:
            w, h = probe_image_size(p)
            records.append(PoseRecord(image=str(p.resolve()), keypoints=np.zeros((sch.num_joints, 3), np.float32),
                                      schema=sch.name, bbox=(0.0, 0.0, float(w), float(h)), image_size=(w, h)))
    targets = list(videos)
    if records:
        out_dir = Path(out_dir)
        targets.insert(0, write_coco(records, out_dir / "annotations" / "target.json", sch, image_root=out_dir,
                                     info={"description": f"unlabelled target images from {folder}"}))
    return targets


def adapt_challenger(method: Method, species: str, preset: str, folder: Path, model_name: str,
                     tracking_uri: str, source_model: str | None, fingerprint: str) -> str:
    """Adapt on ``folder`` (from the champion when there is one); returns the new model version."""
    out = data_home() / "flows" / "retrain" / f"{method}-{species}" / fingerprint
    schema = "animalpose" if method == "wscda" else "tigdog"
    target = prepare_target(folder, out / "target", schema)
    if method == "ccssl":
        from flows.ccssl import ccssl_flow

        result = ccssl_flow(species=species, preset=preset, target_data=target, source_model=source_model,
                            oracle=False, tracking_uri=tracking_uri, register_as=model_name, out_dir=out,
                            allow_outside_root=True)
    else:
        from flows.wscda import wscda_flow

        result = wscda_flow(species=species, preset=preset, target_data=target, tracking_uri=tracking_uri,
                            register_as=model_name, out_dir=out, allow_outside_root=True)
    if result.get("model_version") is None:
        raise RuntimeError(f"the {method} flow registered no model version (is tracking at {tracking_uri} up?)")
    return str(result["model_version"])


def score_model(model_uri: str, eval_data: Path, tracking_uri: str) -> float:
    """PCK@0.05 (crop) of a registered model on the fixed evaluation set (in the checkpoint's schema)."""
    from animalpose.engine.checkpoint import load_checkpoint, schema_of

    ckpt = resolve_checkpoint(model_uri, tracking_uri)
    schema = schema_of(load_checkpoint(ckpt)).name
    return float(evaluate(ckpt, Path(eval_data), schema=schema)["metrics"][PCK])


@task(name="champion-gate", cache_policy=NO_CACHE)
def champion_gate(model_name: str, challenger_version: str, eval_data: Path, tracking_uri: str,
                  min_delta: float = 0.0) -> GateDecision:
    """Score challenger and champion on ``eval_data``; move the ``champion`` alias only on a win."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    return promote_if_better(client, model_name, challenger_version,
                             lambda uri: score_model(uri, eval_data, tracking_uri), metric=PCK, min_delta=min_delta)


def default_eval_data(species: str, preset: str) -> Path:
    """The preset's held-out labelled target test set (fixed by its seed), generated when missing."""
    from flows.ccssl import seed_plan
    from flows.pretrain import make_dataset

    p = load_preset(preset)
    return make_dataset(species, p.target_test, seed_plan(p.seed).test, "test")[0]


@flow(name="retrain", log_prints=True)
def retrain_flow(
    species: str = "horse",
    method: Method = "ccssl",
    preset: str = "quick",
    target_folder: Path | None = None,
    eval_data: Path | None = None,
    model_name: str | None = None,
    state_file: Path | None = None,
    min_delta: float = 0.0,
    tracking_uri: str | None = None,
    experiment: str = "retrain",
    threads: int | None = None,
) -> dict:
    """Adapt on new target data when there is some, and promote the result only if it beats the champion.

    Args:
        target_folder: watched folder of target images / videos (default ``<data home>/incoming/<species>``).
        eval_data: the fixed labelled evaluation set (default: the preset's generated target test set).
        model_name: registered model (default ``<method>-<species>``).
        state_file: what the watcher has already used (default ``<data home>/watch/<method>-<species>.json``).
        min_delta: the challenger must win by more than this PCK.

    Returns ``{"status": "no-new-data" | "kept" | "promoted", "decision": {...}, ...}``.
    """
    configure_threads(threads)  # torch threads / loader workers that fit the free cores
    uri = resolve_uri(tracking_uri)
    folder = Path(target_folder) if target_folder else default_folder(species)
    state = Path(state_file) if state_file else default_state_file(method, species)
    name = model_name or f"{method}-{species}"
    found = detect_new_data(folder, state)
    if not found["new"]:
        message = f"No new target data in `{folder}` since the last retraining: nothing to do."
        print(message)
        publish(f"retrain-{method}-{species}", f"# retrain {name}\n\n{message}\n")
        return {"status": "no-new-data", "folder": str(folder), "new_files": []}

    parent = parent_tracker(experiment, f"retrain-{method}-{species}", uri,
                            {"species": species, "method": method, "data.fingerprint": found["fingerprint"]})
    try:
        parent.log_params({"new_files": len(found["new"]), "folder": str(folder), "model_name": name})
        from mlflow import MlflowClient

        champion = current_champion(MlflowClient(tracking_uri=uri), name)
        with stage(parent, "adapt"):
            challenger = adapt_challenger(method, species, preset, folder, name, uri,
                                          f"models:/{name}@champion" if champion else None, found["fingerprint"])
        evaluation = Path(eval_data) if eval_data else default_eval_data(species, preset)
        with stage(parent, "champion-gate") as st:
            decision = champion_gate(name, challenger, evaluation, uri, min_delta)
            st.log_dict(decision.to_dict(), "decision.json")
        parent.log_metrics({"challenger_score": decision.challenger_score,
                            **({"champion_score": decision.champion_score} if decision.champion_score is not None
                               else {})})
        parent.set_tags({"winner": decision.winner, "champion": f"{name}/{decision.challenger_version}"
                         if decision.promoted else f"{name}/{decision.champion_version}"})
        TargetWatcher(folder, state).mark_seen(found["new"])
        publish(f"retrain-{method}-{species}",
                f"# retrain {name}\n\n{len(found['new'])} new file(s) in `{folder}`.\n\n{decision.markdown()}\n"
                f"Evaluation set: `{evaluation}`\n\nMLflow run: {run_link(parent)}\n",
                description=f"{decision.winner} wins")
        parent.end("FINISHED")
        return {"status": "promoted" if decision.promoted else "kept", "decision": decision.to_dict(),
                "new_files": found["new"], "mlflow_run_id": parent.run_id}
    except BaseException as exc:
        parent.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
