"""Throughput of CC-SSL pseudo-labelling against plain inference of the same model, in one run.

The consistency machinery (view warps, inverse warps, decoding of every view, aggregation, scoring)
should cost little beside the forward passes it needs; the issue's goal is at most 25% over the
forward passes of all views. :func:`pseudo_label_throughput` times, on the same batches:

- ``inference``: one forward pass per image (plain prediction);
- ``forward_views``: the forward passes of all V views alone (V = 1 + geometric + flip + photometric);
- ``pseudo_label``: :func:`~animalpose.adapt.pseudolabel.consistency_predict` end to end.

``overhead`` = pseudo_label time / forward_views time − 1.

This is a probe of :func:`consistency_predict` on one preloaded batch: no image loading, no
assembly over a target set, no temporal refinement along clips and no selection. The benchmark of
the whole step as :func:`~animalpose.adapt.ccssl.run_ccssl` runs it (generate_pseudo_labels + select,
end to end and on preloaded crops, interleaved repeats, wall and CPU time) is
:mod:`flows.benchmarks.pseudolabel` (``animalpose bench pseudolabel``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from animalpose.adapt.pseudolabel import ConsistencyConfig, consistency_predict


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def pseudo_label_throughput(model_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                            cfg: ConsistencyConfig, codec, *, repeats: int = 3, warmup: int = 1,
                            mean=None, std=None) -> dict:
    """Images per second of plain inference, of the V-view forward passes and of pseudo-labelling.

    Args:
        model_fn: (B, 3, H, W) -> (B, K, h, w) final heatmaps (model in eval mode).
        images: (N, 3, H, W) one batch on the model's device.
        cfg: the consistency views.
        repeats: timed repetitions (the median is reported); ``warmup`` untimed ones first.

    Returns:
        {"images", "views", "inference_img_s", "forward_views_img_s", "pseudo_label_img_s", "overhead"}.
    """
    device = images.device
    n = images.shape[0]
    views = 1 + cfg.num_geometric + int(cfg.flip) + cfg.photometric_views
    stacked = images.repeat(views, 1, 1, 1)

    def timed(fn) -> float:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    def forward_views() -> None:
        for chunk in torch.split(stacked, cfg.max_batch):
            model_fn(chunk)

    t_inf = timed(lambda: model_fn(images))
    t_views = timed(forward_views)
    t_pl = timed(lambda: consistency_predict(model_fn, images, cfg, codec, np.random.default_rng(0),
                                             mean=mean, std=std))
    return {"images": n, "views": views, "inference_img_s": n / t_inf, "forward_views_img_s": n / t_views,
            "pseudo_label_img_s": n / t_pl, "overhead": t_pl / t_views - 1.0}
