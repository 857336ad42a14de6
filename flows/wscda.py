"""The ``wscda`` flow: WS-CDA (Cao et al., "Cross-Domain Adaptation for Animal Pose Estimation", ICCV 2019).

Pseudo-code, one Prefect task per step:

    human            = synth(human) or COCO                  # human source domain (coco 17)
    animals_labelled = synth(species, cad), few of them      # weakly supervised animal source
    target           = synth(species, photo) unlabelled      # the unseen species / domain
    model = wscda(human, animals_labelled, target)           # adversarial: alpha·L_DDL + beta·L_pose,
                                                             # alpha = -1, beta = 500
    for r in rounds:
        model = pplo_round(r, model)                         # pseudo-label the target, keep the most
                                                             # confident joints, train on them too
    pck   = evaluate(model, target_test)                     # every stage's model is scored on target test
    register(model)                                          # (and val): the parent run's results table

Each training task is one step of :class:`animalpose.adapt.wscda.run.WSCDARun` on the same output
folder (``state.json``): a new object resumes after the last finished step exactly as the uninterrupted
``run_wscda`` would, and a finished step returns its recorded metrics, so a crashed flow run that is
started again goes straight to the first unfinished step. The training settings come from the preset's
``wscda_config`` (e.g. ``configs/adapt/wscda_quick.yaml``: SimpleBaseline-18, Animal-Pose 20 joints,
human source in COCO).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from prefect import flow, task
from prefect.cache_policies import INPUTS

from animalpose.errors import ConfigError
from animalpose.paths import data_home
from animalpose.threads import configure_threads
from flows.ccssl import Scoring, log_comparison, scored_metrics, seed_plan, target_video
from flows.common import FileStamps, markdown_table, parent_tracker, publish, retry_transient, run_link, stage
from flows.evaluate import PCK
from flows.presets import FlowPreset, config_with, load_preset
from flows.pretrain import make_dataset

if TYPE_CHECKING:
    from animalpose.adapt.wscda.run import WSCDARun

# the values of wscda.discriminator and wscda.pplo_filter (animalpose.adapt.wscda.run.WSCDASection), as flow
# parameters: the deployment's parameter schema lists them
Discriminator = Literal["two_way", "three_way"]
PPLOFilter = Literal["confidence", "consistency"]


def wscda_config(preset: FlowPreset, *, human: list[Path], animals: list[Path], target: list[Path], test: Path,
                 rounds: int, model: str | None, tracking_uri: str, experiment: str, seed: int,
                 val: Path | None = None, allow_outside_root: bool = False, synthetic: list[Path] | None = None,
                 discriminator: Discriminator | None = None, pplo_filter: PPLOFilter | None = None) -> tuple[dict, str]:
    """The library's WSCDAConfig for this flow run, as a plain dict (a stable cache key) and its source file.

    ``val`` (e.g. a real ``val`` split) is ``data.val``, reported after every stage, with ``test`` reported
    beside it as ``wscda.target_val``; without it ``test`` is both. ``allow_outside_root``: the given
    datasets may name images outside their folder (`data subset` files). ``synthetic``: generated labelled
    animals added to ``animals`` as an extra labelled source, every one of them kept
    (:func:`keep_every_generated`). ``discriminator`` and ``pplo_filter`` set ``wscda.discriminator`` and
    ``wscda.pplo_filter`` (None: the config's)."""
    from animalpose.adapt.wscda.run import WSCDAConfig
    from animalpose.config import to_dict

    if preset.wscda_config is None:
        raise ConfigError("<flow preset>", "wscda_config", "this flow preset names no WS-CDA config")
    values: dict = {"data.train": [*animals, *(synthetic or [])], "data.val": [val or test],
                    "data.target": list(target), "wscda.human": list(human), "wscda.pplo_rounds": rounds,
                    "wscda.target_val": [test], "train.seed": seed, "tracking.uri": tracking_uri,
                    "tracking.experiment": experiment}
    if model:
        values["model.name"] = model
    if allow_outside_root:
        values["data.allow_outside_root"] = True
    if discriminator is not None:
        values["wscda.discriminator"] = discriminator
    if pplo_filter is not None:
        values["wscda.pplo_filter"] = pplo_filter
    cfg = config_with(preset.wscda_config, WSCDAConfig, preset.wscda_overrides, values)
    if synthetic:
        values["wscda.labelled_per_species"] = keep_every_generated(cfg.wscda.labelled_per_species, animals,
                                                                    synthetic, cfg.data.schema_name)
        cfg = config_with(preset.wscda_config, WSCDAConfig, preset.wscda_overrides, values)
    return to_dict(cfg), str(preset.wscda_config)


def keep_every_generated(per_species: int | dict | None, animals: list[Path], synthetic: list[Path],
                         schema: str | None) -> int | dict | None:
    """``wscda.labelled_per_species`` with the generated animals' species kept whole: the config's count for
    each species of the given ``animals`` (e.g. 10 cows, 10 sheep) and every generated one (e.g. all the
    generated horses), as the bench's synthetic arm keeps them. A species both given and generated would
    share one count: a ConfigError naming ``synthetic_animals``."""
    from animalpose.adapt.wscda.datasets import species_of
    from animalpose.data.readers import read_dataset

    if per_species is None:
        return None

    def species(paths: list[Path]) -> set[str]:
        return {species_of(r) for p in paths for r in read_dataset(p, "auto", schema).records}

    generated = species(synthetic)
    if isinstance(per_species, dict):
        return {**per_species, **dict.fromkeys(sorted(generated))}
    given = species(animals)
    if given & generated:
        raise ConfigError("<flow>", "synthetic_animals", f"the given animals already hold {sorted(given & generated)}: "
                                                         f"their labelled_per_species count would cover the "
                                                         f"generated ones too")
    return {**dict.fromkeys(sorted(given), per_species), **dict.fromkeys(sorted(generated))}


def _run(cfg_dict: dict, where: str, out_dir: Path, tracker) -> WSCDARun:
    """The WS-CDA run of this flow's config on ``out_dir``, logging under the stage's ``tracker``."""
    from animalpose.adapt.wscda.run import WSCDAConfig, WSCDARun
    from animalpose.config import parse_config

    cfg = parse_config(cfg_dict, WSCDAConfig, where=where, base_dir=Path(where).parent)
    return WSCDARun(cfg, out_dir, tracker=tracker, progress=False)


@task(name="wscda", cache_policy=(INPUTS - "tracker") + FileStamps(), persist_result=True, result_serializer="json",
      retries=1,
      retry_delay_seconds=5, retry_condition_fn=retry_transient)
def wscda(cfg_dict: dict, where: str, out_dir: Path, tracker=None) -> dict:
    """Adversarial WS-CDA training on humans, the few labelled animals and the unlabelled target."""
    with _run(cfg_dict, where, out_dir, tracker) as run:
        metrics = run.adversarial()
        run.result()  # records state.json in the stage's MLflow run
    checkpoint = Path(out_dir) / "wscda.ckpt"
    if not checkpoint.is_file():
        raise RuntimeError(f"WS-CDA wrote no checkpoint in {out_dir}")
    return {"checkpoint": str(checkpoint), "metrics": dict(metrics)}


def _pplo_run_name(parameters: dict) -> str:
    """``pplo-round-<n>``, numbered from 1 like the MLflow stage (``round_index`` is 0-based)."""
    return f"pplo-round-{parameters['round_index'] + 1}"


@task(name="pplo-round", cache_policy=(INPUTS - "tracker") + FileStamps(), persist_result=True,
      result_serializer="json", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_transient,
      task_run_name=_pplo_run_name)
def pplo_round(cfg_dict: dict, where: str, out_dir: Path, round_index: int, tracker=None) -> dict:
    """PPLO round ``round_index``: pseudo-label the target, keep the most confident joints, train on them."""
    with _run(cfg_dict, where, out_dir, tracker) as run:
        metrics = run.pplo_round(round_index)
        run.result()  # records state.json in the stage's MLflow run
    # this round's checkpoint, not the run's last (a re-run after a crash past the rounds finds them all done)
    checkpoint = Path(out_dir) / f"round_{round_index}.ckpt"
    if not checkpoint.is_file():
        raise RuntimeError(f"PPLO round {round_index} wrote no checkpoint in {out_dir}")
    return {"checkpoint": str(checkpoint), "metrics": dict(metrics)}


@flow(name="wscda", log_prints=True)
def wscda_flow(
    species: str = "horse",
    preset: str = "quick",
    rounds: int | None = None,
    human_data: list[Path] | None = None,
    animal_data: list[Path] | None = None,
    target_data: list[Path] | None = None,
    test_data: Path | None = None,
    val_data: Path | None = None,
    model: str | None = None,
    tracking_uri: str | None = None,
    experiment: str = "wscda",
    register_as: str | None = None,
    out_dir: Path | None = None,
    dask_workers: int = 0,
    allow_outside_root: bool = False,
    threads: int | None = None,
    discriminator: Discriminator | None = None,
    pplo_filter: PPLOFilter | None = None,
    synthetic_animals: int = 0,
) -> dict:
    """WS-CDA for ``species``: human + few labelled animals → unlabelled target, then PPLO rounds.

    Real data through parameters (each replaces its generated set; COCO keypoints files or folders):
    ``human_data`` (labelled humans, ``coco``), ``animal_data`` (labelled animals; the config's
    ``labelled_per_species`` of each), ``target_data`` (the unseen species, used unlabelled), ``test_data``
    (labelled target, scored at the end) and ``val_data`` (labelled target reported after every stage).
    E.g. the Animal-Pose protocol of ``animalpose bench wscda-animalpose``: ``-p 'animal_data=[cow_train.json,
    sheep_train.json]' -p 'target_data=[horse_train.json]' -p val_data=horse_val.json -p test_data=horse_test.json``
    (with ``-p allow_outside_root=true``: `data subset` files name the release's images by absolute path).
    ``allow_outside_root``: read given datasets whose image paths lie outside their image root.

    The combination arms of the bench (issue 29), each one switch (None: the preset's WS-CDA config):
    ``discriminator`` (``wscda.discriminator``: ``two_way``, the paper's; ``three_way`` adds a synthetic / real
    output and needs generated and photographed samples among the humans and animals), ``pplo_filter``
    (``wscda.pplo_filter``: ``confidence``, the paper's; ``consistency``, CC-SSL's check) and
    ``synthetic_animals``: that many generated ``species`` animals (the preset's ``target`` style and size,
    as the bench's 200 ``photo`` horses) added to the labelled animals, every one kept (the
    ``labelled_per_species`` count applies to the given animals' species), each cropped at its own padding.
    E.g. the bench's synthetic_3way arm: the real paths above with ``-p synthetic_animals=200
    -p discriminator=three_way``. Without ``out_dir`` a run with switches works in
    ``<preset>-<switches>`` (e.g. ``quick-three_way-synthetic200``) beside the preset's folder, so that it never
    resumes the steps of a run without them.
    """
    configure_threads(threads)  # torch threads / loader workers that fit the free cores
    p = load_preset(preset)
    n_rounds = rounds or p.rounds
    if synthetic_animals < 0:
        raise ConfigError("<flow>", "synthetic_animals", f"must be >= 0, got {synthetic_animals}")
    # without out_dir, each switch works in its own folder beside the preset's (a run folder resumes its steps)
    switches = [v for v in (discriminator, pplo_filter) if v] + ([f"synthetic{synthetic_animals}"]
                                                                 if synthetic_animals else [])
    folder = "-".join([Path(preset).stem, *switches])
    out = Path(out_dir) if out_dir else data_home() / "flows" / "wscda" / species / folder
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
            synthetic = make_dataset(species, p.target.model_copy(update={"n": synthetic_animals, "clips": 0}),
                                     p.seed + 5, "synthetic") if synthetic_animals else None
        cfg, where = wscda_config(p, human=human, animals=animals, target=target, test=test, rounds=n_rounds,
                                  model=model, tracking_uri=parent.uri, experiment=experiment, seed=p.seed,
                                  val=Path(val_data) if val_data else None, allow_outside_root=allow_outside_root,
                                  synthetic=synthetic, discriminator=discriminator, pplo_filter=pplo_filter)
        schema = cfg["data"]["schema"]
        # every step's model on target test (and the labelled target val): metrics, gallery and per-joint bars in
        # its own stage run, and side by side in the parent's results table (the CC-SSL flow's helpers)
        scoring = Scoring({"target_test": test, "target_val": Path(val_data) if val_data else None},
                          p.eval_batch_size, schema, allow_outside_root, p.gallery,
                          target_video([test, *target], schema, p.clip_seconds), p.clip_seconds, out / "clips")
        scores: dict[str, dict] = {}  # stage label -> {data set: evaluate result}
        with stage(parent, "wscda", tags={"stage": "wscda", "round": "0"}) as st:
            ckpt = Path(wscda(cfg, where, out / "wscda", tracker=st)["checkpoint"])
            scores["WS-CDA"] = scoring(st, "wscda", ckpt)
        round_metrics = []
        for r in range(n_rounds):
            label = f"pplo-round-{r + 1}"
            with stage(parent, label, {"round": r + 1}, tags={"stage": "round", "round": str(r + 1)}) as st:
                res = pplo_round(cfg, where, out / "wscda", r, tracker=st)
                ckpt = Path(res["checkpoint"])
                scores[f"PPLO round {r + 1}"] = scoring(st, label, ckpt)
            round_metrics.append(res["metrics"])
        with stage(parent, "evaluate") as st:
            pck = float(scores[list(scores)[-1]]["target_test"]["metrics"][PCK])  # the last stage's model
            st.log_metrics({PCK: pck})
        parent.log_metrics({PCK: pck})
        arms = {label: scored_metrics(res) for label, res in scores.items()}
        log_comparison(parent, arms)
        with stage(parent, "register") as st:
            parent.log_artifact(ckpt, "model")
            version = parent.register_model(f"model/{ckpt.name}", name, tags={"species": species, "method": "wscda"})
            st.set_tags({"registered_model": f"{name}/{version}"})
        summary = {"species": species, "pck": pck, "rounds": round_metrics, "model_name": name,
                   "model_version": version, "mlflow_run_id": parent.run_id, "scores": arms}
        parent.log_dict(summary, "summary.json")
        publish(f"wscda-{species}", results_markdown(species, arms, n_rounds, run_link(parent)))
        parent.end("FINISHED")
        return summary
    except BaseException as exc:
        parent.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise


def results_markdown(species: str, arms: dict[str, dict[str, float]], rounds: int, link: str) -> str:
    """The flow run's Prefect artifact: PCK@0.05 (crop) of every stage's model on target test (and val)."""
    sets = [ds for ds in ("target_test", "target_val") if any(f"{ds}/{PCK}" in m for m in arms.values())]
    rows = [[label, *(m.get(f"{ds}/{PCK}") for ds in sets)] for label, m in arms.items()]
    table = markdown_table(["model", *(f"PCK@0.05 (crop) on {ds.replace('_', ' ')}" for ds in sets)], rows)
    return f"# WS-CDA {species}: WS-CDA + {rounds} PPLO rounds\n\n{table}\nMLflow run: {link}\n"
