"""Consistency-constrained pseudo-labels (CC-SSL, Mu et al., "Learning from Synthetic Animals", CVPR 2020).

For a batch of target crops the model is run on several views:

- **equivariance** (geometric T_α): the identity plus ``num_geometric`` random similarity transforms
  (the reference: 4 views, scale ``clamp(N(1, 0.25), 0.75, 1.25)``, rotation
  ``clamp(N(0, 30°), -60°, 60°)``), optionally a horizontal flip with the left/right joint swap.
  Each view's heatmaps are warped back exactly into the original crop frame (the inverse affine,
  resampled bilinearly in extent-normalised coordinates, so one matrix serves the input and the
  heatmap resolutions);
- **invariance** (appearance T_β): ``num_photometric`` random colour / contrast / noise / blur
  changes of the untransformed crop, whose heatmaps should not move (the paper defines this check;
  the reference code left it out; here it is on by default).

All views are averaged into one heatmap per joint. Its peak is the reference confidence. Each view
is also decoded on its own and its peak mapped back exactly (the point, not the resampled map); the
spread of these per-view peaks around the aggregated peak gives the agreement scores
``exp(-spread² / (2 σ²))`` of each check. Every component is returned so that diagnostics can score
the checks separately.

Shapes: images (N, C, H, W) in [0, 1] before ``normalize``; heatmaps (N, K, h, w) with h = H / stride.
Coordinates are in heatmap pixels of the original crop, pixel ``i`` centred at ``i``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from animalpose.errors import ConfigError

CONFIDENCE_MODES = ("peak", "peak_agreement")


@dataclass(frozen=True)
class ConsistencyConfig:
    """Views and scoring of the pseudo-label generator (defaults: the CC-SSL reference + invariance on).

    Attributes:
        num_geometric: random geometric views besides the identity (reference 4).
        scale_std, scale_min, scale_max: view scale ~ clamp(N(1, scale_std), min, max) (0.25, 0.75, 1.25).
        rot_std, rot_max: rotation in degrees ~ clamp(N(0, rot_std), ±rot_max) (30, 60).
        flip: add a horizontally flipped view (joint swap); needs the schema's flip permutation.
        invariance: run the photometric views at all.
        num_photometric: photometric views of the untransformed crop.
        brightness, contrast, saturation: maximal relative change (factor drawn in [1 - x, 1 + x]).
        noise_std: maximal std of added Gaussian noise (images in [0, 1]).
        blur_sigma: maximal Gaussian blur sigma in input pixels.
        agreement_sigma: σ of the agreement score, in heatmap pixels.
        confidence: "peak" (the reference: the aggregated heatmap's peak) or "peak_agreement" (that
            peak times the equivariance and invariance agreements).
        max_batch: largest number of views × images sent to the model at once.
    """

    num_geometric: int = 4
    scale_std: float = 0.25
    scale_min: float = 0.75
    scale_max: float = 1.25
    rot_std: float = 30.0
    rot_max: float = 60.0
    flip: bool = False
    invariance: bool = True
    num_photometric: int = 2
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    noise_std: float = 0.03
    blur_sigma: float = 1.0
    agreement_sigma: float = 2.0
    confidence: str = "peak_agreement"
    max_batch: int = 64

    def __post_init__(self) -> None:
        where = "<ccssl.consistency>"
        if self.confidence not in CONFIDENCE_MODES:
            raise ConfigError(where, "confidence", f"expected one of {CONFIDENCE_MODES}, got {self.confidence!r}")
        for name in ("num_geometric", "num_photometric"):
            if getattr(self, name) < 0:
                raise ConfigError(where, name, "must be >= 0")
        if not 0 < self.scale_min <= 1.0 <= self.scale_max:
            raise ConfigError(where, "scale_min/scale_max", "need 0 < scale_min <= 1 <= scale_max")
        if self.agreement_sigma <= 0:
            raise ConfigError(where, "agreement_sigma", "must be > 0")
        if self.max_batch < 1:
            raise ConfigError(where, "max_batch", "must be >= 1")

    @property
    def photometric_views(self) -> int:
        return self.num_photometric if self.invariance else 0


# ----------------------------------------------------------------------------------------------
# geometry: similarity transforms in extent-normalised coordinates (x_n = (2x + 1) / W - 1)


def similarity_matrices(angle_deg: Tensor, scale: Tensor, flip: Tensor, height: int, width: int) -> Tensor:
    """(N,) angles, scales, flips -> (N, 3, 3) forward maps original -> view, in normalised coordinates.

    The transform rotates by ``angle_deg`` (counter-clockwise on screen, y pointing down) and scales
    by ``scale`` about the image centre in pixel units, then mirrors x where ``flip``; expressed in
    the normalised frame of ``affine_grid`` (align_corners=False) so that it is the same matrix for
    an image and for its heatmaps.
    """
    a = torch.deg2rad(angle_deg.double())
    c, s = torch.cos(a) * scale.double(), torch.sin(a) * scale.double()
    hw = torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64)
    # centred pixel coordinates p = D n with D = diag(W/2, H/2); M_n = D^-1 R D
    m = torch.zeros(len(a), 3, 3, dtype=torch.float64)
    m[:, 0, 0] = c
    m[:, 0, 1] = s * hw[1] / hw[0]
    m[:, 1, 0] = -s * hw[0] / hw[1]
    m[:, 1, 1] = c
    m[:, 2, 2] = 1.0
    sign = torch.where(flip, -1.0, 1.0).double()
    m[:, 0, :] = m[:, 0, :] * sign[:, None]
    return m


def warp(x: Tensor, matrix: Tensor) -> Tensor:
    """Resample (N, C, H, W) so that out(M n) = x(n) for the (N, 3, 3) normalised map ``matrix``.

    Pixels that come from outside the input are 0.
    """
    theta = torch.linalg.inv(matrix)[:, :2, :].to(dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def pixels_to_normalised(xy: Tensor, height: int, width: int) -> Tensor:
    """(..., 2) pixel coordinates (centre of pixel i at i) -> extent-normalised coordinates."""
    size = xy.new_tensor([width, height])
    return (2.0 * xy + 1.0) / size - 1.0


def normalised_to_pixels(xy: Tensor, height: int, width: int) -> Tensor:
    size = xy.new_tensor([width, height])
    return ((xy + 1.0) * size - 1.0) / 2.0


def transform_points(xy: Tensor, matrix: Tensor, height: int, width: int) -> Tensor:
    """Map (N, K, 2) pixel points of an (height, width) map through (N, 3, 3) normalised matrices."""
    n = pixels_to_normalised(xy.double(), height, width)
    out = n @ matrix[:, :2, :2].transpose(1, 2).to(n) + matrix[:, None, :2, 2].to(n)
    return normalised_to_pixels(out, height, width).to(xy.dtype)


def sample_geometric(n: int, cfg: ConsistencyConfig, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random (n,) angles in degrees and scales, clamped as the reference."""
    scale = (1.0 + cfg.scale_std * torch.randn(n, generator=generator, dtype=torch.float64))
    angle = cfg.rot_std * torch.randn(n, generator=generator, dtype=torch.float64)
    return angle.clamp(-cfg.rot_max, cfg.rot_max), scale.clamp(cfg.scale_min, cfg.scale_max)


