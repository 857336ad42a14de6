"""Re-assignment of look-alike body parts across the views of a multi-view rig, before pseudo-labels are chosen.

In a multi-view rig every body part p is seen in V views (row p of ``ccssl.multiview_loss_views``; a mirror rig:
a top and a bottom copy). A network that confuses look-alike parts in one view (the mirror-mouse rig's four paws
in the top view, where they overlap) finds them but in the wrong order there, while another view keeps them
apart. On the real mirror-mouse frames of issue 23 the top-view paws carry half of the pixel error and are
permuted in about half of the frames, while the bottom-view paws are within a few pixels (BENCHMARKS.md). Used
as a filter (:mod:`animalpose.adapt.prior_agreement`) the multi-view prior can only drop such pseudo-labels;
here it repairs them.

For a group G of body parts and a reference view r, every other view v's keypoints of G are re-assigned among
G's parts: part p takes view v's keypoint of part σ(p), where σ minimises the multi-view reconstruction error
(:mod:`animalpose.adapt.multiview_loss`: e_u is the residual of view u after projecting the body part's 2V-vector
on the labelled frames' subspace)

    σ = argmin_σ Σ_{p∈G} Σ_u e_u(x_p with view v's point replaced by that of part σ(p)).

Each body part's sample holds only its own views, so the cost of giving part p the view-v point of part q is one
entry C[p, q] and σ is a linear assignment (the Hungarian method, ``scipy.optimize.linear_sum_assignment``). With
V > 2 the non-reference views are re-assigned one after another, each against the others as they stand. A
keypoint keeps its confidence and evidence when it moves (they belong to the heatmap peak that made it), and the
identity is kept unless another assignment costs strictly less.

Re-assigned, a look-alike part can still be wrong in the other view, most of all where it is hidden there (the
far-side paws behind the mouse's body in the mirror rig's top view), while the reference view shows it. The views'
subspace says where it must be: with the reference view's point fixed, the 2V-vectors of the subspace whose
reference part is that point form an affine set (for Lightning Pose's k = 3 axes and two views, a line in the other
view: the affine camera's epipolar line), and :func:`project_views` moves the other views' points to the member
closest to them (least squares over those views together). On the real mirror-mouse val frames this halves the
supervised models' mean pixel error (13.5 → 6.4 px, seed 0; the top-view paws 20–48 → 8–12 px; BENCHMARKS.md).

The reference view is the one the model gets right: given, or (``"auto"``) the view whose keypoints of the group
have the lowest mean pixel error on labelled frames (:func:`best_view`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from animalpose.adapt.multiview_loss import MultiviewPCA

#: two body parts look alike to a model when it swaps them, in some view, in at least this share of the labelled
#: frames (:func:`confusion_rates`): on the real mirror-mouse val frames (3 supervised models) the top-view paws'
#: pairs are swapped in 0.05-0.5 of them, each paw linked to another at >= 0.2, the bottom view's paw1-paw2 at
#: 0.15, and no other pair above 0.11 (a top paw and a tail point); BENCHMARKS.md "What `init` writes for a mirror
#: rig"
CONFUSION_RATE = 0.15

#: an axis of the subspace that the reference view sees less than this fraction as strongly as its main one is
#: hidden from it (a depth the view does not show): it is left to the other views, not solved for from noise
RANK_TOLERANCE = 1e-3


def sample_errors(samples: np.ndarray, mv: MultiviewPCA) -> np.ndarray:
    """(..., V) per-view reconstruction errors of (..., V, 2) body-part samples under ``mv``'s subspace."""
    mean = mv.pca.mean.detach().cpu().numpy().astype(np.float64)
    axes = mv.pca.components.detach().cpu().numpy().astype(np.float64)
    shape = samples.shape
    c = samples.reshape(-1, shape[-2] * 2).astype(np.float64) - mean
    r = c - (c @ axes.T) @ axes
    return np.linalg.norm(r.reshape(*shape[:-2], shape[-2], 2), axis=-1)


