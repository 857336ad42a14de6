"""Lightning Pose's multi-view consistency loss (animalpose.adapt.multiview_loss): the fit and the loss by hand on a
two-view rig, the gradient, and the term inside CC-SSL training with the other unsupervised terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from animalpose.adapt.ccssl import CCSSLRun, term_importance
from animalpose.adapt.multiview_loss import check_views, fit_multiview_pca, multiview_error, multiview_loss
from animalpose.engine.trainer import Trainer
from animalpose.errors import ConfigError

# a 4-keypoint schema of 2 body parts seen in 2 views: keypoints 0, 1 in the top view, 2, 3 their bottom copies
VIEWS = [[0, 2], [1, 3]]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """torch on one thread (tests/conftest.py)."""


def _mirror_frames(n: int, seed: int = 0) -> np.ndarray:
    """(n, 4, 3) labelled frames of a mirror rig: a body part's bottom copy has the top copy's x and its own y
    (depth), so every (x_top, y_top, x_bot, y_bot) sample lies on the 3-dim subspace x_bot = x_top."""
    rng = np.random.default_rng(seed)
    kp = np.zeros((n, 4, 3))
    for top, bot in VIEWS:
        x = rng.uniform(20, 380, n)
        kp[:, top, :2] = np.stack([x, rng.uniform(10, 150, n)], -1)
        kp[:, bot, :2] = np.stack([x, rng.uniform(200, 390, n)], -1)
    kp[..., 2] = 2
    return kp


def test_a_consistent_frame_costs_nothing_and_a_displaced_copy_pays_by_hand():
    mv = fit_multiview_pca(list(_mirror_frames(12)), VIEWS, epsilon=1.0)
    assert mv.pca.num_components == 3 and mv.num_views == 2 and mv.views == ((0, 2), (1, 3))
    assert mv.pca.explained == pytest.approx(1.0)
    # a new frame that obeys the rig (x_bot = x_top), further out than any labelled one: error 0
    on = torch.tensor([[[50.0, 60.0], [500.0, 20.0], [50.0, 300.0], [500.0, 450.0]]])
    assert multiview_error(on, mv).abs().max().item() == pytest.approx(0.0, abs=1e-3)
    assert float(multiview_loss(on, mv)) == 0.0
    # body part 0's bottom copy 6 px to the right: the residual is its component along n = (1, 0, -1, 0)/sqrt(2),
    # (x_top - x_bot)/sqrt(2) = -6/sqrt(2) long, split evenly: each view's error is 6/2 = 3 px. With eps = 1:
    # mean over (part, view) of max(0, e - 1) = (2 + 2 + 0 + 0) / 4 = 1
    off = on.clone()
    off[0, 2, 0] += 6.0
    assert multiview_error(off, mv)[0].tolist() == [pytest.approx([3.0, 3.0], abs=1e-3),
                                                    pytest.approx([0.0, 0.0], abs=1e-3)]
    assert float(multiview_loss(off, mv)) == pytest.approx(1.0, abs=1e-3)


def test_epsilon_is_the_percentile_of_the_labelled_errors():
    # 5 frames x 2 parts = 10 samples; frames 1 and 2 are one pose whose part-0 copies are moved apart by 2 px
    # (x_top + 1, x_bot - 1: along n alone), then together (x_top - 1, x_bot + 1). The moves cancel in the mean and
    # are uncorrelated with the pose, so the fitted subspace stays x_bot = x_top, and each view of those two
    # samples errs by 1 px: 4 of the 20 errors are 1, the others 0
    kp = _mirror_frames(5)
    kp[2] = kp[1]
    kp[1, [0, 2], 0] += [1.0, -1.0]
    kp[2, [0, 2], 0] += [-1.0, 1.0]
    mv = fit_multiview_pca(list(kp), VIEWS)  # Lightning Pose's defaults: 3 axes, the 90th percentile
    assert mv.pca.num_components == 3
    assert mv.epsilon == pytest.approx(1.0, abs=1e-6)
    assert fit_multiview_pca(list(kp), VIEWS, percentile=50.0).epsilon == pytest.approx(0.0, abs=1e-6)
    # a body part with one view unlabelled is no sample: frames 0..2 give 5 samples, frames 0..1 only 3, and
    # 4 dimensions need 4
    kp[0, 2, 2] = 0
    assert fit_multiview_pca(list(kp[:3]), VIEWS, epsilon=0.0).pca.mean.shape == (4,)
    with pytest.raises(ValueError, match=r"3 labelled \(frame, body part\) samples with every view for 4"):
        fit_multiview_pca(list(kp[:2]), VIEWS)


def test_gradient_matches_finite_differences_and_pulls_the_copies_together():
    mv = fit_multiview_pca(list(_mirror_frames(12)), VIEWS, epsilon=0.5)
    x = torch.tensor([[[50.0, 60.0], [120.0, 20.0], [57.0, 300.0], [118.0, 250.0]]], dtype=torch.float64,
                     requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: multiview_loss(c, mv), (x,))
    loss = multiview_loss(x, mv)
    loss.backward()
    # the two copies of part 0 (x 50 vs 57) are pulled towards each other in x, and y does not matter
    assert x.grad[0, 0, 0] < 0 < x.grad[0, 2, 0]
    assert x.grad[0, :, 1].abs().max() == pytest.approx(0.0, abs=1e-5)
    stepped = (x - 2.0 * x.grad).detach()
    assert float(multiview_loss(stepped, mv)) < loss.item()


def test_bad_views_are_refused():
    with pytest.raises(ValueError, match="same >= 2 views"):
        check_views([[0, 2], [1]], 4)
    with pytest.raises(ValueError, match="same >= 2 views"):
        check_views([[0], [1]], 4)
    with pytest.raises(ValueError, match="twice"):
        check_views([[0, 2], [2, 3]], 4)
    with pytest.raises(ValueError, match=r"out of 0\.\.3"):
        check_views([[0, 4]], 4)


# --------------------------------------------------------------------------------------------------
# inside CC-SSL training (the dot clips of tests/adapt/conftest.py, COCO schema)

MV = [["left_eye", "right_eye"], ["left_ear", "right_ear"]]


def _dots(write, out, n: int = 12) -> str:
    rng = np.random.default_rng(1)
    start = rng.uniform(14, 34, size=(17, 2))
    velocity = rng.uniform(-1, 1.5, size=(17, 2))
    return write(out, rng, [start + f * velocity for f in range(n)])


def test_the_term_joins_the_training_loss_with_the_others(tmp_path, dot_clip, ccssl_clip_config):
    clip = _dots(dot_clip, tmp_path / "clip")
    run = CCSSLRun(ccssl_clip_config(clip, multiview_loss_weight=2.0, multiview_loss_views=MV,
                                     multiview_loss_frames=20, multiview_loss_epsilon=0.25), tmp_path / "run",
                   progress=False)
    run.prepare()
    trainer = run.trainer
    term = trainer.multiview
    assert term.multiview.views == ((1, 2), (3, 4)) and term.multiview.epsilon == 0.25 and len(term.dataset) == 12
    trainer.model.eval()
    idx = list(range(12))
    with torch.no_grad():
        value = float(trainer.multiview_term(idx))
        batch = torch.utils.data.default_collate([trainer.train_set[i] for i in range(4)])
        total = float(trainer._forward_loss(batch)[0])
        source = float(Trainer._forward_loss(trainer, batch)[0])
    assert value > 0  # an untrained network's eyes and ears do not follow the labelled relation
    # temporal and PCA off: the step draws min(20, 12) = all 12 frames
    assert total == pytest.approx(source + 2.0 * value, rel=1e-5)
    assert run.round(0)["epochs"] == [0, 1]


def test_term_anneal_ramps_the_terms_in_as_lightning_pose(tmp_path, dot_clip, ccssl_clip_config):
    """ccssl.term_anneal_epochs: the terms' factor is min(1, epoch / N) (Lightning Pose's AnnealWeight, N = 100:
    0 in epoch 0, 0.01 a epoch, full from epoch 100), applied to the step's loss."""
    assert [term_importance(e, 100) for e in (0, 1, 50, 100, 250)] == [0.0, 0.01, 0.5, 1.0, 1.0]
    assert term_importance(0, 0) == term_importance(7, 0) == 1.0  # off: full weight from the first step
    assert term_importance(1, 4) == 0.25
    clip = _dots(dot_clip, tmp_path / "clip")
    run = CCSSLRun(ccssl_clip_config(clip, multiview_loss_weight=2.0, multiview_loss_views=MV,
                                     multiview_loss_frames=20, multiview_loss_epsilon=0.25, term_anneal_epochs=4),
                   tmp_path / "run", progress=False)
    run.prepare()
    trainer = run.trainer
    assert trainer.term_anneal_epochs == 4
    trainer.model.eval()
    with torch.no_grad():
        value = float(trainer.multiview_term(list(range(12))))
        batch = torch.utils.data.default_collate([trainer.train_set[i] for i in range(4)])
        source = float(Trainer._forward_loss(trainer, batch)[0])
        totals = {}
        for epoch in (0, 1, 4):
            trainer.epoch = epoch
            totals[epoch] = float(trainer._forward_loss(batch)[0])
    assert value > 0
    assert totals[0] == pytest.approx(source, rel=1e-6)  # epoch 0: the terms are not even computed
    assert totals[1] == pytest.approx(source + 0.25 * 2.0 * value, rel=1e-5)
    assert totals[4] == pytest.approx(source + 2.0 * value, rel=1e-5)


