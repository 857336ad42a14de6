"""Dataset readers: every supported format into :class:`~animalpose.data.records.PoseDataset`.

``read_dataset(path)`` detects the format (:func:`detect_format`) and calls the reader of one
module per format: :mod:`.coco` (COCO keypoints JSON: Animal-Pose, AP-10K, ATRW, Horse-10, COCO,
the generator's output), :mod:`.animalpose_release` (the original Animal-Pose ``keypoints.json``),
:mod:`.tigdog`, :mod:`.ccssl`, :mod:`.mpii`, :mod:`.dlc` (DeepLabCut CSV), :mod:`.sleap` (``.slp``)
and :mod:`.video` (raw video as unlabelled frames). Readers never decode images;
:mod:`animalpose.data.images` does that on demand.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from animalpose.data.readers.animalpose_release import (
    assign_splits,
    is_animalpose_release,
    read_animalpose_release,
    select_categories,
)
from animalpose.data.readers.ccssl import read_ccssl
from animalpose.data.readers.coco import is_coco_json, read_coco
from animalpose.data.readers.dlc import read_dlc
from animalpose.data.readers.mpii import is_mpii_json, read_mpii
from animalpose.data.readers.sleap import read_sleap
from animalpose.data.readers.tigdog import read_tigdog
from animalpose.data.readers.video import read_video
from animalpose.data.records import VIDEO_SUFFIXES, PoseDataset
from animalpose.errors import DataError
from animalpose.keypoints import KeypointSchema, load_schema

FORMATS = ("coco", "animalpose-release", "tigdog", "ccssl", "mpii", "dlc", "slp", "video")
READERS = {
    "coco": read_coco,
    "animalpose-release": read_animalpose_release,
    "tigdog": read_tigdog,
    "ccssl": read_ccssl,
    "mpii": read_mpii,
    "dlc": read_dlc,
    "slp": read_sleap,
    "video": read_video,
}

__all__ = [
    "FORMATS",
    "READERS",
    "dataset_schema",
    "detect_format",
    "read_animalpose_release",
    "read_ccssl",
    "read_coco",
    "read_dataset",
    "read_dlc",
    "read_mpii",
    "read_sleap",
    "read_tigdog",
    "read_video",
]


def detect_format(path: str | Path) -> str:
    """The format of a dataset file or folder (one of :data:`FORMATS`), from names and a peek at JSON.

    Folders are tried in this order: TigDog (ranges/ + landmarks/), CC-SSL (species render folders),
    SLEAP (*.slp), DeepLabCut (CollectedData*.csv or .h5), the Animal-Pose release (keypoints.json with
    ``images`` as an id -> file-name object), COCO (annotations/*.json or a COCO JSON),
    MPII (a JSON list with joints), raw video (video files only).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(str(path), "<path>", "does not exist")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".json":
            if is_mpii_json(path):
                return "mpii"
            if is_animalpose_release(path):
                return "animalpose-release"
            if is_coco_json(path):
                return "coco"
            raise DataError(str(path), "<root>", "JSON is neither COCO keypoints (an object with annotations) "
                            "nor MPII (a list of entries with joints)")
        if suffix == ".csv" or (suffix in (".h5", ".hdf5") and path.name.startswith("CollectedData")):
            return "dlc"
        if suffix == ".slp":
            return "slp"
        if suffix in VIDEO_SUFFIXES:
            return "video"
        raise DataError(str(path), "<path>", f"unknown dataset file type {suffix!r}; pass --format")
    for root in (path, path / "behaviorDiscovery2.0"):
        if (root / "ranges").is_dir() and (root / "landmarks").is_dir():
            return "tigdog"
    for base in (path, path / "synthetic_animal"):
        if base.name.endswith("_combineds5r5_texture") or (
            base.is_dir() and any(base.glob("*_combineds5r5_texture"))
        ):
            return "ccssl"
    if any(path.glob("*.slp")):
        return "slp"
    if any(p for pattern in ("CollectedData*.csv", "labeled-data/*/CollectedData*.csv", "CollectedData*.h5",
                             "labeled-data/*/CollectedData*.h5") for p in path.glob(pattern)):
        return "dlc"
    if (path / "keypoints.json").is_file() and is_animalpose_release(path / "keypoints.json"):
        return "animalpose-release"
    if any((path / "annotations").glob("*.json")):
        return "coco"
    jsons = sorted(path.glob("*.json"))
    if any(is_coco_json(p) for p in jsons):
        return "coco"
    if any(is_mpii_json(p) for p in jsons):
        return "mpii"
    if any(p.suffix.lower() in VIDEO_SUFFIXES for p in path.rglob("*")):
        return "video"
    raise DataError(str(path), "<folder>", "cannot tell the dataset format; pass --format")


def read_dataset(
    path: str | Path,
    format: str = "auto",
    schema: str | KeypointSchema | None = None,
    split: str | None = None,
    *,
    categories: Sequence[str] | None = None,
    split_file: str | Path | None = None,
    **options,
) -> PoseDataset:
    """Read any supported dataset; ``split`` keeps only records of that split.

    ``categories`` keeps the instances of these species (COCO ``categories[].name``); ``split_file``
    (``{species: {split: [image ids]}}``, the Animal-Pose release's ``splits.json``) sets each record's
    split before ``split`` selects. ``options`` go to the format's reader (e.g. ``step=5`` for video,
    ``animals=["horse"]`` for TigDog/CC-SSL, ``image_root=...`` for COCO/MPII).
    """
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "sleap":
        fmt = "slp"
    if fmt not in READERS:
        raise DataError(str(path), "format", f"unknown format {format!r} (known: auto, {', '.join(FORMATS)})")
    dataset = READERS[fmt](path, schema, **options)
    if categories:
        dataset = select_categories(dataset, categories)
    if split_file is not None:
        dataset = assign_splits(dataset, split_file)
    return dataset.split(split) if split is not None else dataset


def dataset_schema(dataset: PoseDataset) -> KeypointSchema | None:
    """The schema object of a dataset: built from its header (DLC, SLEAP) or loaded by name.

    None for unlabelled video read without a schema.
    """
    own = dataset.meta.get("schema_def")
    if isinstance(own, KeypointSchema):
        return own
    if dataset.schema == "unlabelled":
        return None
    return load_schema(dataset.schema)
