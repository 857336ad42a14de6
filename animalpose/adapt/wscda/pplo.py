"""Progressive pseudo-label-based optimisation (PPLO) of WS-CDA (Cao et al., ICCV 2019, sec. 4.3).

After WS-CDA training, the model labels a species that has no labels at all. PPLO runs rounds: predict
keypoints on the unlabelled target images, keep only the most confident joints as pseudo-labels, and
retrain on the labelled data plus those pseudo-labels; each round admits more of them, as the model's
predictions on the new species improve.

The confidence ranking and the progressive schedule are the ones CC-SSL uses
(:mod:`animalpose.adapt.selection`, shared code): round ``r`` keeps the top
``RoundSchedule.keep_fraction(r)`` of all valid joint confidences of the round. Choices made here:

- selection is per joint (as in CC-SSL), not per instance; a kept joint gets visibility 2 and weight 1,
  a rejected one visibility 0 and weight 0 (the pose loss ignores it);
- pseudo-labels are regenerated from scratch every round by the current model (earlier rounds' labels
  are not kept), so a joint wrongly admitted early can be dropped later;
- the confidence is whatever the predictor returns (for heatmap models the peak value of the joint's
  heatmap, :func:`heatmap_peaks`); with ``wscda.pplo_filter: consistency`` the predictor is CC-SSL's
  consistency check (:func:`~animalpose.adapt.wscda.datasets.consistency_predict_crops`), so a round keeps
  exactly the joints CC-SSL's selection keeps at the same fraction.

The loop (:func:`run_pplo`) takes the prediction and training steps as callables, so it runs with the
engine's trainer or with any other; when the target's truth is known (generated data, benchmarks) each
round reports the precision of the kept pseudo-labels and their coverage (:func:`pseudo_label_quality`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from animalpose.adapt.selection import RoundSchedule, Selection, select_top_fraction


@dataclass
class PseudoLabels:
    """One round's pseudo-labels of the N unlabelled target instances.

    Attributes:
        keypoints: (N, K, 3) x, y, visibility (2 kept, 0 rejected), in the frame of the predictions.
        weights: (N, K) float32 target weights, 1 for kept joints.
        selection: the shared :class:`~animalpose.adapt.selection.Selection` (threshold, coverage, ...).
        round_index: the 0-based PPLO round.
    """

    keypoints: np.ndarray
    weights: np.ndarray
    selection: Selection
    round_index: int


def make_pseudo_labels(
    coords: np.ndarray,
    confidence: np.ndarray,
    round_index: int,
    schedule: RoundSchedule | None = None,
    valid: np.ndarray | None = None,
) -> PseudoLabels:
    """Pseudo-labels of round ``round_index``: the top ``schedule.keep_fraction(round_index)`` joints.

    Args:
        coords: (N, K, 2) predicted x, y.
        confidence: (N, K) per-joint confidence of the predictions.
        round_index: 0-based round.
        schedule: the progressive schedule (default: CC-SSL's 0.2, 0.4, 0.6, 0.8).
        valid: optional (N, K) bool; joints outside it are never kept (e.g. outside the crop).
    """
    coords = np.asarray(coords, dtype=np.float64)
    confidence = np.asarray(confidence, dtype=np.float64)
    if coords.ndim != 3 or coords.shape[-1] != 2 or coords.shape[:2] != confidence.shape:
        raise ValueError(f"expected coords (N, K, 2) and confidence (N, K), got {coords.shape}, {confidence.shape}")
    schedule = schedule or RoundSchedule()
    selection = select_top_fraction(confidence, schedule.keep_fraction(round_index), valid)
    visibility = np.where(selection.kept, 2.0, 0.0)
    keypoints = np.concatenate([np.where(selection.kept[..., None], coords, 0.0), visibility[..., None]], axis=-1)
    return PseudoLabels(keypoints, selection.weights, selection, round_index)


def heatmap_peaks(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Integer argmax of each heatmap and its value.

    Args:
        heatmaps: (N, K, h, w).

    Returns:
        coords (N, K, 2) x, y in heatmap pixels, and confidence (N, K) the peak values.
    """
    n, k, h, w = heatmaps.shape
    scores, index = heatmaps.reshape(n, k, h * w).max(dim=-1)
    coords = torch.stack([index % w, torch.div(index, w, rounding_mode="floor")], dim=-1).to(heatmaps.dtype)
    return coords, scores


def pseudo_label_quality(
    labels: PseudoLabels, truth: np.ndarray, threshold: float | np.ndarray
) -> dict[str, float]:
    """Precision and coverage of the kept pseudo-labels against known truth.

    Args:
        labels: a round's pseudo-labels.
        truth: (N, K, 3) true keypoints (visibility 0 = unknown, left out of every count).
        threshold: distance (same units as the keypoints) under which a kept joint counts as correct,
            a scalar or (N,) per instance (e.g. α × crop size).

    Returns:
        ``precision`` (correct kept / kept with truth; NaN when none is kept), ``coverage`` (kept / joints
        with truth) and ``recall`` (correct kept / joints with truth).
    """
    truth = np.asarray(truth, dtype=np.float64)
    if truth.shape != labels.keypoints.shape:
        raise ValueError(f"truth {truth.shape} does not match pseudo-labels {labels.keypoints.shape}")
    known = truth[..., 2] > 0
    kept = labels.selection.kept & known
    dist = np.linalg.norm(labels.keypoints[..., :2] - truth[..., :2], axis=-1)
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64).reshape(-1, 1), dist.shape)
    correct = kept & (dist <= thr)
    n_known, n_kept = int(known.sum()), int(kept.sum())
    return {
        "precision": correct.sum() / n_kept if n_kept else float("nan"),
        "coverage": n_kept / n_known if n_known else 0.0,
        "recall": correct.sum() / n_known if n_known else 0.0,
    }


