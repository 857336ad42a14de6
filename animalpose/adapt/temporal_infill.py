"""Temporal infill of pseudo-labels: a joint left out at frame t takes the midpoint of its track's kept neighbours.

CC-SSL keeps the joints its checks trust most (by confidence), which are the easy ones: on the SLEAP clip the
top 20 % are 1-2 px from the truth while the model's mean test error is 8-9 px, dominated by the few joints it gets
badly wrong (BENCHMARKS.md, "λ 2 and the top 80 %"). Teaching it those needs labels where it is unsure. Along a video
the same joint is often confident a few frames before and after: where a joint was left out at t but kept at both t −
step and t + step of its track, and those two lie within ``distance`` original pixels of each other (the animal did
not move far, so the straight-line guess is close), the joint gets their midpoint and is kept with
weight 1. Only joints kept by the round's own selection are used as neighbours (an infilled joint
never fills another), so one wrong pseudo-label cannot spread along a run.

This is the linear interpolation DeepLabCut and SLEAP offer for gaps in a track, applied to the training targets
instead of the output, and the same temporal prior as Lightning Pose's temporal loss (a keypoint moves little
between consecutive frames), used to add evidence where :mod:`animalpose.adapt.temporal_agreement` uses it to
remove some.
"""

from __future__ import annotations

import numpy as np

from animalpose.adapt.temporal_loss import track_runs
from animalpose.data.records import PoseRecord


def temporal_infill(xy: np.ndarray, weights: np.ndarray, records: list[PoseRecord], step: int,
                    distance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pseudo-labels with the infilled joints (module docstring): ``(xy, weights, filled)``.

    Args:
        xy: (N, K, 2) pseudo-labels in original pixels.
        weights: (N, K) the round's selection (> 0 kept).
        records: the N target records (``video_id``, ``frame_index``, ``instance_id`` place them in time).
        step: frame-index step between consecutive target frames (``ccssl.video_step``).
        distance: the largest distance in original pixels between the two neighbours.

    Returns new arrays (the inputs are not changed): ``xy`` (N, K, 2), ``weights`` (N, K) float32 and ``filled``
    (N, K) bool, the joints infilled.
    """
    xy = np.array(xy, dtype=np.float32)
    weights = np.array(weights, dtype=np.float32)
    if xy.ndim != 3 or xy.shape[0] != len(records) or xy.shape[-1] != 2 or weights.shape != xy.shape[:2]:
        raise ValueError(f"xy must be ({len(records)}, K, 2) and weights ({len(records)}, K), got {xy.shape} and "
                         f"{weights.shape}")
    if distance <= 0:
        raise ValueError(f"distance must be > 0, got {distance}")
    kept = weights > 0  # the selection's own joints: the only neighbours used
    filled = np.zeros(kept.shape, dtype=bool)
    for run in track_runs(records, step):
        for before, t, after in zip(run, run[1:], run[2:], strict=False):
            near = np.linalg.norm(xy[before] - xy[after], axis=-1) <= distance
            take = ~kept[t] & kept[before] & kept[after] & near
            # a neighbour is a kept joint, and a kept joint is never filled: no infilled value is read here
            xy[t][take] = (xy[before][take] + xy[after][take]) / 2
            filled[t] = take
    weights[filled] = 1.0
    return xy, weights, filled
