"""Checkpoints: atomic, self-describing, loadable with ``torch.load(weights_only=True)``.

A checkpoint is one dict of tensors and plain Python values (dict, list, str, int, float, bool,
None): model / optimiser / scheduler / AMP-scaler / EMA state dicts, the epoch and global step,
every RNG state (python, numpy, torch, cuda), the resolved configuration and the keypoint schema.
Nothing is pickled as an object, so loading never runs arbitrary code.
"""

from __future__ import annotations

import logging
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from animalpose.atomic import atomic_path, remove_temporaries
from animalpose.errors import DataError, OutputError
from animalpose.keypoints import KeypointSchema
from animalpose.outputs import describe_os_error

FORMAT_VERSION = 1
# model settings that change the shapes of the weights
ARCHITECTURE_KEYS = ("name", "channels", "stacks", "head", "num_joints")

log = logging.getLogger(__name__)


def to_plain(obj: Any) -> Any:
    """Convert to tensors and plain types: tuples → lists, numpy → lists/scalars, Path → str, dict subclasses → dict.

    Raises:
        TypeError: for any other object (it would not load with ``weights_only=True``).
    """
    if obj is None or isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, bool):
        return bool(obj)
    for plain in (int, float, str):  # subclasses (e.g. torch's TorchVersion) become the plain type
        if isinstance(obj, plain):
            return plain(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        return {(k if isinstance(k, str | int) else str(k)): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_plain(v) for v in obj]
    if isinstance(obj, torch.device | torch.dtype):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a weights-only checkpoint")


def rng_state() -> dict:
    """Every RNG state of this process, in plain types."""
    py = random.getstate()
    npst = np.random.get_state(legacy=False)  # noqa: NPY002 - the global legacy RNG is what we save
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"bit_generator": npst["bit_generator"], "key": npst["state"]["key"].tolist(),
                  "pos": int(npst["state"]["pos"]), "has_gauss": int(npst["has_gauss"]),
                  "gauss": float(npst["gauss"])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    legacy = {"bit_generator": n["bit_generator"],
              "state": {"key": np.asarray(n["key"], dtype=np.uint32), "pos": n["pos"]},
              "has_gauss": n["has_gauss"], "gauss": n["gauss"]}
    np.random.set_state(legacy)  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    try:
        with atomic_path(path, fsync=True) as tmp, tmp.open("wb") as fh:
            torch.save(obj, fh)
    except OSError as exc:
        raise OutputError(str(path), "checkpoint", describe_os_error(exc)) from exc
    except RuntimeError as exc:  # torch's zip writer: "[enforce fail at inline_container.cc] ... file write failed"
        if "inline_container" not in str(exc) and "write" not in str(exc):
            raise
        free = _free_bytes(path.parent)
        room = f"; {free} bytes free on its file system" if free is not None else ""
        raise OutputError(str(path), "checkpoint", f"write failed (disk full?{room}): "
                                                   f"{str(exc).splitlines()[0]}") from exc
    return path


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def save_checkpoint(path: str | Path, *, model: Mapping, schema: KeypointSchema, config: Mapping,
                    epoch: int, step: int, optimizer: Mapping | None = None, scheduler: Mapping | None = None,
                    scaler: Mapping | None = None, ema: Mapping | None = None, metrics: Mapping | None = None,
                    extra: Mapping | None = None, with_rng: bool = True) -> Path:
    """Write a checkpoint atomically.

    Args:
        model, optimizer, scheduler, scaler, ema: state dicts (``module.`` prefixes of DDP already removed).
        schema: the keypoint schema the head predicts.
        config: the resolved experiment configuration as a plain dict.
        epoch: epochs completed; step: optimiser steps completed (global).
        metrics: latest validation numbers; extra: anything else in plain types (e.g. best score).
    """
    ckpt = {
        "format": "animalpose-checkpoint",
        "version": FORMAT_VERSION,
        "model": dict(model),
        "optimizer": to_plain(optimizer) if optimizer is not None else None,
        "scheduler": to_plain(scheduler) if scheduler is not None else None,
        "scaler": to_plain(scaler) if scaler is not None else None,
        "ema": dict(ema) if ema is not None else None,
        "epoch": int(epoch),
        "step": int(step),
        "rng": rng_state() if with_rng else None,
        "config": to_plain(config),
        "schema": schema.to_dict(),
        "metrics": to_plain(metrics or {}),
        "extra": to_plain(extra or {}),
        "torch_version": str(torch.__version__),
    }
    return atomic_torch_save(ckpt, path)


def load_checkpoint(path: str | Path, *, schema: KeypointSchema | None = None,
                    map_location: str | torch.device = "cpu") -> dict:
    """Load and check a checkpoint written by :func:`save_checkpoint`.

    Args:
        schema: when given, the checkpoint's schema must have the same name and joints.

    Raises:
        DataError: naming the file when it is missing, unreadable, not an animalpose checkpoint,
            or predicts another schema.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "checkpoint", "is a folder; a checkpoint file is needed here" if path.is_dir()
                        else "no such file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise DataError(str(path), "checkpoint", f"not a readable checkpoint ({type(exc).__name__}: "
                                                 f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != "animalpose-checkpoint":
        raise DataError(str(path), "format", "not an animalpose checkpoint")
    if int(ckpt.get("version", -1)) > FORMAT_VERSION:
        raise DataError(str(path), "version", f"written by a newer animalpose (format {ckpt['version']})")
    if schema is not None:
        check_schema(ckpt, schema, str(path))
    return ckpt


def check_schema(ckpt: dict, schema: KeypointSchema, where: str) -> None:
    """Raise DataError unless the checkpoint predicts ``schema`` (same name and joint order)."""
    theirs = ckpt.get("schema") or {}
    if theirs.get("name") != schema.name or tuple(theirs.get("joints", ())) != schema.joints:
        raise DataError(where, "schema", f"checkpoint predicts schema {theirs.get('name')!r} "
                                         f"({len(theirs.get('joints', ()))} joints), expected {schema.name!r} "
                                         f"({schema.num_joints} joints)")


def schema_of(ckpt: dict) -> KeypointSchema:
    """The keypoint schema stored in a checkpoint."""
    s = ckpt["schema"]
    return KeypointSchema(
        name=s["name"], joints=tuple(s["joints"]), flip_pairs=tuple(tuple(p) for p in s["flip_pairs"]),
        sigmas=None if s.get("sigmas") is None else tuple(s["sigmas"]),
        skeleton=tuple(tuple(e) for e in s.get("skeleton", [])),
    )


def strip_ddp_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the ``module.`` prefix DistributedDataParallel adds to parameter names."""
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary checkpoint files a killed writer left in ``folder`` (0 B or partial).

    Only names of the form ``.<stem>.<8 hex>.ckpt`` (see :mod:`animalpose.atomic`) are touched; call
    it where no other process is writing checkpoints into ``folder``. Returns what was removed.
    """
    removed = remove_temporaries(folder, suffix=".ckpt")
    if removed:
        log.warning("removed %d temporary checkpoint file(s) left by an interrupted write: %s", len(removed),
                    ", ".join(p.name for p in removed))
    return removed


def check_architecture(ckpt: dict, model_config: Mapping, where: str) -> None:
    """Raise DataError naming ``where`` unless the checkpoint was written for the same network.

    ``model_config`` is the ``model`` section as a plain dict; the keys of :data:`ARCHITECTURE_KEYS`
    (network name, width, stacks, head, joints) must agree with the checkpoint's stored config.
    """
    theirs = ((ckpt.get("config") or {}).get("model") or {})
    diff = [f"{k} {theirs.get(k)!r} (this run: {model_config.get(k)!r})" for k in ARCHITECTURE_KEYS
            if k in theirs and theirs.get(k) != model_config.get(k)]
    if diff:
        raise DataError(where, "config.model", "checkpoint of another architecture: " + ", ".join(diff))
