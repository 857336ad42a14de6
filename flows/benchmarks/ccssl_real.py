"""`animalpose bench ccssl-real`: does the unlabelled video of a real lab project help its supervised model?

Issue 23, item 5, on two real projects (:mod:`flows.benchmarks.ccssl_real_data`: ``--project mirror-mouse``, the
Lightning Pose example with a separate unlabelled video; ``--project sleap``, the fully labelled SLEAP fly clip
split in time). Per seed, the arms (``--arms``, default all that apply):

- **supervised**: the project's experiment config (``configs/experiments/{mirror_mouse,sleap_clip}.yaml``) trained
  by the engine on the train labels; every other arm continues from its last checkpoint;
- **control** (λ = 0): the same extra epochs, rounds, optimiser restart and lr as the adapted arms with the CC-SSL
  trainer, on the labels alone (no pseudo-labels, no consistency views, no unsupervised term): the equal-budget
  control every other arm is paired with;
- **temporal**, **pca**, **multiview**: the control plus one of Lightning Pose's unsupervised terms on the
  unlabelled frames (:mod:`animalpose.adapt.temporal_loss`, :mod:`animalpose.adapt.pca_loss`,
  :mod:`animalpose.adapt.multiview_loss`; their settings from the project's adapt config, their weights from
  ``--temporal-weight`` / ``--pca-weight`` / ``--multiview-weight``, by default Lightning Pose's default weight
  carried over to our heatmap loss's scale, :func:`default_weight`); CC-SSL's pseudo-labels off. The multi-view
  term needs views of one body part in one frame: mirror-mouse only;
- **combined**: the control plus every term that applies, together;
- **ccssl**: CC-SSL's pseudo-labels (``configs/adapt/ccssl_{mirror_mouse,sleap_clip}.yaml``, every ``frame_step``-th
  video frame, temporal check on), the unsupervised terms off.

Every model is evaluated on the project's labelled val frames (for choosing settings) and test frames (never used
for training or selection; each arm keeps its last epoch), every round of an adapted arm too: mean and median
pixel error in the original frame over the labelled joints, and PCK@α with the library's ``bbox`` normaliser
(:func:`animalpose.evaluation.pck_bbox`: α × the longer side of the box around the instance's labelled joints;
mirror-mouse test frames 350–380 px, so PCK@0.05 ≈ 18 px). The summary is mean ± std (ddof 1) over seeds per arm
(test, and val beside it) and the paired differences arm − control per seed on test (negative pixel error: the
arm is better).

``--screen``: a screen of settings (e.g. a term's weight) on val. Only the named arms are trained (and the
supervised model they start from), each is scored on val alone (no test figure is computed, so none can steer the
choice) and cached as ``screen.json`` in its folder; the bench writes ``OUT/<project>/ccssl_real_screen.json``. The
training folders are the full run's, so a later full run with the same settings reuses the training.

``--calibrate-on half``: the adapted arms' rules that read labelled frames (``ccssl.calibration_data``: the joint
gate, the presence floors, an ``auto`` view reference) calibrate on every other val frame and only the other frames
are scored as val (:func:`flows.benchmarks.ccssl_real_data.split_calibration`), so that a screen of such a rule is
not scored on the frames it read. The default (``val``) calibrates on the val frames that are also scored. The
supervised models are shared by both (their halved-val figures go to ``result_half.json`` / ``screen_half.json``).

``--terms-from-scratch``: the term arms as Lightning Pose trains its semi-supervised models (:func:`from_scratch`):
a fresh network, the supervised arm's whole schedule, the terms on the unlabelled frames in every step from the first
(ramped in by ``ccssl.term_anneal_epochs``); their control is then the supervised arm, trained for the same epochs on
the labels alone. Folders ``<arm>_scratch_w<weights>``; the other arms are unchanged and shared.

``--held-out-unlabelled``: the transductive setting. The val and test frames' images, labels dropped, join the
adapted arms' unlabelled target (:func:`flows.benchmarks.ccssl_real_data.add_held_out_frames`), as a lab's video of
the sessions it analyses would; the SLEAP clip's test flies are already in its video by default. Its own cache key:
the adapted arms' results are apart from the inductive ones; the supervised model and the λ = 0 control (which never
trains on the target) are shared. ``--val-unlabelled`` adds the val frames' images alone: the test frames stay unseen.

Caching: each (seed, arm) is a folder ``OUT/<project>/seed_<s>/<arm>/`` with ``settings.json`` (written before the
work) and ``result.json`` (after); a rerun with the same ``OUT`` reuses finished arms, resumes an interrupted
supervised run from its last checkpoint and an adapted one after its last finished round, and refuses an arm
folder written with other settings (DataError naming the file). An arm's settings are the project, split and
configs (their paths and the digests of their contents, so an edited template or base config is never taken for
the one a cached arm ran with), and for the adapted arms the adapt overrides and that arm's own term weights, so
adding an arm or changing another arm's weight reuses the rest. An arm with unsupervised terms is named by its weights
(``seed_0/temporal_w0.000457/``), so several weights of one arm share one ``OUT`` and its supervised model.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import typer

from animalpose.adapt.ccssl import CCSSLConfig, run_ccssl
from animalpose.adapt.term_weights import balanced_weight, lightning_pose_weight
from animalpose.atomic import write_json_atomic
from animalpose.config import ExperimentConfig, config_digest, load_config
from animalpose.data.records import PoseRecord
from animalpose.engine.checkpoint import load_checkpoint
from animalpose.engine.train import train
from animalpose.evaluation import bbox_normalisers, pck_bbox, pixel_errors
from animalpose.keypoints import CONFIG_ROOT
from flows.benchmarks.ccssl_real_data import (
    SLEAP_SPLIT,
    Prepared,
    SleapSplit,
    add_held_out_frames,
    prepare_mirror,
    prepare_sleap,
    split_calibration,
)
from flows.benchmarks.harness import (
    REAL_DATA,
    SEEDS_HELP,
    SeedFolder,
    Stopwatch,
    check_settings,
    echo_result,
    key_values,
    paired,
    parse_seeds,
    read_json,
    stats,
)
from flows.benchmarks.inference import Loaded, crop_outputs
from flows.benchmarks.pseudolabel_truth import round_truth_errors

METRICS = ("pixel_error", "pixel_error_median", "pck@0.05", "pck@0.1")
#: what the adapted arms' rules may calibrate on (BenchSettings.calibrate_on)
CALIBRATE_ON = ("val", "half")
#: the BenchSettings that only add to the adapted arms' unlabelled target: in no key while off, and never in the
#: supervised model's or the control's (which never trains on the target)
TARGET_ONLY = ("held_out_unlabelled", "val_unlabelled")
ARMS = ("supervised", "control", "temporal", "pca", "multiview", "combined", "ccssl")
#: each unsupervised term's weight key in the ``ccssl`` section
TERM_WEIGHTS = {"temporal": "temporal_loss_weight", "pca": "pca_loss_weight", "multiview": "multiview_loss_weight"}
#: Lightning Pose's default weight of each unsupervised term, faithful: log_weight 5 in its config, weight
#: 1 / (2 e^5) (``lightning_pose.losses.losses.Loss.weight``) against its heatmap MSE's 1 / (2 e^0). Its heatmap
#: loss is ~7× larger than ours for the same miss, so the bench's default is :func:`default_weight` instead; pass
#: this value (``--temporal-weight 0.003369``) for the faithful number.
LIGHTNING_POSE_WEIGHT = round(lightning_pose_weight(), 6)


@dataclass(frozen=True)
class Project:
    """A real project of the benchmark: its data, configs, the unsupervised terms that apply and the video step."""

    name: str
    data: Path
    experiment: Path
    adapt: Path
    terms: tuple[str, ...]
    frame_step: int


@functools.cache  # read once per project: the property asks for it for every arm key and folder
def default_weight(project: Project) -> float:
    """The bench's default weight of every unsupervised term on ``project``: Lightning Pose's default 1 / (2 e^5)
    rescaled to our heatmap loss (:func:`animalpose.adapt.term_weights.balanced_weight`: the ratio of the two
    libraries' heatmap-loss scales for the project's codec σ and heatmap size), so that the term weighs against the
    supervised loss as in Lightning Pose; 0.000457 for both projects (σ 1.5, 32×32 maps), rounded to 6 digits."""
    cfg = load_config(project.experiment, ExperimentConfig, [])
    return round(balanced_weight(lightning_pose_weight(), cfg.codec.sigma, cfg.data.heatmap_size), 6)


PROJECTS = {
    "mirror-mouse": Project("mirror-mouse", REAL_DATA / "mirror-mouse",
                            CONFIG_ROOT / "experiments" / "mirror_mouse.yaml",
                            CONFIG_ROOT / "adapt" / "ccssl_mirror_mouse.yaml", ("temporal", "pca", "multiview"), 6),
    "sleap": Project("sleap", REAL_DATA / "sleap-clip", CONFIG_ROOT / "experiments" / "sleap_clip.yaml",
                     CONFIG_ROOT / "adapt" / "ccssl_sleap_clip.yaml", ("temporal", "pca"), 5),
}


@dataclass(frozen=True)
class BenchSettings:
    """What the benchmark runs. ``overrides`` (``key=value``) go to both configs, ``adapt_overrides`` to the adapted
    arms' config only (after the bench's own data/seed/tracking overrides). None: the project's default."""

    project: str = "mirror-mouse"
    data: Path | None = None
    train_range: tuple[str, str] = ("img01", "img50")  # mirror-mouse: img51-img60 of SOURCES.md's train frames
    val_range: tuple[str, str] = ("img51", "img60")  # are held out for choosing settings
    test_range: tuple[str, str] = ("img61", "img90")
    sleap_split: SleapSplit = SLEAP_SPLIT
    frame_step: int | None = None
    max_frames: int | None = None
    overrides: tuple[str, ...] = ()
    adapt_overrides: tuple[str, ...] = ()
    #: (term, weight) pairs; a term left out (or None) takes the project's :func:`default_weight`
    weights: tuple[tuple[str, float], ...] | None = None
    #: what the adapted arms' rules calibrate on: ``val`` (the val frames that are also scored) or ``half``
    #: (:func:`~flows.benchmarks.ccssl_real_data.split_calibration`: half of them, the other half scored)
    calibrate_on: str = "val"
    #: the val and test frames' images (labels dropped) join the adapted arms' unlabelled target (transductive:
    #: :func:`~flows.benchmarks.ccssl_real_data.add_held_out_frames`)
    held_out_unlabelled: bool = False
    #: the val frames' images alone join it (the test frames stay unseen); exclusive with ``held_out_unlabelled``
    val_unlabelled: bool = False
    #: the term arms train from a fresh network over the supervised arm's whole schedule, the terms on from the
    #: first step (Lightning Pose's semi-supervised training: :func:`from_scratch`); the supervised arm is their
    #: equal-budget control
    terms_from_scratch: bool = False

    @property
    def spec(self) -> Project:
        return PROJECTS[self.project]

    @property
    def term_weights(self) -> dict[str, float]:
        """Every term's weight, the project's default where ``weights`` does not name it."""
        given = dict(self.weights or ())
        if len(given) < len(TERM_WEIGHTS):
            given = {t: given.get(t) or default_weight(self.spec) for t in TERM_WEIGHTS}
        return {t: float(given[t]) for t in TERM_WEIGHTS}

    def from_scratch(self, arm: str) -> bool:
        """Whether ``arm`` trains a fresh network (``terms_from_scratch``, and an arm with unsupervised terms)."""
        return self.terms_from_scratch and bool(arm_terms(arm, self.spec))

    def arm_folder(self, arm: str) -> str:
        """An arm's folder name: the arm, and for an arm with unsupervised terms their weights
        (``temporal_w0.000457``; ``combined_w<temporal>_<pca>[_<multiview>]``)."""
        terms = arm_terms(arm, self.spec)
        w = self.term_weights
        scratch = "_scratch" if self.from_scratch(arm) else ""
        return arm if not terms else f"{arm}{scratch}_w" + "_".join(f"{w[t]:g}" for t in terms)

    @property
    def step(self) -> int:
        return self.frame_step or self.spec.frame_step

    def key(self) -> dict:
        """The settings as plain JSON, with the project's defaults filled in and the two configs' digests
        (:func:`animalpose.config.config_digest`: an edited template is another setting)."""
        doc = _plain({**asdict(self), "data": self.data or self.spec.data, "frame_step": self.step,
                      "experiment": self.spec.experiment, "adapt": self.spec.adapt, "weights": self.term_weights,
                      "experiment_sha": _digest(self.spec.experiment), "adapt_sha": _digest(self.spec.adapt)})
        split = ("train_range", "val_range", "test_range") if self.project == "mirror-mouse" else ("sleap_split",)
        for k in {"train_range", "val_range", "test_range", "sleap_split"} - set(split):
            doc.pop(k)
        if self.calibrate_on == "val":  # the settings before these options: the caches of that time stay valid
            doc.pop("calibrate_on")
        for k in (*TARGET_ONLY, "terms_from_scratch"):  # off: in no key (the caches written before them stay valid)
            if not doc[k]:
                doc.pop(k)
        if "sleap_split" in doc and doc["sleap_split"].get("test") is None:
            doc["sleap_split"].pop("test", None)
        return doc

    def arm_key(self, arm: str) -> dict:
        """What one arm's result depends on (stored with it; a mismatch is refused): the supervised arm ignores
        the adaptation's settings, an adapted arm ignores the other arms' term weights."""
        doc = self.key()
        weights = self.term_weights
        doc.pop("weights")
        if arm == "supervised":  # trained on the train frames alone: val is only scored (its own result file)
            for k in ("frame_step", "max_frames", "adapt", "adapt_overrides", "adapt_sha", "calibrate_on",
                      "terms_from_scratch", *TARGET_ONLY):
                doc.pop(k, None)
            return {**doc, "arm": arm}
        if not self.from_scratch(arm):  # the control and CC-SSL start from the supervised model either way
            doc.pop("terms_from_scratch", None)
        if arm == "control":  # lambda 0 and no term: the control never trains on the target (CCSSLTrainer)
            for k in TARGET_ONLY:
                doc.pop(k, None)
        return {**doc, "arm": arm, "terms": {TERM_WEIGHTS[t]: weights[t] for t in arm_terms(arm, self.spec)}}


