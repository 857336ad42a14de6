"""One validation path for labelled data: `data check`, `train`, `evaluate`, `adapt` and `bench` call it.

The rules (each problem a :class:`~animalpose.errors.Problem` naming the file and the field):

- per record (:func:`check_record`): joint count equals the schema's, no NaN/inf coordinates,
  visibility in {0, 1, 2}, labelled keypoints inside the image, boxes of positive size inside it;
- per dataset (:func:`dataset_problems`): at least one instance, integer image ids, no annotation
  id used twice; problems the reader found (duplicate image ids, ...) count too;
- per image (:func:`image_problem`): the file exists, its header gives a size within the pixel limit
  and a PNG/JPEG is not cut short; per video frame, the frame lies within the video;
- containment (:func:`outside_root_problem`): an image path that resolves outside the dataset's image
  root (``..``, an absolute path, a symbolic link) is refused, and the file is never opened, unless
  ``allow_outside_root`` (``data.allow_outside_root``) is set.

:func:`check_dataset <animalpose.data.check.check_dataset>` reports every problem (and decodes every
image); :func:`validate_dataset` is what the training and evaluation entry points call before any
work: a problem is a :class:`~animalpose.errors.DataError` unless ``skip_bad`` (``data.skip_bad``)
is set, in which case the records with a problem are dropped and listed in a :class:`SkipReport`
that the caller records (summary.json, ``--json`` output, MLflow).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from animalpose.data.images import (
    check_pixels,
    image_trailer_ok,
    is_video_path,
    max_image_pixels,
    probe_image_size,
    set_max_image_pixels,
    video_info,
)
from animalpose.data.records import PoseDataset, PoseRecord
from animalpose.errors import DataError, Problem, missing_file_reason
from animalpose.keypoints import KeypointSchema

log = logging.getLogger(__name__)

POINT_TOLERANCE = 1.0  # px a visible keypoint may lie outside the image (edge pixels, rounding)
# An occluded (visibility 1) joint is the annotator's estimate and may fall a little past the edge: the
# Animal-Pose release has four such points 2-6 px out (cows and sheep). Fraction of the image's larger side.
OCCLUDED_TOLERANCE = 0.02
BOX_TOLERANCE = 0.01  # fraction of the image size (at least 2 px) a box may extend outside the image
SHOWN_PROBLEMS = 5  # problems quoted in an error message; `data check` lists them all


def record_origin(rec: PoseRecord) -> tuple[str, str]:
    """(file, field) a record came from: the annotation file and entry when the reader knows them."""
    origin = rec.meta.get("origin")
    if origin:
        return str(origin[0]), str(origin[1])
    return rec.image, "record" if rec.frame_index is None else f"frame {rec.frame_index}"


def image_field(rec: PoseRecord) -> str:
    return f"{rec.meta['image_field']}.file_name" if "image_field" in rec.meta else "image"


def check_record(rec: PoseRecord, schema: KeypointSchema | None, size: tuple[int, int] | None) -> list[Problem]:
    """Problems of one record; ``size`` (width, height) of its image, None when it could not be read."""
    file, where = record_origin(rec)
    out = []
    kps = rec.keypoints
    if schema is not None and rec.num_joints != schema.num_joints:
        out.append(Problem(file, f"{where}.keypoints",
                           f"{rec.num_joints} joints, schema {schema.name!r} has {schema.num_joints}"))
    vis = kps[:, 2]
    for k in range(rec.num_joints):
        x, y, v = (float(c) for c in kps[k])
        name = f"{where}.keypoints[{k}]"
        bad = [f"{axis} is {val}" for axis, val in (("x", x), ("y", y), ("visibility", v)) if not np.isfinite(val)]
        if bad:
            out.append(Problem(file, name, ", ".join(bad)))
            continue
        if v not in (0.0, 1.0, 2.0):
            out.append(Problem(file, name, f"visibility {v:g} is not 0, 1 or 2"))
        if vis[k] > 0 and size is not None:
            w, h = size
            t = POINT_TOLERANCE if v == 2.0 else max(POINT_TOLERANCE, OCCLUDED_TOLERANCE * max(w, h))
            if not (-t <= x <= w + t and -t <= y <= h + t):
                out.append(Problem(file, name, f"({x:g}, {y:g}) lies outside the {w}x{h} image but visibility is "
                                               f"{v:g}"))
    if rec.bbox is not None:
        bx, by, bw, bh = (float(c) for c in rec.bbox)
        name = f"{where}.bbox"
        if not np.isfinite([bx, by, bw, bh]).all():
            out.append(Problem(file, name, f"non-finite box {rec.bbox}"))
        elif bw <= 0 or bh <= 0:
            out.append(Problem(file, name, f"box size {bw:g}x{bh:g} is not positive"))
        elif size is not None:
            w, h = size
            tx, ty = max(2.0, BOX_TOLERANCE * w), max(2.0, BOX_TOLERANCE * h)
            if bx < -tx or by < -ty or bx + bw > w + tx or by + bh > h + ty:
                out.append(Problem(file, name, f"box ({bx:g}, {by:g}, {bw:g}, {bh:g}) extends outside the "
                                               f"{w}x{h} image"))
    return out


def _empty_field(dataset: PoseDataset) -> str:
    return {"coco": "annotations", "dlc": "rows", "slp": "labeled_frames", "mpii": "<root>"}.get(
        dataset.format, "records")


def record_id_problems(dataset: PoseDataset) -> dict[int, list[Problem]]:
    """Problems of record ids, by record index: a non-integer image id, an annotation id used twice."""
    out: dict[int, list[Problem]] = {}
    seen: dict = {}
    for i, rec in enumerate(dataset.records):
        file, where = record_origin(rec)
        if rec.image_id is not None and (not isinstance(rec.image_id, int | np.integer)
                                         or isinstance(rec.image_id, bool)):
            out.setdefault(i, []).append(Problem(file, f"{where}.image_id",
                                                 f"image id {rec.image_id!r} is not an integer"))
        ann_id = rec.meta.get("annotation_id")
        if ann_id is not None:
            if ann_id in seen:
                out.setdefault(i, []).append(Problem(file, f"{where}.id",
                                                     f"annotation id {ann_id!r} is also used by {seen[ann_id]}"))
            else:
                seen[ann_id] = where
    return out


def dataset_problems(dataset: PoseDataset) -> list[Problem]:
    """Dataset-level problems: no instances at all (an empty annotation list, a DLC header without rows)
    and the id problems of :func:`record_id_problems`."""
    out = []
    if not dataset.records:
        out.append(Problem(dataset.source, _empty_field(dataset), "no annotated instances"))
    for problems in record_id_problems(dataset).values():
        out.extend(problems)
    return out


def outside_root_problem(rec: PoseRecord, root: str | Path) -> Problem | None:
    """The problem of an image path that resolves (``..``, absolute, symbolic links) outside ``root``."""
    real, base = os.path.realpath(rec.image), os.path.realpath(root)
    if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
        return None
    file, where = record_origin(rec)
    field = image_field(rec) if "image_field" in rec.meta or "origin" not in rec.meta else f"{where}.image"
    return Problem(file, field, f"image path {rec.image} resolves to {real}, outside the dataset's image "
                                           f"root {base}; data.allow_outside_root=true (evaluate, data check: "
                                           "--allow-outside-root) reads it")


def outside_root_problems(dataset: PoseDataset) -> dict[int, Problem]:
    """record index -> containment problem, for datasets whose reader knows the image root (``meta["image_root"]``:
    COCO and the Animal-Pose release, MPII, DeepLabCut, SLEAP, TigDog)."""
    root = dataset.meta.get("image_root")
    if not root:
        return {}
    out: dict[int, Problem] = {}
    seen: dict[str, bool] = {}
    for i, rec in enumerate(dataset.records):
        if seen.get(rec.image) is False:
            continue
        problem = outside_root_problem(rec, root)
        seen[rec.image] = problem is not None
        if problem is not None:
            out[i] = problem
    return out


def image_problem(rec: PoseRecord, max_pixels: int | None = None) -> tuple[tuple[int, int] | None, Problem | None]:
    """(width, height) of a still image from its header, or the problem: missing, unreadable, cut short.

    Cheap (no decode): the header and the last few kB. A declared size that differs from the file's is a
    problem too, and so is a size over ``max_pixels`` (default :func:`~animalpose.data.images.max_image_pixels`).
    """
    file, _ = record_origin(rec)
    path = Path(rec.image)
    if not path.is_file():
        return None, Problem(rec.image, image_field(rec), missing_file_reason(path, "image file"))
    try:
        size = probe_image_size(path)
        complete = image_trailer_ok(path)
    except DataError as exc:
        return None, exc.problem
    except OSError as exc:
        return None, Problem(rec.image, "image", f"cannot read: {exc}")
    if not complete:  # the field `data check` names for an image that does not decode
        return None, Problem(rec.image, "image", "truncated file (no end marker)")
    try:
        check_pixels(path, *size, max_pixels)
    except DataError as exc:
        return None, exc.problem
    if rec.image_size is not None and tuple(rec.image_size) != size:
        return size, Problem(file, rec.meta.get("image_field", "image_size"),
                             f"declares {rec.image_size[0]}x{rec.image_size[1]}, {rec.image} is "
                             f"{size[0]}x{size[1]}")
    return size, None


def _video_problems(records: list[tuple[int, PoseRecord]]) -> tuple[dict[int, tuple[int, int]], dict[int, Problem]]:
    """Sizes and problems of video-frame records: the video opens and the frame lies within it."""
    sizes: dict[int, tuple[int, int]] = {}
    problems: dict[int, Problem] = {}
    infos: dict[str, dict | DataError] = {}
    for i, rec in records:
        if rec.image not in infos:
            try:
                infos[rec.image] = video_info(rec.image)
            except DataError as exc:
                infos[rec.image] = exc
        info = infos[rec.image]
        if isinstance(info, DataError):
            problems[i] = info.problem
            continue
        total = info["frames"]
        if total and not 0 <= int(rec.frame_index) < total:
            file, where = record_origin(rec)
            problems[i] = Problem(file, f"{where}.frame_index", f"frame {rec.frame_index} not in {rec.image} "
                                                                f"({total} frames)")
            continue
        sizes[i] = (info["width"], info["height"])
    return sizes, problems


@dataclass
class SkipReport:
    """What ``data.skip_bad`` dropped: how many records, from which files, and why."""

    records: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        return sorted({p.file for p in self.problems})

    def extend(self, other: SkipReport) -> None:
        self.records += other.records
        self.problems.extend(other.problems)

    def to_dict(self) -> dict:
        return {"records": self.records, "files": self.files, "problems": [p.to_dict() for p in self.problems]}


@dataclass
class Validated:
    """The records that passed, and what was skipped (empty unless ``skip_bad``)."""

    records: list[PoseRecord]
    skipped: SkipReport


def _error(problems: list[Problem], source: str, skippable: bool = True) -> DataError:
    first = problems[0]
    more = len(problems) - 1
    message = first.message
    if more:
        shown = "; ".join(str(p) for p in problems[1:SHOWN_PROBLEMS])
        message += f" (and {more} more: {shown}{'; ...' if more >= SHOWN_PROBLEMS else ''})"
    if skippable:
        message += (f". `animalpose data check {source}` lists every problem; data.skip_bad=true "
                    "(evaluate: --skip-bad) skips the bad samples")
    err = DataError(first.file, first.field, message)
    err.problems = problems
    return err


def validate_dataset(dataset: PoseDataset, schema: KeypointSchema | None, *, skip_bad: bool = False,
                     check_images: bool = True, require_instances: bool = True, allow_outside_root: bool = False,
                     max_pixels: int | None = None) -> Validated:
    """Check every record of ``dataset`` (see the module docstring) before any work starts.

    Args:
        schema: the joints every record must have; None skips the joint-count rule (unlabelled target).
        skip_bad: drop the records with a problem and report them, instead of raising.
        check_images: check every referenced image (header and end marker) or video frame.
        require_instances: an empty dataset is a problem (always an error, skipping cannot help).
        allow_outside_root: read images whose paths resolve outside the dataset's image root.
        max_pixels: the pixel limit (default :func:`~animalpose.data.images.max_image_pixels`).

    Raises:
        DataError: naming the file and the field of the first problem (the others in ``.problems``),
            when anything is wrong and ``skip_bad`` is off, or when nothing is left after skipping.
    """
    if require_instances and not dataset.records:
        raise _error([Problem(dataset.source, _empty_field(dataset), "no annotated instances")], dataset.source,
                     skippable=False)
    general = [p for p in dataset.problems if p.severity == "error"]  # reader-level, not tied to a record
    per_record = record_id_problems(dataset)
    outside = {} if allow_outside_root else outside_root_problems(dataset)
    for i, p in outside.items():
        per_record.setdefault(i, []).append(p)
    sizes: dict[int, tuple[int, int] | None] = {}
    if check_images:
        video = [(i, r) for i, r in enumerate(dataset.records)
                 if r.frame_index is not None and is_video_path(r.image) and i not in outside]
        vsizes, vproblems = _video_problems(video)
        sizes.update(vsizes)
        for i, p in vproblems.items():
            per_record.setdefault(i, []).append(p)
        by_image: dict[str, tuple[tuple[int, int] | None, Problem | None]] = {}
        video_ids = {i for i, _ in video}
        for i, rec in enumerate(dataset.records):
            if i in video_ids or i in outside:  # an image outside the root is never opened
                continue
            if rec.image not in by_image:
                by_image[rec.image] = image_problem(rec, max_pixels)
            size, problem = by_image[rec.image]
            sizes[i] = size
            if problem is not None:
                per_record.setdefault(i, []).append(problem)
    for i, rec in enumerate(dataset.records):
        found = check_record(rec, schema, sizes.get(i))
        if found:
            per_record.setdefault(i, []).extend(found)
    problems = general + [p for i in sorted(per_record) for p in per_record[i]]
    if not problems:
        return Validated(list(dataset.records), SkipReport())
    if not skip_bad:
        raise _error(_dedup(problems), dataset.source)
    kept = [r for i, r in enumerate(dataset.records) if i not in per_record]
    skipped = SkipReport(len(per_record), _dedup(problems))
    per_file = Counter(p.file for p in skipped.problems)
    log.warning("data.skip_bad: skipping %d of %d records of %s (%s)", skipped.records, len(dataset.records),
                dataset.source, ", ".join(f"{f}: {n} problems" for f, n in per_file.items()))
    if require_instances and not kept:
        raise _error([Problem(dataset.source, _empty_field(dataset),
                              f"no valid instances left after skipping {skipped.records} bad ones")], dataset.source,
                     skippable=False)
    return Validated(kept, skipped)


def validation_options(data_cfg) -> dict:
    """:func:`validate_dataset`'s options from a ``data`` config section (``skip_bad``, ``allow_outside_root``,
    ``max_image_pixels``). A limit above the one in force is also set for this process and the workers it
    starts (:func:`~animalpose.data.images.set_max_image_pixels`), so the images read later obey it too."""
    if data_cfg.max_image_pixels > max_image_pixels():
        set_max_image_pixels(data_cfg.max_image_pixels)
    return {"skip_bad": data_cfg.skip_bad, "allow_outside_root": data_cfg.allow_outside_root,
            "max_pixels": data_cfg.max_image_pixels}


def _dedup(problems: list[Problem]) -> list[Problem]:
    """One problem per (file, field, message): a missing image shared by many records is one problem."""
    return list({(p.file, p.field, p.message): p for p in problems}.values())
