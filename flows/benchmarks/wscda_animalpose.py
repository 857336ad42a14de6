"""`animalpose bench wscda-animalpose`: WS-CDA on its own dataset, real Animal-Pose photographs (issue 29).

The paper's protocol (Cao et al., "Cross-Domain Adaptation for Animal Pose Estimation", ICCV 2019) on
the real release in ``../shared/data/real/animal-pose`` with its fixed ``splits.json``: the **unseen
species is the horse** (its 453 ``train`` images are the unlabelled target, its 90 ``val`` images
choose epochs, its 180 ``test`` images give every figure); the **labelled animals are cows and sheep**
(their ``train`` splits, all of them or ``--labelled-per-species N`` of each); the **human source** is
generated ``coco``-template humans (the only human set with volume here). Every model predicts the
``animalpose`` schema (20 joints) through the WS-CDA loop (:class:`~animalpose.adapt.wscda.run.WSCDARun`)
on the network and budget of ``configs/adapt/wscda_animalpose.yaml``; the arms differ only in the data
they draw (mixing ratio humans : labelled animals : unlabelled horses), in α and in their start:

- **(a) human_only**: humans only (1 : 0 : 0), α = 0, ``human_epochs`` epochs from scratch;
- **(b) animals_only**: the labelled cows and sheep only (0 : 1 : 0), α = 0, from scratch;
- **(c) wscda**: humans, cows + sheep and unlabelled horses at the config's ratio (2 : 1 : 1) with the
  paper's α = −1, β = 500, from (a) (the paper starts from a human-pretrained model);
- **(d) wscda_pplo**: (c) followed by ``pplo_rounds`` PPLO rounds (progressive pseudo-labels on the
  horse ``train`` images) in the same run folder;
- **(e) oracle**: the horse ``train`` images *with* their labels (0 : 1 : 0), α = 0, from scratch;
- controls from (a), each with the steps of (c): **alpha0** (the batches of (c), α = 0: isolates the
  adversarial term) and **finetune** ((a) fine-tuned on cows + sheep, 0 : 1 : 0: plain transfer);
- **synthetic** (issue 29 item 2): (d) with generated horses (the generator's ``animalpose`` schema) added
  to the labelled animals. The discriminator still tells human / animal and source / target (the
  generated horses are labelled source animals);
- **synthetic_3way**: the synthetic arm with the three-way discriminator (``wscda.discriminator:
  three_way``): a third output tells synthetic (the generated humans and horses) from real (the
  photographed cows, sheep and horses), so the adversarial term also confuses rendered with photographed;
- **pplo_consistency**: (d) with CC-SSL's consistency check as PPLO's pseudo-label filter
  (``wscda.pplo_filter: consistency``: the joints CC-SSL's selection would keep), in its own run folder;
  its adversarial step is (c)'s (same config, seed and start), retrained because (c)'s training states
  are removed once (d) is scored;
- **wscda_grl**, **wscda_weak** (issue 29 item 3: does a gentler adversarial term separate WS-CDA from its
  α = 0 control?): (c) without PPLO, with the gradient-reversal scheme whose reversal ramps up by DANN's
  schedule (``wscda.scheme: grl``; Ganin et al. 2016) or with α = −0.1 instead of the paper's −1; each
  compared with the α = 0 control, which has the same batches.

**Epoch choice** (``wscda.select_on_val``): after every epoch of every step the network is scored on the
horse ``val`` crops (crop PCK@0.05, no flip) and each step keeps its best epoch; an arm's model is the
best epoch of its step ((d) and synthetic: the best over their PPLO rounds). The steps themselves go on
from their last epoch, so the curve of an arm is the one an uninterrupted run would have. (c), the
controls and the synthetic arm start from (a)'s chosen model.

**Metrics** on the horse ``test`` split, by :func:`animalpose.engine.evaluate.evaluate` (flip test):
PCK@0.05/0.1 with crop and bbox normalisation and OKS AP (Animal-Pose sigmas of
``configs/keypoints/animalpose.yaml``, mmpose's) on all 20 joints, and crop PCK@0.05 on the 17 joints
with a COCO counterpart (the joints (a) is trained on); the val curve of each arm; the discriminator's
per-domain accuracy at the end of the adversarial step of (c) and of synthetic_3way; PPLO's pseudo-label
coverage and precision per round. Gap recovery = (d − b) / (e − b) of test PCK@0.05 (crop).

Caching (hours on a CPU for three seeds): ``OUT/data`` holds the real splits as COCO files and the
generated humans / horses; ``OUT/seed_<s>/`` each arm's WS-CDA folder (resumable from its checkpoints;
the training states, optimiser included, are removed once the folder's last arm is scored, the models
stay), ``arm_<name>.json`` once the arm is scored, ``result.json`` when the seed is complete. A rerun with the
same ``OUT`` and settings goes on where it stopped (a seed completed before an arm was added runs that arm
only); ``--arms`` trains only the arms named (and the arms they start from, when not cached); other settings
are refused (:class:`~flows.benchmarks.harness.SeedFolder`). Each arm's result and run record the crop
paddings of its streams: a cached arm cropped otherwise than today (the synthetic arm before per-source
padding, its photographed cows and sheep at the generated horses' 1.25) is refused, or with
``--retrain-stale`` set aside and trained again (:mod:`flows.benchmarks.arm_cache`).

**Screens** (``--screen``, issue 29 item 3: a setting is chosen on val, never on test): the arms are trained
and chosen as above but scored on horse ``val`` alone (``OUT/wscda_animalpose_screen.json``: each arm's chosen
epoch's val PCK and the contrasts on val). Rerunning the same ``OUT`` without ``--screen`` scores those
models on test and trains the arms still missing, so the chosen setting is reported without retraining.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import typer
import yaml

from animalpose.atomic import write_json_atomic, write_text_atomic
from animalpose.errors import DataError
from animalpose.evaluation import gap_recovery
from animalpose.paths import REPO_ROOT
from flows.benchmarks.arm_cache import set_aside, stale_arms, with_starts
from flows.benchmarks.harness import (
    REAL_DATA,
    SEEDS_HELP,
    SeedFolder,
    Stopwatch,
    claim_prepared,
    echo_result,
    key_values,
    paired,
    parse_seeds,
    stats,
)

SCHEMA = "animalpose"
TARGET = "horse"
LABELLED = ("cow", "sheep")
DEFAULT_DATA = REAL_DATA / "animal-pose"
CONFIG = REPO_ROOT / "configs" / "adapt" / "wscda_animalpose.yaml"
ARMS = ("human_only", "animals_only", "wscda", "wscda_pplo", "oracle", "alpha0", "finetune", "synthetic",
        "synthetic_3way", "pplo_consistency", "wscda_grl", "wscda_weak")
ARM_TITLES = {
    "human_only": "(a) human-only",
    "animals_only": "(b) cow + sheep only",
    "wscda": "(c) WS-CDA from (a)",
    "wscda_pplo": "(d) WS-CDA + PPLO",
    "oracle": "(e) oracle (horse train labels)",
    "alpha0": "control: (c) with alpha = 0",
    "finetune": "control: (a) fine-tuned on cow + sheep",
    "synthetic": "(d) + generated horses as labelled animals",
    "synthetic_3way": "(d) + generated horses, synthetic / real discriminator",
    "pplo_consistency": "(d) with CC-SSL's consistency filter",
    "wscda_grl": "(c) with a gradient reversal layer and DANN's ramp",
    "wscda_weak": "(c) with alpha = -0.1",
}
PCK = "pck_crop@0.05"
METRICS = ("pck_crop@0.05", "pck_crop@0.1", "pck_bbox@0.05", "pck_bbox@0.1", "AP", "pck_crop@0.05_common17")
#: per-seed differences reported with the table: (treated, control)
CONTRASTS = (("wscda", "alpha0"), ("wscda", "finetune"), ("wscda", "animals_only"), ("wscda_pplo", "wscda"),
             ("synthetic", "wscda_pplo"), ("synthetic_3way", "synthetic"), ("pplo_consistency", "wscda_pplo"),
             ("wscda_grl", "alpha0"), ("wscda_weak", "alpha0"))
#: the arms whose discriminator accuracy per domain (end of the adversarial step) the summary reports
DISCRIMINATORS = ("wscda", "synthetic_3way", "wscda_grl", "wscda_weak")
#: α of the wscda_weak arm: a tenth of the paper's −1 against β = 500. The paper's balance was set against its
#: own heatmap loss's scale; ours differs (as Lightning Pose's weights did against our loss, issue 23)
WEAK_ALPHA = -0.1


@dataclass(frozen=True)
class BenchSettings:
    """What one seed runs: the WS-CDA config (network, budget, α, PPLO) with ``overrides`` on top, and the
    generated data. ``labelled_per_species``: cows and sheep kept per species (None: every one of ``train``);
    ``human_epochs``: epochs of (a); ``max_images``: the first photographs of each real split (None: the whole
    split; the smoke preset's 16 keep a run to about three minutes)."""

    data: Path = DEFAULT_DATA
    config: Path = CONFIG
    overrides: tuple[str, ...] = ()
    labelled_per_species: int | None = None
    n_human: int = 400
    n_synthetic: int = 200
    render_size: int = 128
    style: str = "photo"
    human_epochs: int = 6
    max_images: int | None = None

    def key(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=str))


