"""A pseudo-label confidence threshold calibrated on labelled frames.

The percentile rule (:mod:`animalpose.adapt.selection`) keeps a fixed share of the target's joints whatever
the model's accuracy: a weak model's top 20 % can be mostly wrong, a strong model's top 60 % mostly right. Here
the threshold comes from labelled frames the model did not train on (a lab project's ``val`` split): the same
consistency check labels them, and the threshold is the lowest confidence at which the labelled joints at or
above it are right (within ``tolerance`` × the longer side of their labelled-keypoint box, PCK's rule) at a
rate of at least ``precision``. That threshold is then applied to the unlabelled target, so the kept
pseudo-labels have about that precision where the labelled and unlabelled frames are alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from animalpose.evaluation import bbox_normalisers


@dataclass(frozen=True)
class Calibration:
    """A calibrated threshold and what it gives on the labelled joints.

    Attributes:
        threshold: keep joints whose confidence is at least this; +inf when no level reaches the precision.
        precision: share of the labelled joints at or above the threshold that are right (NaN: none kept).
        coverage: share of the labelled joints at or above the threshold.
        joints: labelled joints the threshold was calibrated on.
    """

    threshold: float
    precision: float
    coverage: float
    joints: int

    def as_dict(self) -> dict:
        return {"threshold": self.threshold, "precision": self.precision, "coverage": self.coverage,
                "joints": self.joints}


def correct_joints(pred_xy: np.ndarray, truth: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Which labelled joints a prediction gets right.

    Args:
        pred_xy: (N, K, 2) predictions, original pixels.
        truth: (N, K, 3) labels (visibility 0: not labelled).
        tolerance: right within ``tolerance`` × the instance's labelled-keypoint box's longer side.

    Returns:
        correct (N, K) bool and labelled (N, K) bool (instances without a box size count as unlabelled).
    """
    truth = np.asarray(truth, dtype=np.float64)
    norm = bbox_normalisers(truth)
    labelled = (truth[..., 2] > 0) & np.isfinite(norm)[:, None]
    d = np.linalg.norm(np.asarray(pred_xy, np.float64)[..., :2] - truth[..., :2], axis=-1)
    with np.errstate(invalid="ignore"):
        correct = labelled & (d <= tolerance * norm[:, None])
    return correct, labelled


def calibrated_threshold(confidence: np.ndarray, correct: np.ndarray, precision: float) -> Calibration:
    """The lowest confidence threshold at which the joints at or above it are right at a rate ≥ ``precision``.

    Args:
        confidence: (M,) confidences of labelled joints (NaN: left out).
        correct: (M,) bool, whether each is right.
        precision: the rate asked for, in (0, 1].

    Joints of equal confidence are kept or dropped together (the threshold is one of the confidences).
    """
    if not 0 < precision <= 1:
        raise ValueError(f"precision must lie in (0, 1], got {precision}")
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    ok = np.asarray(correct, dtype=bool).ravel()
    if conf.shape != ok.shape:
        raise ValueError(f"{conf.size} confidences for {ok.size} correctness flags")
    keep = np.isfinite(conf)
    conf, ok = conf[keep], ok[keep]
    m = conf.size
    if m == 0:
        return Calibration(float("inf"), float("nan"), 0.0, 0)
    order = np.argsort(-conf, kind="stable")
    c, hits = conf[order], np.cumsum(ok[order])
    # the last index of each run of equal confidences: the sets a threshold can cut
    ends = np.flatnonzero(np.r_[c[1:] != c[:-1], True])
    rates = hits[ends] / (ends + 1)
    good = np.flatnonzero(rates >= precision - 1e-12)
    if not good.size:
        return Calibration(float("inf"), float("nan"), 0.0, m)
    j = ends[good[-1]]
    return Calibration(float(c[j]), float(hits[j] / (j + 1)), float((j + 1) / m), m)
