"""The ``evaluate`` flow: a checkpoint or a registered model against a labelled dataset.

    checkpoint = resolve(model_uri)             # models:/<name>/<version> or models:/<name>@<alias>
    metrics    = evaluate(checkpoint, data)     # engine.evaluate: PCK (crop, bbox), PCKh, OKS AP

The evaluation task is cached on its inputs and the content stamps of the checkpoint, so the same
model on the same data is scored once.
"""

from __future__ import annotations

import re
from pathlib import Path

from prefect import flow, task

from animalpose.errors import DataError
from animalpose.paths import data_home
from animalpose.threads import configure_threads
from animalpose.tracking import resolve_uri
from flows.common import INPUT_FILES, markdown_table, parent_tracker, publish, retry_transient, run_link, stage

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


def resolve_checkpoint(model_uri: str, tracking_uri: str | None = None, dst: Path | None = None) -> Path:
    """The local checkpoint file of ``models:/<name>/<version>`` or ``models:/<name>@<alias>``.

    Downloads the version's source artifact to ``dst`` (default ``<data home>/models/<name>/v<version>``)
    unless it is there already. Raises DataError naming the URI when it does not resolve.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    m = _MODEL_URI.match(model_uri)
    if not m:
        raise DataError(model_uri, "model_uri", "expected models:/<name>/<version> or models:/<name>@<alias>")
    uri = resolve_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    try:
        mv = (client.get_model_version(m["name"], m["version"]) if m["version"]
              else client.get_model_version_by_alias(m["name"], m["alias"]))
    except MlflowException as exc:
        raise DataError(model_uri, "model_uri", f"not in the registry at {uri}: {exc.message}") from exc
    dst = Path(dst) if dst else data_home() / "models" / m["name"] / f"v{mv.version}"
    name = Path(mv.source.rstrip("/")).name
    if (dst / name).is_file():
        return dst / name
    dst.mkdir(parents=True, exist_ok=True)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(dst), tracking_uri=uri))
    if local.is_dir():
        ckpts = sorted(local.rglob("*.ckpt"))
        if not ckpts:
            raise DataError(model_uri, "source", f"no checkpoint in {mv.source}")
        local = ckpts[0]
    return local


def annotations_for(data: Path, schema: str | None) -> Path:
    """A generated dataset folder holds one COCO file per schema: pick ``annotations/<schema>.json``."""
    data = Path(data)
    candidate = data / "annotations" / f"{schema}.json"
    return candidate if schema and data.is_dir() and candidate.is_file() else data


@task(name="evaluate", cache_policy=INPUT_FILES, persist_result=True, result_serializer="json",
      retries=1, retry_delay_seconds=5,
      retry_condition_fn=retry_transient)
def evaluate(checkpoint: Path, data: Path, batch_size: int | None = None, schema: str | None = None,
             protocol: str = "default", allow_outside_root: bool = False, examples: int = 0) -> dict:
    """``engine.evaluate``: ``{"metrics": {...}, "per_joint": {...}, "instances": n, ...}``.

    ``schema`` picks the matching annotation file of a multi-schema (generated) dataset folder;
    ``protocol="reference"`` scores as the CC-SSL reference's evaluation/test.py (no flip, batch 6 unless
    ``batch_size`` says otherwise, its batch-averaged PCK); ``batch_size`` None takes the protocol's.
    ``allow_outside_root`` reads images outside the dataset's image root (e.g. a `data subset` file).
    ``examples``: also return that many fixed instances with their predictions, for :func:`log_pictures`.
    """
    from animalpose.engine.evaluate import evaluate as run

    return run(checkpoint, annotations_for(data, schema), batch_size=batch_size, protocol=protocol, progress=False,
               allow_outside_root=allow_outside_root, examples=examples)


@task(name="labelled-clip", cache_policy=INPUT_FILES, persist_result=True, result_serializer="json",
      retries=1, retry_delay_seconds=5, retry_condition_fn=retry_transient)
def labelled_clip(checkpoint: Path, video: dict, out: Path, schema: str | None, seconds: float) -> str:
    """A ``seconds``-long labelled GIF of ``video`` (:func:`animalpose.engine.pictures.find_video`) at ``out``."""
    from animalpose.engine.pictures import labelled_clip as draw

    return str(draw(checkpoint, video["data"], video["video"], out, schema, seconds=seconds))


def log_pictures(run, label: str, result: dict) -> None:
    """A stage's pictures on target test into its MLflow run: the gallery of the fixed instances (when
    ``result`` has ``examples``) and the per-joint PCK@0.05 bars (``pictures/target_test_*.png``)."""
    from animalpose.plots import per_joint_figure

    if result.get("examples", {}).get("items"):
        from animalpose.engine.pictures import gallery_figure

        run.log_figure(gallery_figure(result["examples"], f"{label}: target test"),
                       "pictures/target_test_gallery.png")
    run.log_figure(per_joint_figure(result["per_joint"], f"{label}: PCK@0.05 (crop) per joint, target test"),
                   "pictures/target_test_pck_per_joint.png")


PCK = "pck_crop@0.05"


@flow(name="evaluate", log_prints=True)
def evaluate_flow(
    data: Path,
    checkpoint: Path | None = None,
    model_uri: str | None = None,
    tracking_uri: str | None = None,
    experiment: str = "evaluate",
    threads: int | None = None,
) -> dict:
    """Evaluate ``checkpoint`` (or the registered ``model_uri``) on the labelled dataset ``data``."""
    configure_threads(threads)  # torch threads / loader workers that fit the free cores
    if (checkpoint is None) == (model_uri is None):
        raise DataError("<evaluate flow>", "checkpoint", "give exactly one of checkpoint and model_uri")
    parent = parent_tracker(experiment, f"evaluate-{Path(data).name}", tracking_uri,
                            {"data": str(data), "model": str(model_uri or checkpoint)})
    try:
        ckpt = Path(checkpoint) if checkpoint else resolve_checkpoint(model_uri, parent.uri)
        with stage(parent, "evaluate", {"checkpoint": str(ckpt), "data": str(data)}) as st:
            from animalpose.engine.checkpoint import load_checkpoint, schema_of

            result = evaluate(ckpt, Path(data), schema=schema_of(load_checkpoint(ckpt)).name)
            st.log_metrics(result["metrics"])
            st.log_table(result["per_joint"], "tables/pck_per_joint.json")
        parent.log_metrics(result["metrics"])
        rows = [[k, v] for k, v in sorted(result["metrics"].items())]
        publish(f"evaluate-{Path(data).name}",
                f"# evaluate {model_uri or checkpoint} on {data}\n\n{markdown_table(['metric', 'value'], rows)}\n"
                f"MLflow run: {run_link(parent)}\n")
        parent.end("FINISHED")
        return {**result, "mlflow_run_id": parent.run_id}
    except BaseException as exc:
        parent.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
