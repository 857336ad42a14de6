"""Contact sheets of samples with skeleton overlays: visible joints filled, occluded ones hollow."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from animalpose.errors import DataError
from animalpose.keypoints import KeypointSchema, load_schema
from synthetic.writers import atomic_write_bytes

VISIBLE_COLOUR = (255, 60, 60)  # RGB
OCCLUDED_COLOUR = (60, 200, 255)
BONE_COLOUR = (60, 255, 60)


def draw_pose(image: np.ndarray, keypoints: np.ndarray, schema: KeypointSchema) -> np.ndarray:
    """Copy of (H, W, 3) RGB ``image`` with bones between labelled joints, visible joints as filled
    dots and occluded joints as hollow rings; joints with visibility 0 are not drawn."""
    out = np.ascontiguousarray(image.copy())
    radius = max(2, round(image.shape[0] / 96))
    pts = [(round(float(x)), round(float(y))) for x, y, _ in keypoints]
    for a, b in schema.skeleton:
        if keypoints[a, 2] > 0 and keypoints[b, 2] > 0:
            cv2.line(out, pts[a], pts[b], BONE_COLOUR, 1, cv2.LINE_AA)
    for (x, y), v in zip(pts, keypoints[:, 2], strict=True):
        if v >= 2:
            cv2.circle(out, (x, y), radius, VISIBLE_COLOUR, -1, cv2.LINE_AA)
        elif v >= 1:
            cv2.circle(out, (x, y), radius, OCCLUDED_COLOUR, 1, cv2.LINE_AA)
    return out


def grid(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    """Tile equal-size (H, W, 3) images into rows of ``cols`` (blank-filled)."""
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // cols)
    sheet = np.full((rows * h, cols * w, 3), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile
    return sheet


def save_png(path: Path, image: np.ndarray, palette: int | None = None) -> Path:
    """Write an (H, W, 3) RGB image as PNG atomically; ``palette`` quantises to that many colours."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(image).quantize(palette, dither=Image.Dither.NONE).save(buf, "PNG", optimize=True)
        data = buf.getvalue()
    else:
        ok, enc = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise RuntimeError(f"PNG encoding failed for {path}")
        data = enc.tobytes()
    atomic_write_bytes(path, data)
    return path


def dataset_gallery(folder: str | Path, out: str | Path, *, count: int = 24, cols: int = 6,
                    schema: str | None = None, tile: int = 160) -> Path:
    """A gallery PNG of the first ``count`` images of a generated dataset folder, with overlays."""
    folder = Path(folder)
    ann_dir = folder / "annotations"
    files = sorted(ann_dir.glob("*.json")) if ann_dir.is_dir() else []
    if schema is not None:
        files = [p for p in files if p.stem == schema]
    if not files:
        raise DataError(str(ann_dir), "annotations", f"no annotation file{' for ' + schema if schema else ''}")
    path = files[0]
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(str(path), "<json>", str(exc)) from exc
    sch = load_schema(doc.get("info", {}).get("schema", path.stem))
    by_image: dict = {}
    for ann in doc["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    tiles = []
    for entry in doc["images"][:count]:
        img = cv2.imread(str(folder / entry["file_name"]), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(str(folder / entry["file_name"]), "file_name", "image missing or unreadable")
        img = img[:, :, ::-1]
        for ann in by_image.get(entry["id"], []):
            img = draw_pose(img, np.asarray(ann["keypoints"], np.float32).reshape(-1, 3), sch)
        tiles.append(cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA))
    return save_png(Path(out), grid(tiles, cols))


def species_gallery(species: str, style: str, out: str | Path, *, count: int = 5, size: int = 224,
                    tile: int = 112, seed: int = 0, palette: int | None = 96) -> Path:
    """One row of ``count`` rendered samples of a species and style with overlays (first schema).

    ``palette`` quantises to that many colours (small files for the docs); None keeps full colour.
    """
    from synthetic.scene import render_scene
    from synthetic.styles import StyleConfig

    cfg = StyleConfig.make(style)
    tiles = []
    for s in range(seed, seed + count):
        r = render_scene(species, cfg, s, size)
        schema = next(iter(r.keypoints))
        img = draw_pose(r.image, r.keypoints[schema], load_schema(schema))
        tiles.append(cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA))
    return save_png(Path(out), grid(tiles, count), palette=palette)


def docs_gallery(folder: str | Path = "docs/gallery") -> list[Path]:
    """Regenerate ``docs/gallery/<species>_<style>.png`` for every species and style."""
    from synthetic.styles import STYLES
    from synthetic.template import list_species

    folder = Path(folder)
    return [species_gallery(sp, st, folder / f"{sp}_{st}.png") for sp in list_species() for st in STYLES]


if __name__ == "__main__":  # python -m synthetic.gallery [folder]
    import sys

    for written in docs_gallery(*sys.argv[1:2]):
        print(written)
