"""``predict(checkpoint, inputs, out)``: keypoints on images, folders and videos.

Boxes: the whole frame (one animal per frame), or the boxes of a COCO detection results file
(``[{"image_id", "bbox": [x, y, w, h], "score", "category_id"}]``), matched to an image by the integer
in its file stem (COCO naming, ``000000000785.jpg`` → 785) and to a video frame by its frame index.

Outputs in ``out``, per video ``<stem>`` (and once for all still images, ``<stem>`` = ``images``):

- ``<stem>.csv``: DeepLabCut-style table, header rows ``scorer`` / (``individuals``) / ``bodyparts`` /
  ``coords`` (x, y, likelihood), one row per frame or image (likelihood = heatmap maximum);
- ``<stem>.json``: COCO keypoint results (``image_id`` = frame index for videos, per-image id for
  images), score = mean likelihood;
- ``<stem>_labelled.mp4`` for videos (``labelled/`` PNGs for images): the skeleton drawn, each joint in its
  own colour with a legend of the names in a panel to the right of the frame (the image itself uncovered),
  filled where its likelihood is at least 0.5, a ring below
  (:mod:`animalpose.engine.drawing`).

Several checkpoints of one schema predict as an ensemble (:class:`EnsemblePredictor`): every table holds the
members' median per keypoint, each COCO result also the members' spread (``ensemble_std``, pixels per keypoint),
and ``smoothing`` may be ``eks``, Lightning Pose's ensemble Kalman smoother (:mod:`animalpose.engine.ensemble`).

With ``smoothing`` (:mod:`animalpose.engine.smoothing`: Savitzky–Golay or a constant-velocity Kalman
smoother, low-likelihood frames filled or down-weighted), each video also gets ``<stem>_filtered.csv`` /
``<stem>_filtered.json`` (DeepLabCut's name for filtered predictions; ``<stem>.csv`` stays the raw one) and its
labelled MP4 draws the smoothed track. The whole video is predicted first (a smoother needs the frames after
the current one), then decoded again to draw. Smoothing follows one animal per frame: detections with
several boxes in a frame are refused (no identity tracking).

Inputs are all checked before work starts: a missing file or a video whose first frame does not
decode is a DataError naming it; an output folder that cannot be written (a file in its place, a
read-only or full file system) is an OutputError naming it. Everything is written into a hidden
staging folder under ``out`` and moved into place only when the whole pass succeeded
(:func:`animalpose.outputs.staged_folder`): a failure or a kill adds no half-written output.
"""

from __future__ import annotations

import csv
import errno
import json
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import cv2
import numpy as np
import torch

from animalpose.atomic import atomic_path, write_json_atomic
from animalpose.data.flip import flip_permutation_or_none
from animalpose.data.images import check_pixels, header_size, read_image
from animalpose.data.records import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from animalpose.data.transforms import box_to_center_scale, crop_matrix, crop_to_original, warp_image
from animalpose.engine.build import make_codec, pick_device
from animalpose.engine.drawing import draw_pose, joint_colours, legend_panel, legend_width, with_legend
from animalpose.engine.ensemble import SMOOTH_GRID, at_grid_edge, eks_smooth, ensemble_pose, merged_groups
from animalpose.engine.evaluate import load_model
from animalpose.engine.inference import final_heatmaps, flip_shift_for
from animalpose.engine.multiview import MultiviewCorrection
from animalpose.engine.smoothing import SmoothingConfig, smooth_track
from animalpose.errors import ConfigError, DataError
from animalpose.outputs import check_output_dir, output_errors, staged_folder


def collect_inputs(inputs: list[str | Path]) -> tuple[list[Path], list[Path]]:
    """(images, videos) from files and folders (folders: their images and videos, sorted), all checked."""
    images, videos = [], []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
            if not found:
                raise DataError(str(p), "input", "folder holds no images or videos")
        elif p.is_file():
            found = [p]
        else:
            raise DataError(str(p), "input", "no such file or folder")
        for q in found:
            if q.suffix.lower() in VIDEO_SUFFIXES:
                check_video(q)
                videos.append(q)
            elif q.suffix.lower() in IMAGE_SUFFIXES:
                size = header_size(q) if q.is_file() else None
                if size is not None:  # a decompression bomb stops the run before any work
                    check_pixels(q, *size)
                images.append(q)
            else:
                raise DataError(str(q), "input", f"not an image or video ({q.suffix or 'no suffix'})")
    return images, videos