@functools.cache  # a template is read once per process, not for every arm key
def _digest(path: Path) -> str:
    return config_digest(path)


def _plain(doc: dict) -> dict:
    return json.loads(json.dumps(doc, default=str))


def arm_terms(arm: str, project: Project) -> tuple[str, ...]:
    """The unsupervised terms an arm turns on."""
    if arm == "combined":
        return project.terms
    return (arm,) if arm in TERM_WEIGHTS else ()


def check_arms(arms: Sequence[str], project: Project) -> tuple[str, ...]:
    """``arms`` in the benchmark's order; ValueError for an unknown arm or a term the project cannot use."""
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
    unfit = [a for a in arms if a in TERM_WEIGHTS and a not in project.terms]
    if unfit:
        raise ValueError(f"arm(s) {unfit} do not apply to project {project.name!r} (its terms: "
                         f"{', '.join(project.terms)})")
    return tuple(a for a in ARMS if a in arms)


def default_arms(project: Project) -> tuple[str, ...]:
    return tuple(a for a in ARMS if a not in TERM_WEIGHTS or a in project.terms)


# --------------------------------------------------------------------------------------------------
# data and evaluation


def prepare(settings: BenchSettings, out: Path) -> Prepared:
    """The project's train / val / test label subsets and unlabelled frames under ``out/data``."""
    data = settings.data or settings.spec.data
    if settings.project == "sleap":
        prep = prepare_sleap(data, out, settings.sleap_split, settings.step, settings.max_frames)
    else:
        prep = prepare_mirror(data, out, settings.train_range, settings.val_range, settings.test_range,
                              settings.step, settings.max_frames)
    prep = split_calibration(prep) if settings.calibrate_on == "half" else prep
    if settings.held_out_unlabelled or settings.val_unlabelled:
        return add_held_out_frames(prep, test=settings.held_out_unlabelled)
    return prep


