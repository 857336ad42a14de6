"""The ``ccssl`` flow: CC-SSL (Mu et al., "Learning from Synthetic Animals", CVPR 2020, Alg. 1).

Pseudo-code, one Prefect task per step:

    source, source_val = synth(species, cad)              # labelled synthetic source
    target, target_test = synth(species, photo)           # unlabelled target + held-out labelled test
    target_val = synth(species, photo)                    # labelled, only for the oracle's model selection
    model = pretrain(source) or the registered source model
    source_only = evaluate(model, target_test)
    for r in rounds:
        model = ccssl_round(r, model)   # pseudo-label target (invariance, equivariance, temporal),
                                        # keep the most consistent joints, train on source + target
        pck[r] = evaluate(model, target_test)
    if target_val:                      # labelled held-out target frames: the keep-the-better rule
        control = train(model_0, source, same epochs, lambda = 0)
        model = the better of (model, control) by mean pixel error on target_val
    oracle = evaluate(pretrain(target with labels, best epoch on target_val), target_test)
    register(model)                     # only after every round finished
    gap recovery = (pck[-1] - source_only) / (oracle - source_only)

Each round task is one :meth:`animalpose.adapt.ccssl.CCSSLRun.round` on the same output folder; a
new run object resumes after the last finished round (``state.json``, ``round_<r>.ckpt``) and
trains with the whole configuration, so the rounds take the same steps and learning rates as the
library's own loop. The round task is cached on its inputs, so a crashed flow run that is started
again goes straight to the first unfinished round.

Beyond one machine (``dask_workers`` / ``dask_address``): the synthetic data is generated in shards
and each round's pseudo-labelling consistency step is split into shards
(:mod:`animalpose.adapt.shards`), one ``pseudo-label-shard`` task per shard, on a Dask task runner
(:mod:`flows.runners`). The round task enters that runner itself (Prefect 3 task runners are
context managers whose ``submit`` runs a task on the runner; a sub-flow would need the model
weights as flow parameters, which Prefect records as JSON), so the shard tasks appear in the UI
under the round. The temporal refinement and the selection run in the round task on the merged
labels; the merged labels do not depend on the number of shards.

The keep-the-better rule is the CLI's (:func:`animalpose.adapt.control.train_control` and
:func:`~animalpose.adapt.control.keep_better`, the same functions ``animalpose adapt ccssl`` runs): with a
labelled target-val set (the user's ``target_val_data`` or the preset's generated one) and ``control=True``,
a ``control`` stage trains the supervised control and keeps the better of it and the adapted model on
target-val (never the test set the rounds report on); the flow registers the kept one, and its result and
MLflow run say which and by how much (``keep_better``, ``keep/*`` metrics, the ``kept`` tag).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import INPUTS, NO_CACHE

from animalpose.adapt.ccssl import CCSSLConfig, CCSSLSection
from animalpose.config import flatten
from animalpose.evaluation import gap_recovery  # the flow's summary figure; importable from here too
from animalpose.paths import data_home
from animalpose.threads import configure_threads
from flows.common import (
    FileStamps,
    adopt,
    fresh,
    markdown_table,
    markdown_text,
    parent_tracker,
    publish,
    retry_transient,
    run_link,
    stage,
    ui_command,
)
from flows.console import live, percent, timed_stage
from flows.evaluate import PCK, annotations_for, evaluate, labelled_clip, log_pictures, resolve_checkpoint
from flows.presets import FlowPreset, load_preset
from flows.pretrain import make_dataset, pretrain, train_config
from flows.runners import task_runner

ROUND_KEYS = ("source_checkpoint", "regenerate_every", "target_val", "source_epochs")
"""The keys of the ``ccssl:`` section that the flow sets itself, over the preset's."""


