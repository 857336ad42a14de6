"""Pseudo-label diagnostics: what each consistency check accepted, and how right it was.

No published CC-SSL tool reports this. Per round it gives:

- the pseudo-labels as COCO keypoints JSON, each annotation carrying per-joint confidences, every
  score component, the weight (accepted or not) and the check that decided it;
- where the target has ground truth (generated target domains, benchmarks): the **precision** of
  the accepted pseudo-labels (PCK@α of kept joints against truth, crop normalisation: distance in
  crop pixels at most α × crop width), their **coverage** (kept / all joints) and the
  **precision–coverage curve** of each check — joints ranked by that check's score alone, the
  precision of the top c fraction for c in (0, 1];
- a gallery of crops with accepted (green) and rejected (red) joints.

The checks are scored as follows (higher is more trustworthy):

- ``equivariance``: peak of the geometric-views average × geometric agreement;
- ``invariance``: peak of the photometric-views average × photometric agreement (absent when off);
- ``temporal``: the optical-flow confidence (only frames with a predecessor);
- ``combined``: the final confidence the selection thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from animalpose.adapt.pseudolabel import PseudoLabelSet
from animalpose.adapt.selection import coinciding
from animalpose.atomic import write_json_atomic
from animalpose.data.transforms import transform_points_batched
from animalpose.keypoints import KeypointSchema

CHECKS = ("equivariance", "invariance", "temporal", "combined")
DEFAULT_COVERAGES = tuple(np.round(np.arange(0.05, 1.0001, 0.05), 2))
# a left joint and its right partner closer than this (fraction of the crop width) are one point: the
# truth almost never puts them there (1.2 % of labelled pairs in the Animal-Pose horse train split), a
# model unsure which leg is which does (57 % of all pairs of a synthetic-trained horse model on it)
COLLAPSE_DISTANCE = 0.02


def check_scores(labels: PseudoLabelSet) -> dict[str, np.ndarray]:
    """(N, K) score of each check (NaN where the check does not apply)."""
    c = labels.components
    out = {"equivariance": c["peak_geo"] * c["agree_geo"]}
    if np.isfinite(c["peak_photo"]).any():
        out["invariance"] = c["peak_photo"] * c["agree_photo"]
    out["temporal"] = np.asarray(labels.flow_conf, dtype=np.float64)
    out["combined"] = np.asarray(labels.confidence, dtype=np.float64)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def verdicts(labels: PseudoLabelSet) -> np.ndarray:
    """(N, K) object array: which check decided each joint.

    ``accepted`` / ``accepted:temporal`` (kept, value from the optical flow), or ``rejected:<check>``
    naming the weakest applicable check (equivariance or invariance) of a joint under the threshold.
    """
    n, k = labels.confidence.shape
    out = np.empty((n, k), dtype=object)
    scores = check_scores(labels)
    weak = [name for name in ("equivariance", "invariance") if name in scores]
    stack = np.stack([np.nan_to_num(scores[w], nan=np.inf) for w in weak])
    weakest = np.asarray(weak, dtype=object)[stack.argmin(0)]
    kept = labels.weights > 0
    out[kept] = "accepted"
    out[kept & labels.replaced] = "accepted:temporal"
    out[~kept] = np.char.add("rejected:", weakest[~kept].astype(str)).astype(object)
    return out


def crop_errors(labels: PseudoLabelSet) -> np.ndarray:
    """(N, K) distance to the truth in crop pixels / crop width; NaN where no labelled truth."""
    if labels.truth is None:
        return np.full(labels.confidence.shape, np.nan)
    truth = np.asarray(labels.truth, dtype=np.float64)
    t_crop = transform_points_batched(truth[..., :2], labels.matrices)
    d = np.linalg.norm(labels.crop_xy.astype(np.float64) - t_crop, axis=-1) / float(labels.input_size[0])
    w, h = labels.input_size
    inside = (t_crop[..., 0] >= 0) & (t_crop[..., 0] <= w - 1) & (t_crop[..., 1] >= 0) & (t_crop[..., 1] <= h - 1)
    d[(truth[..., 2] <= 0) | ~inside] = np.nan
    return d


def collapsed(labels: PseudoLabelSet, flip_pairs: Sequence[tuple[int, int]],
              distance: float = COLLAPSE_DISTANCE) -> np.ndarray:
    """(N, K) bool: the joint's pseudo-label lies within ``distance`` × crop width of its left/right
    partner's (``flip_pairs``: the schema's (left, right) index pairs); False for unpaired joints."""
    return coinciding(labels.crop_xy, flip_pairs, distance * float(labels.input_size[0]))


def swapped(labels: PseudoLabelSet, flip_pairs: Sequence[tuple[int, int]], alpha: float) -> np.ndarray:
    """(N, K) bool: the joint's pseudo-label misses its own truth by more than ``alpha`` × crop width but
    lies within it of its partner's truth (a left/right swap); False where either truth is missing."""
    out = np.zeros(labels.confidence.shape, dtype=bool)
    if labels.truth is None:
        return out
    own = crop_errors(labels)
    truth = np.asarray(labels.truth, dtype=np.float64)
    t_crop = transform_points_batched(truth[..., :2], labels.matrices)
    xy = labels.crop_xy.astype(np.float64)
    width = float(labels.input_size[0])
    for i, j in flip_pairs:
        for a, b in ((i, j), (j, i)):
            other = np.linalg.norm(xy[:, a] - t_crop[:, b], axis=-1) / width
            other[(truth[:, b, 2] <= 0) | np.isnan(own[:, a])] = np.nan
            out[:, a] = (own[:, a] > alpha + 1e-9) & (other <= alpha + 1e-9)
    return out


