"""`animalpose bench ccssl-animalpose`: synthetic horses -> real Animal-Pose horses, with CC-SSL (issue 27).

The product's measure: a model trained on generated animals, adapted with CC-SSL to unlabelled real
photographs, scored on real labelled photographs it never saw. Data: the Animal-Pose release (Cao et
al., ICCV 2019) in ``../shared/data/real/animal-pose`` with its fixed ``splits.json``; for the horse,
453 ``train`` images (CC-SSL's unlabelled target, and the oracle's labels), 90 ``val`` (the oracle's
epoch choice; reported), 180 ``test`` (only ever reported). Every model predicts the ``animalpose``
schema (20 joints), which the generator also writes, so no joint mapping is involved.

Arms per seed, all on the flow preset's network and budget (default ``configs/flows/quick.yaml``:
one-stack hourglass at 128 px, Adam 2e-3):

- **source-only**: ``pretrain_epochs`` on generated ``source`` horses (``cad`` style), best epoch on
  generated ``source_val`` horses: no real label is used;
- **CC-SSL**: :class:`~animalpose.adapt.ccssl.CCSSLRun` from the source-only checkpoint, ``rounds`` x
  ``epochs_per_round`` with the preset's ``ccssl:`` section, target = the ``train`` photographs. Their
  labels are read only for the pseudo-label diagnostics (precision of the kept joints against truth),
  never for training or selection (tested: stripping them changes no weight);
- **control (λ = 0)**: the same run with no target loss and no views: the same extra epochs, optimiser
  and rate on the source alone, so CC-SSL's gain over it is the real photographs' doing;
- **oracle**: ``pretrain_epochs + rounds x epochs_per_round`` epochs (CC-SSL's whole budget) on the
  ``train`` photographs *with* their labels, best epoch on ``val``.

Each model is scored on ``test`` (and ``val``) by :func:`animalpose.engine.evaluate.evaluate`, as the
flows score: PCK@0.05/0.1 with crop and bbox normalisation and OKS AP (Animal-Pose sigmas) on all 20
joints, plus the mean over the 14 joints shared with TigDog of the per-joint crop PCK@0.05 (the
reference's TigDog table counts those). Gap recovery = (CC-SSL - source-only) / (oracle -
source-only) of test PCK@0.05 (crop).

Caching (a run of three seeds takes hours on a CPU): ``OUT/seed_<s>/`` holds each arm's training
folder, which resumes from its own checkpoints, and ``arm_<name>.json`` with the arm's scores once it
is scored; ``result.json`` when the seed is complete. A rerun with the same ``OUT`` and settings goes on
where it stopped; other settings are refused (:class:`~flows.benchmarks.harness.SeedFolder`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import typer

from animalpose.atomic import write_json_atomic
from animalpose.config import ExperimentConfig, parse_config
from animalpose.data.coco_writer import write_coco
from animalpose.data.readers import read_dataset
from animalpose.engine.checkpoint import load_checkpoint
from animalpose.evaluation import gap_recovery
from animalpose.keypoints import load_mapping, load_schema
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
DEFAULT_DATA = REAL_DATA / "animal-pose"
SPLITS = ("train", "val", "test")
ARMS = ("source_only", "ccssl", "control", "oracle")
NEEDS = {"source_only": (), "ccssl": ("source_only",), "control": ("source_only",), "oracle": ()}
PCK = "pck_crop@0.05"
METRICS = ("pck_crop@0.05", "pck_crop@0.1", "pck_bbox@0.05", "pck_bbox@0.1", "AP", "pck_crop@0.05_tigdog14")


@dataclass(frozen=True)
class BenchSettings:
    """What the benchmark runs: the flow preset (network, budget, ``ccssl:`` section, generated source),
    the species, and ``overrides`` (``key=value``) for every training config (e.g. a crop padding)."""

    species: str = "horse"
    preset: str = "quick"
    data: Path = DEFAULT_DATA
    overrides: tuple[str, ...] = ()
    ccssl_overrides: tuple[str, ...] = ()
    max_images: int | None = None  # per split, for tests; None: the whole split
    # overrides of the oracle's config only, after ``overrides``: each arm may take the setting that is
    # best for it on ``val`` (e.g. the strong augmentation helps the synthetic source, not the real labels)
    oracle_overrides: tuple[str, ...] = ()
    # the generator's style of the source horses (``cad``, ``photo``, ``wild``); None: the preset's. The
    # richer styles (photographic backgrounds, coats, light) are still synthetic: no real pixel is used
    source_style: str | None = None
    # backgrounds of the generated horses cut from the unlabelled ``train`` photographs outside their
    # horse boxes (synthetic.backgrounds): the target's scenery, no keypoint label
    source_backgrounds: bool = False

    def key(self) -> dict:
        key = json.loads(json.dumps(asdict(self), default=str))
        # absent when unused, so that the folders of earlier runs keep their settings
        for unused in ("oracle_overrides", "source_style", "source_backgrounds"):
            if not key[unused]:
                del key[unused]
        return key


# --------------------------------------------------------------------------------------------------
# data


def prepare(settings: BenchSettings, out: Path) -> dict[str, Path]:
    """The species' ``train`` / ``val`` / ``test`` photographs as COCO files (``animalpose`` schema, boxes
    as COCO ``[x, y, w, h]``, absolute image paths) under ``out/data``: every config then takes plain files."""
    release, split_file = settings.data / "keypoints.json", settings.data / "splits.json"
    folder = out / "data"
    # the files below are reused: refuse a folder prepared from another release or another subset
    source = {"release": str(Path(settings.data).resolve()), "species": settings.species,
              "max_images": settings.max_images}
    # files written before the marker existed are adopted as they are
    claim_prepared(folder / "prepared.json", source, adopt=any(folder.glob(f"{settings.species}_*.json")))
    paths = {}
    for split in SPLITS:
        path = folder / f"{settings.species}_{split}.json"
        if not path.is_file():
            ds = read_dataset(release, "auto", SCHEMA, categories=[settings.species], split_file=split_file,
                              split=split)
            records = ds.records[: settings.max_images] if settings.max_images else ds.records
            # image paths stay absolute: the images lie outside the JSON's folder
            write_coco(records, path, SCHEMA, info={"source": str(release), "split": split})
        paths[split] = path
    return paths


def generated(settings: BenchSettings, seed: int, data: dict[str, Path] | None = None) -> dict[str, Path]:
    """The generated ``source`` and ``source_val`` horses of the preset (flow seeds: base, base + 1); with
    ``settings.source_backgrounds``, over backgrounds cut from ``data["train"]``'s photographs."""
    from flows.ccssl import seed_plan
    from flows.presets import load_preset
    from flows.pretrain import make_dataset

    p = load_preset(settings.preset)
    seeds = seed_plan(p.seed, seed)
    out = {}
    for role, spec, s in (("source", p.source, seeds.source), ("source-val", p.source_val, seeds.source_val)):
        if settings.source_style:
            spec = spec.model_copy(update={"style": settings.source_style})
        if settings.source_backgrounds:
            spec = spec.model_copy(update={"backgrounds": data["train"]})
        if settings.max_images:
            spec = spec.model_copy(update={"n": min(spec.n, settings.max_images)})
        (folder,) = make_dataset(settings.species, spec, s, role)
        out[role] = Path(folder) / "annotations" / f"{SCHEMA}.json"
    return out