def ccssl_config(cfg_dict: dict, where: str, *, source_checkpoint: Path, target: list[Path], target_test: Path,
                 regenerate_every: int, epochs: int, section: CCSSLSection | None = None) -> CCSSLConfig:
    """The library's CCSSLConfig for rounds of ``regenerate_every`` epochs, ``epochs`` in all.

    ``section`` (the preset's, already validated) gives every other key of the ``ccssl:`` section;
    the :data:`ROUND_KEYS` are validated here and replace its own.
    """
    from animalpose.config import parse_config

    raw = dict(cfg_dict)
    raw["data"] = {**raw["data"], "target": [str(t) for t in target]}
    raw["train"] = {**raw["train"], "epochs": epochs}
    raw["ccssl"] = {"source_checkpoint": str(source_checkpoint), "regenerate_every": regenerate_every,
                    "target_val": [str(target_test)], "source_epochs": 0}
    cfg = parse_config(raw, CCSSLConfig, where=where, base_dir=Path(where).parent)
    if section is None:
        return cfg
    rounds = {key: getattr(cfg.ccssl, key) for key in ROUND_KEYS}
    return cfg.model_copy(update={"ccssl": section.model_copy(update=rounds)})


def _shard_run_name(parameters: dict) -> str:
    """``pseudo-label-round-<n>-batch-<first batch>`` (rounds numbered from 1)."""
    request = parameters["request"]
    return f"pseudo-label-round-{request.round_index + 1}-batch-{request.first_batch}"


@task(name="pseudo-label-shard", cache_policy=NO_CACHE, persist_result=False, retries=1, retry_delay_seconds=5,
      retry_condition_fn=retry_transient, task_run_name=_shard_run_name)
def pseudo_label_shard(request):
    """Consistency pseudo-labels of one shard of a round's target records (runs on a Dask worker)."""
    from animalpose.adapt.shards import label_shard

    return label_shard(request)


def dask_labeler(dask_workers: int = 0, dask_address: str | None = None, shards: int | None = None):
    """A ``run_ccssl`` labeler that runs one :func:`pseudo_label_shard` task per shard on a Dask runner.

    Each call (one per round) enters :func:`flows.runners.task_runner` (a temporary local cluster of
    ``dask_workers`` processes, or the scheduler at ``dask_address``), splits the request into
    ``shards`` shards (default: one per Dask worker) and concatenates the results in record order.
    """

    def submit_all(request):
        from animalpose.adapt.pseudolabel import PseudoLabelSet

        with task_runner(dask_workers, dask_address) as runner:
            n = shards or max(1, len(runner.client.scheduler_info(n_workers=-1)["workers"]))
            futures = [runner.submit(pseudo_label_shard, {"request": part}) for part in request.split(n)]
            return PseudoLabelSet.concat([f.result() for f in futures])

    return lambda request: _shippable_task_run(submit_all, request)


LOCAL_PARAMETERS = frozenset({"tracker"})
"""Parameters of the round task that stay in its process (an open MLflow run cannot be pickled)."""


def _shippable_task_run(fn, *args):
    """``fn(*args)`` inside a copy of the enclosing task run's context without its :data:`LOCAL_PARAMETERS`.

    Prefect's Dask client ships the submitting context with every task, the enclosing task run's
    parameters included, and the round task's MLflow tracker cannot be pickled. The copy
    (``ContextModel.model_copy``, entered and left like any Prefect context) is what goes instead, so
    the shard tasks run as children of the round task.
    """
    from prefect.context import TaskRunContext

    ctx = TaskRunContext.get()
    if ctx is None:
        return fn(*args)
    kept = {k: v for k, v in ctx.parameters.items() if k not in LOCAL_PARAMETERS}
    with ctx.model_copy(update={"parameters": kept}):
        return fn(*args)


def _round_run_name(parameters: dict) -> str:
    """``ccssl-round-<n>``: rounds are numbered from 1 wherever they are shown (``round_index`` is 0-based)."""
    return f"ccssl-round-{parameters['round_index'] + 1}"


@task(name="ccssl-round",
      cache_policy=(INPUTS - "tracker" - "dask_workers" - "dask_address" - "progress") + FileStamps(),
      persist_result=True, result_serializer="json", retries=1, retry_delay_seconds=5,
      retry_condition_fn=retry_transient, task_run_name=_round_run_name)
