"""Left/right pairs in CC-SSL (animalpose.adapt.pairs): resolving collapsed pairs on hand-made heatmaps, the
pair-symmetric target loss against hand-computed values, their config switches and a run with both on."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from animalpose.adapt.ccssl import CCSSLTrainer, run_ccssl
from animalpose.adapt.pairs import pair_swaps, resolve_pairs, swap_pairs, symmetric_pair_loss
from animalpose.adapt.pseudolabel import ConsistencyConfig, consistency_predict
from animalpose.codecs.base import render_gaussians
from animalpose.codecs.gaussian import MSRAHeatmapCodec
from animalpose.engine.build import build_data, make_model
from animalpose.engine.trainer import Trainer
from animalpose.errors import ConfigError
from animalpose.losses import HeatmapMSELoss

# 64-px crops, 16x16 heatmaps (stride 4), σ 1: the suppressed disc has a radius of 3 heatmap pixels
CODEC = MSRAHeatmapCodec((64, 64), (16, 16), sigma=1.0)
DISTANCE = 0.02 * 64  # the collapse test: closer than 2 % of the crop width


def _bump(x: int, y: int, peak: float) -> np.ndarray:
    """A σ-1 Gaussian of the given peak at heatmap pixel (x, y), zero beyond its ±3 px window (the codec's
    targets): its neighbours are equal, so the quarter-pixel shift leaves the argmax where it is."""
    return peak * render_gaussians(np.array([[x, y]], float), (16, 16), 1.0)[0]


def _maps() -> np.ndarray:
    """(1, 6, 16, 16): three pairs (0, 1), (2, 3), (4, 5).

    (0, 1): both peak at (4, 4) (collapsed); 1, the weaker, has a second bump of 0.6 at (11, 9).
    (2, 3): apart, at (4, 4) and (11, 9).
    (4, 5): 4 is flat (0.3 everywhere), 5 has one bump at (0, 0), where the flat map also decodes.
    """
    hm = np.zeros((1, 6, 16, 16), np.float32)
    hm[0, 0] = _bump(4, 4, 1.0)
    hm[0, 1] = _bump(4, 4, 0.8) + _bump(11, 9, 0.6)
    hm[0, 2] = _bump(4, 4, 0.9)
    hm[0, 3] = _bump(11, 9, 0.7)
    hm[0, 4] = 0.3
    hm[0, 5] = _bump(0, 0, 1.0)
    return hm


PAIRS = [(0, 1), (2, 3), (4, 5)]


def test_a_collapsed_pair_is_resolved_onto_the_weaker_partners_second_bump():
    hm = _maps()
    coords, peak = CODEC.decode(hm)
    # the independent decoding (stride 4): pair (0, 1) on one point, the flat map at its first pixel
    assert coords[0].tolist() == [[16, 16], [16, 16], [16, 16], [44, 36], [0, 0], [0, 0]]
    res = resolve_pairs(hm, coords, peak, peak, PAIRS, DISTANCE, 3.0, CODEC)
    # joint 1 moves to its own second bump (11, 9) -> (44, 36) input px, confidence the value there
    assert res.coords[0, 1].tolist() == [44.0, 36.0] and res.peak[0, 1] == pytest.approx(0.6)
    assert res.resolved[0].tolist() == [False, True, False, False, False, False]
    # its stronger partner, the pair that was apart and the flat pair are as decoded
    keep = [0, 2, 3, 4, 5]
    np.testing.assert_array_equal(res.coords[0, keep], coords[0, keep])
    np.testing.assert_array_equal(res.peak[0, keep], peak[0, keep])
    # the flat channel (the weaker of its pair) has nothing outside the disc above its level: left as it was
    assert res.coords[0, 4].tolist() == [0.0, 0.0] and res.peak[0, 4] == pytest.approx(0.3)


def test_the_weaker_partner_is_chosen_by_the_confidence_given_and_a_tie_moves_the_right_one():
    hm = _maps()
    hm[0, 0] += _bump(2, 13, 0.5)  # joint 0 has a second bump too, at (2, 13)
    coords, peak = CODEC.decode(hm)
    conf = peak.copy()
    conf[0, 0] = 0.1  # ranked below its partner by the caller's confidence (e.g. peak x agreement)
    res = resolve_pairs(hm, coords, peak, conf, PAIRS, DISTANCE, 3.0, CODEC)
    assert res.coords[0, 0].tolist() == [8.0, 52.0] and res.peak[0, 0] == pytest.approx(0.5)
    assert res.resolved[0, :2].tolist() == [True, False]
    tie = peak.copy()
    tie[0, 0] = tie[0, 1]
    res = resolve_pairs(hm, coords, peak, tie, PAIRS, DISTANCE, 3.0, CODEC)
    assert res.resolved[0, :2].tolist() == [False, True]


def test_the_disc_radius_decides_what_counts_as_another_bump():
    hm = np.zeros((1, 2, 16, 16), np.float32)
    hm[0, 0] = _bump(8, 8, 1.0)
    hm[0, 1] = _bump(8, 8, 0.9) + _bump(12, 8, 0.5)  # a second bump 4 px away
    coords, peak = CODEC.decode(hm)
    assert coords[0].tolist() == [[32, 32], [33, 32]]  # (9, 8) has a little of the second bump: 1 px, collapsed
    # outside a 3-px disc: the bump itself, (12, 8), moved a quarter pixel towards (13, 8) (its other side,
    # (11, 8), is suppressed to the map's minimum, 0)
    found = resolve_pairs(hm, coords, peak, peak, [(0, 1)], DISTANCE, 3.0, CODEC)
    assert found.coords[0, 1].tolist() == [4 * 12.25, 32.0] and found.peak[0, 1] == pytest.approx(0.5)
    # inside a 5-px disc: the best cell left is on the bump's flank, (13, 7) at 0.5 exp(-1), and that low
    # value, not the bump's 0.5, is the confidence the selection sees
    lost = resolve_pairs(hm, coords, peak, peak, [(0, 1)], DISTANCE, 5.0, CODEC)
    assert lost.resolved[0, 1] and lost.peak[0, 1] == pytest.approx(0.5 * math.exp(-1))
    assert np.linalg.norm(lost.coords[0, 1] - 32) > 4 * 5


def test_consistency_predict_resolves_pairs_and_scores_the_new_point():
    hm = torch.from_numpy(_maps())
    images = torch.zeros(1, 3, 64, 64)

    def fixed(x):  # the same heatmaps for every view: one identity view here
        return hm.expand(len(x), -1, -1, -1)

    one_view = dict(num_geometric=0, invariance=False)
    plain = consistency_predict(fixed, images, ConsistencyConfig(**one_view), CODEC, flip_pairs=PAIRS)
    assert "resolved" not in plain.components and plain.coords[0, 1].tolist() == [16.0, 16.0]
    for mode in ("peak", "peak_agreement"):
        out = consistency_predict(fixed, images, ConsistencyConfig(**one_view, confidence=mode,
                                                                   pair_decoding="resolve"), CODEC, flip_pairs=PAIRS)
        assert out.coords[0, 1].tolist() == [44.0, 36.0]
        assert out.components["resolved"][0].tolist() == [0, 1, 0, 0, 0, 0]
        assert out.components["peak"][0, 1] == pytest.approx(0.6)
        # the one view still peaks at the old point: its spread is the move, |(28, 20)| input px
        assert out.components["spread_geo"][0, 1] == pytest.approx(math.hypot(28, 20), rel=1e-5)
        agree = math.exp(-(28**2 + 20**2) / (2 * (2.0 * 4) ** 2))
        assert out.confidence[0, 1] == pytest.approx(0.6 if mode == "peak" else 0.6 * agree, rel=1e-5)
        np.testing.assert_array_equal(out.confidence[0, [0, 2, 3]], plain.confidence[0, [0, 2, 3]])
    with pytest.raises(ConfigError, match="pair_decoding"):
        ConsistencyConfig(pair_decoding="swap")


# --- the pair-symmetric loss -----------------------------------------------------------------------------

def _tiny() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(1, 3, 2, 2) prediction, target and weights: pair (0, 1), joint 2 unpaired.

    The prediction puts joint 0 top-left, joint 1 bottom-right, joint 2 top-right; the target has the pair
    the right way round and joint 2 at zero."""
    pred = torch.zeros(1, 3, 2, 2)
    pred[0, 0, 0, 0] = pred[0, 1, 1, 1] = pred[0, 2, 0, 1] = 1.0
    target = torch.zeros(1, 3, 2, 2)
    target[0, 0, 0, 0] = target[0, 1, 1, 1] = 1.0
    return pred, target, torch.ones(1, 3)


