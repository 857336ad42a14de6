"""Styles: named presets over the α (pose, shape, viewpoint) and β (appearance) distributions.

``cad`` is the analogue of the published synthetic set: one asset per species (its first coat, its
rest proportions), flat colours, simple lighting, procedural backgrounds, a clean camera.

``photo`` is the stand-in target domain, calibrated so that the gap is a *difference* and not extra
*difficulty* (BENCHMARKS.md, "Domain-gap calibration"): every coat of the template (by weight), fur
detail, photographic backgrounds, directional lighting with tints, a colour cast, light sensor noise
and JPEG, and another breed: bones below the shoulders and hips 1.3× and neck and head 1.24× the
asset's. Its pose and viewpoint distributions, occluders and truncation are ``cad``'s: at the CPU
budget every extra difficulty lowered a ``photo``-trained model as much as the ``cad``-trained one,
so they hid the gap instead of making it.

``wild`` keeps the harder target of the first definition (generator 1.0's ``photo``, plus ``photo``'s
coats and breed): grazing and lying horses, elevations from −8° to 50°, focal lengths of 12–60°,
truncation, occluders, defocus and motion blur, heavy JPEG.

Every ``photo`` / ``wild`` parameter is ``cad + gap * (full - cad)``, so the single scalar ``gap`` in
[0, 1] moves the target domain towards (0) or away from (1) the source; ``gap = 0`` reproduces
``cad``'s distributions exactly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from typing import Literal

from animalpose.errors import ConfigError

# Pose modes a template can draw: static poses and gait cycles (see _motion_*.yaml).
MODES = ("stand", "walk", "trot", "gallop", "lie", "graze", "sit")

CAD: dict[str, float] = {
    # α: pose mode weights, pose noise (multiplies the motion file's prior std), shape spread
    "w_stand": 0.30, "w_walk": 0.30, "w_trot": 0.20, "w_gallop": 0.10, "w_lie": 0.04, "w_graze": 0.04, "w_sit": 0.02,
    "pose_noise": 1.0, "shape_sigma": 0.05,
    # α: breed (bone-length factors of the limbs below shoulder/hip, and of neck and head)
    "limb_length": 1.0, "neck_length": 1.0,
    # α: viewpoint (degrees), field of view (degrees), animal size in the frame, truncation
    "elev_lo": 0.0, "elev_hi": 30.0, "roll": 3.0, "fov_lo": 25.0, "fov_hi": 45.0,
    "fill_lo": 0.6, "fill_hi": 0.85, "offset": 0.05, "trunc_p": 0.05,
    # β: coat variety (probability of any of the template's coats instead of the first), texture detail,
    # lighting, background, occluders
    "coat_variety": 0.0, "detail": 0.0, "ambient": 0.55, "diffuse": 0.45, "light_spread": 0.3, "light_tint": 0.0,
    "photo_bg": 0.0, "occluder_p": 0.1,
    # β: camera effects
    "cast": 0.0, "blur_p": 0.0, "blur_sigma": 0.4, "motion_p": 0.0, "noise": 0.0, "jpeg_p": 0.0, "jpeg_q": 95.0,
}

PHOTO: dict[str, float] = {
    **CAD,
    "limb_length": 1.3, "neck_length": 1.24,
    "coat_variety": 1.0, "detail": 3.0, "ambient": 0.3, "diffuse": 0.8, "light_spread": 1.0, "light_tint": 0.12,
    "photo_bg": 0.9,
    "cast": 0.08, "blur_sigma": 1.3, "noise": 0.01, "jpeg_p": 0.3, "jpeg_q": 80.0,
}

WILD: dict[str, float] = {
    **PHOTO,
    "w_stand": 0.25, "w_walk": 0.20, "w_trot": 0.10, "w_gallop": 0.05, "w_lie": 0.15, "w_graze": 0.20, "w_sit": 0.05,
    "pose_noise": 1.8, "shape_sigma": 0.12,
    "elev_lo": -8.0, "elev_hi": 50.0, "roll": 10.0, "fov_lo": 12.0, "fov_hi": 60.0,
    "fill_lo": 0.45, "fill_hi": 0.98, "offset": 0.15, "trunc_p": 0.25,
    "detail": 1.0, "occluder_p": 0.4,
    "blur_p": 0.35, "motion_p": 0.15, "noise": 0.03, "jpeg_p": 0.6, "jpeg_q": 40.0,
}

TARGETS = {"photo": PHOTO, "wild": WILD}
STYLES = ("cad", *TARGETS)
StyleName = Literal["cad", "photo", "wild"]
"""A style's name in a typed config (flow presets); the same set as :data:`STYLES` (tested)."""
DEFAULT_GAP = 1.0


@cache  # computed once per (style, gap): every rendered image reads it several times
def _style_table(name: str, gap: float) -> dict[str, float]:
    """The flat parameter table of style ``name`` at domain ``gap`` (callers copy it)."""
    full = TARGETS.get(name)
    return dict(CAD) if full is None else {k: CAD[k] + gap * (full[k] - CAD[k]) for k in CAD}


@dataclass(frozen=True)
class StyleConfig:
    """A style preset: ``name`` ('cad', 'photo' or 'wild') and, for the targets, the domain ``gap`` in [0, 1]."""

    name: str
    gap: float = DEFAULT_GAP
    # photographs to cut backgrounds from (a folder, or a COCO file whose boxes are kept out of the crops;
    # :mod:`synthetic.backgrounds`), used for a fraction ``backgrounds_p`` of the images instead of the
    # style's own backgrounds; None: the style's
    backgrounds: str | None = None
    backgrounds_p: float = 0.9

    def __post_init__(self) -> None:
        if self.name not in STYLES:
            raise ConfigError("<style>", "style", f"unknown style {self.name!r} (expected one of {', '.join(STYLES)})")
        if not 0.0 <= float(self.gap) <= 1.0:
            raise ConfigError("<style>", "gap", f"must lie in [0, 1], got {self.gap}")
        if not 0.0 <= float(self.backgrounds_p) <= 1.0:
            raise ConfigError("<style>", "backgrounds_p", f"must lie in [0, 1], got {self.backgrounds_p}")

    @classmethod
    def make(cls, name: str, gap: float | None = None, backgrounds: str | None = None,
             backgrounds_p: float = 0.9) -> StyleConfig:
        return cls(name, DEFAULT_GAP if gap is None else float(gap),
                   None if backgrounds is None else str(backgrounds), float(backgrounds_p))

    @property
    def params(self) -> dict[str, float]:
        """The style's flat parameter table (interpolated by ``gap`` for a target style); a fresh copy per call."""
        return dict(_style_table(self.name, float(self.gap)))

    def mode_weights(self) -> dict[str, float]:
        p = self.params
        return {m: p[f"w_{m}"] for m in MODES}

    def to_dict(self) -> dict:
        out = {"name": self.name, "gap": float(self.gap) if self.name in TARGETS else 0.0}
        if self.backgrounds is not None:  # only when set: the hashes of every other dataset stay as they were
            out |= {"backgrounds": self.backgrounds, "backgrounds_p": float(self.backgrounds_p)}
        return out

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()[:16]
