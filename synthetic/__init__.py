"""Procedural animals (and humans) with exact keypoint labels: X = G(α, β).

α are the task-relevant factors (pose from joint priors and gait cycles, shape, viewpoint), β the
task-irrelevant ones (coat texture, lighting, background, occluders, camera effects). Species are
YAML templates (``synthetic/species/*.yaml``); bodies are ellipsoids rasterised with exact depth, so
keypoint visibility comes from a depth test.

Public API::

    generate_dataset(out, species, style, n, size, seed, clips=0, frames=0, workers=1, gap=None,
                     masks=False, progress=False, fps=25.0, image_format=None) -> Path
        Render a dataset folder (images/ PNG for cad, JPEG q95 for photo; annotations/<schema>.json
        COCO keypoints with per-image ``factors``, ``video_id``/``frame_index`` on clip frames;
        optional masks/ part ids; manifest.json with the config hash). Deterministic for a seed
        whatever the worker count; returns at once when the manifest's config hash matches; an
        interrupted run of the same config resumes. Raises ConfigError on bad arguments.
    render_sample(species, style, seed, size, gap=None) -> (image (H, W, 3) uint8,
                                                            {schema: keypoints (K, 3) float32}, factors)
    render_clip(species, style, seed, size, frames, fps=25.0, orbit=None) -> list[Rendered]
        A gait cycle (walk, trot or gallop) seen by a tracking, orbiting camera; every frame labelled.
    render_scene(species, style, seed, size, mirror=False) -> Rendered
        One instance with its depth buffer, primitive ids and part mask (``mirror``: the mirror scene).
    StyleConfig.make(name, gap=None)   'cad', 'photo' or 'wild'; gap in [0, 1] (default 1.0) scales
        every distribution a target style shifts away from 'cad' ('photo': coats, fur, breed,
        lighting, photographic backgrounds, camera; 'wild' adds pose, viewpoint, occluders,
        truncation and blur); gap 0 gives cad's distributions.
    list_species() -> list[str]
"""

from __future__ import annotations

import numpy as np

from synthetic.scene import Rendered, render_clip, render_scene
from synthetic.styles import StyleConfig
from synthetic.template import list_species, load_template
from synthetic.writers import generate_dataset


def render_sample(
    species: str, style: str | StyleConfig, seed: int, size: int, gap: float | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """One still: image (size, size, 3) uint8, {schema: (K, 3) float32 x, y, visibility}, factors.

    Visibility: 2 visible, 1 occluded by the body or an occluder (depth test), 0 outside the image.
    """
    cfg = style if isinstance(style, StyleConfig) else StyleConfig.make(style, gap)
    r = render_scene(species, cfg, seed, size)
    return r.image, r.keypoints, r.factors


__all__ = ["Rendered", "StyleConfig", "generate_dataset", "list_species", "load_template", "render_clip",
           "render_sample", "render_scene"]
