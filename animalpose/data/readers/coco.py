"""COCO keypoints JSON: Animal-Pose, AP-10K, ATRW, Horse-10, COCO humans and the generator's output.

Layouts accepted by :func:`read_coco`:

- a JSON file, images resolved against (in order) the JSON's folder, its parent, ``<parent>/images``
  and ``<folder>/images``: the first candidate where the first image exists is used for all;
- a folder with ``annotations/*.json`` (the generator's ``OUT/annotations/<schema>.json`` beside
  ``OUT/images/``): the file named after ``schema`` when given, else the first in sorted order;
- a folder holding COCO JSON files directly (mmpose test folders): the first COCO-shaped file.

The original Animal-Pose release (``keypoints.json``: ``images`` as an id -> file-name dict,
keypoints as nested [x, y, v] lists, joints in the release's order) is parsed here too, but its boxes
are ``[xmin, ymin, xmax, ymax]``: read it with :mod:`.animalpose_release` (format
``animalpose-release``, detected), which passes ``bbox_layout="xyxy"`` and maps joints by name.

Schema resolution: ``schema=`` argument > ``info.schema`` > category joint names > unique count.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from animalpose.data.readers.common import load_json, require, resolve_schema, split_from_name
from animalpose.data.records import PoseDataset, PoseRecord
from animalpose.errors import DataError, Problem
from animalpose.keypoints import KeypointSchema


def is_coco_json(path: Path) -> bool:
    """Cheap sniff: a JSON object naming "annotations", "images" or "categories" near its start or end."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).lstrip()
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 4096))
            tail = fh.read()
    except OSError:
        return False
    keys = (b'"annotations"', b'"images"', b'"categories"')
    return head.startswith(b"{") and any(k in head or k in tail for k in keys)


def find_coco_json(folder: Path, schema: str | KeypointSchema | None = None) -> tuple[Path, list[str]]:
    """The annotation file of a COCO dataset folder, with notes on the choice made."""
    notes: list[str] = []
    ann_dir = folder / "annotations"
    candidates = sorted(ann_dir.glob("*.json")) if ann_dir.is_dir() else []
    if not candidates:
        candidates = [p for p in sorted(folder.glob("*.json")) if is_coco_json(p)]
    if not candidates:
        raise DataError(str(folder), "annotations", "no COCO keypoints JSON found")
    if len(candidates) > 1:
        name = schema.name if isinstance(schema, KeypointSchema) else schema
        chosen = [p for p in candidates if name and p.stem == name]
        pick = chosen[0] if chosen else candidates[0]
        notes.append(f"{len(candidates)} annotation files ({', '.join(p.name for p in candidates)}); read {pick.name}")
        return pick, notes
    return candidates[0], notes


def _image_root(json_path: Path, files: list[str], override: Path | None) -> Path:
    """The folder image file names are relative to: the first candidate holding one of the first files."""
    if override is not None:
        return override
    folder = json_path.parent
    roots = [folder, folder.parent, folder.parent / "images", folder / "images"]
    for name in files[:20]:  # a few, so that one missing image does not misplace all the others
        for root in roots:
            if (root / name).exists():
                return root
    return folder


def _images_table(data: dict, where: str) -> tuple[dict, list[Problem], int]:
    """image id -> image entry (dict), problems for duplicates, and the number of image entries."""
    raw = require(data, "images", where, "images")
    problems = []
    if isinstance(raw, dict):  # original Animal-Pose release: {"id": "file name"}
        entries = [{"id": int(k), "file_name": v} for k, v in raw.items()]
    elif isinstance(raw, list):
        entries = raw
    else:
        raise DataError(where, "images", "expected a list of image entries")
    table: dict = {}
    for i, entry in enumerate(entries):
        image_id = require(entry, "id", where, f"images[{i}].id")
        file_name = require(entry, "file_name", where, f"images[{i}].file_name")
        if not isinstance(file_name, str):
            raise DataError(where, f"images[{i}].file_name", "expected a string")
        if image_id in table:
            problems.append(Problem(where, f"images[{i}].id", f"duplicate image id {image_id}"))
            continue
        table[image_id] = (i, entry)
    return table, problems, len(entries)


def _keypoints(raw, where: str, field: str) -> np.ndarray:
    """Flat [x, y, v, ...] or nested [[x, y, v], ...] -> (K, 3) float32 (NaN kept for check to report)."""
    if not isinstance(raw, list):
        raise DataError(where, field, "expected a list of numbers")
    if raw and isinstance(raw[0], list):
        flat = [v for row in raw for v in row]
    else:
        flat = raw
    if len(flat) % 3:
        raise DataError(where, field, f"{len(flat)} values, not a multiple of 3 (x, y, visibility)")
    try:
        return np.asarray([math.nan if v is None else float(v) for v in flat], dtype=np.float32).reshape(-1, 3)
    except (TypeError, ValueError) as exc:
        raise DataError(where, field, f"non-numeric value: {exc}") from exc


def _bbox(raw, where: str, field: str, layout: str = "xywh") -> tuple[float, float, float, float] | None:
    """(x, y, w, h) from COCO's ``[x, y, w, h]`` or, with ``layout="xyxy"``, ``[xmin, ymin, xmax, ymax]``."""
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != 4:
        raise DataError(where, field, f"expected {'[xmin, ymin, xmax, ymax]' if layout == 'xyxy' else '[x, y, w, h]'}")
    try:
        x, y, a, b = (float(v) for v in raw)
    except (TypeError, ValueError) as exc:
        raise DataError(where, field, f"non-numeric value: {exc}") from exc
    return (x, y, a - x, b - y) if layout == "xyxy" else (x, y, a, b)