def ccssl_round(cfg_dict: dict, where: str, source_checkpoint: Path, target: list[Path], target_test: Path,
                out_dir: Path, round_index: int, epochs_per_round: int, rounds: int,
                section: CCSSLSection | None = None,
                tracker=None, dask_workers: int = 0, dask_address: str | None = None,
                progress: bool = False) -> dict:
    """Pseudo-label, select and train for round ``round_index`` (0-based); returns its metrics and checkpoint.

    ``dask_workers > 0`` or ``dask_address``: the pseudo-labels are made in shards on Dask
    (:func:`dask_labeler`); the result is the same as in process, so neither is part of the cache key,
    nor is ``progress`` (the live bars of a terminal).
    """
    from animalpose.adapt import ccssl as lib

    cfg = ccssl_config(cfg_dict, where, source_checkpoint=source_checkpoint, target=target, target_test=target_test,
                       regenerate_every=epochs_per_round, epochs=rounds * epochs_per_round, section=section)
    labeler = dask_labeler(dask_workers, dask_address) if dask_workers > 0 or dask_address else None
    with lib.CCSSLRun(cfg, out_dir, tracker=tracker, progress=progress, labeler=labeler) as run:
        metrics = run.round(round_index)
    # this round's checkpoint, not the library's last: a flow re-run after a crash past the rounds (say in
    # the oracle) misses this task's cache, and finds every round already finished
    checkpoint = Path(out_dir) / f"round_{round_index}.ckpt"
    if not checkpoint.is_file():
        raise RuntimeError(f"CC-SSL round {round_index} in {out_dir} finished without {checkpoint.name}")
    return {"checkpoint": str(checkpoint), "metrics": metrics, "source_only": run.state["source_only"]}


@task(name="keep-the-better", cache_policy=(INPUTS - "tracker" - "progress") + FileStamps(), persist_result=True,
      result_serializer="json", task_run_name="keep-the-better")
def keep_the_better(cfg_dict: dict, where: str, source_checkpoint: Path, target: list[Path], target_test: Path,
                    target_val: Path, out_dir: Path, epochs_per_round: int, rounds: int, section: dict | None = None,
                    tracker=None, progress: bool = False) -> dict:
    """The supervised control (the rounds' starting model, epochs and learning rate; λ = 0) and the
    keep-the-better rule of ``adapt ccssl`` on the finished rounds in ``out_dir``, scored on ``target_val``.

    Returns the decision (:class:`animalpose.adapt.control.KeepBetter` as a dict, with its ``sentence``);
    ``final`` is the kept checkpoint."""
    from dataclasses import asdict

    from animalpose.adapt import ccssl as lib
    from animalpose.adapt import control

    cfg = ccssl_config(cfg_dict, where, source_checkpoint=source_checkpoint, target=target, target_test=target_test,
                       regenerate_every=epochs_per_round, epochs=rounds * epochs_per_round, section=section)
    with lib.CCSSLRun(cfg, out_dir, tracker=tracker, progress=progress) as run:
        if run.rounds_done < run.num_rounds:
            raise RuntimeError(f"{out_dir}: {run.rounds_done} of {run.num_rounds} CC-SSL rounds finished; the "
                               "keep-the-better rule runs after the last")
        run.prepare()
        decision = control.keep_better(run, run.result(), control.train_control(run, progress),
                                       paths=[Path(target_val)], register=False)
    return {**asdict(decision), "sentence": decision.sentence()}


@dataclass(frozen=True)
class SeedPlan:
    """The seeds of one flow run: each generated dataset's and the training configs' ``train.seed``.

    ``train`` seeds the pretraining, every CC-SSL round (the library derives its round seeds from
    ``train.seed``: pseudo-label views ``train.seed * 1000 + r``, target sampling ``train.seed + r + 1``)
    and the oracle.
    """

    source: int
    source_val: int
    target: int
    test: int
    train: int
    target_val: int


def seed_plan(preset_seed: int, seed: int | None = None) -> SeedPlan:
    """The seeds used by :func:`ccssl_flow` for base seed ``seed`` (None: the preset's ``seed``).

    The datasets take consecutive seeds from the base (source, source-val, target, test, target-val =
    base, base + 1, base + 2, base + 3, base + 4) and every training config takes the base itself, so
    ``seed_plan(p.seed)`` is the preset's own plan and ``seed_plan(p.seed, k)`` changes every seed.
    """
    base = preset_seed if seed is None else seed
    return SeedPlan(source=base, source_val=base + 1, target=base + 2, test=base + 3, train=base,
                    target_val=base + 4)