def predict_original(checkpoint: Path, records: list[PoseRecord], batch_size: int = 16) -> np.ndarray:
    """(N, K, 3) predictions (x, y in original-image pixels, heatmap maximum) of a checkpoint's model on plain
    crops of ``records`` (the crop padding of its config; no flip test)."""
    loaded = Loaded.from_checkpoint(checkpoint)
    return crop_outputs(loaded, records, loaded.cfg.data.bbox_padding_real, batch_size).keypoints


def keypoint_metrics(pred: np.ndarray, gt: np.ndarray) -> dict:
    """Pixel error (mean, median over labelled joints) and PCK@0.05/0.1 with the bbox normaliser.

    Args:
        pred: (N, K, 2+) predicted x, y; gt: (N, K, 3) ground truth, visibility 0 = not evaluated.
    """
    gt = np.asarray(gt, dtype=np.float64)
    px = pixel_errors(pred, gt)
    return {"pixel_error": px.mean, "pixel_error_median": px.median,
            "pck@0.05": pck_bbox(pred, gt, 0.05).mean, "pck@0.1": pck_bbox(pred, gt, 0.1).mean,
            "joints": px.count, "normaliser_px": float(np.nanmean(bbox_normalisers(gt)))}


def evaluate_checkpoint(checkpoint: Path, records: list[PoseRecord]) -> dict:
    pred = predict_original(checkpoint, records)
    return keypoint_metrics(pred, np.stack([r.keypoints for r in records]))