def check_video(path: Path) -> dict:
    """Open ``path`` and decode its first frame; DataError naming it otherwise. Returns fps/size/frames."""
    cap = cv2.VideoCapture(str(path))
    try:
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        if not ok or frame is None:
            raise DataError(str(path), "video", "cannot decode video (no readable first frame)")
        check_pixels(path, frame.shape[1], frame.shape[0])
        return {"fps": cap.get(cv2.CAP_PROP_FPS) or 30.0, "frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
                "width": frame.shape[1], "height": frame.shape[0]}
    finally:
        cap.release()


def load_detections(path: Path | None, min_score: float = 0.0) -> dict[int, list[tuple[float, ...]]] | None:
    """image_id → boxes (x, y, w, h) from a COCO detection results file."""
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text())
        out: dict[int, list[tuple[float, ...]]] = {}
        for i, d in enumerate(data):
            if float(d.get("score", 1.0)) >= min_score and int(d.get("category_id", 1)) == 1:
                x, y, w, h = (float(v) for v in d["bbox"])
                if w <= 0 or h <= 0:
                    raise DataError(str(path), f"[{i}].bbox", f"empty box {d['bbox']}")
                out.setdefault(int(d["image_id"]), []).append((x, y, w, h))
        return out
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(str(path), "detections", f"not a COCO detection results file: {exc}") from exc


def _image_id(path: Path, fallback: int) -> int:
    digits = "".join(ch for ch in path.stem if ch.isdigit())
    return int(digits) if digits and path.stem.isdigit() else fallback


class Predictor:
    """A loaded checkpoint that maps frames and boxes to keypoints in frame pixels."""

    def __init__(self, checkpoint: str | Path, device: str = "auto", flip: bool = True, batch_size: int = 32,
                 multiview: bool = True):
        self.device = pick_device(device)
        self.model, self.schema, self.cfg, self.norm, ckpt = load_model(checkpoint, self.device)
        # a multi-view rig's model mends its predictions with the views' subspace it carries (engine.multiview)
        self.correction = MultiviewCorrection.from_checkpoint(ckpt) if multiview else None
        self.codec = make_codec(self.cfg)
        self.input_size = tuple(self.cfg.data.input_size)
        self.perm = flip_permutation_or_none(self.schema) if flip else None
        self.shift = flip_shift_for(self.cfg.model.name, self.codec)
        self.batch_size = batch_size
        self.padding = self.cfg.data.bbox_padding_real

    @torch.no_grad()
    def __call__(self, crops: list[tuple[np.ndarray, tuple[float, ...] | None]]) -> np.ndarray:
        """[(RGB frame (H, W, 3), box or None for the whole frame)] → (N, K, 3) x, y, likelihood."""
        tensors, mats = [], []
        for frame, box in crops:
            if box is None:
                center, scale = box_to_center_scale((0, 0, frame.shape[1], frame.shape[0]),
                                                    self.input_size[0] / self.input_size[1], padding=1.0)
            else:
                center, scale = box_to_center_scale(box, self.input_size[0] / self.input_size[1], self.padding)
            m = crop_matrix(center, scale, self.input_size, 0.0, self.codec.udp)
            tensors.append(self.norm(warp_image(frame, m, self.input_size)))
            mats.append(m)
        out = []
        for i in range(0, len(tensors), self.batch_size):
            x = torch.stack(tensors[i:i + self.batch_size]).to(self.device)
            hm = final_heatmaps(self.model, x, self.perm, self.shift).cpu()
            coords, maxvals = self.codec.decode(hm)
            orig = crop_to_original(coords, np.stack(mats[i:i + self.batch_size]))
            out.append(np.concatenate([orig, np.clip(maxvals, 0, 1)[..., None]], -1))
        if not out:
            return np.zeros((0, self.schema.num_joints, 3))
        poses = np.concatenate(out)
        return poses if self.correction is None else self.correction.apply(poses)

    def spread(self, crops: list[tuple[np.ndarray, tuple[float, ...] | None]]) -> tuple[np.ndarray, None]:
        """(the poses of :meth:`__call__`, None): one model has no spread."""
        return self(crops), None

    def group_names(self) -> list[list[str]]:
        """The look-alike groups this model's multi-view correction mends ([] when none)."""
        return self.correction.group_names(self.schema) if self.correction is not None else []


