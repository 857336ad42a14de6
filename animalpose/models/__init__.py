"""Pose networks: hourglass, PyraNet, SimpleBaseline, HRNet, CPN, MSPN, RSN, LPN, G-RMI; heads; factory; speed paths.

Contracts other packages rely on
--------------------------------

**Building.** ``animalpose.models.factory.build_model(name, num_joints=None, *, head="heatmap", beta=1.0,
input_size=None, pretrained=None, **arch_kw) -> PoseModel`` or ``build_model_from_config(ModelConfig)``;
``MODELS`` is the one table of names (``hourglass1/2/4/8``, ``hourglass_quick``, ``pyranet4``,
``pyranet``, ``pyranet_quick``, ``simplebaseline18/34/50/101/152``, ``hrnet_w32``, ``hrnet_w48``, ``cpn50``,
``cpn101``, ``cpn_quick``, ``mspn_2stg/3stg/4stg``, ``mspn_quick``, ``rsn18``, ``rsn50``, ``rsn_quick``,
``lpn50/101/152``, ``lpn_quick``, ``grmi_resnet50``, ``grmi_resnet101``, ``grmi_quick``); the experiment config's
``model.name`` is validated against it.
Invalid names, heads, sizes or keywords raise :class:`animalpose.errors.ConfigError` naming the field.

**Forward.** ``model(x)`` with x (N, 3, H, W) float32 returns ``list[Tensor]`` of score maps
(N, K, H/4, W/4), one per supervised stage (hourglass/PyraNet: one per stack; others: a list of one);
the last is the final prediction (CPN: GlobalNet's four levels, then RefineNet; MSPN/RSN: four levels per
stage, coarse to fine). H and W must be multiples of 64 (hourglass, PyraNet: stride 4 × hourglass depth 4)
or 32 (SimpleBaseline, HRNet, CPN, MSPN, RSN), 16 (LPN), 8 (G-RMI).
G-RMI's outputs are (N, 3K, H/4, W/4): K heatmap logits, K x- and K y-offsets (:mod:`animalpose.codecs.grmi`),
read with ``codec.kind: grmi``; its codec's ``score_maps`` gives one Hough map per joint for argmax metrics.

**Attributes.** ``model.num_joints`` (K), ``model.stride`` (4), ``model.head_codec`` in
{"heatmap", "dsnt", "integral"}, ``model.name``, ``model.input_size`` (H, W), ``model.net`` (the
architecture, which holds every parameter), ``model.head`` (parameter-free).
``model.readout(heatmaps) -> Readout(coords (N, K, 2) heatmap px, coords_norm (N, K, 2) in (−1, 1),
scores (N, K), probs (N, K, h, w) or None)``: argmax for "heatmap", softmax expectation for "dsnt",
β-soft-argmax for "integral" (both via :mod:`animalpose.ops.soft_argmax`).

**Losses.** The model carries its loss: ``model.criterion`` (a :class:`animalpose.losses.PoseLoss`) and
``model.loss(outputs, target (N, K, h, w), weight (N, K), coords (N, K, 2) heatmap px or None) -> scalar``,
which the trainer calls (building coords only when ``model.needs_coords``): heatmap MSE for the heatmap
head, DSNT's Euclidean + JS for "dsnt", L1 on the soft-argmax coordinates for "integral", or the
architecture's ``heatmap_loss()`` (CPN: L2 + OHKM top-8;
MSPN/RSN: coarse-to-fine per-output Gaussians, :class:`animalpose.losses.CoarseToFineLoss`).
Functions in :mod:`animalpose.losses`: ``heatmap_mse(outputs, target, target_weight)``,
``ohkm_mse(outputs, target, target_weight, topk)``, ``dsnt_loss(coords_norm, heatmap_probs,
target_norm, weight, sigma, reg_weight)``, ``integral_l1(coords_norm, target_norm, weight)``.

**Speed** (:mod:`animalpose.models.speed`): ``to_channels_last``, ``Autocast(model, dtype)``,
``compile_model``, ``fold_batchnorm``, ``optimize_for_inference``; all give the plain outputs within
tolerance (tests/models/test_model_speed.py).

**Weights** (:mod:`animalpose.models.weights`): ``load_backbone_weights(model, path) -> LoadReport`` for
the ResNet/HRNet backbones from a local file; errors are DataError naming the file.

**Compute** (:mod:`animalpose.flops`): GFLOPs are 10⁹ multiply-adds (HRNet paper convention).
"""

from animalpose.models.factory import MODELS, ModelConfig, build_model, build_model_from_config, model_info
from animalpose.models.heads import DSNTHead, HeatmapHead, IntegralHead, PoseModel, Readout

__all__ = [
    "MODELS",
    "DSNTHead",
    "HeatmapHead",
    "IntegralHead",
    "ModelConfig",
    "PoseModel",
    "Readout",
    "build_model",
    "build_model_from_config",
    "model_info",
]