def test_symmetric_loss_is_the_ordered_loss_when_the_labels_are_right_and_undoes_a_swap():
    loss = HeatmapMSELoss()
    pred, target, weight = _tiny()
    # heatmap MSE: mean over joints of 0.5 * mean over pixels of the squared difference; joint 2: 0.5 * 1/4
    assert float(loss([pred], target, weight)) == pytest.approx(0.125 / 3)
    assert float(symmetric_pair_loss(loss, [pred], target, weight, [(0, 1)])) == pytest.approx(0.125 / 3)
    swapped = target[:, [1, 0, 2]]
    # ordered, a swapped pair costs 0.5 * 2/4 on each of its joints
    assert float(loss([pred], swapped, weight)) == pytest.approx((0.25 + 0.25 + 0.125) / 3)
    assert float(symmetric_pair_loss(loss, [pred], swapped, weight, [(0, 1)])) == pytest.approx(0.125 / 3)
    # unpaired joints are never exchanged: pairing only (0, 2) cannot undo the swap of 0 and 1
    assert float(symmetric_pair_loss(loss, [pred], swapped, weight, [(0, 2)])) == pytest.approx(0.625 / 3)


def test_the_weights_go_with_their_targets_and_each_sample_chooses_alone():
    loss = HeatmapMSELoss()
    pred, target, _ = _tiny()
    # only the left joint kept, its pseudo-label where the network puts the right one
    one = torch.zeros(1, 3, 2, 2)
    one[0, 0, 1, 1] = 1.0
    w = torch.tensor([[1.0, 0.0, 1.0]])
    assert float(loss([pred], one, w)) == pytest.approx((0.25 + 0.125) / 3)
    # exchanged: channel 1 answers for the kept label (exactly), channel 0 carries weight 0
    assert float(symmetric_pair_loss(loss, [pred], one, w, [(0, 1)])) == pytest.approx(0.125 / 3)
    # a batch of a right sample and a swapped one: the mean of their best orders, (N, K, 1) weights too
    batch_t = torch.cat([target, target[:, [1, 0, 2]]])
    batch_p = torch.cat([pred, pred])
    weights = torch.ones(2, 3, 1)
    assert pair_swaps([batch_p], batch_t, weights, [(0, 1)]).tolist() == [[False], [True]]
    assert float(symmetric_pair_loss(loss, [batch_p], batch_t, weights, [(0, 1)])) == pytest.approx(0.125 / 3)
    # every supervised stage counts in the choice: the last prefers the given order (0 against 0.5), an
    # earlier one the exchange by more (1.0 against 2.5)
    other = pred[:, [1, 0, 2]] * 3
    assert pair_swaps([pred], target, torch.ones(1, 3), [(0, 1)]).tolist() == [[False]]
    assert pair_swaps([other, pred], target, torch.ones(1, 3), [(0, 1)]).tolist() == [[True]]