class EnsemblePredictor:
    """Checkpoints of one schema predicting the same crops as one model: per keypoint the members' median, and
    their variance (:func:`animalpose.engine.ensemble.ensemble_pose`). Each member crops, flips and mends (a
    rig's multi-view correction) as it would alone."""

    def __init__(self, checkpoints: Sequence[str | Path], device: str = "auto", flip: bool = True,
                 batch_size: int = 32, multiview: bool = True):
        self.members = [Predictor(c, device, flip, batch_size, multiview=multiview) for c in checkpoints]
        first = self.members[0]
        for path, member in zip(checkpoints[1:], self.members[1:], strict=True):
            if member.schema.joints != first.schema.joints:
                raise ConfigError(str(path), "schema.joints", f"predicts {member.schema.name!r} "
                                  f"({member.schema.num_joints} joints: {', '.join(member.schema.joints[:4])}, ...); "
                                  f"the ensemble's first member {checkpoints[0]} predicts {first.schema.name!r} "
                                  f"({first.schema.num_joints} joints: {', '.join(first.schema.joints[:4])}, ...): "
                                  "an ensemble's members must predict the same joints in the same order")
        self.schema, self.cfg = first.schema, first.cfg

    def spread(self, crops: list[tuple[np.ndarray, tuple[float, ...] | None]]) -> tuple[np.ndarray, np.ndarray]:
        """((N, K, 3) median x, y and mean likelihood; (N, K, 2) the members' variance of x and y)."""
        if not crops:
            return np.zeros((0, self.schema.num_joints, 3)), np.zeros((0, self.schema.num_joints, 2))
        return ensemble_pose(np.stack([m(crops) for m in self.members]))

    def __call__(self, crops: list[tuple[np.ndarray, tuple[float, ...] | None]]) -> np.ndarray:
        return self.spread(crops)[0]

    def group_names(self) -> list[list[str]]:
        """Every group some member's multi-view correction mends (each model found its own)."""
        return merged_groups([m.group_names() for m in self.members])


def _frames(video: Path) -> Iterator[tuple[int, np.ndarray]]:
    cap = cv2.VideoCapture(str(video))
    try:
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            yield i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()


# checkpoint names the trainer and the adapters write: they say which epoch or arm, not which model
_GENERIC_STEMS = re.compile(r"^(best|last|final|model|checkpoint|round_\d+|epoch_?\d+)$")


def scorer_name(checkpoint: str | Path, cfg) -> str:
    """The CSV's ``scorer``: which model made the predictions, as DeepLabCut's ``DLC_<net>_<task>...`` does.

    ``animalpose_<model>_<experiment>_<name>``, ``<name>`` the checkpoint's stem, or ``<run folder>-<stem>``
    when the stem is one the trainer writes (``best``, ``last``, ``final``, ``round_2``): a column of ``last``
    says nothing once the CSV leaves its folder. Commas and white space become ``-`` (a CSV cell, a DLC header).

    >>> from types import SimpleNamespace as N
    >>> scorer_name("runs/mouse/adapt_ccssl/final.ckpt",
    ...             N(model=N(name="hourglass1"), tracking=N(experiment="dlc-mirror")))
    'animalpose_hourglass1_dlc-mirror_adapt_ccssl-final'
    """
    path = Path(checkpoint)
    name = path.stem if not _GENERIC_STEMS.match(path.stem) or not path.parent.name else \
        f"{path.parent.name}-{path.stem}"
    parts = ["animalpose", cfg.model.name, cfg.tracking.experiment, name]
    return re.sub(r"[\s,]+", "-", "_".join(str(p) for p in parts if p))


class _Writers:
    """CSV rows and COCO results of one output stem, written atomically at the end."""

    def __init__(self, out: Path, stem: str, schema, individuals: int, scorer: str):
        self.out, self.stem, self.schema, self.individuals, self.scorer = out, stem, schema, individuals, scorer
        self.rows: list[list] = []
        self.results: list[dict] = []

    def add(self, index, image_id: int, poses: np.ndarray, variance: np.ndarray | None = None) -> None:
        """One frame's (n, K, 3) poses; an ensemble's (n, K, 2) ``variance`` adds each result's
        ``ensemble_std`` (per keypoint, the members' RMS distance from their mean point, pixels)."""
        row = [index]
        for n in range(self.individuals):
            if n < len(poses):
                row += [f"{v:.3f}" for v in poses[n].reshape(-1)]
            else:
                row += [""] * (3 * self.schema.num_joints)
        self.rows.append(row)
        for i, p in enumerate(poses):
            result = {"image_id": int(image_id), "category_id": 1,
                      "keypoints": [round(float(v), 3) for v in p.reshape(-1)], "score": float(p[:, 2].mean())}
            if variance is not None:
                std = np.sqrt(np.nan_to_num(variance[i], nan=0.0).sum(-1))
                result["ensemble_std"] = [round(float(v), 3) for v in std]
            self.results.append(result)

    def close(self) -> list[Path]:
        k = self.schema.num_joints
        header = [["scorer"] + [self.scorer] * (3 * k * self.individuals)]
        if self.individuals > 1:
            header.append(["individuals"] + [f"animal{n}" for n in range(self.individuals) for _ in range(3 * k)])
        parts = [j for _ in range(self.individuals) for j in self.schema.joints for _ in range(3)]
        header.append(["bodyparts", *parts])
        header.append(["coords"] + ["x", "y", "likelihood"] * k * self.individuals)
        csv_path = self.out / f"{self.stem}.csv"
        with atomic_path(csv_path) as tmp, tmp.open("w", newline="") as fh:
            csv.writer(fh).writerows(header + self.rows)
        json_path = write_json_atomic(self.out / f"{self.stem}.json", self.results)
        return [csv_path, json_path]


