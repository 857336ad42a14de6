"""β factors made visible: coat textures, backgrounds, shading and camera effects.

Textures are small albedo maps indexed by surface coordinates (distance along a volume's long
axis, and arc length around it), so stripes run across the body and ring the legs the way a
tiger's do. Backgrounds are procedural (``cad``) or crops of the photographs bundled with
scikit-image (``photo``). Everything draws from the caller's ``numpy.random.Generator``.
"""

from __future__ import annotations

import bisect
from functools import cache

import cv2
import numpy as np

TEX = 128  # texels per side of a coat map
TEXEL = 0.02  # metres per texel


def smooth_noise(rng: np.random.Generator, size: tuple[int, int], cells: int) -> np.ndarray:
    """(H, W) float32 value noise in [0, 1] with about ``cells`` features across."""
    small = rng.random((max(cells, 2), max(cells, 2)), dtype=np.float32)
    return cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC).clip(0, 1)


BANK_CELLS = (3, 4, 6, 8, 12, 16, 32, 48)
BANK_COPIES = 4


@cache
def noise_bank() -> np.ndarray:
    """(len(BANK_CELLS), BANK_COPIES, TEX, TEX) float32 value-noise fields, made once from a fixed seed.

    Per-sample textures pick fields, flips and transpositions from it with the sample's generator,
    which keeps them deterministic and cheap (no per-sample noise synthesis).
    """
    rng = np.random.default_rng(2024)
    return np.array([[smooth_noise(rng, (TEX, TEX), c) for _ in range(BANK_COPIES)] for c in BANK_CELLS])


def bank_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """(TEX, TEX) float32 noise with about ``cells`` features: a randomly flipped field of the bank."""
    i = min(bisect.bisect_left(BANK_CELLS, cells), len(BANK_CELLS) - 1)  # np.searchsorted(..., side="left")
    field = noise_bank()[i, int(rng.integers(BANK_COPIES))]
    k = int(rng.integers(8))
    field = field[::-1] if k & 1 else field
    field = field[:, ::-1] if k & 2 else field
    return field.T if k & 4 else field


def coat_map(coat: dict, rng: np.random.Generator, detail: float) -> np.ndarray:
    """(TEX, TEX, 3) float32 albedo for a coat entry of a template's ``appearance``.

    Rows index the long axis of a volume, columns the arc around it. ``detail`` >= 0 scales
    the fine noise (0: flat CAD-like colours; the ``photo`` style's 3 is a mottled fur). The map is
    ``colours[mask] * mod`` of :func:`coat_fields`.
    """
    colours, mask, mod = coat_fields(coat, rng, detail)
    if mask is None:
        tex = np.empty((TEX, TEX, 3), dtype=np.float32)
        tex[:] = colours[0]
    else:
        tex = np.where(mask[:, :, None], colours[1], colours[0])
    if mod is not None:
        tex *= mod[:, :, None]
    return tex