#: ``--preset``: ``quick`` is the defaults; ``long`` gives every model 5x the steps (250 per epoch: (a) 1,500,
#: the others 1,000, each PPLO round 250; issue 29 item 3's screen); ``smoke`` runs every arm in about three
#: minutes (plumbing only)
PRESETS: dict[str, BenchSettings] = {
    "quick": BenchSettings(),
    "long": BenchSettings(overrides=("wscda.steps_per_epoch=250",)),
    "smoke": BenchSettings(
        overrides=("data.input_size=[64,64]", "data.heatmap_size=[16,16]", "train.batch_size=4", "train.epochs=1",
                   "wscda.steps_per_epoch=2", "wscda.pplo_rounds=1", "wscda.keep_fractions=[0.5]",
                   "wscda.discriminator_hidden=8"),
        n_human=8, n_synthetic=4, render_size=64, human_epochs=1, max_images=16),
}


# --------------------------------------------------------------------------------------------------
# the arms


@dataclass(frozen=True)
class Arm:
    """One arm: its WS-CDA run folder ``run`` ((c) and (d) share one), the labelled-animal stream
    (``animals``: data keys), its overrides of the config (``wscda`` keys), the arm whose chosen model it
    starts from (None: from scratch), and ``pplo``: scored on the PPLO rounds rather than the adversarial
    step."""

    name: str
    run: str
    animals: tuple[str, ...]
    wscda: dict = field(default_factory=dict)
    start: str | None = None
    pplo: bool = False