def predict(checkpoint: str | Path | Sequence[str | Path], inputs: list[str | Path], out: str | Path, *,
            detections: str | Path | None = None,
            min_score: float = 0.0, device: str = "auto", flip: bool = True, batch_size: int = 32,
            video_scale: float = 1.0, write_video: bool = True, progress: bool = True,
            smoothing: SmoothingConfig | None = None, multiview: bool = True) -> dict:
    """Predict keypoints on ``inputs`` and write CSV, COCO JSON and labelled media to ``out``.

    Args:
        checkpoint: one checkpoint, or several of one schema: an ensemble (:class:`EnsemblePredictor`), whose
            median is written and whose spread each COCO result gives (``ensemble_std``).
        video_scale: size of the labelled video relative to the input frames.
        smoothing: how to smooth each video's tracks (None or method "none": raw predictions only); ``eks``
            (Lightning Pose's ensemble Kalman smoother) needs an ensemble.
        multiview: mend the predictions with the views' subspace of a multi-view model
            (:mod:`animalpose.engine.multiview`; no effect for other models).

    Returns:
        ``{"outputs": [paths], "frames": n, "fps": frames per second of the whole pass, "multiview_groups":
        [[body part, ...], ...] (the look-alike groups mended in every prediction; [] when none are),
        "ensemble": members}``, and with ``eks`` ``"eks_smoothing": {video stem: {keypoint: s}}`` (each
        keypoint's smoothing parameter, chosen by its likelihood unless given).
    """
    checkpoints = [checkpoint] if isinstance(checkpoint, str | Path) else list(checkpoint)
    if not checkpoints:
        raise ConfigError("--checkpoint", "checkpoint", "no checkpoint given")
    if smoothing is not None and smoothing.method == "eks" and len(checkpoints) < 2:
        raise ConfigError(str(checkpoints[0]), "--smooth", "eks smooths an ensemble's track by the members' "
                          "spread: give --checkpoint two or more times (models of different seeds)")
    images, videos = collect_inputs(list(inputs))
    dets = load_detections(Path(detections), min_score) if detections else None
    if smoothing is not None and smoothing.method != "none" and dets and videos:
        crowded = next((i for i, boxes in sorted(dets.items()) if len(boxes) > 1), None)
        if crowded is not None:
            raise DataError(str(detections), "bbox", f"--smooth {smoothing.method} follows one animal per frame; "
                            f"image_id {crowded} has {len(dets[crowded])} boxes (no identity tracking)")
    out = check_output_dir(out, "--out", create=False)
    if len(checkpoints) > 1:
        predictor: Predictor | EnsemblePredictor = EnsemblePredictor(checkpoints, device, flip, batch_size,
                                                                     multiview=multiview)
        scorer = f"{scorer_name(checkpoints[0], predictor.cfg)}_ensemble-of-{len(checkpoints)}"
    else:
        predictor = Predictor(checkpoints[0], device, flip, batch_size, multiview=multiview)
        scorer = scorer_name(checkpoints[0], predictor.cfg)
    with output_errors(out, "--out"), staged_folder(out, "predict") as stage:
        result = _predict_into(stage, predictor, images, videos, dets, scorer=scorer, video_scale=video_scale,
                               write_video=write_video, batch_size=batch_size, progress=progress,
                               smoothing=smoothing)
    result["outputs"] = [str(out / Path(p).relative_to(stage)) for p in result["outputs"]]
    result["multiview_groups"] = predictor.group_names()
    result["ensemble"] = len(checkpoints)
    return result


