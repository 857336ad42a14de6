"""Datasets on disk: images, COCO keypoints JSON per schema, optional part masks, a manifest.

Layout of ``OUT``::

    images/000000.png ...          stills first, then clip frames (clip c, frame k); .jpg for photo
    masks/000000.png ...           optional part-id masks (0 background, 1 + part, 255 occluder)
    annotations/<schema>.json      one COCO keypoints file per schema the template emits
    manifest.json                  generator version, config, its hash, counts

Sample i of a dataset draws from ``SeedSequence([seed, crc32(species)], spawn_key=(i,))`` (clips from key
``(n + c,)``), so the bytes written depend on the seed and the config only, never on the number of
worker processes. Generation is idempotent: when ``manifest.json`` holds the same config hash and
every file is present, :func:`generate_dataset` returns at once.

Nothing half-written: the dataset is built in a staging folder ``.<OUT name>.partial`` beside ``OUT``
and renamed to ``OUT`` only when complete (an older dataset in ``OUT`` is replaced whole). A failed or
killed run leaves ``OUT`` as it was; rerunning the same config resumes in the staging folder (its
``.partial`` file holds the config hash; images already written are kept). ``OUT`` must be new, empty
or a dataset written here before: another folder is refused rather than replaced.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import secrets
import shutil
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from animalpose.atomic import write_bytes_atomic
from animalpose.data.coco_writer import write_coco
from animalpose.data.records import PoseRecord
from animalpose.errors import ConfigError, OutputError
from animalpose.outputs import check_output_dir, output_errors
from synthetic.scene import Rendered, render_clip, render_scene
from synthetic.styles import StyleConfig
from synthetic.template import list_species, load_template

GENERATOR_VERSION = "1.1"
DEFAULT_FPS = 25.0


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    write_bytes_atomic(path, data)


# PNG with the SUB filter and run-length zlib: about 4x faster than OpenCV's default filters on
# rendered images at a similar size. JPEG quality 95 for ``photo`` (its β already includes JPEG).
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
              cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]
JPEG_QUALITY = 95
FORMATS = ("png", "jpg")


def encode_image(image: np.ndarray, fmt: str = "png") -> bytes:
    """PNG or JPEG bytes of an (H, W, 3) RGB or (H, W) grey uint8 image (deterministic)."""
    arr = np.ascontiguousarray(image[:, :, ::-1] if image.ndim == 3 else image)
    if fmt == "png":
        ok, buf = cv2.imencode(".png", arr, PNG_PARAMS)
    else:
        ok, buf = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"{fmt} encoding failed")
    return buf.tobytes()


def default_format(style: StyleConfig) -> str:
    """``png`` for cad (clean, lossless), ``jpg`` for photo (fast; JPEG is part of that domain)."""
    return "png" if style.name == "cad" else "jpg"


def dataset_config(species: str, style: StyleConfig, n: int, size: int, seed: int, clips: int, frames: int,
                   masks: bool, fps: float = DEFAULT_FPS, image_format: str = "png") -> dict:
    """The generation config as plain JSON (what the manifest's hash covers)."""
    return {"generator_version": GENERATOR_VERSION, "species": species, "style": style.to_dict(),
            "style_params": style.params, "n": int(n), "size": int(size), "seed": int(seed),
            "clips": int(clips), "frames": int(frames), "fps": float(fps), "masks": bool(masks),
            "image_format": image_format}


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _bbox(parts: np.ndarray, keypoints: np.ndarray) -> list[float]:
    """(x, y, w, h) around the animal's visible silhouette (part mask 1..254) and its labelled keypoints
    (occluded joints included, so a top-down crop keeps them), within the image."""
    ys, xs = np.nonzero((parts > 0) & (parts < 255))
    lab = keypoints[keypoints[:, 2] > 0, :2]
    if len(xs) == 0 and len(lab) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    h, w = parts.shape
    lo = np.array([xs.min() - 0.5, ys.min() - 0.5]) if len(xs) else np.array([np.inf, np.inf])
    hi = np.array([xs.max() + 0.5, ys.max() + 0.5]) if len(xs) else np.array([-np.inf, -np.inf])
    if len(lab):
        lo, hi = np.minimum(lo, lab.min(0)), np.maximum(hi, lab.max(0))
    lo = np.maximum(lo, -0.5)
    hi = np.minimum(hi, [w - 0.5, h - 0.5])
    return [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]


def _write_item(out: Path, image_id: int, r: Rendered, masks: bool, video: str | None, frame: int | None,
                fmt: str, resume: bool) -> dict:
    """Write one image (and mask) unless resuming and already there (atomic writes: complete files)."""
    name = f"{image_id:06d}.{fmt}"
    if not (resume and (out / "images" / name).is_file()):
        atomic_write_bytes(out / "images" / name, encode_image(r.image, fmt))
    mask = out / "masks" / f"{image_id:06d}.png"
    if masks and not (resume and mask.is_file()):
        atomic_write_bytes(mask, encode_image(r.parts, "png"))
    box = _bbox(r.parts, np.concatenate(list(r.keypoints.values())))
    return {"image_id": image_id, "file": f"images/{name}", "bbox": box,
            "keypoints": {k: v.tolist() for k, v in r.keypoints.items()},
            "factors": r.factors, "video_id": video, "frame_index": frame}


def _job(args: tuple) -> list[dict]:
    """Render and write one still (kind 'still') or one clip (kind 'clip'); return its records."""
    kind, index, out, species, style, n, size, seed, frames, fps, masks, fmt, resume = args
    ss = np.random.SeedSequence([seed, zlib.crc32(species.encode())], spawn_key=(index,))
    if kind == "still":
        return [_write_item(out, index, render_scene(species, style, ss, size), masks, None, None, fmt, resume)]
    clip = index - n
    video = f"{species}_{seed}_clip{clip:05d}"
    rendered = render_clip(species, style, ss, size, frames, fps=fps)
    first_id = n + clip * frames
    return [_write_item(out, first_id + k, r, masks, video, k, fmt, resume) for k, r in enumerate(rendered)]


def _background_counts(style: StyleConfig, items: list[dict]) -> dict:
    """``{"backgrounds": {source, used, missed}}`` when the style cuts backgrounds from photographs."""
    if style.backgrounds is None:
        return {}
    kinds = [it["factors"]["beta"]["background"] for it in items]
    return {"backgrounds": {"source": style.backgrounds, "used": sum(k["kind"] == "scenery" for k in kinds),
                            "missed": sum(bool(k.get("scenery_miss")) for k in kinds)}}


def _complete(out: Path, manifest: dict) -> bool:
    counts = manifest.get("counts", {})
    total = counts.get("images", -1)
    fmt = manifest.get("image_format", "png")
    return all((out / "images" / f"{i:06d}.{fmt}").is_file() for i in range(total)) and all(
        (out / "annotations" / f"{s}.json").is_file() for s in manifest.get("schemas", []))


def generate_dataset(
    out: str | Path, species: str, style: str | StyleConfig, n: int, size: int, seed: int,
    clips: int = 0, frames: int = 0, workers: int = 1, gap: float | None = None, masks: bool = False,
    progress: bool = False, fps: float = DEFAULT_FPS, image_format: str | None = None,
    backgrounds: str | Path | None = None, backgrounds_p: float = 0.9,
) -> Path:
    """Render ``n`` stills and ``clips`` clips of ``frames`` frames into ``out``; returns ``out``.

    ``backgrounds``: photographs to cut the backgrounds of a fraction ``backgrounds_p`` of the images from
    (:mod:`synthetic.backgrounds`; a ``StyleConfig`` passed as ``style`` carries its own); the manifest
    counts the images whose draw found no clear square (``backgrounds.missed``).

    Images are PNG for ``cad`` and JPEG (quality 95) for ``photo`` unless ``image_format`` says.

    Deterministic for a seed whatever ``workers``; idempotent when the manifest's config hash
    matches and every file is present. Raises ConfigError on a bad species, style or count.
    """
    out = Path(out)
    if species not in list_species():
        raise ConfigError("<synth>", "species", f"unknown species {species!r} (known: {list_species()})")
    style = style if isinstance(style, StyleConfig) else StyleConfig.make(
        style, gap, None if backgrounds is None else str(Path(backgrounds).resolve()), backgrounds_p)
    for field, value, lo in (("n", n, 0), ("size", size, 32), ("clips", clips, 0), ("workers", workers, 1)):
        if int(value) < lo:
            raise ConfigError("<synth>", field, f"must be >= {lo}, got {value}")
    if clips > 0 and frames < 2:
        raise ConfigError("<synth>", "frames", f"clips need at least 2 frames, got {frames}")
    if n + clips == 0:
        raise ConfigError("<synth>", "n", "nothing to generate (n = 0 and clips = 0)")
    fmt = image_format or default_format(style)
    if fmt not in FORMATS:
        raise ConfigError("<synth>", "image_format", f"expected one of {FORMATS}, got {fmt!r}")
    config = dataset_config(species, style, n, size, seed, clips, frames if clips else 0, masks, fps, fmt)
    digest = config_hash(config)
    _check_target(out)
    stage = out.parent / f".{out.name}.partial"
    _finish_interrupted_swap(stage, out)
    if _same_complete_dataset(out, digest):
        return out
    check_output_dir(out.parent, "--out")
    with output_errors(out, "--out"):
        _generate_into(stage, out, digest, config, species, style, n, size, seed, clips, frames, workers, masks,
                       progress, fps, fmt)
        _swap_into_place(stage, out)
    return out


def _same_complete_dataset(out: Path, digest: str) -> bool:
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        return False
    try:
        old = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return old.get("config_hash") == digest and _complete(out, old)


def _check_target(out: Path) -> None:
    """``out`` is new, empty, or a dataset written by the generator (it will be replaced whole)."""
    if out.exists() and not out.is_dir():
        raise OutputError(str(out), "--out", "exists and is a file; a folder is needed here")
    if out.is_dir() and any(out.iterdir()) and not ((out / "manifest.json").is_file() or (out / ".partial").is_file()):
        raise OutputError(str(out), "--out", "exists and is not a dataset written by `animalpose synth` (no "
                                             "manifest.json); it would be replaced: choose a new or empty folder")


def _finish_interrupted_swap(stage: Path, out: Path) -> None:
    """A kill between the two renames of :func:`_swap_into_place` left a complete staging folder and no
    ``out``: finish the move. Old datasets moved aside are removed."""
    for old in out.parent.glob(f".{out.name}.old-*"):
        shutil.rmtree(old, ignore_errors=True)
    if not out.exists() and (stage / "manifest.json").is_file() and not (stage / ".partial").exists():
        os.rename(stage, out)


def _swap_into_place(stage: Path, out: Path) -> None:
    """Rename the finished ``stage`` to ``out``; an older ``out`` is moved aside first, then removed."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{secrets.token_hex(4)}"
        os.rename(out, old)
    os.rename(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _generate_into(stage: Path, out: Path, digest: str, config: dict, species: str, style: StyleConfig, n: int,
                   size: int, seed: int, clips: int, frames: int, workers: int, masks: bool, progress: bool,
                   fps: float, fmt: str) -> None:
    """Render everything into ``stage``; image paths in the annotations are relative (valid once renamed)."""
    # An interrupted run of the same config left ``.partial`` with its hash: keep the images it wrote
    # (samples are re-rendered for their labels, but not re-encoded). Another config's leftovers go.
    partial = stage / ".partial"
    resume = partial.is_file() and partial.read_text().strip() == digest
    if stage.exists() and not resume:
        shutil.rmtree(stage)
    stage.mkdir(parents=True, exist_ok=True)
    manifest_path = stage / "manifest.json"
    manifest_path.unlink(missing_ok=True)
    atomic_write_bytes(partial, digest.encode())
    (stage / "images").mkdir(parents=True, exist_ok=True)
    (stage / "annotations").mkdir(parents=True, exist_ok=True)
    if masks:
        (stage / "masks").mkdir(parents=True, exist_ok=True)
    common = (stage, species, style, n, size, seed, frames, fps, masks, fmt, resume)
    jobs = [("still", i, *common) for i in range(n)] + [("clip", n + c, *common) for c in range(clips)]
    items: list[dict] = []
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task(f"synth {species}/{style.name}", total=len(jobs))
    try:
        if workers == 1:
            results = map(_job, jobs)
        else:
            # forkserver: safe when the caller runs threads (flows); one cv2 thread per worker.
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"),
                                       initializer=cv2.setNumThreads, initargs=(1,))
            results = pool.map(_job, jobs, chunksize=max(1, min(64, len(jobs) // (4 * workers))))
        for batch in results:
            items.extend(batch)
            if bar is not None:
                bar.advance(task)
        if workers != 1:
            pool.shutdown()
    finally:
        if bar is not None:
            bar.stop()
    tpl = load_template(species)
    info = {"description": f"animalpose synthetic {species} ({style.name})", "generator_version": GENERATOR_VERSION,
            "species": species, "style": style.name, "gap": style.to_dict()["gap"], "seed": int(seed),
            "config_hash": digest}
    for schema in tpl.keypoints:
        records = [
            PoseRecord(image=str(stage / it["file"]), keypoints=np.asarray(it["keypoints"][schema], np.float32),
                       schema=schema, bbox=tuple(it["bbox"]), image_size=(size, size), video_id=it["video_id"],
                       frame_index=it["frame_index"], image_id=it["image_id"] + 1, meta={"factors": it["factors"]})
            for it in items
        ]
        write_coco(records, stage / "annotations" / f"{schema}.json", schema, image_root=stage, category=species,
                   info=info)
    manifest = {"generator_version": GENERATOR_VERSION, "species": species, "style": style.name,
                "gap": style.to_dict()["gap"], "seed": int(seed), "n": int(n), "size": int(size),
                "clips": int(clips), "frames": int(frames if clips else 0), "fps": float(fps), "masks": bool(masks),
                "image_format": fmt, **_background_counts(style, items),
                "schemas": list(tpl.keypoints), "counts": {"images": len(items), "stills": int(n),
                "clip_frames": len(items) - int(n), "clips": int(clips)},
                "config": config, "config_hash": digest}
    atomic_write_bytes(manifest_path, json.dumps(manifest, indent=1, sort_keys=True).encode())
    partial.unlink(missing_ok=True)
