"""Augmentation presets for top-down training: one affine warp per sample, then photometric steps.

Every geometric step (random scale and rotation of the crop, the ``strong`` preset's affine,
the horizontal flip, the half-body crop) is folded into a single source→crop matrix, so the image
is resampled once with ``cv2.warpAffine`` and keypoints follow the same matrix exactly. Photometric
steps run on the uint8 crop afterwards.

Presets (ranges are fields of the typed configs below and can be overridden):

- ``hourglass`` — the CC-SSL reference's plain augmentation (Stacked Hourglass, pytorch-pose):
  scale × clamp(N(1, 0.25), 0.75, 1.25); rotation clamp(N(0, 30°), ±60°) with p = 0.6, else 0;
  flip p = 0.5; per-channel colour × U(0.8, 1.2).
- ``translate`` (``hourglass`` and ``simplebaseline`` / ``hrnet``; 0 by default, as in both references): a
  shift of the crop by U(−t, t) × its width and, independently, × its height, after scale and rotation.
  mmpose's ``RandomBBoxTransform`` shifts the box centre by U(−0.16, 0.16) × its size with p = 0.3. A
  fixed-camera rig (a head-fixed mouse) puts every keypoint at nearly the same pixel in every labelled
  frame, and without a shift the network can learn the position instead of the look.
- ``strong`` — the CC-SSL reference's "super augmentation" (imgaug): in random order, each with
  p = 0.5: affine (independent x/y scale U(0.5, 1.5), translation ±5 %, rotation ±30°, shear ±20°,
  constant border of a random colour), additive Gaussian noise σ ~ U(0, 127.5) (per channel with
  p = 0.5), Gaussian blur σ ~ U(1, 5), linear contrast × U(0.5, 2.0) about mid-grey (per channel
  with p = 0.5); then flip p = 0.5. Deviation from the reference, stated: because the affine is
  folded into the crop warp, it always acts before the photometric steps (imgaug may also run it
  after them), and noise/blur σ are in crop pixels.
- ``simplebaseline`` / ``hrnet`` — Xiao et al. 2018 / Sun et al. 2019: scale × clip(N(1, 0.35),
  0.65, 1.35); rotation clip(N(0, 45°), ±90°) with p = 0.6; flip p = 0.5; half-body crop with
  p = 0.3 when more than 8 joints are labelled, for human (COCO/MPII-style) schemas or where
  ``upper_body_joints`` is configured.
- ``none`` — the plain crop (validation, test).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from animalpose.data import transforms as T
from animalpose.data.flip import flip_permutation_or_none
from animalpose.errors import ConfigError
from animalpose.keypoints import KeypointSchema

log = logging.getLogger(__name__)

# Joint-name fragments that make a joint "upper body" for the half-body crop (COCO / MPII names). The
# split is derived automatically only for human schemas (those with wrists); for animal schemas set
# ``upper_body_joints`` explicitly, or the half-body crop stays off.
UPPER_BODY_WORDS = ("nose", "eye", "ear", "shoulder", "elbow", "wrist", "head", "neck", "thorax")


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoAugment(_Config):
    preset: Literal["none"] = "none"


class HourglassAugment(_Config):
    preset: Literal["hourglass"] = "hourglass"
    scale_sigma: float = Field(0.25, ge=0)
    rotation_sigma: float = Field(30.0, ge=0, description="degrees; clamped at ±2σ")
    rotation_prob: float = Field(0.6, ge=0, le=1)
    flip_prob: float = Field(0.5, ge=0, le=1)
    color_range: tuple[float, float] = (0.8, 1.2)
    translate: float = Field(0.0, ge=0, lt=1, description="fraction of the crop size, uniform in ±translate")


class StrongAugment(_Config):
    preset: Literal["strong"] = "strong"
    step_prob: float = Field(0.5, ge=0, le=1)
    scale_range: tuple[float, float] = (0.5, 1.5)
    translate: float = Field(0.05, ge=0, description="fraction of the crop size")
    rotation: float = Field(30.0, ge=0, description="degrees, uniform in ±rotation")
    shear: float = Field(20.0, ge=0, description="degrees, uniform in ±shear")
    noise_max: float = Field(127.5, ge=0, description="max σ of additive noise on 0-255")
    noise_per_channel_prob: float = Field(0.5, ge=0, le=1)
    blur_sigma: tuple[float, float] = (1.0, 5.0)
    contrast_range: tuple[float, float] = (0.5, 2.0)
    contrast_per_channel_prob: float = Field(0.5, ge=0, le=1)
    flip_prob: float = Field(0.5, ge=0, le=1)


class SimpleBaselineAugment(_Config):
    preset: Literal["simplebaseline", "hrnet"] = "simplebaseline"
    scale_factor: float = Field(0.35, ge=0, lt=1)
    rotation_factor: float = Field(45.0, ge=0, description="degrees; clipped at ±2×")
    rotation_prob: float = Field(0.6, ge=0, le=1)
    flip_prob: float = Field(0.5, ge=0, le=1)
    half_body_prob: float = Field(0.3, ge=0, le=1)
    half_body_min_joints: int = Field(8, ge=0)
    half_body_padding: float = Field(1.5, gt=0)
    upper_body_joints: tuple[str, ...] | None = None
    translate: float = Field(0.0, ge=0, lt=1, description="fraction of the crop size, uniform in ±translate")


AugmentConfig = Annotated[
    NoAugment | HourglassAugment | StrongAugment | SimpleBaselineAugment, Field(discriminator="preset")
]
PRESETS = ("none", "hourglass", "strong", "simplebaseline", "hrnet")
_ADAPTER = TypeAdapter(AugmentConfig)


def augment_config(preset: str | dict | BaseModel = "none", where: str = "<augment>", **overrides) -> BaseModel:
    """Validate an augmentation config from a preset name plus overrides, or from a dict.

    Raises:
        ConfigError naming ``where`` and the offending key (unknown key, wrong type, bad range).
    """
    if isinstance(preset, BaseModel):
        data = {**preset.model_dump(), **overrides}
    elif isinstance(preset, dict):
        data = {**preset, **overrides}
    else:
        data = {"preset": preset, **overrides}
    if data.get("preset") not in PRESETS:
        raise ConfigError(where, "preset", f"unknown preset {data.get('preset')!r} (known: {', '.join(PRESETS)})")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"][1:]) or "preset"
        raise ConfigError(where, field, err["msg"]) from None


@dataclass
class AugmentedSample:
    """One warped sample.

    Attributes:
        image: (H, W, 3) uint8 crop.
        keypoints: (K, 3) float32 in crop pixels (joints swapped when flipped).
        matrix: (2, 3) float64 source→crop affine (flip included).
        flipped: whether a horizontal flip (with joint swap) was applied.
    """

    image: np.ndarray
    keypoints: np.ndarray
    matrix: np.ndarray
    flipped: bool


class Augmenter:
    """Samples and applies one preset's augmentation to top-down samples.

    Args:
        config: a preset name or a config from :func:`augment_config`.
        schema: keypoint schema (flip permutation; upper-body joints for the half-body crop).
        input_size: (W, H) of the crop.
        udp: use the UDP-consistent crop matrix.
    """

    def __init__(self, config, schema: KeypointSchema, input_size: Sequence[int], udp: bool = False):
        self.config = config if isinstance(config, BaseModel) else augment_config(config)
        self.schema = schema
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.udp = udp
        self.flip_perm = flip_permutation_or_none(schema)
        self.upper_body = self._upper_body_indices()

    @property
    def preset(self) -> str:
        return self.config.preset

    def _upper_body_indices(self) -> np.ndarray | None:
        cfg = self.config
        if not isinstance(cfg, SimpleBaselineAugment):
            return None
        if cfg.upper_body_joints is not None:
            return np.array([self.schema.index(j) for j in cfg.upper_body_joints], dtype=np.int64)
        names = [j.lower() for j in self.schema.joints]
        idx = [i for i, j in enumerate(names) if any(w in j for w in UPPER_BODY_WORDS)]
        if not any("wrist" in j for j in names) or len(idx) == self.schema.num_joints:
            # Only human (COCO/MPII-style) schemas get an automatic split; animals need upper_body_joints.
            log.info("schema %r names no upper-body joints: half-body crop disabled", self.schema.name)
            return None
        return np.array(idx, dtype=np.int64)

    # ------------------------------------------------------------------ geometry
    def sample_matrix(
        self, keypoints: np.ndarray, center: np.ndarray, scale: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, bool, np.ndarray]:
        """Sample this preset's geometry.

        Args:
            keypoints: (K, 3) in source pixels (for the half-body crop).
            center, scale: (2,) crop centre (pixels) and scale (units of 200 px).
            rng: the sample's random generator.

        Returns:
            matrix (2, 3) source→crop, flipped, border colour (3,) float for the warp.
        """
        cfg = self.config
        center = np.asarray(center, dtype=np.float64)
        scale = np.asarray(scale, dtype=np.float64)
        rotation = 0.0
        border = np.zeros(3)
        extra = np.eye(3)
        if isinstance(cfg, HourglassAugment):
            scale = scale * float(np.clip(rng.normal(1.0, cfg.scale_sigma), 1 - cfg.scale_sigma, 1 + cfg.scale_sigma))
            if rng.random() < cfg.rotation_prob:
                lim = 2 * cfg.rotation_sigma
                rotation = float(np.clip(rng.normal(0.0, cfg.rotation_sigma), -lim, lim))
        elif isinstance(cfg, SimpleBaselineAugment):
            if self.upper_body is not None and rng.random() < cfg.half_body_prob:
                if int((keypoints[:, 2] > 0).sum()) > cfg.half_body_min_joints:
                    hb = self._half_body(keypoints, rng)
                    if hb is not None:
                        center, scale = hb
            sf = cfg.scale_factor
            scale = scale * float(np.clip(rng.normal(1.0, sf), 1 - sf, 1 + sf))
            if rng.random() < cfg.rotation_prob:
                lim = 2 * cfg.rotation_factor
                rotation = float(np.clip(rng.normal(0.0, cfg.rotation_factor), -lim, lim))
        elif isinstance(cfg, StrongAugment) and rng.random() < cfg.step_prob:
            extra, border = self._strong_affine(rng)
        shift = 0.0 if isinstance(cfg, StrongAugment) else getattr(cfg, "translate", 0.0)
        if shift > 0:  # (the strong preset shifts inside its own affine)
            tx, ty = rng.uniform(-shift, shift, size=2) * self.input_size
            extra = T.translation_matrix(tx, ty)
        matrix = extra @ T.to3x3(T.crop_matrix(center, scale, self.input_size, rotation, self.udp))
        flipped = False
        flip_prob = getattr(cfg, "flip_prob", 0.0)
        if self.flip_perm is not None and flip_prob > 0 and rng.random() < flip_prob:
            matrix = T.hflip_matrix(self.input_size[0], self.udp) @ matrix
            flipped = True
        return matrix[:2], flipped, border

    def _strong_affine(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(3, 3) imgaug-style affine about the crop centre and a random border colour (3,)."""
        cfg = self.config
        w, h = self.input_size
        c = ((w - 1) * 0.5, (h - 1) * 0.5)
        sx, sy = rng.uniform(*cfg.scale_range, size=2)
        tx, ty = rng.uniform(-cfg.translate, cfg.translate, size=2) * (w, h)
        rot = rng.uniform(-cfg.rotation, cfg.rotation)
        shear = np.deg2rad(rng.uniform(-cfg.shear, cfg.shear))
        shear_m = np.array([[1.0, -np.tan(shear), 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        m = (
            T.translation_matrix(c[0] + tx, c[1] + ty)
            @ T.rotation_matrix(rot)
            @ shear_m
            @ np.diag([sx, sy, 1.0])
            @ T.translation_matrix(-c[0], -c[1])
        )
        return m, rng.uniform(0, 255, size=3)

    def _half_body(self, keypoints: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
        """HRNet's half-body crop: centre/scale around the visible upper or lower body joints."""
        cfg = self.config
        vis = keypoints[:, 2] > 0
        upper_mask = np.zeros(len(keypoints), dtype=bool)
        upper_mask[self.upper_body] = True
        upper = keypoints[vis & upper_mask, :2]
        lower = keypoints[vis & ~upper_mask, :2]
        if rng.random() < 0.5 and len(upper) > 2:
            sel = upper
        else:
            sel = lower if len(lower) > 2 else upper
        if len(sel) < 2:
            return None
        lo, hi = sel.min(axis=0), sel.max(axis=0)
        center = sel.mean(axis=0).astype(np.float64)
        w, h = hi - lo
        aspect = self.input_size[0] / self.input_size[1]
        _, scale = T.box_to_center_scale((0, 0, w, h), aspect, cfg.half_body_padding)
        return center, scale

    # ------------------------------------------------------------------ photometry
    def photometric(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """This preset's colour steps on an (H, W, 3) uint8 crop; returns uint8 of the same shape."""
        cfg = self.config
        if isinstance(cfg, HourglassAugment):
            gains = rng.uniform(*cfg.color_range, size=3)
            return np.clip(image.astype(np.float32) * gains.astype(np.float32), 0, 255).astype(np.uint8)
        if not isinstance(cfg, StrongAugment):
            return image
        img = image.astype(np.float32)
        steps = ["noise", "blur", "contrast"]
        rng.shuffle(steps)
        for step in steps:
            if rng.random() >= cfg.step_prob:
                continue
            if step == "noise":
                sigma = rng.uniform(0.0, cfg.noise_max)
                shape = img.shape if rng.random() < cfg.noise_per_channel_prob else (*img.shape[:2], 1)
                img = img + rng.normal(0.0, sigma, size=shape).astype(np.float32)
                img = np.clip(img, 0, 255)
            elif step == "blur":
                sigma = float(rng.uniform(*cfg.blur_sigma))
                img = cv2.GaussianBlur(img, (0, 0), sigma)
            else:
                per_channel = rng.random() < cfg.contrast_per_channel_prob
                alpha = rng.uniform(*cfg.contrast_range, size=3 if per_channel else 1).astype(np.float32)
                img = np.clip(127.5 + alpha * (img - 127.5), 0, 255)
        return np.round(img).astype(np.uint8)

    # ------------------------------------------------------------------ both
    def __call__(
        self,
        image: np.ndarray,
        keypoints: np.ndarray,
        center: np.ndarray,
        scale: np.ndarray,
        rng: np.random.Generator,
    ) -> AugmentedSample:
        """Crop and augment one sample.

        Args:
            image: (H, W, 3) uint8 source image.
            keypoints: (K, 3) x, y, visibility in source pixels.
            center, scale: (2,) crop centre and scale (units of 200 px).
            rng: random generator of this sample.
        """
        matrix, flipped, border = self.sample_matrix(keypoints, center, scale, rng)
        crop = T.warp_image(image, matrix, self.input_size, border_value=border)
        kp = T.transform_points(np.asarray(keypoints, dtype=np.float32), matrix)
        if flipped:
            kp = kp[self.flip_perm]
        crop = self.photometric(crop, rng)
        return AugmentedSample(crop, kp.astype(np.float32), matrix, flipped)


def build_augmenter(
    preset: str | dict | BaseModel, schema: KeypointSchema, input_size: Sequence[int], udp: bool = False, **overrides
) -> Augmenter:
    """An :class:`Augmenter` for a preset name (or config dict) with optional range overrides."""
    return Augmenter(augment_config(preset, **overrides), schema, input_size, udp)