def oracle_selection_set(species: str, p: FlowPreset, seeds: SeedPlan, source_val: list[Path], *,
                         given_target: bool = False, target_val: Path | None = None) -> list[Path]:
    """The validation set on which the oracle chooses its best epoch: the user's labelled ``target_val``
    (e.g. Animal-Pose's ``val`` split), else the preset's generated ``target_val`` (seed
    ``seeds.target_val``), else ``source_val`` (no target_val in the preset, or a target the user gave,
    which a generated set would not match). Never the test set."""
    found = target_val_set(species, p, seeds, given_target=given_target, target_val=target_val)
    return list(source_val) if found is None else [found]


def target_val_set(species: str, p: FlowPreset, seeds: SeedPlan, *, given_target: bool = False,
                   target_val: Path | None = None) -> Path | None:
    """The labelled target-val set: the user's ``target_val``, else the preset's generated one (not for a
    target the user gave, which it would not match), else None."""
    if target_val is not None:
        return Path(target_val)
    if p.target_val is None or given_target:
        return None
    return make_dataset(species, p.target_val, seeds.target_val, "target-val")[0]


# The data sets every model stage (source-only, each round, the oracle) is scored on, by the names its
# MLflow metrics carry: ``target_test/pck_crop@0.05`` (logged as ``target_test/pck_crop_at_0.05``: MLflow
# keys allow no ``@``). Only target_test is the measure; the others show what each stage fits.
DATA_SETS = ("target_test", "source_val", "target_val")
# the columns of the parent run's results table
TABLE_METRICS = ("pck_crop@0.05", "pck_crop@0.1", "AP")


def score(role: str, checkpoint: Path, sets: dict[str, Path | None], batch_size: int, schema: str,
          allow_outside_root: bool = False, examples: int = 0) -> dict:
    """``{data set: engine.evaluate result}`` of ``checkpoint`` on each named set that exists; one
    ``evaluate-<role>-<data set>`` task each (cached on the checkpoint's and the data's content).
    ``allow_outside_root``: the sets may name images outside their folder (`data subset` files).
    ``examples``: the target-test result also holds that many fixed instances for the gallery."""
    return {name: evaluate.with_options(task_run_name=f"evaluate-{role}-{name.replace('_', '-')}")(
                checkpoint, path, batch_size, schema, allow_outside_root=allow_outside_root,
                examples=examples if name == "target_test" else 0)
            for name, path in sets.items() if path is not None}


@dataclass(frozen=True)
class Scoring:
    """How a flow scores and pictures each model stage (source-only, the rounds, the oracle; WS-CDA's steps).

    Every named set that exists is scored (:func:`score`) and logged into the stage's run
    (:func:`log_scores`); on target test the stage also logs the gallery of ``gallery`` fixed instances and
    the per-joint bars (:func:`flows.evaluate.log_pictures`), and, when the targets hold a ``video``
    (:func:`animalpose.engine.pictures.find_video`), a labelled GIF of its first ``clip_seconds``
    (``pictures/<role>.gif``, written under ``clips``; one ``clip-<role>`` task).
    """

    sets: dict[str, Path | None]
    batch_size: int
    schema: str
    allow_outside_root: bool = False
    gallery: int = 0
    video: dict | None = None
    clip_seconds: float = 0.0
    clips: Path | None = None

    def __call__(self, run, role: str, checkpoint: Path) -> dict:
        """``{data set: evaluate result}`` of ``checkpoint``, logged with its pictures into ``run``."""
        results = score(role, checkpoint, self.sets, self.batch_size, self.schema, self.allow_outside_root,
                        examples=self.gallery)
        log_scores(run, results)
        if "target_test" in results:
            log_pictures(run, role, results["target_test"])
        if self.video is not None and self.clip_seconds > 0 and self.clips is not None:
            gif = self.clips / f"{role}.gif"
            clip = fresh(labelled_clip, gif).with_options(task_run_name=f"clip-{role}")
            run.log_artifact(clip(checkpoint, self.video, gif, self.schema, self.clip_seconds), "pictures")
        return results


