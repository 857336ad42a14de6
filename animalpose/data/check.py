"""Validate a dataset in one pass and summarise it: every problem is collected, none stops the check.

:func:`check_dataset` decodes every referenced image (a truncated PNG/JPEG is caught by its
missing end marker), opens every video and decodes a few referenced frames (all frames with
``decode_video=True``), and checks every record: joint count equals the schema's, no NaN/inf
coordinates, visibility in {0, 1, 2}, labelled keypoints inside the image, boxes of positive size
inside the image. Each problem is a :class:`~animalpose.errors.Problem` naming the file and the
field (for COCO, e.g. ``annotations[3].keypoints[5]`` of the JSON; for images, the image file).
Problems the reader found (duplicate image ids, annotations of unknown images) come first, then the
dataset-level ones (no instances, non-integer image ids, annotation ids used twice). The rules live
in :mod:`animalpose.data.validate`, which `train`, `evaluate` and `adapt` apply before any work.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from animalpose.data.images import (
    VideoFrameReader,
    count_video_frames,
    is_video_path,
    probe_image_size,
    read_image,
    video_info,
)
from animalpose.data.records import PoseDataset, PoseRecord
from animalpose.data.validate import _dedup, check_record, dataset_problems, outside_root_problems
from animalpose.data.validate import image_field as _image_field
from animalpose.data.validate import record_origin as _origin
from animalpose.errors import DataError, Problem, missing_file_reason
from animalpose.keypoints import KeypointSchema


@dataclass
class CheckReport:
    """What :func:`check_dataset` found. ``problems`` holds errors and warnings, in the order found."""

    format: str
    schema: str
    source: str
    num_joints: int | None = None
    num_images: int = 0
    num_instances: int = 0
    num_keypoints_labelled: int = 0
    per_joint_labelled: dict[str, int] = field(default_factory=dict)
    image_sizes: dict[str, int] = field(default_factory=dict)  # "WxH" -> number of images
    splits: dict[str, int] = field(default_factory=dict)  # split -> instances
    videos: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # species (COCO categories[].name) -> {"images": n, "instances": m}; empty when records carry none
    categories: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "schema": self.schema,
            "source": self.source,
            "num_joints": self.num_joints,
            "num_images": self.num_images,
            "num_instances": self.num_instances,
            "num_keypoints_labelled": self.num_keypoints_labelled,
            "per_joint_labelled": self.per_joint_labelled,
            "image_sizes": self.image_sizes,
            "splits": self.splits,
            "videos": self.videos,
            "num_video_frames": sum(v.get("frames") or 0 for v in self.videos),
            "errors": [{"file": p.file, "field": p.field, "message": p.message} for p in self.errors],
            "warnings": [{"file": p.file, "field": p.field, "message": p.message} for p in self.warnings],
            "notes": self.notes,
            "categories": self.categories,
        }


def _sample_frames(frames: list[int], n: int) -> list[int]:
    """Up to n referenced frames spread over the list (first, ..., last)."""
    if len(frames) <= n:
        return frames
    idx = np.linspace(0, len(frames) - 1, n).round().astype(int)
    return [frames[i] for i in dict.fromkeys(idx.tolist())]


def _progress(items, enabled: bool, what: str):
    if not enabled:
        return items
    from rich.console import Console
    from rich.progress import track

    return track(items, description=what, console=Console(stderr=True), transient=True)


def check_dataset(
    dataset: PoseDataset,
    schema: KeypointSchema | None = None,
    *,
    decode_images: bool = True,
    decode_video: bool = False,
    video_samples: int = 3,
    progress: bool = False,
    allow_outside_root: bool = False,
) -> CheckReport:
    """Validate ``dataset`` and summarise it; never raises for bad data, every problem is reported.

    Args:
        dataset: what a reader returned.
        schema: the dataset's schema object (default: :func:`~animalpose.data.readers.dataset_schema`).
        decode_images: decode every still image (else only existence and header size).
        decode_video: decode every frame of every video and compare with the container's count
            (slow); otherwise ``video_samples`` referenced frames per video are decoded.
        progress: show a progress bar on stderr.
        allow_outside_root: check (and open) images whose paths resolve outside the dataset's image root;
            otherwise each is an error and is not opened.
    """
    if schema is None:
        from animalpose.data.readers import dataset_schema

        schema = dataset_schema(dataset)
    report = CheckReport(dataset.format, dataset.schema, dataset.source,
                         num_joints=schema.num_joints if schema is not None else None)
    report.problems.extend(dataset.problems)
    report.problems.extend(dataset_problems(dataset))  # empty dataset, string image ids, duplicate ids
    report.notes.extend(dataset.meta.get("notes", []))
    outside = {} if allow_outside_root else outside_root_problems(dataset)
    report.problems.extend(_dedup(list(outside.values())))
    by_image: dict[tuple[str, int | None], list[PoseRecord]] = defaultdict(list)
    for i, rec in enumerate(dataset.records):
        if i not in outside:  # never opened
            by_image[(rec.image, rec.frame_index)].append(rec)
    sizes: dict[tuple[str, int | None], tuple[int, int] | None] = {}

    # Videos: the ones records reference and the ones the dataset lists (e.g. DLC's videos/ folder).
    video_frames: dict[str, list[int]] = defaultdict(list)
    for image, frame in by_image:
        if frame is not None and is_video_path(image):
            video_frames[image].append(frame)
    for path in dataset.videos:
        video_frames.setdefault(path, [])
    reader = VideoFrameReader(max_open=2)
    try:
        for path in _progress(list(video_frames), progress and decode_video, "videos"):
            entry = {"path": path, "frames": None, "labelled_frames": len(set(video_frames[path]))}
            report.videos.append(entry)
            try:
                info = video_info(path)
            except DataError as exc:
                report.problems.append(exc.problem)
                continue
            entry.update(frames=info["frames"], fps=info["fps"], width=info["width"], height=info["height"])
            frames = sorted(set(video_frames[path]))
            total = info["frames"]
            if decode_video:
                total = count_video_frames(path)
                entry["frames_decoded"] = total
                if total != info["frames"]:
                    report.problems.append(Problem(path, "frames", f"container declares {info['frames']} frames, "
                                                   f"{total} decode", severity="warning"))
            for f in frames:
                if not 0 <= f < total:
                    for rec in by_image[(path, f)]:
                        file, where = _origin(rec)
                        report.problems.append(Problem(file, f"{where}.frame_index",
                                                       f"frame {f} not in {path} ({total} frames)"))
            for f in _sample_frames([f for f in frames if 0 <= f < total], video_samples):
                try:
                    reader.read(path, f)
                except DataError as exc:
                    report.problems.append(exc.problem)
            for f in frames:
                if 0 <= f < total:
                    sizes[(path, f)] = (info["width"], info["height"])
    finally:
        reader.close()

    still = [key for key in by_image if not (key[1] is not None and is_video_path(key[0]))]
    seen_ids: dict = {}
    for key in _progress(still, progress, "images"):
        image = key[0]
        recs = by_image[key]
        size = None
        if not Path(image).is_file():
            report.problems.append(Problem(image, _image_field(recs[0]), missing_file_reason(image, "image file")))
        else:
            try:
                if decode_images:
                    img = read_image(image)
                    size = (img.shape[1], img.shape[0])
                else:
                    size = probe_image_size(image)
            except DataError as exc:
                report.problems.append(exc.problem)
        declared = recs[0].image_size
        if size is not None and declared is not None and tuple(declared) != size:
            file, _ = _origin(recs[0])
            report.problems.append(Problem(file, recs[0].meta.get("image_field", "image_size"),
                                           f"declares {declared[0]}x{declared[1]}, {image} is {size[0]}x{size[1]}"))
        sizes[key] = size
        image_id = recs[0].image_id
        if image_id is not None:
            if image_id in seen_ids and seen_ids[image_id] != image:
                file, _ = _origin(recs[0])
                report.problems.append(Problem(file, _image_field(recs[0]),
                                               f"duplicate image id {image_id} ({seen_ids[image_id]} and {image})"))
            seen_ids.setdefault(image_id, image)

    per_joint = np.zeros(schema.num_joints if schema is not None else 0, dtype=np.int64)
    for key, recs in by_image.items():
        for rec in recs:
            report.problems.extend(check_record(rec, schema, sizes.get(key)))
            labelled = (rec.keypoints[:, 2] > 0) & np.isfinite(rec.keypoints).all(axis=1)
            report.num_keypoints_labelled += int(labelled.sum())
            if schema is not None and rec.num_joints == schema.num_joints:
                per_joint += labelled
    report.num_images = len(by_image)
    report.num_instances = len(dataset.records)
    if schema is not None:
        report.per_joint_labelled = {name: int(c) for name, c in zip(schema.joints, per_joint, strict=True)}
    size_counts = Counter(f"{s[0]}x{s[1]}" for key, s in sizes.items() if s is not None and key in by_image)
    report.image_sizes = dict(size_counts.most_common())
    report.splits = dict(Counter(r.split or "none" for r in dataset.records))
    report.categories = category_counts(dataset.records)
    return report


def category_counts(records: list[PoseRecord]) -> dict[str, dict[str, int]]:
    """species -> distinct images and instances, for records whose reader set ``meta["category"]``."""
    images: dict[str, set] = defaultdict(set)
    instances: Counter = Counter()
    for rec in records:
        if (name := rec.meta.get("category")) is not None:
            images[name].add((rec.image, rec.frame_index))
            instances[name] += 1
    return {name: {"images": len(images[name]), "instances": instances[name]} for name in sorted(instances)}