# --------------------------------------------------------------------------------------------------
# configs


def engine_config(settings: BenchSettings, train: list[Path], val: list[Path], epochs: int,
                  seed: int) -> ExperimentConfig:
    """The preset's training config in the ``animalpose`` schema, on ``train`` / ``val``."""
    from flows.presets import engine_config as preset_config
    from flows.presets import load_preset

    p = load_preset(settings.preset)
    values = {"data.train": [str(t) for t in train], "data.val": [str(v) for v in val], "data.schema": SCHEMA,
              "model.num_joints": None, "train.epochs": epochs, "train.seed": seed, "tracking.enabled": False,
              "data.allow_outside_root": True}  # the selection files point at the release's images
    cfg = preset_config(p, values)
    return _override(cfg, settings.overrides)


def ccssl_config(settings: BenchSettings, base: ExperimentConfig, target: Path, target_val: Path, source: Path,
                 *, control: bool = False):
    """CC-SSL from ``source`` on the unlabelled ``target``, ``target_val`` reported per round: the flow's
    round config (:func:`flows.ccssl.ccssl_config`) over ``base``, with the preset's ``ccssl:`` section."""
    from flows.ccssl import ccssl_config as flow_ccssl_config
    from flows.presets import load_preset

    p = load_preset(settings.preset)
    section = p.ccssl
    if control:  # no target loss, no consistency views: the same epochs on the source alone
        section = section.as_control()
    cfg = flow_ccssl_config(base.model_dump(mode="json", by_alias=True), str(p.train_config),
                            source_checkpoint=source, target=[target], target_test=target_val,
                            regenerate_every=p.epochs_per_round, epochs=p.rounds * p.epochs_per_round,
                            section=section)
    return _override(cfg, settings.ccssl_overrides)