def precision_coverage(score: np.ndarray, correct: np.ndarray, valid: np.ndarray,
                       coverages: Sequence[float] = DEFAULT_COVERAGES) -> np.ndarray:
    """Precision of the top-``c`` fraction of joints ranked by ``score``, for each coverage c.

    Args:
        score: (N, K) check score (NaN: not applicable, ranked last and never counted).
        correct: (N, K) bool, the joint's pseudo-label is within the PCK threshold.
        valid: (N, K) bool, the joint has truth.

    Returns:
        (len(coverages),) precision; NaN where no joint is covered. Coverage is relative to the valid
        joints with a finite score.
    """
    s = np.asarray(score, dtype=np.float64)
    use = np.asarray(valid, dtype=bool) & np.isfinite(s)
    vals, ok = s[use], np.asarray(correct, dtype=bool)[use]
    if len(vals) == 0:
        return np.full(len(coverages), np.nan)
    order = np.argsort(-vals, kind="stable")
    cum = np.cumsum(ok[order])
    out = []
    for c in coverages:
        n = int(np.ceil(c * len(vals) - 1e-9))
        out.append(cum[n - 1] / n if n > 0 else np.nan)
    return np.asarray(out, dtype=np.float64)


def summarize(labels: PseudoLabelSet, alpha: float = 0.05,
              coverages: Sequence[float] = DEFAULT_COVERAGES, *, joints: Sequence[str] = (),
              flip_pairs: Sequence[tuple[int, int]] = (), collapse_distance: float = COLLAPSE_DISTANCE) -> dict:
    """Round metrics: coverage, counts, and where truth exists precision and per-check curves.

    With the schema's ``flip_pairs``: ``collapsed`` (kept paired joints whose pseudo-label coincides with
    their partner's within ``collapse_distance`` × the crop, the run's ``ccssl.collapse_distance``,
    :func:`collapsed`) and ``collapsed_all`` (all paired joints); with truth also
    ``swapped@alpha`` (kept paired joints that hit their partner's truth instead of their own), and after
    ``pair_decoding: resolve`` ``resolved`` / ``resolved_all`` (kept / all paired joints decoded again away
    from their partner, :func:`~animalpose.adapt.pairs.resolve_pairs`). With
    ``joints`` (names): a ``per_joint`` table (kept share, and with truth precision and PCK of all)."""
    kept = labels.weights > 0
    n_total = kept.size
    out: dict = {
        "coverage": float(kept.sum() / n_total) if n_total else 0.0,
        "num_kept": int(kept.sum()),
        "num_joints": int(n_total),
        "threshold": float(labels.threshold),
        "num_temporal": int((labels.replaced & kept).sum()),
        "mean_confidence": float(np.nanmean(labels.confidence)) if n_total else float("nan"),
    }
    d = crop_errors(labels)
    valid = np.isfinite(d)
    if valid.any():
        correct = valid & (np.where(valid, d, np.inf) <= alpha + 1e-9)
        kv = kept & valid
        out[f"precision@{alpha}"] = float(correct[kv].mean()) if kv.any() else float("nan")
        out[f"all_pck@{alpha}"] = float(correct[valid].mean())
        out[f"rejected_pck@{alpha}"] = float(correct[valid & ~kept].mean()) if (valid & ~kept).any() else float(
            "nan")
        out["curves"] = {
            name: precision_coverage(score, correct, valid, coverages).tolist()
            for name, score in check_scores(labels).items()
        }
        out["coverages"] = [float(c) for c in coverages]
        if alpha != 0.1:  # the looser level says whether misses are near (localisation) or far (wrong part)
            near = valid & (np.where(valid, d, np.inf) <= 0.1 + 1e-9)
            out["precision@0.1"] = float(near[kv].mean()) if kv.any() else float("nan")
    if flip_pairs:
        paired = np.zeros(kept.shape[1], dtype=bool)
        paired[[i for p in flip_pairs for i in p]] = True
        both = collapsed(labels, flip_pairs, collapse_distance)
        kp = kept & paired[None]
        out["collapsed"] = float(both[kp].mean()) if kp.any() else float("nan")
        out["collapsed_all"] = float(both[:, paired].mean()) if both.size else float("nan")
        if "resolved" in labels.components:  # pair_decoding: resolve
            moved = labels.components["resolved"] > 0
            out["resolved"] = float(moved[kp].mean()) if kp.any() else float("nan")
            out["resolved_all"] = float(moved[:, paired].mean()) if moved.size else float("nan")
        if valid.any():
            sw = swapped(labels, flip_pairs, alpha)
            kpv = kp & valid
            out[f"swapped@{alpha}"] = float(sw[kpv].mean()) if kpv.any() else float("nan")
    if joints:
        table = {}
        for k, name in enumerate(joints):
            row = {"kept": float(kept[:, k].mean()) if len(kept) else float("nan")}
            if valid.any():
                kv_k = kept[:, k] & valid[:, k]
                row[f"precision@{alpha}"] = float(correct[kv_k, k].mean()) if kv_k.any() else None
                row[f"all_pck@{alpha}"] = float(correct[valid[:, k], k].mean()) if valid[:, k].any() else None
            table[name] = row
        out["per_joint"] = table
    return out