def assignment_cost(xy: np.ndarray, mv: MultiviewPCA, group: Sequence[int], view: int) -> np.ndarray:
    """(N, G, G) C[n, p, q]: the summed view errors of body part ``group[p]`` in frame n when view ``view``'s
    keypoint is that of body part ``group[q]``.

    Args:
        xy: (N, K, 2) keypoints, pixels of the frame the views share.
        group: G row indices of ``mv.views``.
    """
    idx = np.asarray(mv.views)[list(group)]  # (G, V) schema indices
    samples = np.repeat(xy[:, idx][:, :, None], len(group), axis=2)  # (N, G(p), G(q), V, 2)
    samples[:, :, :, view] = xy[:, idx[:, view]][:, None]  # view v's point of part q
    return sample_errors(samples, mv).sum(-1)


def reassign_views(xy: np.ndarray, mv: MultiviewPCA, groups: Sequence[Sequence[int]],
                   reference: Sequence[int]) -> np.ndarray:
    """(N, K) source indices: keypoint k of frame n is to take keypoint ``src[n, k]`` (module docstring).

    Args:
        xy: (N, K, 2) pseudo-labels, pixels of the frame the views share.
        groups: body-part groups, each a list of ≥ 2 row indices of ``mv.views`` (disjoint).
        reference: the reference view of each group (0..V-1).
    """
    from scipy.optimize import linear_sum_assignment

    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 3 or xy.shape[-1] != 2:
        raise ValueError(f"xy must be (N, K, 2), got {xy.shape}")
    if len(groups) != len(reference):
        raise ValueError(f"{len(groups)} groups but {len(reference)} reference views")
    views = np.asarray(mv.views)
    rows = [p for g in groups for p in g]
    if len(set(rows)) != len(rows) or any(not 0 <= p < len(views) for p in rows) or any(len(g) < 2 for g in groups):
        raise ValueError(f"groups must be disjoint lists of >= 2 body parts out of 0..{len(views) - 1}, got "
                         f"{[list(g) for g in groups]}")
    if any(not 0 <= r < mv.num_views for r in reference):
        raise ValueError(f"reference views must lie in 0..{mv.num_views - 1}, got {list(reference)}")
    n = len(xy)
    src = np.tile(np.arange(xy.shape[1]), (n, 1))
    cur = xy.copy()
    for group, ref in zip(groups, reference, strict=True):
        g = np.asarray(group)
        for v in (u for u in range(mv.num_views) if u != ref):
            cost = assignment_cost(cur, mv, group, v)  # (N, G, G)
            keys = views[g, v]  # schema keypoints of the group in view v
            for i in range(n):
                if not np.isfinite(cost[i]).all():  # a part not predicted in this frame: nothing to compare
                    continue
                rows_, cols = linear_sum_assignment(cost[i])
                if cost[i][rows_, cols].sum() < np.trace(cost[i]) - 1e-9:
                    cur[i, keys] = cur[i, keys[cols]]
                    src[i, keys] = src[i, keys[cols]]
    return src


def view_errors(errors: np.ndarray, views: np.ndarray, group: Sequence[int]) -> list[float | None]:
    """Each view's mean of (N, K) pixel ``errors`` (NaN: not labelled) over the keypoints of ``group`` (rows of the
    (P, V) ``views``); None for a view where none of them is labelled."""
    idx = np.asarray(views)[list(group)]  # (G, V)
    errors = np.asarray(errors, dtype=np.float64)
    return [float(np.nanmean(errors[:, idx[:, v]])) if np.isfinite(errors[:, idx[:, v]]).any() else None
            for v in range(idx.shape[1])]


