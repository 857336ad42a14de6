"""Domain adaptation of pose models trained on synthetic animals.

- :mod:`animalpose.adapt.ccssl`: CC-SSL rounds (Mu et al., CVPR 2020), ``animalpose adapt ccssl``;
  built from :mod:`~animalpose.adapt.pseudolabel` (equivariance / invariance views),
  :mod:`~animalpose.adapt.temporal` (optical-flow propagation), :mod:`~animalpose.adapt.selection`
  (progressive percentile selection, shared with WS-CDA's PPLO) and
  :mod:`~animalpose.adapt.diagnostics` (pseudo-label precision, coverage, per-check curves);
  :mod:`~animalpose.adapt.control` runs it beside its supervised control (λ = 0) and keeps the better on
  labelled val frames (what ``animalpose adapt ccssl`` does).
- :mod:`animalpose.adapt.wscda`: WS-CDA (Cao et al., ICCV 2019).
"""
