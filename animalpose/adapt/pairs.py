"""Left/right pairs in CC-SSL: decode a collapsed pair onto two points, and a loss that does not order a pair.

A synthetic-trained model on real horses often cannot tell the near leg from the far one: both channels
of a left/right pair peak on the same leg (BENCHMARKS.md, "CC-SSL on real horses": 72 % of the pairs'
pseudo-labels within 2 % of the crop of their partner's in round 1, against 1.2 % of the labelled pairs).
Two rules of ours (not the reference's), both opt-in from the ``ccssl:`` section:

- :func:`resolve_pairs` (``ccssl.pair_decoding: resolve``): when a pair's two decoded points coincide, the
  less confident partner is decoded again from its own view-aggregated heatmap with a disc around the
  shared point suppressed, so it lands on its best *other* bump (usually the other leg); its peak value
  there becomes its confidence, so the keep-fraction selection judges the new point, not the old one.
- :func:`symmetric_pair_loss` (``ccssl.pair_loss: symmetric``): per sample and per pair, the target loss
  with the pair's targets as given or exchanged, whichever is smaller, so the network is trained to put the
  two legs where the pseudo-labels are without being told which is which.

The pairs are the schema's ``flip_pairs`` ((left, right) joint indices, disjoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from animalpose.adapt.selection import coinciding
from animalpose.losses import as_list, joint_weights, per_joint_mse

# Radius of the suppressed disc in σ of the training Gaussian: the MSRA targets end at 3σ (radius_of), where a
# Gaussian has fallen to exp(-4.5) = 1.1 % of its peak, so what stands outside the disc is another bump, not the
# shoulder of the suppressed one. A second leg nearer than 3σ (6 heatmap px, 19 % of a 128-px crop at σ 2 and
# stride 4) lies partly inside the disc: the new point is then the disc's rim next to it, at most 3σ off.
SUPPRESS_SIGMAS = 3.0


@dataclass(frozen=True)
class PairResolution:
    """Result of :func:`resolve_pairs`.

    Attributes:
        coords: (N, K, 2) float32 points in input-crop pixels; the re-decoded partners moved.
        peak: (N, K) float32 heatmap value at each point (the re-decoded partners' value at their new peak).
        resolved: (N, K) bool, the joint was re-decoded.
    """

    coords: np.ndarray
    peak: np.ndarray
    resolved: np.ndarray


def resolve_pairs(heatmaps: np.ndarray, coords: np.ndarray, peak: np.ndarray, confidence: np.ndarray,
                  flip_pairs: Sequence[tuple[int, int]], distance: float, radius: float, codec) -> PairResolution:
    """Re-decode the less confident partner of every coinciding left/right pair away from its partner.

    A pair coincides when its two points lie closer than ``distance`` (the test of the collapsed-pair rule,
    :func:`~animalpose.adapt.selection.coinciding`). The partner with the lower ``confidence`` (on a tie the
    right one, the pair's second index, as :func:`~animalpose.adapt.selection.collapsed_pair_mask`) has the
    heatmap cells within ``radius`` of the other partner's point set to its heatmap's minimum and is decoded
    again with ``codec``. When nothing outside the disc rises above that minimum (a flat map, or one bump
    and nothing else) the channel has no second place to offer and the joint is left as it was.

    Args:
        heatmaps: (N, K, h, w) view-aggregated heatmaps.
        coords: (N, K, 2) their decoded points in input-crop pixels.
        peak: (N, K) the decoded peak values.
        confidence: (N, K) the confidence that ranks the two partners.
        flip_pairs: (left, right) joint index pairs, disjoint.
        distance: two points closer than this (input-crop pixels) coincide.
        radius: radius of the suppressed disc in heatmap pixels (the caller's: ``SUPPRESS_SIGMAS`` σ).
        codec: the heatmap codec (``to_heatmap`` maps input to heatmap pixels; ``decode`` (M, 1, h, w) ->
            points (M, 1, 2), peak values (M, 1)).

    Returns:
        a :class:`PairResolution`.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    xy = np.asarray(coords, dtype=np.float32).copy()
    pk = np.asarray(peak, dtype=np.float32).copy()
    conf = np.asarray(confidence, dtype=np.float64)
    resolved = np.zeros(pk.shape, dtype=bool)
    near = coinciding(xy, flip_pairs, distance)
    sample, lower, upper = [], [], []
    for i, j in flip_pairs:
        rows = np.flatnonzero(near[:, i])
        lower_i = conf[rows, i] < conf[rows, j]
        sample += rows.tolist()
        lower += np.where(lower_i, i, j).tolist()
        upper += np.where(lower_i, j, i).tolist()
    if not sample:
        return PairResolution(xy, pk, resolved)
    s, lo, up = (np.asarray(a, dtype=np.int64) for a in (sample, lower, upper))
    maps = hm[s, lo].copy()  # (M, h, w)
    m, h, w = maps.shape
    centre = np.asarray(codec.to_heatmap(xy[s, up]), dtype=np.float64)  # (M, 2) the point both share
    gx = np.arange(w, dtype=np.float64)[None, None, :] - centre[:, 0, None, None]
    gy = np.arange(h, dtype=np.float64)[None, :, None] - centre[:, 1, None, None]
    disc = gx**2 + gy**2 <= radius**2  # (M, h, w)
    floor = maps.reshape(m, -1).min(axis=1)
    maps = np.where(disc, floor[:, None, None], maps)
    outside = np.where(disc, -np.inf, maps).reshape(m, -1).max(axis=1)
    ok = outside > floor  # something other than the suppressed bump to decode
    if ok.any():
        new_xy, new_peak = codec.decode(maps[ok][:, None])
        xy[s[ok], lo[ok]] = new_xy[:, 0]
        pk[s[ok], lo[ok]] = new_peak[:, 0]
        resolved[s[ok], lo[ok]] = True
    return PairResolution(xy, pk, resolved)


def swap_pairs(x: torch.Tensor, swap: torch.Tensor, flip_pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    """``x`` (N, K, ...) with joints i and j of pair p exchanged in the samples where ``swap[:, p]`` ((N, P)
    bool, P = len(flip_pairs))."""
    n, k = x.shape[:2]
    index = torch.arange(k, device=x.device).repeat(n, 1)  # (N, K)
    for p, (i, j) in enumerate(flip_pairs):
        rows = swap[:, p].to(x.device)
        index[rows, i], index[rows, j] = j, i
    index = index.reshape(n, k, *([1] * (x.ndim - 2))).expand_as(x)
    return torch.gather(x, 1, index)


@torch.no_grad()
def pair_swaps(outputs: Sequence[torch.Tensor] | torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
               flip_pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    """(N, P) bool: the pair's loss is strictly smaller with its two targets (and weights) exchanged.

    The loss compared is the heatmap MSE of the pair's two channels summed over the supervised stages
    (``outputs``: (N, K, h, w) each; ``target`` (N, K, h, w); ``weight`` (N, K) or (N, K, 1)).
    """
    if not flip_pairs:
        return torch.zeros((target.shape[0], 0), dtype=torch.bool, device=target.device)
    outs = as_list(outputs)
    n, k = target.shape[:2]
    w = joint_weights(weight, n, k)
    perm = list(range(k))
    for i, j in flip_pairs:
        perm[i], perm[j] = j, i
    # the heatmap MSE's per-joint terms (animalpose.losses.heatmap_mse), summed over the stages
    ordered = sum(per_joint_mse(out, target, w) for out in outs)
    crossed = sum(per_joint_mse(out, target[:, perm], w[:, perm]) for out in outs)
    i, j = (list(c) for c in zip(*flip_pairs, strict=True))
    return (crossed[:, i] + crossed[:, j]) < (ordered[:, i] + ordered[:, j])


def symmetric_pair_loss(loss_fn, outputs: Sequence[torch.Tensor] | torch.Tensor, target: torch.Tensor,
                        weight: torch.Tensor, flip_pairs: Sequence[tuple[int, int]],
                        coords: torch.Tensor | None = None) -> torch.Tensor:
    """``loss_fn`` (the model's :class:`~animalpose.losses.PoseLoss`) with each sample's left/right pairs taken
    in the order, as given or exchanged, that costs less (:func:`pair_swaps`).

    Args:
        loss_fn: ``loss_fn(outputs, target, weight, coords) -> scalar``.
        outputs: one (N, K, h, w) prediction per supervised stage (or one tensor).
        target: (N, K, h, w) target heatmaps.
        weight: (N, K) or (N, K, 1) joint weights; exchanged with their targets.
        flip_pairs: (left, right) joint index pairs; unpaired joints keep their targets.
        coords: (N, K, 2) target points for losses that read them (exchanged too), or None.

    Returns:
        the scalar ``loss_fn`` gives on the chosen targets: with no pair better exchanged exactly
        ``loss_fn(outputs, target, weight, coords)``. The choice carries no gradient; the loss of the chosen
        targets does (the gradient of the minimum wherever the two orders differ). For the heatmap MSE, a sum
        of per-joint terms, it is the minimum over the 2^P orders of every sample; other losses take the
        order the heatmap MSE prefers.
    """
    swap = pair_swaps(outputs, target, weight, flip_pairs)
    if not bool(swap.any()):
        return loss_fn(outputs, target, weight, coords)
    return loss_fn(outputs, swap_pairs(target, swap, flip_pairs), swap_pairs(weight, swap, flip_pairs),
                   None if coords is None else swap_pairs(coords, swap, flip_pairs))


@dataclass(frozen=True)
class SymmetricPairLoss:
    """A :class:`~animalpose.losses.PoseLoss` made pair-symmetric (:func:`symmetric_pair_loss`): ``loss`` with
    each sample's left/right ``flip_pairs`` in the cheaper order."""

    loss: object
    flip_pairs: tuple[tuple[int, int], ...]

    @property
    def needs_coords(self) -> bool:
        return bool(getattr(self.loss, "needs_coords", False))

    def __call__(self, outputs: list[torch.Tensor], target: torch.Tensor, weight: torch.Tensor,
                 coords: torch.Tensor | None = None) -> torch.Tensor:
        return symmetric_pair_loss(self.loss, outputs, target, weight, self.flip_pairs, coords)