def plan_arms(human_epochs: int) -> list[Arm]:
    """The arms in training order ((a) first: the adapted arms start from it)."""
    labelled = tuple(LABELLED)
    alone = {"ratio": [0.0, 1.0, 0.0], "alpha": 0.0, "pplo_rounds": 0}  # supervised, one stream
    return [
        Arm("human_only", "human_only", labelled, {"ratio": [1.0, 0.0, 0.0], "alpha": 0.0, "pplo_rounds": 0,
                                                   "epochs": human_epochs}),
        Arm("animals_only", "animals_only", labelled, alone),
        Arm("wscda", "wscda", labelled, {}, start="human_only"),
        Arm("wscda_pplo", "wscda", labelled, {}, start="human_only", pplo=True),
        Arm("oracle", "oracle", (f"{TARGET}_train",), alone),
        Arm("alpha0", "alpha0", labelled, {"alpha": 0.0, "pplo_rounds": 0}, start="human_only"),
        Arm("finetune", "finetune", labelled, alone, start="human_only"),
        Arm("synthetic", "synthetic", (*labelled, "synthetic"), {}, start="human_only", pplo=True),
        Arm("synthetic_3way", "synthetic_3way", (*labelled, "synthetic"), {"discriminator": "three_way"},
            start="human_only", pplo=True),
        Arm("pplo_consistency", "pplo_consistency", labelled, {"pplo_filter": "consistency"}, start="human_only",
            pplo=True),
        # issue 29 item 3: the adversarial term's strength, each arm (c) with one switch, no PPLO
        Arm("wscda_grl", "wscda_grl", labelled, {"scheme": "grl", "pplo_rounds": 0}, start="human_only"),
        Arm("wscda_weak", "wscda_weak", labelled, {"alpha": WEAK_ALPHA, "pplo_rounds": 0}, start="human_only"),
    ]


def arm_config(arm: Arm, settings: BenchSettings, data: dict[str, Path], seed: int,
               start: Path | None) -> dict:
    """What ``arm``'s run sets over the bench config: its data, seed and ``wscda`` keys.

    ``data`` maps keys (``horse_train``, ``horse_val``, ``cow``, ``sheep``, ``human``, ``synthetic``) to
    files; ``start`` is the checkpoint of ``arm.start``'s chosen model."""
    wscda = {"human": [str(data["human"])], **arm.wscda}
    n = settings.labelled_per_species
    if arm.animals == (f"{TARGET}_train",):
        wscda["labelled_per_species"] = None  # the oracle: every labelled horse of train
    elif "synthetic" in arm.animals:  # N (or all) cows and sheep, every generated horse
        wscda["labelled_per_species"] = {**dict.fromkeys(LABELLED, n), TARGET: None}
    elif n is not None:
        wscda["labelled_per_species"] = n
    if start is not None:
        wscda["init_checkpoint"] = str(start)
    # the prepared selection files name the release's images by absolute path, outside their own folder
    return {"data": {"train": [str(data[k]) for k in arm.animals], "val": [str(data[f"{TARGET}_val"])],
                     "target": [str(data[f"{TARGET}_train"])], "allow_outside_root": True},
            "train": {"seed": seed},
            "tracking": {"enabled": False},
            "wscda": wscda}