def test_all_three_terms_share_the_step_clip(tmp_path, dot_clip, ccssl_clip_config, step_losses):
    clip = _dots(dot_clip, tmp_path / "clip")
    run = CCSSLRun(ccssl_clip_config(clip, multiview_loss_weight=3.0, multiview_loss_views=MV,
                                     pca_loss_weight=2.0, pca_loss_joints=["nose", "left_eye", "right_eye"],
                                     temporal_loss_weight=0.5, temporal_loss_clip=4, temporal_loss_epsilon=0.0),
                   tmp_path / "run", progress=False)
    parts, total, source = step_losses(run, 3, ("temporal_term", "pca_term", "multiview_term"))
    assert all(p > 0 for p in parts)
    assert total == pytest.approx(source + 0.5 * parts[0] + 2.0 * parts[1] + 3.0 * parts[2], rel=1e-5)


def test_bad_settings_are_named(tmp_path, dot_clip, ccssl_clip_config):
    clip = _dots(dot_clip, tmp_path / "clip")

    def prepare(name, **ccssl):
        CCSSLRun(ccssl_clip_config(clip, multiview_loss_weight=1.0, **ccssl), tmp_path / name, progress=False).prepare()

    with pytest.raises(ConfigError, match=r"ccssl\.multiview_loss_views.*needs each body part"):
        prepare("a")
    with pytest.raises(ConfigError, match=r"ccssl\.multiview_loss_views.*'snout'.*not keypoints of schema 'coco'"):
        prepare("b", multiview_loss_views=[["nose", "snout"]])
    with pytest.raises(ConfigError, match=r"ccssl\.multiview_loss_views.*same >= 2 views"):
        prepare("c", multiview_loss_views=[["nose", "left_eye"], ["right_eye"]])
    with pytest.raises(ConfigError, match=r"ccssl\.multiview_loss_components.*components 5 is not in 1..4"):
        prepare("d", multiview_loss_views=MV, multiview_loss_components=5)


