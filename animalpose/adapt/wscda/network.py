"""The WS-CDA network (Cao et al., "Cross-Domain Adaptation for Animal Pose Estimation", ICCV 2019).

Four parts, as in the paper's figure of the architecture:

- a **feature extractor** (any backbone: (N, 3, H, W) -> (N, C, h, w); the model factory's
  SimpleBaseline backbones in real runs, :func:`wscda_from_pose_network`);
- a **domain adaptation network** (:class:`DomainAdaptationNetwork`): a small residual convolutional
  adapter between the extractor and the estimator that re-aligns the shared features for keypoint
  estimation. Its last convolution starts at zero, so a freshly built adapter is the identity and a
  pretrained extractor+estimator pair is not disturbed at the start of adaptation. It is applied to
  every sample (humans and animals alike: the paper does not route domains differently, and a shared
  path keeps the joint keypoint space consistent);
- a **keypoint estimator** (:class:`KeypointEstimator`) predicting J heatmaps over the joint keypoint
  space of ``joint_space`` (human and animal joints through the explicit mapping table);
- a **domain discriminator** (:class:`DomainDiscriminator`) with two sigmoid outputs, ŷ (human 0 /
  animal 1) and ẑ (source 0 / target 1), returned as logits (N, 2); with ``outputs=3`` (not in the
  paper; for generated animals as an extra labelled source) a third, ŝ (real 0 / synthetic 1), so the
  adversarial term also confuses rendered with photographed samples. By default it looks at the
  extractor's features (``discriminate_on="features"``, as in the paper's figure, so the adversarial
  signal shapes the shared extractor); ``"adapted"`` feeds it the adapter's output instead.

The discriminator has no batch normalisation: it is evaluated twice per alternating step (once on
detached features, once for the adversarial term) and BN statistics of two passes would differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from animalpose.adapt.wscda.grl import grad_reverse

DISCRIMINATE_ON = ("features", "adapted")
ADAPTERS = ("residual", "linear")


class DomainAdaptationNetwork(nn.Module):
    """Residual adapter ``x + conv(relu(conv(x)))``: (N, C, h, w) -> (N, C, h, w), identity at init."""

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or channels
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(hidden, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class LinearAdapter(nn.Module):
    """Bias-free linear residual adapter ``x + W x`` (W a 1×1 convolution): (N, C, h, w) -> (N, C, h, w).

    Identity at init (W = 0). Being linear, it folds exactly into a following linear layer
    (:func:`fold_linear_adapter`), so a WS-CDA network built on a factory model can be exported back
    to that model's exact architecture and evaluated by the engine.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1, bias=False)
        nn.init.zeros_(self.proj.weight)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.proj(x)

    def matrix(self) -> Tensor:
        """(C, C) matrix A = I + W of the adapter (out channel, in channel)."""
        w = self.proj.weight[:, :, 0, 0]
        return torch.eye(w.shape[0], dtype=w.dtype, device=w.device) + w


