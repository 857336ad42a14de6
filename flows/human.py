"""The ``human`` flow: human pose training and evaluation (COCO 17 keypoints, or MPII).

    train_data = COCO (or MPII) when given, else synth(human)     # the human template emits coco 17
    model      = train(train_data, val_data)                       # engine.train, resumable
    metrics    = evaluate(model, val_data)                          # OKS AP/AR, PCK, PCKh
    register(model)                                                 # by engine.train after it finished
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from animalpose.errors import ConfigError
from animalpose.paths import data_home
from animalpose.threads import configure_threads
from flows.common import adopt, markdown_table, parent_tracker, publish, run_link, stage
from flows.evaluate import evaluate
from flows.presets import load_preset
from flows.pretrain import make_dataset, pretrain, train_config


@flow(name="human", log_prints=True)
def human_flow(
    dataset: str = "coco",
    preset: str = "quick",
    train_data: list[Path] | None = None,
    val_data: Path | None = None,
    model: str | None = None,
    epochs: int | None = None,
    tracking_uri: str | None = None,
    experiment: str = "human",
    out_dir: Path | None = None,
    threads: int | None = None,
) -> dict:
    """Train and evaluate a human pose model on ``train_data`` (default: generated humans, coco schema)."""
    configure_threads(threads)  # torch threads / loader workers that fit the free cores
    if dataset != "coco" and not (train_data and val_data):
        raise ConfigError("<human flow>", "train_data", f"the generator emits coco keypoints only: give "
                          f"{dataset} train_data and val_data")
    p = load_preset(preset)
    out = Path(out_dir) if out_dir else data_home() / "flows" / "human" / dataset / Path(preset).stem
    parent = parent_tracker(experiment, f"human-{dataset}", tracking_uri, {"dataset": dataset})
    try:
        with stage(parent, "synth"):
            train = list(train_data) if train_data else make_dataset("human", p.source, p.seed, "human")
            val = Path(val_data) if val_data else make_dataset("human", p.source_val, p.seed + 1, "human-val")[0]
        cfg, where = train_config(p, train, [val], epochs=epochs or p.pretrain_epochs, model=model,
                                  tracking_uri=parent.uri, experiment=experiment, seed=p.seed)
        # the human schema (coco 17, mpii 16) replaces the preset's animal one; the head follows it
        cfg = {**cfg, "data": {**cfg["data"], "schema": dataset}, "model": {**cfg["model"], "num_joints": None}}
        with stage(parent, "train") as st:
            res = pretrain(cfg, where, out, f"human-{dataset}", register_as=f"human-{dataset}")
            adopt(st, res["run_id"])
        with stage(parent, "evaluate") as st:
            ev = evaluate(Path(res["checkpoint"]), val, p.eval_batch_size, dataset)
            st.log_metrics(ev["metrics"])
        parent.log_metrics(ev["metrics"])
        rows = [[k, v] for k, v in sorted(ev["metrics"].items())]
        publish(f"human-{dataset}", f"# human pose ({dataset})\n\n{markdown_table(['metric', 'value'], rows)}\n"
                f"MLflow run: {run_link(parent)}\n")
        parent.end("FINISHED")
        return {"metrics": ev["metrics"], "checkpoint": res["checkpoint"], "mlflow_run_id": parent.run_id}
    except BaseException as exc:
        parent.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
