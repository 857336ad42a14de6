"""The pseudo-labelling throughput probe returns consistent, positive figures."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from animalpose.adapt.pseudolabel import ConsistencyConfig
from animalpose.adapt.speed import pseudo_label_throughput
from animalpose.codecs import build_codec


def test_throughput_figures():
    codec = build_codec("gaussian", 32, 8)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    model_fn = lambda x: F.avg_pool2d(conv(x), 4)  # noqa: E731
    cfg = ConsistencyConfig(num_geometric=2, num_photometric=1)
    r = pseudo_label_throughput(model_fn, torch.rand(4, 3, 32, 32), cfg, codec, repeats=1, warmup=0)
    assert r["views"] == 4 and r["images"] == 4
    for k in ("inference_img_s", "forward_views_img_s", "pseudo_label_img_s"):
        assert r[k] > 0
    assert r["overhead"] > -1.0
