"""The ``wscda`` flow: WS-CDA (Cao et al., "Cross-Domain Adaptation for Animal Pose Estimation", ICCV 2019).

Pseudo-code, one Prefect task per step:

    human            = synth(human) or COCO                  # human source domain (coco 17)
    animals_labelled = synth(species, cad), few of them      # weakly supervised animal source
    target           = synth(species, photo) unlabelled      # the unseen species / domain
    model = wscda(human, animals_labelled, target)           # adversarial: alpha·L_DDL + beta·L_pose,
                                                             # alpha = -1, beta = 500; then PPLO rounds
    pck   = evaluate(model, target_test)
    register(model)

The library entry point is :func:`animalpose.adapt.wscda.run.run_wscda`, resumable in its output
folder (``state.json``); the training settings come from the preset's ``wscda_config`` (e.g.
``configs/adapt/wscda_quick.yaml``: SimpleBaseline-18, Animal-Pose 20 joints, human source in COCO).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import INPUTS

from animalpose.errors import ConfigError
from animalpose.paths import data_home
from flows.ccssl import seed_plan
from flows.common import FileStamps, markdown_table, parent_tracker, publish, retry_transient, run_link, stage
from flows.evaluate import PCK, evaluate
from flows.presets import FlowPreset, config_with, load_preset
from flows.pretrain import make_dataset


def wscda_config(preset: FlowPreset, *, human: list[Path], animals: list[Path], target: list[Path], test: Path,
                 rounds: int, model: str | None, tracking_uri: str, experiment: str, seed: int) -> tuple[dict, str]:
    """The library's WSCDAConfig for this flow run, as a plain dict (a stable cache key) and its source file."""
    from animalpose.adapt.wscda.run import WSCDAConfig
    from animalpose.config import to_dict

    if preset.wscda_config is None:
        raise ConfigError("<flow preset>", "wscda_config", "this flow preset names no WS-CDA config")
    values: dict = {"data.train": list(animals), "data.val": [test], "data.target": list(target),
                    "wscda.human": list(human), "wscda.pplo_rounds": rounds, "wscda.target_val": [test],
                    "train.seed": seed, "tracking.uri": tracking_uri, "tracking.experiment": experiment}
    if model:
        values["model.name"] = model
    cfg = config_with(preset.wscda_config, WSCDAConfig, preset.wscda_overrides, values)
    return to_dict(cfg), str(preset.wscda_config)


@task(name="wscda", cache_policy=(INPUTS - "tracker") + FileStamps(), persist_result=True, retries=1,
      retry_delay_seconds=5, retry_condition_fn=retry_transient)
def wscda(cfg_dict: dict, where: str, out_dir: Path, tracker=None) -> dict:
    """Adversarial WS-CDA training then its PPLO rounds (``run_wscda``, resumable in ``out_dir``)."""
    from animalpose.adapt.wscda.run import WSCDAConfig, run_wscda
    from animalpose.config import parse_config

    cfg = parse_config(cfg_dict, WSCDAConfig, where=where, base_dir=Path(where).parent)
    result = run_wscda(cfg, out_dir, tracker=tracker, progress=False)
    if result.last_checkpoint is None:
        raise RuntimeError(f"run_wscda wrote no checkpoint in {out_dir}")
    return {"checkpoint": str(result.last_checkpoint), "rounds": list(result.rounds), "wscda": dict(result.wscda)}


@flow(name="wscda", log_prints=True)
def wscda_flow(
    species: str = "horse",
    preset: str = "quick",
    rounds: int | None = None,
    human_data: list[Path] | None = None,
    animal_data: list[Path] | None = None,
    target_data: list[Path] | None = None,
    test_data: Path | None = None,
    model: str | None = None,
    tracking_uri: str | None = None,
    experiment: str = "wscda",
    register_as: str | None = None,
    out_dir: Path | None = None,
    dask_workers: int = 0,
) -> dict:
    """WS-CDA for ``species``: human + few labelled animals → unlabelled target, then PPLO rounds."""
    p = load_preset(preset)
    n_rounds = rounds or p.rounds
    out = Path(out_dir) if out_dir else data_home() / "flows" / "wscda" / species / Path(preset).stem
    name = register_as or f"wscda-{species}"
    parent = parent_tracker(experiment, f"wscda-{species}", tracking_uri, {"species": species, "preset": str(preset)})
    seeds = seed_plan(p.seed)  # the CC-SSL flow's target and test seeds, so both flows test on the same animals
    try:
        with stage(parent, "synth"):
            human = list(human_data) if human_data else make_dataset("human", p.source, p.seed, "human",
                                                                     dask_workers=dask_workers)
            animals = list(animal_data) if animal_data else make_dataset(species, p.source_val, p.seed, "few")
            target = list(target_data) if target_data else make_dataset(species, p.target, seeds.target, "target",
                                                                        dask_workers=dask_workers)
            test = Path(test_data) if test_data else make_dataset(species, p.target_test, seeds.test, "test")[0]
        cfg, where = wscda_config(p, human=human, animals=animals, target=target, test=test, rounds=n_rounds,
                                  model=model, tracking_uri=parent.uri, experiment=experiment, seed=p.seed)
        with stage(parent, "wscda") as st:
            res = wscda(cfg, where, out / "wscda", tracker=st)
        with stage(parent, "evaluate") as st:
            ev = evaluate(Path(res["checkpoint"]), test, p.eval_batch_size, cfg["data"]["schema"])
            pck = float(ev["metrics"][PCK])
            st.log_metrics({PCK: pck})
        parent.log_metrics({PCK: pck})
        with stage(parent, "register") as st:
            ckpt = Path(res["checkpoint"])
            parent.log_artifact(ckpt, "model")
            version = parent.register_model(f"model/{ckpt.name}", name, tags={"species": species, "method": "wscda"})
            st.set_tags({"registered_model": f"{name}/{version}"})
        summary = {"species": species, "pck": pck, "rounds": res["rounds"], "model_name": name,
                   "model_version": version, "mlflow_run_id": parent.run_id}
        table = markdown_table(["model", "PCK@0.05 (crop) on target test"], [[f"WS-CDA + {n_rounds} PPLO rounds", pck]])
        publish(f"wscda-{species}", f"# WS-CDA {species}\n\n{table}\nMLflow run: {run_link(parent)}\n")
        parent.end("FINISHED")
        return summary
    except BaseException as exc:
        parent.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
