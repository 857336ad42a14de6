"""From a typed :class:`~animalpose.config.ExperimentConfig` to the objects the trainer uses.

Everything that can fail on bad input (unreadable dataset, unknown schema, joint-count mismatch) fails
here, before any training starts, with an error naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch

from animalpose.codecs import Codec, build_codec
from animalpose.config import ExperimentConfig
from animalpose.data.augment import build_augmenter
from animalpose.data.dataset import Normalization, TopDownDataset, dataset_normalization
from animalpose.data.image_cache import ImageCache
from animalpose.data.readers import dataset_schema, detect_format, read_dataset
from animalpose.data.readers.animalpose_release import FORMAT as RELEASE_FORMAT
from animalpose.data.readers.animalpose_release import load_split_file, select_categories
from animalpose.data.records import PoseDataset, PoseRecord
from animalpose.data.transforms import PADDING_REAL
from animalpose.data.validate import SkipReport, validate_dataset, validation_options
from animalpose.errors import ConfigError, DataError
from animalpose.keypoints import KeypointSchema, load_schema
from animalpose.models.factory import MODELS
from animalpose.models.factory import build_model as factory_build_model
from animalpose.models.heads import PoseModel


@dataclass
class DataBundle:
    """The datasets of one experiment.

    Attributes:
        schema: keypoint schema of every record.
        train: the training samples (augmented).
        val: named validation sets (plain crops); names are the file stems of ``data.val``.
        normalization: the mean/std the images were normalised with (stored in checkpoints).
        skipped: the records ``data.skip_bad`` dropped, and why.
    """

    schema: KeypointSchema
    train: TopDownDataset | None
    val: dict[str, TopDownDataset]
    normalization: Normalization
    sources: list[Path]
    skipped: SkipReport = field(default_factory=SkipReport)  # records data.skip_bad dropped


def pick_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_codec(cfg: ExperimentConfig) -> Codec:
    return build_codec(cfg.codec.kind, tuple(cfg.data.input_size), tuple(cfg.data.heatmap_size),
                       cfg.codec.sigma, beta=cfg.codec.beta, radius=cfg.codec.radius)


def _read(path: Path, cfg: ExperimentConfig, schema: str | KeypointSchema | None,
          role: Literal["train", "val"] | None = None) -> PoseDataset:
    """Read one ``data.train``/``data.val`` entry with the species and split selection of ``cfg.data``."""
    d = cfg.data
    fmt = detect_format(path) if d.format == "auto" else d.format
    split_file, split = None, None
    if d.split_file is not None and role is not None and fmt == RELEASE_FORMAT:
        split_file, split = d.split_file, d.train_split if role == "train" else d.val_split
    ds = read_dataset(path, fmt, schema, split, split_file=split_file)
    if split_file is not None and not ds.records:
        splits = sorted({s for by_split in load_split_file(split_file).values() for s in by_split})
        raise DataError(str(split_file), f"data.{role}_split", f"no instance of {path} is in split {split!r} "
                                                             f"(the file has: {splits})")
    if d.categories and any("category" in r.meta for r in ds.records):
        ds = select_categories(ds, d.categories)
    return ds


def is_generated_record(record: PoseRecord) -> bool:
    """A rendered instance: our generator's (it carries the generator ``factors``) or a CC-SSL render (its
    reader marks it ``synthetic``)."""
    return "factors" in record.meta or record.meta.get("synthetic") is True


def is_synthetic(dataset: PoseDataset) -> bool:
    """CC-SSL renders, or our generator's output (its records carry the generator ``factors``)."""
    return (dataset.format == "ccssl" or bool(dataset.meta.get("synthetic"))
            or any(is_generated_record(r) for r in dataset.records[:1]))


def crop_padding(dataset: PoseDataset, cfg: ExperimentConfig) -> float:
    """``data.bbox_padding_synthetic`` (CC-SSL 1.25) for synthetic data, else ``bbox_padding_real`` (1.5)."""
    return cfg.data.bbox_padding_synthetic if is_synthetic(dataset) else cfg.data.bbox_padding_real