def test_the_symmetric_loss_passes_the_gradient_of_the_chosen_order():
    loss = HeatmapMSELoss()
    pred, target, weight = _tiny()
    noisy = (pred + 0.1 * torch.randn(pred.shape, generator=torch.Generator().manual_seed(0))).requires_grad_()
    swapped = target[:, [1, 0, 2]]
    symmetric_pair_loss(loss, [noisy], swapped, weight, [(0, 1)]).backward()
    ref = noisy.detach().clone().requires_grad_()
    loss([ref], target, weight).backward()  # the order it chose: the right one
    assert noisy.grad.abs().sum() > 0
    torch.testing.assert_close(noisy.grad, ref.grad)


def test_swap_pairs_exchanges_the_channels_of_the_chosen_samples_only():
    x = torch.arange(2 * 5 * 2, dtype=torch.float32).reshape(2, 5, 2)  # e.g. (N, K, 2) target points
    out = swap_pairs(x, torch.tensor([[True, False], [False, True]]), [(0, 1), (2, 4)])
    assert out[0].tolist() == x[0, [1, 0, 2, 3, 4]].tolist() and out[1].tolist() == x[1, [0, 1, 4, 3, 2]].tolist()
    seen = {}

    def spy(outputs, target, weight, coords):
        seen["coords"] = coords
        return target.sum()

    pred, target, weight = _tiny()
    symmetric_pair_loss(spy, [pred], target[:, [1, 0, 2]], weight, [(0, 1)], coords=torch.tensor([[[0., 0.], [1., 1.],
                                                                                                   [2., 2.]]]))
    assert seen["coords"].tolist() == [[[1.0, 1.0], [0.0, 0.0], [2.0, 2.0]]]  # coordinate targets follow


# --- the switches in the CC-SSL trainer and rounds --------------------------------------------------------

def _config(dots, **ccssl):
    from test_ccssl import _config as ccssl_config

    return ccssl_config(dots, **ccssl)


