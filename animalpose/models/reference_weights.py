"""Checkpoints of the CC-SSL reference code into our stacked hourglass.

The reference (github.com/JitengMu/Learning-from-Synthetic-Animals, commit 1ff5b529; its ``hg`` is
pytorch-pose's ``HourglassNet``) saves ``torch.save({'epoch', 'arch', 'state_dict', 'best_acc',
'optimizer'}, 'checkpoint.pth.tar')`` (``pose/utils/misc.py:save_checkpoint``, copied to
``model_best.pth.tar``; its published horse and tiger checkpoints are such files), with the model
wrapped in ``torch.nn.DataParallel``, so every name starts with ``module.``. Its module tree is ours
(:mod:`animalpose.models.hourglass`: ``conv1``, ``bn1``, ``layer1-3``, ``hg.<stack>.hg.<level>.<branch>``,
``res``, ``fc``, ``score``, ``fc_``, ``score_``) except that a bottleneck's shortcut conv sits in a
one-element ``nn.Sequential``: ``downsample.0.weight`` where ours is ``downsample.weight``. Our
:class:`~animalpose.models.heads.PoseModel` adds ``net.`` in front of the architecture's names.

The mapping is strict: every tensor of the file must land on a tensor of the same shape and every
tensor of the network must be given, otherwise a :class:`DataError` names the file and the first key
that does not map. Files load with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import os
import re

import torch
from torch import nn

from animalpose.errors import ConfigError, DataError
from animalpose.models.hourglass import HourglassNet
from animalpose.models.weights import read_state_dict

_DOWNSAMPLE = re.compile(r"(^|\.)downsample\.0\.")


def reference_to_ours(key: str) -> str:
    """A reference name (``module.`` already stripped) -> the :class:`HourglassNet` name.

    ``layer1.0.downsample.0.weight`` -> ``layer1.0.downsample.weight``; other names are unchanged.
    """
    return _DOWNSAMPLE.sub(r"\1downsample.", key)


def load_reference_hourglass(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Copy a reference checkpoint at ``path`` into ``model`` (a PoseModel of hourglass1/4/... or an
    :class:`HourglassNet`). Returns our names of the tensors loaded (all of them).

    Raises:
        ConfigError: ``model`` is not a stacked hourglass.
        DataError: the file is missing or not weights-only loadable, a tensor of the file has no
            counterpart of its shape (the first such key is named, with the name it was mapped to), or
            the file lacks tensors of the network (the first is named).
    """
    path = os.fspath(path)
    net = getattr(model, "net", model)
    if not isinstance(net, HourglassNet):
        raise ConfigError(path, "pretrained", f"a CC-SSL reference checkpoint loads into a stacked hourglass, "
                                              f"not {type(net).__name__}")
    state = read_state_dict(path)  # its 'state_dict' (or a bare state dict), 'module.' removed
    own = net.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        ours = reference_to_ours(key)
        if ours not in own:
            raise DataError(path, f"state_dict.{key}", f"does not map onto {type(net).__name__} "
                                                       f"({net.num_stacks} stacks): no tensor {ours!r}")
        if tuple(value.shape) != tuple(own[ours].shape):
            raise DataError(path, f"state_dict.{key}", f"shape {tuple(value.shape)} does not fit {ours!r} "
                                                       f"{tuple(own[ours].shape)}")
        mapped[ours] = value
    missing = [k for k in own if k not in mapped]
    if missing:
        raise DataError(path, "state_dict", f"lacks {len(missing)} tensors of {type(net).__name__} "
                                            f"({net.num_stacks} stacks), the first {missing[0]!r}")
    with torch.no_grad():
        for k, v in mapped.items():
            own[k].copy_(v.to(own[k].dtype))
    return list(mapped)