def coat_fields(
    coat: dict, rng: np.random.Generator, detail: float
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The coat map as fields: colours (2, 3) float32 (base, second), mask (TEX, TEX) bool choosing the
    second colour (None: never), brightness mod (TEX, TEX) float32 (None: 1). Same draws as :func:`coat_map`.

    The renderer looks the fields up at the texels it needs instead of building the RGB map.
    """
    base = np.asarray(coat["color"], dtype=np.float32)
    second = np.asarray(coat.get("second", base * 0.4), dtype=np.float32)
    kind = coat["kind"]
    mod = None  # (TEX, TEX) brightness modulation; None is 1
    mask = None  # (TEX, TEX) bool: second colour
    if kind == "stripes":
        # Bands across the long axis, warped by noise, of varying width: tiger stripes.
        along = np.arange(TEX, dtype=np.float32)[:, None] / TEX
        period = float(rng.integers(9, 14))
        band = np.sin(2 * np.pi * (along * period + 1.5 * bank_noise(rng, 4)))
        mask = band > 0.35 + 0.5 * bank_noise(rng, 8)
    elif kind == "spots":
        mask = bank_noise(rng, int(rng.choice([12, 16]))) > 0.7
    elif kind == "patches":
        mask = bank_noise(rng, int(rng.choice([3, 4, 6]))) > 0.55
    elif kind == "wool":
        mod = 0.8 + 0.35 * bank_noise(rng, 48)
    elif kind == "noise":
        mod = 0.75 + 0.5 * bank_noise(rng, 8)
    if detail > 0:
        fine = 1.0 + detail * 0.35 * (bank_noise(rng, 32) - 0.5)
        mod = fine if mod is None else mod * fine
        mod *= 1.0 + detail * 0.25 * (bank_noise(rng, 4) - 0.5)
    return np.stack([base, second]), mask, mod


# ---------------------------------------------------------------------- backgrounds
@cache
def photographs() -> tuple[np.ndarray, ...]:
    """The colour and grey photographs bundled with scikit-image (no download), as RGB uint8."""
    from skimage import data

    names = ["grass", "gravel", "brick", "coffee", "chelsea", "rocket", "astronaut", "camera", "coins",
             "moon", "hubble_deep_field", "immunohistochemistry"]
    out = []
    for name in names:
        try:
            img = getattr(data, name)()
        except Exception:  # a loader needing an optional download: skip it
            continue
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        out.append(np.ascontiguousarray(img[:, :, :3]))
    try:
        out.append(np.ascontiguousarray(data.stereo_motorcycle()[0][:, :, :3]))
    except Exception:
        pass
    return tuple(out)


def photo_background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    """(size, size, 3) uint8 crop of a bundled photograph: random image, scale, offset, flip and tint."""
    photos = photographs()
    k = int(rng.integers(len(photos)))
    img = photos[k]
    h, w = img.shape[:2]
    side = int(rng.uniform(0.35, 1.0) * min(h, w))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = cv2.resize(img[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        crop = cv2.flip(crop, 1)
    tint = rng.uniform(0.8, 1.15, 3)
    out = channel_gains(crop, tint)
    return out, {"kind": "photo", "photo": k, "crop": [x0, y0, side]}


def procedural_background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    """(size, size, 3) uint8 synthetic background: sky/ground gradient, noise, checks or flat colour."""
    kind = ["gradient", "noise", "checks", "flat"][int(rng.integers(4))]
    c1, c2 = rng.uniform(25, 240, 3).astype(np.float32), rng.uniform(25, 240, 3).astype(np.float32)
    # Everything is built small and enlarged by OpenCV (fast, contiguous uint8 output).
    if kind == "gradient":
        horizon = rng.uniform(0.2, 0.8)
        y = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
        t = np.clip((y - horizon) * rng.uniform(3, 12) + 0.5, 0, 1)
        column = (c1 * (1 - t) + c2 * t).astype(np.uint8)
        img = cv2.resize(column, (size, size), interpolation=cv2.INTER_NEAREST)
    elif kind == "noise":
        n = bank_noise(rng, int(rng.choice([3, 4, 6, 8])))[::4, ::4, None]
        small = (c1 * (1 - n) + c2 * n).astype(np.uint8)
        img = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    elif kind == "checks":
        cells = int(rng.integers(3, 16))
        small = np.where(((np.arange(cells)[:, None] + np.arange(cells)) % 2 == 0)[:, :, None], c1, c2)
        img = cv2.resize(small.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    else:
        img = cv2.resize(c1.astype(np.uint8)[None, None, :], (size, size), interpolation=cv2.INTER_NEAREST)
    return img, {"kind": kind}


def channel_gains(img: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 with channel c multiplied by ``gains[c]``, rounded and saturated.

    ``cv2.transform`` with a diagonal matrix: one SIMD pass, several times faster than
    ``cv2.multiply`` by a per-channel scalar (same result up to rounding of exact halves).
    """
    return cv2.transform(img, np.diag(np.asarray(gains, dtype=np.float32)))


# ---------------------------------------------------------------------- camera effects
NOISE_SIGMA = 32.0  # grey levels per unit of the stored noise tile


@cache
def _noise_tile() -> np.ndarray:
    """A fixed (512, 512, 3) uint8 tile of 128 + 32 N(0, 1); random crops stand in for fresh sensor noise."""
    tile = 128 + NOISE_SIGMA * np.random.default_rng(12345).standard_normal((512, 512, 3))
    return np.clip(np.rint(tile), 0, 255).astype(np.uint8)


def camera_effects(img: np.ndarray, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, dict]:
    """Apply colour cast, defocus or motion blur, sensor noise and JPEG to an (H, W, 3) uint8 image.

    ``p`` holds the style's probabilities and strengths (see :class:`synthetic.styles.StyleConfig`).
    Every step runs on uint8 with OpenCV's saturating arithmetic (one pass each).
    """
    h, w = img.shape[:2]
    info: dict = {}
    out = img
    if p["cast"] > 0:
        gains = 1.0 + rng.uniform(-p["cast"], p["cast"], 3)
        out = channel_gains(out, gains)
        info["cast"] = [round(float(g), 4) for g in gains]
    if rng.random() < p["blur_p"]:
        sigma = float(rng.uniform(0.4, max(p["blur_sigma"], 0.41)))
        # GaussianBlur's kernel (size 6 sigma + 1, odd) applied by sepFilter2D: same blur, ~1.5x faster on uint8.
        kernel = cv2.getGaussianKernel(round(sigma * 6 + 1) | 1, sigma)
        out = cv2.sepFilter2D(out, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT_101)
        info["defocus"] = round(sigma, 4)
    elif rng.random() < p["motion_p"]:
        length = int(rng.integers(3, 8))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1.0 / length
        angle = float(rng.uniform(0, 180))
        rotm = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
        kernel = cv2.warpAffine(kernel, rotm, (length, length))
        kernel /= max(kernel.sum(), 1e-6)
        out = cv2.filter2D(out, -1, kernel)
        info["motion_blur"] = [length, round(angle, 2)]
    if p["noise"] > 0:
        sigma = float(rng.uniform(0, p["noise"])) * 255
        tile = _noise_tile()
        if h <= tile.shape[0] and w <= tile.shape[1]:
            y0, x0 = int(rng.integers(0, tile.shape[0] - h + 1)), int(rng.integers(0, tile.shape[1] - w + 1))
            noise = tile[y0:y0 + h, x0:x0 + w]
        else:
            noise = np.resize(tile, (h, w, 3))
        beta = sigma / NOISE_SIGMA
        out = cv2.addWeighted(out, 1.0, noise, beta, -128.0 * beta)  # img + sigma N, saturated
        info["noise"] = round(sigma, 3)
    if rng.random() < p["jpeg_p"]:
        quality = int(rng.integers(int(p["jpeg_q"]), 96))
        _, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        info["jpeg"] = quality
    return out, info
