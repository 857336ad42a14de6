"""Draw one picture per augmentation preset on the real fixtures (Horse-10, ATRW) with the skeleton.

    .venv/bin/python docs/augment/make_pictures.py [--out docs/augment] [--fixtures ../shared/data/real/mmpose-tests]

Each picture has one row per fixture image: the plain crop, then six augmented samples (seeded).
Joints are coloured by side (left blue, right red, unpaired green), so a flip shows as left/right
labels that stay on the animal's own left/right after the mirror; Horse-10 has no flip pairs and
is never flipped.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from animalpose.data import transforms as T
from animalpose.data.augment import build_augmenter
from animalpose.data.images import read_image
from animalpose.keypoints import KeypointSchema, load_schema

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT.parent / "shared" / "data" / "real" / "mmpose-tests"
PRESETS = ("hourglass", "strong", "simplebaseline")
SIZE = 192
SAMPLES = 6


def fixture_instances(root: Path) -> list[tuple[str, np.ndarray, tuple, str]]:
    """(image path, keypoints (K, 3), bbox, schema) of the first annotation of each fixture image."""
    out = []
    for sub, schema in (("horse10", "horse10"), ("atrw", "atrw")):
        data = json.loads(next((root / sub).glob("*.json")).read_text())
        files = {im["id"]: im["file_name"] for im in data["images"]}
        seen: set[int] = set()
        for ann in data["annotations"]:
            if ann["image_id"] in seen or len(seen) == 2:  # two images per data set
                continue
            seen.add(ann["image_id"])
            kp = np.asarray(ann["keypoints"], np.float32).reshape(-1, 3)
            out.append((str(root / sub / files[ann["image_id"]]), kp, tuple(ann["bbox"]), schema))
    return out


def side_colour(name: str) -> tuple[int, int, int]:
    low = name.lower()
    if low.startswith(("l_", "left")):
        return (60, 120, 255)
    if low.startswith(("r_", "right")):
        return (255, 60, 60)
    return (60, 220, 60)


def draw(img: np.ndarray, kp: np.ndarray, schema: KeypointSchema) -> np.ndarray:
    """(H, W, 3) RGB uint8 with the skeleton of (K, 3) crop keypoints drawn on it."""
    out = img.copy()
    h, w = out.shape[:2]
    inside = (kp[:, 2] > 0) & (kp[:, 0] >= 0) & (kp[:, 0] < w) & (kp[:, 1] >= 0) & (kp[:, 1] < h)
    for a, b in schema.skeleton:
        if inside[a] and inside[b]:
            cv2.line(out, tuple(np.round(kp[a, :2]).astype(int)), tuple(np.round(kp[b, :2]).astype(int)),
                     (255, 255, 255), 1, cv2.LINE_AA)
    for k in np.flatnonzero(inside):
        cv2.circle(out, tuple(np.round(kp[k, :2]).astype(int)), 3, side_colour(schema.joints[k]), -1, cv2.LINE_AA)
    return out


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (SIZE, 16), (0, 0, 0), -1)
    cv2.putText(out, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def picture(preset: str, instances, seed: int = 0) -> np.ndarray:
    rows = []
    for row, (path, kp, bbox, schema_name) in enumerate(instances):
        schema = load_schema(schema_name)
        image = read_image(path)
        center, scale = T.box_to_center_scale(bbox, 1.0, T.PADDING_SYNTHETIC)
        m = T.crop_matrix(center, scale, (SIZE, SIZE))
        tiles = [label(draw(T.warp_image(image, m, (SIZE, SIZE)), T.transform_points(kp, m), schema),
                       f"{schema_name}: plain crop")]
        aug = build_augmenter(preset, schema, (SIZE, SIZE))
        rng = np.random.default_rng((seed, row))
        for i in range(SAMPLES):
            s = aug(image, kp, center, scale, rng)
            title = f"{preset} #{i}" + (" flipped" if s.flipped else "")
            tiles.append(label(draw(s.image, s.keypoints, schema), title))
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def write_jpeg(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(buf.tobytes())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    args = parser.parse_args()
    instances = fixture_instances(args.fixtures)
    args.out.mkdir(parents=True, exist_ok=True)
    for preset in PRESETS:
        path = args.out / f"{preset}.jpg"
        write_jpeg(path, picture(preset, instances))
        print(path)


if __name__ == "__main__":
    main()