def with_padding(records: list[PoseRecord], padding: float) -> list[PoseRecord]:
    """``records`` carrying crop padding ``padding`` (copies; the keypoint arrays are shared)."""
    return [replace(r, padding=padding) for r in records]


def load_records(paths: list[Path], cfg: ExperimentConfig, schema: str | KeypointSchema | None,
                 role: Literal["train", "val"] | None = None, skipped: SkipReport | None = None,
                 ) -> tuple[list[PoseRecord], KeypointSchema | None, float]:
    """All labelled records of ``paths`` (one schema), the schema, and the crop padding of the last file.

    Every record carries the crop padding of its own file (``PoseRecord.padding``: :func:`crop_padding`), so a
    list that mixes generated and photographed datasets crops each at its own padding (1.25 and 1.5); the
    returned padding is the dataset-level fallback (equal to every record's when the files agree).

    ``schema`` is a shipped schema's name or a schema object: one built from a dataset's own header
    (``dlc:<folder>``, ``sleap:<file>``) has no file to look its name up in, so it travels as the object
    (None: each dataset's own).

    ``role`` picks the split of ``data.split_file`` (``train_split`` or ``val_split``); None reads whole.
    Every dataset is validated first (:func:`~animalpose.data.validate.validate_dataset`): a bad record
    is a DataError naming the file and field, or, with ``data.skip_bad``, is dropped and added to
    ``skipped``.
    """
    records: list[PoseRecord] = []
    given = schema
    schema = load_schema(schema) if isinstance(schema, str) else schema
    padding = PADDING_REAL
    for path in paths:
        ds = _read(path, cfg, given, role)
        own = dataset_schema(ds)
        if own is None:
            raise DataError(str(path), "schema", "dataset has no keypoint labels (unlabelled video?)")
        if schema is None:
            schema = own
        elif own.joints != schema.joints:
            raise DataError(str(path), "schema", f"dataset schema {own.name!r} differs from {schema.name!r}")
        padding = crop_padding(ds, cfg)
        checked = validate_dataset(ds, schema, **validation_options(cfg.data))
        if skipped is not None:
            skipped.extend(checked.skipped)
        labelled = [r for r in checked.records if (r.keypoints[:, 2] > 0).any()]
        if not labelled:
            raise DataError(str(path), "annotations", "no labelled instances")
        records.extend(with_padding(labelled, padding))
    return records, schema, padding


def check_split_file_use(cfg: ExperimentConfig, train: bool = True) -> None:
    """``data.split_file`` selects in Animal-Pose release files only: refuse it when no entry is one."""
    d = cfg.data
    if d.split_file is None:
        return
    paths = [*(d.train if train else []), *d.val]
    if not any((detect_format(p) if d.format == "auto" else d.format) == RELEASE_FORMAT for p in paths):
        raise ConfigError("<config>", "data.split_file", f"{d.split_file} selects images of the Animal-Pose "
                          f"release, but no data.train/data.val entry is in that format")