def read_coco(
    path: str | Path,
    schema: str | KeypointSchema | None = None,
    *,
    image_root: str | Path | None = None,
    keypoint_order: str = "auto",
    bbox_layout: str = "xywh",
) -> PoseDataset:
    """Read a COCO keypoints dataset (file or folder, see the module docstring) into records.

    Args:
        path: the JSON file or a dataset folder.
        schema: keypoint schema name (overrides what the file declares or implies).
        image_root: folder that image ``file_name`` entries are relative to (default: found).
        keypoint_order: "auto" (by category joint names), "schema" or "original" (Animal-Pose release).
        bbox_layout: "xywh" (COCO) or "xyxy" (the Animal-Pose release, see :mod:`.animalpose_release`).

    Records carry ``meta["origin"] = (json file, "annotations[i]")`` so validation names the field.
    Reader-level soft problems (duplicate image ids, annotations of unknown images) are collected in
    ``PoseDataset.problems``; malformed JSON or missing keys raise DataError.
    """
    path = Path(path)
    notes: list[str] = []
    if path.is_dir():
        path, notes = find_coco_json(path, schema)
    where = str(path)
    data = load_json(path)
    if not isinstance(data, dict):
        raise DataError(where, "<root>", "expected a COCO JSON object with images/annotations/categories")
    anns = require(data, "annotations", where, "annotations")
    if not isinstance(anns, list):
        raise DataError(where, "annotations", "expected a list")
    images, problems, num_entries = _images_table(data, where)
    categories = data.get("categories") or []
    if not isinstance(categories, list):
        raise DataError(where, "categories", "expected a list")
    cat_names: dict = {}
    joint_names: list[str] | None = None
    for i, cat in enumerate(categories):
        cat_id = require(cat, "id", where, f"categories[{i}].id")
        cat_names[cat_id] = cat.get("name")
        names = cat.get("keypoints")
        if names:
            if joint_names is None:
                joint_names = list(names)
            elif list(names) != joint_names:
                raise DataError(where, f"categories[{i}].keypoints", "categories disagree on the joint names")
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    first_k = None
    if anns and isinstance(anns[0], dict) and isinstance(anns[0].get("keypoints"), list):
        first_k = len(_keypoints(anns[0]["keypoints"], where, "annotations[0].keypoints"))
    if bbox_layout not in ("xywh", "xyxy"):
        raise DataError(where, "bbox_layout", f"expected xywh or xyxy, got {bbox_layout!r}")
    resolved, order = resolve_schema(schema, info.get("schema"), joint_names, first_k, where)
    if keypoint_order != "auto":
        if keypoint_order not in ("schema", "original"):
            raise DataError(where, "keypoint_order", f"expected auto, schema or original, got {keypoint_order!r}")
        order = keypoint_order
    reorder = None
    if order == "original":
        original = resolved.extra.get("original_order")
        if not original:
            raise DataError(where, "keypoint_order", f"schema {resolved.name!r} has no original_order")
        # output joint k takes input joint reorder[k]
        reorder = np.array([list(original).index(j) for j in resolved.joints])
    names = [entry["file_name"] for _, entry in images.values()]
    root = _image_root(path, names, Path(image_root) if image_root is not None else None)
    split = info.get("split") or split_from_name(path.stem)

    records = []
    used_images = set()
    for i, ann in enumerate(anns):
        field = f"annotations[{i}]"
        image_id = require(ann, "image_id", where, f"{field}.image_id")
        kps = _keypoints(require(ann, "keypoints", where, f"{field}.keypoints"), where, f"{field}.keypoints")
        if reorder is not None and len(kps) == len(reorder):
            kps = kps[reorder]
        if image_id not in images:
            problems.append(Problem(where, f"{field}.image_id", f"no image with id {image_id}"))
            continue
        img_index, entry = images[image_id]
        used_images.add(image_id)
        file_name = entry["file_name"]
        frame_index = entry.get("frame_index")
        width, height = entry.get("width"), entry.get("height")
        meta = {"origin": (where, field), "image_field": f"images[{img_index}]"}
        if ann.get("id") is not None:
            meta["annotation_id"] = ann["id"]  # validation reports ids used twice
        if isinstance(entry.get("factors"), dict):
            meta["factors"] = entry["factors"]
        if ann.get("iscrowd"):
            meta["iscrowd"] = True
        if isinstance(ann.get("area"), int | float) and ann["area"] > 0:
            meta["area"] = float(ann["area"])  # COCO's segment area: the OKS scale (evaluation._area)
        if cat_names.get(ann.get("category_id")):
            meta["category"] = cat_names[ann.get("category_id")]
        if "score" in ann:
            meta["score"] = float(ann["score"])
        video_id = entry.get("video_id")
        records.append(
            PoseRecord(
                image=str(root / file_name),
                keypoints=kps,
                schema=resolved.name,
                bbox=_bbox(ann.get("bbox"), where, f"{field}.bbox", bbox_layout),
                image_size=(int(width), int(height)) if width and height else None,
                video_id=None if video_id is None else str(video_id),
                frame_index=None if frame_index is None else int(frame_index),
                split=split,
                instance_id=ann.get("track_id", ann.get("id")),
                image_id=image_id,
                meta=meta,
            )
        )
    meta = {"annotation_file": where, "image_root": str(root), "num_image_entries": num_entries,
            "images_without_instances": len(images) - len(used_images), "notes": notes, "schema_def": resolved}
    return PoseDataset(records, resolved.name, "coco", where, problems=problems, meta=meta)