@dataclass
class PPLORound:
    """What one PPLO round did: its pseudo-labels, the training result and, with truth, their quality."""

    round_index: int
    labels: PseudoLabels
    train_result: object = None
    quality: dict[str, float] = field(default_factory=dict)


def run_pplo(
    predict: Callable[[], tuple[np.ndarray, np.ndarray]],
    train: Callable[[PseudoLabels], object],
    num_rounds: int,
    schedule: RoundSchedule | None = None,
    *,
    truth: np.ndarray | None = None,
    threshold: float | np.ndarray | None = None,
    valid: np.ndarray | None = None,
    on_round: Callable[[PPLORound], None] | None = None,
    start_round: int = 0,
) -> list[PPLORound]:
    """The PPLO loop: for each round, predict, select pseudo-labels progressively, retrain.

    Args:
        predict: returns (coords (N, K, 2), confidence (N, K)) of the current model on the target images.
        train: retrains the model on the labelled data plus the given pseudo-labels; returns anything
            (kept in :attr:`PPLORound.train_result`).
        num_rounds: total number of rounds.
        schedule: the progressive keep schedule (shared with CC-SSL).
        truth, threshold: (N, K, 3) known target keypoints and the correctness distance, for diagnostics.
        valid: (N, K) bool joints eligible for pseudo-labelling.
        on_round: called after each round (logging, checkpoints).
        start_round: first round to run (resume after an interruption).
    """
    if num_rounds < 0 or not 0 <= start_round <= num_rounds:
        raise ValueError(f"need 0 <= start_round <= num_rounds, got {start_round}, {num_rounds}")
    if (truth is None) != (threshold is None):
        raise ValueError("truth and threshold go together")
    rounds = []
    for r in range(start_round, num_rounds):
        coords, confidence = predict()
        labels = make_pseudo_labels(coords, confidence, r, schedule, valid)
        quality = pseudo_label_quality(labels, truth, threshold) if truth is not None else {}
        result = PPLORound(r, labels, train(labels), quality)
        rounds.append(result)
        if on_round is not None:
            on_round(result)
    return rounds
