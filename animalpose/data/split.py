"""A fixed, seeded train / val / test split of a labelled set, by video (session) or by frame.

Frames of one video are near-duplicates (a 250-fps camera moves a mouse by a pixel between frames), so a
split by frame puts almost the same image on both sides and measures memory, not generalisation. The
default therefore keeps every video whole (:func:`session_of` names a record's video): a video's frames
all go to one split. By frame, all instances of one frame still stay together (a multi-animal frame is
one image).

:func:`split_records` is pure (same records, fractions and seed: same split, whatever the order of the
input); :func:`write_split` writes ``train.json`` / ``val.json`` / ``test.json`` (COCO keypoints, image
paths relative to the output folder so that the folder moves with its project) and ``split.json`` (the
manifest: seed, rule, and each split's videos and images), every file atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np

from animalpose.atomic import write_json_atomic
from animalpose.data.coco_writer import write_coco
from animalpose.data.images import is_video_path, probe_image_size, video_info
from animalpose.data.records import PoseRecord
from animalpose.errors import DataError
from animalpose.keypoints import KeypointSchema
from animalpose.outputs import check_output_dir, output_errors, staged_folder

SPLITS = ("train", "val", "test")
SplitBy = Literal["video", "frame"]


def session_of(record: PoseRecord) -> str:
    """The video (session) a labelled frame comes from: ``video_id`` where the reader knows it (SLEAP,
    COCO from video), else the folder of the image (DeepLabCut: ``labeled-data/<video>/img0042.png``)."""
    if record.video_id is not None:
        return str(record.video_id)
    if record.meta.get("video"):
        return str(record.meta["video"])
    return Path(record.image).parent.name


def _frame_key(record: PoseRecord) -> str:
    return f"{record.image}#{record.frame_index}" if record.frame_index is not None else record.image


def _take(groups: list[str], sizes: dict[str, int], want: int) -> list[str]:
    """The first groups of ``groups`` whose sizes add up to at least ``want`` (none when want is 0)."""
    taken, total = [], 0
    for g in groups:
        if total >= want:
            break
        taken.append(g)
        total += sizes[g]
    return taken


def split_records(records: Sequence[PoseRecord], val: float = 0.1, test: float = 0.1, *, by: SplitBy = "video",
                  seed: int = 0, where: str = "<records>") -> dict[str, list[PoseRecord]]:
    """``{"train": [...], "val": [...], "test": [...]}``: whole videos (or whole frames) per split.

    Groups (videos, or frames) are shuffled with ``seed`` after sorting, then test takes groups until it
    holds at least ``round(test * N)`` frames (at least one group when ``test`` > 0), val likewise, and
    train the rest; records keep their input order inside each split.

    Raises:
        DataError naming ``where`` for fractions outside [0, 1) or summing to 1 or more, or when there are
        too few videos (or frames) to give every asked split at least one and leave one for training.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise DataError(where, "fractions", f"val {val} and test {test} must lie in [0, 1) and sum to less than 1")
    key = session_of if by == "video" else _frame_key
    frames_of: dict[str, set[str]] = {}
    for r in records:
        frames_of.setdefault(key(r), set()).add(_frame_key(r))
    sizes = {g: len(f) for g, f in frames_of.items()}
    groups = sorted(sizes)
    needed = 1 + (val > 0) + (test > 0)
    if len(groups) < needed:
        hint = " (a project with one video: split --by frame)" if by == "video" else ""
        raise DataError(where, "split", f"{len(groups)} {by}(s) cannot make {needed} non-empty splits{hint}")
    order = [groups[i] for i in np.random.default_rng(seed).permutation(len(groups))]
    n_frames = sum(sizes.values())
    chosen: dict[str, list[str]] = {}
    for name, frac in (("test", test), ("val", val)):
        want = max(1, round(frac * n_frames)) if frac > 0 else 0
        chosen[name] = _take(order[: len(order) - 1 - (name == "test" and val > 0)], sizes, want)
        order = order[len(chosen[name]):]
    chosen["train"] = order
    which = {g: name for name, gs in chosen.items() for g in gs}
    out: dict[str, list[PoseRecord]] = {name: [] for name in SPLITS}
    for r in records:
        out[which[key(r)]].append(r)
    return out


