"""Pose metrics: PCK (crop and bbox normalisation), the reference's batch-averaged PCK, PCKh and OKS AP/AR.

PCK@α, ``crop`` normalisation (the CC-SSL definition, Mu et al., "Learning from Synthetic Animals",
CVPR 2020, evaluation code inherited from pytorch-pose): the predicted joint is the argmax of the
predicted heatmap, the ground truth the argmax of the ground-truth heatmap; a joint is correct when
their distance is at most α × the heatmap width (α = 0.05 on a 64-px heatmap of a 256-px input is
3.2 heatmap px = 12.8 input px). Joints whose ground-truth map is empty (maximum ≤ 0) are excluded.
This pooled number (every valid joint of every image counted once) is our headline.

The reference's own number (:func:`pck_batch_averaged`, :class:`ReferencePCKMeter`, rules and line
citations in :mod:`animalpose.evaluation_reference`) differs from it in four rules: it counts
``dist / (W / 10) < 0.5`` (strict, where ours is ``<=``), sets the prediction of a map whose maximum
is ≤ 0 to (0, 0) (ours keeps its argmax), drops a joint whose ground-truth argmax is in the first row
or column (ours keeps it), and averages per batch (per joint over the batch, then over joints, then
over batches weighted by their size), so it depends on the batch size and the sample order. On
ordinary predictions the two agree closely; only the reference mode is set beside published numbers.

PCK@α, ``bbox`` normalisation: distance in the original image at most α × the longer side of the
box around the labelled ground-truth keypoints of that instance.

PCKh@0.5 (Andriluka et al., CVPR 2014): threshold 0.5 × head size, head size = 0.6 × the diagonal of
the head box. Where no head box is known the stated fallback is the head-top–upper-neck distance.

OKS AP/AR: pycocotools ``COCOeval`` with iouType ``keypoints`` and the schema's sigmas.

Gap recovery (:func:`gap_recovery`): the share of the gap between a baseline and an oracle that an
adapted model closes, the headline ratio of both adaptation methods' tables.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from animalpose.data.records import PoseRecord
from animalpose.errors import DataError
from animalpose.evaluation_reference import (  # noqa: F401 - the reference mode, importable from here too
    ReferencePCKMeter,
    pck_batch_averaged,
    reference_distances,
)
from animalpose.keypoints import KeypointSchema

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")


@dataclass
class PCKResult:
    """Counts behind a PCK number.

    Attributes:
        alpha: the threshold factor.
        correct: (K,) number of valid joints within the threshold.
        total: (K,) number of valid (evaluated) joints.
    """

    alpha: float
    correct: np.ndarray
    total: np.ndarray

    @property
    def per_joint(self) -> np.ndarray:
        """(K,) fraction correct per joint; NaN for joints never evaluated."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.total > 0, self.correct / np.maximum(self.total, 1), np.nan)

    @property
    def mean(self) -> float:
        """Pooled over all valid joints of all instances; NaN when nothing was evaluated."""
        t = self.total.sum()
        return float(self.correct.sum() / t) if t > 0 else float("nan")

    @property
    def joint_mean(self) -> float:
        """Mean of the per-joint fractions (joints never evaluated skipped)."""
        pj = self.per_joint
        return float(np.nanmean(pj)) if np.isfinite(pj).any() else float("nan")

    def __add__(self, other: PCKResult) -> PCKResult:
        if other.alpha != self.alpha:
            raise ValueError("cannot add PCK results at different thresholds")
        return PCKResult(self.alpha, self.correct + other.correct, self.total + other.total)


