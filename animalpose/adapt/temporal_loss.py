"""Lightning Pose's temporal-difference loss on unlabelled video, as an unsupervised term of CC-SSL training.

Biderman et al., "Lightning Pose: improved animal pose estimation via semi-supervised learning, Bayesian
ensembling and cloud-native open-source tools", Nature Methods 2024 (Methods, "temporal difference
loss"; their code: ``lightning_pose.losses.losses.TemporalLoss``). For predictions p_{t,k} (pixels) on T
consecutive frames of a video::

    d_{t,k} = || p_{t+1,k} - p_{t,k} ||_2                       t = 0 .. T-2
    L_temporal = mean_{t,k} max(0, d_{t,k} - ε_k)

ε_k is a per-keypoint tolerance in pixels (a paw moves further between frames than the tail base): jumps
below it cost nothing, larger jumps cost their excess. As in their code, a pair of frames in which either
prediction's confidence is below ``threshold`` contributes 0 (an occluded or lost keypoint is no evidence
of a jump), and the mean runs over all (T-1)·K terms.

Here the predictions are the β-soft-argmax of the network's final heatmaps (differentiable), mapped back
from the crop to original-image pixels through each frame's crop affine, so ε is in the pixels of the
video. With ``ccssl.video_step = N`` the "consecutive" target frames are N video frames apart: ε is the
motion allowed over N frames.
"""

from __future__ import annotations

import numpy as np
import torch

from animalpose.data.records import PoseRecord
from animalpose.ops.soft_argmax import soft_argmax


def temporal_difference(coords: torch.Tensor, epsilon: torch.Tensor | float, confidence: torch.Tensor | None = None,
                        threshold: float = 0.0) -> torch.Tensor:
    """L_temporal of one clip (module docstring).

    Args:
        coords: (T, K, 2) predicted (x, y) on T consecutive frames, pixels.
        epsilon: (K,) per-keypoint tolerance in the same pixels, or one number for every keypoint.
        confidence: (T, K) prediction confidences, or None (every pair counts).
        threshold: pairs with a confidence below it (in either frame) contribute 0; 0 keeps every pair (raw
            heatmap maxima can be negative).

    Returns:
        the scalar loss (0 for a clip of one frame).
    """
    if coords.ndim != 3 or coords.shape[-1] != 2:
        raise ValueError(f"coords must be (T, K, 2), got {tuple(coords.shape)}")
    if coords.shape[0] < 2:
        return coords.sum() * 0.0
    d = torch.linalg.vector_norm(coords[1:] - coords[:-1], dim=-1)  # (T-1, K)
    if confidence is not None and threshold > 0:
        low = confidence < threshold
        d = d.masked_fill(low[1:] | low[:-1], 0.0)
    eps = torch.as_tensor(epsilon, dtype=d.dtype, device=d.device)
    return torch.relu(d - eps).mean()


def track_runs(records: list[PoseRecord], step: int = 1) -> list[list[int]]:
    """The runs of consecutive frames of one animal in one video of ``records`` (indices into it, in time order).

    Frames are consecutive when they belong to the same ``video_id`` and their ``frame_index`` values differ by
    ``step`` (the target's ``video_step``). Where several records share a frame (several animals), each track
    (``instance_id``) is its own sequence, as in the optical-flow check
    (:func:`animalpose.adapt.pseudolabel.finalize`: readers without track ids number instances per annotation, so
    the ids are used only where frames are shared). Records without a video id or frame index (photos) are in no
    run.
    """
    framed = [i for i, r in enumerate(records) if r.video_id is not None and r.frame_index is not None]
    frames = [(str(records[i].video_id), int(records[i].frame_index)) for i in framed]
    shared = len(set(frames)) < len(frames)

    def key(i: int) -> tuple[str, str]:
        return str(records[i].video_id), str(records[i].instance_id) if shared else ""

    order = sorted(framed, key=lambda i: (key(i), int(records[i].frame_index)))
    runs: list[list[int]] = []
    for i in order:
        prev = runs[-1][-1] if runs else None
        if prev is not None and key(prev) == key(i) and int(records[i].frame_index) - int(records[prev].frame_index) \
                == step:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def clip_windows(records: list[PoseRecord], length: int, step: int = 1) -> list[list[int]]:
    """Every window of ``length`` consecutive frames of one animal in one video of ``records`` (indices into it;
    :func:`track_runs` says what is consecutive)."""
    return [run[s:s + length] for run in track_runs(records, step) for s in range(len(run) - length + 1)]


def original_coordinates(heatmaps: torch.Tensor, matrices: torch.Tensor, input_size: tuple[int, int],
                         beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable keypoints in original-image pixels, and their confidences, from final heatmaps.

    Args:
        heatmaps: (N, K, h, w) final-stage scores.
        matrices: (N, 2, 3) crop affines (original -> crop pixels), the dataset's ``meta["matrix"]``.
        input_size: the crop's (W, H).
        beta: soft-argmax inverse temperature.

    Returns:
        coords (N, K, 2) original pixels; confidences (N, K): the heatmaps' maxima.
    """
    hm = heatmaps.float()
    xy, _ = soft_argmax(hm, beta)  # heatmap pixels
    h, w = hm.shape[-2:]
    crop = xy * xy.new_tensor([input_size[0] / w, input_size[1] / h])
    m = matrices.to(crop.device, torch.float32)
    inv = torch.linalg.inv(m[:, :, :2])  # (N, 2, 2)
    coords = torch.einsum("nij,nkj->nki", inv, crop - m[:, None, :, 2])
    return coords, hm.flatten(2).amax(-1)


def epsilon_tensor(epsilon: float | list[float], num_joints: int) -> torch.Tensor:
    """(K,) tolerances from one number or a per-keypoint list; ValueError on a wrong length."""
    eps = np.broadcast_to(np.asarray(epsilon, dtype=np.float32), (num_joints,)) if np.ndim(epsilon) == 0 else \
        np.asarray(epsilon, dtype=np.float32)
    if eps.shape != (num_joints,):
        raise ValueError(f"{len(eps)} tolerances for {num_joints} keypoints")
    return torch.from_numpy(eps.copy())
