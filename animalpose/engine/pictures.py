"""Pictures of a model on its target: a gallery of fixed test instances and a short labelled video clip.

- :func:`examples_of` (called by :func:`animalpose.engine.evaluate.evaluate` with ``examples=n``) keeps
  ``n`` scored instances, evenly spaced over the dataset's order (:func:`example_indices`), so every
  checkpoint scored on the same data shows the same animals; :func:`gallery_figure` draws them as the
  network saw them (its own crop, enlarged): predicted joints green where within PCK@0.05 (crop) of the
  label, red where not, grey where the joint has no label; labels as white rings.
- :func:`find_video` picks the first video of a list of datasets (raw video files, or generated clips whose
  frames carry a ``video_id``); :func:`labelled_clip` predicts a few seconds of it and writes an animated
  GIF (OpenCV), which the MLflow UI plays in its artifact view.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from animalpose.atomic import atomic_path
from animalpose.data.images import read_image, video_info
from animalpose.data.records import PoseRecord
from animalpose.data.transforms import transform_points
from animalpose.keypoints import KeypointSchema

ALPHA = 0.05  # the headline PCK@0.05 (crop) decides a joint's colour in the gallery


def example_indices(total: int, n: int) -> list[int]:
    """``min(n, total)`` indices evenly spaced over ``range(total)``, first and last included (none for n <= 0)."""
    if n <= 0 or total <= 0:
        return []
    return sorted({int(i) for i in np.linspace(0, total - 1, min(n, total)).round()})


def examples_of(records: Sequence[PoseRecord], predictions: np.ndarray, truth: np.ndarray, distances: np.ndarray,
                matrices: np.ndarray, schema: KeypointSchema, n: int, input_size: tuple[int, int]) -> dict:
    """The gallery's instances among the scored ones, as plain JSON (a cached Prefect result).

    Args:
        records: the N scored instances in dataset order.
        predictions: (N, K, 3) x, y, confidence in original-image pixels.
        truth: (N, K, 3) labels (x, y, visibility) in original-image pixels.
        distances: (N, K) crop-normalised distances (NaN: joint not scored), as PCK (crop) counts them.
        matrices: (N, 2, 3) original → crop affine of each instance.
        input_size: the network's crop (W, H).

    Returns:
        ``{"alpha", "input_size", "skeleton", "joints", "items": [{"image", "frame_index", "matrix",
        "prediction", "truth", "correct"}]}``; ``correct`` is per joint True / False / None (no label).
    """
    items = []
    for i in example_indices(len(records), n):
        d = distances[i]
        correct = [None if not np.isfinite(v) else bool(v <= ALPHA + 1e-9) for v in d]
        items.append({"image": str(records[i].image), "frame_index": records[i].frame_index,
                      "matrix": np.asarray(matrices[i], dtype=float).tolist(),
                      "prediction": np.asarray(predictions[i], dtype=float).round(2).tolist(),
                      "truth": np.asarray(truth[i], dtype=float).round(2).tolist(), "correct": correct})
    return {"alpha": ALPHA, "input_size": list(input_size), "skeleton": [list(e) for e in schema.skeleton],
            "joints": list(schema.joints), "items": items}


def gallery_figure(examples: dict, title: str | None = None, size: int = 160, columns: int = 4):
    """The gallery of :func:`examples_of`'s instances, each its network crop enlarged to ``size`` px wide."""
    from animalpose.plots import prediction_grid_figure

    w, h = examples["input_size"]
    f = size / w
    crops, preds, truths, correct, captions = [], [], [], [], []
    for item in examples["items"]:
        m = f * np.asarray(item["matrix"], dtype=float)  # original → enlarged crop
        image = read_image(item["image"], item["frame_index"])
        crops.append(cv2.warpAffine(image, m, (round(f * w), round(f * h)), flags=cv2.INTER_LINEAR))
        preds.append(transform_points(np.asarray(item["prediction"], dtype=float), m))
        truths.append(transform_points(np.asarray(item["truth"], dtype=float), m))
        correct.append(item["correct"])
        scored = [c for c in item["correct"] if c is not None]
        frame = "" if item["frame_index"] is None else f" #{item['frame_index']}"
        captions.append(f"{Path(item['image']).name}{frame}: {sum(scored)}/{len(scored)}")
    note = f"green: within PCK@{examples['alpha']} of the label (white ring), red: farther, grey: no label"
    return prediction_grid_figure(crops, preds, truths, [tuple(e) for e in examples["skeleton"]], columns=columns,
                                  title=f"{title}\n{note}" if title else note, captions=captions, correct=correct)


def _video_key(r: PoseRecord) -> str | None:
    return r.video_id if r.video_id is not None else (r.image if r.is_video_frame else None)


def find_video(paths: Sequence[str | Path], schema: str | KeypointSchema | None) -> dict | None:
    """``{"data": path, "video": key}`` of the first video (sorted by its key) in the first of ``paths``
    that holds one, or None. A video is a raw video file (its frames are records) or frames that carry a
    ``video_id`` (generated clips)."""
    from animalpose.data.readers import read_dataset

    for path in paths:
        keys = {_video_key(r) for r in read_dataset(path, "auto", schema).records} - {None}
        if keys:
            return {"data": str(path), "video": sorted(keys)[0]}
    return None


def labelled_clip(checkpoint: str | Path, data: str | Path, video: str, out: str | Path,
                  schema: str | KeypointSchema | None = None, seconds: float = 3.0, max_fps: float = 10.0,
                  size: int = 320) -> Path:
    """Predict the first ``seconds`` of ``video`` in the dataset ``data`` and write a labelled GIF to ``out``.

    Frames of a raw video are subsampled to at most ``max_fps`` and play in real time; generated clips
    (image frames) play at ``max_fps``. Each frame is drawn ``size`` px on its longer side with the
    predicted skeleton, joints coloured by confidence (red 0 → green 1), as ``animalpose predict`` draws.
    """
    from animalpose.data.readers import read_dataset
    from animalpose.engine.build import crop_padding
    from animalpose.engine.predict import Predictor, draw_pose

    ds = read_dataset(data, "auto", schema)
    frames: dict[tuple[str, int], list[PoseRecord]] = {}
    for r in sorted((r for r in ds.records if _video_key(r) == video), key=lambda r: r.frame_index or 0):
        frames.setdefault((r.image, r.frame_index or 0), []).append(r)
    if not frames:
        raise ValueError(f"{data}: no frames of video {video!r}")
    first = next(iter(frames.values()))[0]
    native = video_info(first.image)["fps"] if first.is_video_frame else max_fps
    step = max(1, round(native / max_fps))
    fps = native / step
    keep = list(frames.items())[::step][:max(1, int(seconds * fps))]
    predictor = Predictor(checkpoint, device="cpu")
    predictor.padding = crop_padding(ds, predictor.cfg)  # the crops the model was trained and scored on
    pictures = []
    for (image, index), instances in keep:
        rgb = read_image(image, index if first.is_video_frame else None)
        poses = predictor([(rgb, r.bbox) for r in instances])
        scale = size / max(rgb.shape[:2])
        canvas = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), None, fx=scale, fy=scale,
                            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        for p in poses:
            draw_pose(canvas, p, predictor.schema.skeleton, scale)
        cv2.putText(canvas, f"frame {index}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        pictures.append(canvas)
    animation = cv2.Animation()
    animation.frames = pictures
    animation.durations = [round(1000 / fps)] * len(pictures)
    out = Path(out)
    with atomic_path(out) as tmp:
        if not cv2.imwriteanimation(str(tmp), animation):
            raise OSError(f"{out}: OpenCV could not write the animation")
    return out
