"""Model factory: one typed function per variant, one explicit table of them for listing and configs.

``build_model("hourglass4", 18)`` and ``build_model_from_config(ModelConfig(...))`` return a
:class:`~animalpose.models.heads.PoseModel`. The table :data:`MODELS` is the only name → function map;
every entry points at a plain function, so "go to definition" works from a name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from animalpose.errors import ConfigError
from animalpose.flops import count_macs_and_outputs, count_parameters
from animalpose.model_names import GRMI_MODELS, MODEL_NAMES
from animalpose.models.cpn import CPN, cpn, cpn_quick
from animalpose.models.grmi import GRMINet, grmi_quick, grmi_resnet
from animalpose.models.heads import HEAD_CODECS, PoseModel, make_head
from animalpose.models.hourglass import HourglassNet, hourglass_net, hourglass_quick_net
from animalpose.models.hrnet import HRNet, hrnet
from animalpose.models.lpn import LPN, lpn, lpn_quick
from animalpose.models.mspn import MSPN, mspn, mspn_quick
from animalpose.models.pyranet import PyraNet, pyranet, pyranet_quick
from animalpose.models.reference_weights import load_reference_hourglass
from animalpose.models.rsn import RSN, rsn, rsn_quick
from animalpose.models.simple_baseline import SimpleBaseline, simple_baseline
from animalpose.models.weights import load_backbone_weights

# --- one function per variant ------------------------------------------------------------------------


def hourglass1(num_joints: int = 18, **kw: Any) -> HourglassNet:
    return hourglass_net(num_joints, num_stacks=1, **kw)


def hourglass2(num_joints: int = 18, **kw: Any) -> HourglassNet:
    return hourglass_net(num_joints, num_stacks=2, **kw)


def hourglass4(num_joints: int = 18, **kw: Any) -> HourglassNet:
    return hourglass_net(num_joints, num_stacks=4, **kw)


def hourglass8(num_joints: int = 18, **kw: Any) -> HourglassNet:
    return hourglass_net(num_joints, num_stacks=8, **kw)


def hourglass_quick(num_joints: int = 18) -> HourglassNet:
    return hourglass_quick_net(num_joints)


def pyranet4(num_joints: int = 18, **kw: Any) -> PyraNet:
    return pyranet(num_joints, num_stacks=4, **kw)


def pyranet8(num_joints: int = 18, **kw: Any) -> PyraNet:
    return pyranet(num_joints, num_stacks=8, **kw)


def pyranet_quick_net(num_joints: int = 18) -> PyraNet:
    return pyranet_quick(num_joints)


def simplebaseline18(num_joints: int = 17, **kw: Any) -> SimpleBaseline:
    return simple_baseline(num_joints, depth=18, **kw)


def simplebaseline34(num_joints: int = 17, **kw: Any) -> SimpleBaseline:
    return simple_baseline(num_joints, depth=34, **kw)


def simplebaseline50(num_joints: int = 17, **kw: Any) -> SimpleBaseline:
    return simple_baseline(num_joints, depth=50, **kw)


def simplebaseline101(num_joints: int = 17, **kw: Any) -> SimpleBaseline:
    return simple_baseline(num_joints, depth=101, **kw)


def simplebaseline152(num_joints: int = 17, **kw: Any) -> SimpleBaseline:
    return simple_baseline(num_joints, depth=152, **kw)


def hrnet_w32(num_joints: int = 17, **kw: Any) -> HRNet:
    return hrnet(num_joints, width=32, **kw)


def hrnet_w48(num_joints: int = 17, **kw: Any) -> HRNet:
    return hrnet(num_joints, width=48, **kw)


def cpn50(num_joints: int = 17, **kw: Any) -> CPN:
    return cpn(num_joints, depth=50, **kw)


def cpn101(num_joints: int = 17, **kw: Any) -> CPN:
    return cpn(num_joints, depth=101, **kw)


def cpn_quick_net(num_joints: int = 17) -> CPN:
    return cpn_quick(num_joints)


def mspn_2stg(num_joints: int = 17, **kw: Any) -> MSPN:
    return mspn(num_joints, num_stages=2, **kw)


def mspn_3stg(num_joints: int = 17, **kw: Any) -> MSPN:
    return mspn(num_joints, num_stages=3, **kw)


def mspn_4stg(num_joints: int = 17, **kw: Any) -> MSPN:
    return mspn(num_joints, num_stages=4, **kw)


def mspn_quick_net(num_joints: int = 17) -> MSPN:
    return mspn_quick(num_joints)


def rsn18(num_joints: int = 17, **kw: Any) -> RSN:
    return rsn(num_joints, depth=18, **kw)


def rsn50(num_joints: int = 17, **kw: Any) -> RSN:
    return rsn(num_joints, depth=50, **kw)


def rsn_quick_net(num_joints: int = 17, **kw: Any) -> RSN:
    return rsn_quick(num_joints, **kw)


def lpn50(num_joints: int = 17, **kw: Any) -> LPN:
    return lpn(num_joints, depth=50, **kw)


def lpn101(num_joints: int = 17, **kw: Any) -> LPN:
    return lpn(num_joints, depth=101, **kw)


def lpn152(num_joints: int = 17, **kw: Any) -> LPN:
    return lpn(num_joints, depth=152, **kw)


def lpn_quick_net(num_joints: int = 17) -> LPN:
    return lpn_quick(num_joints)


def grmi_resnet50(num_joints: int = 17) -> GRMINet:
    return grmi_resnet(num_joints, depth=50)


def grmi_resnet101(num_joints: int = 17) -> GRMINet:
    return grmi_resnet(num_joints, depth=101)


def grmi_quick_net(num_joints: int = 17) -> GRMINet:
    return grmi_quick(num_joints)


# --- the table ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A listed variant: its factory, default input (H, W), default joints, and the input multiple.

    ``hourglass_stacks``: the stack count that the experiment config's ``model.stacks`` must match and
    whose width ``model.channels`` sets (hourglass1/2/4/8), else None. ``flip_shift``: whether the
    reference code of the family shifts flipped heatmaps one pixel in the flip test (MSRA-style code:
    SimpleBaseline, HRNet, CPN) or not (pytorch-pose's ``flip_back``: hourglass, PyraNet).
    """

    factory: Callable[..., nn.Module]
    input_size: tuple[int, int]
    num_joints: int
    input_multiple: int
    description: str
    hourglass_stacks: int | None = None
    flip_shift: bool = True