class KeypointEstimator(nn.Module):
    """Heatmap head: ``num_deconv`` stride-2 transposed convolutions, then a 1×1 convolution to J maps.

    (N, C, h, w) -> (N, J, h · 2**num_deconv, w · 2**num_deconv). With ``num_deconv = 3`` and 256
    channels this is the SimpleBaseline head (Xiao et al., ECCV 2018).
    """

    def __init__(self, in_channels: int, num_joints: int, num_deconv: int = 0, deconv_channels: int = 256):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(num_deconv):
            layers += [
                nn.ConvTranspose2d(channels, deconv_channels, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(deconv_channels),
                nn.ReLU(inplace=True),
            ]
            channels = deconv_channels
        layers.append(nn.Conv2d(channels, num_joints, 1))
        self.body = nn.Sequential(*layers)
        self.num_joints = num_joints

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


#: the discriminator's outputs: the paper's ŷ (animal) and ẑ (target), or those and ŝ (synthetic)
DISCRIMINATOR_OUTPUTS = (2, 3)


class DomainDiscriminator(nn.Module):
    """Domain classifier: (N, C, h, w) -> (N, outputs) logits of ŷ (animal), ẑ (target) and, with
    ``outputs=3``, ŝ (synthetic).

    ``num_convs`` 3×3 convolutions (the first ``num_convs - 1`` with stride 2) with LeakyReLU(0.2),
    global average pooling, a hidden linear layer and a linear layer to the logits.
    """

    def __init__(self, in_channels: int, hidden: int = 64, num_convs: int = 2, outputs: int = 2):
        super().__init__()
        if outputs not in DISCRIMINATOR_OUTPUTS:
            raise ValueError(f"outputs must be one of {DISCRIMINATOR_OUTPUTS}, got {outputs}")
        layers: list[nn.Module] = []
        channels = in_channels
        for k in range(num_convs):
            stride = 2 if k < num_convs - 1 else 1
            layers += [nn.Conv2d(channels, hidden, 3, stride=stride, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            channels = hidden
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.LeakyReLU(0.2, inplace=True),
                                nn.Linear(hidden, outputs))
        self.outputs = outputs

    def forward(self, x: Tensor) -> Tensor:
        h = self.convs(x).mean(dim=(2, 3))
        return self.fc(h)


@dataclass
class WSCDAOutput:
    """What one forward pass of :class:`WSCDANetwork` returns.

    Attributes:
        features: (N, C, h, w) extractor output.
        adapted: (N, C, h, w) adapter output (what the estimator reads).
        heatmaps: list of (N, J, h', w') heatmaps (one per stage; one stage for a plain head).
        domain_input: the tensor the discriminator reads (``features`` or ``adapted``), before any GRL.
        domain_logits: (N, 2) logits of ŷ and ẑ ((N, 3) with ŝ), or None when the discriminator was not run.
    """

    features: Tensor
    adapted: Tensor
    heatmaps: list[Tensor]
    domain_input: Tensor
    domain_logits: Tensor | None


class WSCDANetwork(nn.Module):
    """Feature extractor -> domain adaptation network -> keypoint estimator, plus a domain discriminator.

    Args:
        extractor: backbone, (N, 3, H, W) -> (N, feature_channels, h, w).
        feature_channels: C, channels of the extractor's output.
        num_joints: J, size of the joint keypoint space.
        adapter, estimator, discriminator: override the default parts (built from C and J when None).
            A custom estimator may return a Tensor or a list of Tensors (stacked stages).
        discriminate_on: ``"features"`` (extractor output, default) or ``"adapted"`` (adapter output).
    """

    def __init__(
        self,
        extractor: nn.Module,
        feature_channels: int,
        num_joints: int,
        *,
        adapter: nn.Module | None = None,
        estimator: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        discriminate_on: str = "features",
    ):
        super().__init__()
        if discriminate_on not in DISCRIMINATE_ON:
            raise ValueError(f"discriminate_on must be one of {DISCRIMINATE_ON}, got {discriminate_on!r}")
        self.extractor = extractor
        self.adapter = adapter if adapter is not None else DomainAdaptationNetwork(feature_channels)
        self.estimator = estimator if estimator is not None else KeypointEstimator(feature_channels, num_joints)
        self.discriminator = discriminator if discriminator is not None else DomainDiscriminator(feature_channels)
        self.num_joints = num_joints
        self.discriminate_on = discriminate_on

    def pose_modules(self) -> list[nn.Module]:
        """Extractor, adapter and estimator: the parts that minimise α·L_DDL + β·L_pose."""
        return [self.extractor, self.adapter, self.estimator]

    def pose_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.pose_modules() for p in m.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters())

    def discriminate(self, domain_input: Tensor, grl_lambda: float | None = None) -> Tensor:
        """(N, C, h, w) -> (N, 2 or 3) logits; with ``grl_lambda`` the input passes a gradient reversal layer."""
        if grl_lambda is not None:
            domain_input = grad_reverse(domain_input, grl_lambda)
        return self.discriminator(domain_input)

    def forward(self, images: Tensor, *, grl_lambda: float | None = None, discriminate: bool = True) -> WSCDAOutput:
        """(N, 3, H, W) images -> :class:`WSCDAOutput`.

        ``grl_lambda`` puts a gradient reversal layer (scale ``grl_lambda``) in front of the discriminator;
        ``discriminate=False`` skips the discriminator (prediction only).
        """
        features = self.extractor(images)
        adapted = self.adapter(features)
        heatmaps = self.estimator(adapted)
        heatmaps = [heatmaps] if isinstance(heatmaps, Tensor) else list(heatmaps)
        domain_input = features if self.discriminate_on == "features" else adapted
        logits = self.discriminate(domain_input, grl_lambda) if discriminate else None
        return WSCDAOutput(features, adapted, heatmaps, domain_input, logits)

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) -> (N, J, h', w') heatmaps of the last stage, without the discriminator."""
        return self.forward(images, discriminate=False).heatmaps[-1]


#: what a pose network needs for :func:`wscda_from_pose_network` to split it (SimpleBaseline's layout)
SPLIT_PARTS = ("backbone", "deconv_layers", "final_layer", "num_joints")


def splits_for_wscda(net: nn.Module) -> bool:
    """Whether ``net`` has the extractor / estimator layout that :func:`wscda_from_pose_network` splits."""
    return all(hasattr(net, name) for name in SPLIT_PARTS)


def wscda_from_pose_network(
    net: nn.Module,
    *,
    discriminator_hidden: int = 256,
    discriminate_on: str = "features",
    adapter: str = "residual",
    discriminator_outputs: int = 2,
) -> WSCDANetwork:
    """WS-CDA around a pretrained SimpleBaseline-style network (the paper starts from a human model).

    ``net`` must have ``backbone`` (the extractor), ``deconv_layers`` and ``final_layer`` (together the
    keypoint estimator) and ``num_joints`` — the layout of :class:`animalpose.models.simple_baseline.
    SimpleBaseline`. The modules are shared, not copied; a new identity-initialised adapter goes between
    backbone and deconvolutions, so at the start the WS-CDA network predicts exactly what ``net`` does.
    ``adapter="residual"`` is :class:`DomainAdaptationNetwork`; ``"linear"`` is :class:`LinearAdapter`,
    which :func:`export_pose_network` folds back into ``net`` after training. ``discriminator_outputs``: 2
    (the paper's ŷ, ẑ) or 3 (and ŝ, synthetic / real; :class:`DomainDiscriminator`).
    """
    if adapter not in ADAPTERS:
        raise ValueError(f"adapter must be one of {ADAPTERS}, got {adapter!r}")
    for name in SPLIT_PARTS:
        if not hasattr(net, name):
            raise ValueError(f"{type(net).__name__} has no {name!r}: expected a SimpleBaseline-style network")
    deconvs = [m for m in net.deconv_layers.modules() if isinstance(m, nn.ConvTranspose2d)]
    channels = deconvs[0].in_channels if deconvs else net.final_layer.in_channels
    return WSCDANetwork(
        net.backbone,
        channels,
        net.num_joints,
        adapter=LinearAdapter(channels) if adapter == "linear" else DomainAdaptationNetwork(channels),
        estimator=nn.Sequential(net.deconv_layers, net.final_layer),
        discriminator=DomainDiscriminator(channels, hidden=discriminator_hidden, outputs=discriminator_outputs),
        discriminate_on=discriminate_on,
    )


@torch.no_grad()
def fold_linear_adapter(adapter: LinearAdapter, layer: nn.Module) -> None:
    """Fold ``adapter`` (x -> A x) into the bias-free linear ``layer`` that reads its output, in place.

    ``layer`` is a ``ConvTranspose2d`` (weight (C_in, C_out, k, k)) or a ``Conv2d`` (weight
    (C_out, C_in, k, k)); afterwards ``layer(x) == old_layer(adapter(x))`` exactly (up to rounding).
    """
    a = adapter.matrix()  # (C, C): out, in
    if isinstance(layer, nn.ConvTranspose2d):
        layer.weight.copy_(torch.einsum("ci,cokl->iokl", a, layer.weight))
    elif isinstance(layer, nn.Conv2d):
        layer.weight.copy_(torch.einsum("ci,ockl->oikl", a, layer.weight))
    else:
        raise ValueError(f"cannot fold a linear adapter into {type(layer).__name__}")


def export_pose_network(model: WSCDANetwork, net: nn.Module) -> nn.Module:
    """Write the trained pose path of ``model`` back into ``net`` (built by :func:`wscda_from_pose_network`).

    With a :class:`LinearAdapter` the adapter is folded into the first linear layer of the estimator,
    so ``net`` alone then predicts what ``model`` does and has the factory model's exact state dict.
    ``net`` is modified in place and returned; ``model`` must not be trained further afterwards.
    """
    if isinstance(model.adapter, LinearAdapter):
        linear = [m for m in net.deconv_layers.modules() if isinstance(m, nn.ConvTranspose2d | nn.Conv2d)]
        first = linear[0] if linear else net.final_layer
        fold_linear_adapter(model.adapter, first)
        nn.init.zeros_(model.adapter.proj.weight)  # the fold moved it into ``net``; the shared path stays exact
    elif not isinstance(model.adapter, nn.Identity):
        raise ValueError(f"a {type(model.adapter).__name__} adapter cannot be folded into {type(net).__name__}")
    return net
