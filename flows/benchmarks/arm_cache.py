"""The per-arm cache of a WS-CDA seed folder: which arms to run, which cached ones are stale, setting them aside.

A seed folder (``OUT/seed_<s>/``) holds, per arm, its scored result ``arm_<name>.json`` and its WS-CDA run
folder ``<run>/`` (``state.json``, checkpoints; two arms may share one, e.g. (c) and (d)). Each records the crop
paddings of its training streams (``crops``, :func:`animalpose.adapt.wscda.datasets.stream_crops`); a result
or run cropped otherwise than the arm would be today is stale (:func:`stale_arms`): reusing it would mix two
crop setups in one table. An arm here is anything with ``name``, ``run`` and ``start`` (the arm whose model it
starts from, or None), e.g. :class:`flows.benchmarks.wscda_animalpose.Arm`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from flows.benchmarks.harness import read_json


class ArmLike(Protocol):
    name: str
    run: str
    start: str | None


def with_starts(chosen: Sequence[str], plan: Sequence[ArmLike]) -> set[str]:
    """``chosen`` arms and, transitively, the arms they start from (trained first when not cached)."""
    by_name = {a.name: a for a in plan}
    needed: set[str] = set()
    todo = list(chosen)
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo.extend([by_name[name].start] if by_name[name].start else [])
    return needed


def recorded_crops(folder: Path, arm: ArmLike) -> tuple[bool, dict | None]:
    """(whether ``arm`` has trained anything in ``folder``, the crops it recorded): from its cached result, else
    from its run's ``state.json`` once a step finished; (False, None) when neither. A record without ``crops``
    (written before per-source crop padding) gives None."""
    cached, state = folder / f"arm_{arm.name}.json", folder / arm.run / "state.json"
    if cached.is_file():
        return True, read_json(cached).get("crops")
    if state.is_file():
        doc = read_json(state)
        if doc.get("stages") or doc.get("rounds"):
            return True, doc.get("crops")
    return False, None


def stale_arms(folder: Path, plan: Sequence[ArmLike], expected: Callable[[ArmLike], dict[str, list[float]]],
               ) -> dict[str, str]:
    """{arm: why} for the arms of ``folder`` whose cached result or unfinished run was cropped otherwise than
    ``expected(arm)`` (:func:`~animalpose.adapt.wscda.datasets.crops_mismatch`; e.g. the synthetic arms,
    trained before per-source crop padding with their photographed cows and sheep at the generated horses'
    1.25), and every arm that shares a run folder with one of them or starts from one."""
    from animalpose.adapt.wscda.datasets import crops_mismatch

    why: dict[str, str] = {}
    for arm in plan:
        trained, recorded = recorded_crops(folder, arm)
        if trained:
            reason = crops_mismatch(recorded, expected(arm))
            if reason is not None:
                why[arm.name] = reason
    grown = True
    while grown:  # the arms that share a stale run folder or start from a stale model
        grown = False
        for arm in plan:
            if arm.name in why or not ((folder / f"arm_{arm.name}.json").is_file() or (folder / arm.run).is_dir()):
                continue
            tainted = next((a.name for a in plan if a.name in why and (a.run == arm.run or a.name == arm.start)),
                           None)
            if tainted is not None:
                why[arm.name] = f"shares its run folder with, or starts from, {tainted}"
                grown = True
    return why


def set_aside(folder: Path, plan: Sequence[ArmLike], names: set[str]) -> Path:
    """Move the cached results, run folders and run configs (``<run>.yaml``) of the arms ``names``, and the
    seed's ``result.json``, into ``folder/stale/<n>/`` (the first free n), so that those arms train again;
    returns that folder."""
    base = folder / "stale"
    n = 0
    while (base / str(n)).exists():
        n += 1
    target = base / str(n)
    target.mkdir(parents=True)
    runs = {a.run for a in plan if a.name in names}
    moved = [folder / f"arm_{name}.json" for name in sorted(names)] + [folder / r for r in sorted(runs)]
    moved += [folder / f"{r}.yaml" for r in sorted(runs)] + [folder / "result.json"]
    for path in moved:
        if path.exists():
            path.rename(target / path.name)
    return target