MODELS: dict[str, ModelSpec] = {
    "hourglass1": ModelSpec(hourglass1, (256, 256), 18, 64, "stacked hourglass, 1 stack, 256 ch (CC-SSL)", 1, False),
    "hourglass2": ModelSpec(hourglass2, (256, 256), 18, 64, "stacked hourglass, 2 stacks, 256 ch", 2, False),
    "hourglass4": ModelSpec(hourglass4, (256, 256), 18, 64, "stacked hourglass, 4 stacks (CC-SSL results)", 4, False),
    "hourglass8": ModelSpec(hourglass8, (256, 256), 18, 64, "stacked hourglass, 8 stacks (Newell et al.)", 8, False),
    "hourglass_quick": ModelSpec(hourglass_quick, (128, 128), 18, 64, "CPU quick: 2 stacks, 128 ch", flip_shift=False),
    "pyranet4": ModelSpec(pyranet4, (256, 256), 18, 64, "PyraNet PRM-B, 4 stacks", flip_shift=False),
    "pyranet": ModelSpec(pyranet8, (256, 256), 18, 64, "PyraNet PRM-B, 8 stacks (Yang et al.)", flip_shift=False),
    "pyranet_quick": ModelSpec(pyranet_quick_net, (128, 128), 18, 64, "CPU quick PyraNet: 2 stacks, 128 ch",
                                   flip_shift=False),
    "simplebaseline18": ModelSpec(simplebaseline18, (256, 192), 17, 32, "SimpleBaseline ResNet-18"),
    "simplebaseline34": ModelSpec(simplebaseline34, (256, 192), 17, 32, "SimpleBaseline ResNet-34"),
    "simplebaseline50": ModelSpec(simplebaseline50, (256, 192), 17, 32, "SimpleBaseline ResNet-50"),
    "simplebaseline101": ModelSpec(simplebaseline101, (256, 192), 17, 32, "SimpleBaseline ResNet-101"),
    "simplebaseline152": ModelSpec(simplebaseline152, (256, 192), 17, 32, "SimpleBaseline ResNet-152"),
    "hrnet_w32": ModelSpec(hrnet_w32, (256, 192), 17, 32, "HRNet-W32"),
    "hrnet_w48": ModelSpec(hrnet_w48, (256, 192), 17, 32, "HRNet-W48"),
    "cpn50": ModelSpec(cpn50, (256, 192), 17, 32, "CPN ResNet-50, GlobalNet + RefineNet, OHKM (Chen et al.)"),
    "cpn101": ModelSpec(cpn101, (256, 192), 17, 32, "CPN ResNet-101"),
    "cpn_quick": ModelSpec(cpn_quick_net, (128, 96), 17, 32, "CPU quick CPN: ResNet-18, 64-ch pyramid"),
    # MSPN / RSN: mmpose's configs flip-test without the shift (shift_heatmap=False)
    "mspn_2stg": ModelSpec(mspn_2stg, (256, 192), 17, 32, "MSPN, 2 ResNet-50 stages, coarse-to-fine (Li et al.)",
                           flip_shift=False),
    "mspn_3stg": ModelSpec(mspn_3stg, (256, 192), 17, 32, "MSPN, 3 ResNet-50 stages", flip_shift=False),
    "mspn_4stg": ModelSpec(mspn_4stg, (256, 192), 17, 32, "MSPN, 4 ResNet-50 stages", flip_shift=False),
    "mspn_quick": ModelSpec(mspn_quick_net, (128, 96), 17, 32, "CPU quick MSPN: 2 ResNet-18 stages, 64 ch",
                            flip_shift=False),
    "rsn18": ModelSpec(rsn18, (256, 192), 17, 32, "RSN-18, residual steps blocks (Cai et al.; PRM: prm=True)",
                       flip_shift=False),
    "rsn50": ModelSpec(rsn50, (256, 192), 17, 32, "RSN-50", flip_shift=False),
    "rsn_quick": ModelSpec(rsn_quick_net, (128, 96), 17, 32, "CPU quick RSN: RSN-18 blocks, 64 ch", flip_shift=False),
    # LPN: backbone stride 16 (last stage at stride 1); the authors' config flip-tests with the shift
    "lpn50": ModelSpec(lpn50, (256, 192), 17, 16, "LPN-50, depthwise bottlenecks + GC blocks (Zhang et al.)"),
    "lpn101": ModelSpec(lpn101, (256, 192), 17, 16, "LPN-101"),
    "lpn152": ModelSpec(lpn152, (256, 192), 17, 16, "LPN-152"),
    "lpn_quick": ModelSpec(lpn_quick_net, (128, 96), 17, 16, "CPU quick LPN: 2 blocks per stage, 128-ch deconvs"),
    # G-RMI: 3K output maps (heatmaps + offsets), codec.kind grmi; its UDP grid flips without a shift
    "grmi_resnet50": ModelSpec(grmi_resnet50, (256, 192), 17, 8, "G-RMI heatmaps + offsets, ResNet-50 at stride 8",
                               flip_shift=False),
    "grmi_resnet101": ModelSpec(grmi_resnet101, (256, 192), 17, 8, "G-RMI, ResNet-101 at stride 8 (Papandreou et al.)",
                                flip_shift=False),
    "grmi_quick": ModelSpec(grmi_quick_net, (128, 96), 17, 8, "CPU quick G-RMI: ResNet-18 to layer3 at stride 8",
                            flip_shift=False),
}
if tuple(MODELS) != MODEL_NAMES:  # configs are checked against the torch-free list
    raise RuntimeError(f"animalpose.model_names.MODEL_NAMES {MODEL_NAMES} differs from MODELS {tuple(MODELS)}")
