"""Agreement of pseudo-labels with the temporal prior: a joint that jumps away from its neighbours is dropped.

Lightning Pose's temporal-difference loss (:mod:`animalpose.adapt.temporal_loss`) says that a keypoint rarely
moves more than ε between consecutive frames. Used as a gradient it can be met by freezing the predictions
(BENCHMARKS.md, issue 23); used as a filter on CC-SSL's pseudo-labels it only removes evidence: a pseudo-label
at frame t is kept eligible when it lies within ``distance`` pixels (original image) of the midpoint of the same
joint's pseudo-labels at t − step and t + step of its track, or of the one neighbour at either end of a run.
Frames without a neighbour (photos, isolated frames) are left eligible: there is no evidence against them.
"""

from __future__ import annotations

import numpy as np

from animalpose.adapt.temporal_loss import track_runs
from animalpose.data.records import PoseRecord


def temporal_agreement(xy: np.ndarray, records: list[PoseRecord], step: int, distance: float) -> np.ndarray:
    """(N, K) bool: the pseudo-labels that agree with their track's neighbours (module docstring).

    Args:
        xy: (N, K, 2) pseudo-labels of ``records``, original pixels.
        records: the N target records (``video_id``, ``frame_index``, ``instance_id`` place them in time).
        step: frame-index step between consecutive target frames (``ccssl.video_step``).
        distance: the largest allowed distance in pixels.
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 3 or xy.shape[0] != len(records) or xy.shape[-1] != 2:
        raise ValueError(f"xy must be ({len(records)}, K, 2), got {xy.shape}")
    if distance <= 0:
        raise ValueError(f"distance must be > 0, got {distance}")
    ok = np.ones(xy.shape[:2], dtype=bool)
    for run in track_runs(records, step):
        if len(run) < 2:
            continue
        p = xy[run]  # (T, K, 2)
        ref = np.empty_like(p)
        ref[1:-1] = (p[:-2] + p[2:]) / 2
        ref[0], ref[-1] = p[1], p[-2]
        with np.errstate(invalid="ignore"):
            ok[run] = np.linalg.norm(p - ref, axis=-1) <= distance
    return ok
