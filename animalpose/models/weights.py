"""ImageNet backbone weights from a local file (never downloaded at run time).

Accepted files: a state dict saved with ``torch.save`` (torchvision's ``resnet50-*.pth``, the HRNet
authors' ``hrnet_w32-*.pth`` / ``hrnetv2_w32_imagenet_pretrained.pth``), optionally wrapped as
``{"state_dict": ...}`` or ``{"model": ...}`` and with a ``module.`` prefix from DataParallel. Files
load with ``torch.load(weights_only=True)``.

The target is the architecture's ``pretrained_target()``: the ResNet of a SimpleBaseline, HRNet without
its pose head. Every backbone key must be present with the right shape, otherwise :class:`DataError`
names the file and the keys; keys of the file that the backbone does not have (the ImageNet classifier,
HRNet's classification head) are reported, not loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from animalpose.errors import ConfigError, DataError


@dataclass
class LoadReport:
    """What a weights file gave: ``loaded`` keys, ``unexpected`` keys of the file that were not used,
    and ``missing`` keys of the target that the file lacked but are allowed to (the pose head)."""

    path: str
    loaded: list[str]
    unexpected: list[str]
    missing: list[str]

    def summary(self) -> str:
        return (
            f"{self.path}: loaded {len(self.loaded)} tensors; "
            f"ignored {len(self.unexpected)} keys not in the backbone"
            + (
                f" ({', '.join(self.unexpected[:5])}{', ...' if len(self.unexpected) > 5 else ''})"
                if self.unexpected
                else ""
            )
            + (f"; left {len(self.missing)} head keys at their init" if self.missing else "")
        )


def _short(keys: list[str], n: int = 8) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict from ``path``; DataError naming the file if it is missing or not a state dict."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        reason = "no such file" if not os.path.isdir(path) else "is a folder; a weights file is needed here"
        raise DataError(path, "pretrained", f"{reason} (ImageNet weights are read from a local path only)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or pickled-object files
        raise DataError(path, "pretrained", f"cannot read as a weights-only torch file: {exc}") from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not obj:
        raise DataError(path, "pretrained", f"expected a non-empty state dict, got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise DataError(path, "pretrained", f"entries that are not named tensors: {_short([str(k) for k in bad])}")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def load_backbone_weights(model: nn.Module, path: str | os.PathLike) -> LoadReport:
    """Copy the backbone tensors of the file at ``path`` into ``model`` (a PoseModel or an architecture).

    Raises:
        ConfigError: the architecture has no ImageNet backbone (hourglass, PyraNet).
        DataError: the file is missing or unreadable, lacks backbone keys, or has wrong shapes; the
            message names the file and lists the keys.
    """
    path = os.fspath(path)
    net = getattr(model, "net", model)
    target_fn = getattr(net, "pretrained_target", None)
    if target_fn is None:
        raise ConfigError(path, "pretrained", f"{type(net).__name__} has no ImageNet backbone to load into")
    target, optional_prefixes = target_fn()
    state = read_state_dict(path)
    own = target.state_dict()

    missing = [k for k in own if k not in state]
    required_missing = [k for k in missing if not k.startswith(optional_prefixes)]
    if required_missing:
        raise DataError(path, "pretrained", f"missing backbone keys: {_short(required_missing)}")
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if mismatched:
        raise DataError(path, "pretrained", f"shape mismatch (file vs model): {_short(mismatched, 4)}")
    loaded = [k for k in own if k in state]
    unexpected = [k for k in state if k not in own]
    with torch.no_grad():
        for k in loaded:
            own[k].copy_(state[k].to(own[k].dtype))
    return LoadReport(path, loaded, unexpected, [k for k in missing if k not in required_missing])
