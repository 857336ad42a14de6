"""Heatmap codecs: keypoints in input-crop pixels <-> target heatmaps, separate from the networks.

Every codec follows :class:`Codec`: ``encode((K, 3)) -> (heatmaps (K, h, w), weights (K,))`` and
``decode((N, K, h, w)) -> (coords (N, K, 2), maxvals (N, K))``. A head changes codec by
configuration through :func:`build_codec`.

=============  ===========================================  ====================================
kind           target                                       decoder
=============  ===========================================  ====================================
gaussian       MSRA: integer centre, peak 1, radius 3σ       argmax + quarter-pixel shift
dark           real-valued centre                           modulation + Taylor step (DARK)
udp            real-valued centre on the UDP grid           modulation + Taylor step, UDP scale
soft_argmax    real-valued centre                           β-soft-argmax (LPN β = 160)
grmi           disks of radius R + offset fields (3K maps)  Hough voting (G-RMI), UDP grid
=============  ===========================================  ====================================
"""

from __future__ import annotations

from collections.abc import Sequence

from animalpose.codecs.base import Codec
from animalpose.codecs.dark import DarkCodec
from animalpose.codecs.gaussian import MSRAHeatmapCodec
from animalpose.codecs.grmi import GRMICodec
from animalpose.codecs.soft_argmax import LPN_BETA, SoftArgmaxCodec
from animalpose.codecs.udp import UDPHeatmapCodec
from animalpose.errors import ConfigError

CODEC_KINDS = ("gaussian", "argmax", "dark", "udp", "soft_argmax", "grmi")

__all__ = [
    "CODEC_KINDS",
    "Codec",
    "DarkCodec",
    "GRMICodec",
    "MSRAHeatmapCodec",
    "SoftArgmaxCodec",
    "UDPHeatmapCodec",
    "build_codec",
]


def _pair(value: Sequence[int] | int, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    vals = tuple(int(v) for v in value)
    if len(vals) != 2 or min(vals) < 2:
        raise ConfigError("<codec>", name, f"expected (width, height) of at least 2 pixels, got {value!r}")
    return vals  # type: ignore[return-value]


def build_codec(
    kind: str,
    input_size: Sequence[int] | int,
    heatmap_size: Sequence[int] | int,
    sigma: float = 2.0,
    *,
    beta: float = LPN_BETA,
    blur_kernel: int | None = None,
    quarter_shift: bool = True,
    radius: float = 4.5,
) -> Codec:
    """A codec by name.

    Args:
        kind: one of :data:`CODEC_KINDS` ("argmax" is the MSRA Gaussian codec).
        input_size: (W, H) of the network input (an int means square).
        heatmap_size: (w, h) of the heatmaps.
        sigma: Gaussian σ in heatmap pixels.
        beta: soft-argmax inverse temperature.
        blur_kernel: DARK/UDP modulation kernel (odd); default from σ.
        quarter_shift: MSRA decoder's quarter-pixel shift.
        radius: G-RMI disk radius R in heatmap pixels.

    Raises:
        ConfigError naming the field for an unknown kind or a bad size / σ.
    """
    inp, hm = _pair(input_size, "input_size"), _pair(heatmap_size, "heatmap_size")
    if not sigma > 0:
        raise ConfigError("<codec>", "sigma", f"must be positive, got {sigma}")
    if blur_kernel is not None and (blur_kernel < 1 or blur_kernel % 2 == 0):
        raise ConfigError("<codec>", "blur_kernel", f"must be a positive odd size, got {blur_kernel}")
    if kind in ("gaussian", "argmax"):
        return MSRAHeatmapCodec(inp, hm, sigma, quarter_shift)
    if kind == "dark":
        return DarkCodec(inp, hm, sigma, blur_kernel)
    if kind == "udp":
        return UDPHeatmapCodec(inp, hm, sigma, blur_kernel)
    if kind == "soft_argmax":
        return SoftArgmaxCodec(inp, hm, sigma, beta)
    if kind == "grmi":
        if not radius > 0:
            raise ConfigError("<codec>", "radius", f"must be positive, got {radius}")
        return GRMICodec(inp, hm, radius)
    raise ConfigError("<codec>", "kind", f"unknown codec {kind!r} (known: {', '.join(CODEC_KINDS)})")
