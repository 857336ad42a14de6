"""Lightning Pose's temporal-difference loss (animalpose.adapt.temporal_loss): the formula by hand, the clip
windows, the readout in original pixels, and the term inside CC-SSL training on a generated video target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from animalpose.adapt.ccssl import CCSSLRun
from animalpose.adapt.temporal_loss import clip_windows, epsilon_tensor, original_coordinates, temporal_difference
from animalpose.data.records import PoseRecord
from animalpose.engine.trainer import Trainer
from animalpose.errors import ConfigError

SIZE = 64


def test_temporal_difference_by_hand():
    # 3 frames, 2 keypoints. Jumps: kp0 5 then 0 px, kp1 1 then 5 px.
    coords = torch.tensor([[[0.0, 0.0], [0.0, 0.0]],
                           [[3.0, 4.0], [1.0, 0.0]],
                           [[3.0, 4.0], [1.0, 5.0]]])
    assert float(temporal_difference(coords, 0.0)) == pytest.approx((5 + 1 + 0 + 5) / 4)
    # per-keypoint tolerances 2 and 0.5: max(0, d - eps) = [[3, 0.5], [0, 4.5]] -> mean 2
    assert float(temporal_difference(coords, torch.tensor([2.0, 0.5]))) == pytest.approx(2.0)
    # kp1 unsure in frame 2 (confidence 0.1 < 0.3): the pair (1, 2) of kp1 counts 0 -> (3 + 0.5 + 0 + 0) / 4
    conf = torch.tensor([[0.9, 0.9], [0.9, 0.9], [0.9, 0.1]])
    assert float(temporal_difference(coords, torch.tensor([2.0, 0.5]), conf, 0.3)) == pytest.approx(0.875)
    # jumps within the tolerance give no gradient; larger ones pull the frames together
    c = coords.clone().requires_grad_(True)
    temporal_difference(c, torch.tensor([6.0, 0.5])).backward()
    assert torch.all(c.grad[:, 0] == 0) and c.grad[2, 1, 1] > 0 and c.grad[1, 1, 1] < 0
    assert float(temporal_difference(coords[:1], 0.0)) == 0.0
    # threshold 0 keeps every pair, also where a raw heatmap maximum is negative
    assert float(temporal_difference(coords, 0.0, -conf, 0.0)) == pytest.approx(2.75)
    assert epsilon_tensor(2.0, 3).tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(ValueError, match="2 tolerances for 3 keypoints"):
        epsilon_tensor([1.0, 2.0], 3)


def test_clip_windows_follow_each_video_and_its_step():
    def rec(video, frame):
        return PoseRecord("v.mp4", np.zeros((1, 3), np.float32), "x", video_id=video, frame_index=frame)

    # video a: frames 0, 5, 10, 15, then a gap (25); video b: 0, 5, 10; one photo
    records = [rec("b", 5), rec("a", 10), rec("a", 0), rec("a", 5), rec("a", 15), rec("a", 25), rec("b", 0),
               rec("b", 10), PoseRecord("p.png", np.zeros((1, 3), np.float32), "x")]
    frames = [[(records[i].video_id, records[i].frame_index) for i in w] for w in clip_windows(records, 3, 5)]
    assert frames == [[("a", 0), ("a", 5), ("a", 10)], [("a", 5), ("a", 10), ("a", 15)],
                      [("b", 0), ("b", 5), ("b", 10)]]
    assert clip_windows(records, 3, 1) == []


def test_clip_windows_follow_each_track_where_animals_share_frames():
    def rec(frame, track):
        return PoseRecord("v.mp4", np.zeros((1, 3), np.float32), "x", video_id="v", frame_index=frame,
                          instance_id=track)

    # two flies in every frame 0, 2, 4 (tracks 0 and 1): one clip per fly, never mixing them
    records = [rec(f, t) for f in (0, 2, 4) for t in (1, 0)]
    tracks = [[(records[i].frame_index, records[i].instance_id) for i in w] for w in clip_windows(records, 3, 2)]
    assert tracks == [[(0, 0), (2, 0), (4, 0)], [(0, 1), (2, 1), (4, 1)]]
    # one animal whose reader numbers instances per annotation (ids differ every frame): ids are ignored
    single = [rec(f, 100 + f) for f in (0, 2, 4)]
    assert clip_windows(single, 3, 2) == [[0, 1, 2]]


def test_the_readout_is_in_original_pixels():
    # one-hot heatmaps (16 x 16) with peaks at heatmap pixels (3, 5) and (10, 2); a 64-px crop (stride 4) of
    # an original image scaled by 0.5 and shifted by (-8, +4): crop = 0.5 * original + (-8, 4)
    hm = torch.zeros(1, 2, 16, 16)
    hm[0, 0, 5, 3] = hm[0, 1, 2, 10] = 1.0
    m = torch.tensor([[[0.5, 0.0, -8.0], [0.0, 0.5, 4.0]]], dtype=torch.float64)
    coords, conf = original_coordinates(hm, m, (64, 64), beta=160.0)
    # crop pixels (12, 20) and (40, 8) -> original ((12 + 8) / 0.5, (20 - 4) / 0.5) = (40, 32); (96, 8)
    assert coords[0].tolist() == [pytest.approx([40.0, 32.0], abs=1e-3), pytest.approx([96.0, 8.0], abs=1e-3)]
    assert conf.tolist() == [[1.0, 1.0]]


def _moving_dots(write, out, n: int = 12) -> str:
    """One clip of ``n`` frames of 17 coloured dots moving 1 px a frame."""
    rng = np.random.default_rng(0)
    start = rng.uniform(10, SIZE - 20, size=(17, 2))
    return write(out, rng, [start + f for f in range(n)])


def test_the_term_joins_the_training_loss(tmp_path, dot_clip, ccssl_clip_config):
    clip = _moving_dots(dot_clip, tmp_path / "clip")
    eps = [float(k % 3) for k in range(17)]
    run = CCSSLRun(ccssl_clip_config(clip, temporal_loss_weight=2.0, temporal_loss_clip=4, temporal_loss_epsilon=eps),
                   tmp_path / "run", progress=False)
    run.prepare()
    trainer = run.trainer
    clips = trainer.clips
    assert [len(w) for w in clips.windows] == [4] * 9 and clips.epsilon.tolist() == eps
    # the term of one window, recomputed with numpy from the model's own heatmaps
    trainer.model.eval()
    window = clips.windows[3]
    items = [clips.dataset[i] for i in window]
    with torch.no_grad():
        term = float(trainer.temporal_term(window))
        hm = trainer.model(torch.stack([it["image"] for it in items]))[-1].double().numpy()
    p = np.exp(160 * (hm - hm.max(axis=(2, 3), keepdims=True)))
    p /= p.sum(axis=(2, 3), keepdims=True)
    ys, xs = np.mgrid[0:16, 0:16]
    crop = np.stack([(p * xs).sum((2, 3)), (p * ys).sum((2, 3))], -1) * 4.0  # heatmap -> crop pixels (64 / 16)
    mats = [it["meta"]["matrix"].numpy() for it in items]  # original -> crop
    orig = np.stack([np.linalg.solve(m[:, :2], (c - m[:, 2]).T).T for m, c in zip(mats, crop, strict=True)])
    jumps = np.linalg.norm(np.diff(orig, axis=0), axis=-1)
    assert term == pytest.approx(np.maximum(jumps - np.array(eps), 0).mean(), rel=1e-4, abs=1e-5)
    # in the step: L = L_source + 2 * L_temporal of the step's window (one window left: no choice)
    clips.windows = [window]
    batch = torch.utils.data.default_collate([trainer.train_set[i] for i in range(4)])
    with torch.no_grad():
        total = float(trainer._forward_loss(batch)[0])
        source = float(Trainer._forward_loss(trainer, batch)[0])
    assert total == pytest.approx(source + 2.0 * term, rel=1e-5)
    # a round trains with it (lambda 0: the temporal term is the only unsupervised one)
    metrics = run.round(0)
    assert metrics["epochs"] == [0, 1]


def test_bad_settings_are_named(tmp_path, dot_clip, ccssl_clip_config):
    clip = _moving_dots(dot_clip, tmp_path / "clip", n=3)
    with pytest.raises(ConfigError, match=r"ccssl\.temporal_loss_weight.*clips of 4"):
        CCSSLRun(ccssl_clip_config(clip, temporal_loss_weight=1.0, temporal_loss_clip=4), tmp_path / "a",
                 progress=False).prepare()
    with pytest.raises(ConfigError, match=r"ccssl\.temporal_loss_epsilon.*2 tolerances for 17"):
        CCSSLRun(ccssl_clip_config(clip, temporal_loss_weight=1.0, temporal_loss_clip=3,
                                   temporal_loss_epsilon=[1.0, 2.0]), tmp_path / "b", progress=False).prepare()


def test_running_batchnorm_gives_the_term_the_evaluated_models_predictions(tmp_path, dot_clip, ccssl_clip_config):
    """``ccssl.term_batchnorm: running``: in a training step the term reads the predictions of the model as it is
    evaluated (BatchNorm on its running statistics), and its forward pass leaves those statistics alone; ``batch``
    normalises the clip by itself (other predictions) and moves them."""
    clip = _moving_dots(dot_clip, tmp_path / "clip")
    terms = {}
    for mode in ("batch", "running"):
        run = CCSSLRun(ccssl_clip_config(clip, temporal_loss_weight=1.0, temporal_loss_clip=4,
                                         temporal_loss_epsilon=0.0, term_batchnorm=mode), tmp_path / mode,
                       progress=False)
        run.prepare()
        trainer = run.trainer
        assert trainer.term_batchnorm == mode
        window = trainer.clips.windows[0]
        trainer.model.eval()
        with torch.no_grad():
            evaluated = float(trainer.temporal_term(window))
        trainer.model.train()
        stats = {k: v.clone() for k, v in trainer.model.state_dict().items() if "running" in k}
        with torch.no_grad():
            terms[mode] = float(trainer.temporal_term(window))
        moved = any(not torch.equal(v, trainer.model.state_dict()[k]) for k, v in stats.items())
        assert trainer.model.training
        assert moved == (mode == "batch")
        terms[mode, "eval"] = evaluated
    assert terms["running"] == pytest.approx(terms["running", "eval"], rel=1e-5)
    assert terms["batch"] != pytest.approx(terms["batch", "eval"], rel=1e-3)
    with pytest.raises(ConfigError, match="term_batchnorm"):
        ccssl_clip_config(clip, term_batchnorm="frozen")
