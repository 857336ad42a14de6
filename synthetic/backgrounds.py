"""Backgrounds cut from a user's own photographs, outside the animals in them.

Rendering the generated animal over the scenery of the real target (its unlabelled images: fields,
stables, fences, lighting) narrows the synthetic-to-real gap without any keypoint label. The source is
a folder of images, or a COCO file whose boxes mark the animals to keep out of the crops: top-down
pose estimation needs those boxes for its unlabelled images anyway (issue 27 names the lever:
"backgrounds cut from the target's unlabelled images outside the animal boxes").

A crop is a random square (side 20-100 % of the image's shorter side) that overlaps no box by more
than ``MAX_OVERLAP`` of its area; an image whose animals leave no such square yields nothing, and after
``ATTEMPTS`` misses the caller falls back to a procedural background and records it in the image's
factors (``background.kind = "procedural"``, ``scenery_miss = true``), so a fallback is never silent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import cv2
import numpy as np

from animalpose.errors import ConfigError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAX_SIDE = 320  # decoded images are kept at most this large: a crop is resized to the render size anyway
MAX_OVERLAP = 0.05
ATTEMPTS = 24


@dataclass(frozen=True)
class Scenery:
    """One source photograph and the animal boxes (x0, y0, x1, y1, original pixels) to keep out."""

    image: str
    boxes: tuple[tuple[float, float, float, float], ...] = ()


@cache
def load_sceneries(source: str) -> tuple[Scenery, ...]:
    """The photographs of ``source``: a folder (every image, no boxes) or a COCO file (its images, with
    each annotation's ``bbox`` [x, y, w, h] as a box to avoid). ConfigError naming the source when it
    holds no image."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        scenes = tuple(Scenery(str(p)) for p in files)
    elif path.is_file() and path.suffix == ".json":
        scenes = _coco_sceneries(path)
    else:
        raise ConfigError(source, "backgrounds", "expected a folder of images or a COCO .json file")
    if not scenes:
        raise ConfigError(source, "backgrounds", "no image found")
    return scenes


def _coco_sceneries(path: Path) -> tuple[Scenery, ...]:
    try:
        doc = json.loads(path.read_text())
        images = {im["id"]: im["file_name"] for im in doc["images"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(str(path), "images", f"not a readable COCO file ({exc})") from None
    boxes: dict = {i: [] for i in images}
    for k, ann in enumerate(doc.get("annotations", [])):
        bbox = ann.get("bbox")
        if ann.get("image_id") not in boxes or not isinstance(bbox, list) or len(bbox) != 4:
            raise ConfigError(str(path), f"annotations[{k}].bbox", "expected [x, y, w, h] of a listed image")
        x, y, w, h = (float(v) for v in bbox)
        boxes[ann["image_id"]].append((x, y, x + w, y + h))
    root = path.parent
    return tuple(Scenery(str(f if Path(f).is_absolute() else root / f), tuple(boxes[i])) for i, f in images.items())


@lru_cache(maxsize=512)
def _decoded(image: str) -> tuple[np.ndarray, float]:
    """(H, W, 3) RGB uint8, at most ``MAX_SIDE`` on its longer side, and the scale applied."""
    bgr = cv2.imread(image, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ConfigError(image, "backgrounds", "cannot decode the image")
    h, w = bgr.shape[:2]
    scale = min(1.0, MAX_SIDE / max(h, w))
    if scale < 1.0:
        bgr = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, ::-1]), scale


def overlap_area(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Area of the intersection of two (x0, y0, x1, y1) boxes."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def scenery_background(rng: np.random.Generator, size: int, source: str) -> tuple[np.ndarray, dict] | None:
    """(size, size, 3) uint8 crop of one of ``source``'s photographs clear of its animal boxes, and its
    description; None after ``ATTEMPTS`` draws found no clear square (the caller falls back, loudly)."""
    scenes = load_sceneries(source)
    for _ in range(ATTEMPTS):
        k = int(rng.integers(len(scenes)))
        img, scale = _decoded(scenes[k].image)
        h, w = img.shape[:2]
        side = max(8, int(rng.uniform(0.2, 1.0) * min(h, w)))
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop_box = (x0 / scale, y0 / scale, (x0 + side) / scale, (y0 + side) / scale)
        limit = MAX_OVERLAP * (side / scale) ** 2
        if any(overlap_area(crop_box, b) > limit for b in scenes[k].boxes):
            continue
        crop = cv2.resize(img[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            crop = cv2.flip(crop, 1)
        return np.ascontiguousarray(crop), {"kind": "scenery", "image": k, "crop": [x0, y0, side]}
    return None