def heatmap_argmax(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer argmax of each map.

    Args:
        heatmaps: (N, K, H, W).

    Returns:
        coords (N, K, 2) float x, y in heatmap pixels (0-based), and maxvals (N, K).
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be (N, K, H, W), got {hm.shape}")
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, h * w)
    idx = flat.argmax(-1)
    maxvals = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    coords = np.stack([idx % w, idx // w], -1).astype(np.float32)
    return coords, maxvals


def crop_distances(pred_heatmaps: np.ndarray, gt_heatmaps: np.ndarray) -> np.ndarray:
    """Argmax distances divided by the heatmap width, NaN where the ground-truth map is empty.

    Args:
        pred_heatmaps, gt_heatmaps: (N, K, H, W).

    Returns:
        (N, K) normalised distances.
    """
    pred_heatmaps = np.asarray(pred_heatmaps)
    gt_heatmaps = np.asarray(gt_heatmaps)
    if pred_heatmaps.shape != gt_heatmaps.shape:
        raise ValueError(f"heatmap shapes differ: {pred_heatmaps.shape} vs {gt_heatmaps.shape}")
    p, _ = heatmap_argmax(pred_heatmaps)
    g, gmax = heatmap_argmax(gt_heatmaps)
    d = np.linalg.norm(p - g, axis=-1) / pred_heatmaps.shape[-1]
    d[gmax <= 0] = np.nan
    return d


def pck_from_distances(distances: np.ndarray, alpha: float) -> PCKResult:
    """PCK counts from (N, K) normalised distances (NaN = not evaluated)."""
    d = np.asarray(distances, dtype=np.float64)
    valid = np.isfinite(d)
    correct = (valid & (np.where(valid, d, np.inf) <= alpha + 1e-9)).sum(0)
    return PCKResult(float(alpha), correct.astype(np.int64), valid.sum(0).astype(np.int64))


def pck_crop(pred_heatmaps: np.ndarray, gt_heatmaps: np.ndarray, alpha: float = 0.05) -> PCKResult:
    """PCK@α with crop normalisation (CC-SSL), pooled: argmax vs ground-truth argmax, ≤ α × heatmap width."""
    return pck_from_distances(crop_distances(pred_heatmaps, gt_heatmaps), alpha)


def bbox_normalisers(gt_keypoints: np.ndarray, boxes: np.ndarray | None = None) -> np.ndarray:
    """Longer side of the labelled-keypoint box per instance; the instance box where that is degenerate.

    Args:
        gt_keypoints: (N, K, 3) x, y, visibility.
        boxes: optional (N, 4) x, y, w, h used when fewer than two distinct keypoints are labelled.

    Returns:
        (N,) normalisers in pixels; NaN where neither gives a positive size.
    """
    gt = np.asarray(gt_keypoints, dtype=np.float64)
    out = np.full(len(gt), np.nan)
    for i, inst in enumerate(gt):
        pts = inst[inst[:, 2] > 0, :2]
        if len(pts):
            size = float((pts.max(0) - pts.min(0)).max())
            if size > 0:
                out[i] = size
                continue
        if boxes is not None:
            size = float(max(boxes[i][2], boxes[i][3]))
            if size > 0:
                out[i] = size
    return out


def pck_bbox(pred_keypoints: np.ndarray, gt_keypoints: np.ndarray, alpha: float = 0.05,
             boxes: np.ndarray | None = None, normalisers: np.ndarray | None = None) -> PCKResult:
    """PCK@α with bbox normalisation, in original-image pixels.

    Args:
        pred_keypoints: (N, K, 2+) predicted x, y.
        gt_keypoints: (N, K, 3) ground truth; joints with visibility 0 are excluded.
        boxes: optional (N, 4) fallback boxes (see :func:`bbox_normalisers`).
        normalisers: optional (N,) sizes to use instead (e.g. from labels of joints not scored here).
    """
    pred = np.asarray(pred_keypoints, dtype=np.float64)[..., :2]
    gt = np.asarray(gt_keypoints, dtype=np.float64)
    norm = bbox_normalisers(gt, boxes) if normalisers is None else np.asarray(normalisers, dtype=np.float64)
    d = np.linalg.norm(pred - gt[..., :2], axis=-1) / norm[:, None]
    d[gt[..., 2] <= 0] = np.nan
    return pck_from_distances(d, alpha)


def head_sizes(records: Sequence[PoseRecord], schema: KeypointSchema) -> tuple[np.ndarray, str]:
    """Head size per record for PCKh, and which definition was used.

    ``meta["head_box"]`` (x1, y1, x2, y2) gives 0.6 × its diagonal (the MPII definition); otherwise
    the fallback is the distance between the ``head_top`` and ``upper_neck`` joints when both are
    labelled. Records with neither are NaN (excluded).
    """
    sizes = np.full(len(records), np.nan)
    used = set()
    try:
        top, neck = schema.index("head_top"), schema.index("upper_neck")
    except KeyError:
        top = neck = None
    for i, r in enumerate(records):
        box = r.meta.get("head_box") if r.meta else None
        if box is not None:
            x1, y1, x2, y2 = (float(v) for v in box)
            sizes[i] = 0.6 * float(np.hypot(x2 - x1, y2 - y1))
            used.add("head_box")
        elif top is not None and r.keypoints[top, 2] > 0 and r.keypoints[neck, 2] > 0:
            sizes[i] = float(np.linalg.norm(r.keypoints[top, :2] - r.keypoints[neck, :2]))
            used.add("head_top-upper_neck")
    sizes[sizes <= 0] = np.nan
    return sizes, "+".join(sorted(used)) or "none"


def pckh(pred_keypoints: np.ndarray, gt_keypoints: np.ndarray, head_size: np.ndarray,
         alpha: float = 0.5) -> PCKResult:
    """PCKh@α: correct when the distance is at most α × head size (N,); visibility-0 joints excluded."""
    pred = np.asarray(pred_keypoints, dtype=np.float64)[..., :2]
    gt = np.asarray(gt_keypoints, dtype=np.float64)
    d = np.linalg.norm(pred - gt[..., :2], axis=-1) / np.asarray(head_size, dtype=np.float64)[:, None]
    d[gt[..., 2] <= 0] = np.nan
    return pck_from_distances(d, alpha)


def pck_curve(distances: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """Pooled PCK at each α: (len(alphas),)."""
    return np.array([pck_from_distances(distances, a).mean for a in alphas])


def _area(record: PoseRecord) -> float:
    if record.meta and "area" in record.meta:
        return float(record.meta["area"])
    box = record.bbox or record.keypoint_box()
    return float(box[2] * box[3]) if box is not None else 0.0


def oks_ap(gt_records: Sequence[PoseRecord], predictions: Sequence[dict], schema: KeypointSchema,
           source: str = "<predictions>") -> dict[str, float]:
    """COCO keypoint AP/AR through pycocotools with the schema's OKS sigmas.

    Args:
        gt_records: ground-truth instances; each needs ``image_id`` (or gets one per distinct image).
        predictions: COCO results dicts: ``image_id``, ``keypoints`` (flat K×3 list x, y, score)
            and ``score``; ``category_id`` is set to 1.
        schema: provides the sigmas; a schema without sigmas is an error.
        source: named in errors.

    Returns:
        The ten COCO statistics by name (AP, AP50, AP75, AP_M, AP_L, AR, AR50, AR75, AR_M, AR_L).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    sigmas = schema.sigmas_array()
    if sigmas is None:
        raise DataError(source, "schema.sigmas", f"schema {schema.name!r} publishes no OKS sigmas")
    image_ids: dict[str, int] = {}
    seen: set[int] = set()
    images, anns = [], []
    for n, r in enumerate(gt_records):
        if r.num_joints != schema.num_joints:
            raise DataError(r.image, "keypoints", f"{r.num_joints} joints, schema {schema.name} has "
                                                  f"{schema.num_joints}")
        img_id = r.image_id if r.image_id is not None else image_ids.setdefault(
            f"{r.image}#{r.frame_index}", len(image_ids) + 1)
        if img_id not in seen:
            seen.add(img_id)
            images.append({"id": int(img_id)})
        kp = r.keypoints.copy()
        kp[kp[:, 2] <= 0] = 0
        box = r.bbox or r.keypoint_box() or (0.0, 0.0, 0.0, 0.0)
        anns.append({
            "id": n + 1, "image_id": int(img_id), "category_id": 1, "iscrowd": int(r.meta.get("iscrowd", 0)),
            "keypoints": kp.reshape(-1).tolist(), "num_keypoints": int((kp[:, 2] > 0).sum()),
            "area": _area(r), "bbox": [float(v) for v in box],
        })
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": schema.name}]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    if not predictions:
        return dict.fromkeys(COCO_STAT_NAMES, 0.0)
    dets = []
    for p in predictions:
        kp = np.asarray(p["keypoints"], dtype=np.float64).reshape(-1)
        if kp.size != 3 * schema.num_joints:
            raise DataError(source, "keypoints", f"prediction has {kp.size // 3} joints, expected "
                                                 f"{schema.num_joints}")
        dets.append({"image_id": int(p["image_id"]), "category_id": 1, "keypoints": kp.tolist(),
                     "score": float(p.get("score", 1.0))})
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = sigmas
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(COCO_STAT_NAMES, ev.stats, strict=True)}


def gap_recovery(baseline: float, adapted: float, oracle: float | None) -> float | None:
    """(adapted − baseline) / (oracle − baseline): 1 closes the whole gap, 0 none, < 0 falls below the baseline.

    Undefined (None) without an oracle (None or not finite) or without a gap (oracle − baseline ≤ 1e-9):
    a ratio over no gap would be noise or infinite. The baseline is the source-only model of CC-SSL, the
    few-labelled-animals model of WS-CDA.
    """
    if oracle is None or not math.isfinite(oracle) or oracle - baseline <= 1e-9:
        return None
    return (adapted - baseline) / (oracle - baseline)


@dataclass
class PixelError:
    """Euclidean keypoint error in original-image pixels over the labelled joints (visibility > 0), the
    figures DeepLabCut and Lightning Pose lead with: ``mean``, ``median``, ``rmse`` (root of the mean
    squared distance) over all labelled joints; ``per_joint_mean`` (K,), NaN for a joint never labelled."""

    mean: float
    median: float
    rmse: float
    per_joint_mean: np.ndarray
    count: int


def pixel_errors(pred_keypoints: np.ndarray, gt_keypoints: np.ndarray) -> PixelError:
    """Pixel errors of predictions against labels, both (N, K, 2+) in the same (original) pixels.

    Raises ValueError when no joint is labelled."""
    pred = np.asarray(pred_keypoints, dtype=np.float64)
    gt = np.asarray(gt_keypoints, dtype=np.float64)
    err = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1)  # (N, K)
    valid = gt[..., 2] > 0
    if not valid.any():
        raise ValueError("no labelled joint to measure a pixel error on")
    e = err[valid]
    counts = valid.sum(0)
    per_joint = np.where(counts > 0, np.where(valid, err, 0.0).sum(0) / np.maximum(counts, 1), np.nan)
    return PixelError(float(e.mean()), float(np.median(e)), float(np.sqrt((e ** 2).mean())), per_joint, int(e.size))


def per_joint_table(schema: KeypointSchema, values: np.ndarray) -> dict[str, float]:
    """Joint name → value (NaN kept as None-friendly float)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) != schema.num_joints:
        raise ValueError(f"{len(values)} values for {schema.num_joints} joints")
    return {j: float(v) for j, v in zip(schema.joints, values, strict=True)}


def format_table(rows: dict[str, float], title: str = "per joint") -> str:
    """A plain text table, one joint per line, values as percentages."""
    width = max([len(k) for k in rows] + [len(title)])
    lines = [f"{title:<{width}}  value"]
    for k, v in rows.items():
        lines.append(f"{k:<{width}}  {'   n/a' if not np.isfinite(v) else f'{100 * v:6.2f}'}")
    return "\n".join(lines)