def best_view(errors: np.ndarray, mv: MultiviewPCA, group: Sequence[int]) -> int:
    """The view whose keypoints of ``group`` have the lowest mean of (N, K) pixel ``errors`` (NaN: not labelled).

    Raises ValueError when a view has no labelled keypoint of the group."""
    means = view_errors(errors, mv.views, group)
    for v, m in enumerate(means):
        if m is None:
            raise ValueError(f"view {v} has no labelled keypoint of the group to compare")
    return int(np.argmin(means))


def group_rows(groups: Sequence[Sequence[str]], views: Sequence[Sequence[str]]) -> list[list[int]]:
    """Groups of body parts named by any view's keypoint as row indices of ``views`` (each body part's keypoint
    in every view); ValueError for a name in no row, a body part twice or a group of one."""
    row_of = {j: p for p, row in enumerate(views) for j in row}
    unknown = [j for g in groups for j in g if j not in row_of]
    if unknown:
        raise ValueError(f"{unknown}: not keypoints of the views")
    out = [[row_of[j] for j in g] for g in groups]
    flat = [p for g in out for p in g]
    if len(set(flat)) != len(flat) or any(len(g) < 2 for g in out):
        raise ValueError("each group needs >= 2 body parts, each body part in one group once")
    return out


def confusion_rates(xy: np.ndarray, truth: np.ndarray, views: np.ndarray) -> np.ndarray:
    """(V, P, P) how often the model confuses two body parts in each view, on labelled frames.

    R[v, p, q] (p ≠ q) is the share of the frames labelling both parts in view v where one part's predicted point
    lies nearer the other's label than its own, counted both ways and halved: 1 when, in every such frame, each
    lies nearer the other's label (a plain swap). The diagonal is 0; a pair no frame labels in a view is 0 there.

    Args:
        xy: (N, K, 2) predictions (or pseudo-labels), original pixels.
        truth: (N, K, 3) labels with visibility (> 0: labelled).
        views: (P, V) schema keypoints of each body part in every view.
    """
    xy, truth, views = np.asarray(xy, np.float64), np.asarray(truth, np.float64), np.asarray(views)
    if xy.ndim != 3 or truth.shape[:2] != xy.shape[:2] or views.ndim != 2:
        raise ValueError(f"xy (N, K, 2), truth (N, K, 3) and views (P, V) expected, got {xy.shape}, {truth.shape}, "
                         f"{views.shape}")
    num_parts, num_views = views.shape
    out = np.zeros((num_views, num_parts, num_parts))
    for v in range(num_views):
        k = views[:, v]
        pred, lab, seen = xy[:, k], truth[:, k, :2], truth[:, k, 2] > 0  # (N, P, 2), (N, P, 2), (N, P)
        dist = np.linalg.norm(pred[:, :, None] - lab[:, None], axis=-1)  # (N, P, Q): part p's point to q's label
        nearer = dist < np.diagonal(dist, axis1=1, axis2=2)[:, :, None]
        both = seen[:, :, None] & seen[:, None]
        count = (nearer & both).sum(0)
        frames = both.sum(0)
        rate = (count + count.T) / (2.0 * np.maximum(frames, 1))  # 0 where no frame labels both
        np.fill_diagonal(rate, 0.0)
        out[v] = rate
    return out


def confused_groups(rates: np.ndarray, min_rate: float) -> list[list[int]]:
    """Groups of look-alike body parts: the connected components (of ≥ 2 parts, in row order) of the pairs whose
    :func:`confusion_rates` reach ``min_rate`` in some view. [] when no pair does."""
    linked = (np.asarray(rates) >= min_rate).any(0)
    num_parts = linked.shape[0]
    label = list(range(num_parts))

    def root(p: int) -> int:
        while label[p] != p:
            label[p] = label[label[p]]
            p = label[p]
        return p

    for p, q in zip(*np.nonzero(np.triu(linked, 1)), strict=True):
        label[root(int(p))] = root(int(q))
    comps: dict[int, list[int]] = {}
    for p in range(num_parts):
        comps.setdefault(root(p), []).append(p)
    return sorted((c for c in comps.values() if len(c) >= 2), key=lambda c: c[0])