def arm_document(arm: Arm, settings: BenchSettings, data: dict[str, Path], seed: int,
                 start: Path | None) -> dict:
    """The whole config of ``arm``'s run (written as ``seed_<s>/<run>.yaml``): the bench config with
    ``settings.overrides`` (``--set``), then :func:`arm_config` on top, so an override reaches every arm that
    does not set that key itself (``--set wscda.alpha=-0.5`` changes (c), not its α = 0 control)."""
    from animalpose.adapt.wscda.run import WSCDAConfig
    from animalpose.config import load_config, to_dict

    return _merged(to_dict(load_config(settings.config, WSCDAConfig, overrides=list(settings.overrides))),
                   arm_config(arm, settings, data, seed, start))


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# --------------------------------------------------------------------------------------------------
# data


def prepare(settings: BenchSettings, out: Path) -> dict[str, Path]:
    """The horse ``train`` / ``val`` / ``test`` and the cow and sheep ``train`` photographs as COCO files
    (category = species, absolute image paths) under ``out/data``, keyed ``horse_train``, ``horse_val``,
    ``horse_test``, ``cow``, ``sheep``."""
    from animalpose.data.coco_writer import write_coco
    from animalpose.data.readers import read_dataset

    release, split_file = settings.data / "keypoints.json", settings.data / "splits.json"
    # the files below are reused: refuse a folder prepared from another release or another subset
    source = {"release": str(settings.data.resolve()), "max_images": settings.max_images}
    claim_prepared(out / "data" / "prepared.json", source)
    wanted = {f"{TARGET}_{s}": (TARGET, s) for s in ("train", "val", "test")}
    wanted.update({sp: (sp, "train") for sp in LABELLED})
    paths = {}
    for key, (species, split) in wanted.items():
        path = out / "data" / f"{species}_{split}.json"
        if not path.is_file():
            ds = read_dataset(release, "auto", SCHEMA, categories=[species], split_file=split_file, split=split)
            records = ds.records[: settings.max_images] if settings.max_images else ds.records
            write_coco(records, path, SCHEMA, category=species, info={"source": str(release), "split": split})
        paths[key] = path
    return paths


def generated(settings: BenchSettings, out: Path, seed: int) -> dict[str, Path]:
    """The seed's generated humans (``coco`` template) and horses (``animalpose`` schema), cached."""
    import synthetic

    s = settings
    return {"human": synthetic.generate_dataset(out / "human", "human", s.style, s.n_human, s.render_size,
                                                seed=1000 * seed + 1),
            "synthetic": synthetic.generate_dataset(out / "horse", TARGET, s.style, s.n_synthetic, s.render_size,
                                                    seed=1000 * seed + 2)}


# --------------------------------------------------------------------------------------------------
# scoring


def common17() -> list[str]:
    """The 17 Animal-Pose joints with a COCO counterpart (all but Throat, TailBase, Withers)."""
    from animalpose.adapt.wscda.joint_space import build_joint_space
    from animalpose.keypoints import load_schema

    joints = load_schema(SCHEMA).joints
    mask = build_joint_space("coco", SCHEMA).domain_mask("human")
    return [j for j, m in zip(joints, mask, strict=True) if m]


def score(checkpoint: Path, test: Path) -> dict:
    """Test metrics of ``checkpoint`` (:func:`animalpose.engine.evaluate.evaluate`, flip test)."""
    from animalpose.engine.evaluate import evaluate

    res = evaluate(checkpoint, test, progress=False, allow_outside_root=True)  # the release's images
    out = {k: res["metrics"][k] for k in METRICS if k in res["metrics"]}
    per_joint = res["per_joint_tables"][PCK]
    values = [per_joint[j] for j in common17() if per_joint.get(j) is not None]
    out["pck_crop@0.05_common17"] = sum(values) / len(values) if values else None
    out["instances"] = res["instances"]
    return out


def choose(curves: dict[str, dict]) -> tuple[str, int, dict]:
    """The best epoch on val over the steps ``curves`` ({step: ``<step>.best.json``}): (step, epoch, its val
    scores); the first step wins a tie."""
    best: tuple[str, int, dict] | None = None
    for step, curve in curves.items():
        entry = next(e for e in curve["epochs"] if e["epoch"] == curve["best_epoch"])
        if best is None or entry["pck@0.05"] > best[2]["pck@0.05"]:
            best = (step, entry["epoch"], {k: v for k, v in entry.items() if k != "epoch"})
    if best is None:
        raise ValueError("no step to choose from")
    return best


