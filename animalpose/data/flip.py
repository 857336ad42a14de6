"""Horizontal flips of images, keypoints and heatmaps with the schema's left/right joint swap.

A mirror maps pixel centre ``x`` to ``W - 1 - x`` and joint ``k`` takes the place of its mirror
partner (``KeypointSchema.flip_permutation``). Schemas without flip pairs (e.g. Horse-10, whose
"near"/"off" labels are not mirrored) must not be flipped: :func:`flip_permutation_or_none` returns
None for them and logs that once per schema.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from animalpose.keypoints import KeypointSchema

log = logging.getLogger(__name__)
_WARNED: set[str] = set()


def flip_permutation_or_none(schema: KeypointSchema) -> np.ndarray | None:
    """(K,) joint permutation of a horizontal flip, or None (logged once) when the schema has no pairs."""
    if schema.can_flip:
        return schema.flip_permutation()
    if schema.name not in _WARNED:
        _WARNED.add(schema.name)
        log.info("schema %r has no left/right flip pairs: horizontal flip disabled", schema.name)
    return None


def flip_image(image: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H, W, C) mirrored left-right (a contiguous copy)."""
    return np.ascontiguousarray(image[:, ::-1])


def flip_keypoints(keypoints: np.ndarray, width: int, permutation: np.ndarray) -> np.ndarray:
    """Mirror keypoints in an image ``width`` pixels wide and swap left/right joints.

    Args:
        keypoints: (..., K, C), C >= 2: x, y[, visibility].
        width: image width in pixels.
        permutation: (K,) from :meth:`KeypointSchema.flip_permutation`.

    Returns:
        (..., K, C) copy: x -> width - 1 - x, joint k takes input joint permutation[k].
    """
    out = np.array(keypoints, copy=True)
    out[..., 0] = (width - 1) - out[..., 0]
    return out[..., np.asarray(permutation), :]


def flip_heatmaps(heatmaps: np.ndarray | torch.Tensor, permutation: np.ndarray, shift: bool = False):
    """Mirror (..., K, H, W) heatmaps and swap left/right joints (numpy or torch).

    ``shift`` moves the mirrored maps one pixel right, the correction the MSRA/SimpleBaseline code
    applies in flip test-time augmentation for the standard (non-UDP) convention, where the heatmap
    grid is not symmetric about the input's mirror axis. Leave it False with UDP.

    G-RMI's outputs (..., 3K, H, W) (heatmaps, x-offsets, y-offsets; :mod:`animalpose.codecs.grmi`) are
    recognised by their 3K channels for a K-joint ``permutation``: each group is mirrored and permuted, and
    the x-offsets change sign (a vector to the right points left in the mirror).
    """
    perm = np.asarray(permutation)
    k, channels = len(perm), heatmaps.shape[-3]
    offsets = channels == 3 * k
    if offsets:
        perm = np.concatenate([perm, perm + k, perm + 2 * k])
    elif channels != k:
        raise ValueError(f"{channels} maps fit neither {k} joints nor their G-RMI fields ({3 * k})")
    if isinstance(heatmaps, torch.Tensor):
        out = heatmaps.flip(-1)[..., torch.as_tensor(perm, device=heatmaps.device), :, :]
        if shift or offsets:
            out = out.clone()
        if shift:
            out[..., 1:] = out[..., :-1].clone()
        if offsets:
            out[..., k:2 * k, :, :] *= -1
        return out
    out = np.ascontiguousarray(heatmaps[..., ::-1][..., perm, :, :])
    if shift:
        out[..., 1:] = out[..., :-1].copy()
    if offsets:
        out[..., k:2 * k, :, :] *= -1
    return out