def one_per_frame(records: Sequence[PoseRecord]) -> bool:
    """True when no frame holds more than one labelled instance (a single-animal project)."""
    seen: set[str] = set()
    for r in records:
        key = _frame_key(r)
        if key in seen:
            return False
        seen.add(key)
    return True


def _portable(record: PoseRecord, folder: Path, whole_frame: bool) -> PoseRecord:
    """The record with its image path relative to ``folder`` and, with ``whole_frame``, a whole-image box
    where it has none (DeepLabCut labels whole frames; the COCO file would otherwise crop to the box around
    the keypoints)."""
    if whole_frame and (record.bbox is None or record.image_size is None):
        if record.image_size is not None:
            w, h = record.image_size
        elif is_video_path(record.image):
            info = video_info(record.image)
            w, h = info["width"], info["height"]
        else:
            w, h = probe_image_size(record.image)
        bbox = record.bbox if record.bbox is not None else (0.0, 0.0, float(w), float(h))
        record = replace(record, bbox=bbox, image_size=(int(w), int(h)))
    # absolute, not resolved: a project of links stays addressed through its own folders
    rel = os.path.relpath(os.path.abspath(record.image), os.path.abspath(folder))
    return replace(record, image=Path(rel).as_posix())


def images_outside(splits: dict[str, list[PoseRecord]], out_dir: str | Path) -> bool:
    """Whether any image of ``splits`` lies outside ``out_dir`` (paths resolved as the containment rule of
    :mod:`animalpose.data.validate` does): the split files then address it with ``../`` and are read with
    ``data.allow_outside_root`` (`--allow-outside-root`), e.g. a DeepLabCut project's ``labeled-data/``
    seen from ``PROJECT/animalpose/data``."""
    base = os.path.realpath(out_dir).rstrip(os.sep) + os.sep
    return any(not os.path.realpath(r.image).startswith(base) for recs in splits.values() for r in recs)


def write_split(splits: dict[str, list[PoseRecord]], schema: KeypointSchema, out_dir: str | Path, *,
                manifest: dict | None = None, whole_frame: bool | None = None, field: str = "--out") -> dict[str, Path]:
    """Write each non-empty split as ``out_dir/<split>.json`` and ``out_dir/split.json``; returns the paths.

    ``whole_frame``: a record without a box is cropped whole-frame (True), or around its keypoints (False);
    None: whole-frame when every frame holds one animal (:func:`one_per_frame`).

    ``manifest`` adds entries (source, seed, rule) to ``split.json``, which also lists each split's
    videos and its number of frames and instances.

    The files are written into a staging folder under ``out_dir`` and moved into place only when all of
    them are written (:func:`animalpose.outputs.staged_folder`). OutputError naming ``out_dir`` and
    ``field`` when it cannot be written.
    """
    out = check_output_dir(out_dir, field)
    paths: dict[str, Path] = {}
    summary: dict[str, dict] = {}
    if whole_frame is None:
        whole_frame = one_per_frame([r for recs in splits.values() for r in recs])
    # the whole set is written into a staging folder first: a failure or a kill never leaves a new train.json
    # beside an old val.json (every path inside the files is relative to out, not to the staging folder)
    with output_errors(out, field), staged_folder(out, "split") as stage:
        for name in SPLITS:
            recs = splits.get(name, [])
            if not recs:
                continue
            rows = [_portable(r, out, whole_frame) for r in recs]
            write_coco(rows, stage / f"{name}.json", schema, image_root=out, info={"split": name, **(manifest or {})})
            paths[name] = out / f"{name}.json"
            summary[name] = {"videos": sorted({session_of(r) for r in recs}),
                             "frames": len({_frame_key(r) for r in recs}), "instances": len(recs)}
        doc = {**(manifest or {}), "schema": schema.name, "splits": summary,
               "files": {k: v.name for k, v in paths.items()}}
        write_json_atomic(stage / "split.json", doc)
    paths["manifest"] = out / "split.json"
    return paths