def test_the_trainer_takes_the_symmetric_loss_for_the_target_stream_only(dots, tmp_path):
    cfg = _config(dots, pair_loss="symmetric")
    assert cfg.ccssl.pair_loss == "symmetric" and _config(dots).ccssl.pair_loss == "ordered"
    data = build_data(cfg)
    trainer = CCSSLTrainer(cfg, make_model(cfg, data.schema), data.schema, data.train, {}, tmp_path,
                           device=torch.device("cpu"), progress=False, lambda_target=10.0, pair_loss="symmetric")
    trainer.model.eval()
    src = torch.utils.data.default_collate([data.train[i] for i in range(2)])
    tgt = torch.utils.data.default_collate([data.train[i] for i in range(2, 4)])
    perm = list(range(17))
    for i, j in data.schema.flip_pairs:
        perm[i], perm[j] = j, i
    flipped = {**tgt, "target": tgt["target"][:, perm], "target_weight": tgt["target_weight"][:, perm]}
    with torch.no_grad():
        ls = Trainer._forward_loss(trainer, src)[0]
        ordered = Trainer._forward_loss(trainer, tgt)[0]
        sym = Trainer._forward_loss(trainer, tgt, loss_fn=trainer.target_loss_fn)[0]
        sym_flipped = Trainer._forward_loss(trainer, flipped, loss_fn=trainer.target_loss_fn)[0]
        trainer._target_iter = iter([tgt])
        total = trainer._forward_loss(src)[0]
        ordered_flipped = Trainer._forward_loss(trainer, flipped)[0]
    # the labels exchanged pair by pair cost the same to the symmetric loss, not to the ordered one
    assert float(sym_flipped) == pytest.approx(float(sym), rel=1e-6)
    assert float(ordered_flipped) != pytest.approx(float(ordered), rel=1e-6)
    assert float(sym) <= min(float(ordered), float(ordered_flipped)) + 1e-9
    assert float(total) == pytest.approx(float(ls) + 10.0 * float(sym), rel=1e-5)  # the source loss: ordered
    with pytest.raises(ConfigError, match="pair_loss"):
        _config(dots, pair_loss="unordered")
    with pytest.raises(ConfigError, match="pair_decoding"):
        _config(dots, pair_decoding="swap")


def test_rounds_with_both_switches_on_resolve_collapsed_pairs(dots, tmp_path):
    """Round 0's pseudo-labels come from the same source model with and without ``resolve``, so every pair
    it re-decodes is one collapsed pair less (the disc, 3 px = 12 input px, is wider than the 6.4-px collapse
    test); no temporal step, which would move points after the decoding. The collapse test is 0.1 × the crop,
    not the default 0.02 (1.28 px): whether the one-epoch source model puts a pair within 1.28 px depends on the
    CPU's float kernels (on one machine it did, on another none), within 6.4 px it does on both."""
    base = _config(dots, temporal=False, collapse_distance=0.1)
    plain = run_ccssl(base.model_copy(update={"train": base.train.model_copy(update={"epochs": 1})}),
                      tmp_path / "plain", progress=False)
    both = run_ccssl(_config(dots, temporal=False, collapse_distance=0.1, pair_decoding="resolve",
                             pair_loss="symmetric"), tmp_path / "both", progress=False)
    assert len(both.rounds) == 2 and plain.source_only == both.source_only
    before = json.loads((tmp_path / "plain" / "round_0" / "summary.json").read_text())
    after = json.loads((tmp_path / "both" / "round_0" / "summary.json").read_text())
    assert before["collapsed_all"] > 0  # the premise: there are collapsed pairs to resolve
    assert "resolved" not in before and after["resolved_all"] > 0
    assert after["collapsed_all"] == pytest.approx(before["collapsed_all"] - 2 * after["resolved_all"])
    # a re-decoded peak is the best of what its map has left, never above the map's own peak
    assert after["mean_confidence"] < before["mean_confidence"]
    assert {"collapsed", "swapped@0.05", "resolved"} <= set(
        json.loads((tmp_path / "both" / "round_1" / "summary.json").read_text()))
    doc = json.loads((tmp_path / "both" / "round_0" / "pseudo_labels.json").read_text())
    moved = [(a["confidence"][k], a["components"]["peak"][k]) for a in doc["annotations"]
             for k, r in enumerate(a["components"]["resolved"]) if r]
    paired = 2 * 8 * len(doc["annotations"])  # coco: 8 left/right pairs
    assert len(moved) == round(after["resolved_all"] * paired)
    assert all(conf == peak for conf, peak in moved)  # ranked by the value at the new point ("peak" mode)