def score(checkpoint: Path, prep: Prepared, screen: bool) -> dict:
    """A checkpoint's metrics on val (``{"val": ...}``), and on test too (``"test"``) unless ``screen``."""
    out = {"val": evaluate_checkpoint(checkpoint, prep.val_records)}
    if not screen:
        out["test"] = evaluate_checkpoint(checkpoint, prep.test_records)
    return out


# --------------------------------------------------------------------------------------------------
# arms


def _common(prep: Prepared, seed: int) -> list[str]:
    # the label subsets point at images outside the subsets' own folder
    return [f"data.train=[{prep.train}]", "data.val=[]", f"train.seed={seed}", "tracking.enabled=false",
            "data.allow_outside_root=true"]


def supervised_config(settings: BenchSettings, prep: Prepared, seed: int) -> ExperimentConfig:
    return load_config(settings.spec.experiment, ExperimentConfig, [*_common(prep, seed),
                                                                     *settings.overrides])


def adapt_config(settings: BenchSettings, prep: Prepared, seed: int, source: Path) -> CCSSLConfig:
    """The project's CC-SSL config on the prepared frames from ``source``: the frames are ``frame_step`` video
    frames apart (``ccssl.video_step``: the temporal loss's clips and the flow's gap). The labelled val frames
    are the rules' calibration frames (``ccssl.calibration_data``: a lab's ``data.val``, which the bench leaves
    empty so that no arm chooses an epoch on it)."""
    step = settings.step
    return load_config(settings.spec.adapt, CCSSLConfig, [
        *_common(prep, seed), f"data.target=[{','.join(map(str, prep.targets))}]", f"ccssl.source_checkpoint={source}",
        f"ccssl.calibration_data=[{prep.calibration or prep.val}]",
        f"ccssl.video_step={step}", f"ccssl.flow_max_gap={step}", "ccssl.control=false",
        *settings.overrides, *settings.adapt_overrides])


def control_config(cfg: CCSSLConfig) -> CCSSLConfig:
    """The λ = 0 continuation: same epochs/rounds/lr, no target loss, no consistency views or flow, no
    unsupervised term."""
    return cfg.model_copy(update={"ccssl": cfg.ccssl.as_control()})


def arm_config(cfg: CCSSLConfig, arm: str, settings: BenchSettings) -> CCSSLConfig:
    """The adapted arm ``arm`` of the project's CC-SSL config ``cfg`` (module docstring)."""
    if arm == "ccssl":
        return cfg.model_copy(update={"ccssl": cfg.ccssl.model_copy(update={w: 0.0 for w in TERM_WEIGHTS.values()})})
    ctrl = control_config(cfg)
    weights = settings.term_weights
    on = {TERM_WEIGHTS[t]: weights[t] for t in arm_terms(arm, settings.spec)}
    return ctrl.model_copy(update={"ccssl": ctrl.ccssl.model_copy(update=on)})


