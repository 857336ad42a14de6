"""The original Animal-Pose release (Cao et al., ICCV 2019, "Cross-Domain Adaptation for Animal Pose
Estimation"; https://github.com/noahcao/animal-pose-dataset), read as it is published.

Layout facts of the release's ``keypoints.json`` (checked on the 2021/7/14 file in
``../shared/data/real/animal-pose``):

- ``images`` is an object ``{"<image id>": "<file name>"}``, not COCO's list of image entries;
- ``annotations[i].bbox`` is ``[xmin, ymin, xmax, ymax]`` (the PASCAL VOC convention of the images it
  comes from), not COCO's ``[x, y, w, h]``; it is converted to ``(x, y, w, h)`` here;
- ``annotations[i].keypoints`` is 20 ``[x, y, v]`` rows with v in {0, 1}, in the order of
  ``categories[].keypoints`` (left_eye, right_eye, nose, left_ear, right_ear, the four elbows, the
  four knees, the four paws, throat, withers, tailbase). That order differs from mmpose's (our
  ``animalpose`` schema), so joints are moved by name (:func:`release_joint_index`); the names agree
  with the coordinates (on the 960 horses: elbow above knee in 93-95 %, knee above paw in 99 %, left
  eye and left ear on the same side in 99 % of the instances);
- ``category_id`` names the species (dog, cat, sheep, horse, cow).

A split file (``splits.json`` beside it) is ``{"<species>": {"train"|"val"|"test": [image ids]}}``:
:func:`assign_splits` sets each record's ``split`` from it, so ``read_dataset(..., split="train")``
keeps that split.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from animalpose.data.readers.coco import read_coco
from animalpose.data.readers.common import canonical_joint, load_json, resolve_schema
from animalpose.data.records import PoseDataset
from animalpose.errors import DataError
from animalpose.keypoints import KeypointSchema

FORMAT = "animalpose-release"
_IMAGES_DICT = re.compile(rb'"images"\s*:\s*([\[{])')


def is_animalpose_release(path: Path) -> bool:
    """True for a JSON file whose first ``"images"`` key holds an object (id -> file name), the release's layout."""
    try:
        # mmap: a whole-file regex scan without loading a large COCO file into memory
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            found = _IMAGES_DICT.search(buf)  # type: ignore[call-overload]  # mmap is a bytes-like buffer
            return found is not None and found.group(1) == b"{"
    except (OSError, ValueError):  # unreadable or empty file
        return False


def release_joint_index(names: Sequence[str], schema: KeypointSchema, where: str, field: str) -> np.ndarray:
    """(K_schema,) index into the file's joints: schema joint k is the file's joint ``index[k]``.

    Names are matched spelling-independently (``left_front_elbow`` ~ ``L_F_Elbow``, ``left_ear`` ~
    ``L_EarBase``; :func:`~animalpose.data.readers.common.canonical_joint`).
    """
    keys = [canonical_joint(n) for n in names]
    index = []
    for joint in schema.joints:
        hits = [i for i, k in enumerate(keys) if k == canonical_joint(joint)]
        if len(hits) != 1:
            found = "no" if not hits else f"{len(hits)}"
            raise DataError(where, field, f"{found} joint named like {joint!r} of schema {schema.name!r} "
                                          f"among {list(names)}")
        index.append(hits[0])
    return np.asarray(index, dtype=np.int64)


def read_animalpose_release(
    path: str | Path,
    schema: str | KeypointSchema | None = None,
    *,
    image_root: str | Path | None = None,
) -> PoseDataset:
    """Read the release's ``keypoints.json`` (or a folder holding it): boxes as xyxy, joints by name.

    Args:
        path: ``keypoints.json`` or the folder with it.
        schema: target schema (default: the one whose joints the file's names match, ``animalpose``).
        image_root: folder of the image files (default: found beside the JSON, e.g. ``images/``).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "keypoints.json"
    where = str(path)
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), dict):
        raise DataError(where, "images", "not the Animal-Pose release layout (images as an id -> file name "
                                         "object); read it with --format coco")
    cats = data.get("categories") or []
    names = next((c.get("keypoints") for c in cats if isinstance(c, dict) and c.get("keypoints")), None)
    resolved, _ = resolve_schema(schema, None, names, 20, where)
    if names:
        index = release_joint_index(names, resolved, where, "categories[].keypoints")
        ds = read_coco(path, resolved, image_root=image_root, keypoint_order="schema", bbox_layout="xyxy")
        for rec in ds.records:
            if len(rec.keypoints) == len(names):  # other counts are left for `data check` to report
                rec.keypoints = rec.keypoints[index]
    else:  # no names in the file: the release's documented order (configs/keypoints/<schema>.yaml)
        ds = read_coco(path, resolved, image_root=image_root, keypoint_order="original", bbox_layout="xyxy")
    ds.format = FORMAT
    return ds


def load_split_file(path: str | Path) -> dict[str, dict[str, set[int]]]:
    """``{species: {split: image ids}}`` from a split file; an image in two splits of a species is an error."""
    where = str(path)
    raw = load_json(Path(path))
    if not isinstance(raw, dict):
        raise DataError(where, "<root>", "expected {species: {split: [image ids]}}")
    out: dict[str, dict[str, set[int]]] = {}
    for species, splits in raw.items():
        if not isinstance(splits, dict):
            raise DataError(where, species, "expected {split: [image ids]}")
        seen: dict[int, str] = {}
        out[species] = {}
        for split, ids in splits.items():
            if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                raise DataError(where, f"{species}.{split}", "expected a list of integer image ids")
            for i in ids:
                if i in seen and seen[i] != split:
                    raise DataError(where, f"{species}.{split}", f"image {i} is also in {species}.{seen[i]}")
                seen[i] = split
            out[species][split] = set(ids)
    return out


def assign_splits(dataset: PoseDataset, split_file: str | Path) -> PoseDataset:
    """Set every record's ``split`` from ``split_file`` by (category, image id), in place.

    Records of a species the file does not list, or of an image in none of its splits, get split None
    (a note says how many). A record without a category is an error: the file is keyed by species.
    """
    table = load_split_file(split_file)
    unassigned = 0
    for rec in dataset.records:
        species = rec.meta.get("category")
        if species is None:
            file, field = rec.meta.get("origin", (dataset.source, "record"))
            raise DataError(str(file), f"{field}.category_id", f"no category to look up in split file {split_file}")
        rec.split = next((s for s, ids in table.get(species, {}).items() if rec.image_id in ids), None)
        unassigned += rec.split is None
    if unassigned:
        dataset.meta.setdefault("notes", []).append(
            f"{unassigned} instances are in no split of {split_file}")
    return dataset


def select_categories(dataset: PoseDataset, categories: Sequence[str]) -> PoseDataset:
    """Keep the records of these species (``categories[].name``); a name the dataset lacks is an error."""
    present = {r.meta.get("category") for r in dataset.records} - {None}
    missing = [c for c in categories if c not in present]
    if missing:
        raise DataError(dataset.source, "categories", f"no instances of {missing} (the file has: "
                                                      f"{sorted(present) or 'no categories'})")
    wanted = set(categories)
    dataset.records = [r for r in dataset.records if r.meta.get("category") in wanted]
    return dataset