# ----------------------------------------------------------------------------------------------
# appearance


def _gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Per-image separable Gaussian blur of (N, C, H, W) with (N,) sigmas (0 = unchanged)."""
    radius = max(1, math.ceil(3.0 * float(sigma.max())))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    sig = sigma.to(x).clamp_min(1e-3)[:, None]
    k = torch.exp(-0.5 * (t[None] / sig) ** 2)
    k = k / k.sum(1, keepdim=True)
    k = torch.where(sigma.to(x.device)[:, None] > 1e-3, k, (t[None] == 0).to(x))
    n, c, h, w = x.shape
    y = x.reshape(1, n * c, h, w)
    kk = k.repeat_interleave(c, 0)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), kk[:, None, None, :], groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), kk[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def photometric(images: Tensor, cfg: ConsistencyConfig, generator: torch.Generator) -> Tensor:
    """A random appearance change of each (N, C, H, W) image in [0, 1]: brightness, contrast,
    saturation, Gaussian noise and blur, each drawn per image; geometry untouched."""
    n = images.shape[0]
    dev, dt = images.device, images.dtype

    def u(lo: float, hi: float) -> Tensor:
        return (lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)).to(dev, dt)

    x = images * u(1 - cfg.brightness, 1 + cfg.brightness)[:, None, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u(1 - cfg.contrast, 1 + cfg.contrast)[:, None, None, None] + mean
    if x.shape[1] == 3:
        gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        x = gray + (x - gray) * u(1 - cfg.saturation, 1 + cfg.saturation)[:, None, None, None]
    if cfg.blur_sigma > 0:
        x = _gaussian_blur(x, u(0.0, cfg.blur_sigma))
    if cfg.noise_std > 0:
        noise = torch.randn(images.shape, generator=generator, dtype=torch.float64).to(dev, dt)
        x = x + noise * u(0.0, cfg.noise_std)[:, None, None, None]
    return x.clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# decoding


def argmax_decode(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """(N, K, h, w) -> coords (N, K, 2) in heatmap pixels, maxvals (N, K).

    Integer argmax plus the quarter-pixel shift towards the higher neighbour (the Hourglass /
    CC-SSL reference decoding).
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    maxvals, idx = flat.max(-1)
    x, y = (idx % w), (idx // w)
    coords = torch.stack([x, y], -1).to(heatmaps.dtype)
    xl, xr = (x - 1).clamp(0, w - 1), (x + 1).clamp(0, w - 1)
    yu, yd = (y - 1).clamp(0, h - 1), (y + 1).clamp(0, h - 1)

    def at(yy: Tensor, xx: Tensor) -> Tensor:
        return flat.gather(-1, (yy * w + xx)[..., None])[..., 0]

    inside_x = (x > 0) & (x < w - 1)
    inside_y = (y > 0) & (y < h - 1)
    dx = torch.sign(at(y, xr) - at(y, xl)) * inside_x
    dy = torch.sign(at(yd, x) - at(yu, x)) * inside_y
    coords = coords + 0.25 * torch.stack([dx, dy], -1).to(coords)
    return coords, maxvals


# ----------------------------------------------------------------------------------------------
# the generator


@dataclass
class ConsistencyOutput:
    """Pseudo-label evidence for a batch (all tensors on CPU).

    Attributes:
        heatmaps: (N, K, h, w) average of all views mapped back to the original crop.
        coords: (N, K, 2) decoded pseudo-label in heatmap pixels of the original crop.
        confidence: (N, K) the confidence used for selection (see ``ConsistencyConfig.confidence``).
        components: (N, K) tensors by name: ``peak`` (aggregated peak, the reference confidence),
            ``peak_geo`` / ``peak_photo`` (peaks of the geometric-only / identity+photometric
            averages), ``spread_geo`` / ``spread_photo`` (RMS distance in heatmap px of the per-view
            peaks from the aggregated peak), ``agree_geo`` / ``agree_photo`` (their agreement
            scores in (0, 1]), ``peak_std`` (std of the per-view peak values).
        view_coords: (V, N, K, 2) each view's decoded peak mapped back exactly; views are ordered
            identity, geometric views, flip (if any), photometric views.
        view_kind: V strings, "identity", "geometric", "flip" or "photometric".
        matrices: (V, N, 3, 3) normalised forward maps of the views (identity for photometric).
    """

    heatmaps: Tensor
    coords: Tensor
    confidence: Tensor
    components: dict[str, Tensor]
    view_coords: Tensor
    view_kind: list[str]
    matrices: Tensor = field(repr=False)


def _run_model(model_fn: Callable[[Tensor], Tensor], x: Tensor, max_batch: int) -> Tensor:
    outs = [model_fn(chunk) for chunk in torch.split(x, max_batch)]
    return torch.cat(outs, 0)


@torch.no_grad()
def consistency_predict(model_fn: Callable[[Tensor], Tensor], images: Tensor, cfg: ConsistencyConfig,
                        generator: torch.Generator | None = None, flip_permutation: np.ndarray | None = None,
                        normalize: Callable[[Tensor], Tensor] | None = None,
                        decode: Callable[[Tensor], tuple[Tensor, Tensor]] = argmax_decode) -> ConsistencyOutput:
    """Aggregate the model's heatmaps over geometric and photometric views of each image.

    Args:
        model_fn: (B, C, H, W) normalised images -> (B, K, h, w) final heatmaps.
        images: (N, C, H, W) crops in [0, 1] (on the model's device).
        cfg: views and scoring.
        generator: CPU random generator (seeded by the caller for reproducible pseudo-labels).
        flip_permutation: (K,) joint permutation, required when ``cfg.flip``.
        normalize: applied to every view before the model (e.g. mean/std normalisation).
        decode: heatmaps -> (coords, maxvals), used for the aggregated map and each view.

    Returns:
        a :class:`ConsistencyOutput`.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    if cfg.flip and flip_permutation is None:
        raise ConfigError("<ccssl.consistency>", "flip", "flip views need the schema's flip pairs")
    normalize = normalize or (lambda t: t)
    n, _, H, W = images.shape

    # geometric views: identity first
    angles, scales, flips, kinds = [torch.zeros(n, dtype=torch.float64)], [torch.ones(n, dtype=torch.float64)], \
        [torch.zeros(n, dtype=torch.bool)], ["identity"]
    for _ in range(cfg.num_geometric):
        a, s = sample_geometric(n, cfg, generator)
        angles.append(a), scales.append(s), flips.append(torch.zeros(n, dtype=torch.bool))
        kinds.append("geometric")
    if cfg.flip:
        angles.append(torch.zeros(n, dtype=torch.float64)), scales.append(torch.ones(n, dtype=torch.float64))
        flips.append(torch.ones(n, dtype=torch.bool)), kinds.append("flip")
    g = len(kinds)
    mats = torch.stack([similarity_matrices(a, s, f, H, W) for a, s, f in zip(angles, scales, flips, strict=True)])
    views = [images] + [warp(images, mats[v]) for v in range(1, g)]
    for _ in range(cfg.photometric_views):
        views.append(photometric(images, cfg, generator))
        kinds.append("photometric")
    v_total = len(kinds)
    eye = torch.eye(3, dtype=torch.float64).expand(v_total - g, n, 3, 3)
    mats = torch.cat([mats, eye], 0)

    batch = torch.cat([normalize(v) for v in views], 0)
    heat = _run_model(model_fn, batch, cfg.max_batch).float()
    k, h, w = heat.shape[1:]
    heat = heat.reshape(v_total, n, k, h, w)

    perm = None if flip_permutation is None else torch.as_tensor(np.asarray(flip_permutation), device=heat.device)
    back = torch.empty_like(heat)
    view_coords = torch.empty(v_total, n, k, 2, dtype=torch.float32)
    view_peaks = torch.empty(v_total, n, k, dtype=torch.float32)
    for v in range(v_total):
        hv = heat[v]
        if kinds[v] in ("geometric", "flip"):
            mat_inv = torch.linalg.inv(mats[v])
            hb = warp(hv, mat_inv)
            c, m = decode(hv)
            c = transform_points(c.cpu().double(), mat_inv, h, w).float()
            if kinds[v] == "flip":
                hb, c, m = hb[:, perm], c[:, perm.cpu()], m[:, perm]
        else:
            hb = hv
            c, m = decode(hv)
        back[v] = hb
        view_coords[v], view_peaks[v] = c.cpu().float(), m.cpu().float()

    geo_idx = [i for i, kd in enumerate(kinds) if kd != "photometric"]
    photo_idx = [0] + [i for i, kd in enumerate(kinds) if kd == "photometric"]
    agg = back.mean(0)
    coords, peak = decode(agg)
    coords, peak = coords.cpu().float(), peak.cpu().float()
    agg_geo, agg_photo = back[geo_idx].mean(0), back[photo_idx].mean(0)

    def spread(idx: list[int]) -> Tensor:
        d2 = ((view_coords[idx] - coords[None]) ** 2).sum(-1)
        return d2.mean(0).sqrt()

    sig2 = 2.0 * cfg.agreement_sigma**2
    comp = {
        "peak": peak,
        "peak_geo": agg_geo.flatten(2).amax(-1).cpu().float(),
        "peak_photo": agg_photo.flatten(2).amax(-1).cpu().float(),
        "spread_geo": spread(geo_idx),
        "spread_photo": spread(photo_idx),
        "peak_std": view_peaks.std(0, unbiased=False) if v_total > 1 else torch.zeros_like(peak),
    }
    comp["agree_geo"] = torch.exp(-comp["spread_geo"] ** 2 / sig2)
    comp["agree_photo"] = torch.exp(-comp["spread_photo"] ** 2 / sig2)
    conf = peak if cfg.confidence == "peak" else peak * comp["agree_geo"] * comp["agree_photo"]
    return ConsistencyOutput(agg.cpu(), coords, conf, comp, view_coords, kinds, mats.float())