# --------------------------------------------------------------------------------------------------
# one seed


def run_arm(arm: Arm, settings: BenchSettings, files: dict[str, Path], folder: Path, seed: int,
            start: Path | None, *, progress: bool = False, screen: bool = False) -> dict:
    """Train (or resume) ``arm`` in ``folder/<arm.run>`` on ``files`` (:func:`prepare` and :func:`generated`),
    choose its epoch on val and score it on the horse test split (not with ``screen``: val alone); returns the
    arm's result (not cached here). ``start``: the checkpoint of ``arm.start``'s chosen model."""
    from animalpose.adapt.wscda.run import WSCDAConfig, WSCDARun
    from animalpose.config import load_config

    config = folder / f"{arm.run}.yaml"
    text = yaml.safe_dump(arm_document(arm, settings, files, seed, start), sort_keys=False)
    if not config.is_file() or config.read_text() != text:
        write_text_atomic(config, text)
    cfg = load_config(config, WSCDAConfig)
    run_dir = folder / arm.run
    with WSCDARun(cfg, run_dir, progress=progress) as run:
        stage = run.adversarial()
        if arm.pplo:
            rounds = [run.pplo_round(r) for r in range(run.num_rounds)]
            steps = [f"round_{r}" for r in range(run.num_rounds)]
        else:
            steps = ["wscda"]
    curves = {s: json.loads((run_dir / f"{s}.best.json").read_text()) for s in steps}
    step, epoch, val = choose(curves)
    checkpoint = run_dir / f"{step}.best.ckpt"
    result = {"arm": arm.name, "checkpoint": str(checkpoint), "step": step, "epoch": epoch, "val": val,
              "val_curve": {s: c["epochs"] for s, c in curves.items()},
              "crops": run.crops}
    if not screen:
        result["test"] = score(checkpoint, files[f"{TARGET}_test"])
    if arm.pplo:
        result["rounds"] = [{k: v for k, v in r.items() if k in ("round", "kept", "coverage", "threshold")
                             or k.startswith("pseudo/")} for r in rounds]
    if not arm.pplo or arm.name in DISCRIMINATORS:  # the end of the adversarial step
        result["discriminator"] = {k.removeprefix("train/"): v for k, v in stage.items()
                                   if k.startswith("train/disc_acc")}
    return result


def expected_crops(arm: Arm, settings: BenchSettings, files: dict[str, Path], seed: int) -> dict[str, list[float]]:
    """The crop paddings ``arm``'s run uses today, per stream (:func:`~animalpose.adapt.wscda.datasets.
    source_crops`), from its files alone (no training)."""
    from animalpose.adapt.wscda.datasets import source_crops
    from animalpose.adapt.wscda.run import WSCDAConfig
    from animalpose.config import parse_config

    doc = arm_document(arm, settings, files, seed, None)  # the start checkpoint does not change the crops
    return source_crops(parse_config(doc, WSCDAConfig, where=f"<arm {arm.name}>"))


