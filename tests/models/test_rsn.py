"""RSN: parameter counts term by term (no published figure), compute against the authors' RSN-18 figure
(2.5 GFLOPs), the residual steps block's dense intra-level connections, the PRM (an option), and the loss
it carries."""

from __future__ import annotations

import pytest
import torch

from animalpose.flops import count_parameters
from animalpose.losses import CoarseToFineLoss
from animalpose.models.factory import build_model, model_info
from animalpose.models.rsn import RSN, PoseRefineMachine, ResidualStepsBlock, rsn, rsn_quick

K = 17
STEM = 3 * 64 * 49 + 2 * 64


def bn(c: int) -> int:
    return 2 * c


def rsb(c_in: int, c_out: int, shortcut: bool) -> int:
    b = 26 * c_in // 64
    body = c_in * 4 * b + bn(4 * b) + 10 * (9 * b * b + bn(b)) + 4 * b * c_out + bn(c_out)
    return body + (c_in * c_out + bn(c_out) if shortcut else 0)


def down_path(blocks: tuple[int, ...]) -> int:
    total, c_in = 0, 64
    for level, n in enumerate(blocks):
        c = 64 * 2**level
        total += rsb(c_in, c, shortcut=c_in != c or level > 0) + (n - 1) * rsb(c, c, False)
        c_in = c
    return total


def up_path(channels: tuple[int, ...], u: int) -> int:
    return sum(c * u + bn(u) for c in channels) + (len(channels) - 1) * (u * u + bn(u))


def predictions(u: int, k: int) -> int:
    return 4 * (u * u + bn(u) + 9 * u * k + bn(k))


def prm(k: int) -> int:
    conv = 9 * k * k + bn(k)
    channel = 2 * (k * k + k + bn(k))  # Linear with bias + BN1d, twice
    spatial = (k * k + bn(k)) + (81 * k + bn(k)) + (k + bn(1))  # 1×1, depthwise 9×9, 1×1 to one map
    return conv + channel + spatial


def test_rsn_parameter_counts_by_hand(meta):
    c = (64, 128, 256, 512)
    with meta:
        r18, r50, r18_prm = rsn(K, 18), rsn(K, 50), rsn(K, 18, prm=True)
    assert count_parameters(r18.stages[0].down) == down_path((2, 2, 2, 2))
    assert count_parameters(r18_prm.predict[-1].refine) == prm(K) == 5_068
    head = up_path(c, 256) + predictions(256, K)
    assert count_parameters(r18) == STEM + down_path((2, 2, 2, 2)) + head == 9_144_936
    assert count_parameters(r50) == STEM + down_path((3, 4, 6, 3)) + head == 19_328_584
    assert count_parameters(r18_prm) == count_parameters(r18) + prm(K)
    with meta:
        quick = rsn_quick(K)
    assert count_parameters(quick) == STEM + down_path((2, 2, 2, 2)) + up_path(c, 64) + predictions(64, K) == 8_408_808


def test_rsn18_compute_against_the_authors_readme():
    """caiyuanhao1998/RSN README, COCO val 256×192: RSN-18 2.5 GFLOPs, RSN-50 6.4; ours 2.25 / 4.07 G
    multiply-adds (rsn.py's docstring says why RSN-50 is off)."""
    r18, r50 = model_info("rsn18"), model_info("rsn50")
    assert r18["gflops"] == pytest.approx(2.245, abs=0.001) and abs(r18["gflops"] / 2.5 - 1) < 0.12
    assert r50["gflops"] == pytest.approx(4.068, abs=0.001)
    assert model_info("rsn_quick")["input_size"] == [128, 96]


def test_residual_steps_block_connections():
    """With every 3×3 conv an identity (centre tap 1, BN identity: eps 0, eval) and inputs ≥ 0, branch i's
    j-th output is y_ij = y_i(j−1) [or split s_i at j = 0] + y_(i−1)j for j < i, and the block returns
    [y_00, y_11, y_22] plus the identity shortcut."""
    block = ResidualStepsBlock(8, 8, num_steps=3).eval()
    b = block.branch
    assert b == 3 and [len(s) for s in block.steps] == [1, 2, 3]
    with torch.no_grad():
        for convs in block.steps:
            for seq in convs:
                seq[0].weight.zero_()
                seq[0].weight[:, :, 1, 1] = torch.eye(b)
                seq[1].eps = 0.0
        block.conv_in = torch.nn.Identity()
        block.conv_out = torch.nn.Identity()  # 3 branches × 3 channels = 9 = the input width
        s = [torch.rand(1, b, 4, 4) for _ in range(3)]
        x = torch.cat(s, dim=1)
        y00 = s[0]
        y10 = s[1] + y00
        y11 = y10
        y20 = s[2] + y10
        y21 = y20 + y11
        y22 = y21
        out = block(x)
    torch.testing.assert_close(out, torch.cat([y00, y11, y22], dim=1) + x)
    assert not torch.allclose(y22, s[2])  # the dense connections change the deepest branch


