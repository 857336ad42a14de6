"""The WS-CDA loop: per-epoch metrics, checkpoints loadable weights-only, exact resume."""

import pytest
import torch
from wscda_helpers import build_tiny_wscda

from animalpose.adapt.wscda.loop import WSCDAFitConfig, fit_wscda
from animalpose.adapt.wscda.losses import WSCDALossWeights
from animalpose.adapt.wscda.mixing import MixedBatchSampler
from animalpose.adapt.wscda.training import WSCDABatch
from animalpose.engine.checkpoint import load_checkpoint
from animalpose.errors import ConfigError
from animalpose.keypoints import schema_from_names

SCHEMA = schema_from_names("toy3", ["a", "b", "c"])
SIZES = (12, 3, 9)


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    n = sum(SIZES)
    return torch.randn(n, 3, 16, 16, generator=g), torch.rand(n, 3, 4, 4, generator=g)


def _batches(steps, seed=0):
    images, heatmaps = _data()
    sampler = MixedBatchSampler(SIZES, 6, (2, 1, 1), steps, seed=seed)

    def batches(epoch):
        sampler.set_epoch(epoch)
        for idx in sampler:
            y, z = sampler.domain_labels(idx)
            weights = torch.ones(len(idx), 3)
            weights[torch.from_numpy(z == 1)] = 0.0
            yield WSCDABatch(images[idx], heatmaps[idx], weights, torch.from_numpy(y), torch.from_numpy(z))

    return batches


@pytest.mark.parametrize("scheme", ["alternating", "grl"])
def test_resume_continues_exactly(tmp_path, scheme):
    cfg = WSCDAFitConfig(scheme=scheme, epochs=2, steps_per_epoch=3, lr=1e-2, loss=WSCDALossWeights(beta=50.0))
    torch.manual_seed(0)
    straight = build_tiny_wscda(3, width=8, discriminator_hidden=8)
    history = fit_wscda(straight, _batches(3), cfg, schema=SCHEMA, checkpoint=tmp_path / "a.pt", progress=False)
    assert len(history) == 2
    assert {"loss", "l_ddl", "l_ddl_disc", "l_pose", "disc_acc/human", "disc_acc/target"} <= set(history[0])
    assert ("grl_lambda" in history[0]) == (scheme == "grl")

    torch.manual_seed(0)
    first = build_tiny_wscda(3, width=8, discriminator_hidden=8)
    one = WSCDAFitConfig(scheme=scheme, epochs=1, steps_per_epoch=3, lr=1e-2, loss=WSCDALossWeights(beta=50.0))
    fit_wscda(first, _batches(3), one, schema=SCHEMA, checkpoint=tmp_path / "b.pt", progress=False)
    # a one-epoch run has a different DANN horizon, so only the alternating scheme continues bit-exactly
    torch.manual_seed(123)
    resumed = build_tiny_wscda(3, width=8, discriminator_hidden=8)
    seen = []
    rest = fit_wscda(resumed, _batches(3), cfg, schema=SCHEMA, checkpoint=tmp_path / "b.pt", resume=True,
                     on_epoch=lambda e, m: seen.append(e), progress=False)
    assert seen == [1] and len(rest) == 1
    ckpt = load_checkpoint(tmp_path / "b.pt", schema=SCHEMA)
    assert ckpt["epoch"] == 2 and ckpt["extra"]["scheme"] == scheme
    if scheme == "alternating":
        for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
            assert torch.equal(a, b), name
        assert rest[0] == pytest.approx(history[1])


def test_fit_config_validates():
    with pytest.raises(ConfigError, match="scheme"):
        WSCDAFitConfig(scheme="wgan")
    with pytest.raises(ConfigError, match="epochs"):
        WSCDAFitConfig(epochs=0)