def _override(cfg, overrides: tuple[str, ...]):
    if not overrides:
        return cfg
    return parse_config(cfg.model_dump(mode="json", by_alias=True), type(cfg), overrides=list(overrides))


# --------------------------------------------------------------------------------------------------
# scoring


def score(checkpoint: Path, data: dict[str, Path], splits: tuple[str, ...] = ("test", "val")) -> dict:
    """Scores of a checkpoint on ``splits`` (:func:`animalpose.engine.evaluate.evaluate`, flip test)."""
    from animalpose.engine.evaluate import evaluate

    out = {"checkpoint": str(checkpoint), "epoch": int(load_checkpoint(checkpoint)["epoch"])}
    for split in splits:
        res = evaluate(checkpoint, data[split], progress=False, allow_outside_root=True)
        m = {k: res["metrics"][k] for k in METRICS if k in res["metrics"]}
        m["pck_crop@0.05_tigdog14"] = tigdog14(res["per_joint_tables"]["pck_crop@0.05"])
        out[split] = {**m, "instances": res["instances"]}
    return out


def tigdog14(per_joint: dict[str, float | None]) -> float:
    """Mean of the per-joint PCK over the Animal-Pose joints that TigDog shares (the explicit mapping table
    ``animalpose -> tigdog``), joints without a labelled instance left out."""
    table = load_mapping(SCHEMA, "tigdog")
    joints = load_schema(SCHEMA).joints
    values = [per_joint.get(joints[a]) for a, _ in table.pairs]
    values = [v for v in values if v is not None]
    return float(sum(values) / len(values)) if values else float("nan")


# --------------------------------------------------------------------------------------------------
# one seed


