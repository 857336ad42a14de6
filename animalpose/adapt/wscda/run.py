"""WS-CDA on datasets: adversarial training from three sources, then PPLO rounds (Cao et al., ICCV 2019).

:class:`WSCDARun` holds one run as the paper's named steps; ``run_wscda(cfg, out_dir)`` composes them:

.. code-block:: python

    with WSCDARun(cfg, out_dir) as run:   # steps 1-2
        run.adversarial()                 # step 3
        for r in range(run.num_rounds):
            run.pplo_round(r)             # step 4 (one round of pplo.run_pplo)
        return run.result()

1. read the labelled humans (``wscda.human``, schema ``wscda.human_schema``) and lift them into the joint
   keypoint space; keep ``wscda.labelled_per_species`` labelled animals of each species of
   ``data.train``; read the unlabelled target animals ``data.target``. Every record is cropped with the
   padding of its own file (``data.bbox_padding_synthetic`` for generated data, ``bbox_padding_real`` for
   photographs), so a stream that mixes generated horses with photographed cows crops each at its own;
2. build the WS-CDA network around the factory model ``model.name`` (SimpleBaseline-style) with a
   linear, foldable domain adaptation network and the paper's two-output discriminator (or, with
   ``wscda.discriminator: three_way``, a third synthetic / real output), optionally initialised from
   ``wscda.init_checkpoint``
   (tensors whose names and shapes match: a human model gives its backbone and deconvolutions);
3. train ``wscda.epochs`` epochs of ``wscda.steps_per_epoch`` mixed batches (ratio ``wscda.ratio``) with
   the selected min-max scheme; fold the adapter back and write ``wscda.ckpt``, an ordinary engine
   checkpoint of the animal schema (``animalpose evaluate`` reads it);
4. PPLO: for each of ``wscda.pplo_rounds`` rounds predict the target crops, keep the most confident
   joints under the shared progressive schedule (``wscda.keep_fractions``; confident by the single-view
   heatmap peak, or with ``wscda.pplo_filter: consistency`` by CC-SSL's consistency check, the selection
   CC-SSL makes), and continue WS-CDA training
   for ``wscda.pplo_epochs`` epochs with the target animals now supervised by their pseudo-labels;
   write ``round_<r>.ckpt``.

Resumable: ``state.json`` lists the finished steps and each step's training resumes from its own
checkpoint; a new :class:`WSCDARun` on the folder continues after the last finished step exactly as an
uninterrupted run would; ``state.json`` also records each stream's crop paddings (``crops``), and a folder
trained with other ones is refused rather than resumed. Tracking: one MLflow parent run, nested runs ``wscda``
and ``pplo round <n>`` (tags
``stage`` = ``round``, ``round`` = n; rounds numbered from 1 in every name, tag, log line and metric step, as
CC-SSL's, while the API's ``r`` and the files ``round_<r>.ckpt`` count from 0) with the per-epoch losses and the
discriminator's per-domain accuracy. ``data.val`` (and ``wscda.target_val``)
are *reported* (PCK@0.05/0.1 after every stage); only with ``wscda.select_on_val`` is the first ``data.val``
set also scored after every epoch, the best epoch of each step kept as ``<step>.best.ckpt`` (its curve in
``<step>.best.json``). The steps themselves always continue from their last epoch.

Limitation: the joint keypoint space must equal the animal schema (true for ``coco`` → ``animalpose``,
where every COCO joint has an Animal-Pose counterpart), because the exported checkpoint predicts the
animal schema.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import AfterValidator, Field, model_validator
from torch.utils.data import ConcatDataset, DataLoader

from animalpose.adapt.ccssl import CCSSLSection
from animalpose.adapt.selection import RoundSchedule, keep_fractions_validator
from animalpose.adapt.wscda.datasets import (
    Tagged,
    consistency_predict_crops,
    crops_mismatch,
    load_matching,
    predict_crops,
    read_unlabelled,
    report_pck,
    species_of,
    stream_crops,
)
from animalpose.adapt.wscda.joint_space import build_joint_space
from animalpose.adapt.wscda.loop import WSCDAFitConfig, fit_wscda
from animalpose.adapt.wscda.losses import WSCDALossWeights
from animalpose.adapt.wscda.mixing import MixedBatchSampler, select_few_labelled
from animalpose.adapt.wscda.network import export_pose_network, splits_for_wscda, wscda_from_pose_network
from animalpose.adapt.wscda.pplo import PseudoLabels, run_pplo
from animalpose.adapt.wscda.training import WSCDABatch
from animalpose.atomic import remove_temporaries, write_json_atomic
from animalpose.config import (
    ExistingPath,
    ExperimentConfig,
    KeyedError,
    ResolvedPath,
    SchemaName,
    Section,
    flatten,
    to_dict,
)
from animalpose.data.augment import Augmenter, build_augmenter
from animalpose.data.dataset import SkippedImages, TopDownDataset, collate_skip, images_left_out
from animalpose.data.records import PoseRecord
from animalpose.data.transforms import crop_to_original, transform_points_batched
from animalpose.engine.build import (
    augment_overrides,
    build_data,
    is_generated_record,
    load_records,
    make_codec,
    make_model,
    pick_device,
)
from animalpose.engine.checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from animalpose.engine.trainer import seed_everything
from animalpose.errors import ConfigError
from animalpose.models.factory import MODELS
from animalpose.threads import loader_workers
from animalpose.tracking import Tracker


class WSCDASection(Section):
    """The ``wscda:`` section (defaults: the paper's α = −1, β = 500; choices documented in ``losses``)."""

    human: list[ExistingPath] = Field(default_factory=list)
    human_schema: SchemaName = "coco"
    # None: every labelled animal of data.train; a {species: count} table (a count of None: all of that species)
    labelled_per_species: Annotated[int, Field(ge=1)] | dict[str, Annotated[int, Field(ge=0)] | None] | None = 10
    ratio: list[float] = Field(default_factory=lambda: [2.0, 1.0, 1.0], min_length=3, max_length=3)
    scheme: Literal["alternating", "grl"] = "alternating"
    alpha: float = -1.0
    beta: float = Field(default=500.0, ge=0)
    w1: float = Field(default=1.0, ge=0)
    w2: float = Field(default=1.0, ge=0)
    reduction: Literal["mean", "sum"] = "mean"
    discriminator_lr: float | None = Field(default=None, gt=0)
    discriminator_hidden: int = Field(default=256, ge=1)
    discriminate_on: Literal["features", "adapted"] = "features"
    # two_way: the paper's discriminator (human / animal, source / target); three_way adds synthetic / real
    # (generated animals as an extra labelled source, issue 29), weighted w3 inside L_DDL
    discriminator: Literal["two_way", "three_way"] = "two_way"
    w3: float = Field(default=1.0, ge=0)
    epochs: int | None = Field(default=None, ge=1)
    steps_per_epoch: int = Field(default=100, ge=1)
    init_checkpoint: ExistingPath | None = None
    pplo_rounds: int = Field(default=0, ge=0)
    pplo_epochs: int = Field(default=1, ge=1)
    keep_fractions: Annotated[list[float], AfterValidator(keep_fractions_validator)] = Field(
        default_factory=lambda: [0.2, 0.4, 0.6, 0.8])
    # which joints PPLO keeps: confidence (the paper: the single-view heatmap peak) or consistency (CC-SSL's
    # check with its default views, ccssl.CCSSLSection: the peak of the heatmaps averaged over them)
    pplo_filter: Literal["confidence", "consistency"] = "confidence"
    target_val: list[ExistingPath] = Field(default_factory=list)
    select_on_val: bool = False
    out_dir: ResolvedPath | None = None

    def loss_weights(self) -> WSCDALossWeights:
        return WSCDALossWeights(self.alpha, self.beta, self.w1, self.w2, self.reduction, self.w3)


class WSCDAConfig(ExperimentConfig):
    """An experiment config plus ``wscda``; ``data.train`` = labelled animals, ``data.target`` = unlabelled."""

    wscda: WSCDASection = Field(default_factory=WSCDASection)

    @model_validator(mode="after")
    def _one_map_per_joint(self) -> WSCDAConfig:
        # the keypoint estimator's heatmaps are scored and pseudo-labelled one map per joint
        if self.codec.kind == "grmi":
            raise KeyedError("codec.kind", "WS-CDA's keypoint estimator needs one heatmap per joint; G-RMI's "
                                            "heatmaps + offsets (grmi) are not supported")
        return self


@dataclass
class WSCDAResult:
    out_dir: Path
    rounds: list[dict] = field(default_factory=list)
    wscda: dict = field(default_factory=dict)
    last_checkpoint: Path | None = None
    skipped_images: list[dict] = field(default_factory=list)  # target images that did not decode


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


@contextmanager
def _child(parent: Tracker, name: str, tags: dict[str, str] | None = None) -> Iterator[Tracker]:
    """A nested MLflow run for one step, ended FAILED (KILLED on Ctrl-C) when the step raises."""
    child = parent.child(name, tags=tags)
    try:
        yield child
    except BaseException as exc:
        child.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    child.end()


class WSCDARun:
    """WS-CDA on datasets as the paper's named steps: :meth:`adversarial`, then :meth:`pplo_round` for
    r = 0 .. :attr:`num_rounds` − 1, then :meth:`result`.

    Construction reads the data and builds the network (seeded by ``train.seed``, in a fixed order, so
    every object on the same config starts from the same weights and RNG state). Each step writes its
    checkpoints and ``state.json`` when it finishes; a new object on the same folder resumes after the last
    finished step and continues bit for bit as the uninterrupted run would (the step's checkpoint holds the
    RNG state at its end, restored before the next step). A finished step called again returns its recorded
    metrics without training; a round asked for before the one before it finished is an error.

    As a context manager it ends the MLflow run it owns (``tracker=None`` and ``tracking.enabled``):
    FINISHED, KILLED on Ctrl-C, FAILED on any other exception. A tracker given by the caller is left open.
    """

    def __init__(self, cfg: WSCDAConfig, out_dir: str | Path | None = None, *, tracker: Tracker | None = None,
                 progress: bool = True):
        w = cfg.wscda
        self.cfg, self.progress = cfg, progress
        self.out = Path(out_dir or w.out_dir or "runs/wscda")
        self.out.mkdir(parents=True, exist_ok=True)
        # a kill inside a write (a stage checkpoint, state or curve JSON) leaves its temporary file
        left = remove_temporaries(self.out, recursive=True)
        if left:
            _log(f"removed {len(left)} temporary file(s) left by an interrupted write: "
                 + ", ".join(str(p.relative_to(self.out)) for p in left), progress)
        if not w.human:
            raise ConfigError("<config>", "wscda.human", "no labelled human data given")
        with torch.device("meta"):  # ask the architecture (no weights allocated), not its name
            splittable = splits_for_wscda(MODELS[cfg.model.name].factory())
        if not splittable:
            raise ConfigError("<config>", "model.name", f"WS-CDA splits a SimpleBaseline-style network (backbone, "
                                                        f"deconv_layers, final_layer), got {cfg.model.name}")
        # the order below (seed, data, augmenter, datasets, network) fixes every RNG draw: keep it
        seed_everything(cfg.train.seed, cfg.train.deterministic)
        self.device = pick_device(cfg.train.device)
        data = build_data(cfg)
        self.schema, self.norm, self.codec = data.schema, data.normalization, make_codec(cfg)
        self.image_cache = data.train.image_cache  # every stream's images decoded once a run (data.cache_mb)
        space = build_joint_space(w.human_schema, self.schema.name)
        if space.joints != self.schema.joints:
            raise ConfigError("<config>", "wscda.human_schema",
                              f"{w.human_schema} joints without a {self.schema.name} counterpart would need extra "
                              f"heatmap channels ({', '.join(space.joints[self.schema.num_joints:])}); not supported")
        self.udp = self.codec.udp
        # one augmenter for every stream (humans, few labelled animals, target, pseudo-labels): the preset with
        # the config's own ranges, as in the engine
        self.augment = None if cfg.augment.preset == "none" else build_augmenter(
            cfg.augment.preset, self.schema, tuple(cfg.data.input_size), udp=self.udp, **augment_overrides(cfg))

        animals = data.train.records
        species = [species_of(r) for r in animals]
        per_species = w.labelled_per_species
        if isinstance(per_species, dict):
            per_species = {k: species.count(k) if v is None else v for k, v in per_species.items()}
        self.few = list(animals) if per_species is None else [
            animals[i] for i in select_few_labelled(species, per_species, cfg.train.seed,
                                                    where="wscda.labelled_per_species")]
        human_records, _, human_pad = load_records(list(w.human), cfg, w.human_schema)
        self.humans = [replace(r, keypoints=space.lift(r.keypoints, "human").astype(np.float32),
                               schema=self.schema.name) for r in human_records]
        self.target_records, self.target_truth, self.pad_target = read_unlabelled(cfg.data.target, self.schema, cfg)
        if w.discriminator == "three_way":
            generated = {is_generated_record(r) for r in [*self.humans, *self.few, *self.target_records]}
            if generated != {False, True}:
                kind = "generated" if True in generated else "photographed"
                raise ConfigError("<config>", "wscda.discriminator", f"three_way tells synthetic from real samples, "
                                                                     f"but every human and animal is {kind}")
        self.human_set = self._topdown(self.humans, self.augment, human_pad, cfg.train.seed)
        self.few_set = self._topdown(self.few, self.augment, data.train.padding, cfg.train.seed + 1)
        self.target_plain = self._topdown(self.target_records, None, self.pad_target, cfg.train.seed)
        self.report_sets: dict[str, TopDownDataset] = dict(data.val)
        if w.select_on_val and not data.val:
            raise ConfigError("<config>", "wscda.select_on_val", "choosing epochs on validation needs data.val")
        # the set each epoch is scored on when choosing epochs: the first of data.val
        self.select_set = next(iter(data.val.values()), None) if w.select_on_val else None
        for path in w.target_val:
            recs, _, vpad = load_records([path], cfg, self.schema)
            self.report_sets[f"target_val/{Path(path).stem}"] = self._topdown(recs, None, vpad, cfg.train.seed)

        self.pose = make_model(cfg, self.schema)
        for name in ("backbone", "deconv_layers", "final_layer"):
            if not hasattr(self.pose.net, name):
                raise ConfigError("<config>", "model.name", f"WS-CDA splits a SimpleBaseline-style network "
                                                            f"(simplebaseline18..152); {cfg.model.name} has no {name}")
        if w.init_checkpoint is not None:
            n = load_matching(self.pose, w.init_checkpoint)
            _log(f"initialised {n} tensors from {w.init_checkpoint}", progress)
        self.model = wscda_from_pose_network(self.pose.net, discriminator_hidden=w.discriminator_hidden,
                                             discriminate_on=w.discriminate_on, adapter="linear",
                                             discriminator_outputs=3 if w.discriminator == "three_way" else 2)
        self.schedule = RoundSchedule(tuple(w.keep_fractions))
        self.config_dict = to_dict(cfg)
        self.extra = {"normalization": self.norm.to_dict(), "method": "wscda"}
        # the finished step whose weights the network holds (None: the initial network)
        self._holds: str | None = None

        self.state_path = self.out / "state.json"
        self.state: dict = (json.loads(self.state_path.read_text()) if self.state_path.is_file()
                            else {"stages": [], "rounds": []})
        # each stream's crop paddings: a folder trained with other crops (e.g. before per-source padding, when a
        # stream mixing generated and photographed files took one padding) is not resumed under these
        self.crops = stream_crops({"human": self.humans, "animals": list(animals), "target": self.target_records})
        if self.state["stages"] or self.state["rounds"]:
            why = crops_mismatch(self.state.get("crops"), self.crops)
            if why is not None:
                raise ConfigError(str(self.state_path), "crops", f"this run folder was {why}; resuming it would "
                                                                 f"mix two crop setups: use a new output folder")
        self.state["crops"] = self.crops
        self._owns_tracker = tracker is None and cfg.tracking.enabled
        if self._owns_tracker:
            tracker = Tracker(cfg.tracking.experiment, "wscda", uri=cfg.tracking.uri,
                              resume_run_id=self.state.get("run_id")).start()
            self.state["run_id"] = tracker.run_id
        self.tracker = tracker or Tracker(enabled=False)
        if not self.state.get("params_logged"):
            self.tracker.log_params(flatten(self.config_dict))
            self.state["params_logged"] = True

    # -- the steps ---------------------------------------------------------------------------------

    @property
    def num_rounds(self) -> int:
        """The number of PPLO rounds (``wscda.pplo_rounds``)."""
        return self.cfg.wscda.pplo_rounds

    @property
    def rounds_done(self) -> int:
        return len(self.state["rounds"])

    @property
    def last_step(self) -> str | None:
        """The name (and checkpoint stem) of the last finished step: ``round_<r>``, ``wscda`` or None."""
        if self.state["rounds"]:
            return f"round_{self.rounds_done - 1}"
        return "wscda" if "wscda" in self.state["stages"] else None

    def adversarial(self) -> dict[str, float]:
        """The WS-CDA stage: ``wscda.epochs`` epochs of adversarial training on humans, the few labelled
        animals and the unlabelled target (α·L_DDL + β·L_pose); writes ``wscda.ckpt``. Returns its metrics
        (last epoch's ``train/*`` and ``<report set>/pck@α``)."""
        if "wscda" in self.state["stages"]:
            return self.state["wscda"]
        w, seed = self.cfg.wscda, self.cfg.train.seed
        _log(f"WS-CDA: {len(self.humans)} humans, {len(self.few)} labelled animals, "
             f"{len(self.target_records)} target", self.progress)
        epochs = w.epochs or self.cfg.train.epochs
        with _child(self.tracker, "wscda") as child:
            target = Tagged(self._topdown(self.target_records, self.augment, self.pad_target, seed + 2), 1, 1, False)
            history = self._train("wscda", target, epochs, child)
            self.state["wscda"], _ = self._finish("wscda", history, child, epochs)
        self.state["stages"].append("wscda")
        self._save_state()
        return self.state["wscda"]

    def pplo_round(self, r: int) -> dict:
        """PPLO round ``r``: predict the target crops, keep the most confident joints of the schedule's
        fraction for ``r`` (:func:`~animalpose.adapt.wscda.pplo.run_pplo`, for this round), train
        ``wscda.pplo_epochs`` epochs with the target supervised by them; writes ``round_<r>.ckpt``.

        Returns the round's record: ``round``, ``kept``, ``coverage``, ``threshold``, ``pseudo/*`` (with
        target truth) and the metrics of :meth:`adversarial`'s form.
        """
        if not 0 <= r < self.num_rounds:
            raise ValueError(f"PPLO round {r} outside 0..{self.num_rounds - 1} (wscda.pplo_rounds)")
        if r < self.rounds_done:
            return self.state["rounds"][r]
        if "wscda" not in self.state["stages"]:
            raise RuntimeError("PPLO round 0 needs the finished WS-CDA stage: call adversarial() first")
        if r > self.rounds_done:
            raise RuntimeError(f"PPLO round {r} asked for before round {self.rounds_done} finished")
        self._restore()
        with _child(self.tracker, f"pplo round {r + 1}", tags={"stage": "round", "round": str(r + 1)}) as child:
            coords, conf, mats, idx = self._predict_target(r)
            records = self.target_plain.records
            missed = images_left_out(records, [records[i] for i in idx], "PPLO's prediction pass")
            skipped = SkippedImages(self.state.get("skipped_images"))
            skipped.add({"skipped_images": missed})
            self.state["skipped_images"] = skipped.to_list()  # recorded (state.json, MLflow, --json), not logged
            if missed:
                child.log_dict({"count": len(skipped), "images": skipped.to_list()}, "data/skipped_images.json")
            truth = self._crop_truth(mats, idx)
            threshold = None if truth is None else 0.05 * self.cfg.data.input_size[0]

            def train(labels: PseudoLabels) -> tuple[dict, Path]:
                return self._train_on_pseudo_labels(r, labels, mats, idx, child)

            (done,) = run_pplo(lambda: (coords, conf), train, r + 1, self.schedule, truth=truth,
                               threshold=threshold, start_round=r)
            sel = done.labels.selection
            summary = {"round": r, "kept": sel.num_kept, "coverage": sel.coverage, "threshold": sel.threshold,
                       "pseudo/skipped_images": len(missed), "data/skipped_images": len(skipped),
                       **{f"pseudo/{k}": v for k, v in done.quality.items()}}
            metrics, _ = done.train_result
            child.log_metrics(_scalars(summary), step=r + 1)
        self.state["rounds"].append({**summary, **metrics})
        self.tracker.log_metrics(_scalars(self.state["rounds"][-1]), step=r + 1)
        self._save_state()
        return self.state["rounds"][r]

    def evaluate(self) -> dict[str, float]:
        """``<report set>/pck@α`` of the network after the last finished step (the initial one before any);
        reported, never used to select. On a new object on a resumed folder it first restores that step (network
        and RNG, as the next step would); the evaluation itself leaves the RNG alone, so it may go between steps."""
        self._restore()
        self.pose.to(self.device)  # before any step the network is still where it was built
        with torch.random.fork_rng(devices=[]):  # the loaders draw a seed from the global torch RNG
            return self._report()

    def result(self) -> WSCDAResult:
        """The finished steps' metrics and the last checkpoint; records ``state.json`` in the tracker."""
        self.tracker.log_dict(self.state, "wscda_state.json")
        last = self.last_step
        return WSCDAResult(self.out, self.state["rounds"], self.state.get("wscda", {}),
                           None if last is None else self.out / f"{last}.ckpt",
                           list(self.state.get("skipped_images", [])))

    def close(self, status: str = "FINISHED") -> None:
        """End the MLflow run this object owns (a caller's tracker is left open)."""
        if self._owns_tracker:
            self.tracker.end(status)

    def __enter__(self) -> WSCDARun:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close("FINISHED" if exc_type is None else "KILLED" if exc_type is KeyboardInterrupt else "FAILED")

    # -- inside the steps --------------------------------------------------------------------------

    def _predict_target(self, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """PPLO round ``r``'s predictions on the plain target crops, as ``wscda.pplo_filter`` scores them:
        (coords (N, K, 2) crop px, confidence (N, K), matrices (N, 2, 3), target indices (N,))."""
        cfg = self.cfg
        if cfg.wscda.pplo_filter == "confidence":
            return predict_crops(self.pose, self.target_plain, self.codec, self.device, cfg.train.batch_size)
        # CC-SSL's check with its defaults (and its per-round view seed), on the crops predict_crops cuts
        return consistency_predict_crops(self.pose, self.target_records, self.schema, self.codec, self.norm,
                                         CCSSLSection().consistency(self.device), self.device,
                                         batch_size=cfg.train.batch_size, padding=self.pad_target,
                                         seed=cfg.train.seed * 1000 + r)

    def _topdown(self, records: list[PoseRecord], aug: Augmenter | None, pad: float, seed: int) -> TopDownDataset:
        return TopDownDataset(records, self.schema, self.codec, aug, padding=pad, normalization=self.norm, seed=seed,
                              image_cache=self.image_cache)

    def _save_state(self) -> None:
        write_json_atomic(self.state_path, self.state, indent=2)

    def _restore(self) -> None:
        """Load the last finished step's network (discriminator included, adapter folded again) and the RNG
        state at its end, unless this object ran that step itself.

        The data streams draw from their own seeded generators, so on CPU the weights do not depend on the
        global RNG today; restoring it keeps a resumed run exact for anything that will (a model with dropout,
        say), as :func:`~animalpose.adapt.wscda.loop.fit_wscda` does within a step."""
        last = self.last_step
        if last is None or last == self._holds:
            return
        schema = self.schema
        self.model.load_state_dict(load_checkpoint(self.out / f"{last}.train.ckpt", schema=schema)["model"])
        export_pose_network(self.model, self.pose.net)
        self.model.to(self.device)
        rng = load_checkpoint(self.out / f"{last}.ckpt", schema=schema).get("rng")
        if rng:
            set_rng_state(rng)
        self._holds = last
        _log(f"resuming after stage {last}", self.progress)

    def _train(self, name: str, target_set: Tagged, epochs: int, child: Tracker) -> list[dict]:
        """``epochs`` epochs of mixed batches (humans, few labelled animals, ``target_set``), resumable."""
        w, cfg = self.cfg.wscda, self.cfg
        sets = [Tagged(self.human_set, 0, 0, True), Tagged(self.few_set, 1, 0, True), target_set]
        sampler = MixedBatchSampler([len(s) for s in sets], cfg.train.batch_size, w.ratio, w.steps_per_epoch,
                                    seed=cfg.train.seed, where="wscda.ratio")
        loader = DataLoader(ConcatDataset(sets), batch_sampler=sampler, collate_fn=collate_skip,
                            num_workers=loader_workers(cfg.data.workers, self.device))

        def batches(epoch: int) -> Iterator[WSCDABatch]:
            sampler.set_epoch(epoch)
            for s in (self.human_set, self.few_set, target_set.base):
                s.set_epoch(epoch)
            for b in loader:
                if "image" in b:
                    yield WSCDABatch(b["image"], b["target"], b["target_weight"], b["y"], b["z"], b["s"])

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            child.log_metrics(metrics, step=epoch)
            if self.select_set is not None:
                child.log_metrics(self._score_epoch(name, epoch), step=epoch)

        fit = WSCDAFitConfig(w.scheme, epochs, w.steps_per_epoch, cfg.train.lr, w.discriminator_lr, w.loss_weights())
        return fit_wscda(self.model, batches, fit, schema=self.schema, checkpoint=self.out / f"{name}.train.ckpt",
                         resume=True, config=self.config_dict, device=self.device, progress=self.progress,
                         on_epoch=on_epoch)

    def _score_epoch(self, name: str, epoch: int) -> dict[str, float]:
        """``wscda.select_on_val``: score the network after ``epoch`` (0-based) of step ``name`` on the first
        ``data.val`` set and keep it as ``<name>.best.ckpt`` when its PCK@0.05 beats the step's earlier epochs
        (the curve is ``<name>.best.json``). Works on a folded copy, under a forked RNG, so training goes on
        exactly as without it. An interruption between an epoch's training checkpoint and this leaves that
        epoch out of the choice."""
        curve_path = self.out / f"{name}.best.json"
        curve = json.loads(curve_path.read_text()) if curve_path.is_file() else {"epochs": [], "best_epoch": None}
        pose, model = copy.deepcopy((self.pose, self.model))  # one memo: the copy keeps the shared modules shared
        export_pose_network(model, pose.net)
        with torch.random.fork_rng(devices=[]):
            scores = report_pck(pose, self.select_set, self.device, self.cfg.train.batch_size)
        entry = {"epoch": epoch + 1, **scores}
        curve["epochs"] = [e for e in curve["epochs"] if e["epoch"] != epoch + 1] + [entry]
        best = next((e for e in curve["epochs"] if e["epoch"] == curve["best_epoch"]), None)
        if best is None or scores.get("pck@0.05", -1.0) > best.get("pck@0.05", -1.0):
            save_checkpoint(self.out / f"{name}.best.ckpt", model=pose.state_dict(), schema=self.schema,
                            config=self.config_dict, epoch=epoch + 1, step=epoch + 1,
                            metrics={f"val/{k}": v for k, v in scores.items()}, extra=self.extra)
            curve["best_epoch"] = epoch + 1
        write_json_atomic(curve_path, curve, indent=2)
        return {f"val/{k}": v for k, v in scores.items()}

    def _report(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for set_name, ds in self.report_sets.items():
            metrics.update({f"{set_name}/{k}": v for k, v in
                            report_pck(self.pose, ds, self.device, self.cfg.train.batch_size).items()})
        return metrics

    def _finish(self, name: str, history: list[dict], child: Tracker, step: int,
                log_step: int | None = None) -> tuple[dict, Path]:
        """Fold the adapter into the pose network, report, write ``<name>.ckpt`` (with the RNG state); the
        metrics go to MLflow at ``log_step`` (default ``step``)."""
        export_pose_network(self.model, self.pose.net)
        self._holds = name
        metrics = {f"train/{k}": v for k, v in (history[-1] if history else {}).items()}
        metrics.update(self._report())
        ckpt = save_checkpoint(self.out / f"{name}.ckpt", model=self.pose.state_dict(), schema=self.schema,
                               config=self.config_dict, epoch=step, step=step, metrics=metrics, extra=self.extra)
        child.log_metrics(metrics, step=step if log_step is None else log_step)
        return metrics, ckpt

    def _crop_truth(self, mats: np.ndarray, idx: np.ndarray) -> np.ndarray | None:
        """(N, K, 3) target truth in the crop pixels of ``mats`` (N, 2, 3), or None without target labels."""
        if self.target_truth is None:
            return None
        return transform_points_batched(self.target_truth[idx], mats)

    def _train_on_pseudo_labels(self, r: int, labels: PseudoLabels, mats: np.ndarray, idx: np.ndarray,
                                child: Tracker) -> tuple[dict, Path]:
        """Round ``r``'s training with the target crops ``idx`` (N,) supervised by ``labels`` (crop frame
        ``mats`` (N, 2, 3)); returns the stage metrics and ``round_<r>.ckpt``."""
        _log(f"PPLO round {r + 1}: kept {labels.selection.num_kept} joints "
             f"({100 * labels.selection.coverage:.0f}%)", self.progress)
        xy = crop_to_original(labels.keypoints[..., :2], mats)
        pseudo = [replace(self.target_records[i], keypoints=np.concatenate([xy[n], labels.keypoints[n, :, 2:]], -1)
                          .astype(np.float32)) for n, i in enumerate(idx)]
        target = Tagged(self._topdown(pseudo, self.augment, self.pad_target, self.cfg.train.seed + 10 + r), 1, 1, True)
        history = self._train(f"round_{r}", target, self.cfg.wscda.pplo_epochs, child)
        return self._finish(f"round_{r}", history, child, r, log_step=r + 1)


def run_wscda(cfg: WSCDAConfig, out_dir: str | Path | None = None, *, tracker: Tracker | None = None,
              progress: bool = True) -> WSCDAResult:
    """Run (or resume) WS-CDA and its PPLO rounds; returns the stage metrics and the last checkpoint."""
    with WSCDARun(cfg, out_dir, tracker=tracker, progress=progress) as run:
        run.adversarial()
        for r in range(run.num_rounds):
            run.pplo_round(r)
        return run.result()


def _scalars(record: dict) -> dict[str, float]:
    """A round record's numbers for MLflow, without its 0-based ``round`` index (the step and tag say which)."""
    return {k: v for k, v in record.items() if isinstance(v, int | float) and k != "round"}
