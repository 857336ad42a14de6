"""The experiment configuration's typed schema: the sections of :class:`ExperimentConfig`.

A configuration file's top-level keys are these sections (``data``, ``model``, ``codec``, ``augment``, ``multiview``,
``train``, ``tracking``); :mod:`animalpose.config.loader` reads and validates it. Method configurations
add their own section to :class:`ExperimentConfig` (``ccssl:``, ``wscda:``).

Extending a section: add a field with a default to the section's class. Files that do not mention
the field keep loading, and ``extra="forbid"`` keeps catching misspelt keys.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from animalpose.config.loader import ExistingPath, KeyedError, Section, as_list

DatasetFormat = Literal["auto", "coco", "animalpose-release", "tigdog", "ccssl", "mpii", "dlc", "slp", "video"]
PositiveSize = Annotated[tuple[int, int], AfterValidator(lambda v: _positive_pair(v))]


def _positive_pair(v: tuple[int, int]) -> tuple[int, int]:
    if v[0] <= 0 or v[1] <= 0:
        raise ValueError(f"sizes must be positive, got {list(v)}")
    return v


def _known_schema(name: str) -> str:
    """A keypoint schema of ``configs/keypoints`` (an open set: a project adds its own files there)."""
    from animalpose.keypoints import list_schemas

    known = list_schemas()
    if name not in known:
        raise ValueError(f"unknown keypoint schema {name!r} (known: {', '.join(known)})")
    return name


SchemaName = Annotated[str, AfterValidator(_known_schema)]


class DataConfig(Section):
    """Datasets and the top-down crop.

    ``train``/``val``/``target`` accept one path or a list (a COCO JSON, a dataset folder, a video);
    ``target`` is unlabelled target-domain data for adaptation. ``bbox_padding_*`` enlarge the
    instance box before cropping; the CC-SSL reference uses 1.25 for synthetic and 1.5 for real crops.

    ``categories`` keeps these species in every ``train``/``val`` dataset that names species (COCO
    ``categories[].name``; the generator names its species too). ``split_file`` (the Animal-Pose
    release's ``splits.json``) applies to the ``train``/``val`` entries in the Animal-Pose release
    format only: their ``train`` entries keep split ``train_split``, their ``val`` entries
    ``val_split``; other datasets (e.g. generated ones) are read whole.
    """

    train: Annotated[list[ExistingPath], BeforeValidator(as_list)] = Field(default_factory=list)
    val: Annotated[list[ExistingPath], BeforeValidator(as_list)] = Field(default_factory=list)
    target: Annotated[list[ExistingPath], BeforeValidator(as_list)] = Field(default_factory=list)
    format: DatasetFormat = "auto"
    schema_name: SchemaName | None = Field(default=None, alias="schema")
    bbox_padding_synthetic: float = Field(default=1.25, ge=1.0)
    bbox_padding_real: float = Field(default=1.5, ge=1.0)
    input_size: PositiveSize = (256, 256)  # [W, H]
    heatmap_size: PositiveSize = (64, 64)  # [W, H]
    normalisation: Literal["imagenet", "dataset"] = "imagenet"
    # loader worker processes; None: chosen from the free cores (animalpose.threads)
    workers: int | None = Field(default=None, ge=0)
    # decoded images kept in memory across epochs (animalpose.data.image_cache), in MiB; 0: decode on every use
    cache_mb: int = Field(default=1024, ge=0)
    categories: Annotated[list[str], BeforeValidator(as_list)] = Field(default_factory=list)
    split_file: ExistingPath | None = None
    train_split: str = "train"
    val_split: str = "val"
    # Records with a problem (NaN coordinates, bad visibility, empty box, missing or truncated image, ...)
    # stop every command before work starts; true drops them instead and records what was dropped.
    skip_bad: bool = False
    # Image paths that resolve outside the dataset's image root ("..", absolute, symbolic links) are refused
    # unless this is true (files written by `data subset` hold absolute paths to the source's images).
    allow_outside_root: bool = False
    # Images and video frames over this many pixels are refused before decoding (decompression bombs);
    # animalpose.data.images.DEFAULT_MAX_PIXELS, 12 times a 4K frame.
    max_image_pixels: int = Field(default=100_000_000, ge=1)

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    @model_validator(mode="after")
    def _heatmap_not_larger(self) -> DataConfig:
        if self.heatmap_size[0] > self.input_size[0] or self.heatmap_size[1] > self.input_size[1]:
            raise KeyedError("heatmap_size", f"{list(self.heatmap_size)} is larger than input_size "
                              f"{list(self.input_size)}")
        return self


def _known_model(name: str) -> str:
    """A key of :data:`animalpose.models.factory.MODELS`, whose names :mod:`animalpose.model_names` lists
    without torch (reading a config never loads torch)."""
    from animalpose.model_names import MODEL_NAMES

    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    return name


ModelName = Annotated[str, AfterValidator(_known_model)]


class ModelConfig(Section):
    """The network. ``num_joints`` None: taken from ``data.schema``. ``stacks`` None: from the name."""

    name: ModelName = "hourglass4"
    num_joints: int | None = Field(default=None, ge=1)
    channels: int = Field(default=256, ge=1)
    stacks: int | None = Field(default=None, ge=1)
    head: Literal["heatmap", "dsnt"] = "heatmap"
    pretrained: ExistingPath | None = None

    @model_validator(mode="after")
    def _stacks_match_name(self) -> ModelConfig:
        m = re.fullmatch(r"hourglass(\d+)", self.name)
        if m and self.stacks is not None and self.stacks != int(m.group(1)):
            raise KeyedError("stacks", f"{self.name} has {m.group(1)} stacks, got stacks={self.stacks}")
        return self


class CodecConfig(Section):
    """Target encoding/decoding. ``sigma`` in heatmap pixels; ``beta`` sharpens soft-argmax (LPN: 160); ``radius``
    is G-RMI's disk radius (``kind: grmi``, the codec of the ``grmi_*`` networks)."""

    kind: Literal["gaussian", "dark", "udp", "soft_argmax", "grmi"] = "gaussian"
    sigma: float = Field(default=2.0, gt=0)
    beta: float = Field(default=160.0, gt=0)
    # G-RMI's disk radius R in heatmap pixels (the paper's 25 px at 353x257 is about 4.5 at 256x192, stride 4)
    radius: float = Field(default=4.5, gt=0)


FloatRange = tuple[float, float]


class AugmentConfig(Section):
    """An augmentation preset plus optional overrides of its ranges (None: the preset's own value)."""

    preset: Literal["hourglass", "strong", "simplebaseline", "hrnet", "none"] = "hourglass"
    scale: FloatRange | None = None
    rotation: float | None = Field(default=None, ge=0)  # degrees, maximum magnitude
    rotation_prob: float | None = Field(default=None, ge=0, le=1)
    flip_prob: float | None = Field(default=None, ge=0, le=1)
    color: FloatRange | None = None
    half_body: bool | None = None
    translate: float | None = Field(default=None, ge=0, lt=1)  # fraction of the crop size, uniform in ±translate


SOURCE_VAL = "source-val"
NO_SELECTION = ("none", "last")
"""The special values of ``train.select_on`` that choose no epoch (the last one is the result)."""


def _selection_set(value: str) -> str:
    """A validation set's name or a special value; a special value in other letters is refused (``None``
    would silently name a set of that name, and fail only once training had started)."""
    if not value.strip() or value != value.strip():
        raise ValueError(f"expected {SOURCE_VAL}, {', '.join(NO_SELECTION)} or the name of a validation set, "
                         f"got {value!r}")
    if value.lower() in NO_SELECTION and value not in NO_SELECTION:
        raise ValueError(f"write {value.lower()!r}: the special values are {', '.join(NO_SELECTION)}")
    return value


SelectOn = Annotated[str, AfterValidator(_selection_set)]


class TrainConfig(Section):
    """Optimisation. ``milestones`` are epochs at which ``schedule: step`` multiplies lr by ``gamma``.

    Speed paths of the training step (same parameters, same maths; :mod:`animalpose.models.speed`):
    ``channels_last`` (NHWC), ``amp`` (bf16 on CPU, fp16 on CUDA), ``pointwise_linear`` (1×1 convs as
    matrix products on NHWC input; use with ``channels_last``), ``compile`` (``torch.compile`` of the
    forward, hence of its backward, with ``compile_mode``; the first step of each batch size compiles).
    """

    optimizer: Literal["rmsprop", "adam", "adamw", "sgd"] = "adam"
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.0, ge=0)
    # step: x gamma at each milestone; cosine / linear: from 1 after the warm-up down to 0 at the last step
    schedule: Literal["step", "cosine", "linear"] = "step"
    milestones: list[int] = Field(default_factory=list)
    gamma: float = Field(default=0.1, gt=0)
    warmup_steps: int = Field(default=0, ge=0)
    # the lr factor the warm-up starts from (0: from nothing; MSPN/RSN's released MPII configs: 0.1)
    warmup_factor: float = Field(default=0.0, ge=0, le=1)
    epochs: int = Field(default=100, ge=1)
    # LPN's iterative training: the whole schedule of ``epochs`` run ``cycles`` times, each cycle from the
    # previous one's weights with the optimiser state reset (Zhang et al., arXiv 1911.10346)
    cycles: int = Field(default=1, ge=1)
    batch_size: int = Field(default=32, ge=1)
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    pointwise_linear: bool = False
    grad_clip: float | None = Field(default=None, gt=0)
    ema: bool = False
    ema_decay: float = Field(default=0.9998, gt=0, lt=1)
    flip_test: bool = True
    select_on: SelectOn = SOURCE_VAL
    """The validation set whose PCK@0.05 chooses ``best.ckpt`` (and drives ``early_stop_patience``):
    ``source-val`` (the first ``data.val`` set, the default), another set by name (a ``data.val`` file's
    stem or folder name, or ``target-val`` in CC-SSL), or one of the special values ``none`` and ``last``
    (no selection: the last epoch's weights are the result; the sets are still scored every epoch)."""
    early_stop_patience: int | None = Field(default=None, ge=1)
    checkpoint_every_steps: int = Field(default=1000, ge=1)
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError(f"expected auto, cpu, mps, cuda or cuda:N, got {v!r}")
        return v

    @model_validator(mode="after")
    def _milestones(self) -> TrainConfig:
        if list(self.milestones) != sorted(set(self.milestones)):
            raise KeyedError("milestones", f"must be strictly increasing, got {self.milestones}")
        if self.milestones and not (0 < self.milestones[0] and self.milestones[-1] < self.epochs):
            raise KeyedError("milestones", f"must lie in 1..{self.epochs - 1} (epochs={self.epochs})")
        return self


