"""How good a round's pseudo-labels are, measured where the truth is known: the lab's labelled calibration frames.

A CC-SSL round labels the unlabelled video with the current model and its consistency views; nothing on those
frames says whether the labels are right. The labelled calibration frames (``ccssl.calibration_data``, default
``data.val``), labelled by the same model, views and view assignment in the same round, do: their labels' error is
the closest measure a lab has of what the round is about to teach. Two things matter and the report gives both:

- the **error** of each joint's labels (mean Euclidean distance to the label, original pixels), over all labelled
  instances and over those as confident as the round's kept pseudo-labels (the selection's confidence threshold;
  the other rules, which read the video's tracks, cannot be applied to single labelled frames);
- their **bias**: each joint's mean signed offset (dx, dy). Random errors of many pseudo-labels partly average out
  in the student; a bias does not, and the student learns it. On mirror-mouse the views' averaged labels of the
  bottom nose sat 11.7-13.7 px left of its labels (BENCHMARKS.md, "A shifted crop, the pseudo-label's point, and a
  per-joint gate"), which no summary figure of the run showed until this report.

Measured on the frames the rules calibrate on, so it says how the labels behave there, not how the student will do
on held-out frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from animalpose.evaluation import pixel_errors


def label_report(xy: np.ndarray, truth: np.ndarray, confidence: np.ndarray, threshold: float,
                 joints: Sequence[str]) -> dict:
    """The pseudo-labels ``xy`` of labelled frames against their labels.

    Args:
        xy: (N, K, 2) pseudo-labels, original pixels.
        truth: (N, K, 3) labels in the same pixels (visibility 0: not labelled).
        confidence: (N, K) the labels' confidence, on the scale of ``threshold``.
        threshold: the round's selection threshold (a label at or above it is "confident"); NaN: none.
        joints: the K joint names.

    Returns:
        ``label_px`` / ``label_px_median`` over every labelled instance, ``label_px_confident`` and
        ``confident_share`` (the instances at or above ``threshold``; NaN / 0 when none is), ``label_instances``,
        and per joint (None where a joint is never labelled) ``label_px_per_joint`` and ``label_bias_px``
        ([dx, dy], the mean signed offset pseudo-label − label).

    Raises:
        ValueError: shapes that do not match, or no labelled joint at all.
    """
    xy, truth = np.asarray(xy, np.float64), np.asarray(truth, np.float64)
    confidence = np.asarray(confidence, np.float64)
    n, k = truth.shape[:2]
    if xy.shape != (n, k, 2) or truth.shape != (n, k, 3) or confidence.shape != (n, k) or len(joints) != k:
        raise ValueError(f"xy (N, K, 2) {xy.shape}, truth (N, K, 3) {truth.shape}, confidence (N, K) "
                         f"{confidence.shape} and {len(joints)} joint names must match")
    err = pixel_errors(xy, truth)  # refuses a set with no labelled joint
    labelled = truth[..., 2] > 0
    confident = labelled & (confidence >= threshold) if np.isfinite(threshold) else np.zeros_like(labelled)
    offset = xy - truth[..., :2]
    dist = np.linalg.norm(offset, axis=-1)
    per_joint, bias = {}, {}
    for j, name in enumerate(joints):
        m = labelled[:, j]
        per_joint[name] = round(float(err.per_joint_mean[j]), 3) if m.any() else None
        bias[name] = [round(float(v), 3) for v in offset[m, j].mean(0)] if m.any() else None
    return {
        "label_px": err.mean, "label_px_median": err.median, "label_instances": err.count,
        "label_px_confident": float(dist[confident].mean()) if confident.any() else float("nan"),
        "confident_share": float(confident.sum() / labelled.sum()),
        "label_px_per_joint": per_joint, "label_bias_px": bias,
    }


def most_biased(report: dict, count: int = 3, min_pixels: float = 2.0) -> list[tuple[str, float, float]]:
    """The ``count`` joints of a :func:`label_report` with the largest bias of at least ``min_pixels``, largest
    first: ``(name, dx, dy)``."""
    rows = [(name, *b) for name, b in report["label_bias_px"].items() if b is not None]
    rows = [r for r in rows if np.hypot(r[1], r[2]) >= min_pixels]
    return sorted(rows, key=lambda r: -np.hypot(r[1], r[2]))[:count]


def describe(report: dict, frames: int) -> str:
    """One console line: the labels' error on the ``frames`` calibration frames and the most biased joints."""
    text = (f"the {frames} calibration frames' pseudo-labels are {report['label_px']:.2f} px from their labels "
            f"(median {report['label_px_median']:.2f})")
    if np.isfinite(report["label_px_confident"]):
        text += f", {report['label_px_confident']:.2f} px where as confident as the kept ones"
    biased = most_biased(report)
    if biased:
        text += "; biased: " + ", ".join(f"{n} ({dx:+.1f}, {dy:+.1f}) px" for n, dx, dy in biased)
    return text
