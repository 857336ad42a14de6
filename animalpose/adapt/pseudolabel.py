"""Consistency-constrained pseudo-labels (CC-SSL, Mu et al., "Learning from Synthetic Animals", CVPR 2020).

For a batch of target crops the model is run on several views:

- **equivariance** (geometric T_α): the identity plus ``num_geometric`` random similarity transforms
  (the reference: 4 views, scale ``clamp(N(1, 0.25), 0.75, 1.25)``, rotation
  ``clamp(N(0, 30°), -60°, 60°)``), optionally a horizontally flipped view with the left/right
  joint swap. Each view's heatmaps are warped back into the original crop frame with the exact
  inverse (:class:`animalpose.data.consistency.BatchedGeometric`, the heatmap matrix being the input
  matrix conjugated by the codec's input→heatmap scaling);
- **invariance** (appearance T_β): ``num_photometric`` random colour / brightness / contrast / noise
  changes (:func:`animalpose.data.consistency.apply_photometric`) plus a random blur of the
  untransformed crop, whose heatmaps should not move (the paper defines this check; the reference
  code left it out; here it is on by default).

All views are averaged into one heatmap per joint. Its peak is the reference confidence. Each view
is also decoded on its own and its peak mapped back exactly (the point, not the resampled map); the
spread of these per-view peaks around the aggregated peak gives the agreement scores
``exp(-spread² / (2 σ²))`` of each check. Every component is returned so that diagnostics can score
the checks separately.

Shapes: images (N, 3, H, W) as the model takes them (normalised with ``mean``/``std`` when given);
heatmaps (N, K, h, w). Coordinates are in input-crop pixels (the codec's convention).

A whole target set is labelled in two steps so that the first can be sharded across processes
(:mod:`animalpose.adapt.shards`): :func:`label_records` runs the views on a slice of records (each
batch of ``batch_size`` records seeded by its position in the whole set, so slices cut at batch
boundaries give the same labels as one pass), :meth:`PseudoLabelSet.concat` joins slices in order,
and :func:`finalize` applies the steps that need the whole set at once (temporal refinement along
each video).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from animalpose.adapt.pairs import SUPPRESS_SIGMAS, resolve_pairs
from animalpose.adapt.temporal import FlowParams, refine_sequence
from animalpose.codecs import Codec
from animalpose.data.consistency import BatchedGeometric, GeometricParams, apply_photometric, sample_photometric
from animalpose.data.dataset import Normalization, TopDownDataset, collate_skip
from animalpose.data.flip import flip_permutation_or_none
from animalpose.data.images import read_image
from animalpose.data.transforms import crop_to_original, transform_points_batched
from animalpose.errors import ConfigError, DataError

CONFIDENCE_MODES = ("peak", "peak_agreement")
LABEL_POINTS = ("mean_heatmap", "median_views", "identity")
PAIR_DECODINGS = ("independent", "resolve")


@dataclass(frozen=True)
class ConsistencyConfig:
    """Views and scoring of the pseudo-label generator (defaults: the CC-SSL reference + invariance on).

    Attributes:
        num_geometric: random geometric views besides the identity (reference 4).
        scale_sigma: view scale ~ clamp(N(1, σ), 1 - σ, 1 + σ) (reference 0.25).
        rotation_sigma: rotation in degrees ~ clamp(N(0, σ), ±2σ) (reference 30).
        flip: add a horizontally flipped view (joint swap); needs the schema's flip permutation.
        invariance: run the photometric views at all.
        num_photometric: photometric views of the untransformed crop.
        gain_range, brightness, contrast_range, noise_max: appearance change ranges on [0, 1] images
            (see :func:`animalpose.data.consistency.sample_photometric`).
        blur_max: largest Gaussian blur σ (input pixels) of a photometric view, drawn uniformly.
        agreement_sigma: σ of the agreement score in heatmap pixels (2, the σ of the training targets;
            8 input pixels at stride 4).
        confidence: "peak" (the reference: the aggregated heatmap's peak) or "peak_agreement" (that
            peak times the equivariance and invariance agreements).
        max_batch: largest number of views × images sent to the model at once.
        pair_decoding: "independent" (the reference: every joint decoded from its own aggregated heatmap)
            or "resolve" (a left/right pair whose two points coincide has its less confident partner
            decoded again away from the shared point, :func:`animalpose.adapt.pairs.resolve_pairs`).
        collapse_distance: two partners closer than this fraction of the crop width coincide.
        label_point: where the pseudo-label is: "mean_heatmap" (the reference: the decoded maximum of the views'
            heatmaps resampled into the crop and averaged), "median_views" (each view decoded on its own heatmap,
            its point mapped back exactly, and the per-coordinate median of those points) or "identity" (the
            untransformed view's own point: the model's plain prediction). The peak (the reference's confidence)
            is the averaged heatmap's in all three; the spreads and agreements are measured about the chosen point
            (so a "peak_agreement" confidence follows it). Averaged heatmaps move a peak where the
            views disagree, and at a coarse stride one heatmap pixel is many image pixels: on mirror-mouse (32 x 32
            heatmaps of a 406-px frame, 12.7 px a heatmap pixel) the averaged label of the bottom view's nose was
            13.7 px left of its label on the labelled val frames (seed 0), the views' median 6.6 px, the identity
            view's 2.3 px.
    """

    num_geometric: int = 4
    scale_sigma: float = 0.25
    rotation_sigma: float = 30.0
    flip: bool = False
    invariance: bool = True
    num_photometric: int = 2
    gain_range: tuple[float, float] = (0.8, 1.2)
    brightness: float = 0.1
    contrast_range: tuple[float, float] = (0.7, 1.3)
    noise_max: float = 0.05
    blur_max: float = 1.0
    agreement_sigma: float = 2.0
    confidence: str = "peak"
    max_batch: int = 64
    pair_decoding: str = "independent"
    collapse_distance: float = 0.02
    label_point: str = "mean_heatmap"

    def __post_init__(self) -> None:
        where = "<ccssl.consistency>"
        if self.label_point not in LABEL_POINTS:
            raise ConfigError(where, "label_point", f"expected one of {LABEL_POINTS}, got {self.label_point!r}")
        if self.confidence not in CONFIDENCE_MODES:
            raise ConfigError(where, "confidence", f"expected one of {CONFIDENCE_MODES}, got {self.confidence!r}")
        if self.pair_decoding not in PAIR_DECODINGS:
            raise ConfigError(where, "pair_decoding", f"expected one of {PAIR_DECODINGS}, got {self.pair_decoding!r}")
        if not 0 < self.collapse_distance < 1:
            raise ConfigError(where, "collapse_distance", "must lie in (0, 1)")
        for name in ("num_geometric", "num_photometric"):
            if getattr(self, name) < 0:
                raise ConfigError(where, name, "must be >= 0")
        if not 0 <= self.scale_sigma < 1:
            raise ConfigError(where, "scale_sigma", "must lie in [0, 1)")
        for name in ("rotation_sigma", "brightness", "noise_max", "blur_max"):
            if getattr(self, name) < 0:
                raise ConfigError(where, name, "must be >= 0")
        if self.agreement_sigma <= 0:
            raise ConfigError(where, "agreement_sigma", "must be > 0")
        if self.max_batch < 1:
            raise ConfigError(where, "max_batch", "must be >= 1")

    @property
    def photometric_views(self) -> int:
        return self.num_photometric if self.invariance else 0


def view_params(cfg: ConsistencyConfig, rng: np.random.Generator) -> GeometricParams:
    """The geometric views: identity, ``num_geometric`` random similarity transforms, then the flip."""
    k = cfg.num_geometric
    scale = np.clip(rng.normal(1.0, cfg.scale_sigma, size=k), 1 - cfg.scale_sigma, 1 + cfg.scale_sigma)
    rot_max = 2 * cfg.rotation_sigma
    rotation = np.clip(rng.normal(0.0, cfg.rotation_sigma, size=k), -rot_max, rot_max)
    extra = 1 if cfg.flip else 0
    return GeometricParams(
        scale=np.concatenate([[1.0], scale, np.ones(extra)]),
        rotation=np.concatenate([[0.0], rotation, np.zeros(extra)]),
        flip=np.concatenate([[False], np.zeros(k, dtype=bool), np.ones(extra, dtype=bool)]),
    )


def gaussian_blur(x: Tensor, sigma: Sequence[float] | np.ndarray) -> Tensor:
    """Separable Gaussian blur of (B, N, C, H, W) views, one σ (input pixels) per view; σ = 0 unchanged."""
    sig = np.asarray(sigma, dtype=np.float64)
    if sig.max(initial=0.0) <= 1e-3:
        return x
    radius = max(1, math.ceil(3.0 * float(sig.max())))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernels = []
    for s in sig:
        k = torch.exp(-0.5 * (t / s) ** 2) if s > 1e-3 else (t == 0).double()
        kernels.append(k / k.sum())
    b, n, c, h, w = x.shape
    kk = torch.stack(kernels).to(x).repeat_interleave(n * c, 0)  # (B*N*C, taps)
    y = x.reshape(1, b * n * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), kk[:, None, None, :], groups=b * n * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), kk[:, None, :, None], groups=b * n * c)
    return y.reshape(b, n, c, h, w)


@dataclass
class ConsistencyOutput:
    """Pseudo-label evidence for a batch (numpy, on the CPU).

    Attributes:
        heatmaps: (N, K, h, w) float32 average of all views mapped back to the original crop.
        coords: (N, K, 2) decoded pseudo-label in input-crop pixels.
        confidence: (N, K) the confidence used for selection (see ``ConsistencyConfig.confidence``).
        components: (N, K) arrays by name: ``peak`` (aggregated peak, the reference confidence),
            ``peak_geo`` / ``peak_photo`` (peaks of the geometric-only / identity+photometric
            averages), ``spread_geo`` / ``spread_photo`` (RMS distance in input pixels of the
            per-view peaks from the aggregated peak), ``agree_geo`` / ``agree_photo`` (their
            agreement scores in (0, 1]), ``peak_std`` (std of the per-view peak values). Without
            photometric views ``peak_photo`` / ``spread_photo`` are NaN and ``agree_photo`` is 1. With
            ``pair_decoding: resolve`` also ``resolved`` (1 where the joint was decoded again away from its
            left/right partner; its ``peak`` and spreads are those of the new point, ``peak_geo`` /
            ``peak_photo`` stay the maxima of their averages).
        view_coords: (V, N, K, 2) each view's decoded peak mapped back exactly; views are ordered
            identity, geometric views, flip (if any), photometric views.
        view_kind: V strings, "identity", "geometric", "flip" or "photometric".
        params: the geometric views' parameters (identity first).
    """

    heatmaps: np.ndarray
    coords: np.ndarray
    confidence: np.ndarray
    components: dict[str, np.ndarray]
    view_coords: np.ndarray
    view_kind: list[str]
    params: GeometricParams


_UNTRACEABLE: set[str] = set()  # networks already reported as run without BN folding


def view_model(model: torch.nn.Module, fast: bool = True) -> Callable[[Tensor], Tensor]:
    """(B, 3, H, W) views -> (B, K, h, w) final heatmaps of ``model`` (its last output), in eval mode.

    ``fast``: through an eval copy with every conv -> BN pair folded and channels-last weights and inputs
    (:func:`animalpose.models.speed.optimize_for_inference`): float32 throughout, the same heatmaps within
    float rounding (tests/adapt/test_pseudolabel.py), and on a CPU about 30 % less time per view for the
    quick hourglass, which pays for the two photometric views (BENCHMARKS.md, pseudo-labelling 7 vs 5
    views). A network torch.fx cannot trace runs as it is.
    """
    model.eval()
    if fast:
        from animalpose.models.speed import optimize_for_inference

        try:
            fused = optimize_for_inference(model)
        except Exception as exc:  # torch.fx cannot trace data-dependent control flow: same maths, plain speed
            name = type(getattr(model, "net", model)).__name__
            if name not in _UNTRACEABLE:
                _UNTRACEABLE.add(name)
                print(f"note: pseudo-labelling {name} without BN folding (torch.fx: {str(exc).splitlines()[0][:80]})",
                      file=sys.stderr)
        else:
            return lambda x: fused(x.contiguous(memory_format=torch.channels_last))[-1].contiguous()
    return lambda x: model(x)[-1]


def _run_model(model_fn: Callable[[Tensor], Tensor], x: Tensor, max_batch: int) -> Tensor:
    return torch.cat([model_fn(chunk).float() for chunk in torch.split(x, max_batch)], 0)


@torch.no_grad()
def consistency_predict(
    model_fn: Callable[[Tensor], Tensor],
    images: Tensor,
    cfg: ConsistencyConfig,
    codec: Codec,
    rng: np.random.Generator | None = None,
    flip_permutation: np.ndarray | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    flip_pairs: Sequence[tuple[int, int]] = (),
) -> ConsistencyOutput:
    """Aggregate the model's heatmaps over geometric and photometric views of each image.

    Args:
        model_fn: (B, 3, H, W) images -> (B, K, h, w) final heatmaps.
        images: (N, 3, H, W) crops on the model's device, in [0, 1] or normalised with mean/std.
        cfg: views and scoring.
        codec: the model's codec (input/heatmap sizes, UDP or standard grid, decoding).
        rng: random generator for the views (seed it for reproducible pseudo-labels).
        flip_permutation: (K,) joint permutation, required when ``cfg.flip``.
        mean, std: normalisation of ``images`` (photometric changes are made on [0, 1] values).
        flip_pairs: the schema's (left, right) joint pairs, read by ``cfg.pair_decoding == "resolve"``.

    Returns:
        a :class:`ConsistencyOutput`.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    if cfg.flip and flip_permutation is None:
        raise ConfigError("<ccssl.consistency>", "flip", "flip views need the schema's flip pairs")
    n = images.shape[0]
    params = view_params(cfg, rng)
    geo = BatchedGeometric(params, codec.input_size, codec.heatmap_size, flip_permutation,
                           udp=codec.udp)
    g = len(params)
    kinds = ["identity"] + ["geometric"] * cfg.num_geometric + ["flip"] * int(cfg.flip)
    views = [images[None]]
    if g > 1:
        views.append(geo.warp_images(images)[1:])
    m = cfg.photometric_views
    if m:
        photo = sample_photometric(m, rng, cfg.gain_range, cfg.brightness, cfg.contrast_range, cfg.noise_max)
        pv = apply_photometric(images, photo, mean, std, seed=int(rng.integers(2**31)))
        views.append(gaussian_blur(pv, rng.uniform(0.0, cfg.blur_max, size=m)))
        kinds += ["photometric"] * m
    v_total = len(kinds)
    batch = torch.cat(views, 0).reshape(v_total * n, *images.shape[1:])
    heat = _run_model(model_fn, batch, cfg.max_batch)
    heat = heat.reshape(v_total, n, *heat.shape[1:])

    back = heat.clone()
    if g > 1:
        back[1:g] = geo.heatmaps_to_original(heat[:g])[1:]
    coords_v, peaks_v = codec.decode(heat.reshape(v_total * n, *heat.shape[2:]))
    k = heat.shape[2]
    coords_v = coords_v.reshape(v_total, n, k, 2).astype(np.float64)
    peaks_v = peaks_v.reshape(v_total, n, k)
    if g > 1:
        coords_v[:g] = geo.keypoints_to_original(coords_v[:g])
        flipped = np.flatnonzero(params.flip)
        for i in flipped:  # peak values follow the joint swap too
            peaks_v[i] = peaks_v[i][:, geo.inv_perm]

    agg = back.mean(0)
    coords, peak = codec.decode(agg)
    coords = coords.astype(np.float64)
    if cfg.label_point == "median_views":
        coords = np.median(coords_v, axis=0)
    elif cfg.label_point == "identity":
        coords = coords_v[0].copy()
    geo_idx = list(range(g))
    photo_idx = [0, *range(g, v_total)]

    sig2 = 2.0 * (cfg.agreement_sigma * codec.input_size[0] / codec.heatmap_size[0]) ** 2
    view_peaks = {"peak_geo": back[geo_idx].mean(0).flatten(2).amax(-1).cpu().numpy(),
                  "peak_photo": back[photo_idx].mean(0).flatten(2).amax(-1).cpu().numpy()}

    def score(coords: np.ndarray, peak: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The components and the confidence of the points ``coords`` (N, K, 2) with peak values (N, K)."""

        def spread(idx: list[int]) -> np.ndarray:
            return np.sqrt(((coords_v[idx] - coords[None]) ** 2).sum(-1).mean(0))

        comp = {
            "peak": np.asarray(peak, dtype=np.float32),
            **view_peaks,
            "spread_geo": spread(geo_idx).astype(np.float32),
            "spread_photo": spread(photo_idx).astype(np.float32),
            "peak_std": peaks_v.std(0).astype(np.float32),
        }
        comp["agree_geo"] = np.exp(-comp["spread_geo"] ** 2 / sig2).astype(np.float32)
        comp["agree_photo"] = np.exp(-comp["spread_photo"] ** 2 / sig2).astype(np.float32)
        if m == 0:  # no invariance check: its components are undefined and its agreement is neutral
            for name in ("peak_photo", "spread_photo"):
                comp[name] = np.full_like(comp["peak"], np.nan)
            comp["agree_photo"] = np.ones_like(comp["peak"])
        conf = comp["peak"] if cfg.confidence == "peak" else comp["peak"] * comp["agree_geo"] * comp["agree_photo"]
        return comp, conf

    comp, conf = score(coords, peak)
    agg_np = agg.cpu().numpy()
    if cfg.pair_decoding == "resolve":
        # a collapsed pair's weaker partner moves to its next bump; its peak, spreads and agreements are those
        # of the new point, so the selection ranks the point it will train on
        sigma = getattr(codec, "sigma", None)
        if sigma is None:
            raise ConfigError("<ccssl.consistency>", "pair_decoding", f"'resolve' needs a Gaussian heatmap codec "
                              f"(one with a sigma); got {type(codec).__name__}")
        res = resolve_pairs(agg_np, coords, peak, conf, flip_pairs, cfg.collapse_distance * codec.input_size[0],
                            SUPPRESS_SIGMAS * float(sigma), codec)
        coords = res.coords.astype(np.float64)
        comp, conf = score(coords, res.peak)
        comp["resolved"] = res.resolved.astype(np.float32)
    return ConsistencyOutput(agg_np, coords.astype(np.float32), conf.astype(np.float32), comp,
                             coords_v.astype(np.float32), kinds, params)


@dataclass
class PseudoLabelSet:
    """Pseudo-labels of a whole target set, in original image pixels, with their evidence.

    Attributes:
        records: the N target records (same order as every array).
        xy: (N, K, 2) float32 pseudo-labels in original image pixels (after temporal refinement).
        confidence: (N, K) float32 final confidence (after temporal refinement).
        components: (N, K) arrays by name (see :class:`ConsistencyOutput`), before temporal refinement.
        matrices: (N, 2, 3) source→crop affine of each record's crop.
        input_size: (W, H) of the crops.
        flow_conf: (N, K) flow confidence, NaN where a frame had no predecessor (or no temporal step).
        replaced: (N, K) bool, joints taken from the optical flow.
        weights: (N, K) float32 selection (1 kept, 0 rejected); all zero before selection.
        threshold: the confidence threshold of the selection.
        truth: (N, K, 3) ground truth in original pixels where the target has labels, else None.
    """

    records: list
    xy: np.ndarray
    confidence: np.ndarray
    components: dict[str, np.ndarray]
    matrices: np.ndarray
    input_size: tuple[int, int]
    flow_conf: np.ndarray
    replaced: np.ndarray
    weights: np.ndarray
    threshold: float = float("nan")
    truth: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def crop_xy(self) -> np.ndarray:
        """(N, K, 2) pseudo-labels in crop pixels."""
        return transform_points_batched(self.xy, self.matrices).astype(np.float32)

    def take_joints(self, src: np.ndarray) -> PseudoLabelSet:
        """A copy whose joint k of record n is joint ``src[n, k]`` of this set: the pseudo-label moves with its
        confidence, evidence, flow confidence, replacement flag and weight; ``truth`` (the target's own labels)
        stays where it is. ``src``: (N, K) joint indices."""
        src = np.asarray(src)
        if src.shape != self.xy.shape[:2]:
            raise ValueError(f"src must be {self.xy.shape[:2]}, got {src.shape}")

        def take(a: np.ndarray) -> np.ndarray:
            return np.take_along_axis(a, src.reshape(src.shape + (1,) * (a.ndim - 2)), axis=1)

        return replace(self, xy=take(self.xy), confidence=take(self.confidence),
                       components={k: take(v) for k, v in self.components.items()}, flow_conf=take(self.flow_conf),
                       replaced=take(self.replaced), weights=take(self.weights))

    def to_records(self) -> list:
        """Training records: kept joints labelled visible (2) at the pseudo-label, the others 0."""
        out = []
        for i, rec in enumerate(self.records):
            kp = np.zeros((self.xy.shape[1], 3), dtype=np.float32)
            keep = self.weights[i] > 0
            kp[keep, :2] = self.xy[i, keep]
            kp[keep, 2] = 2.0
            out.append(replace(rec, keypoints=kp, meta={**rec.meta, "pseudo_label": True}))
        return out

    @classmethod
    def concat(cls, parts: Sequence[PseudoLabelSet]) -> PseudoLabelSet:
        """One set of the ``parts`` in the order given (records and every (N, ...) array end to end).

        Meant for the slices of :func:`label_records` (unselected, before :func:`finalize`): the
        threshold becomes NaN and the weights are concatenated as they are. Empty parts are skipped.
        ``truth`` is concatenated when every non-empty part has it and None when none has it.

        Raises:
            ValueError: no parts, crops of different sizes, different joint counts or component
                names, or ground truth in some parts only.
        """
        if not parts:
            raise ValueError("PseudoLabelSet.concat needs at least one part")
        full = [p for p in parts if len(p)] or [parts[0]]
        first = full[0]
        for p in full[1:]:
            if tuple(p.input_size) != tuple(first.input_size):
                raise ValueError(f"crop sizes differ: {p.input_size} vs {first.input_size}")
            if p.xy.shape[1:] != first.xy.shape[1:]:
                raise ValueError(f"joint counts differ: {p.xy.shape[1]} vs {first.xy.shape[1]}")
            if set(p.components) != set(first.components):
                raise ValueError(f"components differ: {sorted(p.components)} vs {sorted(first.components)}")
        has_truth = [p.truth is not None for p in full]
        if any(has_truth) and not all(has_truth):
            raise ValueError("ground truth in some parts only")

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in full])

        return cls(
            records=[r for p in full for r in p.records], xy=cat("xy"), confidence=cat("confidence"),
            components={k: np.concatenate([p.components[k] for p in full]) for k in first.components},
            matrices=cat("matrices"), input_size=tuple(first.input_size), flow_conf=cat("flow_conf"),
            replaced=cat("replaced"), weights=cat("weights"), threshold=float("nan"),
            truth=cat("truth") if all(has_truth) else None)


def batch_rng(seed: int, batch_index: int) -> np.random.Generator:
    """The random views of batch ``batch_index`` (its position in the whole target set) of a round."""
    if seed < 0 or batch_index < 0:
        raise ValueError(f"seed and batch index must be >= 0, got {seed}, {batch_index}")
    return np.random.default_rng((seed, batch_index))


@torch.no_grad()
def label_records(model: torch.nn.Module, records: Sequence, schema, codec: Codec, normalization: Normalization,
                  consistency: ConsistencyConfig, device: torch.device, *, batch_size: int = 16,
                  padding: float = 1.5, seed: int = 0, truth: bool = True, workers: int = 0,
                  first_batch: int = 0, progress: bool = False, fast: bool = True) -> PseudoLabelSet:
    """Consistency pseudo-labels of a slice of target records: no temporal step, unselected (weights 0).

    Records are read and cropped as the training crops are (``padding``, ``normalization``, the codec's UDP)
    in batches of ``batch_size``; batch ``b`` of the slice draws its views from
    :func:`batch_rng` ``(seed, first_batch + b)``. A slice starting at record ``first_batch * batch_size``
    of the whole set therefore gets exactly the views it would get in one pass over the set.

    Args:
        model: returns a list of (B, K, h, w) heatmaps per stack; the last is used.
        records: the slice's N records (``PoseRecord``).
        truth: keep the records' own keypoints ((N, K, 3), original pixels) as ``truth`` for
            diagnostics; :func:`finalize` drops them when no record has a label.
        workers: DataLoader worker processes.
        progress: a progress bar on stderr (a round over a long video takes minutes).
        fast: the views go through :func:`view_model`'s BN-folded channels-last copy (same labels within
            float rounding).

    Returns:
        a :class:`PseudoLabelSet` of the readable records in their order (unreadable ones skipped;
        empty when none is readable); ``flow_conf`` NaN and ``replaced`` False.
    """
    model_fn = view_model(model, fast)
    ds = TopDownDataset(list(records), schema, codec, None, padding=padding, normalization=normalization)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate_skip,
                        pin_memory=torch.device(device).type == "cuda")
    flip_perm = flip_permutation_or_none(schema) if consistency.flip else None
    cons = replace(consistency, flip=consistency.flip and flip_perm is not None)
    idx, coords, conf, mats, comps = [], [], [], [], []
    if progress:
        from animalpose.progress import progress_bar

        loader = progress_bar(loader, desc="pseudo-labelling", unit="batch", leave=False)
    for b, batch in enumerate(loader):
        if "image" not in batch:
            continue
        out = consistency_predict(model_fn, batch["image"].to(device), cons, codec,
                                  batch_rng(seed, first_batch + b), flip_perm, normalization.mean, normalization.std,
                                  flip_pairs=schema.flip_pairs)
        idx.append(batch["meta"]["index"].numpy())
        coords.append(out.coords)
        conf.append(out.confidence)
        mats.append(batch["meta"]["matrix"].numpy())
        comps.append(out.components)
    k = schema.num_joints
    order = np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)
    recs = [records[i] for i in order]
    n = len(recs)
    matrices = np.concatenate(mats) if mats else np.zeros((0, 2, 3))
    xy = crop_to_original(np.concatenate(coords), matrices).astype(np.float32) if n else np.zeros((0, k, 2),
                                                                                                   np.float32)
    confidence = np.concatenate(conf).astype(np.float32) if n else np.zeros((0, k), np.float32)
    components = {name: np.concatenate([c[name] for c in comps]) for name in comps[0]} if comps else {}
    gt = None
    if truth:
        gt = np.stack([r.keypoints for r in recs]).astype(np.float32) if n else np.zeros((0, k, 3), np.float32)
    return PseudoLabelSet(recs, xy, confidence, components, matrices, tuple(codec.input_size),
                          np.full((n, k), np.nan), np.zeros((n, k), dtype=bool), np.zeros((n, k), np.float32),
                          truth=gt)


def video_key(record):
    """The video a record is a frame of (``video_id``, else its video file), None for a still."""
    return record.video_id if record.video_id is not None else (record.image if record.is_video_frame else None)


def finalize(labels: PseudoLabelSet, flow: FlowParams | None, *, where: str = "<target>") -> PseudoLabelSet:
    """The whole-set steps after :func:`label_records` (and :meth:`PseudoLabelSet.concat` of its slices).

    Video frames are refined along time with ``flow`` (None: no temporal step); the optical flow
    chains each frame to its predecessor, so this must see every frame of a video at once and never
    runs per slice. Ground truth is dropped (None) when no record has a labelled joint.

    Raises:
        DataError naming ``where`` when no target record was readable.
    """
    if not len(labels):
        raise DataError(where, "image", "no readable target image")
    recs = labels.records
    xy, confidence = labels.xy, labels.confidence.astype(np.float64)
    flow_conf, replaced = labels.flow_conf, labels.replaced
    if flow is not None and any(video_key(r) is not None and r.frame_index is not None for r in recs):
        keys = [(video_key(r), r.frame_index) for r in recs]
        # several instances in one frame: chain each track on its own (readers without track ids
        # number instances per annotation, so ids are used only where frames are shared; stills,
        # all keyed (None, None), share nothing)
        frames = [key for key in keys if key[0] is not None and key[1] is not None]
        tracks = [r.instance_id for r in recs] if len(set(frames)) < len(frames) else None
        res = refine_sequence(xy, confidence, [k[0] for k in keys], [k[1] for k in keys],
                              lambda i: read_image(recs[i].image, recs[i].frame_index), flow, tracks=tracks)
        xy, confidence, flow_conf, replaced = res.xy, res.conf, res.flow_conf, res.replaced
    gt = labels.truth if labels.truth is not None and (labels.truth[..., 2] > 0).any() else None
    return replace(labels, xy=np.asarray(xy, np.float32), confidence=confidence.astype(np.float32),
                   flow_conf=flow_conf, replaced=replaced, truth=gt)