def _predict_into(out: Path, predictor: Predictor | EnsemblePredictor, images: list[Path], videos: list[Path], dets,
                  *, scorer: str, video_scale: float, write_video: bool, batch_size: int, progress: bool,
                  smoothing: SmoothingConfig | None = None) -> dict:
    """The prediction pass of :func:`predict`, writing into ``out`` (the staging folder)."""
    schema = predictor.schema
    outputs: list[Path] = []
    t0, n_frames = time.perf_counter(), 0
    bar = None
    if progress:
        from animalpose.progress import progress_bar

        total = len(images) + sum(max(0, check_video(v)["frames"]) for v in videos)
        bar = progress_bar(total=total, desc="predict", unit="frame")

    done = [0]

    def tick(n: int = 1) -> None:
        done[0] += n
        if bar is not None:
            bar.set_postfix(fps=f"{done[0] / max(time.perf_counter() - t0, 1e-9):.1f}", refresh=False)
            bar.update(n)

    individuals = max((len(b) for b in dets.values()), default=1) if dets else 1
    colours = joint_colours(schema.num_joints)
    if images:
        w = _Writers(out, "images", schema, individuals, scorer)
        (out / "labelled").mkdir(exist_ok=True)
        for i, path in enumerate(images):
            frame = read_image(path)
            image_id = _image_id(path, i + 1)
            boxes = dets.get(image_id, []) if dets is not None else [None]
            poses, var = predictor.spread([(frame, b) for b in boxes])
            w.add(str(path), image_id, poses, var)
            canvas = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            for p in poses:
                draw_pose(canvas, p, schema.skeleton, colours=colours)
            canvas = with_legend(canvas, schema.joints, colours)
            png = out / "labelled" / f"{path.stem}.png"
            if not cv2.imwrite(str(png), canvas):  # OpenCV reports a failed write only by its return value
                raise OSError(errno.EIO, "cv2.imwrite failed", str(png))
            n_frames += 1
            tick()
        outputs += w.close()
    eks_report: dict[str, dict[str, float]] = {}
    for video in videos:
        if smoothing is not None and smoothing.method != "none":
            written, n = _predict_video_smoothed(predictor, video, out, dets, scorer, video_scale, write_video,
                                                 batch_size, tick, smoothing, eks_report)
        else:
            written, n = _predict_video(predictor, video, out, dets, individuals, scorer, video_scale, write_video,
                                        batch_size, tick)
        outputs += written
        n_frames += n
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    result = {"outputs": [str(p) for p in outputs], "frames": n_frames, "seconds": seconds,
              "fps": n_frames / max(seconds, 1e-9)}
    if smoothing is not None and smoothing.method == "eks":
        result["eks_smoothing"] = eks_report
    return result


def _predict_video(predictor: Predictor | EnsemblePredictor, video: Path, out: Path, dets, individuals: int,
                   scorer: str, video_scale: float, write_video: bool, batch_size: int, tick) -> tuple[list[Path], int]:
    """One video, streamed in batches of frames: CSV + JSON (+ labelled MP4). Returns (paths, frames)."""
    schema = predictor.schema
    w = _Writers(out, video.stem, schema, individuals, scorer)
    n = 0
    with ExitStack() as stack:
        draw = _labelled_video(stack, video, out, schema, video_scale) if write_video else None
        for pending in _batches(_frames(video), batch_size):
            for (idx, frame), (mine, var) in zip(pending, _predict_frames(predictor, pending, dets), strict=True):
                w.add(idx, idx, mine, var)
                if draw is not None:
                    draw(frame, mine)
            n += len(pending)
            tick(len(pending))
    paths = [out / f"{video.stem}_labelled.mp4"] if write_video else []
    return paths + w.close(), n


def _predict_frames(predictor: Predictor | EnsemblePredictor, pending: list[tuple[int, np.ndarray]],
                    dets) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The (n_i, K, 3) poses of each frame of a batch ``[(index, RGB frame)]`` (n_i: its boxes, 1 without
    detections), each with an ensemble's (n_i, K, 2) variance (None for one model)."""
    crops, owners = [], []
    for idx, frame in pending:
        boxes = dets.get(idx, []) if dets is not None else [None]
        crops += [(frame, b) for b in boxes]
        owners += [idx] * len(boxes)
    poses, var = predictor.spread(crops)
    owners_arr = np.asarray(owners, dtype=int)
    return [(poses[owners_arr == idx], None if var is None else var[owners_arr == idx]) for idx, _ in pending]