def from_scratch(cfg: CCSSLConfig, supervised: ExperimentConfig) -> CCSSLConfig:
    """A term arm's config as Lightning Pose trains a semi-supervised model: a fresh network (no source
    checkpoint, no source-only epochs) trained over the ``supervised`` config's whole schedule (its epochs,
    milestones, rate and optimiser) in one round, the labelled batch and the terms' unlabelled frames in every
    step, so that the supervised model is its equal-budget control. The terms' weights ramp in over
    ``ccssl.term_anneal_epochs`` as ``cfg`` sets it (Lightning Pose's 100: ``--adapt
    ccssl.term_anneal_epochs=100``)."""
    return cfg.model_copy(update={"train": supervised.train, "ccssl": cfg.ccssl.model_copy(update={
        "source_checkpoint": None, "source_epochs": 0, "lr": None, "regenerate_every": supervised.train.epochs,
        "lambda_rounds": None})})


def train_supervised(seed: int, settings: BenchSettings, prep: Prepared, out: Path, *,
                     progress: bool = False) -> tuple[Path, dict]:
    """The supervised model of ``seed`` (trained, resumed or found finished): its last checkpoint and training
    time."""
    folder = out / f"seed_{seed}" / "supervised"
    SeedFolder(folder, settings.arm_key("supervised")).start()
    clock = Stopwatch()
    cfg = supervised_config(settings, prep, seed)
    last = folder / "last.ckpt"
    if not last.is_file() or load_checkpoint(last)["epoch"] < cfg.train.epochs:  # else: finished before
        train(cfg, out_dir=folder, progress=progress, resume=last.is_file())
    return last, clock.lap()


def _screened(path: Path, settings: dict) -> dict | None:
    if not path.is_file():
        return None
    doc = read_json(path)
    check_settings(path, doc.get("settings"), settings)
    return doc


def run_arm(seed: int, arm: str, settings: BenchSettings, prep: Prepared, out: Path, *,
            progress: bool = False, screen: bool = False) -> dict:
    """One (seed, arm): trained (or resumed, or reused) and scored; its result. A full run scores val and test
    (``metrics``: the test figures of the arm's model; ``val``: its val figures; per round both), a ``screen``
    val alone (``val``; cached as ``screen.json``, beside the full run's ``result.json``)."""
    folder = out / f"seed_{seed}" / settings.arm_folder(arm)
    key = settings.arm_key(arm)
    # the supervised model is shared by both calibrations, its val figures are not (halved val: other files)
    half = "_half" if arm == "supervised" and settings.calibrate_on == "half" else ""
    cache = SeedFolder(folder, key, result_name=f"result{half}.json")
    screen_path = folder / f"screen{half}.json"
    old = _screened(screen_path, key) if screen else cache.finished()
    if old is not None:
        return old
    clock = Stopwatch()

    def save(result: dict) -> dict:
        result["times"]["evaluation"] = clock.lap()
        if screen:
            result = {**result, "settings": key, "screen": True}
            write_json_atomic(screen_path, result, indent=2)
            return result
        return cache.save(result)

    source, sup_time = train_supervised(seed, settings, prep, out, progress=progress)
    clock.lap()  # the evaluation's time starts here (it included a fresh supervised model's training)
    if arm == "supervised":
        scores = score(source, prep, screen)
        return save({"seed": seed, "arm": arm, **({} if screen else {"metrics": scores["test"]}),
                     "val": scores["val"], "rounds": [], "epochs": supervised_config(settings, prep, seed).train.epochs,
                     "times": {"train": sup_time}})
    cache.start()
    clock.lap()
    cfg = arm_config(adapt_config(settings, prep, seed, source), arm, settings)
    if settings.from_scratch(arm):
        cfg = from_scratch(cfg, supervised_config(settings, prep, seed))
    res = run_ccssl(cfg, folder / "run", progress=progress)
    trained = clock.lap()
    rounds = []
    for r, m in enumerate(res.rounds):
        scores = score(res.out_dir / f"round_{r}.ckpt", prep, screen)
        row = {"round": r, "epochs": m["epochs"], **scores.get("test", {}), "val": scores["val"]}
        if arm == "ccssl":
            row.update(kept=m.get("pseudo/num_kept"), candidates=m.get("pseudo/num_joints"),
                       kept_by_flow=m.get("pseudo/num_temporal"), threshold=m.get("pseudo/threshold"),
                       # the round's labels of the val frames against their labels (animalpose.adapt.label_report)
                       label_px=m.get("pseudo/calibration_label_px"))
        rounds.append(row)
    last = rounds[-1]
    metrics = {k: v for k, v in last.items() if k not in ("round", "epochs", "val")}
    return save({"seed": seed, "arm": arm, **({} if screen else {"metrics": metrics}), "val": last["val"],
                 "terms": {TERM_WEIGHTS[t]: settings.term_weights[t] for t in arm_terms(arm, settings.spec)},
                 "rounds": rounds, "epochs": cfg.train.epochs, "times": {"train": trained}})


def run_seed(seed: int, arms: Sequence[str], settings: BenchSettings, prep: Prepared, out: Path, *,
             progress: bool = False, screen: bool = False) -> dict:
    """Every arm of one seed: ``{"seed", "arms": {arm: result}}``."""
    results = {}
    for arm in arms:
        if progress:
            print(f"seed {seed}: {arm}", file=sys.stderr, flush=True)
        results[arm] = run_arm(seed, arm, settings, prep, out, progress=progress, screen=screen)
    return {"seed": seed, "arms": results}