def build_data(cfg: ExperimentConfig, seed: int | None = None, train: bool = True) -> DataBundle:
    """Read ``data.train`` and ``data.val`` and build top-down datasets.

    Raises:
        ConfigError when ``data.train`` is empty (for training);
        DataError naming the file for unreadable or inconsistent datasets.
    """
    seed = cfg.train.seed if seed is None else seed
    codec = make_codec(cfg)
    schema_name = cfg.data.schema_name
    check_split_file_use(cfg, train)
    train_records: list[PoseRecord] = []
    schema: KeypointSchema | None = load_schema(schema_name) if schema_name else None
    pad = PADDING_REAL
    skipped = SkipReport()
    if train:
        if not cfg.data.train:
            raise ConfigError("<config>", "data.train", "no training data given")
        train_records, schema, pad = load_records(list(cfg.data.train), cfg, schema_name, "train", skipped)
    val_records: dict[str, tuple[list[PoseRecord], float]] = {}
    for path in cfg.data.val:
        # the train set's schema object (a header-derived one has no file to load by name)
        recs, vschema, vpad = load_records([path], cfg, schema_name or schema, "val", skipped)
        if schema is None:
            schema = vschema
        elif vschema.joints != schema.joints:
            raise DataError(str(path), "schema", f"validation schema {vschema.name!r} differs from {schema.name!r}")
        name = Path(path).stem if Path(path).is_file() else Path(path).name
        while name in val_records:
            name += "_"
        val_records[name] = (recs, vpad)
    if schema is None:
        raise ConfigError("<config>", "data", "no dataset to take a keypoint schema from")
    if cfg.data.normalisation == "dataset" and train_records:
        norm = dataset_normalization(train_records)
    else:
        norm = Normalization()
    cache = ImageCache(cfg.data.cache_mb * 2**20) if cfg.data.cache_mb > 0 else None  # train and val share it
    train_set = None
    if train:
        augment = None if cfg.augment.preset == "none" else build_augmenter(
            cfg.augment.preset, schema, tuple(cfg.data.input_size), udp=codec.udp,
            **augment_overrides(cfg))
        train_set = TopDownDataset(train_records, schema, codec, augment, padding=pad, normalization=norm, seed=seed,
                                   image_cache=cache)
    val_sets = {name: TopDownDataset(recs, schema, codec, None, padding=vpad,
                                     normalization=norm, seed=seed, image_cache=cache)
                for name, (recs, vpad) in val_records.items()}
    return DataBundle(schema, train_set, val_sets, norm, [*cfg.data.train, *cfg.data.val], skipped)


def augment_overrides(cfg: ExperimentConfig) -> dict:
    """The config's preset-independent ranges (``augment.scale`` [lo, hi], ``rotation`` max degrees, ...)
    translated to the preset's own fields; a range the preset does not have is a ConfigError."""
    a, preset = cfg.augment, cfg.augment.preset
    out: dict = {}
    sb = preset in ("simplebaseline", "hrnet")

    def refuse(key: str) -> None:
        raise ConfigError("<config>", f"augment.{key}", f"the {preset!r} preset has no {key} setting")

    if a.flip_prob is not None:
        out["flip_prob"] = a.flip_prob
    if a.rotation_prob is not None:
        if preset == "strong":
            refuse("rotation_prob")
        out["rotation_prob"] = a.rotation_prob
    if a.rotation is not None:  # maximum magnitude; the sampled presets clamp at ±2σ
        out[{"hourglass": "rotation_sigma", "strong": "rotation"}.get(preset, "rotation_factor")] = (
            a.rotation if preset == "strong" else a.rotation / 2)
    if a.scale is not None:
        lo, hi = a.scale
        if preset == "strong":
            out["scale_range"] = (lo, hi)
        else:
            out["scale_factor" if sb else "scale_sigma"] = (hi - lo) / 2
    if a.color is not None:
        if preset != "hourglass":
            refuse("color")
        out["color_range"] = tuple(a.color)
    if a.translate is not None:
        if preset == "none":
            refuse("translate")
        out["translate"] = a.translate
    if a.half_body is not None:
        if not sb:
            refuse("half_body")
        if not a.half_body:
            out["half_body_prob"] = 0.0
    return out


def make_model(cfg: ExperimentConfig, schema: KeypointSchema) -> PoseModel:
    """The network of ``model.name`` for ``schema``'s joints; ``model.channels`` sets the hourglass width."""
    name = cfg.model.name
    k = cfg.model.num_joints or schema.num_joints
    if k != schema.num_joints:
        raise ConfigError("<config>", "model.num_joints", f"{k} joints but schema {schema.name!r} has "
                                                          f"{schema.num_joints}")
    arch: dict = {}
    stacks = MODELS[name].hourglass_stacks
    if stacks is not None:
        if cfg.model.stacks is not None and cfg.model.stacks != stacks:
            raise ConfigError("<config>", "model.stacks", f"{name} has {stacks} stacks, got {cfg.model.stacks}")
        if cfg.model.channels != 256:
            arch["num_feats"] = cfg.model.channels // 2
    w, h = cfg.data.input_size
    return factory_build_model(name, k, head="dsnt" if cfg.model.head == "dsnt" else "heatmap",
                               input_size=(h, w), pretrained=str(cfg.model.pretrained) if cfg.model.pretrained
                               else None, **arch)
