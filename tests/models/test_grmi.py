"""G-RMI: the codec round-trips sub-pixel keypoints, Hough voting on a hand-computed case, the flip test of
offsets, the loss (λ_h = 4, λ_o = 1, Huber inside the disk) on hand-computed values, parameter counts term by
term, the head on another backbone, and the config pairing of network and codec."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from animalpose.codecs import build_codec
from animalpose.codecs.grmi import hough_maps
from animalpose.data.flip import flip_heatmaps, flip_keypoints
from animalpose.flops import count_parameters
from animalpose.losses import GRMILoss
from animalpose.models.factory import build_model, model_info
from animalpose.models.grmi import GRMINet, grmi_quick, grmi_resnet

K = 17


def as_outputs(targets: np.ndarray) -> torch.Tensor:
    """Encoded targets (3K, h, w) as a perfect network's outputs: disk logits ±20, the same offsets."""
    t = torch.from_numpy(targets)[None].clone()
    k = t.shape[1] // 3
    t[:, :k] = 40 * t[:, :k] - 20
    return t


def test_codec_round_trips_sub_pixel_keypoints_within_005_px():
    codec = build_codec("grmi", (192, 256), (48, 64), radius=4.5)
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform([-0.4, -0.4], [191.4, 255.4], size=(K, 2)), np.full((K, 1), 2.0)], 1)
    targets, weights = codec.encode(kp)
    assert targets.shape == (3 * K, 64, 48) and (weights == 1).all()
    coords, scores = codec.decode(as_outputs(targets))
    assert np.abs(coords[0] - kp[:, :2]).max() < 0.05
    # every disk pixel votes at the joint: f sums to about (disk pixels)/πR² ≈ 1 over the four pixels around it
    assert (scores > 0.2).all()


def test_encoding_draws_disks_of_radius_r_with_offsets_to_the_joint():
    codec = build_codec("grmi", (9, 9), (9, 9), radius=2.0)  # identity grid: heatmap px = input px
    targets, _ = codec.encode(np.array([[4.0, 3.5, 2], [0.0, 0.0, 0]]))
    disk, dx, dy = targets[0], targets[2], targets[4]
    ys, xs = np.mgrid[:9, :9]
    inside = (xs - 4.0) ** 2 + (ys - 3.5) ** 2 <= 4.0
    assert np.array_equal(disk == 1, inside) and inside.sum() == 12
    assert np.allclose(dx[inside], 4.0 - xs[inside]) and np.allclose(dy[inside], 3.5 - ys[inside])
    assert (dx[~inside] == 0).all() and (targets[[1, 3, 5]] == 0).all()  # unlabelled joint: nothing


def test_hough_map_on_a_hand_computed_case():
    """Two pixels of a 1×4 map vote for x = 1.25 with probabilities 1 and 0.5: the bilinear kernel gives pixel 1
    0.75·1.5 and pixel 2 0.25·1.5, divided by πR²."""
    maps = torch.zeros(1, 3, 1, 4)
    maps[0, 0] = torch.tensor([0.0, 0.0, 1.0, 0.5])  # probabilities (logits=False)
    maps[0, 1] = torch.tensor([0.0, 0.0, -0.75, -1.75])  # x-offsets: both land at 1.25
    f = hough_maps(maps, radius=1.0, logits=False)[0, 0, 0]
    assert f.tolist() == pytest.approx([0.0, 0.75 * 1.5 / math.pi, 0.25 * 1.5 / math.pi, 0.0])


def test_flip_of_outputs_mirrors_offsets_so_the_mirrored_image_decodes_to_the_mirrored_joints():
    codec = build_codec("grmi", (96, 128), (24, 32), radius=3.0)
    perm = np.array([1, 0, 2])
    kp = np.array([[20.3, 40.7, 2], [70.1, 44.2, 2], [50.6, 90.9, 2]])
    mirrored = flip_keypoints(kp, 96, perm)  # what the mirrored crop's labels are
    out_of_mirror = as_outputs(codec.encode(mirrored)[0])  # a perfect net's outputs on the mirrored crop
    coords, _ = codec.decode(flip_heatmaps(out_of_mirror, perm))  # flipped back, as the flip test does
    assert np.abs(coords[0] - kp[:, :2]).max() < 0.05