# --------------------------------------------------------------------------------------------------
# summary


def summarise(per_seed: list[dict]) -> dict:
    """Mean ± std over seeds per arm and metric on test (``rows``) and val (``val_rows``), and each arm's paired
    difference against the control per seed on test (arm − control; negative pixel error = the arm better), when
    the control ran.

    The std of one seed shows as 0 (:func:`flows.benchmarks.harness.stats`'s ``std_of_one``).
    """
    arms = list(per_seed[0]["arms"])

    def column(arm: str, key: str) -> list[float]:
        return [s["arms"][arm]["metrics"][key] for s in per_seed]

    rows = {a: {m: stats(column(a, m), std_of_one=0.0) for m in METRICS} for a in arms}
    val_rows = {a: {m: stats([s["arms"][a]["val"][m] for s in per_seed], std_of_one=0.0) for m in METRICS}
                for a in arms if all("val" in s["arms"][a] for s in per_seed)}
    diff = {}
    if "control" in arms:
        diff = {a: {m: paired(column(a, m), column("control", m), std_of_one=0.0) for m in METRICS}
                for a in arms if a != "control"}
    return {"rows": rows, "val_rows": val_rows, "minus_control": diff}


def pseudo_truth(out: Path, seeds: Sequence[int], arms: Sequence[str], settings: BenchSettings,
                 prep: Prepared) -> dict:
    """``{arm: {seed: rounds}}``: each adapted arm's pseudo-labels per round against the unlabelled frames' own
    labels (:func:`flows.benchmarks.pseudolabel_truth.round_truth_errors`; the SLEAP clip labels every frame)."""
    return {arm: {str(seed): round_truth_errors(out / f"seed_{seed}" / settings.arm_folder(arm) / "run",
                                                prep.target_truth) for seed in seeds}
            for arm in arms if arm != "supervised"}


def format_pseudo_truth(result: dict) -> str:
    """The kept pseudo-labels' error against the truth per arm, round and seed (where the bench has it)."""
    rows = result.get("pseudo_labels_vs_truth")
    if not rows:
        return ""
    lines = ["| arm | seed | per round: kept share, kept mean px (all mean px) |", "|---|---|---|"]
    for arm, seeds in rows.items():
        for seed, rounds in seeds.items():
            cells = " / ".join(f"{r['kept_share']:.2f}, {r['kept_mean_px']:.1f} ({r['all_mean_px']:.1f})"
                               for r in rounds)
            lines.append(f"| {arm} | {seed} | {cells or '-'} |")
    return "\n".join(lines)


