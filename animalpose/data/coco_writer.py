"""Write records as a COCO keypoints JSON file, atomically (temporary file, then ``os.replace``).

Used by the synthetic generator (``OUT/annotations/<schema>.json`` beside ``OUT/images/``) and by
pseudo-label diagnostics. The file reads back with :func:`animalpose.data.readers.read_coco` into
equal records: ``info.schema`` names the schema, image entries carry ``video_id``, ``frame_index``
and ``factors`` (``record.meta["factors"]``) when the records have them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from animalpose.atomic import write_json_atomic
from animalpose.data.images import is_video_path, probe_image_size, video_info
from animalpose.data.records import PoseRecord
from animalpose.keypoints import KeypointSchema, load_schema


def default_image_root(path: Path) -> Path:
    """``OUT`` for ``OUT/annotations/x.json``, else the JSON's own folder."""
    return path.parent.parent if path.parent.name == "annotations" else path.parent


def _relative(image: str, root: Path) -> str:
    p = Path(image)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return p.as_posix()  # outside the root: keep the absolute path


def _size(rec: PoseRecord) -> tuple[int, int]:
    if rec.image_size is not None:
        return rec.image_size
    if is_video_path(rec.image):
        info = video_info(rec.image)
        return info["width"], info["height"]
    return probe_image_size(rec.image)


def _number(v: float) -> float | int:
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"non-finite value {f} cannot be written to COCO JSON")
    return int(f) if f.is_integer() else round(f, 4)


def write_coco(
    records: Iterable[PoseRecord],
    path: str | Path,
    schema: str | KeypointSchema,
    *,
    image_root: str | Path | None = None,
    category: str | None = None,
    info: dict | None = None,
) -> Path:
    """Write ``records`` to ``path`` as COCO keypoints JSON; returns the path.

    Args:
        records: instances; records of the same (image, frame_index) share one image entry.
        path: output JSON (its folder is created).
        schema: the keypoint schema of every record (joint counts are checked).
        image_root: ``file_name`` entries are written relative to it (default: ``OUT`` for
            ``OUT/annotations/x.json``, else the JSON's folder); images outside it keep absolute paths.
        category: category name (default: the schema name).
        info: extra ``info`` entries (``schema`` is always set).

    Image ids come from ``record.image_id`` when set, else are numbered from 1 in first-seen order.
    Annotation boxes are ``record.bbox`` or the box around the labelled keypoints. Sizes come from
    ``record.image_size`` or the image header. Raises ValueError on a joint-count mismatch, NaN
    coordinates or two images claiming one id.
    """
    path = Path(path)
    schema = schema if isinstance(schema, KeypointSchema) else load_schema(schema)
    root = Path(image_root) if image_root is not None else default_image_root(path)
    images: dict[tuple[str, int | None], dict] = {}
    used_ids: set[int] = set()
    annotations = []
    next_id = 1
    for n, rec in enumerate(records):
        if rec.num_joints != schema.num_joints:
            raise ValueError(f"record {n} ({rec.image}): {rec.num_joints} joints, schema {schema.name!r} has "
                             f"{schema.num_joints}")
        key = (rec.image, rec.frame_index)
        entry = images.get(key)
        if entry is None:
            if rec.image_id is not None:
                image_id = int(rec.image_id)
                if image_id in used_ids:
                    raise ValueError(f"record {n}: image id {image_id} already used by another image")
            else:
                while next_id in used_ids:
                    next_id += 1
                image_id = next_id
            used_ids.add(image_id)
            width, height = _size(rec)
            entry = {"id": image_id, "file_name": _relative(rec.image, root), "width": int(width),
                     "height": int(height)}
            if rec.video_id is not None:
                entry["video_id"] = rec.video_id
            if rec.frame_index is not None:
                entry["frame_index"] = int(rec.frame_index)
            if "factors" in rec.meta:
                entry["factors"] = rec.meta["factors"]
            images[key] = entry
        kps = np.asarray(rec.keypoints, dtype=np.float64)
        labelled = kps[:, 2] > 0
        flat = [_number(v) for v in kps.reshape(-1)]
        box = rec.bbox if rec.bbox is not None else rec.keypoint_box()
        ann = {
            "id": len(annotations) + 1,
            "image_id": entry["id"],
            "category_id": 1,
            "keypoints": flat,
            "num_keypoints": int(labelled.sum()),
            "bbox": [_number(v) for v in box] if box is not None else [0, 0, 0, 0],
            "area": _number(box[2] * box[3]) if box is not None else 0,
            "iscrowd": 0,
        }
        if rec.instance_id is not None:
            ann["track_id"] = int(rec.instance_id)
        if "score" in rec.meta:
            ann["score"] = _number(rec.meta["score"])
        annotations.append(ann)
    doc = {
        "info": {**(info or {}), "schema": schema.name},
        "images": list(images.values()),
        "annotations": annotations,
        "categories": [{
            "id": 1,
            "name": category or schema.name,
            "supercategory": "animal",
            "keypoints": list(schema.joints),
            "skeleton": [[a + 1, b + 1] for a, b in schema.skeleton],  # COCO skeletons are 1-based
        }],
    }
    return write_json_atomic(path, doc, allow_nan=False)
