"""running_statistics: BatchNorm on its running statistics inside the block, untouched statistics, live gradients."""

from __future__ import annotations

import torch
from torch import nn

from animalpose.engine.batchnorm import running_statistics


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5), nn.Conv2d(4, 2, 1),
                        nn.BatchNorm2d(2))
    net[1].running_mean.fill_(0.3)
    net[1].running_var.fill_(2.0)
    return net


def test_inside_the_block_batchnorm_reads_and_keeps_its_running_statistics():
    net = _net().train()
    x = torch.randn(5, 3, 8, 8) * 3 + 1
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with running_statistics(net):
        assert not net[1].training and not net[5].training and net[3].training  # dropout keeps its mode
        net[3].eval()  # only so that the output can be compared with a plain eval pass
        y = net(x)
        net[3].train()
    assert net[1].training and net[5].training  # restored
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # running statistics and the batch count untouched
    # by hand: the first BN normalises with (0.3, 2.0), the weights at their init (1, 0)
    conv = net[0](x)
    first = (conv - 0.3) / torch.sqrt(torch.tensor(2.0) + net[1].eps)
    assert torch.allclose(net[1].eval()(conv), first, atol=1e-6)
    net.eval()
    assert torch.allclose(y, net(x), atol=1e-6)
    # the batch mode differs on this batch (its own statistics), so the block changed something
    net.train()
    net[3].eval()
    assert not torch.allclose(net(x), y, atol=1e-3)


def test_gradients_reach_every_weight_and_a_layer_left_in_eval_stays_there():
    net = _net().train()
    net[5].eval()
    with running_statistics(net):
        net(torch.randn(4, 3, 8, 8)).square().mean().backward()
    assert not net[5].training and net[1].training
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_the_mode_is_restored_when_the_block_raises():
    net = _net().train()
    try:
        with running_statistics(net):
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    assert net[1].training and net[5].training
