"""Progressive selection of pseudo-labelled joints, shared by CC-SSL and WS-CDA's PPLO.

Both methods score every joint of every unlabelled target instance with a confidence and keep only
the most confident ones, admitting more as training advances. Two schedules are offered:

- :func:`reference_percentile`: the percentile used by the CC-SSL reference code ("Learning from
  Synthetic Animals", Mu et al., CVPR 2020), ``p = 1 - 0.02 * (epoch + 10)`` floored at 0.2. The
  threshold is the p-quantile of all joint confidences, so the top ``1 - p`` of joints are kept:
  20% at epoch 0, 40% at epoch 10, 60% at epoch 20 and 80% from epoch 30 on.
- :class:`RoundSchedule`: an explicit list of kept fractions, one per round (default
  0.2, 0.4, 0.6, 0.8; the last repeats for later rounds).

Selected joints get weight 1, the others weight 0 (the target loss ignores them).

:func:`collapsed_pair_mask` takes left/right pairs whose two pseudo-labels coincide out of the ranking
(a rule of ours, not the reference's): a model unsure which leg is which puts both on the same leg,
and training on that pseudo-label teaches both channels the same leg.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from animalpose.errors import ConfigError

REFERENCE_FLOOR = 0.2
REFERENCE_STEP = 0.02
REFERENCE_OFFSET = 10
DEFAULT_KEEP_FRACTIONS = (0.2, 0.4, 0.6, 0.8)


def reference_percentile(epoch: int, *, step: float = REFERENCE_STEP, offset: int = REFERENCE_OFFSET,
                         floor: float = REFERENCE_FLOOR) -> float:
    """The CC-SSL reference percentile ``p = max(1 - step * (epoch + offset), floor)``.

    Mu et al. 2020 (reference implementation): step 0.02, offset 10, floor 0.2, so
    epoch 0 -> 0.8, 10 -> 0.6, 20 -> 0.4, 30 -> 0.2 and anything later stays at 0.2.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    return max(1.0 - step * (epoch + offset), floor)


@dataclass(frozen=True)
class RoundSchedule:
    """Fraction of joints kept in each pseudo-label round.

    Attributes:
        keep_fractions: kept fraction per round, non-decreasing, each in (0, 1]; rounds beyond the
            list keep the last fraction.
    """

    keep_fractions: tuple[float, ...] = DEFAULT_KEEP_FRACTIONS

    def __post_init__(self) -> None:
        fr = tuple(float(f) for f in self.keep_fractions)
        if not fr:
            raise ConfigError("<schedule>", "keep_fractions", "must list at least one fraction")
        for i, f in enumerate(fr):
            if not 0.0 < f <= 1.0:
                raise ConfigError("<schedule>", f"keep_fractions[{i}]", f"must lie in (0, 1], got {f}")
        if any(b < a for a, b in itertools.pairwise(fr)):
            raise ConfigError("<schedule>", "keep_fractions", f"must be non-decreasing, got {list(fr)}")
        object.__setattr__(self, "keep_fractions", fr)

    def keep_fraction(self, round_index: int) -> float:
        """Kept fraction for round ``round_index`` (0-based)."""
        if round_index < 0:
            raise ValueError(f"round_index must be >= 0, got {round_index}")
        return self.keep_fractions[min(round_index, len(self.keep_fractions) - 1)]

    def percentile(self, round_index: int) -> float:
        """The percentile p (threshold quantile) of round ``round_index``: 1 - keep fraction."""
        return 1.0 - self.keep_fraction(round_index)

    @classmethod
    def from_reference(cls, epochs: Sequence[int]) -> RoundSchedule:
        """The schedule the reference formula gives at the epochs where rounds start."""
        return cls(tuple(round(1.0 - reference_percentile(e), 10) for e in epochs))


@dataclass
class Selection:
    """Result of a selection.

    Attributes:
        weights: (N, K) float32, 1 for kept joints, 0 otherwise.
        threshold: confidence threshold used (joints with confidence >= threshold are kept), or
            +inf when no joint was eligible.
        percentile: the quantile p the threshold was taken at.
        num_kept: number of kept joints.
        num_eligible: number of joints that took part in the ranking.
    """

    weights: np.ndarray
    threshold: float
    percentile: float
    num_kept: int
    num_eligible: int

    @property
    def kept(self) -> np.ndarray:
        """(N, K) bool."""
        return self.weights > 0

    @property
    def coverage(self) -> float:
        """Kept joints over eligible joints."""
        return self.num_kept / self.num_eligible if self.num_eligible else 0.0


