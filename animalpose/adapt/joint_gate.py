"""The joint gate: a keypoint whose labelled-frame error the rounds have made worse gets no more pseudo-labels.

CC-SSL's rounds teach every joint from the same unlabelled video, and a joint can be taught wrong while others are
taught right. On mirror-mouse (BENCHMARKS.md, "Presence floors" and "A shifted crop, the pseudo-label's point, and
a per-joint gate") the student puts the bottom view's nose about 12 px left of its label (the video is another
session of a head-fixed mouse, and the views' averaged labels of that nose sit 12-14 px left even on labelled
frames): on the lab's labelled frames that nose gets worse (val 6.3 -> 10.4 px, the mean over 3 seeds) while the top
view's paws get better (18.0 -> 11.6 px). The whole-model rule that keeps the
better of adapted and control on validation (:mod:`animalpose.adapt.control`) sees only the sum of the two.

The gate looks at each joint: before round 1 the source model labels the calibration frames (``ccssl.
calibration_data``, default ``data.val``; labelled frames the rounds do not train on) with the round's consistency
views, and each joint's mean error there (original pixels) is its reference. Before each later round the current
model does the same; a joint whose error has risen above ``reference * (1 + tolerance)`` and by at least
``min_pixels`` is shut: its pseudo-labels are not eligible in this round or any later one (a shut joint stays
shut, so the rounds cannot oscillate on one joint's noise). The labelled frames still train it. A joint with fewer
than ``min_instances`` labelled calibration instances is not judged (too few to tell a rise from noise).

The keep-the-better rule of DeepLabCut-style model selection, made per keypoint and applied between rounds; it
uses the lab's labelled val frames, so a val figure of a gated run is not an unbiased estimate: report test.
"""

from __future__ import annotations

import numpy as np

from animalpose.evaluation import pixel_errors


def joint_errors(pred_xy: np.ndarray, truth: np.ndarray, min_instances: int = 3) -> np.ndarray:
    """Each joint's mean Euclidean error over the instances that label it.

    Args:
        pred_xy: (N, K, 2) predictions, original pixels.
        truth: (N, K, 3) labels (visibility 0: not labelled).
        min_instances: a joint labelled in fewer instances gets NaN (not judged).

    Returns:
        (K,) float64 mean errors, NaN where a joint has fewer than ``min_instances`` labelled instances.
    """
    pred_xy, truth = np.asarray(pred_xy, np.float64), np.asarray(truth, np.float64)
    if pred_xy.ndim != 3 or pred_xy.shape[-1] < 2 or truth.shape[:2] != pred_xy.shape[:2] or truth.shape[-1] != 3:
        raise ValueError(f"pred_xy (N, K, 2) and truth (N, K, 3) must match, got {pred_xy.shape} and {truth.shape}")
    count = (truth[..., 2] > 0).sum(axis=0)
    if not count.any():  # pixel_errors refuses a set without labels; here it only means nothing to judge
        return np.full(count.shape, np.nan)
    return np.where(count >= max(min_instances, 1), pixel_errors(pred_xy, truth).per_joint_mean, np.nan)


def worsened(errors: np.ndarray, reference: np.ndarray, tolerance: float, min_pixels: float) -> np.ndarray:
    """(K,) bool: joints whose error rose above ``reference * (1 + tolerance)`` and by at least ``min_pixels``
    (a joint with no reference or no current error, NaN, is never shut)."""
    errors, reference = np.asarray(errors, np.float64), np.asarray(reference, np.float64)
    if errors.shape != reference.shape:
        raise ValueError(f"errors {errors.shape} and reference {reference.shape} must match")
    with np.errstate(invalid="ignore"):
        return (errors > reference * (1.0 + tolerance)) & (errors - reference >= min_pixels)
