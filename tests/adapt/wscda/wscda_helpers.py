"""Test-only WS-CDA helpers: a tiny network on a small strided CNN, and a per-sample joint-space encoder.

The library builds WS-CDA around a factory SimpleBaseline (:func:`animalpose.adapt.wscda.network.
wscda_from_pose_network`) and encodes targets through the top-down pipeline (records lifted into the
joint space by :mod:`animalpose.adapt.wscda.run`); these smaller pieces exercise the losses, the
min-max schemes and the joint space without either.

Sample encoding (:func:`encode_joint_targets`, :func:`make_sample`, :func:`collate_wscda`): a top-down
pipeline (crop, augment) yields, for every instance, the input crop and its keypoints in crop pixels in
the schema of its own dataset (``coco`` for humans, ``animalpose`` for animals). Here they become WS-CDA
targets:

- the keypoints are lifted into the joint space (:mod:`~animalpose.adapt.wscda.joint_space`), so a
  human never has Throat / TailBase / Withers;
- the heatmap codec (any :class:`animalpose.codecs.base.Codec`) renders the J target heatmaps and
  their weights; the weights are further multiplied by the domain's joint mask;
- unlabelled target animals get all-zero heatmaps and weights: they feed only the discriminator;
- the source decides the domain labels (y, z) through :data:`~animalpose.adapt.wscda.mixing.DOMAIN_LABELS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from animalpose.adapt.wscda.joint_space import ANIMAL, HUMAN, JointSpace
from animalpose.adapt.wscda.mixing import DOMAIN_LABELS, SOURCES
from animalpose.adapt.wscda.network import DomainDiscriminator, KeypointEstimator, WSCDANetwork
from animalpose.adapt.wscda.training import WSCDABatch
from animalpose.codecs.base import Codec


class ConvExtractor(nn.Module):
    """A tiny strided CNN: (N, in_channels, H, W) -> (N, width, H / 2**depth, W / 2**depth).

    Parameters (in_channels=3, width=16, depth=2): 3·16·9 + 16 +
    (16·16·9 + 16) = 2768.
    """

    def __init__(self, in_channels: int = 3, width: int = 16, depth: int = 2):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(depth):
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            channels = width
        self.body = nn.Sequential(*layers)
        self.out_channels = width

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def build_tiny_wscda(
    num_joints: int,
    *,
    width: int = 16,
    depth: int = 2,
    num_deconv: int = 0,
    discriminator_hidden: int = 32,
    discriminate_on: str = "features",
) -> WSCDANetwork:
    """A small WS-CDA network on :class:`ConvExtractor`.

    Heatmaps come out at 1/2**(depth - num_deconv) of the input resolution.
    """
    extractor = ConvExtractor(3, width, depth)
    return WSCDANetwork(
        extractor,
        width,
        num_joints,
        estimator=KeypointEstimator(width, num_joints, num_deconv=num_deconv, deconv_channels=width),
        discriminator=DomainDiscriminator(width, hidden=discriminator_hidden),
        discriminate_on=discriminate_on,
    )


@dataclass
class WSCDASample:
    """One encoded sample.

    Attributes:
        image: (3, H, W) float tensor (the network input crop).
        heatmaps: (J, h, w) float32 joint-space targets.
        weights: (J,) float32 target weights.
        y, z: domain labels (0 human / 1 animal; 0 source / 1 target).
    """

    image: torch.Tensor
    heatmaps: np.ndarray
    weights: np.ndarray
    y: int
    z: int


def encode_joint_targets(
    keypoints: np.ndarray | None, source: str, joint_space: JointSpace, codec: Codec
) -> tuple[np.ndarray, np.ndarray]:
    """Joint-space heatmaps and weights of one instance.

    Args:
        keypoints: (K_domain, 3) crop-pixel keypoints in the source's schema; ignored (may be None)
            for ``"target_animal"``.
        source: one of :data:`~animalpose.adapt.wscda.mixing.SOURCES`.

    Returns:
        heatmaps (J, h, w) float32 and weights (J,) float32 (zero for joints the domain lacks, joints
        the codec drops — unlabelled or outside the crop — and every joint of an unlabelled target).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r} (expected one of {SOURCES})")
    w, h = codec.heatmap_size
    if source == "target_animal":
        return np.zeros((joint_space.num_joints, h, w), np.float32), np.zeros(joint_space.num_joints, np.float32)
    domain = HUMAN if source == "human" else ANIMAL
    lifted = joint_space.lift(np.asarray(keypoints, dtype=np.float64), domain)
    heatmaps, weights = codec.encode(lifted)
    weights = np.asarray(weights, np.float32) * joint_space.domain_mask(domain)
    return np.asarray(heatmaps, np.float32) * weights[:, None, None], weights


def make_sample(
    image: torch.Tensor, keypoints: np.ndarray | None, source: str, joint_space: JointSpace, codec: Codec
) -> WSCDASample:
    """Encode one crop of ``source`` (see :func:`encode_joint_targets`)."""
    heatmaps, weights = encode_joint_targets(keypoints, source, joint_space, codec)
    y, z = DOMAIN_LABELS[source]
    return WSCDASample(image, heatmaps, weights, y, z)


def collate_wscda(samples: Sequence[WSCDASample]) -> WSCDABatch:
    """Stack samples into a :class:`~animalpose.adapt.wscda.training.WSCDABatch` (a DataLoader collate_fn)."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    return WSCDABatch(
        images=torch.stack([s.image for s in samples]),
        heatmaps=torch.from_numpy(np.stack([s.heatmaps for s in samples])),
        weights=torch.from_numpy(np.stack([s.weights for s in samples])),
        y=torch.tensor([s.y for s in samples], dtype=torch.long),
        z=torch.tensor([s.z for s in samples], dtype=torch.long),
    )