def run_seed(seed: int, settings: BenchSettings, data: dict[str, Path], out: Path, *,
             arms: list[str] | None = None, retrain_stale: bool = False, progress: bool = False,
             screen: bool = False) -> dict:
    """The ``arms`` of one seed (None: every arm), with the arms they start from; each resumes, each scored arm
    is cached. Returns the seed's result; ``result.json`` is written once every arm of :data:`ARMS` is done.

    ``screen``: the arms are chosen and scored on val alone (their JSON has no ``test``); a later run without
    it scores a screened arm's chosen model on test without training it again, so a setting is chosen on val
    and then reported on test.

    A cached arm or unfinished run cropped otherwise than the arm would be today (:func:`stale_arms`) is
    refused (DataError naming its file), or with ``retrain_stale`` set aside under ``stale/`` and trained again
    when it is among the arms run."""
    cache = SeedFolder(out / f"seed_{seed}", settings.key())
    done = cache.finished()
    cache.start()  # other settings are refused here, before the cached arms are judged
    folder, clock = cache.folder, Stopwatch()
    plan = plan_arms(settings.human_epochs)
    files = {**data, **generated(settings, out / "data" / f"seed_{seed}", seed)}
    crops: dict[tuple, dict] = {}  # by the streams' files: the arms share them

    def expected(arm: Arm) -> dict[str, list[float]]:
        key = arm.animals  # every arm has the same humans and target
        if key not in crops:
            crops[key] = expected_crops(arm, settings, files, seed)
        return crops[key]

    stale = stale_arms(folder, plan, expected)
    if stale and not retrain_stale:
        first = next(a for a in plan if a.name in stale)
        raise DataError(str(folder / f"arm_{first.name}.json"), "crops",
                        "trained with other crop paddings than this code uses, so the seed would mix two crop "
                        "setups: " + "; ".join(f"{a}: {w}" for a, w in stale.items())
                        + ". Rerun with --retrain-stale (sets them aside under stale/ and trains them again) "
                          "or use another --out")
    if stale:
        moved = set_aside(folder, plan, set(stale))
        print(f"seed {seed}: set aside {', '.join(sorted(stale))} (other crop paddings) in {moved}", file=sys.stderr,
              flush=True)
        done = None
    needed = with_starts(list(arms or ARMS), plan)
    if done is not None and set(done["arms"]) >= set(ARMS):
        return done
    # a seed finished before arms were added (same settings) goes on with the new arms only
    results: dict[str, dict] = {}
    last_use = {a.run: a.name for a in plan}  # the last arm of each run folder
    for arm in plan:
        path = folder / f"arm_{arm.name}.json"
        if path.is_file():
            results[arm.name] = json.loads(path.read_text())
            if not screen and "test" not in results[arm.name]:  # screened: score it now
                results[arm.name]["test"] = score(Path(results[arm.name]["checkpoint"]), files[f"{TARGET}_test"])
                write_json_atomic(path, results[arm.name], indent=2)
            continue
        if arm.name not in needed:
            continue
        if progress:
            print(f"seed {seed}: {arm.name}", file=sys.stderr, flush=True)
        start = Path(results[arm.start]["checkpoint"]) if arm.start else None
        result = run_arm(arm, settings, files, folder, seed, start, progress=progress, screen=screen)
        result["seconds"] = clock.lap()
        write_json_atomic(path, result, indent=2)
        results[arm.name] = result
        if last_use[arm.run] == arm.name:  # scored and cached: the resume states (~190 MB each) are spent
            for spent in (folder / arm.run).glob("*.train.ckpt"):
                spent.unlink()
    if screen:
        return {"seed": seed, "arms": results}
    if not set(results) >= set(ARMS):  # --arms: the seed is not complete yet
        return {"seed": seed, "arms": results, "gap_recovery": _gap(results)}
    return cache.save({"seed": seed, "arms": results, "gap_recovery": _gap(results)})


def _gap(arms: dict[str, dict]) -> float | None:
    """(d - b) / (e - b) of test PCK@0.05 (crop), None while one of the three arms is missing."""
    if not {"animals_only", "wscda_pplo", "oracle"} <= set(arms):
        return None
    return gap_recovery(arms["animals_only"]["test"][PCK], arms["wscda_pplo"]["test"][PCK], arms["oracle"]["test"][PCK])


# --------------------------------------------------------------------------------------------------
# summary


def _pck(arm_result: dict, split: str) -> float:
    """An arm's PCK@0.05 (crop) on ``split``: ``test`` (flip test), or ``val`` (its chosen epoch's, no flip)."""
    return arm_result["test"][PCK] if split == "test" else arm_result["val"]["pck@0.05"]


def paired_contrasts(per_seed: list[dict], present: list[str], split: str) -> dict:
    """Per-seed differences of PCK@0.05 on ``split`` for each of :data:`CONTRASTS` whose two arms are in
    ``present``, and in how many seeds the treated arm is above."""
    out = {}
    for treated, control in CONTRASTS:
        if treated not in present or control not in present:
            continue
        t = [_pck(s["arms"][treated], split) for s in per_seed]
        c = [_pck(s["arms"][control], split) for s in per_seed]
        out[f"{treated} - {control}"] = {**paired(t, c, std_of_one=0.0),
                                         "seeds_above": sum(x > y for x, y in zip(t, c, strict=True))}
    return out


def _present(per_seed: list[dict]) -> list[str]:
    """The arms every seed has (``--arms`` runs some only), in :data:`ARMS` order."""
    return [a for a in ARMS if all(a in s["arms"] for s in per_seed)]


def summarise_screen(per_seed: list[dict]) -> dict:
    """A screen's figures, on val alone: per arm :func:`stats` over seeds (per-seed ``values`` included) of the
    chosen epoch's PCK@0.05 and @0.1 (crop, no flip), its step and epoch, and the contrasts on val."""
    present = _present(per_seed)
    rows = {a: {m: stats([s["arms"][a]["val"][m] for s in per_seed], std_of_one=0.0) for m in ("pck@0.05", "pck@0.1")}
            for a in present}
    for a in present:
        rows[a]["chosen"] = [f"{s['arms'][a]['step']}:{s['arms'][a]['epoch']}" for s in per_seed]
    return {"split": "val", "rows": rows, "contrasts": paired_contrasts(per_seed, present, "val")}


