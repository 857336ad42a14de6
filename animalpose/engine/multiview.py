"""A multi-view rig's geometry applied to predictions: look-alike body parts re-assigned across the views and the
less reliable view's points moved onto the views' subspace (``multiview:`` of the experiment config).

In a mirror rig (Lightning Pose's mirror-mouse: a side view above, the mirror's bottom view below) every body part
is seen twice, and one 3-D point has both copies. The network places the four paws well in the bottom view, where
they lie apart, and badly in the side view, where they overlap and the far-side paws hide behind the body (real
mirror-mouse val frames: bottom paws 4–7 px off, side paws 20–48 px; BENCHMARKS.md). The labelled frames fit the
views' subspace (:mod:`animalpose.adapt.multiview_loss`, Lightning Pose's multi-view PCA); given it, each frame's
prediction is mended in two steps (:mod:`animalpose.adapt.view_assignment`): the look-alike parts' points in the
other views are re-assigned among the group to fit the subspace (a per-frame linear assignment), then moved onto
it through the reference view's point (with two views, to the nearest point of the affine epipolar line). The
reference view's points and every keypoint outside the groups are left as predicted.

The subspace is fitted on ``data.train`` when training starts and travels in the checkpoint (``extra["multiview"]``),
so ``evaluate`` and ``predict`` apply it without the labels; ``--no-multiview`` turns it off. With ``multiview.correct:
auto`` the groups and their references are what the trained model swaps on ``data.val`` (:func:`look_alike`), found
when training ends and written into best.ckpt and last.ckpt, each from its own weights (``extra["multiview_found"]``
keeps what was found, groups or none). Confidences move with
their keypoints in the re-assignment and are kept for projected points (the heatmap's evidence is unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from animalpose.adapt.multiview_loss import MultiviewPCA, fit_multiview_pca
from animalpose.adapt.pca_loss import PosePCA
from animalpose.adapt.view_assignment import (
    CONFUSION_RATE,
    confused_groups,
    confusion_rates,
    group_rows,
    project_views,
    reassign_views,
    view_errors,
)
from animalpose.config import ExperimentConfig
from animalpose.data.records import PoseRecord
from animalpose.errors import ConfigError
from animalpose.keypoints import KeypointSchema


@dataclass(frozen=True)
class MultiviewCorrection:
    """The views' subspace and what to mend with it.

    Attributes:
        prior: the subspace fitted on labelled frames (``prior.views``: (P, V) schema indices).
        groups: look-alike body parts, as row indices of ``prior.views``.
        reference: the view each group is taken from as predicted.
    """

    prior: MultiviewPCA
    groups: tuple[tuple[int, ...], ...]
    reference: tuple[int, ...]

    def apply(self, pred: np.ndarray) -> np.ndarray:
        """(N, K, C ≥ 2) predictions (x, y in the frame the views share, then e.g. the likelihood) mended (module
        docstring); the input is left as it is."""
        pred = np.asarray(pred)
        if pred.ndim != 3 or pred.shape[-1] < 2:
            raise ValueError(f"predictions must be (N, K, >= 2), got {pred.shape}")
        if not len(pred):
            return pred.copy()
        src = reassign_views(pred[..., :2], self.prior, self.groups, self.reference)
        out = np.take_along_axis(pred, src[..., None], axis=1).copy()
        out[..., :2] = project_views(out[..., :2], self.prior, self.groups, self.reference)
        return out

    def group_names(self, schema: KeypointSchema) -> list[list[str]]:
        """Each mended group's body parts, named by their first view's keypoint."""
        return [[schema.joints[self.prior.views[p][0]] for p in g] for g in self.groups]

    def to_dict(self) -> dict:
        """Plain types for a checkpoint's ``extra``."""
        pca = self.prior.pca
        return {"views": [list(r) for r in self.prior.views], "mean": pca.mean.tolist(),
                "components": pca.components.tolist(), "epsilon": float(pca.epsilon),
                "explained": float(pca.explained), "groups": [list(g) for g in self.groups],
                "reference": list(self.reference)}

    @classmethod
    def from_dict(cls, doc: dict) -> MultiviewCorrection:
        views = tuple(tuple(int(i) for i in r) for r in doc["views"])
        pca = PosePCA(torch.tensor(doc["mean"], dtype=torch.float32),
                      torch.tensor(doc["components"], dtype=torch.float32), float(doc["epsilon"]),
                      tuple(range(len(views[0]))), float(doc["explained"]))
        return cls(MultiviewPCA(pca, views), tuple(tuple(int(p) for p in g) for g in doc["groups"]),
                   tuple(int(r) for r in doc["reference"]))

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> MultiviewCorrection | None:
        """The correction a checkpoint carries (None when its model was trained without ``multiview.correct``)."""
        doc = (ckpt.get("extra") or {}).get("multiview")
        return cls.from_dict(doc) if doc else None


