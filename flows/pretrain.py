"""The ``pretrain`` flow: generate the labelled source domain and train a pose network on it.

Pseudo-code (CC-SSL, step 0 — "train on synthetic data"):

    source, source_val = synth(species, cad), synth(species, cad, held out)
    model = pretrain(source, source_val)        # engine.train, resumable from its last checkpoint
    register(model)                             # by engine.train, only after it finished

Re-running after a crash resumes the training from ``<out>/last.ckpt``; a finished pretraining is
a cached task result and is not repeated.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import INPUTS

from animalpose.paths import data_home
from animalpose.threads import configure_threads
from flows.common import FileStamps, adopt, markdown_table, parent_tracker, publish, retry_transient, run_link, stage
from flows.presets import FlowPreset, SynthSpec, engine_config, load_preset
from flows.synth import generate


def dataset_dir(species: str, spec: SynthSpec, seed: int, role: str) -> Path:
    """``<data home>/synthetic/<species>-<style>-<role>-<n>x<size>-seed<seed>-<hash>``: one folder per config.

    The hash is the generator's own manifest hash (species, style parameter table, generator version,
    sizes, seed, format): the synth task is cached on its inputs, so whatever changes the data must
    change the folder, or a flow would get the cached folder of the old distribution back.
    """
    from synthetic.writers import DEFAULT_FPS, config_hash, dataset_config, default_format

    style = spec.style_config()
    frames = spec.frames if spec.clips else 0
    digest = config_hash(dataset_config(species, style, spec.n, spec.size, seed, spec.clips, frames, False,
                                        DEFAULT_FPS, default_format(style)))[:8]
    return data_home() / "synthetic" / f"{species}-{spec.style}-{role}-{spec.n}x{spec.size}-seed{seed}-{digest}"


def make_dataset(species: str, spec: SynthSpec, seed: int, role: str, *, shards: int = 1,
                 dask_workers: int = 0) -> list[Path]:
    """Generate (or reuse) one synthetic dataset described by ``spec``; returns its folder(s). Its Prefect
    task is named by role and style (``synth-target-photo``)."""
    style = spec.style_config()
    return generate(dataset_dir(species, spec, seed, role), species, spec.style, spec.n, spec.size, seed,
                    clips=spec.clips, frames=spec.frames, gap=spec.gap, shards=shards, dask_workers=dask_workers,
                    backgrounds=style.backgrounds, backgrounds_p=style.backgrounds_p, role=role)


def _train(cfg_dict: dict, where: str, out_dir: Path, name: str, register_as: str | None,
           progress: bool = False) -> dict:
    """The library call: ``engine.train`` (resuming from ``out_dir/last.ckpt`` when present)."""
    from animalpose.config import parse_config
    from animalpose.engine.train import train

    cfg = parse_config(cfg_dict, where=where, base_dir=Path(where).parent)
    resume = (Path(out_dir) / "last.ckpt").is_file()
    result = train(cfg, out_dir=out_dir, name=name, resume=resume, progress=progress, register_as=register_as)
    best = result.best_checkpoint or result.last_checkpoint
    return {"checkpoint": str(best), "best_score": result.best_score, "run_id": result.run_id,
            "epochs": len(result.history), "images_per_second": result.images_per_second}


def torchrun_command(config_file: Path, out_dir: Path, name: str, nproc_per_node: int, resume: bool) -> list[str]:
    """``torchrun --standalone --nproc_per_node N -m animalpose train ...`` for this interpreter."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}",
           "-m", "animalpose", "train", "--config", str(config_file), "--out", str(out_dir), "--name", name,
           "--no-progress"]
    return [*cmd, "--resume"] if resume else cmd


def _train_torchrun(cfg_dict: dict, where: str, out_dir: Path, name: str, nproc_per_node: int) -> dict:
    """Multi-process (multi-GPU) training: the same config, launched with torchrun; rank 0 reports."""
    from animalpose.config import parse_config, write_config

    out_dir = Path(out_dir)
    cfg = parse_config(cfg_dict, where=where, base_dir=Path(where).parent)
    config_file = write_config(cfg, out_dir / "train_config.yaml")
    cmd = torchrun_command(config_file, out_dir, name, nproc_per_node, (out_dir / "last.ckpt").is_file())
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-20:]
        raise RuntimeError(f"torchrun training failed (exit {proc.returncode}):\n" + "\n".join(tail))
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{") and "best_checkpoint"
               in line]
    if not reports:
        raise RuntimeError(f"torchrun training printed no result; output:\n{proc.stdout[-2000:]}")
    r = next((rep for rep in reports if rep.get("run_id")), reports[0])  # every rank prints; rank 0 tracks
    best = r["best_checkpoint"] if r["best_checkpoint"] not in (None, "None") else str(out_dir / "last.ckpt")
    return {"checkpoint": best, "best_score": r["best_score"], "run_id": r["run_id"], "epochs": r["epochs"],
            "images_per_second": r["images_per_s"]}