def format_screen(summary: dict) -> str:
    """Markdown: a screen's val figures per arm (points), then its contrasts on val."""
    lines = ["| model (real horse val photographs) | val PCK@0.05 crop | per seed | val PCK@0.1 crop "
             "| chosen step:epoch |", "|" + "---|" * 5]
    for arm, r in summary["rows"].items():
        p5, p10 = r["pck@0.05"], r["pck@0.1"]
        lines.append(f"| {ARM_TITLES[arm]} | {100 * p5['mean']:.1f} ± {100 * (p5['std'] or 0):.1f} | "
                     + " / ".join(f"{100 * v:.1f}" for v in p5["values"])
                     + f" | {100 * p10['mean']:.1f} ± {100 * (p10['std'] or 0):.1f} | {', '.join(r['chosen'])} |")
    lines.append("")
    for name, d in summary["contrasts"].items():
        lines.append(f"{name} on val (paired per seed): {100 * d['mean']:+.1f} ± {100 * (d['std'] or 0):.1f} points "
                     f"PCK@0.05, above in {d['seeds_above']} of {d['n']} seeds")
    return "\n".join(lines)


def summarise(per_seed: list[dict]) -> dict:
    """Mean ± std over seeds of each arm's test metrics; per-seed differences of :data:`CONTRASTS` (and in
    how many seeds the treated arm is above); the paper's ordering (b) < (c) < (d) per seed; gap recovery
    (d − b) / (e − b) of the means and per seed; the discriminator's accuracy per domain of
    :data:`DISCRIMINATORS`. Over the arms every seed has (``--arms`` runs some only): a contrast, the ordering
    or the gap recovery whose arms are missing is left out (None)."""
    present = _present(per_seed)
    rows = {a: {m: stats([s["arms"][a]["test"].get(m) for s in per_seed], std_of_one=0.0) for m in METRICS}
            for a in present}
    contrasts = paired_contrasts(per_seed, present, "test")
    means = {a: rows[a][PCK]["mean"] for a in present}
    ordering = gap = None
    if {"animals_only", "wscda", "wscda_pplo"} <= set(rows):
        ordered = [s["arms"]["animals_only"]["test"][PCK] < s["arms"]["wscda"]["test"][PCK]
                   < s["arms"]["wscda_pplo"]["test"][PCK] for s in per_seed]
        ordering = {"seeds": len(per_seed), "seeds_holding": sum(ordered)}
    if {"animals_only", "wscda_pplo", "oracle"} <= set(rows):
        gap = gap_recovery(means["animals_only"], means["wscda_pplo"], means["oracle"])
    return {"rows": rows, "contrasts": contrasts, "paper_ordering_b_c_d": ordering, "gap_recovery_of_means": gap,
            "gap_recovery_per_seed": [s["gap_recovery"] for s in per_seed],
            **{f"discriminator_{arm}": {k: stats([s["arms"][arm]["discriminator"].get(k) for s in per_seed],
                                                 std_of_one=0.0)
                                        for k in per_seed[0]["arms"][arm]["discriminator"]}
               for arm in DISCRIMINATORS if arm in rows}}