class TrackingConfig(Section):
    """MLflow. ``uri`` None: a local SQLite store under the project's data directory."""

    enabled: bool = True
    uri: str | None = None
    experiment: str = "animalpose"


class MultiviewConfig(Section):
    """A multi-view rig (animalpose.engine.multiview). ``views``: each body part's keypoint in every view (e.g.
    ``[[nose_top, nose_bot], ...]``); their subspace (``components`` axes, Lightning Pose's 3: the views of one
    3-D point; ε at the ``percentile``-th percentile of the labelled frames' errors) is fitted on data.train.
    ``correct``: groups of look-alike body parts (named by any view's keypoint) whose points in the views other
    than ``reference`` are re-assigned and moved onto the subspace in every prediction (evaluate, predict);
    ``auto``: the groups the trained model swaps on ``data.val`` (in at least ``confusion`` of the frames, in some
    view), each with the view it places them best in, found when training ends
    (:func:`animalpose.engine.multiview.found_correction`); [] : predictions are left as they are."""

    views: list[list[str]] = Field(default_factory=list)
    components: int | float = Field(default=3, gt=0)
    percentile: float = Field(default=90.0, ge=0, le=100)
    correct: list[list[str]] | Literal["auto"] = Field(default_factory=list)
    reference: int = Field(default=0, ge=0)
    # 0.1 (on 10 frames: one swap) chosen on val: real mirror-mouse models trained on img01-40, groups found on one
    # half of img41-60 and scored on the other, both ways: 7.33 px against 7.79 at 0.15, 8.44 raw (BENCHMARKS.md,
    # "multiview.correct: auto")
    confusion: float = Field(default=0.1, gt=0, le=1)

    @model_validator(mode="after")
    def _views_given(self) -> MultiviewConfig:
        if self.correct and not self.views:
            raise KeyedError("correct", "needs each body part's keypoint in every view: multiview.views")
        return self