def test_prm_is_identity_plus_attention():
    """F·(1 + α·β): with the spatial path's output forced to 0 the PRM returns F = ReLU(BN(conv(x)))."""
    m = PoseRefineMachine(4).eval()
    x = torch.randn(2, 4, 8, 6)
    with torch.no_grad():
        f = m.conv(x)
        m.spatial[-2][1].bias.fill_(-1e4)  # sigmoid(ReLU(−1e4)) = 0.5: β = 0.5 everywhere
        alpha = m.channel(f.mean(dim=(2, 3)))[:, :, None, None]
        torch.testing.assert_close(m(x), f * (1 + 0.5 * alpha))
        assert torch.all(alpha >= 0.5)  # sigmoid after ReLU, as the reference code


def test_prm_trains_on_a_batch_of_one():
    """BN1d cannot take batch statistics of one sample; the channel path falls back to its running ones."""
    m = PoseRefineMachine(3).train()
    out = m(torch.randn(1, 3, 8, 6))
    out.sum().backward()
    assert out.shape == (1, 3, 8, 6) and m.channel[0].weight.grad is not None
    assert m(torch.randn(2, 3, 8, 6)).shape == (2, 3, 8, 6)


def test_forward_and_prm_only_on_the_final_output():
    net = rsn_quick(5, prm=True).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64, 96))
    assert [tuple(o.shape) for o in out] == [(2, 5, 16, 24)] * 4
    refined = [not isinstance(p.refine, torch.nn.Identity) for p in net.predict]
    assert refined == [False, False, False, True]
    assert all(isinstance(p.refine, torch.nn.Identity) for p in RSN(5, unit_channels=32).predict)  # default off
    with torch.device("meta"):
        assert not isinstance(build_model("rsn18", prm=True).net.predict[-1].refine, torch.nn.Identity)


def test_model_carries_the_coarse_to_fine_loss():
    with torch.device("meta"):
        model = build_model("rsn18")
    loss = model.criterion
    assert isinstance(loss, CoarseToFineLoss)
    assert [round(s, 3) for s in loss.sigmas[:-1]] == [2.0, 1.7, 1.4] and loss.sigmas[-1] is None
    assert loss.weights == (0.25, 0.25, 0.25, 1.0) and loss.ohkm == (False, False, False, True)


def test_bad_arguments_rejected():
    with pytest.raises(ValueError, match="depth"):
        rsn(K, depth=34)
    with pytest.raises(ValueError, match="4 downsampling"):
        RSN(K, blocks=(2, 2))
    with pytest.raises(ValueError, match="2 steps"):
        ResidualStepsBlock(8, 8, num_steps=1)


def test_coco_config_builds_rsn18():
    from animalpose.config import load_config
    from animalpose.paths import REPO_ROOT

    cfg = load_config(REPO_ROOT / "configs" / "experiments" / "rsn_coco.yaml")
    assert cfg.model.name == "rsn18" and tuple(cfg.data.input_size) == (192, 256)
    assert cfg.train.lr == pytest.approx(2e-2 * 32 / 256) and cfg.train.milestones == [170, 190, 200]
    from animalpose.engine.build import make_model
    from animalpose.keypoints import load_schema

    with torch.device("meta"):
        model = make_model(cfg, load_schema("coco"))
        out = model(torch.zeros(1, 3, 256, 192))
    assert model.name == "rsn18" and [tuple(o.shape) for o in out] == [(1, 17, 64, 48)] * 4


@pytest.mark.parametrize(("name", "model"), [("rsn_mpii", "rsn50"), ("mspn_mpii", "mspn_2stg")])
def test_mpii_configs_follow_the_released_settings(name, model):
    """exps/RSN50.mpii and exps/mspn.2xstg.mpii of the authors' release: 256x256, 16 joints, Adam 5e-4, decay
    1e-5, 2,400 warm-up iterations from 0.1 then a linear decay to 0 over 28,800 iterations of 32 crops."""
    from animalpose.config import load_config
    from animalpose.engine.build import augment_overrides, make_model
    from animalpose.engine.trainer import lr_factor
    from animalpose.keypoints import load_schema
    from animalpose.paths import REPO_ROOT

    cfg = load_config(REPO_ROOT / "configs" / "experiments" / f"{name}.yaml")
    assert cfg.model.name == model and tuple(cfg.data.input_size) == (256, 256) and cfg.model.num_joints == 16
    t = cfg.train
    assert (t.optimizer, t.lr, t.weight_decay, t.batch_size) == ("adam", 5e-4, 1e-5, 32)
    assert t.epochs * 22246 // t.batch_size == pytest.approx(28800, rel=0.02)  # MPII's training persons
    spe = 22246 // 32
    assert lr_factor(2400, cfg, spe) == pytest.approx(1.0, abs=1e-3)
    assert lr_factor(t.epochs * spe, cfg, spe) == pytest.approx(0.0, abs=1e-9)
    assert augment_overrides(cfg)["rotation_factor"] == 30.0 and augment_overrides(cfg)["rotation_prob"] == 0.5
    with torch.device("meta"):
        outs = make_model(cfg, load_schema("mpii"))(torch.zeros(1, 3, 256, 256))
    assert tuple(outs[-1].shape) == (1, 16, 64, 64)