def run_seed(seed: int, settings: BenchSettings, data: dict[str, Path], out: Path, *,
             progress: bool = False, screen: tuple[str, ...] = ()) -> dict:
    """Every arm of one seed (each resumes, and each scored arm is cached); returns the seed's result.

    ``screen``: a screen of settings on ``val``: only these arms (and the source-only model they start
    from) are trained, each is scored on ``val`` alone (no test figure is computed, so none can steer the
    choice), cached as ``screen_<arm>.json``, and the seed's ``result.json`` is not written. Training
    folders are the full run's, so a later full run with the same settings reuses the training.
    """
    from animalpose.adapt.ccssl import CCSSLRun
    from animalpose.engine.train import train
    from flows.presets import load_preset

    cache = SeedFolder(out / f"seed_{seed}", settings.key())
    done = cache.finished()
    if done is not None:
        return done
    cache.start()
    folder, p, clock = cache.folder, load_preset(settings.preset), Stopwatch()
    gen = generated(settings, seed, data)
    arms, budgets = {}, {}
    unknown = [a for a in screen if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arms {unknown}; known: {', '.join(ARMS)}")
    wanted = set(ARMS) if not screen else {*screen, *(n for a in screen for n in NEEDS[a])}
    splits = ("val",) if screen else ("test", "val")

    def arm(name: str, make) -> dict:
        path = folder / f"{'screen' if screen else 'arm'}_{name}.json"
        if path.is_file():
            return json.loads(path.read_text())
        if progress:
            print(f"seed {seed}: {name}", file=sys.stderr, flush=True)
        result = make()
        result["seconds"] = clock.lap()
        write_json_atomic(path, result, indent=2)
        return result

    def trained(cfg: ExperimentConfig, sub: str) -> Path:
        run_dir = folder / sub
        last = run_dir / "last.ckpt"
        if not last.is_file() or load_checkpoint(last)["epoch"] < cfg.train.epochs:
            train(cfg, out_dir=run_dir, progress=progress, resume=last.is_file())
        best = run_dir / "best.ckpt"
        return best if best.is_file() else last

    src_cfg = engine_config(settings, [gen["source"]], [gen["source-val"]], p.pretrain_epochs, seed)
    budgets["source_only"] = f"{p.pretrain_epochs} epochs on generated horses, best on generated val"
    if "source_only" in wanted:
        arms["source_only"] = arm("source_only", lambda: score(trained(src_cfg, "source_only"), data, splits))
        source = Path(arms["source_only"]["checkpoint"])

    def adapted(name: str, control: bool) -> dict:
        cfg = ccssl_config(settings, src_cfg, data["train"], data["val"], source, control=control)
        with CCSSLRun(cfg, folder / name, progress=progress) as run:
            rounds = [run.round(r) for r in range(run.num_rounds)]
        last = len(rounds) - 1  # every round on test; the last, the arm's model, on val too
        scores = [score(folder / name / f"round_{r}.ckpt", data, splits if r == last else splits[:-1])
                  for r in range(len(rounds))]
        per_round = [{"round": r, "pseudo_precision@0.05": m.get("pseudo/precision@0.05"),
                      "pseudo_coverage": m.get("pseudo/coverage"), "val_pck@0.05": m.get("target/pck@0.05"),
                      **{f"test_{k}": v for k, v in scores[r].get("test", {}).items()}}
                     for r, m in enumerate(rounds)]
        return {**scores[last], "rounds": per_round}

    extra = f"{p.rounds} x {p.epochs_per_round} epochs"
    budgets["ccssl"] = f"source-only + {extra} on generated + pseudo-labelled train photographs"
    if "ccssl" in wanted:
        arms["ccssl"] = arm("ccssl", lambda: adapted("ccssl", False))
    budgets["control"] = f"source-only + {extra} on generated horses, lambda = 0"
    if "control" in wanted:
        arms["control"] = arm("control", lambda: adapted("control", True))
    oracle_epochs = p.pretrain_epochs + p.rounds * p.epochs_per_round
    budgets["oracle"] = f"{oracle_epochs} epochs on the labelled train photographs, best on val"
    orc_cfg = _override(engine_config(settings, [data["train"]], [data["val"]], oracle_epochs, seed),
                        settings.oracle_overrides)
    if "oracle" in wanted:
        arms["oracle"] = arm("oracle", lambda: score(trained(orc_cfg, "oracle"), data, splits))
    if screen:
        return {"seed": seed, "screen": True, "arms": arms, "budgets": budgets}
    times = {name: a.get("seconds") for name, a in arms.items()}
    return cache.save({"seed": seed, "arms": arms, "budgets": budgets, "times": times,
                       "gap_recovery": gap_recovery(arms["source_only"]["test"][PCK], arms["ccssl"]["test"][PCK],
                                                    arms["oracle"]["test"][PCK])})


# --------------------------------------------------------------------------------------------------
# summary


def summarise(per_seed: list[dict]) -> dict:
    """Mean ± std over seeds of each arm's test metrics, CC-SSL minus control paired per seed, gap recovery
    of the means and per seed."""
    rows = {a: {m: stats([s["arms"][a]["test"].get(m) for s in per_seed], std_of_one=0.0) for m in METRICS}
            for a in ARMS}
    diff = {m: paired([s["arms"]["ccssl"]["test"][m] for s in per_seed],
                      [s["arms"]["control"]["test"][m] for s in per_seed], std_of_one=0.0) for m in METRICS}
    means = {a: rows[a][PCK]["mean"] for a in ARMS}
    return {"rows": rows, "ccssl_minus_control": diff,
            "gap_recovery_of_means": gap_recovery(means["source_only"], means["ccssl"], means["oracle"]),
            "gap_recovery_per_seed": stats([s["gap_recovery"] for s in per_seed], std_of_one=0.0),
            "source_over_oracle": (means["source_only"] / means["oracle"]) if means["oracle"] else None}


def format_table(result: dict) -> str:
    s = result["summary"]
    lines = ["| model (real test photographs) | PCK@0.05 crop | PCK@0.1 crop | PCK@0.05 bbox | OKS AP "
             "| PCK@0.05 crop, 14 TigDog joints |", "|" + "---|" * 6]
    for arm in ARMS:
        r = s["rows"][arm]
        cells = [f"{100 * r[m]['mean']:.1f} ± {100 * (r[m]['std'] or 0):.1f}" if r[m]["mean"] is not None else "-"
                 for m in ("pck_crop@0.05", "pck_crop@0.1", "pck_bbox@0.05", "AP", "pck_crop@0.05_tigdog14")]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    d = s["ccssl_minus_control"][PCK]
    g = s["gap_recovery_of_means"]
    lines += ["", f"CC-SSL minus control (paired per seed): {100 * d['mean']:+.1f} ± {100 * (d['std'] or 0):.1f} "
                  f"points PCK@0.05; gap recovery of the means: {'-' if g is None else f'{100 * g:.1f} %'}"]
    return "\n".join(lines)


def format_screen(result: dict) -> str:
    """The ``val`` figures of a screen, per seed and arm (PCK@0.05 crop; CC-SSL arms per round too)."""
    lines = ["| seed | arm | val PCK@0.05 crop | val PCK@0.1 crop | val OKS AP | per round (val PCK@0.05, "
             "pseudo-label precision) |", "|" + "---|" * 6]
    for s in result["per_seed"]:
        for name, a in s["arms"].items():
            v = a["val"]
            rounds = " / ".join(f"{100 * r['val_pck@0.05']:.1f} ({100 * (r['pseudo_precision@0.05'] or 0):.1f})"
                                for r in a.get("rounds", []) if r.get("val_pck@0.05") is not None)
            lines.append(f"| {s['seed']} | {name} | {100 * v[PCK]:.1f} | {100 * v['pck_crop@0.1']:.1f} "
                         f"| {100 * v['AP']:.1f} | {rounds or '-'} |")
    return "\n".join(lines)


def run_bench(out: Path, seeds: list[int], settings: BenchSettings | None = None, *,
              progress: bool = False, screen: tuple[str, ...] = ()) -> dict:
    """Prepare the real splits, run every seed, summarise; writes ``out/ccssl_animalpose_bench.json``
    (``out/ccssl_animalpose_screen.json`` for a ``screen`` on val: see :func:`run_seed`)."""
    settings = settings or BenchSettings()
    out = Path(out).resolve()
    clock = Stopwatch()
    data = prepare(settings, out)
    per_seed = [run_seed(s, settings, data, out, progress=progress, screen=screen) for s in seeds]
    if screen:
        result = {"benchmark": "ccssl-animalpose", "screen": list(screen), "settings": settings.key(),
                  "seeds": list(seeds), "per_seed": per_seed, **clock.total(), "threads": torch.get_num_threads()}
        write_json_atomic(out / "ccssl_animalpose_screen.json", result, indent=2)
        return result
    result = {"benchmark": "ccssl-animalpose", "species": settings.species, "dataset": str(settings.data),
              "preset": settings.preset, "seeds": list(seeds), "per_seed": per_seed,
              "summary": summarise(per_seed), **clock.total(), "threads": torch.get_num_threads()}
    write_json_atomic(out / "ccssl_animalpose_bench.json", result, indent=2)
    return result


def bench_command(
    seeds: str = typer.Option("0,1,2", "--seeds", help=SEEDS_HELP),
    species: str = typer.Option("horse", help="Animal-Pose species of the real target (horse, cow, sheep)."),
    preset: str = typer.Option("quick", help="Flow preset: network, budget, CC-SSL section, generated source."),
    out: Path = typer.Option(Path("runs/bench/ccssl_animalpose"), help="Output folder (data, runs, JSON)."),
    data: Path = typer.Option(DEFAULT_DATA, help="The Animal-Pose release (keypoints.json, splits.json, images/)."),
    overrides: list[str] = typer.Option(None, "--set", help="Override of every training config key=value "
                                                            "(repeatable); use a new --out for other settings."),
    ccssl: list[str] = typer.Option(None, "--ccssl", help="Override of the CC-SSL config only (repeatable)."),
    oracle: list[str] = typer.Option(None, "--oracle-set", help="Override of the oracle's config only, after "
                                                               "--set (repeatable)."),
    screen: str = typer.Option("", help="Screen settings on val: only these arms (comma-separated, e.g. "
                                        "'ccssl'; source-only is trained when needed), scored on val alone."),
    source_style: str = typer.Option(None, help="Generator style of the source horses (cad, photo, wild); "
                                                "default: the preset's."),
    source_backgrounds: bool = typer.Option(False, help="Cut the generated horses' backgrounds from the "
                                                        "unlabelled train photographs, outside their boxes."),
    threads: int = typer.Option(1, help="torch threads."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    progress: bool = typer.Option(False, help="Show training progress."),
) -> None:
    """Synthetic -> real Animal-Pose: source-only, CC-SSL, its lambda = 0 control and the oracle on test."""
    seed_list = parse_seeds(seeds)
    overrides, ccssl = key_values(overrides, "--set"), key_values(ccssl, "--ccssl")
    torch.set_num_threads(threads)
    settings = BenchSettings(species=species, preset=preset, data=data, overrides=overrides,
                             ccssl_overrides=ccssl, oracle_overrides=key_values(oracle, "--oracle-set"),
                             source_style=source_style, source_backgrounds=source_backgrounds)
    arms = tuple(a.strip() for a in screen.split(",") if a.strip())
    result = run_bench(out, seed_list, settings, progress=progress, screen=arms)
    echo_result(result, as_json, format_screen(result) if arms else format_table(result),
                f"{len(seed_list)} seeds, {result['wall_seconds']} s wall, {result['cpu_seconds']} s CPU, "
                f"{result['threads']} thread(s), load average {result['load_average']}")