if {n for n, s in MODELS.items() if s.factory in (grmi_resnet50, grmi_resnet101, grmi_quick_net)} != set(GRMI_MODELS):
    raise RuntimeError(f"animalpose.model_names.GRMI_MODELS {GRMI_MODELS} are not MODELS' G-RMI networks")


# --- typed config and building -----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    """Typed model configuration.

    Attributes:
        name: a key of :data:`MODELS`.
        num_joints: K; None takes the variant's default (18 hourglass/PyraNet, 17 others).
        head: "heatmap", "dsnt" or "integral".
        beta: inverse temperature of the integral head.
        input_size: (H, W); None takes the variant's default; must be a multiple of its input multiple.
        pretrained: local path of ImageNet backbone weights (ResNet, HRNet), or of a CC-SSL reference
            checkpoint (``checkpoint.pth.tar``) for a stacked hourglass, which gives the whole network; or None.
        arch: extra keyword arguments for the variant's factory (e.g. {"num_blocks": 2}).
    """

    name: str
    num_joints: int | None = None
    head: str = "heatmap"
    beta: float = 1.0
    input_size: tuple[int, int] | None = None
    pretrained: str | None = None
    arch: dict[str, Any] = field(default_factory=dict)

    def validate(self, source: str = "<model config>") -> None:
        """Raise ConfigError naming ``source`` and the field for any invalid value."""
        if self.name not in MODELS:
            raise ConfigError(source, "model.name", f"unknown model {self.name!r}; known: {', '.join(MODELS)}")
        if self.num_joints is not None and (not isinstance(self.num_joints, int) or self.num_joints < 1):
            raise ConfigError(source, "model.num_joints", f"expected a positive integer, got {self.num_joints!r}")
        if self.head not in HEAD_CODECS:
            raise ConfigError(source, "model.head", f"unknown head {self.head!r}; expected one of {HEAD_CODECS}")
        if self.name in GRMI_MODELS and self.head != "heatmap":
            raise ConfigError(source, "model.head", f"{self.name} is read by its codec (grmi: Hough voting over "
                                                    f"heatmaps + offsets), not by a {self.head!r} head")
        if not isinstance(self.beta, int | float) or self.beta <= 0:
            raise ConfigError(source, "model.beta", f"expected a positive number, got {self.beta!r}")
        if self.input_size is not None:
            m = MODELS[self.name].input_multiple
            if any(v <= 0 or v % m for v in self.input_size):
                raise ConfigError(
                    source, "model.input_size", f"{self.name} needs H and W multiples of {m}, got {self.input_size}"
                )
        if not isinstance(self.arch, dict):
            raise ConfigError(source, "model.arch", f"expected a mapping, got {type(self.arch).__name__}")


def build_model_from_config(cfg: ModelConfig, source: str = "<model config>") -> PoseModel:
    """Build the network, wrap it with its head, and load local weights if configured: an ImageNet backbone,
    or for a stacked hourglass a CC-SSL reference checkpoint (:mod:`animalpose.models.reference_weights`)."""
    cfg.validate(source)
    spec = MODELS[cfg.name]
    num_joints = cfg.num_joints if cfg.num_joints is not None else spec.num_joints
    try:
        net = spec.factory(num_joints, **cfg.arch)
    except TypeError as exc:
        raise ConfigError(source, "model.arch", f"{cfg.name}: {exc}") from exc
    model = PoseModel(cfg.name, net, make_head(cfg.head, cfg.beta), cfg.input_size or spec.input_size)
    if cfg.pretrained and isinstance(net, HourglassNet):  # no ImageNet backbone: the reference's whole network
        load_reference_hourglass(model, cfg.pretrained)
    elif cfg.pretrained:
        load_backbone_weights(model, cfg.pretrained)
    return model


def build_model(name: str, num_joints: int | None = None, **kw: Any) -> PoseModel:
    """``build_model("hrnet_w32", 17, head="dsnt")``; kw are :class:`ModelConfig` fields, and any other
    keyword goes to the variant's factory (``arch``)."""
    cfg_keys = {f.name for f in fields(ModelConfig)} - {"name", "num_joints", "arch"}
    cfg_kw = {k: v for k, v in kw.items() if k in cfg_keys}
    arch = {**kw.get("arch", {}), **{k: v for k, v in kw.items() if k not in cfg_keys and k != "arch"}}
    return build_model_from_config(ModelConfig(name=name, num_joints=num_joints, arch=arch, **cfg_kw))


def list_models() -> list[str]:
    return list(MODELS)


def model_info(name: str, num_joints: int | None = None) -> dict[str, Any]:
    """name, params, input_size [H, W], gflops (10⁹ multiply-adds at the default input), num_joints,
    output_shapes and description; the model is built on the meta device, so nothing is allocated."""
    spec = MODELS.get(name)
    if spec is None:
        raise ConfigError("<models>", "name", f"unknown model {name!r}; known: {', '.join(MODELS)}")
    k = num_joints or spec.num_joints
    with torch.device("meta"):
        model = build_model(name, k)
    macs, outputs = count_macs_and_outputs(model, spec.input_size)
    return {
        "name": name,
        "params": count_parameters(model),
        "input_size": list(spec.input_size),
        "gflops": round(macs / 1e9, 3),
        "num_joints": k,
        "stride": model.stride,
        "outputs": [list(o.shape) for o in outputs],
        "head_codec": model.head_codec,
        "description": spec.description,
    }