def test_loss_weights_heatmaps_by_4_and_offsets_by_1_with_huber_inside_the_disk():
    target = torch.zeros(1, 3, 2, 2)
    target[0, 0, 0, 0] = 1.0  # one disk pixel, offset (3, 0) to the joint
    target[0, 1, 0, 0] = 3.0
    out = torch.zeros(1, 3, 2, 2)  # logits 0: BCE ln 2 everywhere; offset error 3 there
    out[0, 1, 1, 1] = 9.0  # outside the disk: not counted
    loss = GRMILoss()([out], target, torch.ones(1, 1))
    assert float(loss) == pytest.approx(4 * math.log(2) + 1 * (3 - 0.5))
    assert float(GRMILoss()([out], target, torch.zeros(1, 1))) == 0.0  # an unlabelled joint gives nothing


def test_parameter_counts_by_hand(meta):
    with meta:
        r50, r101 = grmi_resnet(K, 50), grmi_resnet(K, 101)
    head = 2048 * 3 * K + 3 * K
    assert count_parameters(r50) == 25_557_032 - 2_049_000 + head == 23_612_531  # torchvision less its classifier
    assert count_parameters(r101) == 44_549_160 - 2_049_000 + head == 42_604_659
    info = model_info("grmi_resnet101")
    assert info["outputs"] == [[1, 3 * K, 64, 48]] and info["params"] == 42_604_659
    assert info["gflops"] == pytest.approx(33.31, abs=0.01)


def test_head_works_on_any_backbone_and_quick_is_stride_8():
    features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=4, padding=1), torch.nn.ReLU())
    net = GRMINet(features, 8, num_joints=2)
    assert net(torch.randn(1, 3, 32, 24))[0].shape == (1, 6, 8, 6)
    quick = grmi_quick(K).eval()
    assert quick.features(torch.zeros(1, 3, 96, 64)).shape == (1, 256, 12, 8)
    assert quick(torch.zeros(1, 3, 96, 64))[0].shape == (1, 3 * K, 24, 16)


def test_model_carries_the_grmi_loss_and_configs_pair_network_and_codec():
    from animalpose.config import parse_config
    from animalpose.errors import ConfigError

    assert isinstance(build_model("grmi_quick").criterion, GRMILoss)
    ok = parse_config({"model": {"name": "grmi_quick"}, "codec": {"kind": "grmi", "radius": 2.0}})
    assert ok.codec.radius == 2.0
    with pytest.raises(ConfigError, match=r"codec\.kind"):
        parse_config({"model": {"name": "grmi_quick"}, "codec": {"kind": "dark"}})
    with pytest.raises(ConfigError, match=r"codec\.kind"):
        parse_config({"model": {"name": "simplebaseline18"}, "codec": {"kind": "grmi"}})


def test_coco_config_builds_grmi_resnet101_with_its_codec():
    from animalpose.config import load_config
    from animalpose.engine.build import make_codec, make_model
    from animalpose.keypoints import load_schema
    from animalpose.paths import REPO_ROOT

    cfg = load_config(REPO_ROOT / "configs" / "experiments" / "grmi_coco.yaml")
    codec = make_codec(cfg)
    assert cfg.model.name == "grmi_resnet101" and codec.radius == 4.5 and codec.udp
    with torch.device("meta"):
        (out,) = make_model(cfg, load_schema("coco"))(torch.zeros(1, 3, 256, 192))
    assert tuple(out.shape) == (1, 3 * K, 64, 48)


def test_grmi_networks_refuse_a_coordinate_head():
    from animalpose.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model\.head"):
        build_model("grmi_quick", head="integral")