def format_table(result: dict) -> str:
    s = result["summary"]
    lines = ["| arm | pixel error (px) | median px | PCK@0.05 | PCK@0.1 | val pixel error (px) |", "|" + "---|" * 6]
    for name, row in s["rows"].items():
        cells = [f"{row[m]['mean']:.2f} ± {row[m]['std']:.2f}" if m.startswith("pixel")
                 else f"{row[m]['mean']:.3f} ± {row[m]['std']:.3f}" for m in METRICS]
        val = s.get("val_rows", {}).get(name)
        cells.append(f"{val['pixel_error']['mean']:.2f} ± {val['pixel_error']['std']:.2f}" if val else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if s["minus_control"]:
        lines.append("")
    for name, d in s["minus_control"].items():
        per_seed = ", ".join(f"{v:+.2f}" for v in d["pixel_error"]["values"])
        lines.append(f"{name} minus control (λ=0), paired per seed: pixel error {d['pixel_error']['mean']:+.2f} ± "
                     f"{d['pixel_error']['std']:.2f} px (per seed {per_seed}), "
                     f"PCK@0.05 {d['pck@0.05']['mean']:+.3f} ± {d['pck@0.05']['std']:.3f}, "
                     f"PCK@0.1 {d['pck@0.1']['mean']:+.3f} ± {d['pck@0.1']['std']:.3f}")
    return "\n".join(lines)


def format_screen(result: dict) -> str:
    """The val figures of a screen, per seed and arm (with its term weights; per round for the adapted arms)."""
    lines = ["| seed | arm | weights | val pixel error (px) | val median px | val PCK@0.05 | per round (val px) | "
             "per round: the val frames' pseudo-labels (px) |", "|" + "---|" * 8]
    for s in result["per_seed"]:
        for name, a in s["arms"].items():
            v = a["val"]
            weights = ", ".join(f"{k.removesuffix('_loss_weight')} {w:g}" for k, w in a.get("terms", {}).items())
            rounds = " / ".join(f"{r['val']['pixel_error']:.2f}" for r in a.get("rounds", []))
            labels = " / ".join(f"{r['label_px']:.2f}" for r in a.get("rounds", []) if r.get("label_px") is not None)
            lines.append(f"| {s['seed']} | {name} | {weights or '-'} | {v['pixel_error']:.2f} | "
                         f"{v['pixel_error_median']:.2f} | {v['pck@0.05']:.3f} | {rounds or '-'} | {labels or '-'} |")
    return "\n".join(lines)


def run_bench(out: Path, seeds: list[int], settings: BenchSettings | None = None, arms: Sequence[str] | None = None,
              *, progress: bool = False, screen: bool = False) -> dict:
    """Prepare the data, run every arm of every seed, summarise; writes ``out/<project>/ccssl_real_bench.json``
    (``ccssl_real_screen.json`` for a ``screen`` of ``arms`` on val: module docstring)."""
    settings = settings or BenchSettings()
    arms = check_arms(arms, settings.spec) if arms is not None else default_arms(settings.spec)
    out = Path(out).resolve() / settings.project
    clock = Stopwatch()
    prep = prepare(settings, out)
    per_seed = [run_seed(seed, arms, settings, prep, out, progress=progress, screen=screen) for seed in seeds]
    head = {
        "benchmark": "ccssl-real", "project": settings.project, "dataset": str(settings.data or settings.spec.data),
        "split": prep.split, "train_instances": prep.num_train, "val_instances": prep.num_val,
        **({"calibration_instances": prep.num_calibration} if prep.calibration else {}),
        "test_instances": prep.num_test, "target_frames": prep.num_frames + prep.num_held_out,
        "frame_step": settings.step,
        "seeds": list(seeds), "arms": list(arms), "arm_folders": {a: settings.arm_folder(a) for a in arms},
        "weights": settings.term_weights,
    }
    if screen:
        result = {**head, "screen": True, "per_seed": per_seed, **clock.total(), "threads": torch.get_num_threads()}
        write_json_atomic(out / "ccssl_real_screen.json", result, indent=2)
        return result
    result = {
        **head,
        "normaliser": "pck_bbox: alpha x longer side of the box around the instance's labelled joints "
                      "(original pixels)",
        "per_seed": per_seed, "summary": summarise(per_seed),
        **({"pseudo_labels_vs_truth": pseudo_truth(out, seeds, arms, settings, prep)} if prep.target_truth else {}),
        **clock.total(), "threads": torch.get_num_threads(),
    }
    write_json_atomic(out / "ccssl_real_bench.json", result, indent=2)
    return result


def _val_option(text: str, hint: str, project: str, only_for: str, names: str, kind: str) -> tuple[int, ...]:
    """A project's val option (``--sleap-val``, ``--mirror-val``): one integer for each of the comma-separated
    ``names`` (e.g. ``"START,STOP,STEP"``), refused for another project."""
    if project != only_for:
        raise typer.BadParameter(f"only for --project {only_for}", param_hint=hint)
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != len(names.split(",")):
        raise typer.BadParameter(f"{text!r}: give {names} ({kind})", param_hint=hint)
    return values


def check_calibrate_on(value: str) -> None:
    """``--calibrate-on``: one of :data:`CALIBRATE_ON` (BadParameter otherwise)."""
    if value not in CALIBRATE_ON:
        raise typer.BadParameter(f"{value!r}: choose {' or '.join(CALIBRATE_ON)}", param_hint="--calibrate-on")


def mirror_val_ranges(text: str, project: str) -> dict:
    """``--mirror-val FIRST,LAST``: BenchSettings' train range (img01 up to the frame before FIRST) and val range."""
    first, last = _val_option(text, "--mirror-val", project, "mirror-mouse", "FIRST,LAST", "frame numbers")
    if not 2 <= first <= last <= 60:
        raise typer.BadParameter(f"{text!r}: need 2 <= FIRST <= LAST <= 60 (img61-img90 are the test "
                                 "frames, and at least img01 trains)", param_hint="--mirror-val")
    return {"train_range": ("img01", f"img{first - 1:02d}"), "val_range": (f"img{first:02d}", f"img{last:02d}")}


def bench_command(
    project: str = typer.Option("mirror-mouse", help="mirror-mouse | sleap (../shared/data/real, SOURCES.md)."),
    arms: str = typer.Option("", help=f"Comma-separated arms (default: all that apply): {', '.join(ARMS)}."),
    seeds: str = typer.Option("0,1,2", "--seeds", help=SEEDS_HELP),
    out: Path = typer.Option(Path("runs/bench/ccssl_real"), help="Output folder (OUT/<project>/: data, runs, JSON)."),
    data: Path = typer.Option(None, help="The project's folder (default: ../shared/data/real/<project>)."),
    frame_step: int = typer.Option(0, help="Use every N-th video frame (0: the project's, mirror-mouse 6, sleap 5)."),
    max_frames: int = typer.Option(0, help="At most this many video frames (0: all chosen)."),
    sleap_val: str = typer.Option("", help="sleap: the val frames START,STOP,STEP (default 757,1500,30: the lab's "
                                  "val inside the video, never an unlabelled or test frame; the earlier val before "
                                  "the video: 620,720,10)."),
    sleap_video: str = typer.Option("", help="sleap: the unlabelled video's frames START,STOP (default 750,1500)."),
    sleap_test: str = typer.Option("", help="sleap: the test frames' range START,STOP (default: the video's; a "
                                   "range apart from it scores the adaptation on frames its video does not cover)."),
    mirror_val: str = typer.Option("", help="mirror-mouse: the val frames FIRST,LAST (default 51,60: img51-img60); "
                                   "the training frames are img01 up to the one before FIRST, test stays "
                                   "img61-img90 (a larger val to screen on, e.g. 41,60)."),
    calibrate_on: str = typer.Option("val", help="What the adapted arms' rules (ccssl.joint_gate, "
                                     "presence_quantile, an auto view reference) calibrate on: val (the val frames, "
                                     "also scored: a biased screen of those rules) or half (every other val frame; "
                                     "only the rest is scored)."),
    held_out_unlabelled: bool = typer.Option(False, help="The val and test frames' images (labels dropped) join "
                                             "the adapted arms' unlabelled target: transductive, as a lab's video "
                                             "of the sessions it analyses (results apart; the control is shared)."),
    val_unlabelled: bool = typer.Option(False, help="The val frames' images alone (labels dropped) join the "
                                        "adapted arms' unlabelled target; the test frames stay unseen."),
    terms_from_scratch: bool = typer.Option(False, help="The term arms (temporal, pca, multiview, combined) train a "
                                            "fresh network over the supervised schedule with the terms from the "
                                            "first step (Lightning Pose's semi-supervised training; add --adapt "
                                            "ccssl.term_anneal_epochs=100 for its ramp): the supervised arm is their "
                                            "control."),
    temporal_weight: float = typer.Option(None, help="Weight of the temporal arm's term (default: Lightning "
                                          "Pose's, rescaled to our heatmap loss: 0.000457; its faithful 0.003369)."),
    pca_weight: float = typer.Option(None, help="Weight of the pose-PCA arm's term (default as the temporal one)."),
    multiview_weight: float = typer.Option(None, help="Weight of the multi-view arm's term (default likewise)."),
    screen: str = typer.Option("", help="Screen settings on val: only these arms (comma-separated; the supervised "
                                        "model is trained when needed), scored on val alone, no test figure."),
    threads: int = typer.Option(1, help="torch threads."),
    overrides: list[str] = typer.Option(None, "--set", help="Override of both configs key=value (repeatable, "
                                        "before --adapt), e.g. --set train.epochs=60 --adapt train.epochs=9."),
    adapt: list[str] = typer.Option(None, "--adapt", help="Adapted arms' config override key=value (repeatable), "
                                    "e.g. --adapt ccssl.lambda_target=1; a changed setting needs a new --out."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    progress: bool = typer.Option(False, help="Show training progress."),
) -> None:
    """Real lab video (mirror-mouse, SLEAP): supervised, lambda=0 control, Lightning Pose's terms, CC-SSL.

    Each term alone and their combination from the supervised model, beside its equal-budget control; pixel error
    and PCK on held-out labelled frames, paired per seed (module docstring)."""
    seed_list = parse_seeds(seeds)
    if project not in PROJECTS:
        raise typer.BadParameter(f"choose from {', '.join(PROJECTS)}", param_hint="--project")
    if frame_step < 0:
        raise typer.BadParameter("must be >= 1 (0: the project's)", param_hint="--frame-step")
    if arms and screen:
        raise typer.BadParameter("give the screened arms to --screen alone", param_hint="--arms")
    check_calibrate_on(calibrate_on)
    if held_out_unlabelled and val_unlabelled:
        raise typer.BadParameter("--held-out-unlabelled already adds the val frames", param_hint="--val-unlabelled")
    hint, names = ("--screen", screen) if screen else ("--arms", arms)
    try:
        arm_list = check_arms([a.strip() for a in names.split(",") if a.strip()], PROJECTS[project]) if names else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from None
    for name, w in (("--temporal-weight", temporal_weight), ("--pca-weight", pca_weight),
                    ("--multiview-weight", multiview_weight)):
        if w is not None and w <= 0:
            raise typer.BadParameter("must be > 0", param_hint=name)
    split = SLEAP_SPLIT
    if sleap_val:
        start, stop, step = _val_option(sleap_val, "--sleap-val", project, "sleap", "START,STOP,STEP", "integers")
        split = replace(split, val=(start, stop, step))
    if sleap_video:
        split = replace(split, video=_val_option(sleap_video, "--sleap-video", project, "sleap", "START,STOP",
                                                 "frame numbers"))
    if sleap_test:
        split = replace(split, test=_val_option(sleap_test, "--sleap-test", project, "sleap", "START,STOP",
                                                "frame numbers"))
    ranges = mirror_val_ranges(mirror_val, project) if mirror_val else {}
    overrides, adapt = key_values(overrides, "--set"), key_values(adapt, "--adapt")
    torch.set_num_threads(threads)
    settings = BenchSettings(project=project, data=data, frame_step=frame_step or None,
                             max_frames=max_frames or None, sleap_split=split, overrides=overrides, **ranges,
                             adapt_overrides=adapt, calibrate_on=calibrate_on,
                             held_out_unlabelled=held_out_unlabelled, val_unlabelled=val_unlabelled,
                             terms_from_scratch=terms_from_scratch,
                             weights=tuple((t, w) for t, w in (("temporal", temporal_weight), ("pca", pca_weight),
                                                               ("multiview", multiview_weight)) if w is not None))
    result = run_bench(out, seed_list, settings, arm_list, progress=progress, screen=bool(screen))
    table = format_screen(result) if screen else "\n\n".join(filter(None, (format_table(result),
                                                                          format_pseudo_truth(result))))
    echo_result(result, as_json, table,
                f"{project}: {result['split']}; {len(seed_list)} seeds, {result['target_frames']} unlabelled "
                f"instances, {result['wall_seconds']} s wall, {result['cpu_seconds']} s CPU, {result['threads']} "
                f"thread(s), load average {result['load_average']}")