def _labelled_video(stack: ExitStack, video: Path, out: Path, schema, video_scale: float):
    """A ``draw(RGB frame, poses)`` that appends the frame, poses drawn, to ``<stem>_labelled.mp4``; on the
    stack's exit the MP4 writer is released and its temporary file renamed into place."""
    info = check_video(video)
    size = (round(info["width"] * video_scale), round(info["height"] * video_scale))
    mp4 = out / f"{video.stem}_labelled.mp4"
    tmp_mp4 = stack.enter_context(atomic_path(mp4))
    colours = joint_colours(schema.num_joints)
    # the frame and the legend's panel beside it (drawn once), widened to an even total (mp4v drops an odd column)
    width = legend_width(size[1], schema.joints)
    panel = legend_panel(size[1], schema.joints, colours, width + (size[0] + width) % 2)
    framed = (size[0] + panel.shape[1], size[1])
    writer = cv2.VideoWriter(str(tmp_mp4), cv2.VideoWriter_fourcc(*"mp4v"), info["fps"], framed)
    stack.callback(writer.release)
    if not writer.isOpened():
        raise DataError(str(mp4), "video", "cannot open an MP4 writer (mp4v codec)")

    def draw(frame: np.ndarray, poses: np.ndarray) -> None:
        canvas = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        if video_scale != 1.0:
            canvas = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
        for p in poses:
            draw_pose(canvas, p, schema.skeleton, video_scale, colours)
        writer.write(np.hstack([canvas, panel]))

    return draw


def _predict_video_smoothed(predictor: Predictor | EnsemblePredictor, video: Path, out: Path, dets, scorer: str,
                            video_scale: float, write_video: bool, batch_size: int, tick,
                            smoothing: SmoothingConfig, eks_report: dict) -> tuple[list[Path], int]:
    """One video, smoothed: every frame predicted first, the track smoothed (:func:`smooth_track`, or for
    ``eks`` :func:`animalpose.engine.ensemble.eks_smooth` with the ensemble's variance, its keypoints' smoothing
    parameters put in ``eks_report[stem]``), then ``<stem>.csv/.json`` (raw), ``<stem>_filtered.csv/.json`` and
    the MP4 of the smoothed track (a second decoding pass). One animal per frame; a frame without a box has no
    pose in either table."""
    schema = predictor.schema
    per_frame: list[tuple[np.ndarray, np.ndarray | None]] = []
    for pending in _batches(_frames(video), batch_size):
        per_frame += _predict_frames(predictor, pending, dets)
        tick(len(pending))
    track = np.full((len(per_frame), schema.num_joints, 3), np.nan)
    spread = np.full((len(per_frame), schema.num_joints, 2), np.nan)
    for i, (p, var) in enumerate(per_frame):
        if len(p):
            track[i] = p[0]
            if var is not None:
                spread[i] = var[0]
    if smoothing.method == "eks":
        smooth, s = eks_smooth(track, spread, smoothing.eks_smooth, smoothing.eks_min_std, smoothing.min_confidence)
        eks_report[video.stem] = {j: float(v) for j, v in zip(schema.joints, s, strict=True) if np.isfinite(v)}
        if smoothing.eks_smooth is None:
            edge = at_grid_edge(eks_report[video.stem])
            if edge:  # the likelihood wanted a value beyond the grid: say so rather than clip silently
                print(f"warning: {video.name}: eks chose a smoothing parameter at the edge of its grid "
                      f"({SMOOTH_GRID[0]:g}..{SMOOTH_GRID[-1]:g}) for {', '.join(edge)}; --eks-smooth sets it",
                      file=sys.stderr, flush=True)
    else:
        smooth = smooth_track(track, smoothing)
    raw = _Writers(out, video.stem, schema, 1, scorer)
    filtered = _Writers(out, f"{video.stem}_filtered", schema, 1, scorer)
    for i, (p, var) in enumerate(per_frame):
        raw.add(i, i, p, var)
        filtered.add(i, i, smooth[i:i + 1] if len(p) else p)
    paths: list[Path] = []
    if write_video:
        with ExitStack() as stack:
            draw = _labelled_video(stack, video, out, schema, video_scale)
            for idx, frame in _frames(video):
                draw(frame, smooth[idx:idx + 1] if idx < len(per_frame) and len(per_frame[idx][0]) else smooth[:0])
        paths.append(out / f"{video.stem}_labelled.mp4")
    return paths + raw.close() + filtered.close(), len(per_frame)


def _batches(items, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