def group_keypoints(mv: MultiviewPCA, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """The schema keypoints of the ``groups``' body parts in every view, sorted."""
    return np.sort(np.asarray(mv.views)[[p for g in groups for p in g]].ravel())


def agreeing_views(xy: np.ndarray, mv: MultiviewPCA, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """(N, K) bool: the keypoints of the ``groups``' body parts whose every view lies within ε of the views'
    subspace (the multi-view prior's rule, :mod:`animalpose.adapt.prior_agreement`); False elsewhere.

    After re-assignment this picks the pseudo-labels of look-alike parts far better than their confidence: on
    the real mirror-mouse val and test frames (supervised model, seed 0), the top-view paws whose views agree
    are 10.6 px off on average (5 % beyond 20 px), the others 62 px, while their confidence hardly tells the two
    apart (correlation with the error −0.17; BENCHMARKS.md)."""
    xy = np.asarray(xy, dtype=np.float64)
    rows = np.asarray([p for g in groups for p in g])
    idx = np.asarray(mv.views)[rows]  # (P', V)
    fits = (sample_errors(xy[:, idx], mv) <= mv.epsilon).all(-1)  # (N, P')
    out = np.zeros(xy.shape[:2], dtype=bool)
    for v in range(mv.num_views):
        out[:, idx[:, v]] = fits
    return out


def project_views(xy: np.ndarray, mv: MultiviewPCA, groups: Sequence[Sequence[int]],
                  reference: Sequence[int]) -> np.ndarray:
    """(N, K, 2) copy of ``xy`` whose group body parts have their non-reference views on the views' subspace
    (module docstring): with the subspace x = μ + Uᵀa and the reference view's rows R,

        a = a₀ + N t,   a₀ = (U_Rᵀ)⁺ (x_R − μ_R),   N a basis of the null space of U_Rᵀ,
        t = argmin_t || μ_O + U_Oᵀ (a₀ + N t) − x_O ||²  (the other views' rows O),

    and the other views become μ_O + U_Oᵀ a (the reference view's point stays; with k ≤ 2 axes t is empty and the
    reference view alone decides them). Keypoints outside the groups are returned as they are.
    """
    xy = np.asarray(xy, dtype=np.float64)
    out = xy.copy()
    views = np.asarray(mv.views)
    mean = mv.pca.mean.detach().cpu().numpy().astype(np.float64)  # (2V,)
    axes = mv.pca.components.detach().cpu().numpy().astype(np.float64)  # (k, 2V)
    for group, ref in zip(groups, reference, strict=True):
        rows_r = [2 * ref, 2 * ref + 1]
        rows_o = [i for i in range(2 * mv.num_views) if i not in rows_r]
        ur, uo = axes[:, rows_r].T, axes[:, rows_o].T  # (2, k), (2V - 2, k)
        _, sv, vt = np.linalg.svd(ur)
        null = vt[int((sv > RANK_TOLERANCE * sv.max()).sum()):].T  # (k, k - rank)
        idx = views[list(group)]  # (G, V)
        x = xy[:, idx].reshape(len(xy), len(group), -1)  # (N, G, 2V): view-major (x, y) pairs
        a0 = (x[..., rows_r] - mean[rows_r]) @ np.linalg.pinv(ur, rcond=RANK_TOLERANCE).T  # (N, G, k)
        fitted = mean[rows_o] + a0 @ uo.T  # (N, G, 2V - 2)
        if null.shape[1]:
            m = uo @ null  # (2V - 2, k - rank)
            t = (x[..., rows_o] - fitted) @ np.linalg.pinv(m).T  # (N, G, k - rank)
            fitted = fitted + t @ m.T
        x[..., rows_o] = fitted
        new = x.reshape(len(xy), len(group), mv.num_views, 2)
        for v in (u for u in range(mv.num_views) if u != ref):
            out[:, idx[:, v]] = new[:, :, v]
    return out