@task(name="pretrain", cache_policy=(INPUTS - "progress") + FileStamps(), persist_result=True,
      result_serializer="json", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_transient,
      task_run_name="{name}")
def pretrain(cfg_dict: dict, where: str, out_dir: Path, name: str, register_as: str | None = None,
             nproc_per_node: int = 1, progress: bool = False) -> dict:
    """Train on the labelled source domain; returns ``{checkpoint, best_score, run_id, epochs, ...}``.

    ``nproc_per_node > 1`` launches the engine with torchrun (DDP, one process per GPU); the model
    is then registered under the engine's default name ``<experiment>-<model>``. ``progress``: the
    trainer's live bar (a terminal); not part of the cache key.
    """
    if nproc_per_node > 1:
        return _train_torchrun(cfg_dict, where, out_dir, name, nproc_per_node)
    return _train(cfg_dict, where, out_dir, name, register_as, progress)


def train_config(preset: FlowPreset, train: list[Path], val: list[Path], *, epochs: int, model: str | None,
                 tracking_uri: str | None, experiment: str, seed: int,
                 schema: str | None = None, allow_outside_root: bool = False,
                 source: bool = False) -> tuple[dict, str]:
    """The engine config for one training stage, as a plain dict (a stable task cache key) and its source.

    ``source``: a stage on the synthetic source (the preset's ``source_overrides`` apply).

    ``schema``: train in this keypoint schema instead of the preset's (e.g. ``animalpose``, which the
    generator also writes, for a real Animal-Pose target); the head then takes its joint count.
    ``allow_outside_root``: ``data.allow_outside_root`` (given files whose images lie elsewhere)."""
    from animalpose.config import to_dict

    values: dict = {"data.train": list(train), "data.val": list(val), "train.epochs": epochs,
                    "train.seed": seed, "tracking.experiment": experiment}
    if schema:
        values.update({"data.schema": schema, "model.num_joints": None})
    if model:
        values["model.name"] = model
    if tracking_uri:
        values["tracking.uri"] = tracking_uri
    if allow_outside_root:
        values["data.allow_outside_root"] = True
    cfg = engine_config(preset, values, source=source)
    return to_dict(cfg), str(preset.train_config)


@flow(name="pretrain", log_prints=True)
def pretrain_flow(
    species: str = "horse",
    preset: str = "quick",
    train_data: list[Path] | None = None,
    val_data: list[Path] | None = None,
    model: str | None = None,
    epochs: int | None = None,
    tracking_uri: str | None = None,
    experiment: str = "pretrain",
    out_dir: Path | None = None,
    dask_workers: int = 0,
    nproc_per_node: int = 1,
    threads: int | None = None,
) -> dict:
    """Pretrain on synthetic ``species`` (or on ``train_data``) and register the model ``<species>-source``.

    ``nproc_per_node > 1`` trains with torchrun on that many processes (GPUs) of this machine.
    """
    configure_threads(threads)  # torch threads / loader workers that fit the free cores
    p = load_preset(preset)
    parent = parent_tracker(experiment, f"pretrain-{species}", tracking_uri, {"species": species, "preset": preset})
    try:
        with stage(parent, "synth"):
            train = list(train_data) if train_data else make_dataset(species, p.source, p.seed, "source",
                                                                     dask_workers=dask_workers)
            val = list(val_data) if val_data else make_dataset(species, p.source_val, p.seed + 1, "source-val")
        out = Path(out_dir) if out_dir else data_home() / "flows" / "pretrain" / species / preset
        cfg, where = train_config(p, train, val, epochs=epochs or p.pretrain_epochs, model=model,
                                  tracking_uri=parent.uri, experiment=experiment, seed=p.seed, source=True)
        with stage(parent, "pretrain") as st:
            res = pretrain(cfg, where, out, f"pretrain-{species}", register_as=f"{species}-source",
                           nproc_per_node=nproc_per_node)
            adopt(st, res["run_id"])
        parent.log_metrics({"best_score": res["best_score"] or float("nan")})
        table = markdown_table(["stage", "checkpoint", "best validation score", "epochs"],
                               [["pretrain", res["checkpoint"], res["best_score"], res["epochs"]]])
        publish(f"pretrain-{species}", f"# pretrain {species}\n\n{table}\nMLflow run: {run_link(parent)}\n")
        parent.end("FINISHED")
        return {**res, "mlflow_run_id": parent.run_id}
    except BaseException as exc:
        parent.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