def select_by_percentile(
    confidence: np.ndarray, percentile: float, valid: np.ndarray | None = None
) -> Selection:
    """Keep joints whose confidence is at least the ``percentile`` quantile of all valid confidences.

    Args:
        confidence: (N, K) per-joint confidences (any real scale; NaN counts as invalid).
        percentile: p in [0, 1]; the threshold is the p-quantile (linear interpolation, as
            ``np.percentile``), so about the top ``1 - p`` of joints are kept (ties at the threshold
            are all kept).
        valid: optional (N, K) bool; invalid joints never take part and always get weight 0.

    Returns:
        a :class:`Selection` whose ``weights`` are (N, K) float32 in {0, 1}.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    if conf.ndim != 2:
        raise ValueError(f"confidence must be (N, K), got shape {conf.shape}")
    if not 0.0 <= percentile <= 1.0:
        raise ValueError(f"percentile must lie in [0, 1], got {percentile}")
    mask = np.isfinite(conf)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != conf.shape:
            raise ValueError(f"valid mask {valid.shape} does not match confidence {conf.shape}")
        mask &= valid
    weights = np.zeros(conf.shape, dtype=np.float32)
    n = int(mask.sum())
    if n == 0:
        return Selection(weights, float("inf"), float(percentile), 0, 0)
    threshold = float(np.quantile(conf[mask], percentile))
    kept = mask & (conf >= threshold)
    weights[kept] = 1.0
    return Selection(weights, threshold, float(percentile), int(kept.sum()), n)


def select_top_fraction(
    confidence: np.ndarray, keep_fraction: float, valid: np.ndarray | None = None
) -> Selection:
    """Keep about the top ``keep_fraction`` of valid joints (threshold at the 1 - keep_fraction quantile)."""
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must lie in (0, 1], got {keep_fraction}")
    return select_by_percentile(confidence, 1.0 - keep_fraction, valid)


def coinciding(xy: np.ndarray, flip_pairs: Sequence[tuple[int, int]], distance: float) -> np.ndarray:
    """(N, K) bool: the joint's point lies closer than ``distance`` (same pixels as ``xy`` (N, K, 2)) to its
    left/right partner's; False for joints in no pair (the pairs are disjoint)."""
    xy = np.asarray(xy, dtype=np.float64)
    out = np.zeros(xy.shape[:2], dtype=bool)
    for i, j in flip_pairs:
        near = np.linalg.norm(xy[:, i] - xy[:, j], axis=-1) < distance
        out[:, i] |= near
        out[:, j] |= near
    return out


def collapsed_pair_mask(xy: np.ndarray, confidence: np.ndarray, flip_pairs: Sequence[tuple[int, int]],
                        distance: float, rule: str) -> np.ndarray:
    """(N, K) bool: joints that may take part in the ranking under a collapsed-pair ``rule``.

    Args:
        xy: (N, K, 2) pseudo-labels (any pixel frame).
        confidence: (N, K) their confidences.
        flip_pairs: (left, right) joint index pairs.
        distance: two partners closer than this (same pixels as ``xy``) are one point: collapsed.
        rule: ``keep`` (every joint eligible), ``drop_lower`` (the less confident partner of a collapsed
            pair leaves the ranking; on a tie the right one, the pair's second index) or ``drop_both``.
    """
    if rule not in ("keep", "drop_lower", "drop_both"):
        raise ValueError(f"unknown collapsed-pair rule {rule!r} (keep, drop_lower, drop_both)")
    conf = np.asarray(confidence, dtype=np.float64)
    eligible = np.ones(conf.shape, dtype=bool)
    if rule == "keep":
        return eligible
    together = coinciding(xy, flip_pairs, distance)
    for i, j in flip_pairs:
        near = together[:, i]
        if rule == "drop_both":
            eligible[near, i] = eligible[near, j] = False
        else:
            lower_i = conf[:, i] < conf[:, j]
            eligible[near & lower_i, i] = False
            eligible[near & ~lower_i, j] = False
    return eligible


def keep_fractions_validator(value: list[float]) -> list[float]:
    """Pydantic field check of a ``keep_fractions`` setting: the :class:`RoundSchedule` rules at config
    load, so a bad list stops the command before any (source) training instead of after it."""
    try:
        RoundSchedule(tuple(value))
    except ConfigError as exc:
        item = exc.field.removeprefix("keep_fractions")
        raise ValueError(f"item {item}: {exc.problem.message}" if item else exc.problem.message) from None
    return value
