"""Presence floors: a pseudo-label is dropped where its joint is probably not in the frame.

A lab's labels leave a keypoint empty where it is not in view (an obstacle that has not come round yet, a nose
outside the frame), and the visibility-weighted heatmap loss (the reference's ``JointsMSELoss``, like
DeepLabCut's, mmpose's and Lightning Pose's) never trains on those: the model learns where a keypoint is, never
that it is absent, so on a frame without it the heatmap still has a maximum, somewhere. The consistency checks do
not catch that maximum when it is stable (an image edge is as stable under augmentation as a paw), and a rule that
keeps every checked joint (``keep_fractions: [1, ...]``) teaches the student the absent keypoint at that place,
round after round, with rising confidence.

On mirror-mouse (BENCHMARKS.md, "Presence floors") the obstacle markers are in 36 of the 50 training frames and
hardly ever in the unlabelled video, and the top view's nose is mostly out of the video's frame; the 180-epoch
supervised models' heatmap peak is at least 0.75 on nine in ten labelled obstacles and at most 0.44 on nine in ten
frames without one, and 0.05-0.19 (median) on the video; yet the template kept 43-94 % of the video's obstacle
pseudo-labels by round 3, and the adapted model's error on the test frames' obstacles doubled.

The floor of a joint is a low quantile of the model's confidence on the *labelled, present* instances of that joint
in labelled frames it did not train on (``ccssl.calibration_data``, default ``data.val``), scored by the same
consistency check as the target: a pseudo-label less confident than nearly every real instance of its keypoint is
more likely an absent one. This is DeepLabCut's likelihood cut-off (``pcutoff``, one number for every keypoint)
made per keypoint and read off the lab's own labelled frames instead of chosen by hand.
"""

from __future__ import annotations

import numpy as np


def presence_floors(confidence: np.ndarray, labelled: np.ndarray, quantile: float) -> np.ndarray:
    """Each joint's floor: the ``quantile`` of its confidence over the frames that label it.

    Args:
        confidence: (N, K) the model's confidence on labelled frames (the consistency check's, as on the target).
        labelled: (N, K) bool, the joint is labelled (present) in the frame.
        quantile: in [0, 1); 0 is the least confident labelled instance (linear interpolation between
            instances, NumPy's default).

    Returns:
        (K,) float64 floors; NaN for a joint no frame labels (no evidence: :func:`present` puts no floor on it).
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    labelled = np.asarray(labelled, dtype=bool)
    if confidence.ndim != 2 or labelled.shape != confidence.shape:
        raise ValueError(f"confidence and labelled must both be (N, K), got {confidence.shape} and "
                         f"{labelled.shape}")
    if not 0 <= quantile < 1:
        raise ValueError(f"quantile must lie in [0, 1), got {quantile}")
    floors = np.full(confidence.shape[1], np.nan)
    for j in range(confidence.shape[1]):
        values = confidence[labelled[:, j], j]
        values = values[np.isfinite(values)]
        if values.size:
            floors[j] = np.quantile(values, quantile)
    return floors


def present(confidence: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """(N, K) bool: the pseudo-label's confidence reaches its joint's floor (always true where the floor is NaN;
    a NaN confidence never does)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    floors = np.asarray(floors, dtype=np.float64)
    if confidence.ndim != 2 or floors.shape != (confidence.shape[1],):
        raise ValueError(f"confidence must be (N, K) and floors (K,), got {confidence.shape} and {floors.shape}")
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(floors)[None, :], True, confidence >= floors[None, :])