def target_video(paths: list[Path], schema: str, seconds: float) -> dict | None:
    """The video of the targets to draw each stage's clip on (:func:`~animalpose.engine.pictures.find_video`:
    the test set's first, else the unlabelled target's), or None (no video, or ``seconds`` = 0)."""
    if seconds <= 0:
        return None
    from animalpose.engine.pictures import find_video

    return find_video(paths, schema)


def scored_metrics(results: dict) -> dict[str, float]:
    """The stage run's evaluation metrics: ``<data set>/<metric>`` for every data set scored."""
    return {f"{name}/{k}": v for name, res in results.items() for k, v in res["metrics"].items()
            if isinstance(v, int | float)}


def log_scores(run, results: dict) -> None:
    """Every evaluation metric and the per-joint table on target test, into one stage run."""
    run.log_metrics(scored_metrics(results))
    if "target_test" in results:
        run.log_table(results["target_test"]["per_joint"], "tables/target_test_pck_per_joint.json")


def _pck(results: dict) -> float:
    return float(results["target_test"]["metrics"][PCK])


@flow(name="ccssl", log_prints=True)
def ccssl_flow(
    species: str = "horse",
    preset: str = "quick",
    rounds: int | None = None,
    source_data: list[Path] | None = None,
    target_data: list[Path] | None = None,
    test_data: Path | None = None,
    target_val_data: Path | None = None,
    schema: str | None = None,
    model: str | None = None,
    source_model: str | None = None,
    oracle: bool | None = None,
    tracking_uri: str | None = None,
    experiment: str = "ccssl",
    register_as: str | None = None,
    out_dir: Path | None = None,
    dask_workers: int = 0,
    dask_address: str | None = None,
    seed: int | None = None,
    allow_outside_root: bool = False,
    threads: int | None = None,
    control: bool = True,
) -> dict:
    """CC-SSL for ``species``: synthetic source → target, rounds of consistent pseudo-labels.

    Args:
        preset: a flow preset name (``smoke``, ``quick``) or a preset YAML path.
        rounds: number of rounds (default: the preset's).
        source_data / target_data / test_data: real datasets instead of the generated ones (the
            target is used unlabelled; ``test_data`` must be labelled).
        target_val_data: a labelled set of the target domain on which the oracle chooses its epoch
            (e.g. Animal-Pose's ``val`` split); never the test set.
        schema: the keypoint schema to train and score in instead of the preset's, e.g. ``animalpose``
            for Animal-Pose photographs (the generator writes it for its horses too).
        source_model: ``models:/<name>@champion`` (or ``/<version>``) to adapt instead of pretraining.
        oracle: also train on the target labels for the gap-recovery figure (default: the preset's;
            only possible when the target has labels). Its epoch is chosen on the preset's
            ``target_val`` (generated targets) or on the source validation set, never on the test set.
        register_as: registered model name of the result (default ``ccssl-<species>``).
        dask_workers: pseudo-label each round in that many shards on a temporary local Dask cluster
            of that many worker processes (same labels as in process); also handed to the synthetic
            data stage (``flows.pretrain.make_dataset``).
        dask_address: pseudo-label on the Dask scheduler at this address instead (``tcp://host:8786``),
            one shard per worker.
        seed: base seed of the run (default: the preset's ``seed``). It replaces the preset's seed
            everywhere the preset's seed acts (:func:`seed_plan`): the generated source, source-val,
            target, test and target-val sets get ``seed`` to ``seed + 4``, and the
            pretraining, the CC-SSL rounds and the oracle train with ``train.seed = seed``. Given
            datasets (``source_data`` ...) are used as they are. Without ``out_dir``, a seed other
            than the preset's works in ``<preset>-seed<seed>`` beside the preset's folder (so its
            checkpoints never resume another seed's). ``seed=None`` runs exactly as before.
        allow_outside_root: read given datasets whose image paths lie outside their image root (files
            written by ``animalpose data subset`` hold absolute paths to the source's images).
        control: with a labelled target-val set, train the supervised control and register the better of it
            and the adapted model on target-val (:func:`keep_the_better`); False: the last round, as before.

    Returns ``{"source_only", "rounds", "control", "keep_better", "oracle", "gap_recovery", "model_version",
    "mlflow_run_id", "seed", ...}`` (``control``: the control's target-test PCK; ``keep_better``: the
    decision, None without the rule).
    """
    configure_threads(threads)  # torch threads / loader workers that fit the free cores
    p = load_preset(preset)
    seeds = seed_plan(p.seed, seed)
    n_rounds = rounds or p.rounds
    do_oracle = p.oracle if oracle is None else oracle
    folder = Path(preset).stem if seeds.train == p.seed else f"{Path(preset).stem}-seed{seeds.train}"
    out = Path(out_dir) if out_dir else data_home() / "flows" / "ccssl" / species / folder
    name = register_as or f"ccssl-{species}"
    parent = parent_tracker(experiment, f"ccssl-{species}", tracking_uri,
                            {"species": species, "preset": str(preset), "rounds": str(n_rounds)})
    parent.log_params({"species": species, "preset": str(preset), "rounds": n_rounds, "model": model,
                       "source_model": source_model, "epochs_per_round": p.epochs_per_round,
                       "seed": seeds.train})
    try:
        with stage(parent, "synth", tags={"stage": "synth"}), timed_stage("synth"):
            source = list(source_data) if source_data else make_dataset(species, p.source, seeds.source, "source",
                                                                        dask_workers=dask_workers)
            source_val = make_dataset(species, p.source_val, seeds.source_val, "source-val")
            target = list(target_data) if target_data else make_dataset(species, p.target, seeds.target, "target",
                                                                        dask_workers=dask_workers)
            test = Path(test_data) if test_data else make_dataset(species, p.target_test, seeds.test, "test")[0]
            target_val = target_val_set(species, p, seeds, given_target=bool(target_data),
                                        target_val=target_val_data)
            oracle_val = [target_val] if target_val is not None else list(source_val)
        sets = {"target_test": test, "source_val": source_val[0] if len(source_val) == 1 else None,
                "target_val": target_val}

        cfg, where = train_config(p, source, source_val, epochs=p.pretrain_epochs, model=model,
                                  tracking_uri=parent.uri, experiment=experiment, seed=seeds.train, schema=schema,
                                  allow_outside_root=allow_outside_root, source=True)
        schema = cfg["data"]["schema"]
        scores: dict[str, dict] = {}  # stage label -> {data set: evaluate result}

        scoring = Scoring(sets, p.eval_batch_size, schema, allow_outside_root, p.gallery,
                          target_video([test, *target], schema, p.clip_seconds), p.clip_seconds, out / "clips")

        def model_stage(label: str, results: dict, st, line) -> float:
            scores[label] = results
            line.headline = percent("target test PCK@0.05", _pck(results))
            return _pck(results)

        with stage(parent, "source-only", tags={"stage": "source-only", "round": "0"}) as st, \
                timed_stage("source-only") as line:
            if source_model:
                source_ckpt = resolve_checkpoint(source_model, parent.uri)
                st.set_tags({"reused": source_model})
            else:
                st.log_params(flatten(cfg))  # the stage's own config, beside the rounds' (compare shows the diff)
                pre = pretrain.with_options(task_run_name="pretrain-source")(
                    cfg, where, out / "pretrain", f"pretrain-{species}", register_as=f"{species}-source",
                    progress=live())
                adopt(st, pre["run_id"])
                source_ckpt = Path(pre["checkpoint"])
            source_only = model_stage("source-only", scoring(st, "source-only", source_ckpt), st, line)
        parent.log_metrics({f"source_only/target_test/{PCK}": source_only})

        round_pck: list[float] = []
        ckpt = source_ckpt
        for r in range(n_rounds):
            label = f"round-{r + 1}"
            with stage(parent, label, {"round": r + 1}, tags={"stage": "round", "round": str(r + 1)}) as st, \
                    timed_stage(label) as line:
                res = ccssl_round(cfg, where, source_ckpt, target, test, out / "ccssl", r, p.epochs_per_round,
                                  n_rounds, section=p.ccssl, tracker=st, dask_workers=dask_workers,
                                  dask_address=dask_address, progress=live())
                ckpt = Path(res["checkpoint"])
                round_pck.append(model_stage(label, scoring(st, label, ckpt), st, line))
            parent.log_metrics({f"round/target_test/{PCK}": round_pck[-1]}, step=r + 1)

        decision, control_pck = None, None
        if control and target_val is not None:
            # tagged with the last round's number: the UI orders it beside the round it is the control of
            with stage(parent, "control", tags={"stage": "control", "round": str(n_rounds)}) as st, \
                    timed_stage("control") as line:
                keep = fresh(keep_the_better, out / "ccssl" / "final.ckpt")
                # a generated folder holds one annotation file per schema: the one the model predicts
                val_file = annotations_for(target_val, schema)
                decision = keep(cfg, where, source_ckpt, target, test, val_file, out / "ccssl", p.epochs_per_round,
                                n_rounds, section=p.ccssl, tracker=st, progress=live())
                control_pck = model_stage("control", scoring(st, "control", Path(decision["control"]["checkpoint"])),
                                          st, line)
                line.headline = decision["sentence"]
            metric = decision["metric"]
            parent.log_metrics({f"keep/adapted_{metric}": decision["adapted"]["score"],
                                f"keep/control_{metric}": decision["control"]["score"],
                                f"keep/margin_{metric}": decision["margin"],
                                **({} if decision.get("source") is None
                                   else {f"keep/source_{metric}": decision["source"]["score"]}),
                                f"control/target_test/{PCK}": control_pck})
            parent.set_tags({"kept": decision["kept"]})
            print(decision["sentence"])
            ckpt = Path(decision["final"])

        oracle_pck = None
        if do_oracle:
            with stage(parent, "oracle", tags={"stage": "oracle", "round": str(n_rounds + 1)}) as st, \
                    timed_stage("oracle") as line:
                ocfg, _ = train_config(p, target, oracle_val, epochs=p.oracle_epochs or p.pretrain_epochs, model=model,
                                       tracking_uri=parent.uri, experiment=experiment, seed=seeds.train,
                                       schema=schema, allow_outside_root=allow_outside_root)
                st.log_params(flatten(ocfg))
                orc = pretrain.with_options(task_run_name="pretrain-oracle")(
                    ocfg, where, out / "oracle", f"oracle-{species}", register_as=f"{species}-oracle",
                    progress=live())
                adopt(st, orc["run_id"])
                oracle_pck = model_stage("oracle", scoring(st, "oracle", Path(orc["checkpoint"])), st, line)
            parent.log_metrics({f"oracle/target_test/{PCK}": oracle_pck})

        recovery = gap_recovery(source_only, round_pck[-1], oracle_pck)
        with stage(parent, "register", tags={"stage": "register"}) as st, timed_stage("register") as line:
            parent.log_artifact(ckpt, "model")
            description = registry_description(species, str(preset), scores, sets, recovery, decision)
            kept = {"kept": decision["kept"]} if decision else {}
            version = parent.register_model(f"model/{ckpt.name}", name, description=description,
                                            tags={"species": species, "method": "ccssl", "rounds": str(n_rounds),
                                                  **kept})
            st.set_tags({"registered_model": f"{name}/{version}"})
            line.headline = f"{name} version {version}"

        summary = {"species": species, "preset": str(preset), "source_only": source_only, "rounds": round_pck,
                   "control": control_pck, "keep_better": decision, "oracle": oracle_pck, "gap_recovery": recovery,
                   "model_name": name, "model_version": version,
                   "checkpoint": str(ckpt), "mlflow_run_id": parent.run_id, "mlflow_run_url": run_link(parent),
                   "tracking_uri": parent.uri, "mlflow_ui": ui_command(parent.uri), "seed": seeds.train,
                   "scores": {label: scored_metrics(res) for label, res in scores.items()}}
        if recovery is not None:
            parent.log_metrics({"gap_recovery": recovery})
        parent.log_dict(summary, "summary.json")
        log_comparison(parent, summary["scores"])
        publish(f"ccssl-{species}", results_markdown(summary), description=f"CC-SSL {species} ({preset})")
        parent.end("FINISHED")
        return summary
    except BaseException as exc:
        parent.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise


def registry_description(species: str, preset: str, scores: dict, sets: dict, recovery: float | None,
                         decision: dict | None = None) -> str:
    """The registered version's text: its scores beside source-only and the oracle, and the data they
    were measured on (paths and content fingerprints); with the keep-the-better ``decision``, which model it
    is and why."""
    from animalpose.provenance import fingerprint

    labels = list(scores)
    final = next((label for label in reversed(labels) if label.startswith("round-")), labels[-1])
    pck = ", ".join(f"{label} {100 * float(res['target_test']['metrics'][PCK]):.1f} %"
                    for label, res in scores.items())
    data = "; ".join(f"{name}: {path} (fingerprint {fingerprint(path)})" for name, path in sets.items()
                     if path is not None)
    gap = "" if recovery is None else f" Gap recovery {100 * recovery:.1f} %."
    what = f"the model after {final}"
    if decision is not None:
        what = (f"{what}, its supervised control or the model both started from, whichever is best on target-val: "
                f"{decision['sentence']}")
    return (f"CC-SSL {species} ({preset}): {what}. PCK@0.05 (crop) on target test: {pck}.{gap} "
            f"Evaluated on {data}.")


def comparison_rows(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``{stage: {"<data set>/<metric>": value}}`` for the results table (:data:`TABLE_METRICS` only)."""
    return {label: {f"{ds}/{m}": metrics[f"{ds}/{m}"] for ds in DATA_SETS for m in TABLE_METRICS
                    if f"{ds}/{m}" in metrics} for label, metrics in scores.items()}


def log_comparison(parent, scores: dict[str, dict[str, float]]) -> None:
    """The parent run's results table (``results/results_table.json``, an MLflow table) and its chart of
    PCK@0.05 from source-only through the rounds to the oracle on each data set (``results/stages.png``)."""
    from animalpose.plots import stage_comparison_figure

    parent.log_table(comparison_rows(scores), "results/results_table.json", key="stage")
    series = {ds.replace("_", " "): [m.get(f"{ds}/{PCK}") for m in scores.values()] for ds in DATA_SETS
              if any(f"{ds}/{PCK}" in m for m in scores.values())}
    fig = stage_comparison_figure(series, list(scores), "PCK@0.05 (crop) by stage")
    parent.log_figure(fig, "results/stages.png")


def results_rows(summary: dict) -> list[list[object]]:
    """Rows (stage, PCK@0.05) of the results table: source-only, each round, oracle, gap recovery."""
    rows: list[list[object]] = [["source-only", summary["source_only"]]]
    rows += [[f"CC-SSL round {i + 1}", v] for i, v in enumerate(summary["rounds"])]
    if summary.get("keep_better"):
        rows.append(["supervised control (λ = 0)", summary["control"]])
        rows.append(["kept (val pixel error)", summary["keep_better"]["kept"]])
    rows.append(["oracle (target labels)", summary["oracle"]])
    gr = summary["gap_recovery"]
    rows.append(["gap recovery", None if gr is None else f"{100 * gr:.1f}%"])
    return rows


def results_markdown(summary: dict) -> str:
    """The flow run's Prefect artifact: the results table, the registered model, the MLflow run (``@``
    escaped outside code spans, so no renderer makes ``PCK@0.05`` a mailto link)."""
    table = markdown_table(["model", "PCK@0.05 (crop) on target test"], results_rows(summary))
    kept = summary.get("keep_better")
    rule = f"Keep the better: {markdown_text(kept['sentence'])}\n\n" if kept else ""
    return (f"# CC-SSL {summary['species']} ({markdown_text(summary['preset'])})\n\n{table}\n{rule}"
            f"Registered model: `{summary['model_name']}` version {summary['model_version']}\n\n"
            f"MLflow run: {summary['mlflow_run_url']}\n\nOpen the MLflow UI: `{summary['mlflow_ui']}`\n")