class ExperimentConfig(Section):
    """One experiment: every section has defaults, so ``{}`` is a valid (default) configuration."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    codec: CodecConfig = Field(default_factory=CodecConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    multiview: MultiviewConfig = Field(default_factory=MultiviewConfig)

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        if self.model.head == "dsnt" and self.codec.kind != "soft_argmax":
            raise KeyedError("codec.kind", f"the dsnt head decodes by soft-argmax, got {self.codec.kind!r}")
        from animalpose.model_names import GRMI_MODELS

        if (self.model.name in GRMI_MODELS) != (self.codec.kind == "grmi"):
            raise KeyedError("codec.kind", f"{self.model.name} needs codec.kind "
                             f"{'grmi' if self.model.name in GRMI_MODELS else 'other than grmi'} (G-RMI's "
                             f"heatmaps + offsets go with the G-RMI networks only), got {self.codec.kind!r}")
        if self.data.schema_name is not None and self.model.num_joints is not None:
            from animalpose.keypoints import load_schema

            k = load_schema(self.data.schema_name).num_joints
            if k != self.model.num_joints:
                raise KeyedError(
                    "model.num_joints", f"{self.model.num_joints} joints but schema "
                    f"{self.data.schema_name!r} has {k}"
                )
        return self

    @classmethod
    def fit_overrides(cls, before: dict, raw: dict, overridden: set[tuple[str, ...]], where: str) -> None:
        """The loader's hook after overrides: an overridden ``train.epochs`` rescales the file's milestones
        (:func:`_fit_milestones`) unless ``train.milestones`` was overridden too."""
        if ("train", "epochs") in overridden and ("train", "milestones") not in overridden:
            epochs_before = before["train"].get("epochs") if isinstance(before.get("train"), dict) else None
            _fit_milestones(raw, epochs_before, where)


def _fit_milestones(raw: dict, epochs_before: Any, where: str) -> None:
    """Scale the file's ``train.milestones`` to an overridden ``train.epochs`` they no longer fit in.

    ``train.epochs=10`` on a 30-epoch file with ``milestones: [24]`` would otherwise be an error that the
    user never asked for ("must lie in 1..9"); the lr drops move to the same fraction of the new budget
    (24/30 of 10 -> 8; drops that round to the same epoch merge), with a warning. Milestones that still
    fit stay as they are, and milestones set by an override are never touched (the validator then says
    what is wrong with them).
    """
    train = raw.get("train")
    epochs, ms = train.get("epochs"), train.get("milestones")
    if not (isinstance(epochs, int) and isinstance(epochs_before, int) and epochs_before > 0 and ms
            and isinstance(ms, list) and all(isinstance(m, int) for m in ms)):
        return
    if 0 < min(ms) and max(ms) < epochs:
        return
    scaled = sorted({min(epochs - 1, max(1, round(m * epochs / epochs_before))) for m in ms}) if epochs > 1 else []
    train["milestones"] = scaled
    print(f"warning: {where}: train.milestones {ms} do not fit train.epochs={epochs} (the file has "
          f"{epochs_before}); scaled to {scaled}. Set train.milestones=[...] to choose them.",
          file=sys.stderr, flush=True)