def test_the_mirror_mouse_views_lie_near_a_3d_subspace():
    """The config's seven top/bottom pairs on the real labelled frames img01-img60: 3 axes explain > 99.9 % of the
    4-D samples' variance (the two views of one 3-D point), and the labelled frames' own 90th-percentile error is a
    few pixels."""
    from animalpose.adapt.ccssl import CCSSLConfig
    from animalpose.config import load_config
    from animalpose.data.readers import read_dataset
    from animalpose.keypoints import CONFIG_ROOT, load_schema
    from animalpose.paths import REPO_ROOT

    data = REPO_ROOT.parent / "shared" / "data" / "real" / "mirror-mouse"
    if not data.is_dir():
        pytest.skip(f"shared real data not found at {data}")
    cfg = load_config(CONFIG_ROOT / "adapt" / "ccssl_mirror_mouse.yaml", CCSSLConfig)
    schema = load_schema("mirror_mouse")
    pairs = cfg.ccssl.multiview_loss_views
    assert len(pairs) == 7 and all(top.removesuffix("_top") == bot.removesuffix("_bot") for top, bot in pairs)
    records = read_dataset(data, "dlc", "mirror_mouse").records[:60]
    mv = fit_multiview_pca([r.keypoints for r in records], [[schema.index(j) for j in p] for p in pairs])
    assert mv.pca.num_components == 3 and mv.pca.explained > 0.999
    assert 1.0 < mv.epsilon < 10.0