def fit_named_views(names: Sequence[Sequence[str]], keypoints: Sequence[np.ndarray], schema: KeypointSchema,
                    components: int | float, percentile: float, epsilon: float | None = None, *, key: str,
                    components_key: str, where: str = "<config>") -> MultiviewPCA:
    """The views' subspace of body parts named by their keypoint in every view (``names``, the config's ``key``)
    fitted on (K, 3) labelled ``keypoints``; ConfigError naming ``key`` (or ``components_key``) for an unknown
    keypoint, a ragged table, too few labelled frames or a bad component count."""
    unknown = [j for row in names for j in row if j not in schema.joints]
    if unknown:
        raise ConfigError(where, key, f"{unknown}: not keypoints of schema {schema.name!r} "
                                      f"({', '.join(schema.joints)})")
    rows = [[schema.index(j) for j in row] for row in names]
    try:
        return fit_multiview_pca(list(keypoints), rows, components, percentile, epsilon)
    except ValueError as exc:
        raise ConfigError(where, components_key if "components" in str(exc) else key, f"data.train: {exc}") from None


def fit_correction(views: Sequence[Sequence[str]], correct: Sequence[Sequence[str]], reference: int,
                   keypoints: Sequence[np.ndarray], schema: KeypointSchema, components: int | float = 3,
                   percentile: float = 90.0, where: str = "<config>") -> MultiviewCorrection:
    """The correction of ``multiview.views`` / ``correct`` / ``reference`` fitted on (K, 3) labelled
    ``keypoints``; ConfigError naming the key for an unknown keypoint, a group of one, too few labelled frames."""
    prior = fit_named_views(views, keypoints, schema, components, percentile, key="multiview.views",
                            components_key="multiview.components", where=where)
    try:
        groups = group_rows(correct, views)
    except ValueError as exc:
        raise ConfigError(where, "multiview.correct", f"{exc} (multiview.views)") from None
    if not 0 <= reference < prior.num_views:
        raise ConfigError(where, "multiview.reference", f"{reference} is not a view (0..{prior.num_views - 1})")
    return MultiviewCorrection(prior, tuple(map(tuple, groups)), (reference,) * len(groups))


def multiview_correction(cfg: ExperimentConfig, records: Sequence[PoseRecord],
                         schema: KeypointSchema) -> MultiviewCorrection:
    """``cfg.multiview``'s correction (named groups) fitted on the labelled ``records`` (the training set)."""
    m = cfg.multiview
    if m.correct == "auto":
        raise ValueError("multiview.correct auto is found on a trained model's val predictions: found_correction")
    return fit_correction(m.views, m.correct, m.reference, [r.keypoints for r in records], schema, m.components,
                         m.percentile)


def multiview_prior(cfg: ExperimentConfig, records: Sequence[PoseRecord], schema: KeypointSchema) -> MultiviewPCA:
    """``cfg.multiview.views``' subspace fitted on the labelled ``records`` (ConfigError naming the key)."""
    m = cfg.multiview
    return fit_named_views(m.views, [r.keypoints for r in records], schema, m.components, m.percentile,
                           key="multiview.views", components_key="multiview.components")


def found_correction(prior: MultiviewPCA, found: dict, views: Sequence[Sequence[str]]) -> MultiviewCorrection | None:
    """``multiview.correct: auto``: the correction of the groups :func:`look_alike` ``found`` (each with the view
    it names as reference) on the views' subspace ``prior``; None when it found none. Such a group is one a
    user would name after reading ``evaluate``'s look-alike lines, made without the reading (and without
    retraining: the subspace comes from the training labels either way)."""
    groups = [g for g in found["groups"] if g["reference"] is not None]
    if not groups:
        return None
    rows = group_rows([g["parts"] for g in groups], views)
    return MultiviewCorrection(prior, tuple(map(tuple, rows)), tuple(int(g["reference"]) for g in groups))


def look_alike(pred: np.ndarray, truth: np.ndarray, views: Sequence[Sequence[str]], schema: KeypointSchema,
               min_rate: float = CONFUSION_RATE) -> dict:
    """What a multi-view model confuses on labelled frames, to fill ``multiview.correct`` and ``reference``: the
    groups of body parts it swaps in at least ``min_rate`` of the frames in some view
    (:func:`~animalpose.adapt.view_assignment.confused_groups`, each part named by its first view's keypoint), each
    group's mean pixel error in every view and the view with the lowest (the reference to name), and the rate of
    every pair swapped at all (each view's keypoint names, ``"a / b"``).

    Args:
        pred: (N, K, >= 2) raw predictions (before any mending), original pixels.
        truth: (N, K, 3) labels with visibility.
        views: ``multiview.views``: each body part's keypoint in every view, by name.
    """
    idx = np.asarray([[schema.index(j) for j in row] for row in views])
    pred = np.asarray(pred, np.float64)[..., :2]
    truth = np.asarray(truth, np.float64)
    rates = confusion_rates(pred, truth, idx)
    groups = confused_groups(rates, min_rate)
    err = np.linalg.norm(pred - truth[..., :2], axis=-1)
    err[truth[..., 2] <= 0] = np.nan
    found = []
    for g in groups:
        per_view = view_errors(err, idx, g)
        known = [e for e in per_view if e is not None]
        found.append({"parts": [views[p][0] for p in g], "view_error_px": per_view,
                      "reference": per_view.index(min(known)) if known else None})
    pairs = {f"{schema.joints[idx[p, v]]} / {schema.joints[idx[q, v]]}": round(float(rates[v, p, q]), 3)
             for v in range(idx.shape[1]) for p in range(len(idx)) for q in range(p + 1, len(idx))
             if rates[v, p, q] > 0}
    return {"min_rate": min_rate, "groups": found, "pairs": pairs, "frames": len(pred)}
