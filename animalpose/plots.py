"""Matplotlib figures (no pyplot, no display): PCK-vs-threshold curves, per-joint bars, prediction
grids and learning curves. Each function returns a Figure; :func:`save_figure` writes it atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # pyplot is never imported: no GUI backend, no global state

from animalpose.atomic import atomic_path


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix) via a temporary file and rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return path


def pck_curve_figure(alphas: Sequence[float], curves: Mapping[str, Sequence[float]],
                     title: str = "PCK vs threshold") -> Figure:
    """One line per model/split: PCK (%) against α."""
    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot()
    for name, values in curves.items():
        ax.plot(alphas, 100 * np.asarray(values, dtype=float), marker="o", ms=3, label=name)
    ax.set_xlabel("threshold α")
    ax.set_ylabel("PCK (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    return fig


def per_joint_figure(values: Mapping[str, float], title: str = "PCK per joint") -> Figure:
    """Horizontal bars, one per joint (NaN drawn as an empty bar labelled n/a)."""
    names = list(values)
    vals = np.array([values[n] for n in names], dtype=float)
    fig = Figure(figsize=(5, 0.3 * len(names) + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(names))
    ax.barh(y, 100 * np.nan_to_num(vals), color="tab:blue")
    for yi, v in zip(y, vals, strict=True):
        ax.text(1 if not np.isfinite(v) else 100 * v + 1, yi, "n/a" if not np.isfinite(v) else f"{100 * v:.1f}",
                va="center", fontsize=7)
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xlabel("%")
    ax.set_title(title)
    return fig


def stage_comparison_figure(series: Mapping[str, Sequence[float | None]], stages: Sequence[str],
                            title: str = "PCK@0.05 by stage") -> Figure:
    """One line per data set over the stages in order (e.g. source-only, round 1..N, oracle); values are
    fractions drawn in %, None leaves a gap; each point is labelled with its value."""
    fig = Figure(figsize=(max(4.5, 1.1 * len(stages) + 1.5), 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(stages))
    for name, values in series.items():
        y = np.array([np.nan if v is None else 100 * float(v) for v in values], dtype=float)
        ax.plot(x, y, marker="o", label=name)
        for xi, yi in zip(x, y, strict=True):
            if np.isfinite(yi):
                ax.annotate(f"{yi:.1f}", (xi, yi), textcoords="offset points", xytext=(0, 5), ha="center",
                            fontsize=7)
    ax.set_xticks(x, list(stages), fontsize=8)
    ax.set_ylabel("%")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    return fig


def learning_curve_figure(history: Mapping[str, Sequence[tuple[int, float]]], title: str = "learning curves") -> Figure:
    """Each series is a list of (step or epoch, value); losses and scores get separate axes."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax2 = None
    for name, pts in history.items():
        if not pts:
            continue
        x, y = zip(*pts, strict=True)
        if "loss" in name:
            ax.plot(x, y, label=name)
        else:
            ax2 = ax2 or ax.twinx()
            ax2.plot(x, y, "--", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if any("loss" in n and history[n] for n in history):
        ax.set_yscale("log")
    lines, labels = ax.get_legend_handles_labels()
    if ax2 is not None:
        ax2.set_ylabel("score")
        l2, lab2 = ax2.get_legend_handles_labels()
        lines, labels = lines + l2, labels + lab2
    if lines:
        ax.legend(lines, labels, fontsize=8)
    ax.set_title(title)
    return fig


_CORRECT = {True: "limegreen", False: "red", None: "lightgrey"}


def prediction_grid_figure(images: Sequence[np.ndarray], predictions: Sequence[np.ndarray],
                           ground_truth: Sequence[np.ndarray | None] | None = None,
                           skeleton: Sequence[tuple[int, int]] = (), columns: int = 4,
                           title: str | None = None, captions: Sequence[str] | None = None,
                           correct: Sequence[Sequence[bool | None]] | None = None) -> Figure:
    """Images with predicted joints (coloured by confidence) and ground truth (white rings).

    Args:
        images: (H, W, 3) uint8 RGB each.
        predictions: (K, 3) x, y, confidence in that image's pixels.
        ground_truth: optional (K, 3) x, y, visibility.
        skeleton: joint index pairs drawn as bones between predicted joints.
        captions: one line under each image.
        correct: per image, per joint True / False / None: joints drawn green / red / grey instead of by
            confidence (e.g. within the PCK threshold of their label or not, or unlabelled).
    """
    n = len(images)
    cols = max(1, min(columns, n))
    rows = max(1, int(np.ceil(n / cols)))
    fig = Figure(figsize=(2.2 * cols, 2.2 * rows))
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i])
        pred = np.asarray(predictions[i], dtype=float)
        for a, b in skeleton:
            ax.plot(pred[[a, b], 0], pred[[a, b], 1], color="yellow", lw=0.8, alpha=0.7)
        if correct is not None:
            colours = [_CORRECT[c] for c in correct[i]]
            ax.scatter(pred[:, 0], pred[:, 1], c=colours, s=12, edgecolors="black", linewidths=0.3)
        else:
            conf = np.clip(pred[:, 2], 0, 1) if pred.shape[1] > 2 else np.ones(len(pred))
            ax.scatter(pred[:, 0], pred[:, 1], c=conf, cmap="RdYlGn", vmin=0, vmax=1, s=9, edgecolors="black",
                       linewidths=0.3)
        if ground_truth is not None and ground_truth[i] is not None:
            gt = np.asarray(ground_truth[i], dtype=float)
            vis = gt[:, 2] > 0
            ax.scatter(gt[vis, 0], gt[vis, 1], s=16, facecolors="none", edgecolors="white", linewidths=0.6)
        if captions is not None:
            ax.set_title(captions[i], fontsize=7, pad=2)
        h, w = images[i].shape[:2]
        ax.set_xlim(-0.5, w - 0.5)  # joints predicted outside the image do not shrink it
        ax.set_ylim(h - 0.5, -0.5)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def heatmap_figure(image: np.ndarray, heatmaps: np.ndarray, joint_names: Sequence[str], columns: int = 6) -> Figure:
    """Each joint's heatmap (K, h, w) overlaid on the (H, W, 3) input crop."""
    k = len(heatmaps)
    cols = max(1, min(columns, k))
    rows = int(np.ceil(k / cols))
    fig = Figure(figsize=(1.6 * cols, 1.7 * rows))
    h, w = image.shape[:2]
    for j in range(rows * cols):
        ax = fig.add_subplot(rows, cols, j + 1)
        ax.axis("off")
        if j >= k:
            continue
        ax.imshow(image)
        ax.imshow(heatmaps[j], extent=(0, w, h, 0), alpha=0.55, cmap="jet", vmin=0,
                  vmax=max(float(heatmaps[j].max()), 1e-6))
        ax.set_title(joint_names[j], fontsize=6)
    fig.tight_layout()
    return fig
