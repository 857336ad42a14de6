"""G-RMI heatmap + offset targets and Hough-voting decoding (Papandreou, Zhu, Kanazawa, Toshev, Tompson,
Bregler & Murphy, "Towards Accurate Multi-person Pose Estimation in the Wild", CVPR 2017, Sec. 3.1).

Per joint k the network predicts a heatmap h_k (the probability that a pixel lies within R of the joint: a
*disk* of radius R, trained with a logistic loss) and an offset field F_k = (dx, dy) from each pixel to the
joint, trained only inside the disk (:class:`animalpose.losses.GRMILoss`). The output layout is
(N, 3K, h, w): K heatmap logits, then K x-offsets, then K y-offsets, offsets in heatmap pixels.

Decoding is the paper's Hough voting: every pixel x_i casts a vote at x_i + F_k(x_i) weighted by its
probability h_k(x_i), spread over the four nearest pixels by the bilinear kernel G and normalised by πR²,
giving the score map f_k(x) = Σ_i h_k(x_i) G(x_i + F_k(x_i) − x) / (πR²) (paper Eq. 1). The paper takes the
argmax of f_k at the input resolution; our maps are at stride 4, so the joint is the heatmap-weighted mean
of the votes that land within ``vote_radius`` of that argmax (sub-pixel), and its score the value of f_k
there. Exact targets decode exactly: every vote lands on the joint.

The grid is UDP's (x_hm = x_in (w − 1)/(W − 1), crops warped UDP-consistently, ``udp = True``): mirroring the
input then maps heatmap pixel j to w − 1 − j exactly, so the flip test negates the x-offsets
(:func:`animalpose.data.flip.flip_heatmaps`) and needs no pixel shift.

Where the numbers come from: R is the paper's disk radius, 25 px at its 353×257 input as we read Sec. 3.1
(about 4.5 heatmap px for a 256×192 crop at stride 4); the paper does not say how far around the Hough peak
votes are pooled at coarser resolution: ``vote_radius`` = 1 heatmap px is ours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from animalpose.codecs.base import GridMapping, check_keypoints, visible_in_crop


def split_fields(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, 3K, h, w) -> heatmap logits, x-offsets, y-offsets, each (N, K, h, w)."""
    if maps.ndim != 4 or maps.shape[1] % 3:
        raise ValueError(f"G-RMI outputs must be (N, 3K, h, w), got shape {tuple(maps.shape)}")
    k = maps.shape[1] // 3
    return maps[:, :k], maps[:, k:2 * k], maps[:, 2 * k:]


