"""The CC-SSL reference's PCK@0.05, rule for rule, so a number can be set beside its published ones.

The reference (Mu et al., "Learning from Synthetic Animals", CVPR 2020; github.com/JitengMu/
Learning-from-Synthetic-Animals, commit 1ff5b529) scores heatmaps with ``accuracy()`` /
``accuracy_2animal()`` in ``pose/utils/evaluation.py`` and averages batches in ``evaluation/test.py``.
Its rules, which differ from our pooled :func:`animalpose.evaluation.pck_crop` in five ways:

1. Coordinates are the argmax of each map, 1-based (``get_preds``, ``evaluation.py:13-30``), and a
   predicted map whose maximum is not > 0 has its prediction set to (0, 0) (``:28-29``): it still
   counts, usually as wrong. Ours keeps the argmax of such a map.
2. A joint is scored only where the ground-truth argmax has x > 1 and y > 1 (``calc_dists``,
   ``:82``): an empty ground-truth map (coordinates zeroed by rule 1) *and* a ground truth in the first
   row or column of the heatmap are dropped. Ours drops only empty maps.
3. The distance is divided by W / 10 (``accuracy``, ``:117``) and counted when ``dist < 0.5``
   (``dist_acc``, ``:88-94``, strict at ``:92``): PCK@0.05 of the heatmap width, the only threshold
   it computes (``accuracy`` takes ``thr`` but never passes it on). Ours counts ``<= α·W`` (at exactly
   0.05·W on an 80-px map, 4 px, the reference says wrong and ours right). Arithmetic is float32, as
   in torch.
4. Per batch, each joint's accuracy is its fraction over the batch's valid samples (-1 when it has
   none), and the batch's number ``acc[0]`` is the mean over the joints that have one (``:120-131``); a
   batch with no valid joint gives 0, not "nothing".
5. ``evaluation/test.py`` (``validate``) adds ``acc[0]`` to an ``AverageMeter`` weighted by the
   batch's size, batches of ``--test-batch`` = 6 in dataset order; its per-joint PCK is the
   *unweighted* mean of each joint's batch accuracies over the batches where it was valid.

So the reference number depends on the batch size and on the order of the samples, and a short last
batch or a batch of unlabelled samples weighs as much per sample as any other. Our pooled PCK (the
headline) counts every valid joint of every sample once and is independent of batching.

All shapes: heatmaps (N, K, H, W); distances (N, K) in units of W / 10, NaN where rule 2 drops the
joint.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

REFERENCE_TEST_BATCH = 6  # evaluation/test.py: --test-batch default
REFERENCE_THRESHOLD = np.float32(0.5)  # dist_acc(thr=0.5), in units of W / 10: PCK@0.05


def reference_coords(heatmaps: np.ndarray) -> np.ndarray:
    """1-based argmax (x, y) of each map, (0, 0) where the map's maximum is not > 0 (``get_preds``).

    Args:
        heatmaps: (N, K, H, W).

    Returns:
        (N, K, 2) float32.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be (N, K, H, W), got {hm.shape}")
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, h * w)
    idx = flat.argmax(-1)  # first maximum, as torch.max
    maxval = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    coords = np.stack([idx % w + 1, idx // w + 1], -1).astype(np.float32)
    coords[~(maxval > 0)] = 0.0
    return coords


def reference_distances(pred_heatmaps: np.ndarray, gt_heatmaps: np.ndarray) -> np.ndarray:
    """Distances of ``calc_dists`` in float32, in units of W / 10; NaN where the ground truth is dropped.

    Args:
        pred_heatmaps, gt_heatmaps: (N, K, H, W).

    Returns:
        (N, K) float32.
    """
    pred = np.asarray(pred_heatmaps)
    gt = np.asarray(gt_heatmaps)
    if pred.shape != gt.shape:
        raise ValueError(f"heatmap shapes differ: {pred.shape} vs {gt.shape}")
    p, g = reference_coords(pred), reference_coords(gt)
    norm = np.float32(pred.shape[-1]) / np.float32(10)  # torch.ones(N) * W / 10 in float32
    d = np.sqrt(((p - g) ** 2).sum(-1, dtype=np.float32)) / norm
    d[~((g[..., 0] > 1) & (g[..., 1] > 1))] = np.nan
    return d.astype(np.float32)


def reference_batch_accuracy(distances: np.ndarray, joints: Sequence[int] | None = None
                             ) -> tuple[np.float32, np.ndarray]:
    """``acc`` of ``accuracy()`` for one batch: (acc[0], per-joint accuracies with -1 where none valid).

    Args:
        distances: (B, K) from :func:`reference_distances`.
        joints: 0-based joint indices averaged (the reference's 1-based ``idxs`` minus one), all by default.

    Returns:
        acc[0] as float32 (0 when no joint is valid) and (len(joints),) float32.
    """
    d = np.asarray(distances, dtype=np.float32)
    cols = range(d.shape[1]) if joints is None else list(joints)
    per_joint = np.full(len(cols), -1.0, dtype=np.float32)
    total, count = np.float32(0), 0
    for i, j in enumerate(cols):
        v = d[:, j][np.isfinite(d[:, j])]
        if len(v):
            per_joint[i] = np.float32(float((v < REFERENCE_THRESHOLD).sum()) / len(v))
            total = np.float32(total + per_joint[i])  # the reference sums float32 tensors in joint order
            count += 1
    acc0 = np.float32(total / np.float32(count)) if count else np.float32(0)
    return acc0, per_joint


class ReferencePCKMeter:
    """What ``evaluation/test.py`` accumulates over the evaluation batches.

    ``value``: its ``acces.avg`` (float32 sum of acc[0] × batch size over the number of samples);
    ``per_joint``: its ``pck_score / pck_count`` (mean of each joint's batch accuracies over the batches
    where the joint was valid; NaN where it never was).
    """

    def __init__(self, joints: Sequence[int] | None = None):
        self.joints = None if joints is None else list(joints)
        self.sum = np.float32(0)
        self.count = 0
        self.score: np.ndarray | None = None
        self.batches: np.ndarray | None = None

    def update_distances(self, distances: np.ndarray) -> np.float32:
        """Add one batch of :func:`reference_distances`; returns its acc[0]."""
        acc0, per_joint = reference_batch_accuracy(distances, self.joints)
        n = len(distances)
        self.sum = np.float32(self.sum + np.float32(acc0 * np.float32(n)))
        self.count += n
        if self.score is None:
            self.score = np.zeros(len(per_joint))
            self.batches = np.zeros(len(per_joint), dtype=np.int64)
        valid = per_joint > -1
        self.score[valid] += per_joint[valid].astype(np.float64)
        self.batches[valid] += 1
        return acc0

    def update(self, pred_heatmaps: np.ndarray, gt_heatmaps: np.ndarray) -> np.float32:
        """Add one batch of heatmaps, (B, K, H, W) each; returns its acc[0]."""
        return self.update_distances(reference_distances(pred_heatmaps, gt_heatmaps))

    @property
    def value(self) -> float:
        """The reference's printed ``Acc`` as a fraction; NaN before any batch."""
        return float(np.float32(self.sum / np.float32(self.count))) if self.count else float("nan")

    @property
    def per_joint(self) -> np.ndarray:
        """(K,) or (len(joints),) float64; NaN for a joint never valid."""
        if self.score is None:
            return np.array([])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.batches > 0, self.score / np.maximum(self.batches, 1), np.nan)


def pck_batch_averaged(pred_heatmaps: np.ndarray, gt_heatmaps: np.ndarray,
                       batch_size: int = REFERENCE_TEST_BATCH, joints: Sequence[int] | None = None) -> float:
    """The reference's PCK@0.05 of heatmaps in evaluation order, cut into batches of ``batch_size``
    (the last may be shorter), as ``evaluation/test.py`` prints it (module docstring).

    Args:
        pred_heatmaps, gt_heatmaps: (N, K, H, W).
        joints: 0-based joint indices averaged, all by default.

    Returns:
        A fraction in [0, 1]; NaN for N = 0.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    d = reference_distances(pred_heatmaps, gt_heatmaps)
    meter = ReferencePCKMeter(joints)
    for start in range(0, len(d), batch_size):
        meter.update_distances(d[start:start + batch_size])
    return meter.value