def _num(v: float) -> float | None:
    return round(float(v), 5) if np.isfinite(v) else None


def pseudo_label_coco(labels: PseudoLabelSet, schema: KeypointSchema, round_index: int) -> dict:
    """COCO keypoints document of the pseudo-labels with per-joint evidence in each annotation.

    Each annotation has the standard fields (``keypoints`` x, y, v with v = 2 for accepted joints,
    0 for rejected ones) and ``confidence`` (K), ``weight`` (K), ``check`` (K verdicts),
    ``components`` ({name: K}), ``flow_confidence`` (K, null where none) and ``record`` (its index).
    """
    ver = verdicts(labels)
    images: dict[tuple, dict] = {}
    anns = []
    for i, rec in enumerate(labels.records):
        key = (rec.image, rec.frame_index)
        if key not in images:
            entry = {"id": len(images) + 1, "file_name": str(rec.image)}
            if rec.image_size is not None:
                entry["width"], entry["height"] = int(rec.image_size[0]), int(rec.image_size[1])
            if rec.frame_index is not None:
                entry["frame_index"] = int(rec.frame_index)
            if rec.video_id is not None:
                entry["video_id"] = str(rec.video_id)
            images[key] = entry
        kept = labels.weights[i] > 0
        kp = np.concatenate([labels.xy[i], np.where(kept, 2.0, 0.0)[:, None]], 1)
        box = rec.bbox
        if box is None:
            lo, hi = labels.xy[i].min(0), labels.xy[i].max(0)
            box = (float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
        anns.append({
            "id": i + 1,
            "image_id": images[key]["id"],
            "category_id": 1,
            "keypoints": [_num(v) for v in kp.reshape(-1)],
            "num_keypoints": int(kept.sum()),
            "bbox": [_num(v) for v in box],
            "area": _num(box[2] * box[3]),
            "iscrowd": 0,
            "record": i,
            "confidence": [_num(v) for v in labels.confidence[i]],
            "weight": [float(v) for v in labels.weights[i]],
            "check": [str(v) for v in ver[i]],
            "flow_confidence": [_num(v) for v in labels.flow_conf[i]],
            "components": {name: [_num(v) for v in arr[i]] for name, arr in labels.components.items()},
        })
    return {
        "info": {"schema": schema.name, "round": int(round_index), "threshold": _num(labels.threshold),
                 "description": "CC-SSL pseudo-labels with per-joint evidence"},
        "images": list(images.values()),
        "annotations": anns,
        "categories": [{"id": 1, "name": schema.name, "supercategory": "animal", "keypoints": list(schema.joints),
                        "skeleton": [[a + 1, b + 1] for a, b in schema.skeleton]}],
    }


def jsonable(value):
    """``value`` with NaN / inf floats replaced by None (strict JSON), numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(doc: dict, path: str | Path) -> Path:
    """Write ``doc`` atomically (temporary file in the same folder, then rename); NaN is written as null."""
    return write_json_atomic(path, jsonable(doc), allow_nan=False)


def curves_figure(summary: dict, title: str = "pseudo-label precision vs coverage"):
    """Figure of the per-check precision–coverage curves of :func:`summarize` (None without truth)."""
    if "curves" not in summary:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    cov = summary["coverages"]
    for name, ys in summary["curves"].items():
        ys = np.asarray(ys, dtype=float)
        if np.isfinite(ys).any():
            ax.plot(cov, ys, label=name, lw=1.4 if name == "combined" else 1.0)
    if np.isfinite(summary.get("coverage", np.nan)):
        ax.axvline(summary["coverage"], color="grey", ls=":", lw=0.8)
    ax.set_xlabel("coverage (fraction of joints kept)")
    ax.set_ylabel("precision (PCK of kept joints)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def gallery_figure(crops: Sequence[np.ndarray], crop_xy: np.ndarray, kept: np.ndarray,
                   truth_xy: np.ndarray | None = None, columns: int = 4, title: str | None = None):
    """Crops with accepted (green) and rejected (red) pseudo-labels; truth as white rings when known.

    Args:
        crops: (H, W, 3) uint8 RGB each.
        crop_xy: (N, K, 2) pseudo-labels in crop pixels.
        kept: (N, K) bool.
        truth_xy: optional (N, K, 3) truth in crop pixels (x, y, visibility).
    """
    from matplotlib.figure import Figure

    n = len(crops)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    fig = Figure(figsize=(2.2 * cols, 2.2 * rows))
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(crops[i])
        k = np.asarray(kept[i], dtype=bool)
        ax.scatter(crop_xy[i, k, 0], crop_xy[i, k, 1], s=10, c="lime", edgecolors="black", linewidths=0.3)
        ax.scatter(crop_xy[i, ~k, 0], crop_xy[i, ~k, 1], s=10, c="red", marker="x", linewidths=0.8)
        if truth_xy is not None:
            v = truth_xy[i, :, 2] > 0
            ax.scatter(truth_xy[i, v, 0], truth_xy[i, v, 1], s=18, facecolors="none", edgecolors="white",
                       linewidths=0.6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