def _votes(maps: torch.Tensor, logits: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Vote weights p (N, K, hw) and positions vx, vy (N, K, hw) in heatmap pixels."""
    heat, dx, dy = split_fields(maps.float())
    n, k, h, w = heat.shape
    p = torch.sigmoid(heat) if logits else heat
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=maps.device),
                            torch.arange(w, dtype=torch.float32, device=maps.device), indexing="ij")
    return p.reshape(n, k, h * w), (xs + dx).reshape(n, k, h * w), (ys + dy).reshape(n, k, h * w)


def hough_maps(maps: torch.Tensor, radius: float, logits: bool = True) -> torch.Tensor:
    """Paper Eq. 1: f_k(x) = Σ_i p_k(x_i) G(x_i + F_k(x_i) − x) / (πR²), G the bilinear kernel.

    Args:
        maps: (N, 3K, h, w) heatmap logits (probabilities when ``logits`` is False) and offsets (heatmap px).
        radius: R in heatmap pixels.

    Returns:
        (N, K, h, w) float32; votes that land outside the map are dropped.
    """
    p, vx, vy = _votes(maps, logits)
    n, k = p.shape[:2]
    h, w = maps.shape[-2:]
    x0, y0 = vx.floor(), vy.floor()
    fx, fy = vx - x0, vy - y0
    out = torch.zeros(n, k, h * w, dtype=torch.float32, device=maps.device)
    for ox, wx in ((0, 1 - fx), (1, fx)):
        for oy, wy in ((0, 1 - fy), (1, fy)):
            cx, cy = x0 + ox, y0 + oy
            inside = (cx >= 0) & (cx <= w - 1) & (cy >= 0) & (cy <= h - 1)
            index = (cy.clamp(0, h - 1) * w + cx.clamp(0, w - 1)).long()
            out.scatter_add_(2, index, torch.where(inside, p * wx * wy, torch.zeros_like(p)))
    return out.reshape(n, k, h, w) / (math.pi * radius**2)


def hough_decode(maps: torch.Tensor, radius: float, vote_radius: float = 1.0,
                 logits: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3K, h, w) -> coords (N, K, 2) in heatmap pixels, scores (N, K): the argmax of the Hough map, refined
    to the probability-weighted mean of the votes within ``vote_radius`` of it."""
    f = hough_maps(maps, radius, logits)
    n, k, h, w = f.shape
    score, index = f.reshape(n, k, h * w).max(dim=-1)
    peak = torch.stack([index % w, torch.div(index, w, rounding_mode="floor")], dim=-1).float()  # (N, K, 2)
    p, vx, vy = _votes(maps, logits)
    near = (vx - peak[..., :1]) ** 2 + (vy - peak[..., 1:]) ** 2 <= vote_radius**2
    wt = p * near
    total = wt.sum(-1)
    mean = torch.stack([(wt * vx).sum(-1), (wt * vy).sum(-1)], dim=-1) / total.clamp_min(1e-12)[..., None]
    return torch.where(total[..., None] > 0, mean, peak), score


@dataclass(frozen=True)
class GRMICodec(GridMapping):
    """Disk heatmaps + offset fields on the UDP grid; Hough-voting decoding.

    Attributes:
        input_size, heatmap_size: (W, H) and (w, h).
        radius: disk radius R in heatmap pixels.
        vote_radius: how far from the Hough peak votes are pooled, heatmap pixels.
    """

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    radius: float = 4.5
    vote_radius: float = 1.0

    udp: ClassVar[bool] = True
    #: output maps per joint: heatmap, x-offset, y-offset
    channels_per_joint: ClassVar[int] = 3

    @property
    def scale(self) -> np.ndarray:
        """(2,) heatmap pixels per input pixel on the UDP grid: (w - 1) / (W - 1), (h - 1) / (H - 1)."""
        return (np.array(self.heatmap_size, np.float64) - 1.0) / (np.array(self.input_size, np.float64) - 1.0)

    def encode(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, 3) input-pixel keypoints -> targets (3K, h, w) float32 (disks, then x- and y-offsets in heatmap
        pixels inside the disks, zero elsewhere and for unlabelled joints), weights (K,)."""
        kp = check_keypoints(keypoints)
        weights = visible_in_crop(kp, self.input_size)
        centre = np.nan_to_num(self.to_heatmap(kp[:, :2]), nan=-1e6)
        w, h = self.heatmap_size
        dx = centre[:, 0, None, None] - np.arange(w, dtype=np.float64)[None, None, :]  # (K, 1, w)
        dy = centre[:, 1, None, None] - np.arange(h, dtype=np.float64)[None, :, None]  # (K, h, 1)
        disk = ((dx**2 + dy**2) <= self.radius**2) & (weights[:, None, None] > 0)  # (K, h, w)
        targets = np.concatenate([disk, np.where(disk, dx, 0.0), np.where(disk, dy, 0.0)])
        return targets.astype(np.float32), weights

    def score_maps(self, maps: np.ndarray | torch.Tensor, target: bool = False) -> np.ndarray | torch.Tensor:
        """(N, 3K, h, w) -> (N, K, h, w) Hough maps, whose argmax is the joint's pixel (argmax metrics such as
        PCK on the crop use these). Network outputs carry heatmap logits; ``target``: :meth:`encode`'s 0/1 disks."""
        as_numpy = not isinstance(maps, torch.Tensor)
        t = torch.as_tensor(np.asarray(maps)) if as_numpy else maps.detach()
        f = hough_maps(t.float(), self.radius, logits=not target)
        return f.cpu().numpy() if as_numpy else f

    def decode(self, heatmaps: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3K, h, w) network outputs (logits and offsets) -> coords (N, K, 2) float32 in input pixels,
        scores (N, K) float32 (the normalised Hough value at the peak)."""
        t = heatmaps.detach() if isinstance(heatmaps, torch.Tensor) else torch.as_tensor(np.asarray(heatmaps))
        with torch.no_grad():
            coords, score = hough_decode(t.float().cpu(), self.radius, self.vote_radius)
        return self.from_heatmap(coords.numpy()).astype(np.float32), score.numpy().astype(np.float32)