def format_table(summary: dict) -> str:
    """Markdown: mean ± std (points) of every arm on the horse test split, then the contrasts."""
    lines = ["| model (real horse test photographs) | PCK@0.05 crop | PCK@0.1 crop | PCK@0.05 bbox | OKS AP "
             "| PCK@0.05 crop, 17 common joints |", "|" + "---|" * 6]
    for arm in summary["rows"]:
        r = summary["rows"][arm]
        cells = [f"{100 * r[m]['mean']:.1f} ± {100 * (r[m]['std'] or 0):.1f}" if r[m]["mean"] is not None else "-"
                 for m in ("pck_crop@0.05", "pck_crop@0.1", "pck_bbox@0.05", "AP", "pck_crop@0.05_common17")]
        lines.append(f"| {ARM_TITLES[arm]} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, d in summary["contrasts"].items():
        lines.append(f"{name} (paired per seed): {100 * d['mean']:+.1f} ± {100 * (d['std'] or 0):.1f} points "
                     f"PCK@0.05, above in {d['seeds_above']} of {d['n']} seeds")
    o, g = summary["paper_ordering_b_c_d"], summary["gap_recovery_of_means"]
    holds = "-" if o is None else f"in {o['seeds_holding']} of {o['seeds']} seeds"
    lines.append(f"(b) < (c) < (d) holds {holds}; gap recovery of (d), "
                 f"(d - b) / (e - b) of the means: {'-' if g is None else f'{100 * g:.1f} %'}")
    return "\n".join(lines)


def run_bench(out: Path, seeds: list[int], settings: BenchSettings | None = None, *, arms: list[str] | None = None,
              retrain_stale: bool = False, progress: bool = False, screen: bool = False) -> dict:
    """Prepare the real splits, run ``arms`` (None: every arm) of every seed (:func:`run_seed`), summarise;
    writes ``out/wscda_animalpose_bench.json`` (``screen``: val alone, ``out/wscda_animalpose_screen.json``)."""
    settings = settings or BenchSettings()
    unknown = sorted(set(arms or ()) - set(ARMS))
    if unknown:
        raise ValueError(f"unknown arms {unknown} (known: {', '.join(ARMS)})")
    out = Path(out).resolve()
    clock = Stopwatch()
    data = prepare(settings, out)
    per_seed = [run_seed(s, settings, data, out, arms=arms, retrain_stale=retrain_stale, progress=progress,
                         screen=screen) for s in seeds]
    head = {"benchmark": "wscda-animalpose", "target": TARGET, "labelled": list(LABELLED),
            "dataset": str(settings.data), "settings": settings.key(), "seeds": list(seeds), "per_seed": per_seed}
    if screen:
        result = {**head, "screen": True, "summary": summarise_screen(per_seed), **clock.total(),
                  "threads": torch.get_num_threads()}
        write_json_atomic(out / "wscda_animalpose_screen.json", result, indent=2)
        return result
    result = {**head, "summary": summarise(per_seed), **clock.total(), "threads": torch.get_num_threads()}
    write_json_atomic(out / "wscda_animalpose_bench.json", result, indent=2)
    return result


def bench_command(
    seeds: str = typer.Option("0,1,2", "--seeds", help=SEEDS_HELP),
    preset: str = typer.Option("quick", help=f"Budget: {', '.join(PRESETS)} (smoke: plumbing only)."),
    out: Path = typer.Option(Path("runs/bench/wscda_animalpose"), help="Output folder (data, runs, JSON)."),
    data: Path = typer.Option(DEFAULT_DATA, help="The Animal-Pose release (keypoints.json, splits.json, images/)."),
    labelled_per_species: int = typer.Option(0, help="Labelled cows and sheep kept per species (0: every one "
                                                     "of their train splits)."),
    overrides: list[str] = typer.Option(None, "--set", help="Override of every arm's WS-CDA config key=value "
                                                            "(repeatable); use a new --out for other settings."),
    arms: str = typer.Option("", help=f"Comma-separated arms to train and score (default: every arm; the arms "
                                      f"they start from come along when not cached): {', '.join(ARMS)}."),
    retrain_stale: bool = typer.Option(False, "--retrain-stale", help="Set aside (seed_<s>/stale/) and train again "
                                       "the cached arms cropped otherwise than this code crops them (refused "
                                       "without it)."),
    screen: bool = typer.Option(False, "--screen", help="Choose and score on horse val alone (a screen of "
                                "settings; a later run without it scores the cached arms on test)."),
    threads: int = typer.Option(1, help="torch threads."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    progress: bool = typer.Option(False, help="Show training progress."),
) -> None:
    """WS-CDA on real Animal-Pose horses: human-only, cow + sheep, WS-CDA, + PPLO, oracle, controls."""
    seed_list = parse_seeds(seeds)
    if preset not in PRESETS:
        raise typer.BadParameter(f"expected one of {', '.join(PRESETS)}, got {preset!r}", param_hint="--preset")
    if labelled_per_species < 0:
        raise typer.BadParameter("must be >= 0", param_hint="--labelled-per-species")
    chosen = [a for a in arms.replace(" ", ",").split(",") if a] or None
    unknown = sorted(set(chosen or ()) - set(ARMS))
    if unknown:
        raise typer.BadParameter(f"unknown arms {unknown} (known: {', '.join(ARMS)})", param_hint="--arms")
    base = PRESETS[preset]
    settings = replace(base, data=data, labelled_per_species=labelled_per_species or None,
                       overrides=base.overrides + key_values(overrides, "--set"))
    torch.set_num_threads(threads)
    result = run_bench(out, seed_list, settings, arms=chosen, retrain_stale=retrain_stale, progress=progress,
                       screen=screen)
    table = format_screen(result["summary"]) if screen else format_table(result["summary"])
    echo_result(result, as_json, table,
                f"{len(seed_list)} seeds, {result['wall_seconds']} s wall, {result['cpu_seconds']} s CPU, "
                f"{result['threads']} thread(s), load average {result['load_average']}")
